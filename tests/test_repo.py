"""The repository keeps its promises: layout, exact pins that binder/ and conda share, notebook
conventions, and a CI entry point that runs the README's test command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from conftest import LABS_DIR, ROOT, SOLUTIONS
from dlcourse.notebooks import COLAB_SETUP, read

NOTEBOOKS = SOLUTIONS + sorted(LABS_DIR.glob("*.ipynb"))


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            spec = line.split(";")[0].strip()
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.+\-]*", spec), f"not an exact pin: {line}"
            name, version = spec.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_layout_exists() -> None:
    for path in ("README.md", "Makefile", "pyproject.toml", "requirements/lock.txt", "requirements/requirements.in",
                 "environment.yml", "binder/requirements.txt", "binder/postBuild", "binder/runtime.txt",
                 "labs", "solutions", "data/README.md", "tests", "benchmarks", ".ci/run", ".gitignore",
                 "LICENSE", "LICENSE-CONTENT", ".github/workflows/ci.yml", "lib/dlcourse/__init__.py"):
        assert (ROOT / path).exists(), path
    assert "data/cache/" in (ROOT / ".gitignore").read_text()


def test_lock_is_exact_and_pins_the_cpu_installable_torch() -> None:
    pins = _lock()
    assert pins["torch"] == "2.13.0"
    for name in ("tensorflow-cpu", "tensorflow", "keras", "numpy", "jupyterlab", "papermill", "nbval", "ipywidgets"):
        assert name in pins, name
    assert pins["tensorflow"] == pins["tensorflow-cpu"]


def test_every_top_level_requirement_is_locked() -> None:
    pins = _lock()
    for line in (ROOT / "requirements" / "requirements.in").read_text().splitlines():
        name = re.split(r"[=<>;\[ ]", line.strip(), maxsplit=1)[0].lower()
        if name and not name.startswith("#"):
            assert name in pins, f"{name} is in requirements.in but not in lock.txt: run make lock"


def test_conda_and_binder_install_the_lock() -> None:
    env = (ROOT / "environment.yml").read_text()
    assert "python=3.11" in env and "-r requirements/lock.txt" in env and "-e ." in env
    binder = [line for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert "-r ../requirements/lock.txt" in binder
    assert all(line.startswith(("-r ", "--extra-index-url https://download.pytorch.org/whl/cpu")) for line in binder), \
        "binder/ must not pin anything itself: it installs the lock"
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    assert "pip install --no-deps -e ." in (ROOT / "binder" / "postBuild").read_text()


def test_package_dependencies_are_satisfied_by_the_lock() -> None:
    pins = _lock()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[=<>\[ ]", requirement, maxsplit=1)[0].lower()
        assert name in pins, f"dlcourse needs {name}, which the lock does not install"


def test_colab_cell_installs_from_the_declared_repository() -> None:
    url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert f"dlcourse @ git+{url}" in COLAB_SETUP


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme[:readme.index("## Syllabus")]
    assert "make lab" in start and "make test" in start
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE) and "DLCOURSE_DATA" in ci and "CI=true" in ci


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[f"{p.parent.name}/{p.stem}" for p in NOTEBOOKS])
def test_notebook_conventions(path: Path) -> None:
    nb = read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == COLAB_SETUP, "the first code cell must be the standard Colab set-up cell"
    for cell in code[1:]:
        src = cell.source
        assert not re.search(r"^\s*[!%]\s*pip\b", src, re.MULTILINE), "only the Colab cell installs packages"
        assert "input(" not in src, "notebooks must run headless: no input()"
        assert not re.search(r"""["'](/home/|/Users/|/work/|/tmp/|[A-Z]:\\\\)""", src), "no absolute paths"
        for line in src.splitlines():
            if line.strip().startswith("# NBVAL"):
                assert line.strip() in ("# NBVAL_IGNORE_OUTPUT", "# NBVAL_CHECK_OUTPUT", "# NBVAL_SKIP",
                                        "# NBVAL_RAISES_EXCEPTION"), f"nbval only understands the bare marker: {line!r}"
    assert nb.metadata.kernelspec.name == "python3"
