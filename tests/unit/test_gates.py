"""dlcourse.gates: bounds declared beside record_metric, and the full-mode outputs stored in
solutions/ meet them (no notebook runs here: the stored outputs are read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SOLUTIONS
from dlcourse.gates import Gate, declared_bounds, describe, gates
from dlcourse.notebooks import read
from dlcourse.runner import METRIC_MIME, RunResult, cell_payloads, missed_bounds

# The labs whose point is a result, and the bounds the course promises for them (issue 16).
PROMISED = {
    "02": {"training accuracy of your MLP on your engine": {"at_least": 0.95}},
    "05": {"test accuracy": {"at_least": 0.97}},
    "07": {"test accuracy": {"at_least": 0.99}},
    "08": {"MNIST test accuracy": {"at_least": 0.99}},
    "10": {"sorting token accuracy": {"at_least": 0.95}},
    "11": {"held-out masked-character loss": {"at_most": 1.7}, "lead over the best baseline": {"at_least": 0.0}},
    "13": {"ddp_gradient_identity_max_abs_diff": {"at_most": 1e-6}},
    "15": {"best fine-tuned test accuracy, all labels": {"at_least": 0.8}},  # above both baselines (issue 21)
}


def test_a_gate_says_whether_a_value_meets_its_bound() -> None:
    assert Gate("acc", 0.98, 0.97, None).met is True
    assert Gate("acc", "0.9612", 0.97, None).met is False  # a value recorded as formatted text still counts
    assert Gate("loss", 1.8, None, 1.7).met is False and Gate("loss", 1.7, None, 1.7).met is True
    assert Gate("acc", "n/a", 0.97, None).met is None
    assert Gate("x", 0.5, 0.0, 1.0).bound == "≥ 0 and ≤ 1"
    assert Gate("acc", 0.96, 0.97, None).sentence() == "acc is 0.96, which misses its bound ≥ 0.97"


def test_course_table_shows_the_bound_and_enforces_it_only_in_full_mode() -> None:
    metric = {"name": "test accuracy", "value": 0.96, "unit": "", "at_least": 0.97}
    assert describe(metric, fast=False) == "test accuracy = 0.96 [≥ 0.97: MISSED]"
    assert describe(metric, fast=True) == "test accuracy = 0.96 [≥ 0.97: full mode only]"
    assert describe({"name": "n", "value": 3, "unit": "s"}, fast=False) == "n = 3 s"
    full = RunResult("05", "ok", 1.0, 5, 5, "", "", Path("x"), metrics=[metric], fast=False)
    assert missed_bounds([full]) == ["lab 05: test accuracy is 0.96, which misses its bound ≥ 0.97."]
    assert missed_bounds([RunResult("05", "ok", 1.0, 5, 5, "", "", Path("x"), metrics=[metric], fast=True)]) == []


def test_declared_bounds_are_read_from_the_source_and_must_be_literals() -> None:
    source = 'x = 1\nrecord_metric("acc", round(a, 4), at_least=0.97)\nrecord_metric("other", 3)\n'
    assert declared_bounds(source) == [("acc", {"at_least": 0.97})]
    assert declared_bounds('runner.record_metric("l", v, "nats", at_most=1.7)') == [("l", {"at_most": 1.7})]
    with pytest.raises(ValueError, match="as literals"):
        declared_bounds('record_metric("acc", a, at_least=best)')


def _stored_gates(path: Path) -> list[tuple[str, dict, Gate | None]]:
    """(name, declared bounds, the stored full-mode gate or None) for each bound the notebook declares."""
    found = []
    for cell in read(path).cells:
        if cell.cell_type != "code":
            continue
        stored = {m["name"]: m for m in cell_payloads(cell, METRIC_MIME)}
        for name, bounds in declared_bounds(cell.source):
            metric = stored.get(name)
            found.append((name, bounds, None if metric is None else gates([{**metric, **bounds}])[0]))
    return found


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_stored_full_mode_results_meet_their_bounds(path: Path) -> None:
    declared = _stored_gates(path)
    lab = path.name[:2]
    assert {name: bounds for name, bounds, _ in declared} == PROMISED.get(lab, {}), \
        f"{path.name} declares other bounds than the course promises"
    for name, bounds, gate in declared:
        assert gate is not None, f"{path.name} stores no full-mode output for {name!r}: run `dlcourse labs refresh {lab}` (full mode)"
        assert gate.met, f"{path.name}'s stored full-mode result misses its bound: {gate.sentence()}"
