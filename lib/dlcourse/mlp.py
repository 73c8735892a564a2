"""A reference NumPy multi-layer perceptron, 784-H-10 with ReLU and softmax cross-entropy (lab 05).

Parameters live in a dict ``{"W1": (n_in, H), "b1": (H,), "W2": (H, n_out), "b2": (n_out,)}``
and a batch is a row per example, so a layer is ``x @ W + b``. The forward pass returns the
logits and a cache ``{"x", "z1", "h1"}`` that the backward pass reads. Everything keeps the
parameters' dtype (float32 for training: half the memory and about twice the matmul speed of
float64; float64 for gradient checks). The lab's checks compare the student's functions with
these; `train` takes the step functions as arguments, so the lab's training runs the student's own.
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
    "backward", "momentum_step", "minibatches", "dropout", "add_weight_decay", "init_linear", "linear_forward",
    "linear_backward", "predict_proba", "evaluate", "train", "loss_of",
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


def dropout(h: np.ndarray, rate: float, rng: np.random.Generator, training: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Inverted dropout (Srivastava et al. 2014): in training, zero each entry with probability
    `rate` and divide the survivors by 1 − rate, so the expected activation is unchanged and
    evaluation needs no rescaling. Returns (output, mask) with output = h · mask; at evaluation
    (training=False) the output is h and the mask is all ones."""
    if not training or rate == 0:
        return h, np.ones_like(h)
    mask = (rng.random(h.shape) >= rate).astype(h.dtype) / h.dtype.type(1.0 - rate)
    return h * mask, mask


def add_weight_decay(grads: Params, params: Params, weight_decay: float) -> Params:
    """The gradients of loss + (λ/2)·(‖W1‖² + ‖W2‖²): λ·W added to each weight matrix's gradient;
    biases are not decayed (they shift a unit, they do not make the network more complex)."""
    return {k: grads[k] + weight_decay * params[k] if k.startswith("W") else grads[k] for k in grads}


def init_linear(n_in: int = 784, n_out: int = 10, *, dtype: type = np.float32) -> Params:
    """Softmax regression (no hidden layer): zero weights and biases (the loss is convex, so any
    start reaches the same optimum, and all-zero logits give exactly ln 10)."""
    return {"W": np.zeros((n_in, n_out), dtype=dtype), "b": np.zeros(n_out, dtype=dtype)}


