"""The registry of data files agrees with the verified copy and its SHA256SUMS."""

from __future__ import annotations

from pathlib import Path

from dlcourse.datasets import DATASETS, image_file


def test_registry_matches_shared_sha256sums(shared_data: Path) -> None:
    sums = dict(reversed(line.split()) for line in (shared_data / "SHA256SUMS").read_text().splitlines() if line.strip())
    registered = {f.relpath: f.sha256 for files in DATASETS.values() for f in files}
    assert registered == sums
    for files in DATASETS.values():
        for f in files:
            assert (shared_data / f.relpath).stat().st_size == f.size


def test_every_file_has_https_or_http_urls() -> None:
    for files in DATASETS.values():
        for f in files:
            assert f.urls and all(u.startswith(("https://", "http://")) and u.endswith(f.name) for u in f.urls)


def test_image_file_lookup() -> None:
    assert image_file("fashion-mnist", "train", "images").name == "train-images-idx3-ubyte.gz"
    assert image_file("mnist", "test", "labels").name == "t10k-labels-idx1-ubyte.gz"
