"""The lab 12 checks, called directly: they accept the library's reference answers and explain wrong ones."""

from __future__ import annotations

import math

import numpy as np

from dlcourse import compute
from dlcourse.checks.lab12 import (check_combine_gradients, check_compute_estimate, check_ddp_schedule,
                                   check_param_formulas, check_quantize_int8)


def test_param_formulas() -> None:
    assert check_param_formulas.evaluate(compute.conv2d_params, compute.linear_params).passed
    result = check_param_formulas.evaluate(lambda c_in, c_out, k, bias=True: c_in * c_out * k * k,
                                           compute.linear_params)
    assert result.status == "failed" and "one bias per filter" in result.hint
    assert check_param_formulas.evaluate(None, compute.linear_params).status == "not_attempted"
    assert "should be a function" in check_param_formulas.evaluate(3, compute.linear_params).message


def test_compute_estimate() -> None:
    def hours(flops, peak, util):
        return flops / (peak * util) / 3600

    assert check_compute_estimate.evaluate(compute.training_flops, hours).passed
    assert "4·N" in check_compute_estimate.evaluate(lambda n, d: 2 * n * d, hours).hint
    assert "3,600" in check_compute_estimate.evaluate(compute.training_flops,
                                                      lambda f, p, u: f / (p * u)).hint
    assert check_compute_estimate.evaluate(compute.training_flops, lambda f, p, u: "soon").status == "failed"


def test_combine_gradients() -> None:
    def weighted(grads, sizes):
        return sum(n * g for n, g in zip(sizes, grads)) / sum(sizes)

    assert check_combine_gradients.evaluate(weighted).passed
    plain = check_combine_gradients.evaluate(lambda grads, sizes: np.mean(grads, axis=0))
    assert plain.status == "failed" and "biased" in plain.hint and "[64, 36]" in plain.message
    assert check_combine_gradients.evaluate(lambda grads, sizes: grads[0]).status == "failed"


def test_ddp_schedule() -> None:
    def right(n, b, w, a=1):
        per_rank = math.ceil(n / w)
        return b * w * a, per_rank, math.ceil(per_rank / b)

    assert check_ddp_schedule.evaluate(right).passed
    dropped = check_ddp_schedule.evaluate(lambda n, b, w, a=1: (b * w * a, n // w, math.ceil((n // w) / b)))
    assert dropped.status == "failed" and "samples_per_rank" in dropped.message and "repeats" in dropped.hint
    assert "three integers" in check_ddp_schedule.evaluate(lambda n, b, w, a=1: b * w * a).message


def test_quantize_int8() -> None:
    def right(w):
        scale = float(np.abs(w).max()) / 127
        return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale

    assert check_quantize_int8.evaluate(right).passed
    truncated = check_quantize_int8.evaluate(lambda w: ((w / (np.abs(w).max() / 127)).astype(np.int8),
                                                        float(np.abs(w).max() / 127)))
    assert truncated.status == "failed" and "NEAREST" in truncated.hint
    floats = check_quantize_int8.evaluate(lambda w: (np.round(w / (np.abs(w).max() / 127)), float(np.abs(w).max() / 127)))
    assert "int8" in floats.message
    assert "pair" in check_quantize_int8.evaluate(lambda w: w).message
