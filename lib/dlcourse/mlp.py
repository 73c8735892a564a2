"""A reference NumPy multi-layer perceptron, 784-H-10 with ReLU and softmax cross-entropy (lab 05).

Parameters live in a dict ``{"W1": (n_in, H), "b1": (H,), "W2": (H, n_out), "b2": (n_out,)}``
and a batch is a row per example, so a layer is ``x @ W + b``. The forward pass returns the
logits and a cache ``{"x", "z1", "h1"}`` that the backward pass reads. Everything keeps the
parameters' dtype (float32 for training: half the memory and about twice the matmul speed of
float64; float64 for gradient checks). The lab's checks compare the student's functions with
these; the lab's final training run uses them, so it runs whatever state the exercises are in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from dlcourse.functions import log_softmax, numeric_gradient, relative_error, relu, relu_grad, softmax

if TYPE_CHECKING:
    from dlcourse.training import Stopwatch

Params = dict[str, np.ndarray]
Cache = dict[str, np.ndarray]
PARAM_NAMES = ("W1", "b1", "W2", "b2")

__all__ = [
    "Params", "PARAM_NAMES", "prepare_images", "init_params", "count_params", "forward", "softmax_cross_entropy",
    "backward", "momentum_step", "minibatches", "predict_proba", "evaluate", "train", "loss_of",
    "gradient_check", "plot_hidden_units",
]


def prepare_images(images: np.ndarray) -> np.ndarray:
    """uint8 images (n, 28, 28) → float32 rows (n, 784) in [0, 1]: one example per row, small inputs."""
    images = np.asarray(images)
    return images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)


def init_params(n_in: int = 784, n_hidden: int = 128, n_out: int = 10, *, seed: int = 0,
                dtype: type = np.float32) -> Params:
    """He initialisation for the ReLU layer (std √(2/n_in), He et al. 2015), std √(1/H) for the
    linear output layer (LeCun's choice: the logits start small, so the first guesses are near
    uniform and the loss starts near ln 10), zero biases."""
    rng = np.random.default_rng(seed)
    return {
        "W1": (rng.standard_normal((n_in, n_hidden)) * np.sqrt(2.0 / n_in)).astype(dtype),
        "b1": np.zeros(n_hidden, dtype=dtype),
        "W2": (rng.standard_normal((n_hidden, n_out)) * np.sqrt(1.0 / n_hidden)).astype(dtype),
        "b2": np.zeros(n_out, dtype=dtype),
    }


def count_params(params: Params) -> int:
    return int(sum(p.size for p in params.values()))


def forward(params: Params, x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Logits (n, n_out) for a batch x (n, n_in), and what the backward pass needs."""
    z1 = x @ params["W1"] + params["b1"]
    h1 = relu(z1).astype(z1.dtype, copy=False)  # dlcourse.functions works in float64; keep our dtype
    logits = h1 @ params["W2"] + params["b2"]
    return logits, {"x": x, "z1": z1, "h1": h1}


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of integer labels y (n,) and its gradient (softmax(logits) − onehot(y)) / n."""
    n = logits.shape[0]
    rows = np.arange(n)
    log_probs = log_softmax(logits, axis=1)  # stable for any logits (log-sum-exp)
    loss = float(-log_probs[rows, y].mean())
    dlogits = np.exp(log_probs)
    dlogits[rows, y] -= 1.0
    return loss, (dlogits / n).astype(logits.dtype, copy=False)


def backward(params: Params, cache: Cache, dlogits: np.ndarray) -> Params:
    """The four parameter gradients, given dL/dlogits; each has its parameter's shape."""
    x, z1, h1 = cache["x"], cache["z1"], cache["h1"]
    dh1 = dlogits @ params["W2"].T
    dz1 = dh1 * relu_grad(z1).astype(dh1.dtype, copy=False)  # no gradient through units that were off
    return {
        "W1": x.T @ dz1, "b1": dz1.sum(axis=0),  # dlogits already holds the 1/n: sum, do not average again
        "W2": h1.T @ dlogits, "b2": dlogits.sum(axis=0),
    }


def momentum_step(params: Params, grads: Params, velocity: Params, lr: float,
                  momentum: float = 0.9) -> tuple[Params, Params]:
    """torch.optim.SGD(momentum=μ) on every parameter: v ← μv + g, θ ← θ − lr·v. Returns new dicts."""
    velocity = {k: momentum * velocity[k] + grads[k] for k in params}
    return {k: params[k] - lr * velocity[k] for k in params}, velocity


