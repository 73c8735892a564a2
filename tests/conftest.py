"""Shared fixtures: the verified data copy, an isolated data environment, a loopback server."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
LABS_DIR = ROOT / "labs"
RUNS = ROOT / "build" / "test-runs"  # executed notebooks from the tests, kept for inspection
# Seconds per cell in the papermill runs (the slowest FAST cell takes well under a minute). A cell
# past it is a hang: see run_notebook.
CELL_TIMEOUT = 300


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
