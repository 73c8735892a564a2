"""Lab 02's two moons, the reference MLP on the reference Value engine, and its decision-boundary plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from dlcourse.graphs import Value  # noqa: E402
from dlcourse.value_mlp import MLP, accuracy, hinge_loss, make_moons, plot_decision_boundary  # noqa: E402


def test_make_moons_is_seeded_balanced_and_shuffled() -> None:
    X, y = make_moons(51, noise=0.05, seed=3)
    assert X.shape == (51, 2) and y.shape == (51,) and set(np.unique(y)) == {0, 1}
    assert np.sum(y == 0) == 25 and not np.all(y[:25] == 0)
    X2, y2 = make_moons(51, noise=0.05, seed=3)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert not np.array_equal(X, make_moons(51, noise=0.05, seed=4)[0])


def test_mlp_parameters_and_hinge_loss_gradient() -> None:
    model = MLP(3, [4, 2, 1], np.random.default_rng(0), Value)
    assert len(model.parameters()) == 3 * 4 + 4 + 4 * 2 + 2 + 2 + 1
    X, y = make_moons(6, seed=0)
    model = MLP(2, [3, 1], np.random.default_rng(1), Value)
    loss = hinge_loss(model, X, y)
    loss.backward()
    w = model.layers[-1].neurons[0].b
    before = w.data
    w.data = before + 1e-6
    up = hinge_loss(model, X, y).data
    w.data = before - 1e-6
    down = hinge_loss(model, X, y).data
    assert np.isclose((up - down) / 2e-6, w.grad, atol=1e-6)


def test_accuracy_and_plot() -> None:
    X, y = make_moons(20, seed=0)
    model = MLP(2, [3, 1], np.random.default_rng(1), Value)
    assert 0.0 <= accuracy(model, X, y) <= 1.0
    fig = plot_decision_boundary(model, X, y, grid=9, title="t")
    ax = fig.axes[0]
    assert ax.get_title() == "t" and ax.get_xlabel() and [t.get_text() for t in ax.get_legend().get_texts()] == ["class 0", "class 1"]
