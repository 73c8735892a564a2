"""The exercise-check framework.

A lab's checks live in ``dlcourse.checks.labNN``. Each is a small function decorated with
`exercise`, which turns it into a check that

* says "not attempted yet" when the student's value is still ``None`` or their function still
  raises ``NotImplementedError`` (the stubs that labs/ ships);
* turns every wrong type, shape or value into one friendly sentence plus a hint: a raw
  traceback never reaches the student, whatever they pass;
* works on deep copies, so a check never changes the student's objects;
* shows its verdict as text, as HTML, and as a machine-readable JSON bundle
  (``application/vnd.dlcourse.check+json``) that tests and graders read.

Inside a check, the ``expect_*`` helpers raise `Mismatch` with the reason; whatever the check
returns is the pass message.
"""

from __future__ import annotations

import copy
import html
import inspect
import math
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal

import numpy as np

__all__ = [
    "CheckResult", "Exercise", "Mismatch", "NotAttempted", "exercise", "registry",
    "expect_number", "expect_array", "expect_callable", "expect", "CHECK_MIME", "hidden_check", "HIDDEN_ENV",
]

CHECK_MIME = "application/vnd.dlcourse.check+json"
Status = Literal["passed", "failed", "not_attempted"]


class Mismatch(Exception):
    """Raised inside a check: the answer is wrong. ``reason`` is one sentence; ``hint`` is optional."""

    def __init__(self, reason: str, hint: str = ""):
        super().__init__(reason)
        self.reason, self.hint = reason, hint


class NotAttempted(Exception):
    """Raised inside a check: the student's cell still holds the stub."""


@dataclass(frozen=True)
class CheckResult:
    exercise: str
    title: str
    status: Status
    message: str
    hint: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def text(self) -> str:
        head = {"passed": "✅ passed", "failed": "❌ not yet", "not_attempted": "✏️ not attempted yet"}[self.status]
        line = f"Exercise {self.exercise} ({self.title}): {head}. {self.message}"
        return line + (f"\n   Hint: {self.hint}" if self.hint else "")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        colour = {"passed": "#1a7f37", "failed": "#b42318", "not_attempted": "#9a6700"}[self.status]
        body = html.escape(self.text()).replace("\n", "<br>")
        return {
            "text/plain": self.text(),
            "text/html": f"<div style='border-left:4px solid {colour};padding:4px 8px'>{body}</div>",
            CHECK_MIME: asdict(self),
        }


# Every verdict shown in this process, in order: the test suite's probe cells read it (dlcourse.exercises).
SHOWN: list[CheckResult] = []


def show(result: CheckResult) -> None:
    """Display a result in a notebook (text, HTML and JSON) or print it in a terminal."""
    SHOWN.append(result)
    ipython = sys.modules.get("IPython")
    if ipython is not None and ipython.get_ipython() is not None:
        from IPython.display import display

        display(result._repr_mimebundle_(), raw=True)
    else:
        print(result.text())


# ------------------------------------------------------------------------------ comparisons

def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, (int, float)):
        return f"{_a(type(value).__name__)} of shape {tuple(shape)}"
    return _a(type(value).__name__)


def _as_array(value: Any, name: str) -> np.ndarray:
    """Lists, NumPy arrays, torch and TensorFlow tensors become a NumPy array (a copy)."""
    if hasattr(value, "detach"):  # torch.Tensor
        value = value.detach().cpu().numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # tf.Tensor
        value = value.numpy()
    if isinstance(value, (str, bytes, dict, set)) or callable(value):
        raise Mismatch(f"`{name}` should be an array of numbers, but it is {_describe(value)}.")
    try:
        array = np.array(value)
    except ValueError:
        raise Mismatch(f"`{name}` could not be turned into an array: its rows have different lengths.") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise Mismatch(f"`{name}` should hold numbers, but it holds {array.dtype} values.")
    return array


def expect_number(value: Any, expected: float, *, name: str, rtol: float = 1e-6, atol: float = 1e-9,
                  integer: bool = False, hint: str = "") -> None:
    """The answer must be one number close to ``expected`` (an exact whole number if ``integer``)."""
    if isinstance(value, bool):
        raise Mismatch(f"`{name}` should be a number, but it is {value}, a True/False value.", hint)
    if isinstance(value, str):
        raise Mismatch(f"`{name}` should be a number, but it is {_describe(value)}; remove the quotes.", hint)
    array = _as_array(value, name)
    if array.size != 1:
        raise Mismatch(f"`{name}` should be a single number, but it is {_describe(array)}.", hint)
    number = array.reshape(()).item()
    if isinstance(number, complex) or not math.isfinite(number):
        raise Mismatch(f"`{name}` is {number}, not a finite number.", hint)
    if integer and number != round(number):
        raise Mismatch(f"`{name}` should be a whole number, but it is {number}.", hint)
    if not math.isclose(number, expected, rel_tol=rtol, abs_tol=atol):
        raise Mismatch(f"`{name}` is {number:.6g}, which is not the expected value.", hint)


