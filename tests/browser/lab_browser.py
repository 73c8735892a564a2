"""A real JupyterLab in a real browser, for tests/browser/test_jupyterlab.py.

(Not named jupyterlab.py: this folder is on sys.path during the tests and would shadow the package.)

`lab_server` starts JupyterLab from this environment (the one in .venv under `make test`) on a free
loopback port with a random token, on a folder of its own, with its own settings, workspaces and
kernels folders, so nothing in the user's ~/.jupyter changes what the test sees. `LabServer.stop`
stops the server and every kernel it started.

`Notebook` drives one open notebook through JupyterLab's own menus and waits on what the page
shows (selectors and page state), never on fixed sleeps.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from dlcourse.launch import ProcessTree, free_port

# Debian's chromium, or a browser named by $DLCOURSE_CHROMIUM; Playwright never downloads one.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
START_TIMEOUT = 90.0  # seconds for JupyterLab to answer /api/status
RUN_TIMEOUT_MS = 300_000  # one "Run All Cells" of lab 00 or lab 03 in FAST mode: ~20 s idle, 127 s seen under load
START_RUN_TIMEOUT_MS = 30_000  # from the Run All click to the first cell queued

# JupyterLab user settings for the test: every cell stays in the page (no virtual scrolling, so a
# selector sees the whole notebook) and no news or update checks (no network, no pop-ups).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def find_chromium() -> str | None:
    """The browser to drive: $DLCOURSE_CHROMIUM, else Debian's chromium on PATH, else None."""
    named = os.environ.get("DLCOURSE_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


@dataclass
class LabServer:
    url: str
    token: str
    root: Path
    log: Path
    tree: ProcessTree

    def notebook_url(self, relative: str) -> str:
        return f"{self.url}/lab/tree/{relative}?reset&token={self.token}"  # reset: no tabs restored

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server and its kernels (SIGTERM, then SIGKILL after a grace period)."""
        self.tree.stop(grace=10.0)


def _write_settings(home: Path) -> dict[str, str]:
    """Private Jupyter folders under ``home``; returns the environment variables that select them."""
    folders = {name: home / name for name in ("config", "data", "runtime", "settings", "workspaces")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for relative, values in LAB_SETTINGS.items():
        path = folders["settings"] / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")
    return {"JUPYTER_CONFIG_DIR": str(folders["config"]), "JUPYTER_DATA_DIR": str(folders["data"]),
            "JUPYTER_RUNTIME_DIR": str(folders["runtime"]), "JUPYTERLAB_SETTINGS_DIR": str(folders["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(folders["workspaces"])}


def _wait_until_up(url: str, token: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    request = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode} before it answered; its log:\n"
                               + log.read_text(errors="replace")[-3000:])
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)  # polling a socket that is not listening yet, not waiting on the page
    raise RuntimeError(f"JupyterLab did not answer on {url} within {START_TIMEOUT:.0f} s; its log:\n"
                       + log.read_text(errors="replace")[-3000:])


def lab_server(root: Path, home: Path, env: dict[str, str]) -> LabServer:
    """Start JupyterLab on ``root`` (kernels inherit ``env``); returns once it answers."""
    port, token = free_port(), secrets.token_hex(24)
    log = home / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    full_env = {**os.environ, **_write_settings(home), **env}
    with open(log, "wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=full_env, cwd=root, start_new_session=True)
    server = LabServer(f"http://127.0.0.1:{port}", token, root, log, ProcessTree(proc))
    try:
        _wait_until_up(server.url, token, proc, log)
    except BaseException:
        server.stop()
        raise
    return server


# What JupyterLab shows for a traceback: a stderr output whose text has Python's traceback header.
_ERROR_OUTPUTS_JS = """els => els.filter(e => e.textContent.includes('Traceback (most recent call last)')
                                 || /^\\s*-{20,}\\s*\\n?\\s*\\w*(Error|Exception)\\b/.test(e.textContent))
                       .map(e => e.textContent.slice(-600))"""
# Run All has finished when no cell is queued or running ("[*]") and either the last code cell has an
# execution count or a cell shows an error (JupyterLab stops Run All at the first error).
_RUN_ALL_DONE_JS = """() => {
  const prompts = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]
      .map(e => e.textContent.trim());
  if (prompts.length === 0 || prompts.some(p => p.includes('*'))) return false;
  const stderr = [...document.querySelectorAll(
      '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')];
  return /\\[\\d+\\]/.test(prompts[prompts.length - 1])
      || stderr.some(e => e.textContent.includes('Traceback (most recent call last)'));
}"""

# Run All has started once any code cell is queued, running or numbered.
_RUN_ALL_STARTED_JS = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]
    .some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent))"""


