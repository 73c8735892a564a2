"""`dlcourse grade` on hostile submissions of lab 00: the report is exactly what it should be, the
batch finishes, no submission file and no course file changes (hashes before and after), and no
process a submission started outlives the batch (the sandbox: bubblewrap, a read-only course, its
own PID namespace, memory and process limits; the attest cells' tamper evidence)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import uuid
from pathlib import Path

import psutil
import pytest

from conftest import LABS_DIR, ROOT
from dlcourse.check import CHECK_MIME, registry
from dlcourse.grade_worker import OUTPUT_LIMIT
from dlcourse.grading import grade_all, report_json, report_rows, write_feedback, write_gradebook
from dlcourse import sandbox
from dlcourse.sandbox import sandbox_problem
from dlcourse.notebooks import find_exercises, read, write

pytestmark = pytest.mark.notebook

# The slowest honest cell of lab 00 (importing PyTorch and TensorFlow) takes a few seconds; the
# notebook limit lets "stubborn" reach its loop but not its second exercise (two cell timeouts later).
# On a machine much busier than CI, DLCOURSE_TEST_TIME_SCALE=3 scales both limits together.
TIME_SCALE = float(os.environ.get("DLCOURSE_TEST_TIME_SCALE", "1"))
CELL_TIMEOUT, NOTEBOOK_TIMEOUT = 25.0 * TIME_SCALE, 85.0 * TIME_SCALE
MEMORY_MB = 2048  # per process: lab 00's imports need well under 1 GiB of it
SOLVED = {"00.1": "n_sevens = int((y_train == 7).sum())",
          "00.2": "def dense_param_count(sizes):\n    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))"}
WRONG_00_2 = "def dense_param_count(sizes):\n    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))"
DOWNLOAD = ("import os, tempfile\nos.environ.pop('DLCOURSE_DATA', None)\n"
            "os.environ['DLCOURSE_CACHE'] = tempfile.mkdtemp()\n"
            "from dlcourse.data import load_fashion_mnist\nload_fashion_mnist()")
MARKER = f"dlcourse-orphan-{uuid.uuid4().hex[:10]}"  # in the command line of the process "vandal" leaves behind
# Writes over the course's own lab 00 skeleton (found from dlcourse.__file__) and its check module,
# starts a detached process, then answers correctly.
VANDAL = ("import pathlib, subprocess, sys, dlcourse\n"
          "course = pathlib.Path(dlcourse.__file__).resolve().parents[2]\n"
          "for target in (course / 'labs' / '00_setup.ipynb', course / 'lib' / 'dlcourse' / 'checks' / 'lab00.py'):\n"
          "    try:\n        target.write_text('{}')\n    except OSError as error:\n        print('refused:', error)\n"
          f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(900)  # {MARKER}'], start_new_session=True,\n"
          "                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
          + SOLVED["00.1"])
# Allocates 256 MiB at a time (address space only, never touched) until the memory limit stops it.
HOG = "import numpy as np\nhog = []\nwhile True:\n    hog.append(np.empty(2**25))"
# Every process forks until the process limit stops it, then waits. With the limit reached the
# notebook stalls at some cell (seen here) until the notebook limit ends the sandbox and all in it.
BOMB = ("import os, time\n"
        "def _bomb():\n    while True:\n        try:\n            os.fork()\n        except OSError:\n"
        "            time.sleep(600)\n            os._exit(0)\n"
        "if os.fork() == 0:\n    _bomb()\ntime.sleep(5)\n" + SOLVED["00.1"])
# Patches the framework so that every check passes, then gives a wrong answer.
PATCH = ("import dlcourse.check as framework\n_evaluate = framework.Exercise.evaluate\n"
         "def evaluate(self, *args, **kwargs):\n    result = _evaluate(self, *args, **kwargs)\n"
         "    return framework.CheckResult(result.exercise, result.title, 'passed', 'Well done.', '')\n"
         "framework.Exercise.evaluate = evaluate\n" + WRONG_00_2)
# Right on the lab's five test networks only (a lookup table): the hidden check tries another.
MEMORISED = ("def dense_param_count(sizes):\n"
             "    return {(784, 128, 10): 101770, (3, 5): 20, (2, 7, 4, 1): 58, (6, 1, 9): 25, (10,): 0}[tuple(sizes)]")
HIDDEN_CHECK = ("from dlcourse.check import expect_number, hidden_check\n\n\n@hidden_check('00.2')\n"
                "def more_networks(dense_param_count):\n"
                "    expect_number(dense_param_count([5, 3, 2, 8]), 5 * 3 + 3 + 3 * 2 + 2 + 2 * 8 + 8, name='count')\n")
COURSE_FILES = ("labs/00_setup.ipynb", "lib/dlcourse/check.py", "lib/dlcourse/checks/lab00.py")
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
        "vandal": _lab00({"00.1": VANDAL, "00.2": HOG}),
        "bomb": _lab00({"00.1": BOMB, "00.2": SOLVED["00.2"]}),
        "patched": _lab00({"00.1": SOLVED["00.1"], "00.2": PATCH}),
        "memorised": _lab00({"00.1": SOLVED["00.1"], "00.2": MEMORISED}),
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
    if sandbox_problem():  # `make test` installs bubblewrap (scripts/install_bubblewrap.sh); CI must have it
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(sandbox_problem())
    before = {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in submissions.items()}
    course_before = {f: hashlib.sha256((ROOT / f).read_bytes()).hexdigest() for f in COURSE_FILES}
    keep = tmp_path_factory.mktemp("executed")
    hidden = tmp_path_factory.mktemp("hidden")
    (hidden / "lab00.py").write_text(HIDDEN_CHECK)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DLCOURSE_DATA", str(shared_data))
        reports = grade_all(list(submissions.values()), "00", ROOT, cell_timeout=CELL_TIMEOUT,
                            notebook_timeout=NOTEBOOK_TIMEOUT, jobs=3, progress=False, keep=keep,
                            memory_mb=MEMORY_MB, hidden=hidden)
    after = {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in submissions.items()}
    course_after = {f: hashlib.sha256((ROOT / f).read_bytes()).hexdigest() for f in COURSE_FILES}
    return {r.student: r for r in reports}, before, after, keep, course_before, course_after


def _statuses(report) -> dict[str, str]:
    return {row.exercise: row.status for row in report.exercises}


def test_submission_files_are_never_modified(graded) -> None:
    reports, before, after, *_ = graded
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
    reports, _, _, keep, *_ = graded
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


def test_the_course_files_are_unchanged_and_writes_to_them_were_refused(graded) -> None:
    reports, _, _, keep, course_before, course_after = graded
    assert course_before == course_after
    printed = "".join(out.get("text", "") for cell in read(keep / "vandal.ipynb").cells if cell.cell_type == "code"
                      for out in cell.outputs)
    assert printed.count("Read-only file system") == 2, printed[:500]
    assert _statuses(reports["vandal"])["00.1"] == "passed"
    assert all(r.sandbox == "bwrap" for r in reports.values())


def test_no_process_outlives_the_batch(graded) -> None:
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if MARKER in " ".join(p.info["cmdline"] or [])]
    assert left == [], f"processes left behind: {left}"
    assert sandbox.OPEN_CGROUPS == set(), "each submission's process cgroup is removed after it"


def test_a_memory_hog_is_stopped_at_the_memory_limit(graded) -> None:
    reports, *_ = graded
    hog = reports["vandal"].exercises[1]
    assert hog.status == "memory" and f"{MEMORY_MB} MiB" in hog.detail, hog


def test_a_fork_bomb_is_bounded_and_stopped_with_its_notebook(graded) -> None:
    reports, *_ = graded
    statuses = list(_statuses(reports["bomb"]).values())
    assert statuses != ["passed", "passed"] and "timeout" in statuses, reports["bomb"].exercises
    assert _statuses(reports["crash"])["00.2"] == "passed", "the other submissions are graded as usual"


def test_patching_the_check_framework_is_tampered_never_passed(graded) -> None:
    reports, *_ = graded
    row = reports["patched"].exercises[1]
    assert row.status == "tampered" and "Exercise.evaluate" in row.detail, row
    assert row.points == 0 and reports["patched"].exercises[0].status == "passed"


def test_a_hidden_check_fails_without_being_revealed(graded, tmp_path: Path) -> None:
    reports, *_ = graded
    row = reports["memorised"].exercises[1]
    assert row.status == "failed" and row.hidden, row
    assert "5, 3, 2, 8" not in row.detail + row.hint
    assert _verdict("00.2", MEMORISED)[0] == "passed", "in the student's own lab, the memorised answer passes"
    assert _statuses(reports["partial"]) == {"00.1": "passed", "00.2": "failed"} and not reports["partial"].exercises[1].hidden
    written = write_feedback(list(reports.values()), "00", tmp_path / "feedback")
    text = (tmp_path / "feedback" / "memorised.md").read_text()
    assert len(written) == len(reports) and "00.2" in text and "a grading check" in text and "5, 3, 2, 8" not in text


def test_gradebook_has_one_row_per_student_with_points(graded, tmp_path: Path) -> None:
    import csv

    reports, *_ = graded
    write_gradebook(list(reports.values()), "00", tmp_path / "gradebook.csv")
    rows = list(csv.reader((tmp_path / "gradebook.csv").open()))
    assert rows[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"] and rows[0][-1] == "Lab 00 total"
    by_name = {row[0]: row for row in rows[1:]}
    assert len(by_name) == len(reports) and by_name["partial"][5:] == ["1", "0", "1"]
    assert by_name["patched"][-1] == "1" and by_name["loop"][5:] == ["0", "1", "1"]