def linear_forward(params: Params, x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Logits x W + b of softmax regression, and the cache {"x"}."""
    return x @ params["W"] + params["b"], {"x": x}


def linear_backward(params: Params, cache: Cache, dlogits: np.ndarray) -> Params:
    """Gradients of softmax regression: X^T δ and the column sums of δ."""
    return {"W": cache["x"].T @ dlogits, "b": dlogits.sum(axis=0)}


def predict_proba(params: Params, x: np.ndarray, batch_size: int = 2000, *,
                  forward: Callable[[Params, np.ndarray], tuple[np.ndarray, Cache]] | None = None) -> np.ndarray:
    """Class probabilities (n, n_out) from `forward` (the reference by default), in chunks."""
    forward_fn = forward or globals()["forward"]
    chunks = [softmax(np.asarray(forward_fn(params, x[i:i + batch_size])[0], dtype=np.float64), axis=1)
              for i in range(0, len(x), batch_size)]
    return np.concatenate(chunks)


def evaluate(params: Params, x: np.ndarray, y: np.ndarray, *,
             forward: Callable[[Params, np.ndarray], tuple[np.ndarray, Cache]] | None = None) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) on a whole set, with `forward` (the reference by default)."""
    probs = predict_proba(params, x, forward=forward)
    loss = float(-np.log(np.maximum(probs[np.arange(len(y)), y], 1e-12)).mean())
    return loss, float((probs.argmax(axis=1) == y).mean())


def _dropout_step(forward_fn, loss_fn, backward_fn, dropout_fn, params: Params, x: np.ndarray, y: np.ndarray,
                  rate: float, rng: np.random.Generator):
    """One training step's forward, loss and backward with dropout on the hidden units, built
    around the given two-layer forward and backward: the hidden layer h1 of `forward_fn`'s cache
    goes through `dropout_fn`, the logits are recomputed from the dropped h1, and the backward pass
    sees the dropped h1 and, for a dropped unit, z1 = −1 (so any ReLU derivative, also one that
    counts z = 0 as active, stops its gradient); the kept units' gradient into the first layer gets
    the forward pass's 1/(1 − rate)."""
    _, cache = forward_fn(params, x)
    dropped, mask = dropout_fn(cache["h1"], rate, rng, True)
    logits = dropped @ params["W2"] + params["b2"]
    loss, dlogits = loss_fn(logits, y)
    kept = np.asarray(mask) != 0
    grads = backward_fn(params, {"x": cache["x"], "z1": np.where(kept, cache["z1"], -1), "h1": dropped}, dlogits)
    scale = 1.0 / (1.0 - rate)
    return logits, loss, {**grads, "W1": grads["W1"] * scale, "b1": grads["b1"] * scale}


def train(params: Params, x: np.ndarray, y: np.ndarray, *, x_val: np.ndarray | None = None,
          y_val: np.ndarray | None = None, epochs: int = 10, batch_size: int = 128, lr: float = 0.1,
          momentum: float = 0.9, seed: int = 0, progress: bool = True, stopwatch: Stopwatch | None = None,
          forward: Callable | None = None, softmax_cross_entropy: Callable | None = None,
          backward: Callable | None = None, momentum_step: Callable | None = None,
          dropout: Callable | None = None, dropout_rate: float = 0.0,
          add_weight_decay: Callable | None = None, weight_decay: float = 0.0, blas_threads: int | None = 1,
          ) -> tuple[Params, dict[str, list[float]]]:
    """Mini-batch SGD with momentum; returns the trained parameters and a Keras-style history
    (per epoch: "loss" and "accuracy" averaged over the epoch's batches and, given x_val and y_val,
    "val_loss" and "val_accuracy" at the epoch's end).

    The step functions are arguments, so a lab trains with the student's own: `forward`,
    `softmax_cross_entropy`, `backward` and `momentum_step` (each defaults to this module's
    reference). `dropout_rate` > 0 puts `dropout` on the hidden units in training (not in the
    validation pass); `weight_decay` > 0 adds λ·W to the gradients with `add_weight_decay`; the
    reported loss is the data loss, without the penalty. A `dlcourse.training.Stopwatch`, if given,
    times the training steps only, not the evaluation. The parameters keep their initial dtype
    (float32 for the lab) whatever dtype the step functions return. `blas_threads` limits NumPy's BLAS threads
    while training (None: leave them): see `blas_thread_limit`."""
    from tqdm.auto import tqdm

    forward_fn = forward or globals()["forward"]
    loss_fn = softmax_cross_entropy or globals()["softmax_cross_entropy"]
    backward_fn = backward or globals()["backward"]
    step_fn = momentum_step or globals()["momentum_step"]
    dropout_fn = dropout or globals()["dropout"]
    decay_fn = add_weight_decay or globals()["add_weight_decay"]
    rng = np.random.default_rng(seed)
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    dtypes = {k: v.dtype for k, v in params.items()}  # a step that returns float64 does not slow the rest down
    keys = ("loss", "accuracy") + (("val_loss", "val_accuracy") if x_val is not None else ())
    history: dict[str, list[float]] = {key: [] for key in keys}
    steps_per_epoch = -(-len(x) // batch_size)
    with blas_thread_limit(blas_threads), \
            tqdm(total=epochs * steps_per_epoch, desc="training", unit="step", disable=not progress) as bar:
        for epoch in range(epochs):
            losses, correct = [], 0
            if stopwatch is not None:
                stopwatch.start()
            for idx in minibatches(len(x), batch_size, rng):
                if dropout_rate > 0:
                    logits, loss, grads = _dropout_step(forward_fn, loss_fn, backward_fn, dropout_fn, params, x[idx],
                                                        y[idx], dropout_rate, rng)
                else:
                    logits, cache = forward_fn(params, x[idx])
                    loss, dlogits = loss_fn(logits, y[idx])
                    grads = backward_fn(params, cache, dlogits)
                if weight_decay > 0:
                    grads = decay_fn(grads, params, weight_decay)
                params, velocity = step_fn(params, grads, velocity, lr, momentum)
                params = {k: np.asarray(v, dtype=dtypes[k]) for k, v in params.items()}
                velocity = {k: np.asarray(v, dtype=dtypes[k]) for k, v in velocity.items()}
                losses.append(float(loss) * len(idx))
                correct += int((np.asarray(logits).argmax(axis=1) == y[idx]).sum())
                bar.update(1)
            if stopwatch is not None:
                stopwatch.stop()
            history["loss"].append(sum(losses) / len(x))
            history["accuracy"].append(correct / len(x))
            if x_val is not None:
                val_loss, val_acc = evaluate(params, x_val, y_val, forward=forward_fn)
                history["val_loss"].append(val_loss)
                history["val_accuracy"].append(val_acc)
            bar.set_postfix(epoch=epoch + 1, loss=f"{history['loss'][-1]:.3f}")
    return params, history


def blas_thread_limit(threads: int | None = 1):
    """A context that limits NumPy's BLAS (OpenBLAS, MKL) to `threads` threads; None leaves them.

    The products of a 128-example batch are too small to gain from a second thread, and on a shared
    machine (JupyterHub, CI) BLAS threads that wait for a descheduled sibling cost far more than
    they save: benchmarks/mlp_threads.py measures an epoch 2.5 times slower with two threads than
    with one next to one busy process, and no faster when the machine is idle."""
    import contextlib

    from threadpoolctl import threadpool_limits  # a dependency of dlcourse

    if threads is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


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
