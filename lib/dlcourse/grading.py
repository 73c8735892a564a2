"""`dlcourse grade`: grade a class's lab notebooks without trusting them and without babysitting.

For each submission the grader

1. reads the file (never writes it) and takes only the student's exercise cells, found by the
   stable id in their metadata (``{"dlcourse": {"exercise": "NN.k"}}``);
2. puts them into the official lab skeleton (labs/NN_name.ipynb), whose check cells are the
   official ones, so a student who deletes or edits a check cell cannot change the grade;
3. runs that notebook on a temporary copy, in a fresh kernel, in FAST mode, with
   ``DLCOURSE_OFFLINE=1`` (the data loader refuses to download), in a worker process
   (`dlcourse.grade_worker`) that interrupts a cell past the per-cell limit and is killed, kernel
   and all, past the per-notebook limit;
4. reads each official check cell's verdict: passed, failed (with the check's one-line reason),
   not attempted, error (the exception) or timeout.

The result is one row per student and exercise plus a per-student total, as CSV or JSON.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nbformat import NotebookNode

from dlcourse.errors import DlcourseError
from dlcourse.grade_worker import TIMEOUT_ENAME
from dlcourse.launch import ProcessTree
from dlcourse.notebooks import NotebookError, find_exercises, lab_notebook, meta, read, write

STATUSES = ("passed", "failed", "not_attempted", "error", "timeout")
DETAIL_LIMIT = 300  # characters of a reason kept in the report


class GradingError(DlcourseError):
    """The grader itself cannot start (unknown lab, no skeleton)."""


@dataclass
class ExerciseRow:
    exercise: str
    title: str
    status: str
    detail: str = ""


@dataclass
class StudentReport:
    student: str
    file: str
    sha256: str = ""
    seconds: float = 0.0
    error: str = ""  # a problem with the whole file (not a notebook, another lab, ...)
    exercises: list[ExerciseRow] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(row.status == "passed" for row in self.exercises)

    @property
    def total(self) -> int:
        return len(self.exercises)


def one_line(text: str, limit: int = DETAIL_LIMIT) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def skeleton_path(course: Path, lab: str) -> Path:
    """The official student notebook of lab ``lab`` (labs/NN_name.ipynb)."""
    found = lab_notebook(course / "labs", lab)
    if found is None:
        raise GradingError(f"There is no lab {str(lab).zfill(2)} in {course / 'labs'}: give the lab number of the "
                           f"notebooks you are grading (--lab NN).")
    return found


def exercise_titles(skeleton: NotebookNode, lab: str) -> dict[str, str]:
    from dlcourse.check import registry

    checks = registry(lab)
    return {ex.id: checks[ex.id].title if ex.id in checks else "" for ex in find_exercises(skeleton, solution=False)}


def student_answers(submission: NotebookNode) -> dict[str, str]:
    """Exercise id -> the source of the student's exercise cell (the last one, if a cell was copied)."""
    answers = {}
    for cell in submission.cells:
        info = meta(cell)
        if cell.get("cell_type") == "code" and isinstance(info, dict) and isinstance(info.get("exercise"), str):
            answers[info["exercise"]] = cell.source if isinstance(cell.get("source"), str) else "".join(cell.source)
    return answers


def foreign_lab(answers: dict[str, str], titles: dict[str, str], lab: str) -> str:
    """A sentence when the submission's exercises belong to another lab, else ''."""
    if not answers or set(answers) & set(titles):
        return ""
    others = sorted({exercise_id.split(".")[0] for exercise_id in answers})
    return (f"this notebook holds the exercises of lab {', '.join(others)} ({', '.join(sorted(answers))}), "
            f"not of lab {lab}: grade it with --lab {others[0]}")


def assemble(skeleton: NotebookNode, answers: dict[str, str]) -> NotebookNode:
    """The official skeleton with each exercise cell's source replaced by the student's answer."""
    import copy

    nb = copy.deepcopy(skeleton)
    for ex in find_exercises(nb, solution=False):
        if ex.id in answers:
            nb.cells[ex.exercise_index].source = answers[ex.id]
    return nb


