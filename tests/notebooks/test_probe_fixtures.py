"""The one probed nbval run of each solution fails when it should: deliberately broken notebooks.

The broken notebooks use lab 00's real check (exercise 00.2) and go through exactly the suite's
own path: tests/notebooks/test_solutions.py collected by a pytest in a subprocess, pointed at a
folder of fixtures with --solutions-dir. A fair notebook passes; a wrong answer that its check
passes, a stored output that no longer matches, a cell that raises and a missing key metric each
fail, naming the cell and the reason. The unsolved run is shown failing on a lab that raises.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from conftest import ROOT, run_notebook
from dlcourse.notebooks import build_lab, write
from test_labs import assert_runs_unsolved

pytestmark = [pytest.mark.notebook, pytest.mark.lab("00")]

RIGHT = "return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))"
SOLUTION = f"def dense_param_count(sizes):\n    ### BEGIN SOLUTION\n    {RIGHT}\n    ### END SOLUTION"
# A cell that is right whatever its solution region holds, so the check passes every variant.
ALWAYS_RIGHT = SOLUTION + f"\n\ndef dense_param_count(sizes):  # overrides the region above\n    {RIGHT}"
CHECK = "from dlcourse.checks.lab00 import check_dense_param_count\n\ncheck_dense_param_count(dense_param_count)"


def _stored(source: str, text: str) -> object:
    """A code cell that ran once and printed `text` (nbval compares it)."""
    cell = new_code_cell(source, execution_count=1)
    cell.outputs = [new_output("stream", name="stdout", text=text)]
    return cell


def _notebook(exercise: str = SOLUTION, printed: str = "4\n", extra: str | None = None, metric: bool = True):
    cells = [new_code_cell("FAST = True", metadata={"tags": ["parameters"]}),
             _stored("print(2 + 2)", printed),
             new_code_cell(exercise, metadata={"dlcourse": {"exercise": "00.2"}}),
             new_code_cell(CHECK, metadata={"dlcourse": {"check": "00.2"}})]
    if extra:
        cells.append(new_code_cell(extra))
    if metric:
        cells.append(new_code_cell('from dlcourse.runner import record_metric\n\nrecord_metric("fixture", 1)'))
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


FIXTURES = {
    "00_fair": _notebook(),
    "00_wrong_answer_passes": _notebook(exercise=ALWAYS_RIGHT),
    "00_stale_output": _notebook(printed="5\n"),
    "00_cell_raises": _notebook(extra="1 / 0"),
    "00_no_metric": _notebook(metric=False),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """{fixture: the failure texts of its cells} from one pytest run of the suite's probed path."""
    folder = tmp_path_factory.mktemp("probe-fixtures")
    for name, nb in FIXTURES.items():
        write(nb, folder / "solutions" / f"{name}.ipynb")
    report = folder / "report.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "tests" / "notebooks" / "test_solutions.py"), "-m", "notebook",
         "--solutions-dir", str(folder / "solutions"), f"--junitxml={report}", "-p", "no:cacheprovider", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "DLCOURSE_FAST": "1"})
    assert report.is_file(), f"the fixture run wrote no report: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    found: dict[str, list[str]] = {name: [] for name in FIXTURES}
    cases = list(ET.parse(report).iter("testcase"))
    for case in cases:
        notebook = next(name for name in FIXTURES if f"{name}.ipynb" in case.get("file", "") + case.get("classname", ""))
        found[notebook] += [(f.get("message", "") + "\n" + (f.text or "")) for f in case if f.tag in ("failure", "error")]
    assert len(cases) >= 5 * 5, f"expected the cells of five notebooks, got {len(cases)}: {done.stdout[-3000:]}"
    return found


def test_a_fair_notebook_passes(outcomes) -> None:
    assert outcomes["00_fair"] == []


def test_a_wrong_answer_that_its_check_passes_fails_the_run(outcomes) -> None:
    failures = "\n".join(outcomes["00_wrong_answer_passes"])
    assert "00.2 forgot the biases: expected failed, got passed" in failures
    assert "00.2 gave the input layer biases too: expected failed, got passed" in failures
    assert "00.2 lab stub: expected not_attempted, got passed" in failures


def test_a_stored_output_that_no_longer_matches_fails_the_run(outcomes) -> None:
    failures = outcomes["00_stale_output"]
    assert len(failures) == 1 and "Cell outputs differ" in failures[0] and "5" in failures[0]


def test_a_cell_that_raises_fails_the_run(outcomes) -> None:
    failures = outcomes["00_cell_raises"]
    assert len(failures) == 1 and "ZeroDivisionError" in failures[0]


def test_a_notebook_without_a_key_metric_fails_the_run(outcomes) -> None:
    failures = outcomes["00_no_metric"]
    assert len(failures) == 1 and "records no key metric" in failures[0]


@pytest.mark.parametrize("after, fails", [
    ("print(dense_param_count([3, 2]))", True),  # a later cell that needs the exercise, unguarded
    ("print('the exercise is not needed here')", False),
])
def test_the_unsolved_run_fails_on_a_lab_that_raises(tmp_path: Path, after: str, fails: bool) -> None:
    lab = build_lab(_notebook(extra=after))
    write(lab, tmp_path / "00_fixture.ipynb")
    result = run_notebook(tmp_path / "00_fixture.ipynb", tmp_path / "executed.ipynb")
    if fails:
        with pytest.raises(AssertionError, match="fails when unsolved: .*NotImplementedError"):
            assert_runs_unsolved(result, "00_fixture.ipynb")
    else:
        assert_runs_unsolved(result, "00_fixture.ipynb")
