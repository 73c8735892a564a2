"""dlcourse.exercises: the probe notebook is built right, and `problems` catches unfair checks."""

from __future__ import annotations

from nbformat.v4 import new_output

from conftest import ROOT
from dlcourse.check import CheckResult
from dlcourse.exercises import Probe, probe_notebook, problems, verdicts
from dlcourse.notebooks import find_exercises, read

LAB00 = ROOT / "solutions" / "00_setup.ipynb"


def test_probe_notebook_inserts_stub_wrong_and_restore_cells() -> None:
    solution = read(LAB00)
    probed, probes = probe_notebook(solution, "00")
    kinds = [(p.exercise, p.kind) for p in probes]
    assert kinds == [("00.1", "solution"), ("00.1", "stub"), ("00.1", "wrong"), ("00.1", "wrong"),
                     ("00.2", "solution"), ("00.2", "stub"), ("00.2", "wrong"), ("00.2", "wrong")]
    added = len(probed.cells) - len(solution.cells)
    assert added == 2 * 6 + 2, "each variant is an exercise cell plus its check, then one restore per exercise"
    stub_cells = [c for c in probed.cells if c.metadata.get("dlcourse", {}).get("probe", {}).get("kind") == "stub"]
    assert any("n_sevens = None" in c.source for c in stub_cells)
    assert any("raise NotImplementedError" in c.source for c in stub_cells)
    assert len({c.id for c in probed.cells}) == len(probed.cells), "cell ids stay unique"
    assert len(find_exercises(solution)) == 2, "the solution itself is untouched"


def _answer(probed, probes, verdict_for) -> None:
    """Fake an executed notebook: each probe check cell shows verdict_for(probe)."""
    for cell in probed.cells:
        info = cell.metadata.get("dlcourse", {}).get("probe")
        if info and info["role"] == "check":
            probe = Probe(**{k: v for k, v in info.items() if k != "role"})
            status = verdict_for(probe)
            if status:
                bundle = CheckResult(probe.exercise, "t", status, "why")._repr_mimebundle_()
                cell.outputs = [new_output("display_data", data=bundle)]


def test_fair_checks_give_no_problems() -> None:
    probed, probes = probe_notebook(read(LAB00), "00")
    _answer(probed, probes, lambda p: p.expected)
    assert len(verdicts(probed)) == len(probes)
    assert problems(probed, probes) == []


def test_a_check_that_accepts_everything_is_caught() -> None:
    probed, probes = probe_notebook(read(LAB00), "00")
    _answer(probed, probes, lambda p: "passed")
    found = problems(probed, probes)
    assert "00.1 lab stub: expected not_attempted, got passed (why)" in found
    assert "00.2 forgot the biases: expected failed, got passed (why)" in found


def test_a_check_that_shows_nothing_is_caught() -> None:
    probed, probes = probe_notebook(read(LAB00), "00")
    _answer(probed, probes, lambda p: None if p.kind == "wrong" else p.expected)
    assert "00.2 forgot the biases: the check cell showed no verdict" in problems(probed, probes)
