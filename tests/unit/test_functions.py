"""The reference maths agrees with PyTorch and with its own numeric gradients."""

from __future__ import annotations

import numpy as np
import pytest

from dlcourse import functions as F

torch = pytest.importorskip("torch")

Z = np.linspace(-8, 8, 41)


@pytest.mark.parametrize("name, torch_fn", [
    ("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("relu", torch.relu),
    ("gelu", torch.nn.functional.gelu),
])
def test_activations_match_torch_values_and_gradients(name: str, torch_fn) -> None:
    act = F.ACTIVATIONS[name]
    z = torch.tensor(Z, dtype=torch.float64, requires_grad=True)
    out = torch_fn(z)
    out.sum().backward()
    np.testing.assert_allclose(act.fn(Z), out.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(act.grad(Z), z.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_sigmoid_does_not_overflow() -> None:
    with np.errstate(over="raise"):
        assert F.sigmoid(np.array([-1000.0, 1000.0])).tolist() == [0.0, 1.0]


def test_softmax_and_log_softmax_are_stable() -> None:
    z = np.array([[1000.0, 1001.0, 1002.0], [1.0, 2.0, 3.0]])
    np.testing.assert_allclose(F.softmax(z)[0], F.softmax(z)[1])
    np.testing.assert_allclose(np.exp(F.log_softmax(z)), F.softmax(z))
    assert np.isfinite(F.log_softmax(np.array([-1e4, 0.0]))).all()


def test_losses_match_torch() -> None:
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(5, 4)), rng.integers(0, 4, size=5)
    ce = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(labels)).item()
    assert F.cross_entropy(logits, labels) == pytest.approx(ce, rel=1e-12)
    p, y = rng.uniform(0.01, 0.99, size=6), rng.integers(0, 2, size=6).astype(float)
    bce = torch.nn.functional.binary_cross_entropy(torch.tensor(p), torch.tensor(y)).item()
    assert F.binary_cross_entropy(p, y) == pytest.approx(bce, rel=1e-12)
    assert F.mse([1.0, 2.0], [0.0, 0.0]) == 2.5


def test_numeric_gradient_of_cross_entropy_is_p_minus_y() -> None:
    z = np.array([0.5, -1.0, 2.0])
    numeric = F.numeric_gradient(lambda v: F.cross_entropy(v, [2]), z)
    analytic = F.softmax(z) - np.eye(3)[2]
    assert F.relative_error(numeric, analytic) < 1e-7
    assert z.tolist() == [0.5, -1.0, 2.0], "the input is not changed"


def test_relative_error() -> None:
    assert F.relative_error([0.0], [0.0]) == 0.0
    assert F.relative_error([1.0, 2.0], [1.0, 2.2]) == pytest.approx(0.2 / 2.2)
