"""The reference NumPy MLP of lab 05: shapes, dtypes, a gradient check, and that it learns."""

from __future__ import annotations

import numpy as np
import pytest

from dlcourse import mlp
from dlcourse.functions import cross_entropy, numeric_gradient, relative_error, relu
from dlcourse.training import Stopwatch


def test_prepare_images_flattens_scales_and_keeps_float32() -> None:
    images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28) % 256
    x = mlp.prepare_images(images.astype(np.uint8))
    assert x.shape == (2, 784) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x[1], (images[1].ravel() / 255.0), rtol=1e-6)


def test_init_params_uses_he_for_the_relu_layer() -> None:
    params = mlp.init_params(784, 256, 10, seed=3)
    assert {k: v.shape for k, v in params.items()} == {"W1": (784, 256), "b1": (256,), "W2": (256, 10), "b2": (10,)}
    assert all(v.dtype == np.float32 for v in params.values())
    assert params["W1"].std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)
    assert params["W2"].std() == pytest.approx(np.sqrt(1 / 256), rel=0.1)
    assert not params["b1"].any() and not params["b2"].any()
    assert mlp.count_params(mlp.init_params(784, 128, 10)) == 101_770
    again = mlp.init_params(784, 256, 10, seed=3)
    assert all(np.array_equal(params[k], again[k]) for k in params), "the same seed gives the same weights"


def test_forward_loss_and_dtypes() -> None:
    params = mlp.init_params(20, 16, 10, seed=0)
    x = np.random.default_rng(0).random((5, 20), dtype=np.float32)
    y = np.array([0, 1, 2, 3, 9])
    logits, cache = mlp.forward(params, x)
    assert logits.shape == (5, 10) and logits.dtype == np.float32
    assert set(cache) == {"x", "z1", "h1"} and cache["h1"].dtype == np.float32 and (cache["h1"] >= 0).all()
    loss, dlogits = mlp.softmax_cross_entropy(logits, y)
    assert loss == pytest.approx(cross_entropy(logits, y), rel=1e-6)
    assert dlogits.dtype == np.float32 and np.allclose(dlogits.sum(axis=1), 0, atol=1e-7)
    numeric = numeric_gradient(lambda z: mlp.softmax_cross_entropy(z, y)[0], logits.astype(np.float64))
    assert relative_error(dlogits, numeric) < 1e-3  # float32 analytic vs float64 numeric
    grads = mlp.backward(params, cache, dlogits)
    assert all(grads[k].shape == params[k].shape and grads[k].dtype == np.float32 for k in params)


def test_gradient_check_accepts_the_reference_and_rejects_a_wrong_backward() -> None:
    rng = np.random.default_rng(1)
    params = mlp.init_params(12, 8, 10, seed=1, dtype=np.float64)
    x, y = rng.standard_normal((6, 12)), rng.integers(0, 10, 6)
    errors = mlp.gradient_check(mlp.backward, params, x, y)
    assert set(errors) == set(mlp.PARAM_NAMES) and max(errors.values()) < 1e-6

    def doubled_w2(p, cache, dlogits):
        return {**mlp.backward(p, cache, dlogits), "W2": 2 * cache["h1"].T @ dlogits}

    wrong = mlp.gradient_check(doubled_w2, params, x, y)
    assert wrong["W2"] > 0.1 and wrong["W1"] < 1e-6


def test_momentum_step_matches_the_torch_rule() -> None:
    params = {"w": np.array([1.0, -2.0])}
    velocity = {"w": np.zeros(2)}
    for grad in (np.array([0.5, 1.0]), np.array([0.5, 1.0])):
        params, velocity = mlp.momentum_step(params, {"w": grad}, velocity, lr=0.1, momentum=0.9)
    np.testing.assert_allclose(velocity["w"], [0.95, 1.9])  # 0.9·g + g
    np.testing.assert_allclose(params["w"], [1.0 - 0.1 * (0.5 + 0.95), -2.0 - 0.1 * (1.0 + 1.9)])


