"""`dlcourse progress`: what your labs' check cells last showed, lab by lab. Never writes a notebook.

Each lab notebook keeps the outputs its cells last displayed; every check verdict among them carries
a machine-readable copy (`dlcourse.check.CHECK_MIME`). This module reads those (the file's JSON
only, opened for reading) and sorts each exercise into passed, not yet, or not attempted (the
check said so, or was never run). `progress_widget` shows the same table in a notebook (lab 00).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from dlcourse.check import CHECK_MIME

LABELS = {"passed": "passed", "failed": "not yet", "not_attempted": "not attempted"}


@dataclass
class LabProgress:
    lab: str
    file: str
    exercises: dict[str, str] = field(default_factory=dict)  # id -> passed / failed / not_attempted
    problem: str = ""  # a sentence when the file could not be read

    def count(self, status: str) -> int:
        return sum(s == status for s in self.exercises.values())


def notebook_progress(path: Path) -> LabProgress:
    """Each exercise of one notebook and the verdict its cells last displayed."""
    progress = LabProgress(path.name[:2], path.name)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = [c for c in nb.get("cells", []) if isinstance(c, dict) and c.get("cell_type") == "code"]
    except (OSError, ValueError, AttributeError) as exc:
        progress.problem = f"{path.name} could not be read as a notebook ({type(exc).__name__})"
        return progress
    for cell in cells:
        info = (cell.get("metadata") or {}).get("dlcourse")
        if isinstance(info, dict) and isinstance(info.get("exercise"), str):
            progress.exercises.setdefault(info["exercise"], "not_attempted")
    for cell in cells:
        for out in cell.get("outputs") or []:
            verdict = (out.get("data") or {}).get(CHECK_MIME) if isinstance(out, dict) else None
            if isinstance(verdict, dict) and verdict.get("exercise") in progress.exercises \
                    and verdict.get("status") in LABELS:
                progress.exercises[verdict["exercise"]] = verdict["status"]
    return progress


def lab_progress(folder: Path) -> list[LabProgress]:
    """Every NN_name.ipynb in ``folder``, in order."""
    return [notebook_progress(p) for p in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))]


def format_progress(labs: list[LabProgress]) -> str:
    """One line per lab: counts, then the exercises by status."""
    if not labs:
        return "no lab notebooks (NN_name.ipynb) found there."
    lines = [f"{'lab':<4} {'passed':>6} {'not yet':>8} {'not attempted':>14}   exercises"]
    for lab in labs:
        if lab.problem:
            lines.append(f"{lab.lab:<4} {lab.problem}")
            continue
        marks = {"passed": "✓", "failed": "✗", "not_attempted": "·"}
        detail = "  ".join(f"{marks[s]} {i}" for i, s in lab.exercises.items()) or "(no exercises)"
        lines.append(f"{lab.lab:<4} {lab.count('passed'):>6} {lab.count('failed'):>8} "
                     f"{lab.count('not_attempted'):>14}   {detail}")
    lines.append("✓ passed   ✗ not yet (run the check again after fixing)   · not attempted or not run")
    return "\n".join(lines)


def progress_html(labs: list[LabProgress]) -> str:
    colour = {"passed": "#1a7f37", "failed": "#b42318", "not_attempted": "#9a6700"}
    rows = []
    for lab in labs:
        cells = " ".join(f"<span style='color:{colour[s]}' title='{LABELS[s]}'>{html.escape(i)} {LABELS[s]}</span>;"
                         for i, s in lab.exercises.items())
        rows.append(f"<tr><td>{html.escape(lab.file)}</td><td>{lab.count('passed')}/{len(lab.exercises)}</td>"
                    f"<td>{html.escape(lab.problem) or cells}</td></tr>")
    return ("<table><tr><th>lab</th><th>passed</th><th>exercises</th></tr>" + "".join(rows) + "</table>")


def progress_widget(folder: Path | str = "."):
    """The progress table with a Refresh button (ipywidgets); its text form is the static fallback."""
    folder = Path(folder)
    try:
        import ipywidgets as widgets
    except ImportError:  # no widgets: the static table
        from IPython.display import HTML

        return HTML(progress_html(lab_progress(folder)))

    class ProgressBox(widgets.VBox):
        def __repr__(self) -> str:  # what a front end without widgets (or a terminal) shows
            return format_progress(lab_progress(folder))

    table = widgets.HTML(progress_html(lab_progress(folder)))
    button = widgets.Button(description="Refresh", tooltip="read the lab notebooks again (save them first)")

    def refresh(_: object = None) -> None:
        table.value = progress_html(lab_progress(folder))

    button.on_click(refresh)
    return ProgressBox([button, table])
