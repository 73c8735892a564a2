"""`make course` (full mode) prints each declared bound beside its value and fails when one is
missed; in FAST mode it shows the bound without enforcing it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import ROOT
from dlcourse.notebooks import write

pytestmark = pytest.mark.notebook


def _course(tmp_path: Path, fast: bool) -> subprocess.CompletedProcess:
    """`make course` on one notebook with two bounded metrics: 0.95 ≥ 0.9 is met, 0.5 ≥ 0.9 is missed."""
    notebook = new_notebook(cells=[
        new_code_cell("FAST = False", metadata={"tags": ["parameters"]}),
        new_code_cell('from dlcourse.runner import record_metric\n\n'
                      'record_metric("fixture accuracy", 0.95, at_least=0.9)\n'
                      'record_metric("fixture loss", 0.5, "nats", at_most=0.4)'),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    write(notebook, tmp_path / "course" / "99_fixture.ipynb")
    env = {k: v for k, v in os.environ.items() if k not in ("FAST", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(["make", "-s", "course", f"COURSE_DIR={tmp_path / 'course'}", f"COURSE_OUT={tmp_path / 'out'}",
                           *(["FAST=1"] if fast else [])], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_make_course_prints_each_bound_and_fails_on_a_missed_one(tmp_path: Path) -> None:
    done = _course(tmp_path, fast=False)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "fixture accuracy = 0.95 [≥ 0.9: met]; fixture loss = 0.5 nats [≤ 0.4: MISSED]" in done.stdout, done.stdout
    missed = [line for line in done.stdout.splitlines() if line.startswith("bound missed")]
    assert missed == ["bound missed: lab 99: fixture loss is 0.5, which misses its bound ≤ 0.4."]


def test_fast_mode_shows_the_bounds_without_enforcing_them(tmp_path: Path) -> None:
    done = _course(tmp_path, fast=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[≥ 0.9: full mode only]" in done.stdout and "[≤ 0.4: full mode only]" in done.stdout
