"""Computational graphs for lab 02: a reference scalar autograd engine, random expressions to
test engines against torch.autograd, and a matplotlib drawing of a graph with its numbers.

`Value` follows the spirit of micrograd's ``engine.py`` (Karpathy): each operation creates a
new Value and owns its local derivative as a closure ``_backward``; `Value.backward` visits
the graph in reverse topological order. It is the solution of lab 02's exercises, kept here
so that the checks and the rest of the lab can rely on a working engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

# ------------------------------------------------------------------------------ the engine


class Value:
    """A scalar that remembers how it was computed, so gradients can flow back through it."""

    def __init__(self, data: float, _children: tuple = (), _op: str = "", label: str = ""):
        self.data = float(data)
        self.grad = 0.0
        self._backward: Callable[[], None] = lambda: None
        self._prev = tuple(_children)
        self._op = _op
        self.label = label

    def __repr__(self) -> str:
        return f"Value(data={self.data:.4f}, grad={self.grad:.4f})"

    def __add__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "×")

        def _backward() -> None:
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __pow__(self, k: float) -> Value:
        out = Value(self.data ** k, (self,), f"**{k:g}")

        def _backward() -> None:
            self.grad += k * self.data ** (k - 1) * out.grad
        out._backward = _backward
        return out

    def _unary(self, value: float, op: str, local: float) -> Value:
        """An elementwise function whose derivative at this point is `local`."""
        out = Value(value, (self,), op)

        def _backward() -> None:
            self.grad += local * out.grad
        out._backward = _backward
        return out

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        return self._unary(t, "tanh", 1.0 - t * t)

    def relu(self) -> Value:
        return self._unary(max(self.data, 0.0), "relu", float(self.data > 0))

    def exp(self) -> Value:
        e = math.exp(self.data)
        return self._unary(e, "exp", e)

    def sigmoid(self) -> Value:
        s = 0.5 * (1.0 + math.tanh(0.5 * self.data))  # σ(x) without overflow
        return self._unary(s, "σ", s * (1.0 - s))

    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Value | float) -> Value:
        return self + (-other)

    def __truediv__(self, other: Value | float) -> Value:
        return self * other ** -1

    def __radd__(self, other: float) -> Value:
        return self + other

    def __rmul__(self, other: float) -> Value:
        return self * other

    def __rsub__(self, other: float) -> Value:
        return (-self) + other

    def __rtruediv__(self, other: float) -> Value:
        return Value(other) * self ** -1

    def backward(self) -> None:
        """Set .grad of every Value this one depends on to ∂self/∂(that Value)."""
        self.grad = 1.0
        for node in reversed(topological_order(self)):
            node._backward()


def topological_order(root: Any) -> list[Any]:
    """Every node `root` depends on, each after all the nodes it was computed from (iterative DFS)."""
    order: list[Any] = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
        elif id(node) not in visited:
            visited.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node._prev))
    return order


# ------------------------------------------------------------------------------ random expressions

_BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b, "/": lambda a, b: a / b}
_UNARY = {"tanh": lambda a: a.tanh(), "relu": lambda a: a.relu(), "exp": lambda a: a.exp(), "neg": lambda a: -a}
_WITH_CONSTANT = {"+c": lambda a, c: a + c, "c×": lambda a, c: c * a, "c-": lambda a, c: c - a, "**": lambda a, c: a ** c}


@dataclass(frozen=True)
class Step:
    """One operation: ``op`` applied to earlier nodes (indices into the node list), maybe with a constant."""

    op: str
    args: tuple[int, ...]
    const: float = 0.0


@dataclass(frozen=True)
class Expression:
    """A straight-line program over scalar leaves; nodes may be used more than once."""

    leaves: tuple[float, ...]
    steps: tuple[Step, ...]

    def names(self) -> list[str]:
        n = len(self.leaves)
        return [chr(ord("a") + i) for i in range(n)] + [f"t{i + 1}" for i in range(len(self.steps) - 1)] + ["f"]

    def run(self, leaf: Callable[[float], Any]) -> tuple[list[Any], Any]:
        """Build the expression from leaves made by `leaf` (a Value class, a torch constructor...).

        Returns the leaves and the output f."""
        nodes = self.build(leaf)
        return nodes[:len(self.leaves)], nodes[-1]

    def build(self, leaf: Callable[[float], Any]) -> list[Any]:
        """Every node of the expression, leaves first and f last, in the order of `names()`."""
        nodes = [leaf(v) for v in self.leaves]
        for step in self.steps:
            args = [nodes[i] for i in step.args]
            if step.op in _BINARY:
                nodes.append(_BINARY[step.op](*args))
            elif step.op in _UNARY:
                nodes.append(_UNARY[step.op](*args))
            else:
                nodes.append(_WITH_CONSTANT[step.op](args[0], step.const))
        return nodes

    def describe(self) -> str:
        """The expression in words, e.g. 'a = 0.5, b = -1.2; t1 = a × b; f = tanh(t1) + t1'."""
        names = self.names()
        parts = []
        for k, step in enumerate(self.steps):
            x = [names[i] for i in step.args]
            if step.op in _BINARY:
                text = f"{x[0]} {step.op} {x[1]}"
            elif step.op == "neg":
                text = f"-{x[0]}"
            elif step.op in _UNARY:
                text = f"{step.op}({x[0]})"
            else:
                text = {"+c": f"{x[0]} + {step.const:g}", "c×": f"{step.const:g} × {x[0]}",
                        "c-": f"{step.const:g} - {x[0]}", "**": f"{x[0]}**{step.const:g}"}[step.op]
            parts.append(f"{names[len(self.leaves) + k]} = {text}")
        leaves = ", ".join(f"{n} = {v:g}" for n, v in zip(names, self.leaves))
        return f"{leaves}; " + "; ".join(parts)


def _acceptable(op: str, args: list[float], const: float) -> bool:
    """Keep every value moderate and away from kinks and poles, so any correct engine agrees to 1e-9."""
    if op == "relu" and abs(args[0]) < 0.05:
        return False
    if op == "exp" and args[0] > 2.5:
        return False
    if op == "/" and abs(args[1]) < 0.3:
        return False
    if op == "**" and const < 0 and abs(args[0]) < 0.3:
        return False
    return True


def random_expression(rng: Any, n_leaves: int = 3, n_steps: int = 6) -> Expression:
    """A random expression that reuses nodes (so gradients must accumulate) and uses every node.

    `rng` is a numpy Generator. After `n_steps` random operations, the nodes nothing uses yet
    are joined with + or × until one remains, so every leaf and step reaches the output f.
    """
    leaves = tuple(float(round(v, 4)) for v in rng.uniform(-2.0, 2.0, size=n_leaves))
    values = list(leaves)
    steps: list[Step] = []
    ops = list(_BINARY) + list(_UNARY) + list(_WITH_CONSTANT)

    def add(op: str, args: list[int], const: float = 0.0) -> bool:
        x = [values[i] for i in args]
        if not _acceptable(op, x, const):
            return False
        result = Expression(tuple(x), (Step(op, tuple(range(len(x))), const),)).run(Value)[1].data
        if abs(result) > 30.0:
            return False
        values.append(result)
        steps.append(Step(op, tuple(args), const))
        return True

    while len(steps) < n_steps:
        op = str(rng.choice(ops))
        last = len(values) - 1
        first = last if rng.random() < 0.5 else int(rng.integers(0, len(values)))  # chains and reuse
        args = [first] if op not in _BINARY else [first, int(rng.integers(0, len(values)))]
        add(op, args, float(rng.choice([2.0, 3.0, -1.0])) if op == "**" else float(round(rng.uniform(-2, 2), 2)))
    used = {i for step in steps for i in step.args}
    dangling = [i for i in range(len(values)) if i not in used]
    while len(dangling) > 1:
        a, b = dangling.pop(), dangling.pop()
        if not add(str(rng.choice(["+", "×"])), [b, a]):
            add("+", [b, a])
        dangling.append(len(values) - 1)
    return Expression(leaves, tuple(steps))


def torch_gradients(expression: Expression) -> tuple[float, list[float]]:
    """The value of an expression and the gradient of every leaf, from torch.autograd in float64."""
    import torch

    leaves, out = expression.run(lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True))
    out.backward()
    return float(out.item()), [float(x.grad.item()) if x.grad is not None else 0.0 for x in leaves]


# ------------------------------------------------------------------------------ drawing


@dataclass(frozen=True)
class GraphNode:
    """A node to draw: an operation (a circle) or a value (a box), with optional numbers."""

    name: str
    label: str
    x: float
    y: float
    value: float | None = None
    grad: float | None = None
    is_op: bool = False


def draw_graph(nodes: Sequence[GraphNode], edges: Sequence[tuple[str, str]], *, title: str,
               ax: Any = None, size: tuple[float, float] | None = None):
    """Draw a computational graph left to right: values in green, gradients in red. Returns the figure."""
    import matplotlib.pyplot as plt

    where = {n.name: n for n in nodes}
    if ax is None:
        width = max(n.x for n in nodes) - min(n.x for n in nodes)
        height = max(n.y for n in nodes) - min(n.y for n in nodes)
        _, ax = plt.subplots(figsize=size or (2.0 + 1.9 * width, 1.4 + 0.7 * height))
    for start, end in edges:
        a, b = where[start], where[end]
        bend = 0.25 if b.x - a.x > 0.75 else 0.0  # long arrows curve around the nodes they skip
        ax.annotate("", xy=(b.x, b.y), xytext=(a.x, a.y),
                    arrowprops=dict(arrowstyle="-|>", color="0.45", shrinkA=20, shrinkB=20, lw=1.2,
                                    connectionstyle=f"arc3,rad={bend}"))
    for n in nodes:
        box = dict(boxstyle="circle,pad=0.35" if n.is_op else "round,pad=0.4",
                   fc="#e8eef9" if n.is_op else "white", ec="0.3")
        ax.text(n.x, n.y, n.label, ha="center", va="center", fontsize=11, bbox=box, zorder=3)
        if n.value is not None:
            ax.text(n.x, n.y + 0.3, f"{n.value:.4g}", ha="center", va="bottom", fontsize=9, color="#1a7f37")
        if n.grad is not None:
            ax.text(n.x, n.y - 0.3, f"∂ {n.grad:.4g}", ha="center", va="top", fontsize=9, color="#b42318")
    xs, ys = [n.x for n in nodes], [n.y for n in nodes]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.set_title(title)
    ax.axis("off")
    return ax.figure


def value_graph(root: Any, *, grads: bool = True) -> tuple[list[GraphNode], list[tuple[str, str]]]:
    """Nodes and edges of the graph behind a Value (any object with data, grad, _prev and _op).

    Each Value becomes a box; the operation that produced it becomes a circle just before it.
    Columns are the longest distance from a leaf, so every arrow points right.
    """
    order = topological_order(root)
    column: dict[int, int] = {}
    row: dict[int, float] = {}
    taken: dict[int, list[float]] = {}
    next_leaf_row = 0.0
    for node in order:  # inputs come before the nodes computed from them
        children = list(dict.fromkeys(node._prev))
        column[id(node)] = 0 if not children else 2 + max(column[id(c)] for c in children)
        if children:
            y = sum(row[id(c)] for c in children) / len(children)  # centred on its inputs
        else:
            y, next_leaf_row = next_leaf_row, next_leaf_row - 1.5
        while any(abs(y - other) < 1.2 for other in taken.setdefault(column[id(node)], [])):
            y -= 0.3  # never on top of another node in the same column
        taken[column[id(node)]].append(y)
        row[id(node)] = y
    nodes, edges = [], []
    for node in order:
        name, x, y = f"v{id(node)}", column[id(node)] / 2, row[id(node)]
        label = getattr(node, "label", "") or ("" if node._prev else f"{node.data:.4g}")
        nodes.append(GraphNode(name, label or " ", x, y, node.data, node.grad if grads else None))
        if node._prev:
            op_name = f"op{id(node)}"
            nodes.append(GraphNode(op_name, node._op, x - 0.5, y, is_op=True))
            edges.append((op_name, name))
            edges += [(f"v{id(child)}", op_name) for child in dict.fromkeys(node._prev)]
    return nodes, edges
