"""Shared fixtures (the verified data copy, an isolated data environment, a loopback server); the
notebook runs (each solution's probed copy and each unsolved lab, once, under nbval); `--lab NN`;
and the table of notebook run times."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest
from nbval.plugin import IPyNbFile

from dlcourse.launch import shared_core_env

# Under pytest-xdist each worker, and every kernel and process it starts, gets its share of the cores
# (set before any test module imports torch, NumPy or TensorFlow).
os.environ.update(shared_core_env(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)))

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
LABS_DIR = ROOT / "labs"
# Seconds each notebook run took in this session: {(notebook stem, which run): seconds}.
NOTEBOOK_TIMES = pytest.StashKey[dict]()


def _shared_data() -> Path | None:
    for candidate in (os.environ.get("DLCOURSE_DATA"), ROOT.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "mnist").is_dir():
            return Path(candidate).resolve()
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The verified data folder ($DLCOURSE_DATA or ../shared/data)."""
    found = _shared_data()
    if found is None:
        pytest.skip("needs the verified data: set DLCOURSE_DATA or put shared/data beside the checkout")
    return found


@pytest.fixture
def isolated_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $DLCOURSE_DATA, downloads allowed, an empty cache in tmp_path/cache (returned)."""
    cache = tmp_path / "cache"
    monkeypatch.delenv("DLCOURSE_DATA", raising=False)
    monkeypatch.delenv("DLCOURSE_OFFLINE", raising=False)
    monkeypatch.delenv("DLCOURSE_MIRROR", raising=False)
    monkeypatch.setenv("DLCOURSE_CACHE", str(cache))
    return cache


@pytest.fixture
def mnist_copy(shared_data: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the MNIST files (tmp_path/copy/mnist/...); returns tmp_path/copy."""
    copy = tmp_path / "copy"
    shutil.copytree(shared_data / "mnist", copy / "mnist")
    return copy


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture
def file_server():
    """Serve a folder over HTTP on 127.0.0.1; yields a function folder -> base URL."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------ options

def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--lab", metavar="NN", default=None,
                     help="run only the tests about lab NN: its checks, widgets, notebooks (make test LAB=NN)")
    parser.addoption("--solutions-dir", default=str(ROOT / "solutions"),
                     help="the solution notebooks to run (their labs are in the labs/ beside it); the "
                          "suite's own broken fixtures use another")


_CONFIG: list[pytest.Config] = []  # this session's config, for the report hook (which is not given it)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[NOTEBOOK_TIMES] = {}
    _CONFIG[:] = [config]
    # The notebooks' kernels inherit these: FAST mode (as `make test` sets it) and the verified data.
    os.environ.setdefault("DLCOURSE_FAST", "1")
    found = _shared_data()
    if found is not None and not os.environ.get("DLCOURSE_DATA"):
        os.environ["DLCOURSE_DATA"] = str(found)


def selected_lab(config: pytest.Config) -> str | None:
    lab = config.getoption("--lab")
    if lab is None or lab == "":
        return None
    if not re.fullmatch(r"\d{1,2}", str(lab)):
        raise pytest.UsageError(f"--lab takes a lab number such as 07, not {lab!r}")
    return str(lab).zfill(2)


# A notebook name in a test id: probed/07_keras_cnn.ipynb, [07_keras_cnn], [solutions/07_keras_cnn].
_NOTEBOOK_IN_ID = re.compile(r"(?<![0-9])(\d\d)_[a-z][a-z0-9_]*(?:\.ipynb|\])")


def item_labs(item: pytest.Item) -> set[str]:
    """The labs a test is about: a `lab` marker, a file named *_labNN.py, or a notebook in its id."""
    labs = {str(arg).zfill(2) for mark in item.iter_markers("lab") for arg in mark.args}
    named = re.search(r"_lab(\d\d)\.py$", item.path.name)
    if named:
        labs.add(named.group(1))
    labs.update(_NOTEBOOK_IN_ID.findall(item.nodeid))
    return labs


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lab = selected_lab(config)
    if lab is None:
        return
    keep = [item for item in items if lab in item_labs(item)]
    config.hook.pytest_deselected(items=[item for item in items if lab not in item_labs(item)])
    items[:] = keep


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    times = config.stash[NOTEBOOK_TIMES]
    if not times:
        return
    runs = sorted({run for _, run in times})
    rows = [["notebook (FAST)", *runs]] + [
        [stem, *(f"{times[(stem, run)]:.1f} s" if (stem, run) in times else "-" for run in runs)]
        for stem in sorted({stem for stem, _ in times})]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    terminalreporter.section("notebook run times")
    for row in rows:
        terminalreporter.write_line("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))


# ------------------------------------------------------------------------------ notebook runs

def _runs_dir(config: pytest.Config) -> Path:
    """build/test-runs/ beside the solutions folder: the notebook copies the suite runs, kept for inspection."""
    return Path(config.getoption("--solutions-dir")).resolve().parent / "build" / "test-runs"


class TimedNotebook(IPyNbFile):
    """nbval's notebook collector: one test per code cell, one kernel for the notebook."""

    subfolder = "notebooks"  # where the copies run, in build/test-runs/


