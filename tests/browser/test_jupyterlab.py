"""The course as a student meets it: JupyterLab in Debian's Chromium, driven by Playwright.

One JupyterLab (from this environment, on a free loopback port with a random token) serves a
temporary copy of labs/ and solutions/. The tests open notebooks, click Run All Cells, read what the
page shows, and drag a widget's slider with the mouse. Screenshots go to build/screenshots/.
Chromium comes from the system (`make test` installs Debian's package when it is missing);
Playwright never downloads a browser.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from lab_browser import (
    CHROMIUM_ARGS,
    LabServer,
    Notebook,
    expect_slider_to_change_output,
    find_chromium,
    lab_server,
)
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
LAB00, LAB03 = "00_setup.ipynb", "03_losses_activations.ipynb"
EXPLORER_SLIDER = "layers"  # lab 03's activation_explorer: number of layers the gradient passes through

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        message = ("no Chromium to drive: `make test` installs Debian's chromium with apt-get "
                   "(scripts/install_chromium.sh); elsewhere set DLCOURSE_CHROMIUM=/path/to/chrome")
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must run the browser test for real
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def server(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """JupyterLab on a temporary copy of labs/ and solutions/, stopped (with its kernels) afterwards."""
    home = tmp_path_factory.mktemp("jupyterlab")
    root = home / "course"
    for folder in ("labs", "solutions"):
        shutil.copytree(ROOT / folder, root / folder)
    env = {"DLCOURSE_FAST": "1", "DLCOURSE_DATA": str(shared_data), "DLCOURSE_OFFLINE": "1"}
    lab = lab_server(root, home, env)
    try:
        yield lab
    finally:
        lab.stop()
        left = lab.tree.alive()
        assert not left, f"JupyterLab left processes running after it was stopped: {[p.pid for p in left]}"


@pytest.fixture(scope="module")
def browser(chromium: str):
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest):
    """A fresh browser tab; when its test fails, what the page showed is saved next to the screenshots."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    failed_before = request.session.testsfailed
    tab = context.new_page()
    yield tab
    if request.session.testsfailed > failed_before:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(SCREENSHOTS / f"FAILED-{request.node.name}.png"))
    context.close()


def check_lines(notebook: Notebook) -> list[str]:
    return [text for text in notebook.output_texts() if text.startswith("Exercise ")]


@pytest.mark.lab("00")
def test_solution_of_lab00_runs_and_its_checks_pass(server: LabServer, page) -> None:
    notebook = Notebook(page, server, f"solutions/{LAB00}").open()
    notebook.run_all()
    assert notebook.errors() == [], f"a cell of solutions/{LAB00} failed in JupyterLab: {notebook.errors()}"
    assert all(re.fullmatch(r"\[\d+\]:", p) for p in notebook.prompts()), notebook.prompts()
    checks = check_lines(notebook)
    assert len(checks) == 2 and all("✅ passed" in c for c in checks), checks
    notebook.screenshot(SCREENSHOTS / "lab00-solution-checks.png",
                        notebook.panel.locator(".jp-OutputArea-output", has_text="✅ passed").last)


@pytest.mark.lab("00")
def test_student_lab00_says_not_attempted_yet(server: LabServer, page) -> None:
    notebook = Notebook(page, server, f"labs/{LAB00}").open()
    notebook.run_all()
    assert notebook.errors() == [], f"the unsolved labs/{LAB00} shows a traceback: {notebook.errors()}"
    checks = check_lines(notebook)
    assert len(checks) == 2 and all("not attempted yet" in c for c in checks), checks
    notebook.screenshot(SCREENSHOTS / "lab00-student-not-attempted.png",
                        notebook.panel.locator(".jp-OutputArea-output", has_text="not attempted yet").first)


def _explorer(notebook: Notebook):
    label = notebook.page.locator("label.widget-label").get_by_text(EXPLORER_SLIDER, exact=True)
    return notebook.panel.locator(".jupyter-widgets.widget-vbox", has=label).first


@pytest.mark.lab("03")
def test_widget_explorer_renders_and_answers_the_slider(server: LabServer, page) -> None:
    notebook = Notebook(page, server, f"solutions/{LAB03}").open()
    notebook.run_all()
    assert notebook.errors() == [], f"a cell of solutions/{LAB03} failed in JupyterLab: {notebook.errors()}"
    explorer = _explorer(notebook)
    expect(explorer, "lab 03's activation explorer did not render").to_be_visible()
    notebook.screenshot(SCREENSHOTS / "lab03-explorer-before.png", explorer)
    after = expect_slider_to_change_output(page, explorer, EXPLORER_SLIDER)
    assert re.search(r"after \d+ layers", after), after
    notebook.screenshot(SCREENSHOTS / "lab03-explorer-after.png", explorer)


@pytest.mark.lab("03")
def test_a_widget_whose_callback_raises_fails_the_check(server: LabServer, page) -> None:
    """The slider check above is not vacuous: break the explorer's callback and it fails, saying why."""
    broken = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                               "language": "python"}})
    broken.cells = [nbformat.v4.new_code_cell(
        "import dlcourse.widgets as widgets\n"
        "explorer = widgets.activation_explorer()\n"
        "widgets.activation_summary = lambda *args: 1 / 0  # every later slider move raises in the callback\n"
        "explorer")]
    nbformat.write(broken, server.root / "broken_widget.ipynb")
    notebook = Notebook(page, server, "broken_widget.ipynb").open()
    notebook.run_all()
    explorer = _explorer(notebook)
    with pytest.raises(AssertionError, match=r"(?s)did not change the widget's text.*ZeroDivisionError") as failure:
        expect_slider_to_change_output(page, explorer, EXPLORER_SLIDER, timeout_ms=5_000)
    notebook.screenshot(SCREENSHOTS / "broken-widget-log-console.png")
    (SCREENSHOTS / "broken-widget-message.txt").write_text(str(failure.value), encoding="utf-8")
