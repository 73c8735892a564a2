"""Checksummed loaders for MNIST, Fashion-MNIST and Tiny Shakespeare.

Where a file is looked for, in order:
  1. the folder passed as ``root=``;
  2. the folder in ``$DLCOURSE_DATA``;
  3. the course cache (``data/cache/`` in a checkout, or ``$DLCOURSE_CACHE``);
  4. the canonical URL (after ``$DLCOURSE_MIRROR`` if set), saved into the cache.

Every file's SHA-256 is compared with the pinned value before it is used, so a truncated
download or a flipped byte never reaches a notebook. Files are parsed from the IDX format
with NumPy; nothing is ever unpickled.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from dlcourse.datasets import DATASETS, DataFile, dataset_files, image_file
from dlcourse.errors import DlcourseError

__all__ = [
    "DataError", "Split", "ImageData", "load_mnist", "load_fashion_mnist", "load_text",
    "locate", "fetch", "verify_dataset", "read_idx", "cache_dir", "FileStatus",
]

Channels = Literal["last", "first"] | None
_CHUNK = 1 << 20


class DataError(DlcourseError):
    """A data file is missing, incomplete, corrupt or could not be downloaded."""


class Split(NamedTuple):
    x: np.ndarray
    y: np.ndarray


class ImageData(NamedTuple):
    """``(x_train, y_train), (x_test, y_test) = load_mnist()`` works, and so does ``.train.x``."""

    train: Split
    test: Split


# ---------------------------------------------------------------------------------- where

def cache_dir() -> Path:
    """The writable folder downloads go to: $DLCOURSE_CACHE, data/cache/ in a checkout, or ~/.cache."""
    if os.environ.get("DLCOURSE_CACHE"):
        return Path(os.environ["DLCOURSE_CACHE"]).expanduser()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "data").is_dir():
        return checkout / "data" / "cache"
    return Path.home() / ".cache" / "dlcourse"


def _search_dirs(root: str | os.PathLike | None) -> list[tuple[str, Path]]:
    """The folders to look in, with a label saying where each came from."""
    dirs: list[tuple[str, Path]] = []
    for label, value in (("root=", root), ("$DLCOURSE_DATA", os.environ.get("DLCOURSE_DATA"))):
        if value in (None, ""):
            continue
        path = Path(value).expanduser()
        if not path.is_dir():
            raise DataError(
                f"The data folder given by {label} ({path}) does not exist; "
                f"point {label.strip('=$')} at the folder that holds mnist/, fashion-mnist/ and "
                "tinyshakespeare/, or leave it unset to use the course cache."
            )
        dirs.append((label, path))
    dirs.append(("cache", cache_dir()))
    return dirs


def _fix_hint(file: DataFile) -> str:
    return (
        f"delete it and run `dlcourse data fetch {file.dataset}`, or set DLCOURSE_DATA to a "
        f"folder with a verified copy (as <folder>/{file.relpath})"
    )


# ---------------------------------------------------------------------------------- verify

@lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file; cached per (path, size, mtime) so re-loads in a session are free."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, file: DataFile) -> None:
    """Raise DataError with the fix unless `path` has exactly the pinned size and SHA-256."""
    stat = path.stat()
    if stat.st_size != file.size:
        raise DataError(
            f"{path} is incomplete or not the expected file: it has {stat.st_size:,} bytes, "
            f"{file.relpath} should have {file.size:,}; {_fix_hint(file)}."
        )
    actual = _sha256_of(str(path), stat.st_size, stat.st_mtime_ns)
    if actual != file.sha256:
        raise DataError(
            f"{path} is corrupt: its SHA-256 is {actual[:16]}…, {file.relpath} should have "
            f"{file.sha256[:16]}…; {_fix_hint(file)}."
        )


# ---------------------------------------------------------------------------------- fetch

def _download(url: str, dest: Path, file: DataFile) -> None:
    """Stream `url` into a temporary file beside `dest`, verify it, then rename it into place."""
    from tqdm.auto import tqdm

    fd, tmp_name = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        request = urllib.request.Request(url, headers={"User-Agent": "dlcourse"})
        with urllib.request.urlopen(request, timeout=30) as response, os.fdopen(fd, "wb") as out:
            bar = tqdm(total=file.size, unit="B", unit_scale=True, desc=file.relpath,
                       disable=file.size < 5 * _CHUNK, leave=False)
            while block := response.read(_CHUNK):
                digest.update(block)
                out.write(block)
                bar.update(len(block))
            bar.close()
        if tmp.stat().st_size != file.size or digest.hexdigest() != file.sha256:
            raise ValueError(f"the bytes received ({tmp.stat().st_size:,}) do not match the pinned SHA-256")
        os.replace(tmp, dest)  # atomic: readers see the old state or the whole verified file
    finally:
        tmp.unlink(missing_ok=True)


def _download_urls(file: DataFile) -> list[str]:
    mirror = os.environ.get("DLCOURSE_MIRROR", "").strip()
    return ([mirror.rstrip("/") + "/" + file.relpath] if mirror else []) + list(file.urls)


def fetch(file: DataFile) -> Path:
    """Download one file into the cache (atomically, verified) and return its path."""
    dest = cache_dir() / file.relpath
    offline_fix = (
        f"copy the verified file to <folder>/{file.relpath} and set DLCOURSE_DATA=<folder> "
        f"(CI uses shared/data), or run `dlcourse data fetch {file.dataset}` on a machine that is online"
    )
    if os.environ.get("DLCOURSE_OFFLINE", "") not in ("", "0"):
        raise DataError(f"{file.relpath} was not found locally and downloads are off (DLCOURSE_OFFLINE); {offline_fix}.")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"Cannot create the data cache {dest.parent} ({exc.strerror}); set DLCOURSE_CACHE to a writable folder.") from None
    failures = []
    for url in _download_urls(file):
        try:
            _download(url, dest, file)
            return dest
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            failures.append(f"{url} ({reason})")
    raise DataError(
        f"{file.relpath} is not on this machine and could not be downloaded "
        f"(tried {'; '.join(failures)}); {offline_fix}."
    )


def locate(file: DataFile, root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The verified local path of `file`, looking in root, $DLCOURSE_DATA, the cache, then online."""
    for _label, folder in _search_dirs(root):
        path = folder / file.relpath
        if path.is_file():
            verify_file(path, file)
            return path
    if not download:
        places = ", ".join(str(folder) for _, folder in _search_dirs(root))
        raise DataError(f"{file.relpath} was not found in {places}; run `dlcourse data fetch {file.dataset}` or set DLCOURSE_DATA.")
    return fetch(file)