class ProbedSolution(TimedNotebook):
    subfolder = "probed"


class UnsolvedLab(TimedNotebook):
    subfolder = "unsolved"


# A row of the table of notebook run times, from the folder a copy runs in.
RUN_NAMES = {ProbedSolution.subfolder: "solution, probed", UnsolvedLab.subfolder: "lab, unsolved"}
_NOTEBOOK_RUN = re.compile(r"test-runs/(\w+)/(\d\d_\w+)\.ipynb::")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add each notebook cell's setup, call and teardown time (the kernel starts in the first cell's
    setup and stops in the last one's teardown) to its notebook's row. Reports reach this hook in
    the main process also when pytest-xdist runs the tests in workers."""
    found = _NOTEBOOK_RUN.search(report.nodeid)
    if found and found.group(1) in RUN_NAMES and _CONFIG:
        times = _CONFIG[0].stash[NOTEBOOK_TIMES]
        key = (found.group(2), RUN_NAMES[found.group(1)])
        times[key] = times.get(key, 0.0) + report.duration


class NotebookRunsModule(pytest.Module):
    """A test module's own tests, then one nbval notebook per (selected) lab, made by `prepare`.

    test_solutions.py runs each solution's probed copy (dlcourse.exercises.probe_notebook): the
    solution's cells with their stored outputs, which nbval compares, and probe cells that assert
    each check's verdict in the kernel. test_labs.py runs each student lab as it ships, unsolved,
    with a last cell that asserts every check said "not attempted". The copies run in
    build/test-runs/, another folder than solutions/ and labs/, as a student's copy would."""

    folder = "solutions"
    collector: type[TimedNotebook] = ProbedSolution

    def prepare(self, path: Path):
        raise NotImplementedError

    def source_dir(self) -> Path:
        return Path(self.config.getoption("--solutions-dir")).resolve().parent / self.folder

    def collect(self):
        from dlcourse.notebooks import lab_number, write

        yield from super().collect()
        lab = selected_lab(self.config)
        for path in sorted(self.source_dir().glob("[0-9][0-9]_*.ipynb")):
            if lab and lab_number(path) != lab:
                continue
            target = _runs_dir(self.config) / self.collector.subfolder / path.name
            write(self.prepare(path), target)
            notebook = self.collector.from_parent(self, path=target)
            notebook.add_marker("notebook")
            yield notebook


class SolutionsModule(NotebookRunsModule):
    def prepare(self, path: Path):
        from dlcourse.exercises import probe_notebook
        from dlcourse.notebooks import lab_number, read

        return probe_notebook(read(path), lab_number(path))[0]


class LabsModule(NotebookRunsModule):
    folder, collector = "labs", UnsolvedLab

    def prepare(self, path: Path):
        from dlcourse.exercises import unsolved_notebook
        from dlcourse.notebooks import read

        return unsolved_notebook(read(path))


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    modules = {"test_solutions.py": SolutionsModule, "test_labs.py": LabsModule}
    if module_path.name in modules and module_path.parent.name == "notebooks":
        return modules[module_path.name].from_parent(parent, path=module_path)
    return None
