"""Checks for lab 12 (scaling up): parameter counts by formula, the 6·N·D compute estimate, combining
gradients from data-parallel shards, the DDP batch arithmetic, and symmetric int8 quantization.

NumPy only: a light interpreter imports this module (torch is imported inside a check when needed)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlcourse.check import expect, expect_array, expect_callable, expect_number, exercise


# ------------------------------------------------------------------------------------------- 12.1
@exercise("12.1", "Count parameters by formula", wrong_answers={
    "kernel counted once, not k×k": ["return c_in * c_out * kernel + (c_out if bias else 0)", None],
    "one bias for the whole layer": ["return c_in * c_out * kernel * kernel + (1 if bias else 0)", None],
    "Linear without its bias": [None, "return n_in * n_out"],
})
def check_param_formulas(conv2d_params: Any, linear_params: Any) -> str:
    import torch

    from dlcourse.compute import lab08_cnn_params_by_formula

    expect_callable(conv2d_params, name="conv2d_params")
    expect_callable(linear_params, name="linear_params")
    for c_in, c_out, k, bias in [(1, 16, 3, False), (16, 32, 3, False), (3, 64, 7, True), (8, 4, 1, True)]:
        want = sum(p.numel() for p in torch.nn.Conv2d(c_in, c_out, k, bias=bias).parameters())
        expect_number(conv2d_params(c_in, c_out, k, bias), want, integer=True, rtol=0, atol=0,
                      name=f"conv2d_params({c_in}, {c_out}, {k}, bias={bias})",
                      hint="Each of the c_out filters has c_in × k × k weights, plus one bias per filter "
                           "(one per output channel) when bias=True.")
    for n_in, n_out, bias in [(1568, 128, True), (128, 10, True), (768, 3072, False)]:
        want = sum(p.numel() for p in torch.nn.Linear(n_in, n_out, bias=bias).parameters())
        expect_number(linear_params(n_in, n_out, bias), want, integer=True, rtol=0, atol=0,
                      name=f"linear_params({n_in}, {n_out}, bias={bias})",
                      hint="A weight matrix n_in × n_out, plus one bias per output when bias=True.")
    total = lab08_cnn_params_by_formula()["total"]
    return f"Both formulas agree with PyTorch; the lab 08 CNN has {total:,} trainable parameters."


# ------------------------------------------------------------------------------------------- 12.2
@exercise("12.2", "Training compute and GPU-hours", wrong_answers={
    "forward pass only (2·N·D)": ["return 2 * n_params * n_tokens", None],
    "seconds, not hours": [None, "return flops / (peak_flops * utilisation)"],
    "utilisation ignored (peak speed)": [None, "return flops / peak_flops / 3600"],
})
def check_compute_estimate(training_flops: Any, gpu_hours: Any) -> str:
    expect_callable(training_flops, name="training_flops")
    expect_callable(gpu_hours, name="gpu_hours")
    for n, d in [(110e6, 1.28e11), (175e9, 300e9), (17.5e6, 1e9)]:
        expect_number(training_flops(n, d), 6 * n * d, name=f"training_flops({n:.3g}, {d:.3g})", rtol=1e-9,
                      hint="Each token costs about 2·N FLOPs forward (a multiply and an add per weight) and 4·N "
                           "backward (gradients for the activations and for the weights): 6·N·D in all "
                           "(Kaplan et al. 2020).")
    for flops, peak, util in [(8.4e19, 312e12, 0.4), (3.15e23, 125e12, 0.3), (1e18, 989e12, 0.5)]:
        expect_number(gpu_hours(flops, peak, util), flops / (peak * util) / 3600,
                      name=f"gpu_hours({flops:.3g}, {peak:.3g}, {util})", rtol=1e-9,
                      hint="A GPU really delivers utilisation × peak FLOP/s; FLOPs ÷ that rate is seconds, and an hour "
                           "has 3,600 of them.")
    return f"Right: GPT-3 needs {6 * 175e9 * 300e9:.3g} FLOPs by 6·N·D (Brown et al. 2020 report 3.14e23)."


# ------------------------------------------------------------------------------------------- 12.3
def _least_squares_gradient(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Gradient of the MEAN squared error (1/n)·Σ (x_i·w − y_i)² with respect to w."""
    return 2 * x.T @ (x @ w - y) / len(x)


@exercise("12.3", "Combine the gradients of data-parallel shards", wrong_answers={
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


# ------------------------------------------------------------------------------------------- 12.4
def _ddp_schedule(n: int, per_device: int, world: int, accumulation: int) -> tuple[int, int, int]:
    per_rank = math.ceil(n / world)  # DistributedSampler(drop_last=False) pads by repeating samples
    return per_device * world * accumulation, per_rank, math.ceil(per_rank / per_device)


@exercise("12.4", "Batch arithmetic under DistributedDataParallel", wrong_answers={
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


# ------------------------------------------------------------------------------------------- 12.5
def _quantize(w: np.ndarray) -> tuple[np.ndarray, float]:
    scale = float(np.abs(w).max()) / 127
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale


@exercise("12.5", "Symmetric int8 quantization", wrong_answers={
    "scale from the unsigned range (255)": "scale = float(np.abs(w).max()) / 255\n"
                                           "q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)",
    "truncation instead of rounding": "scale = float(np.abs(w).max()) / 127\n"
                                      "q = (w / scale).astype(np.int8)",
    "scale from the largest value, not the largest magnitude": "scale = float(w.max()) / 127\n"
                                                               "q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)",
})
def check_quantize_int8(quantize_int8: Any) -> str:
    expect_callable(quantize_int8, name="quantize_int8")
    rng = np.random.default_rng(5)
    for w in [rng.normal(0, 0.05, size=(128, 64)).astype(np.float32),
              np.array([[-1.0, 0.2, 0.5], [0.25, -0.01, 0.3]], dtype=np.float32)]:
        got = quantize_int8(w.copy())
        expect(isinstance(got, tuple) and len(got) == 2,
               "`quantize_int8` should return a pair (q, scale): the int8 array and the float scale.")
        q, scale = got
        want_q, want_scale = _quantize(w)
        expect_number(scale, want_scale, name="scale", rtol=1e-6,
                      hint="Symmetric quantization maps the largest MAGNITUDE max|w| to 127, so scale = max|w| / 127 "
                           "(int8 runs from −128 to 127; −128 stays unused to keep the range symmetric).")
        q = np.asarray(q)
        expect(q.dtype == np.int8, f"q should have dtype int8, not {q.dtype}.", "Finish with .astype(np.int8).")
        expect_array(q, want_q, name="q", rtol=0, atol=0,
                     hint="Round to the NEAREST integer (np.round) before the cast: .astype(np.int8) alone truncates "
                          "toward zero and doubles the worst-case error.")
    return f"Right: w ≈ q·scale, and rounding moves no weight by more than scale/2 ({want_scale / 2:.4f} here)."
