"""Small plotting helpers shared by the labs (matplotlib, imported on first use)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def show_images(images: np.ndarray, labels: Sequence | None = None, *, ncols: int = 10,
                size: float = 1.2, title: str | None = None, class_names: Sequence[str] | None = None):
    """A grid of greyscale images with their labels underneath; returns the figure."""
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim == 4:  # drop a channel axis of length 1, wherever it is
        images = images.squeeze(axis=1 if images.shape[1] == 1 else -1)
    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, min(n, ncols), figsize=(size * min(n, ncols), size * nrows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap="gray_r")
            if labels is not None:
                label = labels[i]
                ax.set_title(class_names[int(label)] if class_names else str(label), fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


_ACTIVATION_SYMBOL = {"sigmoid": "σ", "tanh": "tanh", "relu": "relu", "gelu": "gelu"}


def plot_activation(name: str, points: Sequence[float] = (), *, ax=None, z_range: tuple[float, float] = (-6.0, 6.0),
                    title: str | None = None):
    """An activation from dlcourse.functions.ACTIVATIONS over z, with the points (z, f(z)) marked
    and labelled; draws into `ax` (or a new figure) and returns the figure (lab 01)."""
    import matplotlib.pyplot as plt

    from dlcourse.functions import ACTIVATIONS

    f = ACTIVATIONS[name].fn
    symbol = _ACTIVATION_SYMBOL.get(name, name)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.6))
    z = np.linspace(*z_range, 400)
    ax.plot(z, f(z), color="tab:blue", label=f"{symbol}(z)")
    for point in points:
        value = float(f(point))
        ax.plot([point], [value], "o", color="tab:red")
        ax.annotate(f"{symbol}({point:g}) = {value:.4f}", (point, value), textcoords="offset points",
                    xytext=(8, -14), fontsize=9)
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.axvline(0.0, color="grey", linewidth=0.5)
    ax.set_xlabel("pre-activation z = w·x + b")
    ax.set_ylabel(f"activation {symbol}(z)")
    ax.set_title(title or f"{symbol}(z) with the worked points marked")
    ax.legend(loc="upper left")
    ax.figure.tight_layout()
    return ax.figure


def max_slope(name: str, z_range: tuple[float, float] = (-6.0, 6.0)) -> tuple[float, float]:
    """The largest |f′(z)| of an activation over z_range (on a fine grid) and the z where it occurs (lab 03)."""
    from dlcourse.functions import ACTIVATIONS

    z = np.linspace(float(z_range[0]), float(z_range[1]), 1201)
    slope = np.abs(ACTIVATIONS[name].grad(z))
    best = int(np.argmax(slope))
    return float(slope[best]), float(z[best])


def plot_activation_through_depth(name: str, z_range: tuple[float, float] = (-6.0, 6.0), depth: int = 10):
    """Left: an activation f and its derivative f′ over z_range. Right: the most that k stacked
    layers can keep of a gradient through their f′ alone, max|f′|^k for k = 1..depth (the weights
    multiply in on top of this). Returns the figure (lab 03)."""
    import matplotlib.pyplot as plt

    from dlcourse.functions import ACTIVATIONS

    act = ACTIVATIONS[name]
    z = np.linspace(float(z_range[0]), float(z_range[1]), 601)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 3.6))
    left.plot(z, act.fn(z), color="tab:blue", label=f"{name}(z)")
    left.plot(z, act.grad(z), color="tab:orange", linestyle="--", label=f"{name}′(z)")
    left.axhline(0.0, color="grey", linewidth=0.5)
    left.set_xlabel("input z (pre-activation)")
    left.set_ylabel("value (unitless)")
    left.set_title(f"{name} and its derivative")
    left.legend(loc="upper left")
    peak, _ = max_slope(name, z_range)
    layers = np.arange(1, int(depth) + 1)
    if peak > 0:
        right.semilogy(layers, peak ** layers.astype(float), "o-", color="tab:red", markersize=3)
    else:  # f′ is 0 over the whole range (ReLU on negative inputs): nothing to put on a log axis
        right.text(0.5, 0.5, "f′ = 0 on this range:\nno gradient passes at all", ha="center", va="center",
                   transform=right.transAxes)
    right.set_xlabel("number of stacked layers k")
    right.set_ylabel("bound max|f′|^k (log scale)")
    right.set_title(f"most gradient left after k {name} layers")
    fig.tight_layout()
    return fig


def plot_history(history: Mapping[str, Sequence[float]], *, title: str = "Training history", xlabel: str = "epoch",
                 restored_epoch: int | None = None):
    """Loss and accuracy curves from a Keras-style history dict, e.g. ``{"loss": [...],
    "val_loss": [...], "accuracy": [...], "val_accuracy": [...]}`` (Keras `History.history`, or
    the same keys filled by a hand-written loop). One panel per quantity, always loss first and
    accuracy second whatever the dict's order; ``restored_epoch`` (1-based) marks the epoch whose
    weights early stopping kept. Returns the figure."""
    import matplotlib.pyplot as plt

    names = [k for k in history if not k.startswith("val_")]
    names += [k[4:] for k in history if k.startswith("val_") and k[4:] not in names]
    if not names:
        raise ValueError("plot_history needs at least one curve, e.g. {'loss': [0.5, 0.3]}.")
    first = [n for n in ("loss", "accuracy") if n in names]
    quantities = first + [n for n in names if n not in first]
    fig, axes = plt.subplots(1, len(quantities), figsize=(4.5 * len(quantities), 3.4), squeeze=False)
    for ax, name in zip(axes.flat, quantities):
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if key in history and len(history[key]):
                values = list(history[key])
                ax.plot(range(1, len(values) + 1), values, marker="o", ms=3, label=label)
        if restored_epoch is not None:
            ax.axvline(restored_epoch, color="grey", linestyle="--", linewidth=1,
                       label=f"restored (epoch {restored_epoch})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str] | None = None, *,
                          title: str = "Confusion matrix", errors_scale: bool = False):
    """Rows are true classes, columns predicted ones; each cell shows its count. Returns the figure.

    By default one colour scale covers every cell, so the diagonal sets it. ``errors_scale=True``
    colours only the off-diagonal cells (the errors), on a scale of their own, and leaves the
    diagonal (the correct predictions) light grey with its counts written in."""
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    k = matrix.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    fig, ax = plt.subplots(figsize=(0.55 * k + 2.5, 0.55 * k + 2))
    diagonal = np.eye(k, dtype=bool)
    if errors_scale:
        errors = np.ma.masked_array(matrix, mask=diagonal)
        top = max(float(errors.max()), 1.0)
        image = ax.imshow(errors, cmap="Reds", vmin=0, vmax=top)
        ax.imshow(np.ma.masked_array(np.ones(matrix.shape), mask=~diagonal), cmap="Greys", vmin=0, vmax=6)
        fig.colorbar(image, ax=ax, label="errors: count in an off-diagonal cell\n(diagonal = correct, not coloured)")
        dark = (matrix > top / 2) & ~diagonal
    else:
        image = ax.imshow(matrix, cmap="Blues")
        fig.colorbar(image, ax=ax, label="count")
        dark = matrix > matrix.max() / 2
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if dark[i, j] else "black")
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def show_mistakes(images: np.ndarray, y_true: Sequence[int], probabilities: np.ndarray, *, n: int = 20,
                  class_names: Sequence[str] | None = None, title: str = "Hardest mistakes"):
    """The `n` misclassified images the model was most confident about, captioned
    "true→predicted (confidence)"; returns the figure (labs 05-08)."""
    probabilities = np.asarray(probabilities)
    y_true = np.asarray(y_true)
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    hardest = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:n]
    if not len(hardest):
        raise ValueError("There are no mistakes to show: every prediction is right.")
    name = (lambda c: class_names[c]) if class_names is not None else str
    captions = [f"{name(int(y_true[i]))}→{name(int(predicted[i]))} ({probabilities[i, predicted[i]]:.2f})" for i in hardest]
    return show_images(images[hardest], captions, title=f"{title}: {len(wrong)} wrong of {len(y_true)}",
                       ncols=min(10, len(hardest)), size=1.35)


def plot_attention(weights: np.ndarray, query_tokens: Sequence[str], key_tokens: Sequence[str] | None = None, *,
                   ax=None, title: str = "Attention weights", annotate: bool = True):
    """One head's (T_q, T_k) attention weights as a heatmap: a row per query token, a column per key token,
    each cell's weight written in it (labs 09-11). Draws into `ax` (or a new figure); returns the figure."""
    import matplotlib.pyplot as plt

    weights = np.asarray(weights, dtype=float)
    keys = list(query_tokens if key_tokens is None else key_tokens)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.55 * len(keys) + 2.5, 0.5 * len(query_tokens) + 1.5))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-12))
    ax.figure.colorbar(image, ax=ax, label="attention weight")
    if annotate:
        for i in range(weights.shape[0]):
            for j in range(weights.shape[1]):
                ax.text(j, i, f"{weights[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if weights[i, j] > weights.max() / 2 else "white")
    ax.set_xticks(range(len(keys)), keys, rotation=45, ha="right")
    ax.set_yticks(range(len(query_tokens)), list(query_tokens))
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure
