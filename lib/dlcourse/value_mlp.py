"""Lab 02's payoff: a small MLP on the student's scalar `Value` engine learns two moons.

In the spirit of micrograd's ``nn.py`` and its demo (Karpathy): `make_moons` draws a seeded 2-D
two-class data set with NumPy, `train_value_mlp` runs mini-batch SGD on the hinge loss with the
student's model, zero-grad and step functions, `accuracy` and `plot_decision_boundary` judge the
result. `Neuron`, `Layer` and `MLP` here are the reference the checks and the tests use; the lab
has the student's own copies, built on the student's `Value`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

Model = Callable[[Sequence[float]], Any]


def make_moons(n: int, *, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: X (n, 2) float64 and labels y (n,) in {0, 1}, shuffled."""
    rng = np.random.default_rng(seed)
    n0 = n // 2
    t0, t1 = rng.uniform(0.0, np.pi, n0), rng.uniform(0.0, np.pi, n - n0)
    X = np.vstack([np.column_stack([np.cos(t0), np.sin(t0)]),
                   np.column_stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)])])
    X = X + rng.normal(scale=noise, size=X.shape)
    y = np.concatenate([np.zeros(n0, dtype=int), np.ones(n - n0, dtype=int)])
    order = rng.permutation(n)
    return X[order], y[order]


# ------------------------------------------------------------------------------ the reference network

class Neuron:
    """relu(w·x + b) (or w·x + b for an output neuron), with weights drawn uniformly from [-1, 1]."""

    def __init__(self, n_in: int, rng: np.random.Generator, value: type, nonlin: bool = True):
        self.w = [value(float(v)) for v in rng.uniform(-1.0, 1.0, n_in)]
        self.b = value(0.0)
        self.nonlin = nonlin

    def __call__(self, x: Sequence[Any]) -> Any:
        z = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return z.relu() if self.nonlin else z

    def parameters(self) -> list[Any]:
        return self.w + [self.b]


class Layer:
    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator, value: type, nonlin: bool = True):
        self.neurons = [Neuron(n_in, rng, value, nonlin) for _ in range(n_out)]

    def __call__(self, x: Sequence[Any]) -> Any:
        out = [neuron(x) for neuron in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list[Any]:
        return [p for neuron in self.neurons for p in neuron.parameters()]


class MLP:
    """Layers of `sizes` units after `n_in` inputs; ReLU everywhere except the last layer."""

    def __init__(self, n_in: int, sizes: Sequence[int], rng: np.random.Generator, value: type):
        dims = [n_in, *sizes]
        self.layers = [Layer(dims[i], dims[i + 1], rng, value, nonlin=i < len(sizes) - 1) for i in range(len(sizes))]

    def __call__(self, x: Sequence[Any]) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self) -> list[Any]:
        return [p for layer in self.layers for p in layer.parameters()]


def zero_grad(parameters: Sequence[Any]) -> None:
    for p in parameters:
        p.grad = 0.0


def sgd_step(parameters: Sequence[Any], lr: float) -> None:
    for p in parameters:
        p.data -= lr * p.grad


# ------------------------------------------------------------------------------ training and judging

def scores(model: Model, X: np.ndarray) -> np.ndarray:
    """The model's output score for every row of X (forward passes only, no graph kept)."""
    return np.array([float(model([float(v) for v in row]).data) for row in X])


def accuracy(model: Model, X: np.ndarray, y: np.ndarray) -> float:
    """Fraction of points on the right side of the boundary score = 0 (class 1 where score > 0)."""
    return float(np.mean((scores(model, X) > 0) == (np.asarray(y) == 1)))


def hinge_loss(model: Model, X: np.ndarray, y: np.ndarray) -> Any:
    """mean(relu(1 − t·score)) with t = ±1, built from the engine's Values, so it can be differentiated."""
    terms = [(1.0 - (2.0 * float(label) - 1.0) * model([float(v) for v in row])).relu() for row, label in zip(X, y)]
    return sum(terms[1:], terms[0]) * (1.0 / len(terms))


def train_value_mlp(model: Model, X: np.ndarray, y: np.ndarray, *, parameters: Callable[[], Sequence[Any]],
                    zero_grad: Callable[[Sequence[Any]], None], sgd_step: Callable[[Sequence[Any], float], None],
                    steps: int, lr: float, batch_size: int, seed: int = 0,
                    progress: bool = True) -> dict[str, list[float]]:
    """Mini-batch SGD on the hinge loss; the learning rate decays linearly from lr to lr/10.

    Each step: a random batch, the loss, zero_grad(parameters()), loss.backward(), sgd_step. Returns
    {"step": [...], "loss": [...]} (the batch losses)."""
    from tqdm.auto import trange

    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"step": [], "loss": []}
    for step in trange(steps, desc="training", disable=not progress):
        batch = rng.choice(len(X), size=min(batch_size, len(X)), replace=False)
        loss = hinge_loss(model, X[batch], y[batch])
        params = parameters()
        zero_grad(params)
        loss.backward()
        sgd_step(params, lr * (1.0 - 0.9 * step / max(steps - 1, 1)))
        history["step"].append(step + 1)
        history["loss"].append(float(loss.data))
    return history


def plot_decision_boundary(model: Model, X: np.ndarray, y: np.ndarray, *, grid: int = 50, title: str = ""):
    """The model's score over the plane (colour), its boundary score = 0 (black) and the points."""
    import matplotlib.pyplot as plt

    pad = 0.5
    xs = np.linspace(X[:, 0].min() - pad, X[:, 0].max() + pad, grid)
    ys = np.linspace(X[:, 1].min() - pad, X[:, 1].max() + pad, grid)
    gx, gy = np.meshgrid(xs, ys)
    field = scores(model, np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
    limit = float(np.max(np.abs(field))) or 1.0
    fig, ax = plt.subplots(figsize=(6, 4.6))
    filled = ax.contourf(gx, gy, np.clip(field, -limit, limit), levels=np.linspace(-limit, limit, 21), cmap="RdBu_r", alpha=0.8)
    ax.contour(gx, gy, field, levels=[0.0], colors="black", linewidths=1.5)
    for label, colour, marker in ((0, "tab:blue", "o"), (1, "tab:red", "s")):
        points = X[np.asarray(y) == label]
        ax.scatter(points[:, 0], points[:, 1], c=colour, marker=marker, edgecolors="black", linewidths=0.5,
                   s=22, label=f"class {label}")
    fig.colorbar(filled, ax=ax, label="score (class 1 where score > 0)")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_title(title or "Decision boundary (black: score = 0)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig
