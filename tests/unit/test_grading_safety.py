"""Issue 22 without a notebook kernel: the sandbox command, tamper evidence, points, hidden checks,
the gradebook and feedback files, and `dlcourse progress` (which never writes a notebook)."""

from __future__ import annotations

import csv
import hashlib
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from dlcourse import check, sandbox
from dlcourse.cli import main
from dlcourse.grading import (PACKAGE, ExerciseRow, StudentReport, assemble, rows_from_records, skeleton_path,
                              student_answers)
from dlcourse.gradebook import canvas_id, feedback_markdown, gradebook_rows, write_feedback
from dlcourse.notebooks import find_exercises, read
from dlcourse.progress import format_progress, lab_progress, notebook_progress
from dlcourse.tamper import attest

TITLES = {"00.1": "Count the sevens", "00.2": "Count a network's parameters"}


def _record(role: str, exercise: str, verdicts: list | None = None) -> dict:
    return {"cell": 0, "role": role, "exercise": exercise, "status": "ok", "ename": "", "evalue": "",
            "verdicts": verdicts or []}


def _passed(exercise: str) -> dict:
    return {"exercise": exercise, "title": "", "status": "passed", "message": "right", "hint": ""}


# ------------------------------------------------------------------------------ tamper evidence

def test_attest_finds_nothing_in_an_honest_process_and_names_what_was_patched() -> None:
    importlib.import_module("dlcourse.checks.lab00")
    assert attest("00.2", "00", str(PACKAGE))["findings"] == []
    original = check.Exercise.evaluate
    constants = sys.modules["dlcourse.checks.lab00"]._CASES
    try:
        check.Exercise.evaluate = lambda self, *a, **k: check.CheckResult(self.id, self.title, "passed", "ok")
        sys.modules["dlcourse.checks.lab00"]._CASES = ([1, 2],)
        findings = attest("00.2", "00", str(PACKAGE))["findings"]
    finally:
        check.Exercise.evaluate = original
        sys.modules["dlcourse.checks.lab00"]._CASES = constants
    assert "`dlcourse.check.Exercise.evaluate` is not the function on disk" in findings
    assert "`dlcourse.checks.lab00._CASES` differs from its value on disk" in findings
    assert attest("00.2", "00", str(PACKAGE))["intact"]


def test_a_check_whose_code_was_swapped_is_found() -> None:
    lab00 = importlib.import_module("dlcourse.checks.lab00")
    ex = lab00.check_dense_param_count
    original = ex.fn
    try:
        ex.fn = lambda dense_param_count: "fine"
        findings = attest("00.2", "00", str(PACKAGE))["findings"]
    finally:
        ex.fn = original
    assert any("check_dense_param_count" in f for f in findings), findings


def test_assembly_puts_attest_cells_around_each_check_and_rows_fail_closed() -> None:
    skeleton = read(skeleton_path(ROOT, "00"))
    graded = assemble(skeleton, student_answers(read(ROOT / "solutions" / "00_setup.ipynb")), attest_lab="00")
    roles = [(c.metadata.get("dlcourse", {}).get("attest"), c.metadata.get("dlcourse", {}).get("check"))
             for c in graded.cells if c.cell_type == "code"]
    for ex in ("00.1", "00.2"):
        i = roles.index((None, ex))
        assert roles[i - 1] == (ex, None) and roles[i + 1] == (ex, None)
    assert len(graded.cells) == len(skeleton.cells) + 4
    intact = {"exercise": "00.1", "intact": True, "findings": []}
    base = [_record("exercise", "00.1"), _record("check", "00.1", [_passed("00.1")])]
    honest = base + [_record("attest", "00.1", [intact]), _record("attest", "00.1", [intact])]
    assert rows_from_records(honest, {"00.1": ""}, {"00.1": "x"}, attested=True)[0].status == "passed"
    silent = base + [_record("attest", "00.1", [intact]), _record("attest", "00.1", [])]
    row = rows_from_records(silent, {"00.1": ""}, {"00.1": "x"}, attested=True)[0]
    assert row.status == "tampered" and "could not confirm" in row.detail and row.points == 0
    # a notebook stopped at its time limit before the second attestation is a timeout, not tampering
    stopped = rows_from_records(base[:1], {"00.1": ""}, {"00.1": "x"}, ("timeout", "past 9 s"), attested=True)
    assert stopped[0].status == "timeout"


def test_memory_errors_get_the_memory_status() -> None:
    records = [{**_record("exercise", "00.1"), "status": "error", "ename": "MemoryError", "evalue": ""}]
    row = rows_from_records(records, {"00.1": ""}, {"00.1": "x"}, memory_mb=512)[0]
    assert row.status == "memory" and "512 MiB" in row.detail


