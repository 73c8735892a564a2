"""labs/ is generated from solutions/ without drift, ships clean, and runs unsolved without errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import LABS_DIR, NOTEBOOK_TIMES, ROOT, RUNS, SOLUTIONS, run_notebook
from dlcourse.notebooks import BEGIN, build_labs, find_exercises, read
from dlcourse.runner import RunResult, check_results


def test_labs_match_solutions() -> None:
    drift = build_labs(ROOT / "solutions", LABS_DIR, check=True)
    assert drift == [], f"labs/ differs from what solutions/ generates for {drift}: run `make labs`"


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_lab_ships_without_outputs_or_solutions(path: Path) -> None:
    lab = read(LABS_DIR / path.name)
    code = [c for c in lab.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert all(BEGIN not in c.source for c in code)
    assert [e.id for e in find_exercises(lab, solution=False)] == [e.id for e in find_exercises(read(path))]


def assert_runs_unsolved(result: RunResult, name: str) -> None:
    """An unsolved lab must run to the end, and every check in it must say "not attempted"."""
    assert result.ok, f"the student version of {name} fails when unsolved: {result.error}"
    verdicts = check_results(read(result.output))
    assert verdicts, f"the student version of {name} showed no check verdict"
    assert all(v["status"] == "not_attempted" for v in verdicts), verdicts


@pytest.mark.notebook
@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_unsolved_lab_runs_and_says_not_attempted(path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch,
                                                  request: pytest.FixtureRequest) -> None:
    monkeypatch.setenv("DLCOURSE_DATA", str(shared_data))
    result = run_notebook(LABS_DIR / path.name, RUNS / f"lab-{path.name}")
    request.config.stash[NOTEBOOK_TIMES][(path.stem, "lab, unsolved")] = result.seconds
    assert_runs_unsolved(result, path.name)