def rows_from_records(records: list[dict], titles: dict[str, str], answers: dict[str, str],
                      stopped: tuple[str, str] = ("", "")) -> list[ExerciseRow]:
    """Turn the worker's per-cell records into one row per exercise.

    ``stopped`` is (status, sentence) for exercises that never ran: ("timeout", ...) when the
    notebook ran past its limit, ("error", ...) when the kernel died."""
    by_role = {(r["role"], r["exercise"]): r for r in records}
    rows = []
    for exercise_id, title in titles.items():
        row = ExerciseRow(exercise_id, title, "error")
        exercise, check = by_role.get(("exercise", exercise_id)), by_role.get(("check", exercise_id))
        if exercise_id not in answers:
            row.status, row.detail = "not_attempted", f"the submission has no exercise cell {exercise_id}"
        elif exercise is None or (check is None and exercise["status"] == "ok"):
            row.status, row.detail = stopped if stopped[0] else ("error", "the notebook stopped before this exercise ran")
        elif exercise["status"] != "ok":
            row.status = "timeout" if exercise["ename"] == TIMEOUT_ENAME else "error"
            row.detail = one_line(f"in your exercise cell: {exercise['ename']}: {exercise['evalue']}")
        elif check["verdicts"]:
            verdict = check["verdicts"][-1]
            row.status, row.detail = verdict["status"], one_line(verdict["message"])
        elif check["ename"] == TIMEOUT_ENAME:
            row.status, row.detail = "timeout", one_line(f"the check ran past its limit: {check['evalue']}")
        else:
            row.detail = one_line(f"the check could not run your answer: {check['ename']}: {check['evalue']}")
        rows.append(row)
    return rows


def _file_error(report: StudentReport, titles: dict[str, str], message: str) -> StudentReport:
    report.error = message
    report.exercises = [ExerciseRow(i, t, "error", one_line(message)) for i, t in titles.items()]
    return report


def run_worker(notebook: Path, results: Path, cell_timeout: float, notebook_timeout: float) -> tuple[str, str]:
    """Run the worker on ``notebook``: ("", "") when it finished, else (status, why it stopped)."""
    env = {**os.environ, "DLCOURSE_FAST": "1", "DLCOURSE_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "dlcourse.grade_worker", str(notebook), str(results),
               "--cell-timeout", str(cell_timeout)]
    log = notebook.with_suffix(".log")
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=notebook.parent, start_new_session=True)
    tree = ProcessTree(proc)
    try:
        proc.wait(timeout=notebook_timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"the whole notebook ran past its {notebook_timeout:.0f} s limit and was stopped"
    finally:
        tree.stop(grace=3.0)  # the kernel too, whatever happened
    if proc.returncode != 0:
        last = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:]
        return "error", one_line(f"the run stopped early ({last[0] if last else f'exit code {proc.returncode}'})")
    return "", ""


def grade_submission(path: Path, skeleton: NotebookNode, titles: dict[str, str], lab: str, *,
                     cell_timeout: float, notebook_timeout: float, student: str | None = None,
                     keep: Path | None = None) -> StudentReport:
    """Grade one file. Never raises for a bad submission: the problem goes into the report.

    With ``keep``, the executed notebook (official skeleton, student's answers, outputs) is saved
    there as STUDENT.ipynb for the instructor to read."""
    report = StudentReport(student or path.stem, str(path))
    try:
        return _grade(path, report, skeleton, titles, lab, cell_timeout, notebook_timeout, keep)
    except Exception as exc:  # a submission shaped in a way nobody foresaw must not stop the batch
        return _file_error(report, titles, one_line(f"{path.name} could not be graded ({type(exc).__name__}: {exc})"))


