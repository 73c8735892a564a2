"""Labs 12 and 13's measurements in one place: this machine's roofline, the lab 08 CNN's training throughput per
batch size and thread count, and data-parallel training with torchrun (1 process × all cores against
N processes × cores/N) on MNIST.

    python benchmarks/scaling.py                 # full: 5 batch sizes, 1 and 2 threads, one MNIST epoch per DDP layout
    python benchmarks/scaling.py --processes 4   # another DDP layout (on a machine with more cores or GPUs)
    python benchmarks/scaling.py --fast          # seconds-long smoke run (tests use it)
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from dlcourse.launch import run_command, torchrun_command, worker_threads
from dlcourse.tables import format_table
from dlcourse.throughput import (layer_costs, memory_bandwidth, peak_matmul_flops, throughput_grid,
                                 training_flops_per_sample)

FULL = {"batches": [8, 32, 128, 512, 2048], "samples": 16384, "train": 60000, "test": 10000}
FAST = {"batches": [16, 64], "samples": 256, "train": 512, "test": 200}


def roofline(threads: list[int]) -> None:
    rows = []
    for t in threads:
        peak, bandwidth = peak_matmul_flops(threads=t), memory_bandwidth(threads=t)
        rows.append([t, f"{peak / 1e9:.1f}", f"{bandwidth / 1e9:.1f}", f"{peak / bandwidth:.1f}"])
    print("roofline\n" + format_table(["threads", "matmul GFLOP/s", "copy GB/s", "balance FLOP/byte"], rows))


def throughput(batches: list[int], threads: list[int], samples: int) -> None:
    flops = training_flops_per_sample(layer_costs(256, time_layers=False), 256)
    grid = throughput_grid(batches, threads, samples_per_point=samples, progress=False)
    print(f"\nlab 08 CNN training throughput ({flops / 1e6:.2f} MFLOP per image, best of 3 rounds)\n" + format_table(
        ["threads", "batch", "images/s", "GFLOP/s"],
        [[r["threads"], r["batch_size"], f"{r['samples_per_s']:,.0f}", f"{r['samples_per_s'] * flops / 1e9:.1f}"]
         for r in grid]))


def ddp(layouts: list[int], train: int, test: int) -> None:
    rows = []
    for n in layouts:
        with tempfile.TemporaryDirectory() as out:
            command = torchrun_command("dlcourse.ddp_train", ["--out", out, "--train-size", train, "--test-size", test,
                                                              "--batch-size", 64 // n], nproc_per_node=n)
            job = run_command(command, timeout=1800, on_line=None, what=f"torchrun with {n} process(es)",
                              env={"OMP_NUM_THREADS": str(worker_threads(n))})
            m = json.loads(Path(out, "metrics.json").read_text())
        rows.append([n, m["threads_per_process"], m["backend"], m["effective_batch"], m["steps"],
                     f"{m['train_seconds']:.1f}", f"{job.seconds:.1f}", f"{m['samples_per_second']:,.0f}",
                     f"{m['test_accuracy']:.4f}"])
    print(f"\nDistributedDataParallel, one epoch of {train:,} MNIST images, effective batch 64\n" + format_table(
        ["processes", "threads each", "backend", "batch", "steps", "train s", "job s", "images/s", "test acc"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--processes", type=int, default=2, help="the DDP layout compared with 1 process")
    args = parser.parse_args()
    if args.processes < 2:
        parser.error("--processes must be at least 2 (it is compared with 1 process)")
    setting = FAST if args.fast else FULL
    threads = sorted({1, os.cpu_count() or 1})
    roofline(threads)
    throughput(setting["batches"], threads, setting["samples"])
    ddp([1, args.processes], setting["train"], setting["test"])


if __name__ == "__main__":
    main()
