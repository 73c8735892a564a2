"""`dlcourse grade`: grade a class's lab notebooks without trusting them and without babysitting.

For each submission the grader

1. reads the file (never writes it) and takes only the student's exercise cells, found by the
   stable id in their metadata (``{"dlcourse": {"exercise": "NN.k"}}``);
2. puts them into the official lab skeleton (labs/NN_name.ipynb), whose check cells are the
   official ones, so a student who deletes or edits a check cell cannot change the grade;
3. puts an attest cell (`dlcourse.tamper`) before and after each check cell: it compares the
   check code the kernel holds with the course's files on disk;
4. runs that notebook on a temporary copy, in a fresh kernel, in FAST mode, with
   ``DLCOURSE_OFFLINE=1`` (the data loader refuses to download), in a worker process
   (`dlcourse.grade_worker`) inside the sandbox (`dlcourse.sandbox`: bubblewrap, read-only course,
   no network, its own PID namespace, memory and process limits) that interrupts a cell past the
   per-cell limit and is killed, kernel and all, past the per-notebook limit;
5. reads each official check cell's verdict: passed, failed (with the check's one-line reason),
   not attempted, error (the exception), timeout, memory (past ``--memory``) or tampered (the
   check code in the kernel is not the course's).

The result is one row per student and exercise (with points) plus a per-student total, as CSV or
JSON; `dlcourse.gradebook` writes the LMS gradebook and the feedback files.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from nbformat import NotebookNode

from dlcourse import sandbox
from dlcourse.check import HIDDEN_ENV
from dlcourse.gradebook import (CSV_FIELDS, GradingError, format_summary, report_json, report_rows, write_feedback,  # noqa: F401
                                write_gradebook, write_report)
from dlcourse.grade_worker import TIMEOUT_ENAME
from dlcourse.launch import ProcessTree, shared_core_env
from dlcourse.notebooks import NotebookError, find_exercises, lab_notebook, meta, read, write

STATUSES = ("passed", "failed", "not_attempted", "error", "timeout", "memory", "tampered")
PACKAGE = Path(__file__).resolve().parent  # the course's dlcourse package, read-only in the sandbox
DETAIL_LIMIT = 300  # characters of a reason kept in the report


@dataclass
class ExerciseRow:
    exercise: str
    title: str
    status: str
    detail: str = ""
    points: float = 0.0
    max_points: float = 1.0
    hint: str = ""
    hidden: bool = False  # failed an instructor-only check (the lab's own check passed)


@dataclass
class StudentReport:
    student: str
    file: str
    sha256: str = ""
    seconds: float = 0.0
    error: str = ""  # a problem with the whole file (not a notebook, another lab, ...)
    exercises: list[ExerciseRow] = field(default_factory=list)
    sandbox: str = ""  # "bwrap", or "none (--no-sandbox)"

    @property
    def passed(self) -> int:
        return sum(row.status == "passed" for row in self.exercises)

    @property
    def total(self) -> int:
        return len(self.exercises)

    @property
    def points(self) -> float:
        return sum(row.points for row in self.exercises)

    @property
    def max_points(self) -> float:
        return sum(row.max_points for row in self.exercises)


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


def exercise_points(lab: str) -> dict[str, float]:
    from dlcourse.check import registry

    return {k: float(getattr(v, "points", 1)) for k, v in registry(lab).items()}


def assemble(skeleton: NotebookNode, answers: dict[str, str], attest_lab: str | None = None) -> NotebookNode:
    """The official skeleton with each exercise cell's source replaced by the student's answer.

    With ``attest_lab``, an attest cell (`dlcourse.tamper`) goes before and after each check cell."""
    import copy

    from nbformat.v4 import new_code_cell

    from dlcourse.tamper import attest_source

    nb = copy.deepcopy(skeleton)
    exercises = find_exercises(nb, solution=False)
    for ex in exercises:
        if ex.id in answers:
            nb.cells[ex.exercise_index].source = answers[ex.id]
    if attest_lab is not None:
        for ex in reversed(exercises):  # from the end, so earlier indices stay valid
            for offset, moment in ((1, "after"), (0, "before")):
                cell = new_code_cell(attest_source(ex.id, attest_lab, str(PACKAGE), moment),
                                     metadata={"dlcourse": {"attest": ex.id}})
                nb.cells.insert(ex.check_index + offset, cell)
    return nb


MEMORY_SIGNS = ("MemoryError", "Unable to allocate", "can't allocate memory", "out of memory", "std::bad_alloc")


def _out_of_memory(*texts: str) -> bool:
    return any(sign in text for text in texts for sign in MEMORY_SIGNS)


def _tamper_finding(attests: list[dict], finished: bool) -> str:
    """'' when both attestations of an exercise say intact; else why the grade cannot be trusted."""
    findings = list(dict.fromkeys(f for record in attests for verdict in record["verdicts"]
                                  for f in verdict.get("findings", [])))
    broken = [v for record in attests for v in record["verdicts"] if not v.get("intact")]
    if findings or broken:
        return one_line("the check code in your kernel is not the course's: " + "; ".join(findings or ["changed"]))
    shown = sum(bool(record["verdicts"]) for record in attests)
    if finished and shown < 2:
        return "the grader could not confirm that the check code in your kernel was the course's (its attest cell showed nothing)"
    return ""


def rows_from_records(records: list[dict], titles: dict[str, str], answers: dict[str, str],
                      stopped: tuple[str, str] = ("", ""), *, points: dict[str, float] | None = None,
                      attested: bool = False, memory_mb: int | None = None) -> list[ExerciseRow]:
    """Turn the worker's per-cell records into one row per exercise.

    ``stopped`` is (status, sentence) for exercises that never ran: ("timeout", ...) when the
    notebook ran past its limit, ("error", ...) when the kernel died. With ``attested``, the attest
    records decide whether a check's verdict can be trusted (else the row is ``tampered``)."""
    from dlcourse.check import HIDDEN_FAILED

    by_role = {(r["role"], r["exercise"]): r for r in records if r["role"] != "attest"}
    rows = []
    for exercise_id, title in titles.items():
        row = _row(exercise_id, title, by_role, answers, stopped)
        if (row.status == "error" and memory_mb and _out_of_memory(row.detail)) or (
                row.status == "failed" and memory_mb and _out_of_memory(row.detail)):
            row.status = "memory"
            row.detail = one_line(f"ran out of memory: the grader allows {memory_mb} MiB per process (--memory); "
                                  f"{row.detail}")
        if attested and ("check", exercise_id) in by_role:
            finding = _tamper_finding([r for r in records if r["role"] == "attest" and r["exercise"] == exercise_id],
                                      finished=not stopped[0])
            if finding:
                row.status, row.detail, row.hint = "tampered", finding, ""
        row.hidden = row.status == "failed" and row.detail == one_line(HIDDEN_FAILED)
        row.max_points = (points or {}).get(exercise_id, 1.0)
        row.points = row.max_points if row.status == "passed" else 0.0
        rows.append(row)
    return rows