class Notebook:
    """One notebook open in JupyterLab, driven the way a student drives it: menus, clicks, drags."""

    def __init__(self, page, server: LabServer, relative: str) -> None:
        self.page, self.server, self.relative = page, server, relative

    def open(self) -> Notebook:
        self.page.goto(self.server.notebook_url(self.relative))
        self.panel.locator(".jp-Notebook").wait_for(state="visible")
        self.wait_for_idle_kernel()
        return self

    @property
    def panel(self):
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")

    def wait_for_idle_kernel(self, timeout_ms: float = 90_000) -> None:
        self.page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=timeout_ms)

    def menu(self, menu: str, command: str) -> None:
        """Click a top menu (File, Edit, Run, ...) and then the entry bound to ``command``."""
        self.page.locator(".lm-MenuBar-item", has_text=menu).first.click()
        self.page.locator(f"li.lm-Menu-item[data-command='{command}']").click()

    def run_all(self, timeout_ms: float = RUN_TIMEOUT_MS) -> None:
        """Clear every output, Run All Cells, and wait until the run has finished or stopped at an error."""
        self.panel.locator(".jp-CodeCell .jp-InputPrompt").first.click()  # the menus act on the focused notebook
        self.menu("Edit", "editmenu:clear-all")
        expect(self.panel.locator(".jp-OutputArea-output")).to_have_count(0)
        self.menu("Run", "runmenu:run-all")
        try:
            self.page.wait_for_function(_RUN_ALL_STARTED_JS, timeout=START_RUN_TIMEOUT_MS, polling=100)
        except PlaywrightTimeoutError:  # a click the page did not take (seen once under load): click again
            self.menu("Run", "runmenu:run-all")
        try:
            self.page.wait_for_function(_RUN_ALL_DONE_JS, timeout=timeout_ms, polling=250)
        except PlaywrightTimeoutError as error:
            raise AssertionError(f"Run All of {self.relative} did not finish in {timeout_ms / 1000:.0f} s; "
                                 f"prompts: {self.prompts()}\nserver log:\n{self.server.log_tail()}") from error

    def prompts(self) -> list[str]:
        return self.panel.locator(".jp-CodeCell .jp-InputPrompt").evaluate_all("els => els.map(e => e.textContent.trim())")

    def errors(self) -> list[str]:
        """The text of every output that shows a Python traceback (empty when no cell failed)."""
        return self.panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']") \
            .evaluate_all(_ERROR_OUTPUTS_JS)

    def output_texts(self) -> list[str]:
        return self.panel.locator(".jp-OutputArea-output").evaluate_all("els => els.map(e => e.innerText)")

    def screenshot(self, path: Path, locator=None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if locator is not None:
            locator.scroll_into_view_if_needed()
        self.page.screenshot(path=str(path))


def slider(panel, label: str):
    """The ipywidgets slider whose description is ``label`` (its noUiSlider handle is what a mouse drags)."""
    return panel.locator(".widget-slider", has=panel.page.locator("label.widget-label", has_text=label)).first


def drag_slider(page, widget, fraction: float) -> None:
    """Drag the slider's handle by ``fraction`` of the track width, as a mouse would, and release it."""
    handle, track = widget.locator(".noUi-handle").first, widget.locator(".noUi-target").first
    handle.scroll_into_view_if_needed()
    box, width = handle.bounding_box(), track.bounding_box()["width"]
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + fraction * width, y, steps=8)
    page.mouse.up()


def log_console_text(page) -> str:
    """What JupyterLab's log console holds (where a widget callback's traceback goes), or a note."""
    status = page.locator(".jp-LogConsoleStatusItem")
    if status.count() == 0:
        return "(JupyterLab shows no log console)"
    status.first.click()
    console = page.locator(".jp-LogConsolePanel")
    console.first.wait_for(state="visible")
    return console.first.inner_text()[-1500:] or "(the log console is empty)"


def expect_slider_to_change_output(page, box, label: str, fraction: float = 0.3, timeout_ms: float = 30_000) -> str:
    """Drag the slider ``label`` inside the widget ``box``; assert that the widget's text and plot change.

    Returns the new text. Fails with a sentence (and JupyterLab's log console, where a callback's
    traceback goes) when the slider moved but the output stayed the same.
    """
    widget = slider(box, label)
    expect(widget, f"the widget has no visible slider labelled {label!r}").to_be_visible()
    readout, text, image = (widget.locator(".widget-readout"), box.locator(".widget-html-content").first,
                            box.locator(".widget-output img").first)
    value, before, picture = readout.inner_text(), text.inner_text(), image.get_attribute("src")
    drag_slider(page, widget, fraction)
    expect(readout, f"dragging the {label!r} slider did not move it").not_to_have_text(value)
    try:
        expect(text).not_to_have_text(before, timeout=timeout_ms)
        expect(image).not_to_have_attribute("src", picture or "", timeout=timeout_ms)
    except AssertionError:
        raise AssertionError(
            f"moving the {label!r} slider from {value} to {readout.inner_text()} did not change the widget's "
            f"text or plot within {timeout_ms / 1000:.0f} s, so its callback failed or never ran. "
            f"JupyterLab's log console says:\n{log_console_text(page)}") from None
    return text.inner_text()
