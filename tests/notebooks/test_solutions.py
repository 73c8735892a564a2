"""Every solution notebook runs headless in FAST mode (papermill) and every exercise check is fair:
it passes the solution and rejects the lab stub and each registered wrong answer with a sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import RUNS, SOLUTIONS, run_notebook
from dlcourse.exercises import probe_notebook, problems
from dlcourse.notebooks import lab_number, read, write
from dlcourse.runner import metrics

pytestmark = pytest.mark.notebook


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_runs_and_checks_are_fair(path: Path, shared_data: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLCOURSE_DATA", str(shared_data))
    probed, probes = probe_notebook(read(path), lab_number(path))
    source = tmp_path / path.name  # a different working directory from solutions/, on purpose
    write(probed, source)
    result = run_notebook(source, RUNS / f"probed-{path.name}")
    assert result.ok, f"{path.name} failed in FAST mode: {result.error} (see {result.output})"
    executed = read(result.output)
    assert problems(executed, probes) == []
    assert {p.exercise for p in probes if p.kind == "wrong"} == {p.exercise for p in probes}, \
        "every exercise registers at least one typical wrong answer"
    assert metrics(executed), f"{path.name} records no key metric (dlcourse.runner.record_metric)"


def test_there_are_solutions() -> None:
    assert SOLUTIONS and SOLUTIONS[0].name == "00_setup.ipynb"
