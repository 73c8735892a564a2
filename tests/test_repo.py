"""The repository keeps its promises: layout, exact pins that binder/ and conda share, notebook
conventions, and a CI entry point that runs the README's test command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

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


def _repo2docker() -> str:
    found = shutil.which("jupyter-repo2docker") or str(Path(sys.executable).with_name("jupyter-repo2docker"))
    if not Path(found).exists():
        pytest.fail("jupyter-repo2docker is missing from this environment: it is in requirements/lock.txt (make install)")
    return found


def test_repo2docker_renders_binder_as_one_python311_environment_from_the_lock() -> None:
    """What Binder builds, rendered without a Docker engine (`--no-build --debug` prints the Dockerfile)."""
    done = subprocess.run([_repo2docker(), "--no-build", "--no-run", "--debug", str(ROOT)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"repo2docker could not render binder/: {done.stderr[-2000:]}"
    dockerfile = done.stdout + done.stderr
    assert "Building conda environment for python=3.11" in dockerfile, "binder/runtime.txt should give Python 3.11"
    # One environment for JupyterLab and the kernel, so the widgets' front end matches ipywidgets.
    assert "ENV KERNEL_PYTHON_PREFIX=${NB_PYTHON_PREFIX}" in dockerfile
    steps = [dockerfile.index(step) for step in (
        "COPY --chown=0:0 src/ ${REPO_DIR}/",  # the whole repository, so ../requirements/lock.txt is there
        '${KERNEL_PYTHON_PREFIX}/bin/pip install --no-cache-dir -r "binder/requirements.txt"',
        "RUN ./binder/postBuild")]
    assert steps == sorted(steps), "repo2docker must copy the repository, install the lock, then run postBuild"


def test_package_dependencies_are_satisfied_by_the_lock() -> None:
    pins = _lock()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[=<>\[ ]", requirement, maxsplit=1)[0].lower()
        assert name in pins, f"dlcourse needs {name}, which the lock does not install"


def test_colab_cell_installs_from_the_declared_repository() -> None:
    assert f"dlcourse @ git+{_repository()}" in COLAB_SETUP


def _repository() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def test_readme_syllabus_opens_every_lab_on_colab_and_binder() -> None:
    readme = (ROOT / "README.md").read_text()
    slug = _repository().removeprefix("https://github.com/")
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if re.match(r"\| \d\d \|", line)}
    labs = sorted(LABS_DIR.glob("[0-9][0-9]_*.ipynb"))
    assert sorted(rows) == [lab.name[:2] for lab in labs], "one syllabus row per lab in labs/"
    for lab in labs:
        row = rows[lab.name[:2]]
        number, title, goal, colab, binder = (cell.strip() for cell in row.strip("| ").split(" | "))
        assert f"(labs/{lab.name})" in title and len(goal.split()) >= 5, row
        assert colab.endswith(f"(https://colab.research.google.com/github/{slug}/blob/main/labs/{lab.name})"), colab
        assert binder.endswith(f"(https://mybinder.org/v2/gh/{slug}/main?labpath=labs%2F{lab.name})"), binder


def test_readme_shows_a_screenshot_from_the_browser_test() -> None:
    images = re.findall(r"!\[[^\]]+\]\((docs/images/[^)]+\.png)\)", (ROOT / "README.md").read_text())
    assert images, "the README shows a screenshot of a lab in JupyterLab"
    for image in images:
        assert (ROOT / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{image} is not a PNG"


def _workflow_steps(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_ci_workflows_cpu_gpu_and_a_weekly_canary_on_the_newest_releases() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    triggers, jobs = workflow[True], workflow["jobs"]  # YAML 1.1 reads the key `on` as True
    assert any("cron" in entry for entry in triggers["schedule"]), "the canary runs on a weekly schedule"
    assert "make test" in _workflow_steps(jobs["cpu"]) and "schedule" in jobs["cpu"]["if"]
    gpu = _workflow_steps(jobs["gpu"])
    assert jobs["gpu"]["runs-on"] == ["self-hosted", "gpu"] and "make course" in gpu and "FAST" not in gpu
    weekly = _workflow_steps(jobs["course-cpu"])
    assert "schedule" in jobs["course-cpu"]["if"] and "make course" in weekly and "FAST" not in weekly, \
        "a weekly CPU job runs every lab in full mode, bounds enforced"
    canary = _workflow_steps(jobs["canary"])
    assert "schedule" in jobs["canary"]["if"] and "make test" in canary and "-r requirements/lock.txt" not in canary
    # The canary's requirements: requirements.in with torch's pin removed, so nothing is held back.
    sed = re.search(r"sed -e '([^']+)' requirements/requirements.in", canary).group(1)
    unpinned = subprocess.run(["sed", "-e", sed, str(ROOT / "requirements" / "requirements.in")], check=True,
                              capture_output=True, text=True).stdout
    assert "torch\n" in unpinned and not re.search(r"^[\w.\-\[\]]+ *==", unpinned, re.MULTILINE), unpinned


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
        assert "os.chdir" not in src and "\"../" not in src and "'../" not in src, \
            "notebooks must run from any working directory (Colab, Binder, a copy in a temporary folder)"
        assert not re.search(r"""["'](/home/|/Users/|/work/|/tmp/|[A-Z]:\\\\)""", src), "no absolute paths"
        assert "NBVAL" not in src.upper(), \
            f"say what nbval should do with a cell tag (nbval-ignore-output), not a comment: {src[:80]!r}"
    assert nb.metadata.kernelspec.name == "python3"


NBVAL_TAGS = {"nbval-ignore-output", "nbval-check-output", "nbval-skip", "nbval-raises-exception", "raises-exception"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[f"{p.parent.name}/{p.stem}" for p in NOTEBOOKS])
def test_students_meet_no_ci_plumbing(path: Path) -> None:
    """Test tooling stays in cell tags and metadata: no cell a student reads names nbval, papermill, pytest or CI."""
    for index, cell in enumerate(read(path).cells):
        assert not re.search(r"nbval|papermill|pytest|\bCI\b", cell.source, re.IGNORECASE), \
            f"cell {index} of {path.name} talks about the test tooling: {cell.source[:120]!r}"
        tags = cell.metadata.get("tags", [])
        assert all(tag in NBVAL_TAGS or not tag.startswith("nbval") for tag in tags), f"cell {index}: unknown tag in {tags}"
        if "nbval-ignore-output" in tags:
            assert cell.cell_type == "code" and cell.metadata.get("dlcourse", {}).get("output_varies"), \
                f"cell {index} of {path.name}: say why its output is not compared in metadata dlcourse.output_varies"


def test_labs_carry_the_solutions_nbval_tags() -> None:
    for solution in SOLUTIONS:
        tags = [c.metadata.get("tags", []) for c in read(solution).cells]
        assert tags == [c.metadata.get("tags", []) for c in read(LABS_DIR / solution.name).cells], solution.name


def test_test_modules_have_unique_names() -> None:
    """pytest imports test files by their bare name (tests/ has no __init__.py), so two test_x.py
    in different folders would stop the whole run with "import file mismatch"."""
    names = [p.name for p in (ROOT / "tests").rglob("*.py") if p.name != "conftest.py"]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