def _row(exercise_id: str, title: str, by_role: dict, answers: dict[str, str], stopped: tuple[str, str]) -> ExerciseRow:
    """One exercise's row from its exercise and check cells' records (before points and tamper evidence)."""
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
        row.hint = one_line(verdict.get("hint", ""))
    elif check["ename"] == TIMEOUT_ENAME:
        row.status, row.detail = "timeout", one_line(f"the check ran past its limit: {check['evalue']}")
    else:
        row.detail = one_line(f"the check could not run your answer: {check['ename']}: {check['evalue']}")
    return row


def _file_error(report: StudentReport, titles: dict[str, str], message: str) -> StudentReport:
    report.error = message
    report.exercises = [ExerciseRow(i, t, "error", one_line(message)) for i, t in titles.items()]
    return report


@dataclass(frozen=True)
class Options:
    """How each submission is run."""

    cell_timeout: float = 120.0
    notebook_timeout: float = 900.0
    sandboxed: bool = True  # False only with --no-sandbox (the report records it)
    memory_mb: int | None = 4096  # per process, RLIMIT_DATA; None: unlimited
    hidden: Path | None = None  # a folder of instructor-only labNN.py hidden checks
    keep: Path | None = None
    jobs: int = 1  # submissions graded side by side: each kernel gets its share of the cores

    @property
    def sandbox_label(self) -> str:
        return "bwrap" if self.sandboxed else "none (--no-sandbox)"


def run_worker(notebook: Path, results: Path, cell_timeout: float, notebook_timeout: float,
               options: Options = Options(sandboxed=False, memory_mb=None)) -> tuple[str, str]:
    """Run the worker on ``notebook``: ("", "") when it finished, else (status, why it stopped)."""
    workdir = notebook.parent
    env = {**os.environ, "DLCOURSE_FAST": "1", "DLCOURSE_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop(HIDDEN_ENV, None)  # hidden checks run only when this run asks for them
    env.update(shared_core_env(options.jobs, env))
    if options.hidden is not None:
        env[HIDDEN_ENV] = str(Path(options.hidden).resolve())
    limits = sandbox.Limits(memory_mb=options.memory_mb)
    cgroup = sandbox.ProcessCgroup(limits.processes)
    command = [sys.executable, "-m", "dlcourse.grade_worker", str(notebook), str(results),
               "--cell-timeout", str(cell_timeout),
               # RLIMIT_NPROC counts all the user's processes outside a user namespace: only in the sandbox
               *limits.worker_args(cgroup.path is not None or not options.sandboxed)]
    if options.sandboxed:
        for folder in sandbox.sandbox_env(workdir).values():
            if folder.startswith(str(workdir)):
                Path(folder).mkdir(parents=True, exist_ok=True)
        env.update(sandbox.sandbox_env(workdir))
        readable = [Path(options.hidden)] if options.hidden is not None else []
        readable += [Path(env[name]) for name in ("DLCOURSE_DATA", "DLCOURSE_CACHE") if env.get(name)]
        command = sandbox.wrap(command, workdir, readable)
    log = notebook.with_suffix(".log")
    try:
        with log.open("wb") as sink:
            proc = subprocess.Popen(cgroup.command(command), stdout=sink, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, cwd=workdir, start_new_session=True)
        tree = ProcessTree(proc)
        try:
            proc.wait(timeout=notebook_timeout)
        except subprocess.TimeoutExpired:
            return "timeout", f"the whole notebook ran past its {notebook_timeout:.0f} s limit and was stopped"
        finally:
            tree.stop(grace=3.0)  # the kernel too, whatever happened
    finally:
        cgroup.close()  # and whatever else the submission started
    if proc.returncode != 0:
        last = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:]
        why = last[0] if last else f"exit code {proc.returncode}"
        if options.memory_mb and ("Kernel died" in why or _out_of_memory(why)):
            return "memory", one_line(f"the kernel died ({why}); it may have run out of the {options.memory_mb} MiB "
                                      "per-process memory limit (--memory)")
        return "error", one_line(f"the run stopped early ({why})")
    return "", ""


