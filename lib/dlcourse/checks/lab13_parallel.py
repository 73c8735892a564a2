"""Checks for lab 13's data-parallel part: combining shard gradients and the DDP batch arithmetic.

NumPy only: a light interpreter imports this module."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlcourse.check import expect, expect_array, expect_callable, expect_number, exercise


# ------------------------------------------------------------------------------------------- 13.7
def _least_squares_gradient(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Gradient of the MEAN squared error (1/n)·Σ (x_i·w − y_i)² with respect to w."""
    return 2 * x.T @ (x @ w - y) / len(x)


@exercise("13.7", "Combine the gradients of data-parallel shards", wrong_answers={
    "plain mean of the shard gradients": "return np.mean(np.stack(shard_grads), axis=0)",
    "sum of the shard gradients": "return np.sum(np.stack(shard_grads), axis=0)",
})
def check_combine_gradients(combine_gradients: Any) -> str:
    expect_callable(combine_gradients, name="combine_gradients")
    rng = np.random.default_rng(12)
    x, y, w = rng.normal(size=(100, 5)), rng.normal(size=100), rng.normal(size=5)
    full = _least_squares_gradient(x, y, w)
    for sizes in [(50, 50), (25, 25, 25, 25), (64, 36), (10, 30, 60)]:
        bounds = np.cumsum((0,) + sizes)
        shards = [_least_squares_gradient(x[a:b], y[a:b], w) for a, b in zip(bounds[:-1], bounds[1:])]
        got = combine_gradients(shards, list(sizes))
        equal = len(set(sizes)) == 1
        expect_array(got, full, name=f"combine_gradients(...) for shards of sizes {list(sizes)}", rtol=1e-9, atol=1e-12,
                     hint="Each shard's gradient is a MEAN over its own samples. The full-batch mean weights every "
                          "sample once, so shard r counts n_r times: Σ n_r·g_r / Σ n_r."
                          + ("" if equal else " With equal shards that is the plain average, which is what DDP "
                                              "computes; with unequal shards the plain average is biased."))
    return "Right: with equal shards this is DDP's all-reduce average, and it equals the full-batch gradient."


# ------------------------------------------------------------------------------------------- 13.8
def _ddp_schedule(n: int, per_device: int, world: int, accumulation: int) -> tuple[int, int, int]:
    per_rank = math.ceil(n / world)  # DistributedSampler(drop_last=False) pads by repeating samples
    return per_device * world * accumulation, per_rank, math.ceil(per_rank / per_device)


@exercise("13.8", "Batch arithmetic under DistributedDataParallel", wrong_answers={
    "gradient accumulation left out": "effective_batch = per_device_batch * world_size\n"
                                      "samples_per_rank = math.ceil(n_samples / world_size)\n"
                                      "batches_per_rank = math.ceil(samples_per_rank / per_device_batch)",
    "every rank sees the whole data set": "effective_batch = per_device_batch * world_size * accumulation_steps\n"
                                          "samples_per_rank = n_samples\n"
                                          "batches_per_rank = math.ceil(samples_per_rank / per_device_batch)",
    "DistributedSampler drops the remainder": "effective_batch = per_device_batch * world_size * accumulation_steps\n"
                                              "samples_per_rank = n_samples // world_size\n"
                                              "batches_per_rank = math.ceil(samples_per_rank / per_device_batch)",
})
def check_ddp_schedule(ddp_schedule: Any) -> str:
    expect_callable(ddp_schedule, name="ddp_schedule")
    cases = [(60_000, 32, 2, 1), (60_000, 32, 2, 4), (10_001, 64, 4, 1), (1_281_167, 32, 256, 1), (50, 8, 3, 2)]
    for n, b, w, a in cases:
        got = ddp_schedule(n, b, w, a)
        expect(isinstance(got, tuple) and len(got) == 3,
               "`ddp_schedule` should return a tuple of three integers: (effective_batch, samples_per_rank, "
               "batches_per_rank).")
        want = _ddp_schedule(n, b, w, a)
        for name, g, v in zip(("effective_batch", "samples_per_rank", "batches_per_rank"), got, want):
            expect_number(g, v, name=f"{name} for n_samples={n:,}, per_device_batch={b}, world_size={w}, "
                                     f"accumulation_steps={a}", integer=True, rtol=0, atol=0,
                          hint="One optimizer step averages per_device_batch × world_size × accumulation_steps samples. "
                               "DistributedSampler gives each rank ceil(n / world_size) samples (it repeats a few "
                               "to make the shards equal), and the last batch of a rank may be short.")
    return "Right: with 2 ranks of 32 the effective batch is 64, the lab 08 recipe's batch size."


