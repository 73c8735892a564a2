"""`make test LAB=NN` (pytest --lab NN) selects everything about lab NN and nothing else."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def _collected(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_lab_07_selects_its_checks_notebook_runs_and_conventions_only() -> None:
    # A few files stand for the whole suite (collecting all of it costs half a minute).
    done = _collected("tests/unit/test_checks_lab07.py", "tests/unit/test_checks_lab03.py", "tests/notebooks/test_labs.py",
                      "tests/notebooks/test_solutions.py", "tests/test_repo.py", "--lab", "07")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    files = {i.split("::")[0] for i in ids}
    assert "tests/unit/test_checks_lab07.py" in files and "tests/unit/test_checks_lab03.py" not in files
    assert "build/test-runs/probed/07_keras_cnn.ipynb" in files, "the probed solution run"
    assert "build/test-runs/unsolved/07_keras_cnn.ipynb" in files, "the unsolved lab run"
    assert "tests/test_repo.py::test_notebook_conventions[labs/07_keras_cnn]" in ids
    strays = [i for i in ids if "07" not in i.split("::")[0] and "07_" not in i and "lab07" not in i]
    assert strays == [], f"tests about other labs were selected: {strays[:5]}"


def test_a_lab_number_without_its_leading_zero_works_and_a_bad_one_gets_a_sentence() -> None:
    done = _collected("tests/unit/test_checks_lab03.py", "tests/unit/test_widgets_lab03.py", "--lab", "3")
    assert done.returncode == 0 and "test_widgets_lab03.py" in done.stdout, done.stdout[-2000:]
    bad = _collected("tests/unit/test_checks_lab03.py", "--lab", "seven")
    assert bad.returncode != 0 and "--lab takes a lab number such as 07, not 'seven'" in bad.stderr
