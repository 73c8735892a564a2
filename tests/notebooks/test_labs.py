"""labs/ is generated from solutions/ without drift, ships clean, and runs unsolved without errors.

Each student lab runs once, as it ships (unsolved), collected by tests/conftest.py's LabsModule:
one nbval test per cell, so a cell that raises fails, and a last cell that fails unless every
check said "not attempted yet". tests/notebooks/test_probe_fixtures.py shows both failing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import LABS_DIR, ROOT, SOLUTIONS
from dlcourse.notebooks import BEGIN, build_labs, find_exercises, read


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
