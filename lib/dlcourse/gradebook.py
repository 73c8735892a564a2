"""What `dlcourse grade` writes: the report (CSV/JSON), an LMS gradebook, one feedback file per student.

Reports are `dlcourse.grading.StudentReport` objects (read here by attribute only, so this module
does not import the grader).

Gradebook layouts (``--out gradebook.csv``, ``--lms``):

* ``canvas`` (default): ``Student, ID, SIS User ID, SIS Login ID, Section``, then one column per
  exercise (``Lab 00 · 00.1 Count the sevens``) and ``Lab 00 total``, each holding points (Canvas
  offers to create each column it does not know as a new assignment when you import).
  ``ID`` is Canvas's user id, read from file names in Canvas's "Download Submissions" form
  (``name_12345_67890_file.ipynb``; ``name_LATE_12345_...``); other names leave it empty, to fill
  in (or match by ``SIS Login ID``) before importing.
* ``gradescope``: ``Name, SID, Email``, one column per exercise, ``Total Score``: what Gradescope's
  score import maps (it matches students by Email or SID, which you fill in from your roster when
  the file names do not carry them).
"""

from __future__ import annotations

import csv
import html
import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dlcourse.errors import DlcourseError

CSV_FIELDS = ("student", "file", "exercise", "title", "status", "points", "max_points", "detail", "hint")
LMS_LAYOUTS = ("canvas", "gradescope")
CANVAS_NAME = re.compile(r"^(?P<name>[^_]+)_(?:late_)?(?P<id>\d+)_\d+_", re.IGNORECASE)
STATUS_WORDS = {"passed": "passed", "failed": "not yet", "not_attempted": "not attempted", "error": "error",
                "timeout": "timed out", "memory": "ran out of memory", "tampered": "tampered"}


class GradingError(DlcourseError):
    """The grader itself cannot start (unknown lab, no skeleton, a bad output name)."""


def _number(value: float) -> str:
    return f"{value:g}"


# ------------------------------------------------------------------------------ report

def report_rows(reports: list[Any]) -> list[dict[str, Any]]:
    """CSV rows: one per student and exercise, then the student's total (exercise 'total')."""
    rows = []
    for r in reports:
        rows += [{"student": r.student, "file": r.file, **{k: v for k, v in asdict(row).items() if k != "hidden"}}
                 for row in r.exercises]
        rows.append({"student": r.student, "file": r.file, "exercise": "total", "title": "",
                     "status": f"{r.passed}/{r.total}", "points": _number(r.points),
                     "max_points": _number(r.max_points), "hint": "",
                     "detail": r.error or f"{r.passed} of {r.total} passed, {_number(r.points)} of "
                                          f"{_number(r.max_points)} points"})
    return rows


def report_json(reports: list[Any], lab: str) -> dict:
    return {"lab": str(lab).zfill(2), "students": [
        {**{k: v for k, v in asdict(r).items() if k != "exercises"}, "passed": r.passed, "total": r.total,
         "points": r.points, "max_points": r.max_points,
         "exercises": [asdict(row) for row in r.exercises]} for r in reports]}


