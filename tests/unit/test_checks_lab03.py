"""The lab 03 checks, called directly: they accept right answers and explain the typical wrong ones."""

from __future__ import annotations

import numpy as np

import dlcourse.functions as ref
from dlcourse.checks.lab03 import (check_activation_grads, check_bce, check_cross_entropy,
                                   check_cross_entropy_grad, check_softmax)


def _stub(*args):
    raise NotImplementedError("Exercise 03.x: replace this line with your code.")


def _naive_softmax(z):
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def test_bce() -> None:
    def right(p, y, eps=1e-12):
        p = np.clip(p, eps, 1 - eps)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    def unclipped(p, y, eps=1e-12):
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    passed = check_bce.evaluate(right)
    assert passed.passed and "27.63" in passed.message
    assert check_bce.evaluate(lambda p, y, eps=1e-12: ref.binary_cross_entropy(p, y, eps)).passed
    no_clip = check_bce.evaluate(unclipped)
    assert no_clip.status == "failed" and "not a finite number" in no_clip.message and "np.clip" in no_clip.hint
    sign = check_bce.evaluate(lambda p, y, eps=1e-12: -right(p, y, eps))
    assert sign.status == "failed" and "minus sign" in sign.hint
    assert check_bce.evaluate(_stub).status == "not_attempted"
    assert check_bce.evaluate(None).status == "not_attempted"
    assert "should be a function" in check_bce.evaluate(0.5).message


def test_softmax() -> None:
    assert check_softmax.evaluate(ref.softmax).passed
    naive = check_softmax.evaluate(_naive_softmax)
    assert naive.status == "failed" and "NaN or infinite" in naive.message and "MAXIMUM" in naive.hint
    whole_batch = check_softmax.evaluate(lambda z: np.exp(z - z.max()) / np.exp(z - z.max()).sum())
    assert whole_batch.status == "failed" and "(4, 5) batch" in whole_batch.message and "axis=-1" in whole_batch.hint
    transposed = check_softmax.evaluate(lambda z: ref.softmax(z, axis=0))
    assert transposed.status == "failed"
    assert "shape" in check_softmax.evaluate(lambda z: ref.softmax(z)[..., :2]).message
    assert check_softmax.evaluate(_stub).status == "not_attempted"
    global_max = check_softmax.evaluate(lambda z: np.exp(z - z.max()) / np.exp(z - z.max()).sum(axis=-1, keepdims=True))
    assert global_max.status == "failed" and "-1000, -1001" in global_max.message and "own MAXIMUM" in global_max.hint
    row_min = check_softmax.evaluate(lambda z: np.exp(z - z.min(axis=-1, keepdims=True))
                                     / np.exp(z - z.min(axis=-1, keepdims=True)).sum(axis=-1, keepdims=True))
    assert row_min.status == "failed", "the row spanning ±1000 overflows when its minimum is subtracted"


def test_checks_copy_what_they_hand_over() -> None:
    """An answer that works in place on its argument is right, and cannot change the check's reference."""
    def in_place_softmax(z):
        z -= z.max(axis=-1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=-1, keepdims=True)
        return z

    def in_place_relu_prime(z):
        z[...] = z > 0
        return z

    assert check_softmax.evaluate(in_place_softmax).passed
    assert check_activation_grads.evaluate(ref.sigmoid_grad, ref.tanh_grad, in_place_relu_prime).passed


def test_bce_uses_the_eps_it_is_given() -> None:
    def fixed_eps(p, y, eps=1e-12):
        p = np.clip(p, 1e-12, 1 - 1e-12)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    result = check_bce.evaluate(fixed_eps)
    assert result.status == "failed" and "eps=1e-4" in result.message and "eps the function is given" in result.hint


def test_cross_entropy() -> None:
    assert check_cross_entropy.evaluate(ref.cross_entropy).passed
    sign = check_cross_entropy.evaluate(lambda z, y: -ref.cross_entropy(z, y))
    assert sign.status == "failed" and "2 examples" in sign.message

    def log_of_softmax(z, y):
        return float(-np.mean(np.log(ref.softmax(z, axis=1)[np.arange(len(y)), y])))

    underflow = check_cross_entropy.evaluate(log_of_softmax)
    assert underflow.status == "failed" and "log-sum-exp" in underflow.hint
    assert "+1000" in check_cross_entropy.evaluate(ref.cross_entropy).message

    def global_max(z, y):
        m = z.max()
        return float(np.mean(m + np.log(np.exp(z - m).sum(axis=1)) - z[np.arange(len(y)), y]))

    wrong_max = check_cross_entropy.evaluate(global_max)
    assert wrong_max.status == "failed" and "not a finite number" in wrong_max.message and "EACH ROW" in wrong_max.hint
    assert check_cross_entropy.evaluate(_stub).status == "not_attempted"
    assert "single number" in check_cross_entropy.evaluate(lambda z, y: np.zeros(3)).message


def test_cross_entropy_grad() -> None:
    def right(z, y):
        return (ref.softmax(z, axis=1) - np.eye(z.shape[1])[y]) / len(y)

    assert check_cross_entropy_grad.evaluate(right).passed
    not_mean = check_cross_entropy_grad.evaluate(lambda z, y: right(z, y) * len(y))
    assert not_mean.status == "failed" and "batch size" in not_mean.hint
    assert check_cross_entropy_grad.evaluate(lambda z, y: -right(z, y)).status == "failed"
    assert "shape" in check_cross_entropy_grad.evaluate(lambda z, y: right(z, y).T).message
    assert check_cross_entropy_grad.evaluate(_stub).status == "not_attempted"

    def global_max(z, y):
        e = np.exp(z - z.max())
        return (e / e.sum(axis=1, keepdims=True) - np.eye(z.shape[1])[y]) / len(y)

    assert check_cross_entropy_grad.evaluate(global_max).status == "failed"


