"""Tamper evidence for `dlcourse grade`: is the check code the kernel holds the code on disk?

The grader puts an *attest* cell before and after every official check cell of the notebook it
runs (the student's lab has none). The cell reads this file from the course (read-only in the
sandbox) and runs it in a namespace of its own, so a submission cannot have replaced the code that
does the comparing before it runs; then `attest` compares, object by object,

* ``dlcourse.check`` (the framework) with a fresh module object executed from check.py on disk:
  every function's code, defaults and globals, every class's attributes and methods, every
  constant;
* each loaded ``dlcourse.checks.labNN*`` module with a fresh copy executed from its file (its
  ``from dlcourse.check import ...`` bound to the fresh framework, so nothing is registered twice):
  the checks (their function's code, points, wrong answers), helpers and constants;
* the display path a verdict takes (``IPython.display.display``) and the hooks IPython runs after
  a cell (a callback written in the notebook could print a forged verdict);

and displays ``{"exercise", "intact", "findings"}`` under `ATTEST_MIME`. The grader marks an exercise
`tampered` when a finding is reported *or when the attestation is missing* (fail closed).

It cannot catch what happens below Python objects it compares (a patched builtin, a C extension,
the kernel's messaging layer) or code that behaves honestly only while it is being graded; the
instructor guide says so.

This file must stay self-contained: only the standard library and IPython, no dlcourse imports.
"""

from __future__ import annotations

import builtins
import sys
import types
from pathlib import Path
from typing import Any

ATTEST_MIME = "application/vnd.dlcourse.attest+json"
_SIMPLE = (type(None), bool, int, float, complex, str, bytes)
_SKIP_CLASS_ATTRS = {"__module__", "__dict__", "__weakref__", "__dataclass_fields__", "__dataclass_params__",
                     "__annotations__", "__firstlineno__", "__static_attributes__"}