# ------------------------------------------------------------------------------ points and hidden checks

def test_points_default_to_one_and_hidden_checks_run_only_when_grading(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert all(ex.points == 1 for ex in check.registry().values())
    weighted = check.exercise("99.1", "weighted", points=3)(lambda x: "ok")
    assert weighted.points == 3
    (tmp_path / "lab99.py").write_text("from dlcourse.check import Mismatch, hidden_check\n\n"
                                       "@hidden_check('99.1')\ndef bigger(x):\n"
                                       "    if x < 10:\n        raise Mismatch('too small: 7 would do')\n")
    try:
        assert weighted.evaluate(5).status == "passed"  # in the student's lab: no hidden checks
        monkeypatch.setenv(check.HIDDEN_ENV, str(tmp_path))
        hidden = weighted.evaluate(5)
        assert hidden.status == "failed" and hidden.message == check.HIDDEN_FAILED and "7" not in hidden.hint
        assert weighted.evaluate(50).status == "passed"
    finally:
        check._REGISTRY.pop("99.1", None)
        check._HIDDEN.pop("99.1", None)
        check._HIDDEN_LOADED.discard("99")


# ------------------------------------------------------------------------------ gradebook and feedback

def _reports() -> list[StudentReport]:
    ada = StudentReport("smithada_12345_678_lab00", "a.ipynb", exercises=[
        ExerciseRow("00.1", "Count", "passed", "fine", points=2, max_points=2),
        ExerciseRow("00.2", "Params", "failed", "off by one", max_points=1, hint="count the biases")])
    bob = StudentReport("bob", "b.ipynb", exercises=[
        ExerciseRow("00.1", "Count", "tampered", "patched", max_points=2),
        ExerciseRow("00.2", "Params", "failed", check.HIDDEN_FAILED, max_points=1, hidden=True)])
    return [ada, bob]


def test_gradebook_layouts_for_canvas_and_gradescope(tmp_path: Path) -> None:
    canvas = gradebook_rows(_reports(), "0")
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Lab 00 · 00.1 Count",
                         "Lab 00 · 00.2 Params", "Lab 00 total"]
    assert canvas[1] == ["smithada_12345_678_lab00", "12345", "", "", "", "2", "0", "2"]
    assert canvas[2][-3:] == ["0", "0", "0"]
    gradescope = gradebook_rows(_reports(), "00", "gradescope")
    assert gradescope[0][:3] == ["Name", "SID", "Email"] and gradescope[0][-1] == "Total Score"
    assert canvas_id("doe_late_42_7_x") == "42" and canvas_id("bob") == ""


def test_feedback_names_the_hidden_failure_without_revealing_it(tmp_path: Path) -> None:
    text = feedback_markdown(_reports()[1], "00")
    assert "0 of 3 points" in text and "tampered" in text and "not yet (a grading check)" in text
    ada = feedback_markdown(_reports()[0], "00")
    assert "*Hint:* count the biases" in ada and "2 of 3 points" in ada
    paths = write_feedback(_reports(), "00", tmp_path / "fb", "html")
    assert sorted(p.name for p in paths) == ["bob.html", "smithada_12345_678_lab00.html"]


def test_cli_grade_refuses_in_a_sentence_without_a_sandbox(capsys: pytest.CaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sandbox._PROBED, "result", "bubblewrap (bwrap) is not installed, so submissions cannot be "
                                                   "sandboxed: install it or grade with --no-sandbox")
    assert main(["grade", str(tmp_path / "x.ipynb"), "--lab", "00"]) == 1
    err = capsys.readouterr().err
    assert "--no-sandbox" in err and "Traceback" not in err and err.count("\n") == 1


# ------------------------------------------------------------------------------ the sandbox itself

needs_bwrap = pytest.mark.skipif(bool(sandbox.sandbox_problem()), reason="bubblewrap cannot start here")


