"""Every solution notebook runs once, headless, in FAST mode, and that one run proves two things.

The run is the probed copy of the notebook, executed under nbval (collected by
tests/conftest.py's SolutionsModule, one nbval test per cell):
- every stored output that is not tagged nbval-ignore-output is reproduced exactly, and no cell
  raises;
- every exercise check is fair: it passes the solution, says "not attempted" for the lab stub and
  rejects each registered wrong answer with a sentence (probe cells assert it in the kernel), and
  the notebook records its key metric.
tests/notebooks/test_probe_fixtures.py shows, with broken notebooks, that this run fails when any
of these promises is broken.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SOLUTIONS
from dlcourse.check import registry
from dlcourse.notebooks import find_exercises, lab_number, read


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_every_exercise_registers_a_wrong_answer(path: Path) -> None:
    checks = registry(lab_number(path))
    exercises = [ex.id for ex in find_exercises(read(path))]
    assert exercises, f"{path.name} has no exercise"
    missing = [ex for ex in exercises if ex not in checks or not checks[ex].wrong_answers]
    assert missing == [], f"every exercise registers a check with at least one typical wrong answer: {missing}"


def test_there_are_solutions() -> None:
    assert SOLUTIONS and SOLUTIONS[0].name == "00_setup.ipynb"