def _shape_hint(got: tuple[int, ...], want: tuple[int, ...]) -> str:
    if got[::-1] == want and len(got) == 2:
        return "It looks transposed: check the order of your matrix product or use .T."
    if tuple(d for d in got if d != 1) == tuple(d for d in want if d != 1):
        return "Only axes of length 1 differ: look at reshape, squeeze or keepdims."
    return ""


def expect_array(value: Any, expected: Any, *, name: str, rtol: float = 1e-5, atol: float = 1e-8,
                 dtype_kind: str | None = None, hint: str = "") -> None:
    """The answer must be an array (or list/tensor) of the expected shape and values."""
    want = np.asarray(expected)
    got = _as_array(value, name)
    if got.shape != want.shape:
        raise Mismatch(f"`{name}` has shape {got.shape}, but the expected shape is {want.shape}.",
                       hint or _shape_hint(got.shape, want.shape))
    if dtype_kind and got.dtype.kind not in dtype_kind:
        raise Mismatch(f"`{name}` has dtype {got.dtype}; expected a {'integer' if 'i' in dtype_kind else 'floating'} array.", hint)
    if not np.all(np.isfinite(got.astype(float))):
        raise Mismatch(f"`{name}` contains NaN or infinite values.", hint)
    close = np.isclose(got.astype(float), want.astype(float), rtol=rtol, atol=atol)
    if not close.all():
        first = tuple(int(i) for i in np.argwhere(~close)[0])
        worst = float(np.max(np.abs(got.astype(float) - want.astype(float))))
        raise Mismatch(f"`{name}` differs from the expected values in {int((~close).sum())} of {close.size} "
                       f"entries (first at index {first}, largest difference {worst:.3g}).", hint)


def expect_callable(value: Any, *, name: str) -> None:
    if not callable(value):
        raise Mismatch(f"`{name}` should be a function, but it is {_describe(value)}.")


def expect(condition: bool, reason: str, hint: str = "") -> None:
    """Fail with `reason` unless `condition` holds."""
    if not condition:
        raise Mismatch(reason, hint)


# ------------------------------------------------------------------------------ exercises

def _private_copy(value: Any) -> Any:
    """A deep copy, so nothing a check does can reach the student's object."""
    try:
        return copy.deepcopy(value)
    except Exception:  # objects that cannot be copied (open files, some models) are only read
        return value


@dataclass
class Exercise:
    """A registered check; calling it shows the verdict, `evaluate` returns it."""

    id: str
    title: str
    fn: Callable[..., str | None]
    wrong_answers: dict[str, str | list[str | None]] = field(default_factory=dict)
    accepted_answers: dict[str, str | list[str | None]] = field(default_factory=dict)
    points: float = 1

    def __post_init__(self) -> None:
        self.__doc__ = self.fn.__doc__
        self.__name__ = self.fn.__name__
        self.signature = inspect.signature(self.fn)
        self.params = list(self.signature.parameters)

    def _result(self, status: Status, message: str, hint: str = "") -> CheckResult:
        return CheckResult(self.id, self.title, status, message, hint)

    def evaluate(self, *args: Any, **kwargs: Any) -> CheckResult:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            wanted = ", ".join(self.params)
            return self._result("failed", f"This check takes {len(self.params)} value(s): {wanted}; run the check cell as it was given.")
        for pname, value in bound.arguments.items():
            if value is None:
                return self._result("not_attempted", f"`{pname}` is still None: write your answer in the cell above, run it, then run this check again.")
        try:
            message = self.fn(*[_private_copy(a) for a in bound.args], **{k: _private_copy(v) for k, v in bound.kwargs.items()})
        except (NotImplementedError, NotAttempted):
            return self._result("not_attempted", "Your code still raises NotImplementedError: replace that line with your solution, run the cell, then run this check again.")
        except Mismatch as m:
            return self._result("failed", m.reason, m.hint)
        except RecursionError:
            return self._result("failed", "Your code recursed without end (RecursionError).")
        except Exception as exc:  # the student's code raised while being checked
            detail = f"{type(exc).__name__}: {exc}".strip()
            return self._result("failed", f"Running your code raised {detail[:300]}")
        hidden = _run_hidden(self, bound)
        return hidden if hidden is not None else self._result("passed", message or "Well done.")

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        show(self.evaluate(*args, **kwargs))

    def __repr__(self) -> str:
        return f"<check for exercise {self.id}: {self.title}>"


