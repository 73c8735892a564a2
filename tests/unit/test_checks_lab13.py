"""The lab 13 checks, called directly: they accept the library's reference answers and explain wrong ones."""

from __future__ import annotations

import math

import numpy as np

from dlcourse import compute
from dlcourse.checks.lab13 import (check_chinchilla, check_combine_gradients, check_compute_estimate,
                                   check_ddp_schedule, check_energy, check_memory, check_param_formulas,
                                   check_serving_cost)


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


def test_chinchilla() -> None:
    assert check_chinchilla.evaluate(compute.chinchilla_optimal).passed
    fixed = check_chinchilla.evaluate(lambda c, r=20: compute.chinchilla_optimal(c, 20))
    assert fixed.status == "failed" and "tokens_per_param=11.5" in fixed.message
    assert "pair" in check_chinchilla.evaluate(lambda c, r=20: c).message
    n, d = compute.chinchilla_optimal(5.76e23)
    assert 65e9 < n < 75e9 and abs(d / n - 20) < 1e-9  # Chinchilla itself: 70B parameters, 1.4T tokens


def test_memory() -> None:
    assert check_memory.evaluate(compute.training_memory_bytes, compute.kv_cache_bytes_per_token).passed
    assert compute.training_memory_bytes(1) == 16
    typed = check_memory.evaluate(lambda n, **kw: 16 * n, compute.kv_cache_bytes_per_token)
    assert typed.status == "failed" and "optimizer_states=1" in typed.message
    keys_only = check_memory.evaluate(compute.training_memory_bytes, lambda layers, d, b=2: layers * d * b)
    assert keys_only.status == "failed" and "AND one value" in keys_only.hint


def test_serving_cost() -> None:
    assert check_serving_cost.evaluate(compute.serving_cost_per_million_tokens).passed
    tokens_per_s, usd = compute.serving_cost_per_million_tokens(7e9, 989e12, 0.3, 3.0)
    assert abs(tokens_per_s - 989e12 * 0.3 / 14e9) < 1e-6 and abs(usd - 3.0 / 3600 / tokens_per_s * 1e6) < 1e-12
    six = check_serving_cost.evaluate(lambda n, p, u, c: (p * u / (6 * n), c / 3600 / (p * u / (6 * n)) * 1e6))
    assert six.status == "failed" and "2·N" in six.hint


def test_energy() -> None:
    assert check_energy.evaluate(compute.facility_kwh, compute.co2_kg).passed
    no_pue = check_energy.evaluate(lambda w, n, h, pue: w * n * h / 1000, compute.co2_kg)
    assert no_pue.status == "failed" and "PUE" in no_pue.hint
    grams = check_energy.evaluate(compute.facility_kwh, lambda kwh, g: kwh * g)
    assert grams.status == "failed" and "kilograms" in grams.hint


def _cell(lab: str, marker: str) -> str:
    from conftest import ROOT
    from dlcourse.notebooks import read

    [path] = (ROOT / "solutions").glob(f"{lab}_*.ipynb")
    return next(c.source for c in read(path).cells if c.cell_type == "code" and marker in c.source
                and "BEGIN SOLUTION" not in c.source)


def test_the_labs_tables_run_the_students_functions(capsys) -> None:
    """Lab 13's serving and energy tables print what the student's functions compute."""
    from dlcourse import compute
    from dlcourse.student import yours_or_reference
    from dlcourse.tables import format_table

    def table(**student) -> str:
        a100 = compute.ACCELERATORS["A100"]
        namespace = {"compute": compute, "format_table": format_table, "yours_or_reference": yours_or_reference,
                     "_si": compute._si, "PUE": 1.2, "GRID_G_PER_KWH": 400, "a100": a100,
                     "MODEL_SHAPES": compute.MODEL_SHAPES, "ACCELERATORS": compute.ACCELERATORS,
                     "estimate_training": compute.estimate_training,
                     "mixed": compute.estimate_training(110e6, compute.bert_base_tokens(), peak_flops=a100.peak_flops,
                                                        watts=a100.watts, n_gpus=1), **student}
        exec(_cell("13", "serve(m.params"), namespace)
        exec(_cell("13", "kwh_at(chip.watts"), namespace)
        return capsys.readouterr().out

    right = table(serving_cost=compute.serving_cost_per_million_tokens, facility_kwh=compute.facility_kwh,
                  co2_kg=compute.co2_kg)
    wrong = table(serving_cost=lambda n, p, u, c: (p * u / (6 * n), c / 3600 / (p * u / (6 * n)) * 1e6),
                  facility_kwh=lambda w, n, h, pue: w * n * h / 1000, co2_kg=compute.co2_kg)
    assert right != wrong
    price = compute.serving_cost_per_million_tokens(175e9, 989e12, 0.3, 3.0)[1]
    assert f"{price:,.4f}" in right and f"{price * 3:,.4f}" in wrong
