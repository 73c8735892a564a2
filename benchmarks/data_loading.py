"""What does checksummed loading cost? Cold (hash + parse) versus warm (cached in the session)."""

from __future__ import annotations

import time

from dlcourse import data
from dlcourse.datasets import DATASETS
from dlcourse.tables import format_table


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    rows = []
    loaders = {
        "mnist": lambda: data.load_mnist(),
        "fashion-mnist": lambda: data.load_fashion_mnist(),
        "tinyshakespeare": lambda: data.load_text("tinyshakespeare"),
    }
    for name, load in loaders.items():
        size = sum(f.size for f in DATASETS[name])
        data._sha256_of.cache_clear()
        data._cached_idx.cache_clear()
        start = time.perf_counter()
        for f in DATASETS[name]:
            data.locate(f)  # finds the file and verifies its SHA-256
        verify = time.perf_counter() - start
        data._sha256_of.cache_clear()
        data._cached_idx.cache_clear()
        cold = timed(load)
        warm = timed(load)
        rows.append((name, f"{size / 1e6:.1f}", f"{verify * 1000:.0f}", f"{cold * 1000:.0f}", f"{warm * 1000:.0f}"))
    print("dataset loading (first load in a session hashes and parses; later loads reuse both)")
    print(format_table(["dataset", "MB on disk", "sha256 ms", "cold load ms", "warm load ms"], rows))


if __name__ == "__main__":
    main()
