"""`dlcourse labs new` and `dlcourse labs reset`: start a lab with the standard cells; give a
student a fresh copy of a lab without losing the one they worked in."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dlcourse.notebooks import (COLAB_SETUP, NotebookError, back_up, build_lab, dumps, lab_notebook, read,
                                validate_solution, write)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

CHECKS_TEMPLATE = '''\
"""Checks for lab {nn} ({title}).

Each check is registered with @exercise(id, title, wrong_answers=...). The test suite runs the
solution notebook and proves that every check accepts the solution, answers "not attempted yet"
for the lab's stub, and rejects every registered wrong answer with a sentence.
"""

from __future__ import annotations

from typing import Any

from dlcourse.check import expect_callable, expect_number, exercise

_CASES = (0.0, 1.5, -3.0)


@exercise("{nn}.1", "Double a number", wrong_answers={{
    "added two instead of doubling": "return x + 2",
}})
def check_double(double: Any) -> str:
    expect_callable(double, name="double")
    for x in _CASES:
        expect_number(double(x), 2 * x, name=f"double({{x}})", hint="Doubling x means multiplying it by 2.")
    return f"double(x) = 2x for all {{len(_CASES)}} test values."
'''


def _title(name: str) -> str:
    return name.replace("_", " ")


def solution_skeleton(nn: str, name: str) -> nbformat.NotebookNode:
    """A solution notebook with the standard cells and one example exercise with its check."""
    title = _title(name)
    exercise = new_code_cell(
        'def double(x: float) -> float:\n    """Twice x."""\n    ### BEGIN SOLUTION\n    return 2 * x\n'
        "    ### END SOLUTION", metadata={"dlcourse": {"exercise": f"{nn}.1"}})
    check = new_code_cell(f"from dlcourse.checks.lab{nn} import check_double\n\ncheck_double(double)",
                          metadata={"dlcourse": {"check": f"{nn}.1"}})
    nb = new_notebook(cells=[
        new_markdown_cell(f"# Lab {nn} — {title}\n\nGoal, in one line: what a student can do after this lab.\n\n"
                          "Why it matters, and the paper the main result comes from (author year)."),
        new_code_cell(COLAB_SETUP),
        new_markdown_cell("## Parameters\n\nEvery knob of the lab. `FAST` is on only in CI's quick runs "
                          "(`DLCOURSE_FAST=1`); students run in full mode, and the prose quotes full mode."),
        new_code_cell("from dlcourse.env import fast_default\n\nFAST = fast_default()  # True only in CI's quick "
                      "runs, which set $DLCOURSE_FAST; leave it as it is\nSEED = 0  # one seed makes every random "
                      "choice in the lab repeatable", metadata={"tags": ["parameters"]}),
        new_code_cell("import numpy as np\n\nfrom dlcourse.env import seed_everything\n\n"
                      'print("seeded:", ", ".join(seed_everything(SEED)))'),
        new_markdown_cell(f"## Exercise {nn}.1: double a number\n\nReplace the `raise` line with your code, run "
                          "the cell, then run the check below it."),
        exercise,
        check,
        new_markdown_cell("## Result\n\nThe lab's key number, recorded for `make course` and the CI table."),
        new_code_cell("from dlcourse.runner import record_metric\n\n# The lab's key result (e.g. test accuracy), computed "
                      "by the lab's own code, never by a student's\n# exercise: the unsolved lab must run to the end."
                      '\nrecord_metric("example", 2 * 21)'),
    ], metadata={"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
                 "language_info": {"name": "python"}})
    return nb


def new_lab(course: Path, nn: str, name: str) -> list[Path]:
    """Write solutions/NN_name.ipynb, labs/NN_name.ipynb and lib/dlcourse/checks/labNN.py; never overwrite."""
    nn = str(nn)
    if not re.fullmatch(r"\d\d", nn):
        raise NotebookError(f"The lab number must be two digits, like 13 (got {nn!r}).")
    if not _NAME.match(name):
        raise NotebookError(f"The lab name must be lower case letters, digits and _ (like attention_masks), "
                            f"not {name!r}.")
    existing = [p for p in (lab_notebook(course / "solutions", nn), lab_notebook(course / "labs", nn)) if p]
    checks = course / "lib" / "dlcourse" / "checks" / f"lab{nn}.py"
    if checks.exists():
        existing.append(checks)
    if existing:
        raise NotebookError(f"Lab {nn} already exists ({', '.join(str(p.relative_to(course)) for p in existing)}); "
                            f"pick another number, nothing was written.")
    solution_path = course / "solutions" / f"{nn}_{name}.ipynb"
    solution = solution_skeleton(nn, name)
    validate_solution(solution, solution_path)
    write(solution, solution_path)
    lab_path = course / "labs" / solution_path.name
    write(build_lab(solution), lab_path)
    checks.parent.mkdir(parents=True, exist_ok=True)
    checks.write_text(CHECKS_TEMPLATE.format(nn=nn, title=_title(name)), encoding="utf-8")
    return [solution_path, lab_path, checks]


def reset_lab(course: Path, nn: str) -> tuple[Path, Path | None]:
    """Replace labs/NN_name.ipynb with a fresh copy built from its solution.

    The current file is first copied to build/lab-backups/ with a timestamp; returns (lab, backup),
    where backup is None when the lab was already pristine (then nothing is written)."""
    nn = str(nn).zfill(2)
    solution = lab_notebook(course / "solutions", nn)
    if solution is None:
        raise NotebookError(f"There is no lab {nn} in {course / 'solutions'} to rebuild a fresh copy from.")
    pristine = dumps(build_lab(read(solution)))
    target = course / "labs" / solution.name
    if target.is_file() and target.read_text(encoding="utf-8") == pristine:
        return target, None
    backup = back_up(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(pristine, encoding="utf-8")
    return target, backup