_REGISTRY: dict[str, Exercise] = {}


def exercise(id: str, title: str, *, wrong_answers: dict[str, str | list[str | None]] | None = None,
             accepted_answers: dict[str, str | list[str | None]] | None = None, points: float = 1,
             ) -> Callable[[Callable[..., str | None]], Exercise]:
    """Register a check for exercise ``id`` (``"NN.k"``).

    ``wrong_answers`` maps a label to code that replaces the solution region of the exercise
    cell (or a list, one entry per region, None keeping that region's solution); the test
    suite runs each one and requires the check to reject it with a sentence.
    ``accepted_answers`` has the same form for correct alternatives (another valid formula,
    float32, einsum, a list where the text allows one); the suite requires the check to pass each.
    ``points`` is what the exercise is worth in `dlcourse grade`'s report and gradebook.
    """

    def register(fn: Callable[..., str | None]) -> Exercise:
        if id in _REGISTRY and _REGISTRY[id].fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"exercise {id} is registered twice")
        ex = Exercise(id, title, fn, dict(wrong_answers or {}), dict(accepted_answers or {}), points)
        _REGISTRY[id] = ex
        return ex

    return register


def registry(lab: str | None = None) -> dict[str, Exercise]:
    """Registered checks, all or those of lab ``"NN"`` (importing its checks module)."""
    if lab is not None:
        import importlib

        importlib.import_module(f"dlcourse.checks.lab{lab}")
        return {k: v for k, v in _REGISTRY.items() if k.split(".")[0] == lab}
    return dict(_REGISTRY)


# ------------------------------------------------------------------------------ hidden checks (grading only)

HIDDEN_ENV = "DLCOURSE_HIDDEN_CHECKS"  # a folder of the instructor's labNN.py files; set by `dlcourse grade --hidden`
HIDDEN_FAILED = ("Your answer passes the checks in the lab, but not the extra checks used in grading "
                 "(they try more inputs than the lab shows).")
_HIDDEN: dict[str, list[Callable[..., Any]]] = {}
_HIDDEN_LOADED: set[str] = set()


def hidden_check(id: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an instructor-only check for exercise ``id``: it takes the same values as the lab's
    check, raises `Mismatch` when the answer is wrong, and runs only when `dlcourse grade --hidden DIR`
    grades (DIR/labNN.py holds these functions; students never see them)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _HIDDEN.setdefault(id, [])
        if all(f.__qualname__ != fn.__qualname__ for f in _HIDDEN[id]):
            _HIDDEN[id].append(fn)
        return fn

    return register


def _hidden_checks(exercise_id: str) -> list[Callable[..., Any]]:
    """The hidden checks for one exercise, loading DIR/labNN.py the first time (none unless grading)."""
    import os

    folder, lab = os.environ.get(HIDDEN_ENV, ""), exercise_id.split(".")[0]
    if folder and lab not in _HIDDEN_LOADED:
        import importlib.util
        from pathlib import Path

        path = Path(folder) / f"lab{lab}.py"
        if not Path(folder).is_dir():  # the grader's own problem: say so rather than skip the hidden checks
            raise RuntimeError(f"the hidden checks folder {folder} ({HIDDEN_ENV}) is not visible here")
        _HIDDEN_LOADED.add(lab)
        if path.is_file():
            spec = importlib.util.spec_from_file_location(f"dlcourse_hidden_lab{lab}", path)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            spec.loader.exec_module(module)  # type: ignore[union-attr]
    return list(_HIDDEN.get(exercise_id, [])) if folder else []


def _run_hidden(ex: Exercise, bound: inspect.BoundArguments) -> CheckResult | None:
    """None when every hidden check passes (or there are none); else a failed result that does not
    say what the hidden check tried."""
    for fn in _hidden_checks(ex.id):
        try:
            fn(*[_private_copy(a) for a in bound.args], **{k: _private_copy(v) for k, v in bound.kwargs.items()})
        except Exception:  # Mismatch or the student's code raising: either way the hidden check failed
            return ex._result("failed", HIDDEN_FAILED, "Test your answer on inputs of your own, "
                                                       "including sizes and values the lab did not use.")
    return None
