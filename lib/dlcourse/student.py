"""Is the student's code in a lab solved yet? The lab's training and plotting cells run the
student's own functions and classes; while one still holds the lab's stub, the cell says so in
one sentence (and trains nothing, or the reference, as the lab says) instead of raising.

A stub is what `dlcourse labs build` ships: a value region becomes ``name = None`` and an indented
region becomes ``raise NotImplementedError("Exercise NN.k: replace this line with your code.")``.
`stub_exercises` finds those marks without calling anything, in functions, methods and classes.
"""

from __future__ import annotations

import inspect
import re
from types import CodeType
from typing import Any, Iterator

# The message of an indented region's stub (dlcourse.notebooks.stub_for writes it).
STUB_MESSAGE = "Exercise {exercise_id}: replace this line with your code."
_STUB = re.compile("^" + re.escape(STUB_MESSAGE).replace(re.escape("{exercise_id}"), r"(\d\d\.\d+)") + "$")


def _codes(value: Any) -> Iterator[CodeType]:
    """The code objects of a function, a method, a class's methods (and their nested functions)."""
    value = getattr(value, "__func__", value)
    if inspect.isclass(value):
        for cls in value.__mro__[:-1]:  # not `object`
            for member in vars(cls).values():
                yield from _codes(getattr(member, "fget", member))
        return
    code = getattr(value, "__code__", None)
    if code is None and callable(value) and not inspect.isroutine(value):
        code = getattr(getattr(type(value), "__call__", None), "__code__", None)
    stack = [code] if isinstance(code, CodeType) else []
    while stack:
        code = stack.pop()
        yield code
        stack.extend(c for c in code.co_consts if isinstance(c, CodeType))


def stub_exercises(value: Any) -> list[str]:
    """The exercises whose stub `value` still holds ([] when solved): None counts as a stub, with
    no exercise number."""
    if value is None:
        return ["?"]
    found = {m.group(1) for code in _codes(value) for c in code.co_consts
             if isinstance(c, str) for m in [_STUB.match(c)] if m}
    return sorted(found)


def unsolved(**named: Any) -> dict[str, list[str]]:
    """{name: exercises} for each named value that still holds a stub."""
    return {name: found for name, value in named.items() if (found := stub_exercises(value))}


def _listing(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def not_ready_sentence(missing: dict[str, list[str]], doing: str = "run") -> str:
    """One sentence: which of the student's names are still stubs, and which exercises solve them."""
    names = _listing([f"`{name}`" for name in missing])
    exercises = sorted({e for found in missing.values() for e in found if e != "?"})
    solve = f"solve exercise{'s' if len(exercises) > 1 else ''} {_listing(exercises)}" if exercises \
        else "write your answer above"
    return f"This cell will {doing} with your {names}: {solve} first, then run it again."


def ready(doing: str = "run", **named: Any) -> bool:
    """True when every named value is solved; otherwise print the one sentence and return False.

    ``ready("train", forward=forward, backward=backward)`` in a lab cell guards the training."""
    missing = unsolved(**named)
    if missing:
        print(not_ready_sentence(missing, doing))
    return not missing


def yours_or_reference(doing: str, **pairs: tuple[Any, Any]) -> list[Any]:
    """For each ``name=(yours, reference)``: yours once its exercise is solved, else the reference,
    said in one sentence. ``[loss] = yours_or_reference("compute the loss", ce=(ce, ref.cross_entropy))``
    lets a lab cell run the student's code and still run, on the reference, before it is solved."""
    waiting = unsolved(**{name: yours for name, (yours, _) in pairs.items()})
    if waiting:
        print(not_ready_sentence(waiting, doing) + " Until then the course's reference stands in.")
    return [reference if name in waiting else yours for name, (yours, reference) in pairs.items()]