def _grade(path: Path, report: StudentReport, skeleton: NotebookNode, titles: dict[str, str], lab: str,
           cell_timeout: float, notebook_timeout: float, keep: Path | None) -> StudentReport:
    start = time.perf_counter()
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _file_error(report, titles, f"cannot read {path.name}: {exc.strerror or exc}")
    report.sha256 = hashlib.sha256(data).hexdigest()
    with tempfile.TemporaryDirectory(prefix="dlcourse-grade-") as tmp:
        copy = Path(tmp) / "submission.ipynb"
        copy.write_bytes(data)  # everything below reads the copy, never the student's file
        try:
            submission = read(copy)
        except NotebookError:
            return _file_error(report, titles, f"{path.name} is not a Jupyter notebook (not valid notebook JSON)")
        answers = student_answers(submission)
        problem = foreign_lab(answers, titles, lab)
        if problem:
            return _file_error(report, titles, f"{path.name}: {problem}")
        graded = Path(tmp) / "graded.ipynb"
        write(assemble(skeleton, answers), graded)
        results = Path(tmp) / "results.jsonl"
        results.touch()
        stopped = run_worker(graded, results, cell_timeout, notebook_timeout) if answers else ("", "")
        records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]
        report.exercises = rows_from_records(records, titles, answers, stopped)
        executed = graded.with_suffix(".executed.ipynb")
        if keep is not None and executed.is_file():
            keep.mkdir(parents=True, exist_ok=True)
            (keep / f"{report.student.replace('/', '_')}.ipynb").write_bytes(executed.read_bytes())
    report.seconds = round(time.perf_counter() - start, 1)
    return report


def student_names(paths: list[Path]) -> list[str]:
    """File stems, or relative paths where two submissions share a stem."""
    stems = [p.stem for p in paths]
    return [p.stem if stems.count(p.stem) == 1 else str(p).removesuffix(".ipynb") for p in paths]


def grade_all(paths: list[Path], lab: str, course: Path, *, cell_timeout: float = 120.0,
              notebook_timeout: float = 900.0, jobs: int = 1, progress: bool = True,
              keep: Path | None = None) -> list[StudentReport]:
    """Grade every submission (``jobs`` at a time, each in its own kernel); reports in input order."""
    from tqdm.auto import tqdm

    lab = str(lab).zfill(2)
    skeleton = read(skeleton_path(course, lab))
    titles = exercise_titles(skeleton, lab)
    names = student_names(paths)
    reports: list[StudentReport | None] = [None] * len(paths)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(grade_submission, path, skeleton, titles, lab, cell_timeout=cell_timeout,
                               notebook_timeout=notebook_timeout, student=name, keep=keep): i
                   for i, (path, name) in enumerate(zip(paths, names))}
        for future in tqdm(as_completed(futures), total=len(futures), desc=f"grading lab {lab}", unit="notebook",
                           disable=not progress):
            reports[futures[future]] = future.result()
    return [r for r in reports if r is not None]


# ------------------------------------------------------------------------------ reports

CSV_FIELDS = ("student", "file", "exercise", "title", "status", "detail")


def report_rows(reports: list[StudentReport]) -> list[dict[str, str]]:
    """CSV rows: one per student and exercise, then the student's total (exercise 'total')."""
    rows = []
    for r in reports:
        rows += [{"student": r.student, "file": r.file, **asdict(row)} for row in r.exercises]
        rows.append({"student": r.student, "file": r.file, "exercise": "total", "title": "",
                     "status": f"{r.passed}/{r.total}", "detail": r.error or f"{r.passed} of {r.total} passed"})
    return rows


def report_json(reports: list[StudentReport], lab: str) -> dict:
    return {"lab": str(lab).zfill(2), "students": [
        {**{k: v for k, v in asdict(r).items() if k != "exercises"}, "passed": r.passed, "total": r.total,
         "exercises": [asdict(row) for row in r.exercises]} for r in reports]}


def write_report(reports: list[StudentReport], lab: str, out: Path) -> None:
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


def format_summary(reports: list[StudentReport]) -> str:
    """A terminal table: one line per student with the status of each exercise."""
    if not reports:
        return "no submissions graded."
    ids = [row.exercise for row in reports[0].exercises]
    width = max(len("student"), *(len(r.student) for r in reports))
    short = {"passed": "pass", "failed": "FAIL", "not_attempted": "-", "error": "ERR", "timeout": "TIME"}
    lines = [f"{'student':<{width}}  " + "  ".join(f"{i:>6}" for i in ids) + "   total"]
    for r in reports:
        cells = "  ".join(f"{short[row.status]:>6}" for row in r.exercises)
        lines.append(f"{r.student:<{width}}  {cells}   {r.passed}/{r.total}" + (f"   ({r.error})" if r.error else ""))
    return "\n".join(lines)
