"""The one nbval run of each solution (probed) and of each lab (unsolved) fails when it should.

The broken notebooks use lab 00's real check (exercise 00.2) and go through exactly the suite's
own path: tests/notebooks/test_solutions.py and test_labs.py collected by a pytest in a
subprocess, pointed at a folder of fixtures with --solutions-dir (its labs/ beside it). A fair
notebook passes both runs; a wrong answer that its check passes, a stored output that no longer
matches, a cell that raises and a missing key metric each fail the solution run; a lab that
raises when unsolved, or whose check passes its stub, fails the unsolved run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from conftest import ROOT
from dlcourse.notebooks import build_lab, write

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


# Two notebooks per run, one fair, one with several planted faults (each kernel start costs seconds).
SOLUTION_FIXTURES = {
    "00_fair": _notebook(),
    # a wrong answer (and the stub) that its check passes, a stored output that no longer matches,
    # a cell that raises, and no key metric
    "00_broken": _notebook(exercise=ALWAYS_RIGHT, printed="5\n", extra="1 / 0", metric=False),
}
# Student versions, generated as `make labs` does: a later cell that needs the exercise, unguarded,
# and (in the broken one) a check that passes its stub.
LAB_FIXTURES = {
    "00_fair": build_lab(_notebook(extra="print('the exercise is not needed here')")),
    "00_broken": build_lab(_notebook(exercise=SOLUTION + "\n\nstudent_version = dense_param_count\n\n"
                                              + ALWAYS_RIGHT.split("\n\n", 1)[1],
                                     extra="print(student_version([3, 2]))")),
}


def _run(name: str, case: ET.Element) -> bool:
    where = case.get("file", "") + " " + case.get("classname", "") + " " + case.get("name", "")
    return f"{name}.ipynb" in where


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[str]]:
    """{(run, fixture): the failure texts of its cells} from one pytest run of the suite's own path."""
    folder = tmp_path_factory.mktemp("probe-fixtures")
    for name, nb in SOLUTION_FIXTURES.items():
        write(nb, folder / "solutions" / f"{name}.ipynb")
    for name, nb in LAB_FIXTURES.items():
        write(nb, folder / "labs" / f"{name}.ipynb")
    report = folder / "report.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "tests" / "notebooks" / "test_solutions.py"),
         str(ROOT / "tests" / "notebooks" / "test_labs.py"), "-m", "notebook", "--solutions-dir", str(folder / "solutions"),
         f"--junitxml={report}", "-p", "no:cacheprovider", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "DLCOURSE_FAST": "1"})
    assert report.is_file(), f"the fixture run wrote no report: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    found: dict[tuple[str, str], list[str]] = {}
    for case in ET.parse(report).iter("testcase"):
        run = "solution" if "test_solutions" in case.get("classname", "") else "lab"
        names = SOLUTION_FIXTURES if run == "solution" else LAB_FIXTURES
        name = next(n for n in names if _run(n, case))
        found.setdefault((run, name), []).extend(
            (f.get("message", "") + "\n" + (f.text or "")) for f in case if f.tag in ("failure", "error"))
    assert set(found) == {("solution", n) for n in SOLUTION_FIXTURES} | {("lab", n) for n in LAB_FIXTURES}, \
        f"not every fixture ran: {sorted(found)}: {done.stdout[-3000:]}"
    return found


def test_a_fair_notebook_passes_both_runs(outcomes) -> None:
    assert outcomes[("solution", "00_fair")] == [] and outcomes[("lab", "00_fair")] == []


def _failures(outcomes, run: str, *needles: str) -> list[str]:
    """The failure texts of the broken fixture's run that mention every needle."""
    return [text for text in outcomes[(run, "00_broken")] if all(needle in text for needle in needles)]


def test_the_broken_notebook_fails_once_for_each_planted_fault(outcomes) -> None:
    from dlcourse.check import registry

    wrong = len(registry("00")["00.2"].wrong_answers)  # each passes, and so does the stub
    assert len(outcomes[("solution", "00_broken")]) == wrong + 1 + 1 + 1 + 1
    assert len(outcomes[("lab", "00_broken")]) == 1 + 1


def test_a_wrong_answer_that_its_check_passes_fails_the_run(outcomes) -> None:
    assert _failures(outcomes, "solution", "00.2 forgot the biases: expected failed, got passed")
    assert _failures(outcomes, "solution", "00.2 gave the input layer biases too: expected failed, got passed")
    assert _failures(outcomes, "solution", "00.2 lab stub: expected not_attempted, got passed")


def test_a_stored_output_that_no_longer_matches_fails_the_run(outcomes) -> None:
    assert _failures(outcomes, "solution", "Cell outputs differ", "print(2 + 2)")


def test_a_cell_that_raises_fails_the_run(outcomes) -> None:
    assert _failures(outcomes, "solution", "ZeroDivisionError")


def test_a_notebook_without_a_key_metric_fails_the_run(outcomes) -> None:
    assert _failures(outcomes, "solution", "records no key metric")


def test_an_unsolved_lab_that_raises_fails_the_unsolved_run(outcomes) -> None:
    assert _failures(outcomes, "lab", "NotImplementedError", "Exercise 00.2")


def test_a_check_that_passes_its_stub_fails_the_unsolved_run(outcomes) -> None:
    assert _failures(outcomes, "lab", "every check should say not attempted, but 00.2: passed")
