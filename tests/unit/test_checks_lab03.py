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


def test_headline_ratio_follows_the_activation_derivative() -> None:
    """The lab's headline (sigmoid/ReLU gradient-norm ratio at layer 1) comes from the derivatives: with a
    wrong σ′ (σ(1 + σ), a registered wrong answer of 03.5) the vanishing gradient disappears."""
    from pathlib import Path

    from dlcourse import notebooks

    nb = notebooks.read(Path(__file__).resolve().parents[2] / "solutions" / "03_losses_activations.ipynb")
    source = next(c.source for c in nb.cells if c.cell_type == "code" and "def layer_gradient_norms" in c.source)
    definitions = source[:source.index("\nrng = ")]  # the two functions, not the experiment that follows

    def ratio(sigmoid_grad) -> float:
        activations = dict(ref.ACTIVATIONS, sigmoid=ref.Activation("sigmoid", ref.sigmoid, sigmoid_grad))
        ns = {"np": np, "ref": type("ref", (), {"ACTIVATIONS": activations, "softmax": staticmethod(ref.softmax)})}
        exec(definitions, ns)
        rng = np.random.default_rng(0)
        x, labels = rng.normal(size=(64, 32)), rng.integers(0, 10, size=64)
        weights = ns["init_weights"](20, 32, 10, gain=2.0, seed=0)
        sigmoid = ns["layer_gradient_norms"]("sigmoid", weights, x, labels)
        relu = ns["layer_gradient_norms"]("relu", weights, x, labels)
        return float(sigmoid[0] / relu[0])

    right = ratio(ref.sigmoid_grad)
    wrong = ratio(lambda z: ref.sigmoid(z) * (1 + ref.sigmoid(z)))
    assert right < 1e-6, "sigmoid's gradient vanishes over 20 layers"
    assert wrong > 1e3 * right, "with σ(1 + σ), up to 2 per layer, it no longer vanishes"
