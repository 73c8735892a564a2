"""Execute one assembled submission for `dlcourse grade`, in a process of its own.

    python -m dlcourse.grade_worker NOTEBOOK RESULTS --cell-timeout S [--memory-mb M] [--max-processes P]

The grader starts this worker for each submission and kills it (with its kernel) when the whole
submission runs past its limit. The worker

- runs every cell in a fresh kernel and keeps going after a cell raises (``allow_errors``), so
  later exercises are still graded;
- interrupts a cell that runs past ``--cell-timeout`` and records it as timed out;
- keeps at most ``OUTPUT_LIMIT`` characters of printed output per cell (a notebook that prints
  megabytes cannot flood the grader);
- sets the submission's resource limits on itself first (memory, processes, file size), so the
  kernel and everything it starts inherit them;
- appends one JSON line per exercise, check or attest cell to RESULTS as soon as that cell finishes, so
  what ran before a hard stop is still reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

from dlcourse.check import CHECK_MIME
from dlcourse.runner import cell_payloads
from dlcourse.tamper import ATTEST_MIME

OUTPUT_LIMIT = 20_000  # characters of stdout/stderr kept per cell
TIMEOUT_ENAME = "CellTimeout"


class GradingClient(NotebookClient):
    """nbclient with a per-cell cap on printed output."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._printed: dict[int, int] = {}

    def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
        if msg["msg_type"] == "stream":
            used = self._printed.get(cell_index, 0)
            if used >= OUTPUT_LIMIT:
                return None  # already cut: drop the rest
            text = msg["content"].get("text", "")
            if used + len(text) > OUTPUT_LIMIT:
                msg["content"]["text"] = text[:OUTPUT_LIMIT - used] + "\n[dlcourse grade: output cut here]\n"
            self._printed[cell_index] = used + len(text)
        return super().output(outs, msg, display_id, cell_index)


def cell_record(cell: Any, cell_index: int, execute_reply: dict | None) -> dict | None:
    """What the grader needs from an exercise or check cell once it has run (None for other cells)."""
    info = cell.get("metadata", {}).get("dlcourse", {})
    role = next((r for r in ("exercise", "check", "attest") if r in info), None)
    if role is None:
        return None
    content = (execute_reply or {}).get("content", {})
    return {"cell": cell_index, "role": role, "exercise": info[role], "status": content.get("status", "ok"),
            "ename": content.get("ename", ""), "evalue": str(content.get("evalue", ""))[:500],
            "verdicts": cell_payloads(cell, ATTEST_MIME if role == "attest" else CHECK_MIME)}


def set_limits(memory_mb: int | None, max_processes: int | None, file_bytes: int | None) -> None:
    """Resource limits for this process and all it starts (the kernel and the student's processes)."""
    import resource

    for which, value in ((resource.RLIMIT_DATA, memory_mb and memory_mb * 2**20),
                         (resource.RLIMIT_NPROC, max_processes), (resource.RLIMIT_FSIZE, file_bytes)):
        if value:
            resource.setrlimit(which, (int(value), int(value)))


def execute(notebook: Path, results: Path, cell_timeout: float) -> None:
    nb = nbformat.read(str(notebook), as_version=4)
    sink = results.open("a", encoding="utf-8")

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: dict | None, **_: Any) -> None:
        record = cell_record(cell, cell_index, execute_reply)
        if record is not None:
            sink.write(json.dumps(record) + "\n")
            sink.flush()

    client = GradingClient(nb, timeout=int(cell_timeout), kernel_name="python3", allow_errors=True,
                           interrupt_on_timeout=True, startup_timeout=180, record_timing=False,
                           error_on_timeout={"ename": TIMEOUT_ENAME,
                                             "evalue": f"the cell ran past {cell_timeout:.0f} s and was interrupted",
                                             "traceback": []},
                           on_cell_executed=on_cell_executed,
                           resources={"metadata": {"path": str(notebook.parent)}})
    try:
        client.execute()
    finally:
        sink.close()
        nbformat.write(nb, str(notebook.with_suffix(".executed.ipynb")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlcourse.grade_worker")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("results", type=Path)
    parser.add_argument("--cell-timeout", type=float, default=120.0)
    parser.add_argument("--memory-mb", type=int, default=None, help="RLIMIT_DATA per process, in MiB")
    parser.add_argument("--max-processes", type=int, default=None, help="RLIMIT_NPROC (not applied to root)")
    parser.add_argument("--file-bytes", type=int, default=None, help="RLIMIT_FSIZE")
    args = parser.parse_args(argv)
    set_limits(args.memory_mb, args.max_processes, args.file_bytes)
    execute(args.notebook, args.results, args.cell_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
