"""What each layer of a Keras model computes, as comparable tuples (for check 07.2), and the code of
the registered `build_my_cnn` answers. Split from `checks.lab07` to keep each module short."""

from __future__ import annotations

from typing import Any

import numpy as np

SEQUENTIAL_HEAD = (
    "    layers = keras.layers\n"
    "    return keras.Sequential([\n"
    "        keras.Input(shape=(28, 28, 1)),\n")
CONV_BLOCKS = (
    "        layers.Conv2D(16, 3, padding='same', use_bias=False), layers.BatchNormalization(), layers.ReLU(),\n"
    "        layers.MaxPooling2D(2),\n"
    "        layers.Conv2D(32, 3, padding='same', use_bias=False), layers.BatchNormalization(), layers.ReLU(),\n"
    "        layers.MaxPooling2D(2),\n")
NORMALISE = "        layers.Rescaling(1 / 0.3081, offset=-0.1307 / 0.3081),\n"


def cnn_answer(normalise: str = NORMALISE, blocks: str = CONV_BLOCKS,
                head: str = "layers.Dense(128, activation='relu'), layers.Dropout(0.25), layers.Dense(10)") -> str:
    """The code of a `build_my_cnn` body, with one part swapped (for the registered answers)."""
    return SEQUENTIAL_HEAD + normalise + blocks + f"        layers.Flatten(), {head}])"


Op = tuple  # one computation, e.g. ("conv", 16, (3, 3), (1, 1), "same", False) or ("act", "relu")


def _activation_name(function: Any) -> str:
    import keras

    return str(keras.activations.serialize(function)) if function is not None else "linear"


def _layer_ops(layer: Any) -> list[Op]:
    """What one Keras layer computes, as comparable tuples: its config, not its class name, so that
    ``Dense(128, activation="relu")`` equals ``Dense(128)`` followed by ``Activation("relu")`` or ``ReLU()``."""
    import keras

    L = keras.layers
    act = getattr(layer, "activation", None)
    then = [] if act is None or _activation_name(act) == "linear" else [("act", _activation_name(act))]
    if isinstance(layer, L.InputLayer):
        return []
    if isinstance(layer, L.Rescaling):
        return [("affine", round(float(layer.scale), 4), round(float(layer.offset), 4))]
    if isinstance(layer, L.Normalization) and getattr(layer, "mean", None) is not None:
        mean, std = float(np.ravel(layer.mean)[0]), float(np.sqrt(np.ravel(layer.variance)[0]))
        return [("affine", round((-1 if layer.invert else 1) / std, 4), round(-mean / std, 4))]
    if isinstance(layer, L.Conv2D):
        return [("conv", layer.filters, tuple(layer.kernel_size), tuple(layer.strides), layer.padding,
                 bool(layer.use_bias), tuple(layer.dilation_rate))] + then
    if isinstance(layer, L.BatchNormalization):
        return [("batchnorm", layer.axis if isinstance(layer.axis, int) else tuple(layer.axis), bool(layer.center),
                 bool(layer.scale))]
    if isinstance(layer, L.ReLU):
        plain = layer.max_value is None and float(layer.negative_slope) == 0 and float(layer.threshold) == 0
        return [("act", "relu" if plain else f"ReLU(max_value={layer.max_value}, negative_slope="
                 f"{float(layer.negative_slope):g}, threshold={float(layer.threshold):g})")]
    if isinstance(layer, L.Activation):
        return then
    if isinstance(layer, L.MaxPooling2D):
        return [("maxpool", tuple(layer.pool_size), tuple(layer.strides), layer.padding)]
    if isinstance(layer, L.Flatten):
        return [("flatten",)]
    if isinstance(layer, L.Dense):
        return [("dense", layer.units, bool(layer.use_bias))] + then
    if isinstance(layer, L.Dropout):
        return [("dropout", round(float(layer.rate), 4))]
    return [("other", type(layer).__name__)]


def describe(op: Op | None) -> str:
    if op is None:
        return "nothing (the model ends)"
    kind = op[0]
    if kind == "affine":
        return f"x · {op[1]:g} {'-' if op[2] < 0 else '+'} {abs(op[2]):g} (a rescaling)"
    if kind == "conv":
        _, filters, kernel, strides, padding, bias, dilation = op
        return (f"Conv2D({filters}, {kernel[0]}×{kernel[1]}, strides={strides}, padding={padding!r}, "
                f"use_bias={bias}" + (f", dilation={dilation}" if dilation != (1, 1) else "") + ")")
    if kind == "batchnorm":
        return f"BatchNormalization(axis={op[1]}, center={op[2]}, scale={op[3]})"
    if kind == "act":
        return f"the activation {op[1]}"
    if kind == "maxpool":
        return f"MaxPooling2D(pool_size={op[1]}, strides={op[2]}, padding={op[3]!r})"
    if kind == "flatten":
        return "Flatten"
    if kind == "dense":
        return f"Dense({op[1]}, use_bias={op[2]}) with no activation of its own"
    if kind == "dropout":
        return f"Dropout({op[1]:g})"
    return f"a {op[1]} layer"


def model_ops(model: Any) -> list[Op]:
    return [op for layer in model.layers for op in _layer_ops(layer)]


def first_difference(got: list[Op], want: list[Op]) -> int | None:
    for i in range(max(len(got), len(want))):
        if i >= len(got) or i >= len(want) or got[i] != want[i]:
            return i
    return None


OP_HINTS = {
    "affine": "The images arrive in [0, 1]: normalise them with MNIST's mean and std, "
              "Rescaling(1 / 0.3081, offset=-0.1307 / 0.3081), i.e. (x - 0.1307) / 0.3081.",
    "conv": "Conv2D(16, 3, padding='same', use_bias=False) and Conv2D(32, 3, ...): 'same' keeps the size, and "
            "BatchNormalization's beta replaces the bias.",
    "batchnorm": "Put BatchNormalization between each Conv2D and its ReLU: it keeps activations well scaled, "
                 "which is what lets this recipe use a high learning rate.",
    "act": "ReLU after each BatchNormalization and after Dense(128); the last Dense(10) has no activation "
           "(logits: the loss applies the softmax itself, from_logits=True).",
    "dropout": "Dropout(0.25) after Dense(128): it drops a quarter of the units in training.",
}


def random_weights(model: Any, seed: int) -> list[np.ndarray]:
    """Seeded weights for every variable, BatchNorm's γ, β, moving mean and variance far from identity
    (γ with both signs, variance positive), so that the forward pass shows what each layer computes."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.weights:
        shape, path = tuple(w.shape), w.path
        if path.endswith("moving_variance"):
            weights.append(rng.uniform(0.5, 2.0, shape).astype(np.float32))
        elif path.endswith(("gamma", "beta", "moving_mean")):
            weights.append((rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32))
        else:
            weights.append((rng.standard_normal(shape) * np.sqrt(2.0 / max(1, np.prod(shape[:-1])))).astype(np.float32))
    return weights
