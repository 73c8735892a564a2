"""Reference NumPy maths for Part I (labs 01–05): activations with their derivatives, losses,
a numerically stable softmax, and the central-difference gradient check.

Checks compare the student's code with these; labs use them once the student has written
their own version. Each function is the textbook formula, written so that it does not
overflow: that is the only cleverness here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Array = np.ndarray

__all__ = [
    "sigmoid", "sigmoid_grad", "tanh", "tanh_grad", "relu", "relu_grad", "gelu", "gelu_grad",
    "Activation", "ACTIVATIONS", "softmax", "log_softmax", "mse", "binary_cross_entropy",
    "cross_entropy", "numeric_gradient", "relative_error",
]


# ------------------------------------------------------------------------------ activations

def sigmoid(z: Array) -> Array:
    """1 / (1 + e^-z), computed without overflow for large |z|."""
    z = np.asarray(z, dtype=float)
    e = np.exp(-np.abs(z))  # never overflows: the exponent is ≤ 0
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_grad(z: Array) -> Array:
    """σ'(z) = σ(z)(1 − σ(z)); at most 0.25, at z = 0."""
    s = sigmoid(z)
    return s * (1.0 - s)


def tanh(z: Array) -> Array:
    return np.tanh(np.asarray(z, dtype=float))


def tanh_grad(z: Array) -> Array:
    """tanh'(z) = 1 − tanh²(z); at most 1, at z = 0."""
    return 1.0 - np.tanh(np.asarray(z, dtype=float)) ** 2


def relu(z: Array) -> Array:
    return np.maximum(np.asarray(z, dtype=float), 0.0)


def relu_grad(z: Array) -> Array:
    """1 where z > 0, else 0 (the value at exactly 0 is a convention; PyTorch uses 0)."""
    return (np.asarray(z, dtype=float) > 0).astype(float)


_SQRT_2PI = np.sqrt(2.0 * np.pi)


def _normal_cdf(z: Array) -> Array:
    from scipy.special import ndtr  # Φ(z), exact (the erf form); imported only when needed

    return ndtr(z)


def gelu(z: Array) -> Array:
    """GELU(z) = z·Φ(z), the exact form (Hendrycks & Gimpel 2016), as torch.nn.GELU() computes it."""
    z = np.asarray(z, dtype=float)
    return z * _normal_cdf(z)


def gelu_grad(z: Array) -> Array:
    """d/dz z·Φ(z) = Φ(z) + z·φ(z)."""
    z = np.asarray(z, dtype=float)
    return _normal_cdf(z) + z * np.exp(-0.5 * z * z) / _SQRT_2PI


@dataclass(frozen=True)
class Activation:
    name: str
    fn: Callable[[Array], Array]
    grad: Callable[[Array], Array]


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (
    Activation("sigmoid", sigmoid, sigmoid_grad),
    Activation("tanh", tanh, tanh_grad),
    Activation("relu", relu, relu_grad),
    Activation("gelu", gelu, gelu_grad),
)}


# ------------------------------------------------------------------------------ softmax and losses

def softmax(z: Array, axis: int = -1) -> Array:
    """e^z / Σe^z with the maximum subtracted first (the log-sum-exp trick): same result, no overflow."""
    z = np.asarray(z, dtype=float)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(z: Array, axis: int = -1) -> Array:
    """z − logΣe^z, stable for any z."""
    z = np.asarray(z, dtype=float)
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def mse(prediction: Array, target: Array) -> float:
    """Mean squared error over every entry."""
    return float(np.mean((np.asarray(prediction, dtype=float) - np.asarray(target, dtype=float)) ** 2))


def binary_cross_entropy(p: Array, y: Array, eps: float = 1e-12) -> float:
    """Mean of −[y log p + (1 − y) log(1 − p)] for probabilities p (clipped away from 0 and 1)."""
    p = np.clip(np.asarray(p, dtype=float), eps, 1.0 - eps)
    y = np.asarray(y, dtype=float)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))


def cross_entropy(logits: Array, labels: Array) -> float:
    """Mean of −log softmax(logits)[label] over a batch: logits (n, k), integer labels (n,)."""
    logp = log_softmax(np.atleast_2d(logits), axis=-1)
    labels = np.asarray(labels, dtype=int).reshape(-1)
    return float(-logp[np.arange(len(labels)), labels].mean())


# ------------------------------------------------------------------------------ gradient checking

def numeric_gradient(f: Callable[[Array], float], x: Array, eps: float = 1e-6) -> Array:
    """Central differences (f(x + εeᵢ) − f(x − εeᵢ)) / 2ε for every entry of x; x is not changed."""
    x = np.array(x, dtype=float)  # a private copy we may nudge
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + eps
        plus = float(f(x))
        x[index] = original - eps
        minus = float(f(x))
        x[index] = original
        grad[index] = (plus - minus) / (2.0 * eps)
    return grad


def relative_error(a: Array, b: Array, floor: float = 1e-12) -> float:
    """max |a − b| / max(|a|, |b|), entrywise, guarded against 0/0; ~1e-7 or less means the gradients agree."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)))
