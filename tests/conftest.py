"""Shared fixtures (the verified data copy, an isolated data environment, a loopback server), the
one probed nbval run of each solution notebook, `--lab NN`, and the table of notebook run times."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
from nbval.plugin import IPyNbFile

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
LABS_DIR = ROOT / "labs"
RUNS = ROOT / "build" / "test-runs"  # executed notebooks from the tests, kept for inspection
# Seconds per cell in the papermill runs (the slowest FAST cell takes well under a minute). A cell
# past it is a hang: see run_notebook.
CELL_TIMEOUT = 300


# Seconds each notebook run took in this session: {(notebook stem, which run): seconds}.
NOTEBOOK_TIMES = pytest.StashKey[dict]()


def run_notebook(path: Path, output: Path, **kwargs: object):
    """runner.execute in FAST mode, run a second time (with a warning) only when a cell timed out.

    nbclient can wait forever for the reply to a cell that displays a widget although the kernel is
    idle (jupyter/nbclient#312); it hit one of about 80 widget cells in our CI runs. A real endless
    loop times out twice and still fails; an error fails at once."""
    import warnings

    from dlcourse.runner import execute

    result = execute(path, output, fast=True, timeout=CELL_TIMEOUT, **kwargs)
    if result.status == "timeout":
        warnings.warn(f"{path.name} timed out ({result.error[:200]}); running it once more", stacklevel=2)
        result = execute(path, output, fast=True, timeout=CELL_TIMEOUT, **kwargs)
    return result


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
                     help="where the solution notebooks to probe live (the tests' own fixtures use another)")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[NOTEBOOK_TIMES] = {}


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


# ------------------------------------------------------------------------------ probed solutions

def probed_dir(config: pytest.Config) -> Path:
    """Where the probed copies go: build/test-runs/probed/ beside the solutions folder."""
    return Path(config.getoption("--solutions-dir")).resolve().parent / "build" / "test-runs" / "probed"


class ProbedNotebook(IPyNbFile):
    """nbval's notebook collector, timed: its kernel starts in setup and stops in teardown."""

    def setup(self) -> None:
        self._started = time.perf_counter()
        super().setup()

    def teardown(self) -> None:
        super().teardown()
        if hasattr(self, "_started"):
            self.config.stash[NOTEBOOK_TIMES][(self.path.stem, "solution, probed")] = time.perf_counter() - self._started


class SolutionsModule(pytest.Module):
    """tests/notebooks/test_solutions.py: its own tests, then the probed copy of every solution
    (only lab NN's under --lab NN), each one nbval notebook whose cells are tests.

    The copy (dlcourse.exercises.probe_notebook) holds the solution's cells with their stored
    outputs, which nbval compares, and probe cells that assert each check's verdict in the kernel;
    it runs in build/test-runs/probed/, another folder than solutions/, as a student's copy would."""

    def collect(self):
        from dlcourse.exercises import probe_notebook
        from dlcourse.notebooks import lab_number, read, write

        yield from super().collect()
        lab = selected_lab(self.config)
        for path in sorted(Path(self.config.getoption("--solutions-dir")).glob("[0-9][0-9]_*.ipynb")):
            if lab and lab_number(path) != lab:
                continue
            probed, _ = probe_notebook(read(path), lab_number(path))
            target = probed_dir(self.config) / path.name
            write(probed, target)
            notebook = ProbedNotebook.from_parent(self, path=target)
            notebook.add_marker("notebook")
            yield notebook


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if module_path.name == "test_solutions.py":
        return SolutionsModule.from_parent(parent, path=module_path)
    return None
