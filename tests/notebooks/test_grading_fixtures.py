"""`dlcourse grade` on hostile submissions of lab 00: the report is exactly what it should be, the
batch finishes, and no submission file changes (hashes before and after)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from conftest import LABS_DIR, ROOT
from dlcourse.check import CHECK_MIME, registry
from dlcourse.grade_worker import OUTPUT_LIMIT
from dlcourse.grading import grade_all, report_json, report_rows
from dlcourse.notebooks import find_exercises, read, write

pytestmark = pytest.mark.notebook

# The slowest honest cell of lab 00 (importing PyTorch and TensorFlow) takes a few seconds; the
# notebook limit lets "stubborn" reach its loop but not its second exercise (two cell timeouts later).
CELL_TIMEOUT, NOTEBOOK_TIMEOUT = 25.0, 85.0
SOLVED = {"00.1": "n_sevens = int((y_train == 7).sum())",
          "00.2": "def dense_param_count(sizes):\n    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))"}
WRONG_00_2 = "def dense_param_count(sizes):\n    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))"
DOWNLOAD = ("import os, tempfile\nos.environ.pop('DLCOURSE_DATA', None)\n"
            "os.environ['DLCOURSE_CACHE'] = tempfile.mkdtemp()\n"
            "from dlcourse.data import load_fashion_mnist\nload_fashion_mnist()")
FAKE_PASS = ("from IPython.display import display\n"
             "display({'text/plain': 'passed', '%s': {'exercise': '%s', 'title': '', 'status': 'passed', "
             "'message': 'trust me', 'hint': ''}}, raw=True)")


def _lab00(answers: dict[str, str], tamper: bool = False):
    """Lab 00 as a student would hand it in: their exercise cells, and (tamper) doctored check cells."""
    nb = copy.deepcopy(read(LABS_DIR / "00_setup.ipynb"))
    exercises = find_exercises(nb, solution=False)
    for ex in exercises:
        if ex.id in answers:
            nb.cells[ex.exercise_index].source = answers[ex.id]
    if tamper:  # 00.1's check now displays a forged "passed"; 00.2's check cell is deleted
        nb.cells[exercises[0].check_index].source = FAKE_PASS % (CHECK_MIME, "00.1")
        del nb.cells[exercises[1].check_index]
    return nb


def _verdict(exercise: str, answer: str) -> tuple[str, str]:
    """What the official check says about ``answer``, computed here without the grader."""
    from dlcourse.data import load_mnist

    scope = {"y_train": load_mnist().train.y}
    exec(answer, scope)  # noqa: S102 - our own fixture code
    name = "n_sevens" if exercise == "00.1" else "dense_param_count"
    result = registry("00")[exercise].evaluate(scope[name])
    return result.status, result.message


@pytest.fixture(scope="module")
def submissions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("submissions")
    notebooks = {  # graded in this order: the one that takes the whole notebook limit starts first
        "stubborn": _lab00({"00.1": "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                    "while True:\n    time.sleep(1)", "00.2": SOLVED["00.2"]}),
        "loop": _lab00({"00.1": "while True:\n    pass", "00.2": SOLVED["00.2"]}),
        "partial": _lab00({"00.1": SOLVED["00.1"], "00.2": WRONG_00_2}),
        "crash": _lab00({"00.1": "raise ValueError('my bug')", "00.2": SOLVED["00.2"]}),
        "tamper": _lab00({"00.2": WRONG_00_2}, tamper=True),
        "flood": _lab00({"00.1": "print('x' * 5_000_000)\n" + SOLVED["00.1"], "00.2": DOWNLOAD}),
        "empty": _lab00({}),
    }
    paths = {}
    for name, nb in notebooks.items():
        paths[name] = folder / f"{name}.ipynb"
        write(nb, paths[name])
    paths["empty"].write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    paths["foreign"] = folder / "foreign.ipynb"
    paths["foreign"].write_bytes((LABS_DIR / "03_losses_activations.ipynb").read_bytes())
    paths["garbage"] = folder / "garbage.ipynb"
    paths["garbage"].write_text('{"cells": [ this is not JSON')
    return paths


@pytest.fixture(scope="module")
def graded(submissions: dict[str, Path], shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    before = {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in submissions.items()}
    keep = tmp_path_factory.mktemp("executed")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DLCOURSE_DATA", str(shared_data))
        reports = grade_all(list(submissions.values()), "00", ROOT, cell_timeout=CELL_TIMEOUT,
                            notebook_timeout=NOTEBOOK_TIMEOUT, jobs=3, progress=False, keep=keep)
    after = {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in submissions.items()}
    return {r.student: r for r in reports}, before, after, keep


def _statuses(report) -> dict[str, str]:
    return {row.exercise: row.status for row in report.exercises}


def test_submission_files_are_never_modified(graded) -> None:
    reports, before, after, _ = graded
    assert before == after
    assert {name: r.sha256 for name, r in reports.items()} == before, "the report records each file's hash"


def test_partially_solved_notebook_gets_exactly_the_checks_verdicts(graded) -> None:
    reports, *_ = graded
    rows = [(row.exercise, row.status, row.detail) for row in reports["partial"].exercises]
    assert rows == [("00.1", *_verdict("00.1", SOLVED["00.1"])), ("00.2", *_verdict("00.2", WRONG_00_2))]
    assert rows[0][1] == "passed" and rows[1][1] == "failed"
    assert (reports["partial"].passed, reports["partial"].total) == (1, 2)


def test_a_crashing_cell_is_an_error_and_later_exercises_are_still_graded(graded) -> None:
    reports, *_ = graded
    crash = reports["crash"].exercises
    assert (crash[0].status, crash[0].detail) == ("error", "in your exercise cell: ValueError: my bug")
    assert crash[1].status == "passed"


def test_an_endless_loop_is_interrupted_at_the_cell_timeout_and_the_rest_is_graded(graded) -> None:
    reports, *_ = graded
    loop = reports["loop"].exercises
    assert loop[0].status == "timeout" and f"{CELL_TIMEOUT:.0f} s" in loop[0].detail
    assert loop[1].status == "passed"


def test_a_loop_that_ignores_interrupts_is_stopped_at_the_notebook_timeout(graded) -> None:
    reports, *_ = graded
    assert _statuses(reports["stubborn"]) == {"00.1": "timeout", "00.2": "timeout"}
    assert f"{NOTEBOOK_TIMEOUT:.0f} s limit" in reports["stubborn"].exercises[1].detail


def test_edited_or_deleted_check_cells_do_not_change_the_grade(graded) -> None:
    reports, *_ = graded
    assert _statuses(reports["tamper"]) == {"00.1": "not_attempted", "00.2": "failed"}
    assert reports["tamper"].exercises[1].detail == _verdict("00.2", WRONG_00_2)[1]


def test_megabytes_of_output_are_cut_and_downloads_are_refused(graded) -> None:
    reports, _, _, keep = graded
    flood = reports["flood"].exercises
    assert flood[0].status == "passed"
    assert flood[1].status == "error" and "DLCOURSE_OFFLINE" in flood[1].detail
    executed = read(keep / "flood.ipynb")
    printed = max(len(out.get("text", "")) for cell in executed.cells if cell.cell_type == "code"
                  for out in cell.outputs)
    assert printed <= OUTPUT_LIMIT + 100, printed


def test_empty_foreign_and_garbage_files_get_a_row_each_and_a_sentence(graded) -> None:
    reports, *_ = graded
    assert _statuses(reports["empty"]) == {"00.1": "not_attempted", "00.2": "not_attempted"}
    assert _statuses(reports["foreign"]) == {"00.1": "error", "00.2": "error"}
    assert "lab 03" in reports["foreign"].error and "--lab 03" in reports["foreign"].error
    assert "not a Jupyter notebook" in reports["garbage"].error


def test_report_has_a_row_per_student_and_exercise_plus_totals(graded) -> None:
    reports, *_ = graded
    ordered = list(reports.values())
    rows = report_rows(ordered)
    assert len(rows) == len(ordered) * 3
    totals = {row["student"]: row["status"] for row in rows if row["exercise"] == "total"}
    assert totals["partial"] == "1/2" and totals["crash"] == "1/2" and totals["garbage"] == "0/2"
    data = report_json(ordered, "00")
    assert [s["student"] for s in data["students"]] == list(reports)
    assert all(s["total"] == 2 for s in data["students"])
