"""Full-mode result gates: the bound a lab's key result must meet, declared where it is recorded.

A lab writes ``record_metric("test accuracy", acc, at_least=0.97)``; the bound travels in the
metric's JSON payload. `make course` (full mode) prints each bound beside its value and fails
when one is missed. FAST mode trains on subsets, so there a bound is shown and not enforced.
The bounds are literal numbers in the notebook's source, so a test can also hold the full-mode
outputs stored in solutions/ to them without running anything (`declared_bounds`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

BOUND_KEYS = ("at_least", "at_most")


@dataclass(frozen=True)
class Gate:
    """One metric held to its bound: `met` is None when the value is not a number."""

    name: str
    value: Any
    at_least: float | None
    at_most: float | None

    @property
    def bound(self) -> str:
        parts = ([f"≥ {self.at_least:g}"] if self.at_least is not None else []) + \
                ([f"≤ {self.at_most:g}"] if self.at_most is not None else [])
        return " and ".join(parts)

    @property
    def met(self) -> bool | None:
        try:
            number = float(self.value)
        except (TypeError, ValueError):
            return None
        return ((self.at_least is None or number >= self.at_least)
                and (self.at_most is None or number <= self.at_most))

    def sentence(self) -> str:
        if self.met is None:
            return f"{self.name} is {self.value!r}, not a number, so its bound {self.bound} cannot be checked"
        return f"{self.name} is {self.value}, which {'meets' if self.met else 'misses'} its bound {self.bound}"


def bounds_of(at_least: float | None, at_most: float | None) -> dict[str, float]:
    """The payload entries for a metric's bounds (none when it declares none)."""
    return {key: float(value) for key, value in (("at_least", at_least), ("at_most", at_most)) if value is not None}


def gates(metrics: list[dict]) -> list[Gate]:
    """The metrics that declare a bound, each as a Gate."""
    return [Gate(m["name"], m["value"], m.get("at_least"), m.get("at_most"))
            for m in metrics if any(m.get(key) is not None for key in BOUND_KEYS)]


def describe(metric: dict, fast: bool) -> str:
    """How `make course` shows one metric: its value, and its bound with the verdict."""
    text = f"{metric['name']} = {metric['value']}{(' ' + metric['unit']) if metric.get('unit') else ''}"
    for gate in gates([metric]):
        verdict = "full mode only" if fast else {True: "met", False: "MISSED", None: "not a number"}[gate.met]
        text += f" [{gate.bound}: {verdict}]"
    return text


def declared_bounds(source: str) -> list[tuple[str, dict[str, float]]]:
    """(name, bounds) of each ``record_metric`` call in a cell's source that declares a bound.

    The name and bounds must be literals (so a stored output can be held to them); anything else
    raises ValueError with a sentence."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "record_metric"):
            continue
        keywords = {k.arg: k.value for k in node.keywords if k.arg in BOUND_KEYS}
        if not keywords:
            continue
        try:
            name = ast.literal_eval(node.args[0])
            bounds = {key: float(ast.literal_eval(value)) for key, value in keywords.items()}
        except (ValueError, IndexError, TypeError):
            raise ValueError(f"record_metric at line {node.lineno}: write the name and its bound as literals, "
                             f"so stored outputs can be checked against them") from None
        found.append((name, bounds))
    return found
