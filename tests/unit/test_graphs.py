"""dlcourse.graphs: the reference engine agrees with torch.autograd, random expressions are
well-formed and repeatable, and graphs draw headless."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dlcourse.graphs import Value, draw_graph, random_expression, topological_order, torch_gradients, value_graph  # noqa: E402


def test_engine_on_a_neuron() -> None:
    w0, x0, w1, x1, w2 = (Value(v) for v in (2.0, -1.0, -3.0, -2.0, -3.0))
    f = (w0 * x0 + w1 * x1 + w2).sigmoid()
    f.backward()
    s = 1 / (1 + math.exp(-1.0))
    assert f.data == pytest.approx(s)
    assert [w0.grad, x0.grad, w2.grad] == pytest.approx([s * (1 - s) * -1.0, s * (1 - s) * 2.0, s * (1 - s)])


def test_gradients_accumulate_over_reuse() -> None:
    a = Value(1.5)
    f = a * a + a  # df/da = 2a + 1
    f.backward()
    assert a.grad == pytest.approx(4.0)


def test_topological_order_lists_each_node_once_after_its_inputs() -> None:
    a, b = Value(1.0), Value(2.0)
    t = a * b
    f = t + t.tanh()
    order = topological_order(f)
    assert len(order) == len({id(n) for n in order}) == 5
    position = {id(n): i for i, n in enumerate(order)}
    assert all(position[id(c)] < position[id(n)] for n in order for c in n._prev)


def test_random_expressions_match_torch_and_use_every_node() -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for _ in range(100):
        expression = random_expression(rng, int(rng.integers(2, 5)), int(rng.integers(3, 9)))
        used = {i for step in expression.steps for i in step.args}
        assert used == set(range(len(expression.leaves) + len(expression.steps) - 1)), expression.describe()
        leaves, out = expression.run(Value)
        out.backward()
        value, grads = torch_gradients(expression)
        assert out.data == pytest.approx(value, rel=1e-12)
        assert [leaf.grad for leaf in leaves] == pytest.approx(grads, rel=1e-9, abs=1e-12)


def test_random_expressions_repeat_with_the_seed() -> None:
    first = random_expression(np.random.default_rng(3))
    assert first == random_expression(np.random.default_rng(3))
    assert first.describe().startswith("a = ") and "f = " in first.describe()


def test_value_graph_draws_values_and_gradients() -> None:
    a, b = Value(0.5, label="a"), Value(-1.0, label="b")
    f = (a * b).tanh()
    f.backward()
    nodes, edges = value_graph(f)
    assert sum(n.is_op for n in nodes) == 2 and len(nodes) == 6 and len(edges) == 5
    assert all(a.x < b.x for a, b in ((next(n for n in nodes if n.name == s), next(n for n in nodes if n.name == e))
                                      for s, e in edges)), "every arrow points right"
    fig = draw_graph(nodes, edges, title="t")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "a" in texts and "tanh" in texts and f"∂ {a.grad:.4g}" in texts and fig.axes[0].get_title() == "t"
    assert not any(n.grad is not None for n in value_graph(f, grads=False)[0])
