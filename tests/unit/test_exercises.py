"""dlcourse.exercises: the probed notebook is built right, and its in-kernel assertions catch
unfair checks (called here in-process; tests/notebooks/test_probe_fixtures.py runs them in a kernel)."""

from __future__ import annotations

import pytest

from conftest import ROOT
from dlcourse import check, probes, runner
from dlcourse.check import CheckResult
from dlcourse.exercises import IGNORE_OUTPUT, probe_notebook
from dlcourse.probes import ProbeFailure, expect_probes_complete, expect_verdict
from dlcourse.notebooks import find_exercises, read

LAB00 = ROOT / "solutions" / "00_setup.ipynb"


def _probe_info(cell) -> dict:
    return cell.metadata.get("dlcourse", {}).get("probe", {})


def _expected_kinds(exercise: str) -> list[tuple[str, str]]:
    from dlcourse.check import registry

    check = registry("00")[exercise]
    return ([(exercise, "solution"), (exercise, "stub")] + [(exercise, "wrong")] * len(check.wrong_answers)
            + [(exercise, "accepted")] * len(check.accepted_answers))


def test_probe_notebook_inserts_stub_wrong_and_restore_cells() -> None:
    solution = read(LAB00)
    probed, probes = probe_notebook(solution, "00")
    kinds = [(p.exercise, p.kind) for p in probes]
    assert kinds == _expected_kinds("00.1") + _expected_kinds("00.2")
    assert ("00.2", "wrong") in kinds and ("00.2", "accepted") in kinds
    variants = len(probes) - 2  # all but the two solutions
    added = len(probed.cells) - len(solution.cells)
    assert added == 2 * variants + 2 + 1, "each variant is an exercise cell plus its check, one restore per exercise, one last cell"
    stub_cells = [c for c in probed.cells if _probe_info(c).get("kind") == "stub"]
    assert any("n_sevens = None" in c.source for c in stub_cells)
    assert any("raise NotImplementedError" in c.source for c in stub_cells)
    assert len({c.id for c in probed.cells}) == len(probed.cells), "cell ids stay unique"
    assert len(find_exercises(solution)) == 2, "the solution itself is untouched"
    assert "expect_verdict" not in "".join(c.source for c in solution.cells)


def test_an_accepted_alternative_is_probed_and_must_pass() -> None:
    from dlcourse.check import registry

    registered = registry("00")["00.2"].accepted_answers
    probed, probes = probe_notebook(read(LAB00), "00")
    accepted = [p for p in probes if p.kind == "accepted" and p.exercise == "00.2"]
    assert [(p.label, p.expected) for p in accepted] == [(label, "passed") for label in registered]
    label, code = next(iter(registered.items()))
    cells = [c for c in probed.cells if _probe_info(c).get("kind") == "accepted" and _probe_info(c)["label"] == label]
    assert [c.metadata["dlcourse"]["probe"]["role"] for c in cells] == ["exercise", "check"]
    assert all(line.strip() in cells[0].source for line in code.splitlines()), "the answer replaces the region"
    assert cells[1].source.splitlines()[-1].endswith(f"'00.2', {label!r}, 'passed', True)")


def test_inserted_cells_are_not_compared_and_the_solutions_own_cells_keep_their_outputs() -> None:
    solution = read(LAB00)
    probed, _ = probe_notebook(solution, "00")
    inserted = [c for c in probed.cells if _probe_info(c) and _probe_info(c)["kind"] != "solution"]
    assert inserted and all(IGNORE_OUTPUT in c.metadata["tags"] and not c.outputs and c.execution_count is None
                            for c in inserted)
    own = [c for c in probed.cells if not _probe_info(c) or _probe_info(c)["kind"] == "solution"]
    assert [c.get("outputs") for c in own] == [c.get("outputs") for c in solution.cells]
    checks = [c for c in probed.cells if _probe_info(c).get("role") == "check"]
    assert all("expect_verdict(" in c.source.splitlines()[-1] for c in checks)
    assert f"expect_probes_complete({len(_expected_kinds('00.1') + _expected_kinds('00.2'))})" in probed.cells[-1].source


@pytest.fixture
def fresh_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check, "SHOWN", [])
    monkeypatch.setattr(runner, "RECORDED", [])
    monkeypatch.setattr(probes, "_answered", [])
    monkeypatch.setattr(probes, "_read", 0)


def _shown(status: str, message: str = "why", exercise: str = "00.2") -> None:
    check.SHOWN.append(CheckResult(exercise, "t", status, message))


def test_the_expected_verdicts_pass(fresh_probes) -> None:
    _shown("passed", "")
    expect_verdict("00.2", "solution", "passed", True)
    _shown("not_attempted")
    expect_verdict("00.2", "lab stub", "not_attempted")
    _shown("failed")
    expect_verdict("00.2", "forgot the biases", "failed")
    runner.RECORDED.append({"name": "x", "value": 1, "unit": ""})
    expect_probes_complete(3)


@pytest.mark.parametrize("shown, expected, message", [
    ("passed", "failed", "00.2 forgot the biases: expected failed, got passed (why)"),
    ("failed", "not_attempted", "00.2 forgot the biases: expected not_attempted, got failed (why)"),
    ("failed", "passed", "00.2 forgot the biases: expected passed, got failed (why)"),  # a rejected accepted answer
])
def test_a_check_that_gives_the_wrong_verdict_is_caught(fresh_probes, shown, expected, message) -> None:
    _shown(shown)
    with pytest.raises(ProbeFailure, match=message.replace("(", r"\(").replace(")", r"\)")):
        expect_verdict("00.2", "forgot the biases", expected)


def test_a_rejection_without_a_sentence_is_caught(fresh_probes) -> None:
    _shown("failed", "  ")
    with pytest.raises(ProbeFailure, match="rejected without a sentence"):
        expect_verdict("00.2", "forgot the biases", "failed")


def test_a_check_cell_that_shows_nothing_or_another_exercise_is_caught(fresh_probes) -> None:
    with pytest.raises(ProbeFailure, match="showed 0 verdicts"):
        expect_verdict("00.2", "forgot the biases", "failed")
    _shown("failed", exercise="00.1")
    with pytest.raises(ProbeFailure, match="verdict of exercise 00.1"):
        expect_verdict("00.2", "forgot the biases", "failed")


def test_missing_probes_or_metric_are_caught(fresh_probes) -> None:
    _shown("passed")
    expect_verdict("00.2", "solution", "passed", True)
    with pytest.raises(ProbeFailure, match="expected 2 probe verdicts, 1 check cells answered"):
        expect_probes_complete(2)
    with pytest.raises(ProbeFailure, match="records no key metric"):
        expect_probes_complete(1)