def test_minibatches_cover_every_example_once_in_random_order() -> None:
    batches = list(mlp.minibatches(10, 4, np.random.default_rng(0)))
    assert [len(b) for b in batches] == [4, 4, 2]
    joined = np.concatenate(batches)
    assert sorted(joined.tolist()) == list(range(10)) and joined.tolist() != list(range(10))


def test_train_learns_a_separable_problem_and_reports_a_keras_style_history() -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 8)) * 3
    y = rng.integers(0, 3, 600)
    x = (centres[y] + rng.standard_normal((600, 8))).astype(np.float32)
    watch = Stopwatch()
    params, history = mlp.train(mlp.init_params(8, 16, 3, seed=0), x[:500], y[:500], x_val=x[500:], y_val=y[500:],
                                epochs=3, batch_size=32, lr=0.05, momentum=0.9, progress=False, stopwatch=watch)
    assert list(history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(v) == 3 for v in history.values())
    assert history["loss"][-1] < history["loss"][0] and history["val_accuracy"][-1] > 0.9
    assert watch.seconds > 0
    probs = mlp.predict_proba(params, x[500:], batch_size=7)
    assert probs.shape == (100, 3) and np.allclose(probs.sum(axis=1), 1)
    loss, accuracy = mlp.evaluate(params, x[500:], y[500:])
    assert loss == pytest.approx(history["val_loss"][-1]) and accuracy == pytest.approx(history["val_accuracy"][-1])


def test_plot_hidden_units_labels_every_panel() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = mlp.plot_hidden_units(mlp.init_params(784, 10, 10), n=10, ncols=5)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"unit {k}" for k in range(10)] and fig._suptitle.get_text()
    plt.close(fig)


def _blobs(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, 8)) * 3
    y = rng.integers(0, 3, n)
    return (centres[y] + rng.standard_normal((n, 8))).astype(np.float32), y


def test_train_runs_the_step_functions_it_is_given() -> None:
    """The lab's headline comes from the student's functions: swap one for a wrong answer and it changes."""
    x, y = _blobs()
    common = dict(x_val=x[500:], y_val=y[500:], epochs=3, batch_size=32, lr=0.05, progress=False)
    _, right = mlp.train(mlp.init_params(8, 16, 3, seed=0), x[:500], y[:500], **common)
    _, same = mlp.train(mlp.init_params(8, 16, 3, seed=0), x[:500], y[:500], forward=mlp.forward,
                        softmax_cross_entropy=mlp.softmax_cross_entropy, backward=mlp.backward,
                        momentum_step=mlp.momentum_step, **common)
    assert same == right

    def uphill(params, grads, velocity, lr, momentum=0.9):  # 05.5's sign error
        return mlp.momentum_step(params, grads, velocity, -lr, momentum)

    def no_relu_gate(params, cache, dlogits):  # 05.4's forgotten ReLU derivative
        dz1 = dlogits @ params["W2"].T
        return {**mlp.backward(params, cache, dlogits), "W1": cache["x"].T @ dz1, "b1": dz1.sum(axis=0)}

    _, wrong_step = mlp.train(mlp.init_params(8, 16, 3, seed=0), x[:500], y[:500], momentum_step=uphill, **common)
    _, wrong_backward = mlp.train(mlp.init_params(8, 16, 3, seed=0), x[:500], y[:500], backward=no_relu_gate, **common)
    assert right["val_accuracy"][-1] > 0.9 and wrong_step["val_accuracy"][-1] < 0.7
    assert wrong_backward["val_loss"] != right["val_loss"]


def test_train_keeps_float32_when_a_step_returns_float64() -> None:
    x, y = _blobs(100)
    params, _ = mlp.train(mlp.init_params(8, 16, 3, seed=0), x, y, epochs=1, progress=False,
                          momentum_step=lambda p, g, v, lr, m: mlp.momentum_step(
                              {k: a.astype(np.float64) for k, a in p.items()}, g, v, lr, m))
    assert all(v.dtype == np.float32 for v in params.values())