def minibatches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Index arrays covering 0..n−1 once, in a fresh random order (the last batch may be smaller)."""
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def predict_proba(params: Params, x: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """Class probabilities (n, n_out), computed in chunks to keep memory small."""
    chunks = [softmax(forward(params, x[i:i + batch_size])[0], axis=1) for i in range(0, len(x), batch_size)]
    return np.concatenate(chunks)


def evaluate(params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) on a whole set."""
    probs = predict_proba(params, x)
    loss = float(-np.log(np.maximum(probs[np.arange(len(y)), y], 1e-12)).mean())
    return loss, float((probs.argmax(axis=1) == y).mean())


def train(params: Params, x: np.ndarray, y: np.ndarray, *, x_val: np.ndarray, y_val: np.ndarray,
          epochs: int = 10, batch_size: int = 128, lr: float = 0.1, momentum: float = 0.9, seed: int = 0,
          progress: bool = True, stopwatch: Stopwatch | None = None) -> tuple[Params, dict[str, list[float]]]:
    """Mini-batch SGD with momentum; returns the trained parameters and a Keras-style history
    (per epoch: "loss" and "accuracy" averaged over the epoch's batches, "val_loss", "val_accuracy").
    A `dlcourse.training.Stopwatch`, if given, times the training steps only, not the evaluation."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    steps_per_epoch = -(-len(x) // batch_size)
    with tqdm(total=epochs * steps_per_epoch, desc="training", unit="step", disable=not progress) as bar:
        for epoch in range(epochs):
            losses, correct = [], 0
            if stopwatch is not None:
                stopwatch.start()
            for idx in minibatches(len(x), batch_size, rng):
                logits, cache = forward(params, x[idx])
                loss, dlogits = softmax_cross_entropy(logits, y[idx])
                params, velocity = momentum_step(params, backward(params, cache, dlogits), velocity, lr, momentum)
                losses.append(loss * len(idx))
                correct += int((logits.argmax(axis=1) == y[idx]).sum())
                bar.update(1)
            if stopwatch is not None:
                stopwatch.stop()
            val_loss, val_acc = evaluate(params, x_val, y_val)
            for key, value in (("loss", sum(losses) / len(x)), ("accuracy", correct / len(x)),
                               ("val_loss", val_loss), ("val_accuracy", val_acc)):
                history[key].append(float(value))
            bar.set_postfix(epoch=epoch + 1, loss=f"{history['loss'][-1]:.3f}", val_acc=f"{val_acc:.4f}")
    return params, history


# ------------------------------------------------------------------------------ gradient checking

def loss_of(params: Params, x: np.ndarray, y: np.ndarray) -> float:
    """The mean cross-entropy of the reference network on (x, y)."""
    return softmax_cross_entropy(forward(params, x)[0], y)[0]


def gradient_check(backward_fn: Callable[[Params, Cache, np.ndarray], Params], params: Params, x: np.ndarray,
                   y: np.ndarray, eps: float = 1e-4) -> dict[str, float]:
    """relative_error between `backward_fn`'s gradients (on the reference forward pass and loss) and
    central differences of the loss, for each parameter. Use float64 and a tiny network: it takes
    two forward passes per parameter entry. ε = 1e-4 balances rounding error (large for tiny ε: the
    loss is ~2, float64 keeps ~16 digits) against the curvature error of the central difference."""
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    x = np.asarray(x, dtype=np.float64)
    logits, cache = forward(params, x)
    _, dlogits = softmax_cross_entropy(logits, y)
    grads = backward_fn({k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in cache.items()}, dlogits.copy())
    errors = {}
    for name in PARAM_NAMES:
        def loss_at(value: np.ndarray, name: str = name) -> float:
            return loss_of({**params, name: value}, x, y)

        errors[name] = relative_error(grads[name], numeric_gradient(loss_at, params[name], eps=eps))
    return errors


# ------------------------------------------------------------------------------ pictures

def plot_hidden_units(params: Params, n: int = 16, *, ncols: int = 8, title: str = "What hidden units look for"):
    """The first-layer weights into `n` hidden units, each drawn as a 28×28 image (red: the unit is
    excited by ink there, blue: inhibited). Returns the figure."""
    import matplotlib.pyplot as plt

    weights = np.asarray(params["W1"])[:, :n].T.reshape(n, 28, 28)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.4 * nrows + 0.4), squeeze=False)
    for unit, ax in enumerate(axes.flat):
        ax.axis("off")
        if unit < n:
            limit = float(np.abs(weights[unit]).max()) or 1.0
            ax.imshow(weights[unit], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"unit {unit}", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
