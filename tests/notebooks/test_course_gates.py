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


def _course(tmp_path: Path, value: float, fast: bool) -> subprocess.CompletedProcess:
    notebook = new_notebook(cells=[
        new_code_cell("FAST = False", metadata={"tags": ["parameters"]}),
        new_code_cell(f'from dlcourse.runner import record_metric\n\nrecord_metric("fixture accuracy", {value}, at_least=0.9)'),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    write(notebook, tmp_path / "course" / "99_fixture.ipynb")
    env = {k: v for k, v in os.environ.items() if k not in ("FAST", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(["make", "-s", "course", f"COURSE_DIR={tmp_path / 'course'}", f"COURSE_OUT={tmp_path / 'out'}",
                           *(["FAST=1"] if fast else [])], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_make_course_fails_on_a_missed_bound(tmp_path: Path) -> None:
    done = _course(tmp_path, 0.5, fast=False)
    assert done.returncode != 0, done.stdout
    assert "fixture accuracy = 0.5 [≥ 0.9: MISSED]" in done.stdout
    assert "bound missed: lab 99: fixture accuracy is 0.5, which misses its bound ≥ 0.9." in done.stdout


def test_make_course_passes_a_met_bound_and_only_shows_it_in_fast_mode(tmp_path: Path) -> None:
    met = _course(tmp_path, 0.95, fast=False)
    assert met.returncode == 0 and "fixture accuracy = 0.95 [≥ 0.9: met]" in met.stdout, met.stdout + met.stderr
    fast = _course(tmp_path, 0.5, fast=True)
    assert fast.returncode == 0 and "[≥ 0.9: full mode only]" in fast.stdout, fast.stdout + fast.stderr
