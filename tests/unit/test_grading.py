"""dlcourse.grading without kernels: rows from the worker's records, lab checks, reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import ROOT
from dlcourse.cli import main
from dlcourse.grade_worker import TIMEOUT_ENAME, GradingClient, cell_record
from dlcourse.grading import (ExerciseRow, GradingError, StudentReport, assemble, foreign_lab, format_summary,
                              one_line, rows_from_records, skeleton_path, student_answers, student_names,
                              write_report)
from dlcourse.notebooks import find_exercises, read

TITLES = {"00.1": "Count the sevens", "00.2": "Count a network's parameters"}


def _record(role: str, exercise: str, status: str = "ok", ename: str = "", evalue: str = "",
            verdicts: list | None = None) -> dict:
    return {"cell": 0, "role": role, "exercise": exercise, "status": status, "ename": ename, "evalue": evalue,
            "verdicts": verdicts or []}


def _verdict(status: str, message: str) -> dict:
    return {"exercise": "00.1", "title": "", "status": status, "message": message, "hint": ""}


def test_rows_take_the_official_checks_verdict() -> None:
    records = [_record("exercise", "00.1"), _record("check", "00.1", verdicts=[_verdict("failed", "off by one")]),
               _record("exercise", "00.2"), _record("check", "00.2", verdicts=[_verdict("passed", "right")])]
    rows = rows_from_records(records, TITLES, {"00.1": "x", "00.2": "y"})
    assert rows == [ExerciseRow("00.1", TITLES["00.1"], "failed", "off by one", points=0.0),
                    ExerciseRow("00.2", TITLES["00.2"], "passed", "right", points=1.0)]
    weighted = rows_from_records(records, TITLES, {"00.1": "x", "00.2": "y"}, points={"00.1": 2, "00.2": 3})
    assert [(r.points, r.max_points) for r in weighted] == [(0.0, 2), (3, 3)]


def test_rows_for_missing_cells_errors_timeouts_and_runs_that_stopped() -> None:
    records = [_record("exercise", "00.1", "error", "ValueError", "bad"), _record("check", "00.1", "error", "NameError")]
    rows = rows_from_records(records, TITLES, {"00.1": "x", "00.2": "y"}, ("timeout", "ran past its 9 s limit"))
    assert (rows[0].status, rows[0].detail) == ("error", "in your exercise cell: ValueError: bad")
    assert (rows[1].status, rows[1].detail) == ("timeout", "ran past its 9 s limit")
    timed_out = rows_from_records([_record("exercise", "00.1", "error", TIMEOUT_ENAME, "past 5 s")], TITLES, {"00.1": "x"})
    assert timed_out[0].status == "timeout" and timed_out[1].status == "not_attempted"
    check_failed = rows_from_records([_record("exercise", "00.1"), _record("check", "00.1", "error", "TypeError", "no")],
                                     {"00.1": ""}, {"00.1": "x"})
    assert check_failed[0].status == "error" and "TypeError" in check_failed[0].detail


def test_lab_skeleton_answers_and_assembly() -> None:
    skeleton = read(skeleton_path(ROOT, "0"))
    solution = read(ROOT / "solutions" / "00_setup.ipynb")
    answers = student_answers(solution)
    assert set(answers) == {"00.1", "00.2"}
    graded = assemble(skeleton, {"00.2": answers["00.2"]})
    cells = find_exercises(graded, solution=False)
    assert graded.cells[cells[1].exercise_index].source == answers["00.2"]
    assert graded.cells[cells[0].exercise_index].source == skeleton.cells[cells[0].exercise_index].source
    assert graded.cells[cells[1].check_index].source == skeleton.cells[cells[1].check_index].source
    with pytest.raises(GradingError, match="no lab 77"):
        skeleton_path(ROOT, "77")


def test_odd_metadata_is_ignored_and_nothing_raises(tmp_path: Path) -> None:
    from nbformat.v4 import new_code_cell, new_notebook

    from dlcourse.grading import grade_submission

    odd = new_notebook(cells=[new_code_cell("x", metadata={"dlcourse": ["not", "a", "dict"]}),
                              new_code_cell("y", metadata={"dlcourse": {"exercise": 7}})])
    assert student_answers(odd) == {}
    skeleton = read(skeleton_path(ROOT, "00"))
    directory = tmp_path / "a_folder.ipynb"
    directory.mkdir()  # not a file at all
    report = grade_submission(directory, skeleton, TITLES, "00", cell_timeout=5, notebook_timeout=5)
    assert report.error.startswith("cannot read a_folder.ipynb") and report.total == 2


def test_foreign_lab_and_names() -> None:
    assert foreign_lab({"03.1": "", "03.2": ""}, TITLES, "00").startswith("this notebook holds the exercises of lab 03")
    assert foreign_lab({"00.1": "", "03.1": ""}, TITLES, "00") == "" and foreign_lab({}, TITLES, "00") == ""
    assert student_names([Path("a/x.ipynb"), Path("b/x.ipynb"), Path("c/y.ipynb")]) == ["a/x", "b/x", "y"]
    assert one_line("a\n b  c") == "a b c" and len(one_line("x" * 1000)) == 300


def _reports() -> list[StudentReport]:
    ok = StudentReport("ada", "ada.ipynb", exercises=[ExerciseRow("00.1", "t", "passed", "fine", points=1.0),
                                                      ExerciseRow("00.2", "u", "timeout", "slow")])
    bad = StudentReport("bob", "bob.ipynb", error="not a notebook",
                        exercises=[ExerciseRow("00.1", "t", "error", "x"), ExerciseRow("00.2", "u", "error", "x")])
    return [ok, bad]


def test_reports_as_csv_json_and_a_table(tmp_path: Path) -> None:
    write_report(_reports(), "0", tmp_path / "r.csv")
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [(r["student"], r["exercise"], r["status"]) for r in rows] == [
        ("ada", "00.1", "passed"), ("ada", "00.2", "timeout"), ("ada", "total", "1/2"),
        ("bob", "00.1", "error"), ("bob", "00.2", "error"), ("bob", "total", "0/2")]
    write_report(_reports(), "0", tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["lab"] == "00" and [(s["passed"], s["total"]) for s in data["students"]] == [(1, 2), (0, 2)]
    table = format_summary(_reports())
    assert "ada" in table and "pass" in table and "TIME" in table and "(not a notebook)" in table
    with pytest.raises(GradingError, match=".csv or .json"):
        write_report(_reports(), "00", tmp_path / "r.txt")


def test_worker_records_only_exercise_and_check_cells_and_caps_printing() -> None:
    from nbformat.v4 import new_code_cell

    plain = new_code_cell("1")
    assert cell_record(plain, 0, None) is None
    check = new_code_cell("c", metadata={"dlcourse": {"check": "00.1"}})
    record = cell_record(check, 3, {"content": {"status": "error", "ename": "E", "evalue": "v"}})
    assert record["role"] == "check" and record["status"] == "error" and record["cell"] == 3
    client = GradingClient(read(ROOT / "labs" / "00_setup.ipynb"))
    client.reset_execution_trackers()  # what execute() does before the first cell
    client.clear_before_next_output = False  # and what it does before each cell
    outs: list = []
    for _ in range(3):
        msg = {"msg_type": "stream", "header": {"msg_type": "stream"}, "parent_header": {"msg_id": "m"},
               "content": {"name": "stdout", "text": "x" * 15_000}}
        client.output(outs, msg, None, 0)
    printed = sum(len(o["text"]) for o in outs)
    assert 20_000 <= printed < 20_100 and "output cut here" in outs[-1]["text"]


def test_cli_grade_reports_a_bad_lab_in_a_sentence(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["grade", str(tmp_path / "x.ipynb"), "--lab", "77"]) == 1
    assert "There is no lab 77" in capsys.readouterr().err
