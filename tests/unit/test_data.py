"""dlcourse.data: loading, resolution order, verification, downloads and every bad-input path."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest

from dlcourse import data
from dlcourse.data import DataError, fetch, load_fashion_mnist, load_mnist, load_text, locate, read_idx
from dlcourse.datasets import dataset_files, image_file


@pytest.fixture
def with_shared(shared_data: Path, isolated_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DLCOURSE_DATA", str(shared_data))
    return shared_data


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# ---------------------------------------------------------------------------- loading

def test_load_mnist_shapes_dtypes_and_labels(with_shared: Path) -> None:
    (x_train, y_train), (x_test, y_test) = load_mnist()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert y_train.dtype == np.int64 and set(np.unique(y_train)) == set(range(10))
    assert x_train.min() == 0 and x_train.max() == 255


def test_scaling_channels_and_named_fields(with_shared: Path) -> None:
    last = load_mnist(scale=True, channels="last", n_train=50, n_test=20)
    first = load_mnist(scale=True, channels="first", n_train=50, n_test=20)
    assert last.train.x.shape == (50, 28, 28, 1) and first.train.x.shape == (50, 1, 28, 28)
    assert last.train.x.dtype == np.float32 and 0.0 <= last.train.x.min() and last.train.x.max() <= 1.0
    np.testing.assert_array_equal(last.train.x[..., 0], first.train.x[:, 0])
    assert last.test.y.shape == (20,)


def test_subset_is_seeded(with_shared: Path) -> None:
    a = load_mnist(n_train=100, seed=1).train
    b = load_mnist(n_train=100, seed=1).train
    c = load_mnist(n_train=100, seed=2).train
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)


def test_returned_arrays_are_private_copies(with_shared: Path) -> None:
    first = load_mnist().train.x
    first[:] = 7  # a student overwriting their array must not change the next load
    assert load_mnist().train.x.max() == 255


def test_fashion_mnist_and_text(with_shared: Path) -> None:
    (x, y), (xt, yt) = load_fashion_mnist()
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert np.bincount(y).tolist() == [6000] * 10
    text = load_text("tinyshakespeare")
    assert len(text) == 1_115_394 and len(set(text)) == 65
    assert text.startswith("First Citizen:")


def test_verification_is_cached_per_file_version(with_shared: Path) -> None:
    load_mnist()
    hits = data._sha256_of.cache_info().hits
    load_mnist()
    assert data._sha256_of.cache_info().hits >= hits + 4


@pytest.mark.parametrize("kwargs, phrase", [
    ({"channels": "middle"}, "channels must be"),
    ({"n_train": 0}, "n_train must be a whole number"),
    ({"n_train": 70000}, "from 1 to 60,000"),
    ({"n_test": "10"}, "n_test must be"),
    ({"n_train": True}, "n_train must be"),
])
def test_bad_loader_arguments_get_a_sentence(with_shared: Path, kwargs: dict, phrase: str) -> None:
    with pytest.raises(DataError, match=phrase):
        load_mnist(**kwargs)


def test_wrong_dataset_names(with_shared: Path) -> None:
    with pytest.raises(DataError, match="image dataset"):
        load_text("mnist")
    with pytest.raises(Exception, match="no dataset called 'cifar'.*fashion-mnist, mnist, tinyshakespeare"):
        load_text("cifar")


# ---------------------------------------------------------------------------- where

def test_explicit_root_beats_environment_beats_cache(with_shared: Path, mnist_copy: Path, isolated_data: Path) -> None:
    file = image_file("mnist", "test", "labels")
    assert locate(file, root=mnist_copy) == mnist_copy / file.relpath
    assert locate(file) == with_shared / file.relpath
    (isolated_data / "mnist").mkdir(parents=True)
    (isolated_data / file.relpath).write_bytes((mnist_copy / file.relpath).read_bytes())
    assert locate(file) == with_shared / file.relpath  # $DLCOURSE_DATA still first


def test_cache_is_used_without_environment(mnist_copy: Path, isolated_data: Path) -> None:
    isolated_data.mkdir()
    (isolated_data / "mnist").symlink_to(mnist_copy / "mnist")
    assert load_mnist(n_test=10).test.x.shape == (10, 28, 28)


@pytest.mark.parametrize("how", ["root", "env"])
def test_missing_folder_is_one_sentence(isolated_data: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    kwargs = {}
    if how == "root":
        kwargs["root"] = "/no/such/folder"
    else:
        monkeypatch.setenv("DLCOURSE_DATA", "/no/such/folder")
    with pytest.raises(DataError) as info:
        load_mnist(**kwargs)
    message = str(info.value)
    assert "/no/such/folder" in message and "does not exist" in message and "\n" not in message


# ---------------------------------------------------------------------------- verify

def test_one_flipped_byte_is_caught_and_named(mnist_copy: Path, isolated_data: Path) -> None:
    target = mnist_copy / "mnist" / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[1000] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(DataError) as info:
        load_mnist(root=mnist_copy)
    message = str(info.value)
    assert str(target) in message and "corrupt" in message
    assert "dlcourse data fetch mnist" in message and "DLCOURSE_DATA" in message


def test_truncated_file_names_expected_size(mnist_copy: Path, isolated_data: Path) -> None:
    target = mnist_copy / "mnist" / "train-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"incomplete.*1,000 bytes.*28,881"):
        load_mnist(root=mnist_copy)


def test_wrong_pinned_hash_is_reported(mnist_copy: Path, isolated_data: Path) -> None:
    file = dataclasses.replace(image_file("mnist", "test", "labels"), sha256="0" * 64)
    with pytest.raises(DataError, match=r"corrupt: its SHA-256 is f7ae60f92e00ec6d…, .* should have 0000000000000000…"):
        locate(file, root=mnist_copy)


def test_read_idx_rejects_damaged_files(tmp_path: Path) -> None:
    good = gzip.compress(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(range(5)))
    (tmp_path / "good.gz").write_bytes(good)
    assert read_idx(tmp_path / "good.gz").tolist() == [0, 1, 2, 3, 4]
    (tmp_path / "cut.gz").write_bytes(good[:-6])
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "short.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (9).to_bytes(4, "big") + bytes(5)))
    with pytest.raises(DataError, match="header announces 9"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "pickle.gz").write_bytes(gzip.compress(pickle.dumps({"x": 1})))
    with pytest.raises(DataError, match="IDX uint8 header"):
        read_idx(tmp_path / "pickle.gz")
    (tmp_path / "plain.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_idx(tmp_path / "plain.gz")


def test_verify_dataset_reports_without_downloading(mnist_copy: Path, isolated_data: Path) -> None:
    (mnist_copy / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    statuses = data.verify_dataset("mnist", root=mnist_copy)
    assert [s.ok for s in statuses] == [True, True, True, False]
    assert "was not found" in statuses[3].message
    assert not isolated_data.exists() or not any(isolated_data.rglob("*.gz"))


# ---------------------------------------------------------------------------- download

def test_offline_without_a_copy_says_how_to_fix(isolated_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLCOURSE_OFFLINE", "1")
    with pytest.raises(DataError) as info:
        load_mnist()
    message = str(info.value)
    assert "mnist/train-images-idx3-ubyte.gz" in message and "DLCOURSE_DATA" in message and "downloads are off" in message
    assert "\n" not in message


def test_unreachable_urls_give_one_sentence(isolated_data: Path) -> None:
    file = dataclasses.replace(image_file("mnist", "test", "labels"), base_urls=(_closed_port_url(),))
    with pytest.raises(DataError) as info:
        fetch(file)
    message = str(info.value)
    assert "mnist/t10k-labels-idx1-ubyte.gz is not on this machine and could not be downloaded" in message
    assert "DLCOURSE_DATA" in message and "Connection refused" in message
    assert not _leftovers(isolated_data)


def test_download_from_mirror_is_verified_and_atomic(shared_data: Path, isolated_data: Path, file_server,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLCOURSE_MIRROR", file_server(shared_data))
    (x_test, y_test) = load_mnist(n_train=10).test
    assert x_test.shape == (10000, 28, 28)
    for file in dataset_files("mnist"):
        assert (isolated_data / file.relpath).stat().st_size == file.size
    assert not _leftovers(isolated_data)


def test_corrupt_download_is_discarded_then_next_url_tried(shared_data: Path, isolated_data: Path, tmp_path: Path,
                                                           file_server) -> None:
    bad = tmp_path / "bad" / "mnist"
    bad.mkdir(parents=True)
    name = "t10k-labels-idx1-ubyte.gz"
    (bad / name).write_bytes(b"\x00" * 4542)
    file = dataclasses.replace(image_file("mnist", "test", "labels"), base_urls=(file_server(bad) + "/",))
    with pytest.raises(DataError, match="do not match the pinned SHA-256"):
        fetch(file)
    assert not (isolated_data / file.relpath).exists() and not _leftovers(isolated_data)
    good = file_server(shared_data / "mnist") + "/"
    file = dataclasses.replace(file, base_urls=(file_server(bad) + "/", good))
    assert fetch(file) == isolated_data / file.relpath
    assert not _leftovers(isolated_data)


def test_unwritable_cache_is_one_sentence(isolated_data: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("DLCOURSE_CACHE", str(blocker / "cache"))
    with pytest.raises(DataError, match="Cannot create the data cache .* DLCOURSE_CACHE"):
        fetch(image_file("mnist", "test", "labels"))
