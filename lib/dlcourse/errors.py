"""One exception family for the course, shown to students as a sentence, not a traceback.

Every error the library raises on purpose (a missing data file, a corrupt download, a bad
argument to a loader) is a `DlcourseError` whose message already says what went wrong and
how to fix it. In a notebook the long traceback adds nothing, so `show_errors_as_sentences`
asks IPython to print only that sentence. The cell still fails, so papermill and nbval see
the error.
"""

from __future__ import annotations

import sys
from typing import Any


class DlcourseError(Exception):
    """An error whose message is a complete, friendly sentence naming the fix."""


def whole_number(name: str, value: object, low: int = 1) -> int:
    """``value`` if it is an int (not a bool) of at least ``low``; otherwise a ValueError that says so."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be a whole number of at least {low}, not {value!r}.")
    return value


def _sentence_only(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    """IPython custom-exception handler: show `Name: message` and nothing else."""
    lines = [f"{etype.__name__}: {value}"]
    shell._showtraceback(etype, value, lines)
    return lines


def show_errors_as_sentences() -> bool:
    """Inside IPython, display `DlcourseError`s as their one sentence. Returns True if installed."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or not hasattr(shell, "set_custom_exc"):
        return False
    # Do not replace a handler somebody else installed.
    if getattr(shell, "custom_exceptions", ()) not in ((), (DlcourseError,)):
        return False
    shell.set_custom_exc((DlcourseError,), _sentence_only)
    return True