def _plain(value: Any) -> bool:
    """Data we can compare with == (numbers, text, and containers of them)."""
    if isinstance(value, _SIMPLE):
        return True
    if isinstance(value, (tuple, list, frozenset, set)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return False


def _function(value: Any) -> types.FunctionType | None:
    for attr in ("__func__", "fget"):  # staticmethod/classmethod, property
        value = getattr(value, attr, value) if not isinstance(value, types.FunctionType) else value
    return value if isinstance(value, types.FunctionType) else None


def _same_function(kernel: Any, fresh: types.FunctionType, kernel_globals: dict | None) -> bool:
    fn = _function(kernel)
    if fn is None or fn.__code__ != fresh.__code__:
        return False
    if kernel_globals is not None and fn.__globals__ is not kernel_globals:
        return False
    try:
        return bool(fn.__defaults__ == fresh.__defaults__ and fn.__kwdefaults__ == fresh.__kwdefaults__)
    except Exception:  # defaults that cannot be compared are compared by type
        return type(fn.__defaults__) is type(fresh.__defaults__)


def _compare(name: str, kernel: Any, fresh: Any, kernel_globals: dict | None, exercise_type: type | None,
             findings: list[str]) -> None:
    """Append a sentence to ``findings`` when ``kernel`` is not what ``fresh`` (from disk) is."""
    if isinstance(fresh, (staticmethod, classmethod, property)):
        fresh = _function(fresh)
        if fresh is None:
            return
    if isinstance(fresh, types.FunctionType):
        if not _same_function(kernel, fresh, kernel_globals):
            findings.append(f"`{name}` is not the function on disk")
    elif isinstance(fresh, type):
        if not isinstance(kernel, type):
            findings.append(f"`{name}` is not the class on disk")
            return
        fresh_keys = set(vars(fresh)) - _SKIP_CLASS_ATTRS
        kernel_keys = set(vars(kernel)) - _SKIP_CLASS_ATTRS
        for extra in sorted(kernel_keys ^ fresh_keys):
            findings.append(f"`{name}.{extra}` was {'added' if extra in kernel_keys else 'removed'}")
        for key in sorted(kernel_keys & fresh_keys):
            _compare(f"{name}.{key}", vars(kernel)[key], vars(fresh)[key], None, exercise_type, findings)
    elif exercise_type is not None and type(fresh).__name__ == "Exercise" and hasattr(fresh, "fn"):
        if type(kernel) is not exercise_type:
            findings.append(f"`{name}` is not the check on disk")
            return
        if set(vars(kernel)) != set(vars(fresh)):
            findings.append(f"`{name}` has attributes the check on disk does not have")
        for attr in ("id", "title", "points", "wrong_answers", "accepted_answers"):
            if getattr(kernel, attr, None) != getattr(fresh, attr, None):
                findings.append(f"`{name}.{attr}` differs from the check on disk")
        if not _same_function(kernel.fn, fresh.fn, kernel_globals):
            findings.append(f"`{name}` runs code that is not the check on disk")
    elif isinstance(fresh, types.ModuleType):
        if kernel is not fresh and getattr(kernel, "__name__", None) != "dlcourse.check":
            findings.append(f"`{name}` is not the module `{fresh.__name__}`")
    elif _plain(fresh):
        try:
            same = type(kernel) is type(fresh) and kernel == fresh
        except Exception:
            same = False
        if not same:
            findings.append(f"`{name}` differs from its value on disk")
    elif type(fresh).__module__ == "numpy" and hasattr(fresh, "shape"):
        try:
            same = bool(kernel.shape == fresh.shape and (kernel == fresh).all())
        except Exception:
            same = False
        if not same:
            findings.append(f"`{name}` differs from its value on disk")


def _fresh_module(path: Path, name: str, framework: types.ModuleType | None) -> types.ModuleType:
    """Execute ``path`` into a new module object; ``from dlcourse.check import`` gives ``framework``."""
    module = types.ModuleType(name)
    module.__file__ = str(path)
    namespace = vars(module)
    if framework is not None:
        real_import = builtins.__import__

        def redirect(mod: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
            if mod == "dlcourse.check" and fromlist:
                return framework
            return real_import(mod, globals, locals, fromlist, level)

        namespace["__builtins__"] = {**vars(builtins), "__import__": redirect}
    code = compile(path.read_text(encoding="utf-8"), str(path), "exec", dont_inherit=True)
    sys.modules.setdefault(name, module)  # dataclasses look their module up while the class is made
    try:
        exec(code, namespace)  # noqa: S102 - the course's own file, read from the read-only course
    finally:
        if sys.modules.get(name) is module:
            del sys.modules[name]
    return module


def _module_findings(kernel: Any, fresh: types.ModuleType, label: str, exercise_type: type | None) -> list[str]:
    findings: list[str] = []
    if not isinstance(kernel, types.ModuleType):
        return [f"`{label}` is not a module"]
    kernel_ns = vars(kernel)
    for key, value in vars(fresh).items():
        if key.startswith("__") or isinstance(value, (list, dict, set)) and not value:
            continue  # registries and caches start empty and fill while the course runs
        if key not in kernel_ns:
            findings.append(f"`{label}.{key}` was deleted")
            continue
        fn = getattr(value, "fn", value)
        own = isinstance(fn, types.FunctionType) and fn.__globals__ is vars(fresh)
        _compare(f"{label}.{key}", kernel_ns[key], value, kernel_ns if own else None, exercise_type, findings)
    return findings


def _display_findings() -> list[str]:
    findings = []
    display_functions = sys.modules.get("IPython.core.display_functions")
    public = sys.modules.get("IPython.display")
    if display_functions is not None and getattr(display_functions, "__file__", None):
        fresh = _fresh_module(Path(display_functions.__file__), "dlcourse_fresh_display", None)
        if not _same_function(display_functions.display, fresh.display, vars(display_functions)):
            findings.append("IPython's `display` is not the function on disk")
        if public is not None and getattr(public, "display", None) is not display_functions.display:
            findings.append("`IPython.display.display` was replaced")
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        publisher = getattr(shell, "display_pub", None)
        if publisher is not None and "publish" in vars(publisher):
            findings.append("the kernel's display publisher was replaced")
        for event, callbacks in getattr(getattr(shell, "events", None), "callbacks", {}).items():
            for callback in callbacks:
                module = getattr(callback, "__module__", "") or ""
                filename = getattr(getattr(callback, "__code__", None), "co_filename", "") or ""
                if module == "__main__" or "ipykernel_" in filename or filename.startswith("<"):
                    findings.append(f"a notebook cell registered a `{event}` hook")
    return findings


def attest(exercise_id: str, lab: str, package: str, moment: str = "before") -> dict:
    """Compare the kernel's check code with the course's files and display the finding."""
    package_dir = Path(package)
    try:
        framework = _fresh_module(package_dir / "check.py", "dlcourse_fresh_check", None)
        kernel_framework = sys.modules.get("dlcourse.check")
        findings = [] if kernel_framework is None else _module_findings(
            kernel_framework, framework, "dlcourse.check", None)
        exercise_type = getattr(kernel_framework, "Exercise", None)
        for path in sorted((package_dir / "checks").glob(f"lab{lab}*.py")):
            name = f"dlcourse.checks.{path.stem}"
            if name in sys.modules:
                fresh = _fresh_module(path, f"dlcourse_fresh_{path.stem}", framework)
                findings += _module_findings(sys.modules[name], fresh, name, exercise_type)
        findings += _display_findings()
    except Exception as exc:  # a kernel too broken to compare is not evidence of honesty
        findings = [f"the comparison could not run ({type(exc).__name__}: {str(exc)[:200]})"]
    result = {"exercise": exercise_id, "moment": moment, "intact": not findings, "findings": findings[:10]}
    try:
        from IPython.display import display

        display({"text/plain": f"dlcourse grade: check code {'intact' if not findings else 'CHANGED'} "
                               f"{moment} check {exercise_id}", ATTEST_MIME: result}, raw=True)
    except Exception:
        print(result)
    return result


def attest_source(exercise_id: str, lab: str, package: str, moment: str) -> str:
    """The source of the attest cell the grader puts beside check ``exercise_id``."""
    path = str(Path(package) / "tamper.py")
    return ("# dlcourse grade: is the check code this kernel holds the code on disk?\n"
            f"_dlcourse_attest = {{'__name__': 'dlcourse_attest'}}\n"
            f"exec(compile(open({path!r}, encoding='utf-8').read(), {path!r}, 'exec', dont_inherit=True), "
            f"_dlcourse_attest)\n"
            f"_dlcourse_attest['attest']({exercise_id!r}, {lab!r}, {str(package)!r}, {moment!r})\n"
            "del _dlcourse_attest")