@needs_bwrap
def test_the_sandbox_is_read_only_offline_and_has_its_own_processes(tmp_path: Path) -> None:
    script = ("import os, pathlib, socket\n"
              f"for target in ({str(ROOT / 'labs' / 'x')!r}, '/etc/x'):\n"
              "    try:\n        open(target, 'w')\n        print('wrote', target)\n"
              "    except OSError as e:\n        print('refused', e.strerror)\n"
              "pathlib.Path('mine.txt').write_text('ok')\n"
              "print('pids', sorted(int(p) for p in os.listdir('/proc') if p.isdigit())[:3])\n"
              "try:\n    socket.create_connection(('1.1.1.1', 80), timeout=2)\n    print('online')\n"
              "except OSError:\n    print('offline')\n")
    done = subprocess.run(sandbox.wrap([sys.executable, "-c", script], tmp_path), capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.stdout.count("refused Read-only file system") == 2, done.stdout + done.stderr
    assert "offline" in done.stdout and (tmp_path / "mine.txt").read_text() == "ok"
    assert "pids [1, 2" in done.stdout  # a new PID namespace: bwrap is 1, the command 2


# ------------------------------------------------------------------------------ progress

def test_progress_reads_a_half_solved_set_of_labs_and_never_writes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    shutil.copy(ROOT / "solutions" / "00_setup.ipynb", tmp_path / "00_setup.ipynb")  # stored verdicts: passed
    shutil.copy(ROOT / "labs" / "00_setup.ipynb", tmp_path / "01_fresh.ipynb")  # never run
    (tmp_path / "02_broken.ipynb").write_text("{ not json")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    labs = lab_progress(tmp_path)
    assert [lab.exercises for lab in labs[:2]] == [{"00.1": "passed", "00.2": "passed"},
                                                    {"00.1": "not_attempted", "00.2": "not_attempted"}]
    assert "could not be read" in labs[2].problem
    assert main(["progress", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "✓ 00.1" in printed and "· 00.2" in printed and "02" in printed
    assert before == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}


def test_progress_counts_a_failed_verdict_as_not_yet(tmp_path: Path) -> None:
    import nbformat

    nb = read(ROOT / "labs" / "00_setup.ipynb")
    ex = find_exercises(nb, solution=False)[1]
    verdict = {"exercise": "00.2", "title": "", "status": "failed", "message": "no", "hint": ""}
    nb.cells[ex.check_index].outputs = [nbformat.v4.new_output("display_data", data={check.CHECK_MIME: verdict,
                                                                                     "text/plain": "no"})]
    nbformat.write(nb, str(tmp_path / "00_setup.ipynb"))
    progress = notebook_progress(tmp_path / "00_setup.ipynb")
    assert progress.exercises == {"00.1": "not_attempted", "00.2": "failed"}
    assert " 1 " in format_progress([progress]).splitlines()[1]


def test_a_process_cgroup_caps_forks_and_is_removed_afterwards() -> None:
    cgroup = sandbox.ProcessCgroup(8)
    if cgroup.path is None:
        pytest.skip("no writable pids cgroup here (the grader is not root): RLIMIT_NPROC caps processes instead")
    script = ("import os, time\nn = 0\ntry:\n    for _ in range(50):\n        if os.fork() == 0:\n"
              "            time.sleep(5)\n            os._exit(0)\n        n += 1\nexcept OSError:\n    pass\nprint(n)")
    try:
        done = subprocess.run(cgroup.command([sys.executable, "-c", script]), capture_output=True, text=True,
                              timeout=60)
    finally:
        cgroup.close()
    assert 0 < int(done.stdout) < 8, done.stdout + done.stderr
    assert not cgroup.path.exists() and cgroup.path not in sandbox.OPEN_CGROUPS


def test_the_sandbox_shows_the_interpreter_and_the_course_even_under_tmp(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: "/usr/bin/bwrap")
    command = sandbox.wrap(["python"], tmp_path)
    shown = {command[i + 1] for i, arg in enumerate(command) if arg == "--ro-bind"}
    assert str(Path(sys.prefix).resolve()) in shown or sys.prefix in shown  # a clone under /tmp keeps its .venv
    assert str(ROOT) in shown  # and its course files (the private /tmp would hide both)


def test_a_folder_named_through_a_symlink_is_shown_at_both_paths(monkeypatch, tmp_path: Path) -> None:
    """DLCOURSE_DATA=/tmp/cc/shared/data with /tmp/cc/shared a symlink: the notebook opens the named path."""
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: "/usr/bin/bwrap")
    real = tmp_path / "real" / "data"
    real.mkdir(parents=True)
    (tmp_path / "shared").symlink_to(tmp_path / "real")
    command = sandbox.wrap(["python"], tmp_path / "work", [tmp_path / "shared" / "data"])
    binds = {(command[i + 1], command[i + 2]) for i, arg in enumerate(command) if arg == "--ro-bind"}
    assert (str(real.resolve()), str(real.resolve())) in binds
    assert (str(real.resolve()), str(tmp_path / "shared" / "data")) in binds
