"""Does NumPy's BLAS thread pool slow lab 05 down on a shared machine?

Lab 05 trains a 784-128-10 NumPy MLP with mini-batches of 128: each step is a handful of small
matrix products. OpenBLAS splits each product over its threads and the threads wait for one
another at the end of it; when another process holds a core (a JupyterHub node, a CI runner),
a thread that waits may sit behind the other process for a whole scheduler slice. This script
times one training epoch of the lab's network with 1 and with all BLAS threads, on an idle
machine and next to one CPU-bound competitor (a Python busy loop), and prints the table.
`mlp.train` limits BLAS to one thread by default (`blas_threads=1`) because of what it shows.

    python benchmarks/mlp_threads.py           # 20,000 MNIST images per epoch
    python benchmarks/mlp_threads.py --fast    # 3,000 images: a seconds-long smoke run
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info

from dlcourse import mlp
from dlcourse.data import load_mnist
from dlcourse.tables import format_table
from dlcourse.training import Stopwatch

BUSY_LOOP = "while True: pass"


def epoch_seconds(x: np.ndarray, y: np.ndarray, threads: int) -> float:
    """Training seconds of one epoch of lab 05's network (batch 128), with `threads` BLAS threads."""
    watch = Stopwatch()
    mlp.train(mlp.init_params(784, 128, 10, seed=0), x, y, epochs=1, progress=False, stopwatch=watch,
              blas_threads=threads)
    return watch.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a small subset, for a smoke run")
    args = parser.parse_args()
    n = 3000 if args.fast else 20000
    data = load_mnist(n_train=n, n_test=10, seed=0)
    x, y = mlp.prepare_images(data.train.x), data.train.y
    blas = max((info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"), default=1)
    thread_counts = sorted({1, blas})
    rows = []
    for competitors in (0, 1):
        busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(competitors)]
        try:
            time.sleep(0.2 * competitors)  # let the competitor start spinning
            for threads in thread_counts:
                seconds = min(epoch_seconds(x, y, threads) for _ in range(2))
                rows.append([competitors, threads, f"{seconds:.2f}", f"{seconds * 55000 / n:.1f}"])
        finally:
            for process in busy:
                process.kill()
                process.wait()
    print(f"lab 05 MLP, one epoch of {n:,} images (batch 128), best of 2; {os.cpu_count()} CPUs, "
          f"BLAS threads available: {blas}")
    print(format_table(["competing busy processes", "BLAS threads", "epoch s", "s per 55,000 images"], rows))


if __name__ == "__main__":
    main()