class FileStatus(NamedTuple):
    file: DataFile
    path: Path | None
    ok: bool
    message: str


def verify_dataset(name: str, root: str | os.PathLike | None = None) -> list[FileStatus]:
    """Check every file of a dataset where it is found, without downloading anything."""
    folders = [folder for _, folder in _search_dirs(root)]
    statuses = []
    for file in dataset_files(name):
        try:
            path = locate(file, root, download=False)
            statuses.append(FileStatus(file, path, True, "OK"))
        except DataError as exc:
            found = next((f / file.relpath for f in folders if (f / file.relpath).is_file()), None)
            statuses.append(FileStatus(file, found, False, str(exc)))
    return statuses


# ---------------------------------------------------------------------------------- parse

def read_idx(path: Path) -> np.ndarray:
    """Parse a gzip-compressed IDX file (big-endian header, then uint8 data) into an array."""
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is not a readable gzip file ({exc}); delete it and fetch it again.") from None
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path} does not start with an IDX uint8 header; it is not an MNIST-style file.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataError(f"{path} holds {len(raw) - header:,} values but its header announces {expected - header:,}; it is truncated or damaged.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@lru_cache(maxsize=8)
def _cached_idx(path: str, mtime_ns: int) -> np.ndarray:
    array = read_idx(Path(path))
    array.flags.writeable = False  # the cached copy is shared; callers get their own copies
    return array


def _load_idx(file: DataFile, root: str | os.PathLike | None) -> np.ndarray:
    path = locate(file, root)
    return _cached_idx(str(path), path.stat().st_mtime_ns)


# ---------------------------------------------------------------------------------- public

def _subset_indices(n_total: int, n: int | None, rng: np.random.Generator, what: str) -> np.ndarray | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 < n <= n_total:
        raise DataError(f"{what} must be a whole number from 1 to {n_total:,}, not {n!r}.")
    return np.sort(rng.choice(n_total, size=int(n), replace=False))


def _prepare(x: np.ndarray, y: np.ndarray, idx: np.ndarray | None, scale: bool, channels: Channels) -> Split:
    x = x[idx] if idx is not None else x.copy()
    y = (y[idx] if idx is not None else y).astype(np.int64)
    if scale:
        x = x.astype(np.float32) / np.float32(255.0)
    if channels == "last":
        x = x[..., np.newaxis]
    elif channels == "first":
        x = x[:, np.newaxis]
    return Split(x, y)


def _load_images(dataset: str, root, scale: bool, channels: Channels, n_train, n_test, seed: int) -> ImageData:
    if channels not in (None, "last", "first"):
        raise DataError(f"channels must be None, 'last' (N,28,28,1 for Keras) or 'first' (N,1,28,28 for PyTorch), not {channels!r}.")
    rng = np.random.default_rng(seed)
    splits = []
    for split, n in (("train", n_train), ("test", n_test)):
        x = _load_idx(image_file(dataset, split, "images"), root)
        y = _load_idx(image_file(dataset, split, "labels"), root)
        if len(x) != len(y):
            raise DataError(f"{dataset} {split} has {len(x)} images but {len(y)} labels; re-fetch the dataset.")
        idx = _subset_indices(len(x), n, rng, f"n_{split}")
        splits.append(_prepare(x, y, idx, scale, channels))
    return ImageData(*splits)


def load_mnist(*, root: str | os.PathLike | None = None, scale: bool = False, channels: Channels = None,
               n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> ImageData:
    """MNIST digits as ``((x_train, y_train), (x_test, y_test))``.

    Images are uint8 of shape (n, 28, 28) unless ``scale=True`` (float32 in [0, 1]) or
    ``channels`` adds a channel axis ('last' for Keras, 'first' for PyTorch). Labels are int64.
    ``n_train``/``n_test`` pick a random subset, the same one for the same ``seed``.
    """
    return _load_images("mnist", root, scale, channels, n_train, n_test, seed)


def load_fashion_mnist(*, root: str | os.PathLike | None = None, scale: bool = False, channels: Channels = None,
                       n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> ImageData:
    """Fashion-MNIST, with the same options as `load_mnist` (class names: FASHION_MNIST_CLASSES)."""
    return _load_images("fashion-mnist", root, scale, channels, n_train, n_test, seed)


def load_text(name: str = "tinyshakespeare", *, root: str | os.PathLike | None = None) -> str:
    """A verified text corpus as one string (Tiny Shakespeare: 1,115,394 characters)."""
    files = dataset_files(name)
    if len(files) != 1 or not files[0].name.endswith(".txt"):
        raise DataError(f"{name!r} is an image dataset; use load_mnist() or load_fashion_mnist().")
    return locate(files[0], root).read_text(encoding="utf-8")


def known_datasets() -> list[str]:
    return list(DATASETS)
