"""Prove every exercise check is fair: it accepts the solution, and rejects the stub and the
typical wrong answers the lab registers.

`probe_notebook` makes one notebook out of a solution: after each check cell it inserts the
exercise cell in its lab (stub) form and in each registered wrong form, each followed by the
check again, and then the solution cell once more so later cells see the right state. One
kernel run then answers every question; `verdicts` reads the answers back.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from nbformat import NotebookNode

from dlcourse.check import CHECK_MIME, registry
from dlcourse.notebooks import find_exercises, replace_regions
from dlcourse.runner import cell_payloads


@dataclass(frozen=True)
class Probe:
    exercise: str
    kind: str  # "solution", "stub" or "wrong"
    label: str
    expected: str  # the status the check must give


def _tagged(cell: NotebookNode, probe: Probe, role: str, source: str | None = None) -> NotebookNode:
    """A fresh code cell (new id, no outputs) with the probe and its role recorded in its metadata."""
    from nbformat.v4 import new_code_cell

    return new_code_cell(source=cell.source if source is None else source,
                         metadata={"dlcourse": {"probe": {**probe.__dict__, "role": role}}})


def probe_notebook(solution: NotebookNode, lab: str) -> tuple[NotebookNode, list[Probe]]:
    """The solution notebook with probe cells inserted; plus the list of probes it answers."""
    checks = registry(lab)
    nb = copy.deepcopy(solution)
    probes: list[Probe] = []
    for ex in reversed(find_exercises(solution)):
        exercise_cell, check_cell = solution.cells[ex.exercise_index], solution.cells[ex.check_index]
        if ex.id not in checks:
            raise KeyError(f"exercise {ex.id} has no registered check in dlcourse.checks.lab{lab}")
        variants = [Probe(ex.id, "stub", "lab stub", "not_attempted")] + [
            Probe(ex.id, "wrong", label, "failed") for label in checks[ex.id].wrong_answers]
        inserted: list[NotebookNode] = []
        for probe in variants:
            code = None if probe.kind == "stub" else checks[ex.id].wrong_answers[probe.label]
            variant = _tagged(exercise_cell, probe, "exercise", replace_regions(exercise_cell.source, code, ex.id))
            inserted += [variant, _tagged(check_cell, probe, "check")]
        restore = _tagged(exercise_cell, Probe(ex.id, "restore", "solution again", "-"), "exercise")
        nb.cells[ex.check_index + 1:ex.check_index + 1] = inserted + [restore]
        solved = Probe(ex.id, "solution", "solution", "passed")
        nb.cells[ex.check_index].metadata.setdefault("dlcourse", {})["probe"] = {**solved.__dict__, "role": "check"}
        probes = [solved] + variants + probes
    return nb, probes


def verdicts(executed: NotebookNode) -> list[tuple[Probe, dict | None]]:
    """Each probe with the check result its check cell showed (None if it showed none)."""
    answers = []
    for cell in executed.cells:
        info = dict(cell.metadata.get("dlcourse", {}).get("probe", {}))
        if info.pop("role", None) != "check":
            continue
        shown = cell_payloads(cell, CHECK_MIME)
        answers.append((Probe(**info), shown[0] if shown else None))
    return answers


def problems(executed: NotebookNode, probes: list[Probe]) -> list[str]:
    """Sentences describing every probe whose check gave the wrong verdict (empty list: all fair)."""
    found = verdicts(executed)
    issues = []
    if len(found) != len(probes):
        issues.append(f"expected {len(probes)} probe verdicts, found {len(found)}")
    for probe, result in found:
        if result is None:
            issues.append(f"{probe.exercise} {probe.label}: the check cell showed no verdict")
        elif result["status"] != probe.expected:
            issues.append(f"{probe.exercise} {probe.label}: expected {probe.expected}, got {result['status']} ({result['message']})")
        elif probe.kind != "solution" and not result["message"].strip():
            issues.append(f"{probe.exercise} {probe.label}: rejected without a sentence saying why")
    return issues
