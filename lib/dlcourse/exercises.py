"""Prove every exercise check is fair: it accepts the solution and the correct alternatives the
lab registers, and rejects the stub and the typical wrong answers, each with a sentence.

`probe_notebook` makes one notebook out of a solution: after each check cell it inserts the
exercise cell in its lab (stub) form, in each registered wrong form and in each accepted
alternative, each followed by the check again, and then the solution cell once more so later cells see the right state. Every
check cell (the solution's own too) ends with `dlcourse.probes.expect_verdict`, which raises inside the kernel
when the verdict just shown is not the one expected; the last cell, `expect_probes_complete`,
raises unless every probe answered and the lab recorded its key metric. The test suite runs
the probed copy once under nbval, which also compares every stored output of the solution's
own cells; the inserted cells carry nbval's ignore-output tag (they have no stored outputs).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from nbformat import NotebookNode

from dlcourse.check import Exercise, registry
from dlcourse.notebooks import find_exercises, replace_regions

IGNORE_OUTPUT = "nbval-ignore-output"


@dataclass(frozen=True)
class Probe:
    exercise: str
    kind: str  # "solution", "stub", "wrong" or "accepted"
    label: str
    expected: str  # the status the check must give


def _probe_cell(source: str, probe: Probe, role: str) -> NotebookNode:
    """A fresh, never-run code cell whose output is not compared, with its probe in the metadata."""
    from nbformat.v4 import new_code_cell

    return new_code_cell(source=source, metadata={
        "tags": [IGNORE_OUTPUT], "dlcourse": {"probe": {**probe.__dict__, "role": role}}})


def _variant_code(check: Exercise, probe: Probe) -> str | list[str | None]:
    """The code of a registered wrong or accepted answer, which replaces the solution regions."""
    return (check.wrong_answers if probe.kind == "wrong" else check.accepted_answers)[probe.label]


def verdict_line(probe: Probe) -> str:
    """The line appended to a check cell: it raises unless the check just showed the expected verdict."""
    passes = probe.kind in ("solution", "accepted")  # a pass needs no reason; a rejection does
    return (f"\n__import__('dlcourse.probes').probes.expect_verdict("
            f"{probe.exercise!r}, {probe.label!r}, {probe.expected!r}, {passes!r})")


def probe_notebook(solution: NotebookNode, lab: str,
                   checks: dict[str, Exercise] | None = None) -> tuple[NotebookNode, list[Probe]]:
    """The solution notebook with probe cells inserted; plus the list of probes it answers."""
    checks = registry(lab) if checks is None else checks
    nb = copy.deepcopy(solution)
    probes: list[Probe] = []
    for ex in reversed(find_exercises(solution)):
        exercise_cell, check_cell = solution.cells[ex.exercise_index], solution.cells[ex.check_index]
        if ex.id not in checks:
            raise KeyError(f"exercise {ex.id} has no registered check in dlcourse.checks.lab{lab}")
        variants = [Probe(ex.id, "stub", "lab stub", "not_attempted")] + [
            Probe(ex.id, "wrong", label, "failed") for label in checks[ex.id].wrong_answers] + [
            Probe(ex.id, "accepted", label, "passed") for label in checks[ex.id].accepted_answers]
        inserted: list[NotebookNode] = []
        for probe in variants:
            code = None if probe.kind == "stub" else _variant_code(checks[ex.id], probe)
            inserted += [_probe_cell(replace_regions(exercise_cell.source, code, ex.id), probe, "exercise"),
                         _probe_cell(check_cell.source + verdict_line(probe), probe, "check")]
        restore = Probe(ex.id, "restore", "solution again", "-")
        nb.cells[ex.check_index + 1:ex.check_index + 1] = inserted + [_probe_cell(exercise_cell.source, restore, "exercise")]
        solved = Probe(ex.id, "solution", "solution", "passed")
        own = nb.cells[ex.check_index]  # keeps its stored outputs, which nbval compares
        own.source += verdict_line(solved)
        own.metadata.setdefault("dlcourse", {})["probe"] = {**solved.__dict__, "role": "check"}
        probes = [solved] + variants + probes
    last = Probe("-", "complete", "all probes answered", "-")
    nb.cells.append(_probe_cell(
        f"__import__('dlcourse.probes').probes.expect_probes_complete({len(probes)})", last, "complete"))
    return nb, probes


def unsolved_notebook(lab: NotebookNode) -> NotebookNode:
    """A student lab as it ships, plus a last cell that raises unless every check said "not attempted"."""
    nb = copy.deepcopy(lab)
    count = len(find_exercises(lab, solution=False))
    done = Probe("-", "unsolved", "every check not attempted", "not_attempted")
    nb.cells.append(_probe_cell(f"__import__('dlcourse.probes').probes.expect_unsolved({count})", done, "complete"))
    return nb