def write_report(reports: list[Any], lab: str, out: Path) -> None:
    """The full report: one row per student and exercise (CSV) or everything (JSON)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".json":
        out.write_text(json.dumps(report_json(reports, lab), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    elif out.suffix.lower() == ".csv":
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(report_rows(reports))
    else:
        raise GradingError(f"{out.name}: the report must end in .csv or .json.")


def format_summary(reports: list[Any]) -> str:
    """A terminal table: one line per student with the status of each exercise and the points."""
    if not reports:
        return "no submissions graded."
    ids = [row.exercise for row in reports[0].exercises]
    width = max(len("student"), *(len(r.student) for r in reports))
    short = {"passed": "pass", "failed": "FAIL", "not_attempted": "-", "error": "ERR", "timeout": "TIME",
             "memory": "MEM", "tampered": "TAMPER"}
    lines = [f"{'student':<{width}}  " + "  ".join(f"{i:>6}" for i in ids) + "   total   points"]
    for r in reports:
        cells = "  ".join(f"{short.get(row.status, row.status):>6}" for row in r.exercises)
        lines.append(f"{r.student:<{width}}  {cells}   {r.passed}/{r.total}     {_number(r.points)}/{_number(r.max_points)}"
                     + (f"   ({r.error})" if r.error else ""))
    if any(not getattr(r, "sandbox", "bwrap").startswith("bwrap") for r in reports):
        lines.append("graded WITHOUT the sandbox (--no-sandbox): the report records it for each student.")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ gradebook

def canvas_id(student: str) -> str:
    """Canvas's user id from a file named the way Canvas's "Download Submissions" names it, else ''."""
    match = CANVAS_NAME.match(Path(student).name)
    return match.group("id") if match else ""


def gradebook_rows(reports: list[Any], lab: str, lms: str = "canvas") -> list[list[str]]:
    """Header and one row per student, in the column layout of ``lms`` (see the module docstring)."""
    if lms not in LMS_LAYOUTS:
        raise GradingError(f"--lms {lms}: the gradebook layouts are {', '.join(LMS_LAYOUTS)}.")
    lab = str(lab).zfill(2)
    exercises = [(row.exercise, row.title) for row in reports[0].exercises] if reports else []
    columns = [f"Lab {lab} · {exercise_id} {title}".strip() for exercise_id, title in exercises]
    if lms == "canvas":
        rows = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *columns, f"Lab {lab} total"]]
        for r in reports:
            rows.append([r.student, canvas_id(r.student), "", "", "",
                         *(_number(row.points) for row in r.exercises), _number(r.points)])
    else:
        rows = [["Name", "SID", "Email", *columns, "Total Score"]]
        for r in reports:
            rows.append([r.student, "", "", *(_number(row.points) for row in r.exercises), _number(r.points)])
    return rows


def write_gradebook(reports: list[Any], lab: str, out: Path, lms: str = "canvas") -> None:
    if out.suffix.lower() != ".csv":
        raise GradingError(f"{out.name}: the gradebook must end in .csv.")
    rows = gradebook_rows(reports, lab, lms)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


# ------------------------------------------------------------------------------ feedback

def feedback_markdown(report: Any, lab: str) -> str:
    """One student's feedback: each exercise's status, the check's sentence and its hint.

    A failed hidden check is named (which exercise) but not described."""
    lab = str(lab).zfill(2)
    lines = [f"# Lab {lab}: feedback for {report.student}", "",
             f"**{_number(report.points)} of {_number(report.max_points)} points** "
             f"({report.passed} of {report.total} exercises passed).", ""]
    if report.error:
        lines += [f"The grader could not grade this file: {report.error}", ""]
    lines += ["| exercise | status | points |", "|---|---|---|"]
    for row in report.exercises:
        status = STATUS_WORDS.get(row.status, row.status) + (" (a grading check)" if row.hidden else "")
        lines.append(f"| {row.exercise} {row.title} | {status} | {_number(row.points)}/{_number(row.max_points)} |")
    lines.append("")
    for row in report.exercises:
        lines += [f"## {row.exercise} {row.title}: {STATUS_WORDS.get(row.status, row.status)}", "", row.detail or "—"]
        if row.hint:
            lines += ["", f"*Hint:* {row.hint}"]
        lines.append("")
    return "\n".join(lines)


def feedback_html(report: Any, lab: str) -> str:
    body = html.escape(feedback_markdown(report, lab))
    return f"<!doctype html><meta charset='utf-8'><title>Lab {lab}: {html.escape(report.student)}</title><pre>{body}</pre>\n"


def write_feedback(reports: list[Any], lab: str, folder: Path, fmt: str = "md") -> list[Path]:
    """One file per student in ``folder`` (STUDENT.md, or STUDENT.html with ``fmt='html'``)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for report in reports:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", report.student) or "student"
        path = folder / f"{name}.{fmt}"
        path.write_text(feedback_html(report, lab) if fmt == "html" else feedback_markdown(report, lab),
                        encoding="utf-8")
        written.append(path)
    return written
