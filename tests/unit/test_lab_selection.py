"""`make test LAB=NN` (pytest --lab NN) selects everything about lab NN and nothing else."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def _collected(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_lab_selects_its_checks_notebook_runs_and_conventions_only() -> None:
    # A few light files stand for the whole suite (collecting all of it costs half a minute); "0"
    # also shows that the leading zero may be left out.
    done = _collected("tests/unit/test_checks_lab00.py", "tests/unit/test_checks_lab01.py", "tests/notebooks/test_labs.py",
                      "tests/notebooks/test_solutions.py", "tests/test_repo.py", "--lab", "0")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    files = {i.split("::")[0] for i in ids}
    assert "tests/unit/test_checks_lab00.py" in files and "tests/unit/test_checks_lab01.py" not in files
    assert {"build/test-runs/probed/00_setup.ipynb", "build/test-runs/unsolved/00_setup.ipynb"} <= files, \
        "the probed solution run and the unsolved run"
    assert "tests/test_repo.py::test_notebook_conventions[labs/00_setup]" in ids
    strays = [i for i in ids if "00_setup" not in i and "lab00" not in i]
    assert strays == [], f"tests about other labs were selected: {strays[:5]}"


def test_a_bad_lab_number_gets_a_sentence() -> None:
    bad = _collected("tests/unit/test_checks_lab00.py", "--lab", "seven")
    assert bad.returncode != 0 and "--lab takes a lab number such as 07, not 'seven'" in bad.stderr
