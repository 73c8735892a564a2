"""The lab 01 checks, called directly: they accept right answers and explain the typical wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

from dlcourse.checks.lab01 import (check_dense_forward, check_keras_kernels, check_neuron_by_hand,
                                   check_spot_the_bug, check_two_layer_forward, reference_two_layer)
from dlcourse.functions import relu, sigmoid

W_NEURON, X_NEURON, B_NEURON = np.array([0.5, -1.0, 2.0]), np.array([2.0, 1.0, 0.5]), -0.5
ROW, X3 = np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0])
W1 = np.array([[1.0, -1.0], [0.5, 0.5], [-1.0, 2.0]])
B1 = np.array([0.0, -0.5, 0.5])
W2 = np.array([[1.0, -2.0, 0.5]])
B2 = np.array([0.5])


def _stub(*args):
    raise NotImplementedError("Exercise 01.x: replace this line with your code.")


def test_neuron_by_hand() -> None:
    args = (W_NEURON, X_NEURON, B_NEURON)
    assert check_neuron_by_hand.evaluate(0.5, 0.6225, *args).passed
    assert check_neuron_by_hand.evaluate(0.5, 0.622, *args).passed, "three correct decimals are enough"
    assert check_neuron_by_hand.evaluate(None, None, *args).status == "not_attempted"
    no_bias = check_neuron_by_hand.evaluate(1.0, 0.7311, *args)
    assert no_bias.status == "failed" and "`z_hand` is 1" in no_bias.message and "bias" in no_bias.hint
    flipped = check_neuron_by_hand.evaluate(0.5, 0.3775, *args)
    assert flipped.status == "failed" and "a_hand" in flipped.message and "σ(−z)" in flipped.hint
    assert "without its bias" in check_neuron_by_hand.evaluate(0.5, 0.7311, *args).hint
    assert "z itself" in check_neuron_by_hand.evaluate(0.5, 0.5, *args).hint
    assert "remove the quotes" in check_neuron_by_hand.evaluate("0.5", 0.6225, *args).message
    assert check_neuron_by_hand.evaluate(0.5, 0.62, *args).status == "failed", "two decimals are not enough"


def test_spot_the_bug() -> None:
    assert check_spot_the_bug.evaluate(1.4, 0.8022, ROW, X3).passed
    assert check_spot_the_bug.evaluate(np.float64(1.4), 0.802, ROW, X3).passed
    kept = check_spot_the_bug.evaluate(0.7, 0.6682, ROW, X3)
    assert kept.status == "failed" and "z_fixed" in kept.message and "first bug" in kept.hint
    half = check_spot_the_bug.evaluate(1.4, 0.5, ROW, X3)
    assert half.status == "failed" and "σ(0)" in half.hint
    wrong_z = check_spot_the_bug.evaluate(1.4, 0.6682, ROW, X3)
    assert wrong_z.status == "failed" and "σ(0.7)" in wrong_z.hint
    assert check_spot_the_bug.evaluate(1.4, None, ROW, X3).status == "not_attempted"
    assert "single number" in check_spot_the_bug.evaluate([1.4, 3.2, 5.0], 0.8022, ROW, X3).message


def test_dense_forward() -> None:
    passed = check_dense_forward.evaluate(lambda X, W, b: X @ W.T + b)
    assert passed.passed and "non-square" in passed.message
    assert check_dense_forward.evaluate(lambda X, W, b: np.einsum("ni,oi->no", X, W) + b).passed
    no_bias = check_dense_forward.evaluate(lambda X, W, b: X @ W.T)
    assert no_bias.status == "failed" and "bias b is missing" in no_bias.hint
    transposed = check_dense_forward.evaluate(lambda X, W, b: X @ W + b)
    assert transposed.status == "failed" and "W.T" in transposed.hint
    assert check_dense_forward.evaluate(_stub).status == "not_attempted"
    assert "should be a function" in check_dense_forward.evaluate(np.zeros(3)).message
    flat = check_dense_forward.evaluate(lambda X, W, b: (X @ W.T + b).ravel())
    assert flat.status == "failed" and "shape" in flat.message


def test_two_layer_forward() -> None:
    args = (W1, B1, W2, B2)
    right = check_two_layer_forward.evaluate(reference_two_layer, *args)
    assert right.passed and "p = 0.5622" in right.message
    no_relu = check_two_layer_forward.evaluate(lambda X, W1, b1, W2, b2: sigmoid((X @ W1.T + b1) @ W2.T + b2), *args)
    assert no_relu.status == "failed" and "hidden ReLU" in no_relu.hint
    no_sigmoid = check_two_layer_forward.evaluate(lambda X, W1, b1, W2, b2: relu(X @ W1.T + b1) @ W2.T + b2, *args)
    assert no_sigmoid.status == "failed" and "apply sigmoid" in no_sigmoid.hint
    flat = check_two_layer_forward.evaluate(lambda *a: reference_two_layer(*a).ravel(), *args)
    assert flat.status == "failed" and "(8,)" in flat.message
    assert check_two_layer_forward.evaluate(_stub, *args).status == "not_attempted"


def test_reference_two_layer_worked_input() -> None:
    p = reference_two_layer(np.array([[1.0, 2.0]]), W1, B1, W2, B2)
    assert p.shape == (1, 1) and p[0, 0] == pytest.approx(float(sigmoid(0.25)))


def test_keras_kernels() -> None:
    assert check_keras_kernels.evaluate(W1.T, W2.T, W1, W2).passed
    assert check_keras_kernels.evaluate(W1.T.tolist(), W2.T.astype(np.float32), W1, W2).passed
    kept = check_keras_kernels.evaluate(W1, W2, W1, W2)
    assert kept.status == "failed" and "shape (3, 2)" in kept.message and "(n_in, n_out)" in kept.hint
    reshaped = check_keras_kernels.evaluate(W1.reshape(2, 3), W2.reshape(3, 1), W1, W2)
    assert reshaped.status == "failed" and "reshape" in reshaped.hint
    only_second_wrong = check_keras_kernels.evaluate(W1.T, W2, W1, W2)
    assert only_second_wrong.status == "failed" and "kernel2" in only_second_wrong.message
    assert check_keras_kernels.evaluate(None, W2.T, W1, W2).status == "not_attempted"
    assert "array of numbers" in check_keras_kernels.evaluate("W1.T", W2.T, W1, W2).message


def test_two_layer_forward_is_called_at_other_weights_and_sizes() -> None:
    args = (W1, B1, W2, B2)

    def lab_weights_only(X, w1, c1, w2, c2):  # ignores its arguments, as one reading notebook globals would
        return reference_two_layer(X, W1, B1, W2, B2)

    ignored = check_two_layer_forward.evaluate(lab_weights_only, *args)
    assert ignored.status == "failed" and "other weights" in ignored.message
    one_column = check_two_layer_forward.evaluate(lambda *a: reference_two_layer(*a)[:, :1], *args)
    assert one_column.status == "failed" and "5-2-2" in one_column.message
    f32 = check_two_layer_forward.evaluate(lambda *a: reference_two_layer(*(v.astype(np.float32) for v in a)), *args)
    assert f32.passed, f32.message


def _headline(monkeypatch, capsys, answers: dict) -> tuple[float, str]:
    """Run the solution's own cells from the weights to the headline (max |NumPy − framework|), with exercises
    01.3 and 01.4 replaced as `answers` says (a registered answer, or None for the lab's stub); return the recorded
    value and what the guarded cells printed. The PyTorch network stands in for the Keras one, so that the test
    needs no TensorFlow."""
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    import matplotlib.pyplot as plt

    torch = pytest.importorskip("torch")
    import dlcourse.runner
    from dlcourse import notebooks

    recorded = []
    monkeypatch.setattr(dlcourse.runner, "record_metric", lambda name, value, *a, **k: recorded.append(value))
    nb = notebooks.read(Path(__file__).resolve().parents[2] / "solutions" / "01_forward_pass.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    ns = {"np": np, "torch": torch, "plt": plt, "relu": relu, "sigmoid": sigmoid}
    exec(next(c.source for c in code if "parameters" in c.metadata.get("tags", [])), ns)
    for marker in ("W_example = ", "W1 = np.array", "x_tiny = "):
        exec(next(c.source for c in code if marker in c.source), ns)
    for exercise_id in ("01.3", "01.4"):
        source = next(c.source for c in code if notebooks.meta(c).get("exercise") == exercise_id)
        if exercise_id in answers:
            source = notebooks.replace_regions(source, answers[exercise_id], exercise_id)
        exec(source, ns)
    exec(next(c.source for c in code if "def linear_from" in c.source), ns)
    ns["keras_net"] = lambda X: ns["torch_net"](torch.tensor(X)).detach()
    capsys.readouterr()
    for marker in ("grid_p = ", "record_metric("):
        exec(next(c.source for c in code if marker in c.source), ns)
    plt.close("all")
    assert len(recorded) == 1
    return float(recorded[0]), capsys.readouterr().out


def test_headline_parity_runs_the_students_forward_pass(monkeypatch, capsys) -> None:
    """The picture and the headline run the student's two_layer_forward: a registered wrong answer (no hidden
    ReLU) moves the headline from float32 rounding to a visible gap; unsolved, the reference stands in."""
    from dlcourse.check import registry

    wrong = registry("01")["01.4"].wrong_answers
    right, printed = _headline(monkeypatch, capsys, {})
    assert right < 1e-6 and "NumPy side: your two_layer_forward" in printed
    no_relu, _ = _headline(monkeypatch, capsys, {"01.4": wrong["forgot the hidden ReLU"]})
    assert no_relu > 1e-2, "without the hidden ReLU the student's network differs from the frameworks'"
    no_sigmoid, _ = _headline(monkeypatch, capsys, {"01.4": wrong["forgot the output sigmoid"]})
    assert no_sigmoid > 1e-2
    unsolved, printed = _headline(monkeypatch, capsys, {"01.3": None, "01.4": None})
    assert unsolved == right, "the reference stands in while the exercises are unsolved"
    assert "solve exercises 01.3 and 01.4 first" in printed and "reference forward pass draws it" in printed
    assert "NumPy side: the reference forward pass" in printed