def test_activation_grads() -> None:
    relu_prime = ref.relu_grad
    assert check_activation_grads.evaluate(ref.sigmoid_grad, ref.tanh_grad, relu_prime).passed
    assert check_activation_grads.evaluate(ref.sigmoid_grad, ref.tanh_grad, lambda z: np.asarray(z) > 0).passed, \
        "a True/False step is a fine ReLU′"
    plus = check_activation_grads.evaluate(lambda z: ref.sigmoid(z) * (1 + ref.sigmoid(z)), ref.tanh_grad, relu_prime)
    assert plus.status == "failed" and "sigmoid_prime" in plus.message and "1 − σ(z)" in plus.hint
    linear = check_activation_grads.evaluate(ref.sigmoid_grad, lambda z: 1 - np.tanh(z), relu_prime)
    assert linear.status == "failed" and "tanh_prime" in linear.message and "square" in linear.hint
    same = check_activation_grads.evaluate(ref.sigmoid_grad, ref.tanh_grad, ref.relu)
    assert same.status == "failed" and "relu_prime" in same.message
    scalar_only = check_activation_grads.evaluate(ref.sigmoid_grad, ref.tanh_grad, lambda z: 1.0)
    assert scalar_only.status == "failed" and "shape" in scalar_only.message
    assert check_activation_grads.evaluate(_stub, _stub, _stub).status == "not_attempted"
    assert check_activation_grads.evaluate(ref.sigmoid_grad, None, relu_prime).status == "not_attempted"


def _headline_ratio(monkeypatch, capsys, answers: dict) -> tuple[float, str]:
    """Run the solution's own cells that lead to the headline (sigmoid/ReLU gradient-norm ratio at layer 1), with
    exercises 03.3-03.5 replaced as `answers` says (a registered answer, or None for the lab's stub); return the
    recorded ratio and what the cells printed."""
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    import matplotlib.pyplot as plt

    import dlcourse.runner
    from dlcourse import notebooks

    recorded = []
    monkeypatch.setattr(dlcourse.runner, "record_metric", lambda name, value, *a, **k: recorded.append(value))
    nb = notebooks.read(Path(__file__).resolve().parents[2] / "solutions" / "03_losses_activations.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    ns = {"np": np, "ref": ref, "plt": plt}
    exec(next(c.source for c in code if "parameters" in c.metadata.get("tags", [])), ns)
    for exercise_id in ("03.3", "03.4", "03.5"):
        source = next(c.source for c in code if notebooks.meta(c).get("exercise") == exercise_id)
        if exercise_id in answers:
            source = notebooks.replace_regions(source, answers[exercise_id], exercise_id)
        exec(source, ns)
    capsys.readouterr()
    for marker in ("import yours_or_reference", "ACTIVATIONS = {", "def layer_gradient_norms", "record_metric("):
        exec(next(c.source for c in code if marker in c.source), ns)
    plt.close("all")
    assert len(recorded) == 1
    return float(recorded[0]), capsys.readouterr().out


def test_headline_ratio_comes_from_the_students_functions(monkeypatch, capsys) -> None:
    """The lab's headline runs the student's derivatives and cross_entropy_grad: a registered wrong σ′ (σ(1 + σ),
    up to 2 per layer) or a wrong gradient changes it; while unsolved the reference stands in, said in one sentence."""
    from dlcourse.check import registry

    wrong = {ex: check.wrong_answers for ex, check in registry("03").items()}
    right, printed = _headline_ratio(monkeypatch, capsys, {})
    assert right < 1e-12, "sigmoid's gradient vanishes over 30 layers"
    assert "reference" not in printed
    no_vanishing, _ = _headline_ratio(monkeypatch, capsys, {"03.5": wrong["03.5"]["σ′ written as σ(1 + σ)"]})
    assert no_vanishing > 1e6 * right, "with σ(1 + σ) the sigmoid's gradient no longer vanishes"
    sign_relu, _ = _headline_ratio(monkeypatch, capsys, {"03.5": wrong["03.5"]["ReLU′ written as sign(z)"]})
    assert not np.isclose(sign_relu, right, rtol=1e-3, atol=0), "ReLU′ = sign(z) changes the ReLU network's gradient"
    label_index, _ = _headline_ratio(monkeypatch, capsys, {
        "03.4": wrong["03.4"]["subtracted the label index, not a one-hot"]})
    assert not np.isclose(label_index, right, rtol=1e-3, atol=0), "the backward pass starts from the student's gradient"
    unsolved, printed = _headline_ratio(monkeypatch, capsys, {"03.4": None, "03.5": None})
    assert unsolved == right, "the reference stands in while the exercises are unsolved"
    assert "solve exercise 03.5 first" in printed and "solve exercise 03.4 first" in printed
    assert printed.count("Until then the course's reference stands in.") == 2


def test_reference_cross_entropy_grad_is_p_minus_y_over_n() -> None:
    from dlcourse.checks.lab03 import reference_cross_entropy_grad

    logits, labels = np.array([[1000.0, 0.0, -1000.0], [0.5, 0.2, 0.1]]), np.array([2, 0])
    want = (ref.softmax(logits, axis=1) - np.eye(3)[labels]) / 2
    assert np.allclose(reference_cross_entropy_grad(logits.copy(), labels), want, rtol=0, atol=1e-15)