def test_dropout_step_gives_the_gradient_of_the_dropped_network() -> None:
    rng = np.random.default_rng(3)
    params = mlp.init_params(6, 9, 4, seed=3, dtype=np.float64)
    params["b1"] = 0.1 * rng.standard_normal(9)
    x, y = rng.standard_normal((5, 6)), rng.integers(0, 4, 5)
    _, _, grads = mlp._dropout_step(mlp.forward, mlp.softmax_cross_entropy, mlp.backward, mlp.dropout, params, x, y,
                                    0.4, np.random.default_rng(8))
    _, mask = mlp.dropout(np.ones((5, 9)), 0.4, np.random.default_rng(8))  # the same draw

    def loss_with_mask(p):
        h1 = relu(x @ p["W1"] + p["b1"]) * mask
        return mlp.softmax_cross_entropy(h1 @ p["W2"] + p["b2"], y)[0]

    for name in mlp.PARAM_NAMES:
        numeric = numeric_gradient(lambda v, name=name: loss_with_mask({**params, name: v}), params[name])
        assert relative_error(grads[name], numeric) < 1e-6, name


def test_dropout_and_weight_decay() -> None:
    h = np.ones((200, 300))
    out, mask = mlp.dropout(h, 0.25, np.random.default_rng(0))
    assert abs((mask == 0).mean() - 0.25) < 0.01 and np.allclose(out[mask != 0], 1 / 0.75)
    assert mlp.dropout(h, 0.25, np.random.default_rng(0), training=False)[0] is h
    params = {"W1": np.ones((2, 2)), "b1": np.ones(2)}
    grads = mlp.add_weight_decay({"W1": np.zeros((2, 2)), "b1": np.zeros(2)}, params, 0.5)
    assert np.all(grads["W1"] == 0.5) and np.all(grads["b1"] == 0)


def test_softmax_regression_learns() -> None:
    x, y = _blobs()
    params, history = mlp.train(mlp.init_linear(8, 3), x[:500], y[:500], x_val=x[500:], y_val=y[500:], epochs=3,
                                batch_size=32, lr=0.05, forward=mlp.linear_forward, backward=mlp.linear_backward,
                                progress=False)
    assert set(params) == {"W", "b"} and history["val_accuracy"][-1] > 0.9


def test_threads_benchmark_smoke_run_prints_its_table() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "mlp_threads.py"
    out = subprocess.run([sys.executable, str(script), "--fast"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[1].split()[:3] == ["competing", "busy", "processes"]
    assert {row.split()[0] for row in lines[3:]} == {"0", "1"}


def test_dropout_step_stops_the_gradient_of_dropped_units_whatever_the_relu_convention() -> None:
    """A backward pass that counts z = 0 as active (z >= 0) gets the same dropout gradients."""
    params = mlp.init_params(7, 5, 3, seed=1, dtype=np.float64)
    x, y = np.random.default_rng(2).normal(size=(6, 7)), np.array([0, 1, 2, 0, 1, 2])

    def backward_ge(params, cache, dlogits):
        dz1 = (dlogits @ params["W2"].T) * (cache["z1"] >= 0)
        return {"W1": cache["x"].T @ dz1, "b1": dz1.sum(axis=0), "W2": cache["h1"].T @ dlogits, "b2": dlogits.sum(axis=0)}

    grads = [mlp._dropout_step(mlp.forward, mlp.softmax_cross_entropy, fn, mlp.dropout, params, x, y, 0.4,
                               np.random.default_rng(3))[2] for fn in (mlp.backward, backward_ge)]
    for key in mlp.PARAM_NAMES:
        assert np.allclose(grads[0][key], grads[1][key], rtol=1e-12, atol=1e-12), key
