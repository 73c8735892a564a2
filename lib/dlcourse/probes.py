"""What the probe cells call inside a probed or unsolved notebook's kernel (see dlcourse.exercises).

Kept apart from dlcourse.exercises so that a lab's kernel imports nothing that reads notebooks:
importing nbformat costs seconds (its schema validator builds a grammar on import).
"""

from __future__ import annotations


class ProbeFailure(AssertionError):
    """A check gave the wrong verdict for a probe (raised in the probed notebook's kernel)."""


_answered: list[str] = []  # one entry per expect_verdict call in this kernel
_read = 0  # how many of dlcourse.check.SHOWN the probes have read


def expect_verdict(exercise: str, label: str, expected: str, passes: bool = False) -> None:
    """Raise ProbeFailure unless the check cell just run showed one verdict, for `exercise`, with
    status `expected` and (unless the probe `passes`: the solution or an accepted alternative) a
    sentence saying why."""
    global _read
    from dlcourse.check import SHOWN

    new, _read = SHOWN[_read:], len(SHOWN)
    _answered.append(f"{exercise} {label}")
    where = f"{exercise} {label}"
    if len(new) != 1:
        raise ProbeFailure(f"{where}: the check cell showed {len(new)} verdicts, not one")
    shown = new[0]
    if shown.exercise != exercise:
        raise ProbeFailure(f"{where}: the check cell showed the verdict of exercise {shown.exercise}")
    if shown.status != expected:
        raise ProbeFailure(f"{where}: expected {expected}, got {shown.status} ({shown.message})")
    if not passes and not shown.message.strip():
        raise ProbeFailure(f"{where}: rejected without a sentence saying why")


def expect_probes_complete(count: int) -> None:
    """Raise ProbeFailure unless `count` probes answered and the notebook recorded a key metric."""
    from dlcourse.runner import RECORDED

    if len(_answered) != count:
        raise ProbeFailure(f"expected {count} probe verdicts, {len(_answered)} check cells answered")
    if not RECORDED:
        raise ProbeFailure("the notebook records no key metric (dlcourse.runner.record_metric)")


def expect_unsolved(count: int) -> None:
    """Raise ProbeFailure unless `count` verdicts were shown in this kernel, all "not attempted"."""
    from dlcourse.check import SHOWN

    if len(SHOWN) != count:
        raise ProbeFailure(f"expected {count} check verdicts in the unsolved lab, it showed {len(SHOWN)}")
    others = [f"{r.exercise}: {r.status} ({r.message})" for r in SHOWN if r.status != "not_attempted"]
    if others:
        raise ProbeFailure(f"in the unsolved lab every check should say not attempted, but {'; '.join(others)}")
