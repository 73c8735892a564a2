"""dlcourse labs new / labs reset: a new lab follows the conventions; a reset never loses work."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from dlcourse import cli
from dlcourse.notebooks import NotebookError, build_labs, find_exercises, read, replace_regions
from dlcourse.scaffold import new_lab, reset_lab


@pytest.fixture
def course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A course folder with lab 00's solution and lab, which the CLI sees as its checkout."""
    for folder in ("solutions", "labs"):
        (tmp_path / folder).mkdir()
        shutil.copy(ROOT / folder / "00_setup.ipynb", tmp_path / folder)
    monkeypatch.setattr(cli, "course_root", lambda: tmp_path)
    return tmp_path


def _load_checks(path: Path):
    spec = importlib.util.spec_from_file_location(f"scaffold_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_new_lab_follows_the_conventions_and_its_check_is_fair(course: Path) -> None:
    solution, lab, checks = new_lab(course, "42", "tiny_example")
    assert solution == course / "solutions" / "42_tiny_example.ipynb" and lab.is_file()
    assert build_labs(course / "solutions", course / "labs", check=True) == []  # validated, lab in sync
    nb = read(solution)
    (ex,) = find_exercises(nb)
    check = _load_checks(checks).check_double
    assert check.id == "42.1"
    source = nb.cells[ex.exercise_index].source
    for variant, expected in ((source, "passed"), (replace_regions(source, None, ex.id), "not_attempted"),
                              *((replace_regions(source, wrong, ex.id), "failed") for wrong in check.wrong_answers.values())):
        scope: dict = {}
        exec(variant, scope)  # noqa: S102 - the scaffold's own code
        assert check.evaluate(scope["double"]).status == expected, variant


@pytest.mark.parametrize("folder", ["solutions", "labs"])
def test_new_lab_runs_top_to_bottom_solved_and_unsolved(course: Path, folder: str, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    *_, checks = new_lab(course, "42", "tiny_example")
    monkeypatch.setitem(sys.modules, "dlcourse.checks.lab42", _load_checks(checks))
    scope: dict = {}
    for cell in read(course / folder / "42_tiny_example.ipynb").cells:
        if cell.cell_type == "code":
            exec(cell.source, scope)  # noqa: S102 - an unsolved lab must run without an error
    expected = "✅ passed" if folder == "solutions" else "not attempted yet"
    out = capsys.readouterr().out
    assert f"Exercise 42.1 (Double a number): {expected}" in out or \
        f"Exercise 42.1 (Double a number): ✏️ {expected}" in out, out


def test_new_lab_refuses_to_overwrite_or_bad_names(course: Path) -> None:
    with pytest.raises(NotebookError, match="Lab 00 already exists"):
        new_lab(course, "00", "again")
    with pytest.raises(NotebookError, match="two digits"):
        new_lab(course, "7", "x")
    with pytest.raises(NotebookError, match="lower case"):
        new_lab(course, "43", "Bad Name")
    assert sorted(p.name for p in (course / "solutions").iterdir()) == ["00_setup.ipynb"]


def test_reset_keeps_a_backup_of_the_students_work(course: Path, capsys: pytest.CaptureFixture) -> None:
    lab = course / "labs" / "00_setup.ipynb"
    pristine = lab.read_text()
    assert reset_lab(course, "0") == (lab, None), "an untouched lab is left alone"
    work = pristine.replace("n_sevens = None", "n_sevens = 6265")
    lab.write_text(work)
    assert cli.main(["labs", "reset", "00"]) == 0
    out = capsys.readouterr().out
    backups = list((course / "build" / "lab-backups").glob("00_setup.*.ipynb"))
    assert len(backups) == 1 and backups[0].read_text() == work and str(backups[0]) in out
    assert lab.read_text() == pristine
    assert cli.main(["labs", "reset", "00"]) == 0 and "already a fresh copy" in capsys.readouterr().out
    assert cli.main(["labs", "reset", "99"]) == 1 and "no lab 99" in capsys.readouterr().err


def test_cli_new_prints_what_it_wrote(course: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["labs", "new", "13", "more_things"]) == 0
    assert "solutions/13_more_things.ipynb" in capsys.readouterr().out
    assert cli.main(["labs", "new", "13", "more_things"]) == 1
    assert "already exists" in capsys.readouterr().err
