"""Run notebooks headless with papermill and summarise them: status, seconds, checks, key metric.

A notebook reports its key result with `record_metric`; checks report themselves (see
`dlcourse.check`). Both travel as JSON inside the executed notebook, so nothing is parsed
out of printed text.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from dlcourse.check import CHECK_MIME
from dlcourse.gates import bounds_of, describe, gates

if TYPE_CHECKING:  # nbformat is imported only where a notebook is read: a lab's kernel never pays for it
    from nbformat import NotebookNode

METRIC_MIME = "application/vnd.dlcourse.metric+json"


# Every metric recorded in this process (the test suite's last probe cell checks there is one).
RECORDED: list[dict] = []


def record_metric(name: str, value: Any, unit: str = "", *, at_least: float | None = None,
                  at_most: float | None = None) -> None:
    """Show a lab's key result and record it for `make course` (e.g. test accuracy).

    ``at_least`` / ``at_most`` declare the bound the full-mode result must meet (see dlcourse.gates);
    write them as literal numbers."""
    from IPython.display import display

    payload = {"name": name, "value": value, "unit": unit, **bounds_of(at_least, at_most)}
    RECORDED.append(payload)
    text = f"{name}: {value}{(' ' + unit) if unit else ''}"
    display({"text/plain": text, METRIC_MIME: payload}, raw=True)


def cell_payloads(cell: NotebookNode, mime: str) -> list[dict]:
    """The JSON payloads of type `mime` among one cell's outputs."""
    return [out["data"][mime] for out in cell.get("outputs", []) if mime in out.get("data", {})]


def _outputs_with(nb: NotebookNode, mime: str) -> list[dict]:
    return [{**payload, "cell": index} for index, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for payload in cell_payloads(cell, mime)]


def check_results(nb: NotebookNode) -> list[dict]:
    """Every check verdict shown in an executed notebook, in order, with its cell index."""
    return _outputs_with(nb, CHECK_MIME)


def metrics(nb: NotebookNode) -> list[dict]:
    return _outputs_with(nb, METRIC_MIME)


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the kernels started inside the block."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


class PeakMemory:
    """Samples the memory of this process's children (the kernel and anything it starts) in a thread.

    `peak_mb` is the largest of: any one child's own high-water mark (Linux VmHWM, which the kernel
    keeps exactly) and the sampled sum of all children's resident memory. Elsewhere than Linux it
    stays None. Use as a context manager around a notebook run.
    """

    def __init__(self, interval: float = 0.25) -> None:
        import threading

        self.interval = interval
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _children_kb() -> list[tuple[int, int]]:
        """(VmRSS, VmHWM) in kB of every descendant process, read from /proc."""
        import psutil

        sizes = []
        for child in psutil.Process().children(recursive=True):
            try:
                fields = dict(line.split(":", 1) for line in Path(f"/proc/{child.pid}/status").read_text().splitlines())
                sizes.append((int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])))
            except (OSError, KeyError, ValueError, psutil.Error):
                continue  # the process ended between listing and reading, or is not Linux
        return sizes

    def _sample(self) -> None:
        sizes = self._children_kb()
        if sizes:
            kb = max(sum(rss for rss, _ in sizes), max(hwm for _, hwm in sizes))
            self.peak_mb = max(self.peak_mb or 0.0, kb / 1024)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "PeakMemory":
        if Path("/proc/self/status").is_file():
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


@dataclass
class RunResult:
    lab: str
    status: str  # "ok", "failed" or "timeout"
    seconds: float
    checks_passed: int
    checks_total: int
    metric: str
    error: str
    output: Path
    peak_mb: float | None = None  # peak memory of the kernel's processes, where it can be measured
    metrics: list[dict] = field(default_factory=list)  # the recorded metric payloads, bounds included
    fast: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def execute(path: str | Path, output: str | Path, *, fast: bool, timeout: float | None = None,
            parameters: dict | None = None, inject: bool = True) -> RunResult:
    """Execute a notebook with papermill; FAST goes in as a parameter and as $DLCOURSE_FAST.

    ``inject=False`` passes no parameters (papermill then adds no cell), for in-place refreshes.
    """
    import papermill as pm
    from nbformat import NotebookNode
    from papermill.exceptions import PapermillExecutionError

    from dlcourse.notebooks import lab_number, read

    path, output = Path(path).resolve(), Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    status, error = "ok", ""
    with _environment(DLCOURSE_FAST="1" if fast else "0"), PeakMemory() as memory:
        try:
            pm.execute_notebook(str(path), str(output),
                                parameters={"FAST": fast, **(parameters or {})} if inject else None,
                                cwd=str(path.parent), progress_bar=False, log_output=False,
                                execution_timeout=timeout)
        except PapermillExecutionError as exc:
            status, error = "failed", f"cell {exc.cell_index}: {exc.ename}: {exc.evalue}"[:500]
        except Exception as exc:  # kernel died, timeout, bad notebook
            timed_out = "timeout" in type(exc).__name__.lower() or "timed out" in str(exc).lower()
            status, error = ("timeout" if timed_out else "failed"), f"{type(exc).__name__}: {exc}"[:500]
    seconds = time.perf_counter() - start
    nb = read(output) if output.is_file() else NotebookNode(cells=[])
    checks = check_results(nb)
    found = [{k: v for k, v in m.items() if k != "cell"} for m in metrics(nb)]
    metric = "; ".join(describe(m, fast) for m in found)
    return RunResult(lab_number(path), status, seconds, sum(c["status"] == "passed" for c in checks),
                     len(checks), metric, error, output, memory.peak_mb, found, fast)


def missed_bounds(results: list[RunResult]) -> list[str]:
    """A sentence for each full-mode result that misses (or cannot be held to) its declared bound."""
    return [f"lab {r.lab}: {gate.sentence()}." for r in results if not r.fast
            for gate in gates(r.metrics) if gate.met is not True]


def refresh_outputs(path: str | Path, *, fast: bool = False, timeout: float | None = None) -> RunResult:
    """Re-execute a solution notebook and store its fresh outputs in place (full mode by default)."""
    import tempfile

    from dlcourse.notebooks import read, write

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        result = execute(path, Path(tmp) / path.name, fast=fast, timeout=timeout, inject=False)
        if result.ok:
            nb = read(result.output)
            nb.metadata.pop("papermill", None)
            for cell in nb.cells:
                cell.metadata.pop("papermill", None)
                cell.metadata.pop("execution", None)
            write(nb, path)
    result.output = path
    return result


def run_all(notebooks: list[Path], out_dir: str | Path, *, fast: bool, timeout: float | None = None) -> list[RunResult]:
    """Execute each notebook into out_dir, with a progress bar; keeps going after a failure."""
    from tqdm.auto import tqdm

    results = []
    for nb_path in tqdm(notebooks, desc="labs", unit="lab", disable=len(notebooks) < 2):
        results.append(execute(nb_path, Path(out_dir) / nb_path.name, fast=fast, timeout=timeout))
    return results


def format_table(results: list[RunResult]) -> str:
    """The table `make course` prints: lab, status, seconds, peak memory, checks passed, key metric."""
    rows = [("lab", "status", "seconds", "peak MB", "checks", "key metric")]
    for r in results:
        memory = "n/a" if r.peak_mb is None else f"{r.peak_mb:.0f}"
        rows.append((r.lab, r.status, f"{r.seconds:.1f}", memory, f"{r.checks_passed}/{r.checks_total}",
                     r.metric or r.error or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths)) + "  " + row[5] for row in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)