def grade_submission(path: Path, skeleton: NotebookNode, titles: dict[str, str], lab: str, *,
                     cell_timeout: float, notebook_timeout: float, student: str | None = None,
                     keep: Path | None = None, options: Options | None = None) -> StudentReport:
    """Grade one file. Never raises for a bad submission: the problem goes into the report.

    With ``keep``, the executed notebook (official skeleton, student's answers, outputs) is saved
    there as STUDENT.ipynb for the instructor to read."""
    from dataclasses import replace

    options = replace(options or Options(), cell_timeout=cell_timeout, notebook_timeout=notebook_timeout,
                      keep=keep if keep is not None else (options.keep if options else None))
    report = StudentReport(student or path.stem, str(path), sandbox=options.sandbox_label)
    try:
        return _grade(path, report, skeleton, titles, lab, options)
    except Exception as exc:  # a submission shaped in a way nobody foresaw must not stop the batch
        return _file_error(report, titles, one_line(f"{path.name} could not be graded ({type(exc).__name__}: {exc})"))


def _grade(path: Path, report: StudentReport, skeleton: NotebookNode, titles: dict[str, str], lab: str,
           options: Options) -> StudentReport:
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
        write(assemble(skeleton, answers, attest_lab=lab), graded)
        results = Path(tmp) / "results.jsonl"
        results.touch()
        stopped = run_worker(graded, results, options.cell_timeout, options.notebook_timeout, options) \
            if answers else ("", "")
        records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]
        report.exercises = rows_from_records(records, titles, answers, stopped, points=exercise_points(lab),
                                             attested=True, memory_mb=options.memory_mb)
        executed = graded.with_suffix(".executed.ipynb")
        if options.keep is not None and executed.is_file():
            options.keep.mkdir(parents=True, exist_ok=True)
            (options.keep / f"{report.student.replace('/', '_')}.ipynb").write_bytes(executed.read_bytes())
    report.seconds = round(time.perf_counter() - start, 1)
    return report


def student_names(paths: list[Path]) -> list[str]:
    """File stems, or relative paths where two submissions share a stem."""
    stems = [p.stem for p in paths]
    return [p.stem if stems.count(p.stem) == 1 else str(p).removesuffix(".ipynb") for p in paths]


def grade_all(paths: list[Path], lab: str, course: Path, *, cell_timeout: float = 120.0,
              notebook_timeout: float = 900.0, jobs: int = 1, progress: bool = True,
              keep: Path | None = None, sandboxed: bool = True, memory_mb: int | None = 4096,
              hidden: Path | None = None) -> list[StudentReport]:
    """Grade every submission (``jobs`` at a time, each in its own kernel and sandbox); reports in input order.

    Raises `GradingError` with one sentence when the sandbox cannot start (unless ``sandboxed=False``)."""
    from tqdm.auto import tqdm

    lab = str(lab).zfill(2)
    if sandboxed and sandbox.sandbox_problem():
        raise GradingError(f"{sandbox.sandbox_problem()}.")
    if hidden is not None and not Path(hidden).is_dir():
        raise GradingError(f"--hidden {hidden}: there is no such folder (it should hold lab{lab}.py).")
    options = Options(cell_timeout, notebook_timeout, sandboxed, memory_mb, hidden, keep, max(1, jobs))
    skeleton = read(skeleton_path(course, lab))
    titles = exercise_titles(skeleton, lab)
    names = student_names(paths)
    reports: list[StudentReport | None] = [None] * len(paths)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(grade_submission, path, skeleton, titles, lab, cell_timeout=cell_timeout,
                               notebook_timeout=notebook_timeout, student=name, keep=keep, options=options): i
                   for i, (path, name) in enumerate(zip(paths, names))}
        for future in tqdm(as_completed(futures), total=len(futures), desc=f"grading lab {lab}", unit="notebook",
                           disable=not progress):
            reports[futures[future]] = future.result()
    sandbox.sweep_cgroups()  # a fork bomb's processes can take a while to be reaped
    return [r for r in reports if r is not None]
