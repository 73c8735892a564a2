"""The lab 13 checks, called directly: they accept the library's reference answers and explain wrong ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlcourse import compute, ddp_train
from dlcourse.checks.lab13 import (check_chinchilla, check_combine_gradients, check_compute_estimate,
                                   check_ddp_schedule, check_energy, check_memory, check_param_formulas,
                                   check_ring_all_reduce, check_serving_cost)


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


def _cell(lab: str, marker: str, exercise: bool = False) -> str:
    """The source of the solution's code cell that contains `marker`: an exercise cell, or one that is not."""
    from conftest import ROOT
    from dlcourse.notebooks import read

    [path] = (ROOT / "solutions").glob(f"{lab}_*.ipynb")
    return next(c.source for c in read(path).cells if c.cell_type == "code" and marker in c.source
                and ("BEGIN SOLUTION" in c.source) == exercise)


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


def _ring_variant(label: str | None, kind: str = "wrong") -> dict:
    """The notebook's exercise 13.10 cell with a registered answer in place of the solution (None: the solution)."""
    from dlcourse.notebooks import replace_regions

    source = _cell("13", "def ring_all_reduce(", exercise=True)
    if label is not None:
        answers = check_ring_all_reduce.wrong_answers if kind == "wrong" else check_ring_all_reduce.accepted_answers
        source = replace_regions(source, answers[label], "13.10")
    namespace = {"np": np, "math": math}
    exec(source, namespace)
    return namespace


def test_ring_all_reduce_reference() -> None:
    rng = np.random.default_rng(0)
    for world, n in [(1, 5), (2, 7), (3, 10), (6, 41)]:
        grads = [rng.normal(size=n).astype(np.float32) for _ in range(world)]
        before = [g.copy() for g in grads]
        averaged, sent = ddp_train.ring_all_reduce(grads)
        assert all(np.array_equal(g, b) for g, b in zip(grads, before))  # the inputs are not touched
        assert all(v.dtype == np.float32 and np.allclose(v, np.mean(before, axis=0), atol=1e-6) for v in averaged)
        assert sum(sent) == 2 * (world - 1) * n and max(sent) <= 2 * (world - 1) * math.ceil(n / world)
        naive_avg, naive_sent = ddp_train.gather_all_reduce(grads)
        assert np.allclose(naive_avg[-1], averaged[0], atol=1e-6) and naive_sent[0] == (world - 1) * n
    with pytest.raises(ValueError, match="same length"):
        ddp_train.ring_all_reduce([np.zeros(3), np.zeros(4)])
    ring = ddp_train.ring_all_reduce_seconds(1e8, 8, 2, 25e9, 5e-6)
    assert math.isclose(ring, 14 * (5e-6 + 1e8 / 8 * 2 / 25e9))
    assert ddp_train.gather_all_reduce_seconds(1e8, 8, 2, 25e9, 5e-6) > 7 * ring  # about W times the ring


def test_ring_all_reduce_check() -> None:
    assert check_ring_all_reduce.evaluate(ddp_train.ring_all_reduce, ddp_train.ring_all_reduce_seconds).passed
    assert check_ring_all_reduce.evaluate(None, ddp_train.ring_all_reduce_seconds).status == "not_attempted"

    def summed(grads):
        averaged, sent = ddp_train.ring_all_reduce(grads)
        return [v * len(grads) for v in averaged], sent

    result = check_ring_all_reduce.evaluate(summed, ddp_train.ring_all_reduce_seconds)
    assert result.status == "failed" and "divide it by W" in result.hint
    whole = check_ring_all_reduce.evaluate(ddp_train.gather_all_reduce, ddp_train.ring_all_reduce_seconds)
    assert whole.status == "failed" and "ONE chunk" in whole.hint and "W = 3 ranks" in whole.message
    assert "a pair" in check_ring_all_reduce.evaluate(lambda grads: grads, ddp_train.ring_all_reduce_seconds).message
    assert "whole numbers" in check_ring_all_reduce.evaluate(
        lambda grads: (ddp_train.ring_all_reduce(grads)[0], ["many"] * len(grads)),
        ddp_train.ring_all_reduce_seconds).message
    def latency_once(n, w, b, link, lat):
        return lat + 2 * (w - 1) * n / w * b / link

    once = check_ring_all_reduce.evaluate(ddp_train.ring_all_reduce, latency_once)
    assert once.status == "failed" and "latency once" in once.hint


def test_ring_all_reduce_registered_answers() -> None:
    """The notebook's own solution passes; every registered wrong answer fails, every accepted one passes."""
    solved = _ring_variant(None)
    assert check_ring_all_reduce.evaluate(solved["ring_all_reduce"], solved["ring_seconds"]).passed
    for kind, answers in (("wrong", check_ring_all_reduce.wrong_answers),
                          ("accepted", check_ring_all_reduce.accepted_answers)):
        for label in answers:
            ns = _ring_variant(label, kind)
            result = check_ring_all_reduce.evaluate(ns["ring_all_reduce"], ns["ring_seconds"])
            assert result.passed == (kind == "accepted"), (label, result.text())
            assert kind == "accepted" or result.message.endswith("."), label


def test_the_labs_traffic_table_runs_the_students_ring(capsys) -> None:
    """Lab 13's table of elements sent and all-reduce times prints what the student's functions compute."""
    from dlcourse.student import yours_or_reference
    from dlcourse.tables import format_table

    def table(**student) -> str:
        namespace = {"np": np, "ddp_train": ddp_train, "format_table": format_table, "bert_params": compute.bert_params,
                     "yours_or_reference": yours_or_reference, "full_grad": np.zeros(1001, dtype=np.float32), **student}
        exec(_cell("13", "naive ÷ ring"), namespace)
        return capsys.readouterr().out

    right = table(ring=ddp_train.ring_all_reduce, ring_seconds=ddp_train.ring_all_reduce_seconds)
    whole = _ring_variant("whole vectors passed round the ring")["ring_all_reduce"]
    one_phase = _ring_variant("ring_seconds: one phase only")["ring_seconds"]
    wrong = table(ring=whole, ring_seconds=one_phase)
    assert right != wrong
    assert right.count("1.0×") == 1 and wrong.count("1.0×") == 5  # whole vectors: no better than the naive scheme
    seconds = ddp_train.ring_all_reduce_seconds(compute.bert_params()["total"], 8, 2, 25e9, 5e-6)
    assert f"{seconds * 1e3:,.1f}" in right and f"{seconds / 2 * 1e3:,.1f}" in wrong


@pytest.mark.usefixtures("shared_data")
def test_the_labs_ring_on_real_gradients_runs_the_students_ring(capsys) -> None:
    """The ring on the CNN's shard gradients: the reference gives the full-batch gradient; a ring that sums does
    not, and the cell says so."""
    import torch

    from dlcourse.data import load_mnist
    from dlcourse.student import yours_or_reference
    from dlcourse.tables import format_table

    def run(ring) -> str:
        namespace = {"np": np, "torch": torch, "load_mnist": load_mnist, "SEED": 0, "format_table": format_table,
                     "yours_or_reference": yours_or_reference, "ring_all_reduce": ring,
                     "combine_gradients": ddp_train.combine_gradients}
        exec(_cell("13", "ddp_train.shard_gradients("), namespace)
        return capsys.readouterr().out

    assert "every rank holds the full-batch gradient" in run(ddp_train.ring_all_reduce)
    assert "differs from the full-batch gradient" in run(_ring_variant("summed, not averaged")["ring_all_reduce"])
