"""dlcourse.runner: reading verdicts and metrics from executed notebooks, the course table."""

from __future__ import annotations

from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from dlcourse.check import CHECK_MIME, CheckResult
from dlcourse.runner import METRIC_MIME, RunResult, check_results, format_table, metrics


def test_results_and_metrics_are_read_from_outputs() -> None:
    passed = CheckResult("00.1", "t", "passed", "ok")._repr_mimebundle_()
    cell = new_code_cell("check(x)")
    cell.outputs = [new_output("display_data", data=passed), new_output("stream", text="noise")]
    metric = new_code_cell("record_metric(...)")
    metric.outputs = [new_output("display_data", data={"text/plain": "acc: 0.99", METRIC_MIME: {"name": "acc", "value": 0.99, "unit": ""}})]
    nb = new_notebook(cells=[new_code_cell("x = 1"), cell, metric])
    assert [(r["exercise"], r["status"], r["cell"]) for r in check_results(nb)] == [("00.1", "passed", 1)]
    assert metrics(nb) == [{"name": "acc", "value": 0.99, "unit": "", "cell": 2}]
    assert CHECK_MIME in passed


def test_course_table_lines_up() -> None:
    rows = [RunResult("00", "ok", 12.34, 2, 2, "datasets verified = 3/3", "", Path("x"), 812.4),
            RunResult("01", "failed", 1.0, 0, 4, "", "cell 7: ValueError: boom", Path("y"))]
    table = format_table(rows).splitlines()
    assert table[0].split() == ["lab", "status", "seconds", "peak", "MB", "checks", "key", "metric"]
    assert table[2].split()[:5] == ["00", "ok", "12.3", "812", "2/2"] and table[2].endswith("datasets verified = 3/3")
    assert table[3].split()[:4] == ["01", "failed", "1.0", "n/a"]
    assert table[3].endswith("cell 7: ValueError: boom")
    assert len({line.index("checks") if "checks" in line else None for line in table[:1]}) == 1


def test_peak_memory_sees_a_child_that_allocates() -> None:
    import subprocess
    import sys

    from dlcourse.runner import PeakMemory

    with PeakMemory(interval=0.05) as memory:
        subprocess.run([sys.executable, "-c", "import time; block = bytearray(300 * 2**20); time.sleep(0.5)"], check=True)
    if Path("/proc/self/status").is_file():
        assert memory.peak_mb is not None and memory.peak_mb > 300
