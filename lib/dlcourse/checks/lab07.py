"""Checks for lab 07 (a Keras CNN on MNIST). Each builds its reference with Keras itself or
with `dlcourse.cnn_keras`, never from the student's notebook state."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlcourse.check import Mismatch, expect, expect_array, expect_callable, expect_number, exercise
from dlcourse.functions import softmax
from dlcourse.checks.lab07_layers import (CONV_BLOCKS, OP_HINTS, cnn_answer, describe, first_difference,
                                          model_ops, random_weights)

# ------------------------------------------------------------------------------ 07.1

_CONV_CASES = (  # (input_shape, filters, kernel_size, padding, use_bias): no two sizes alike on any axis
    ((28, 22, 1), 16, 3, "same", False),
    ((14, 11, 6), 32, 3, "same", True),
    ((27, 19, 3), 8, 5, "valid", True),
    ((13, 17, 5), 7, 3, "valid", False),
)
_DENSE_COMPARISON = ((14, 14, 16), 32, 3, "same", True)  # the course CNN's second convolution, for the message


def _keras_conv(input_shape: tuple[int, int, int], filters: int, kernel_size: int, padding: str,
                use_bias: bool) -> tuple[tuple[int, ...], int]:
    import keras

    layer = keras.layers.Conv2D(filters, kernel_size, padding=padding, use_bias=use_bias)
    output = layer.compute_output_shape((None, *input_shape))
    layer.build((None, *input_shape))
    return tuple(int(d) for d in output[1:]), int(layer.count_params())


@exercise("07.1", "A convolution's output shape and parameters", wrong_answers={
    "forgot the input channels": (
        "    lost = 0 if padding == 'same' else kernel_size - 1\n"
        "    return (h - lost, w - lost, filters), kernel_size * kernel_size * filters + (filters if use_bias else 0)"),
    "always counted a bias": (
        "    lost = 0 if padding == 'same' else kernel_size - 1\n"
        "    return (h - lost, w - lost, filters), kernel_size * kernel_size * c_in * filters + filters"),
    "'valid' padding kept the size": (
        "    return (h, w, filters), kernel_size * kernel_size * c_in * filters + (filters if use_bias else 0)"),
    "used the height for the width too": (
        "    lost = 0 if padding == 'same' else kernel_size - 1\n"
        "    return (h - lost, h - lost, filters), kernel_size * kernel_size * c_in * filters + (filters if use_bias else 0)"),
    "swapped height and width": (
        "    lost = 0 if padding == 'same' else kernel_size - 1\n"
        "    return (w - lost, h - lost, filters), kernel_size * kernel_size * c_in * filters + (filters if use_bias else 0)"),
}, accepted_answers={
    "output size from the general formula (stride 1)": (
        "    pad = (kernel_size - 1) // 2 if padding == 'same' else 0\n"
        "    out = lambda n: (n + 2 * pad - kernel_size) // 1 + 1\n"
        "    weights = kernel_size ** 2 * c_in * filters\n"
        "    return (out(h), out(w), filters), weights + filters * int(use_bias)"),
})
def check_conv_shape_and_params(conv_shape_and_params: Any) -> str:
    expect_callable(conv_shape_and_params, name="conv_shape_and_params")
    for input_shape, filters, kernel_size, padding, use_bias in _CONV_CASES:
        call = f"conv_shape_and_params({input_shape}, {filters}, {kernel_size}, {padding!r}, {use_bias})"
        want_shape, want_params = _keras_conv(input_shape, filters, kernel_size, padding, use_bias)
        answer = conv_shape_and_params(tuple(input_shape), filters, kernel_size, padding, use_bias)
        expect(isinstance(answer, tuple) and len(answer) == 2,
               f"`{call}` should return a pair (output_shape, n_params), not {type(answer).__name__} {answer!r:.60}.")
        shape, params = answer
        expect_array(shape, want_shape, name=f"the output shape from {call}",
                     hint="'same' padding keeps height and width; 'valid' loses kernel_size - 1 pixels on each of them "
                          "(stride 1). Height and width are computed separately; the last axis is the number of filters.")
        expect_number(params, want_params, name=f"the parameter count from {call}", integer=True, rtol=0, atol=0,
                      hint="Each filter has kernel_size × kernel_size × input_channels weights (it looks at every "
                           "input channel), plus one bias when use_bias is True.")
    shape, params = _keras_conv(*_DENSE_COMPARISON)
    dense = math.prod(_DENSE_COMPARISON[0]) * math.prod(shape)
    return (f"Right for all {len(_CONV_CASES)} layers. Conv 3×3, 16→32 channels on 14×14: {params:,} parameters; "
            f"a Dense layer between the same shapes would need {dense:,} weights.")


# ------------------------------------------------------------------------------ 07.2

@exercise("07.2", "Build the CNN", wrong_answers={
    "softmax on the last layer (a double softmax with from_logits=True)": (
        "    from dlcourse.cnn_keras import build_cnn\n"
        "    model = build_cnn()\n"
        "    model.layers[-1].activation = keras.activations.softmax\n"
        "    return model"),
    "forgot BatchNormalization": cnn_answer(blocks=(
        "        layers.Conv2D(16, 3, padding='same', use_bias=False), layers.ReLU(), layers.MaxPooling2D(2),\n"
        "        layers.Conv2D(32, 3, padding='same', use_bias=False), layers.ReLU(), layers.MaxPooling2D(2),\n")),
    "convolutions with biases and 'valid' padding": cnn_answer(blocks=(
        "        layers.Conv2D(16, 3), layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D(2),\n"
        "        layers.Conv2D(32, 3), layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D(2),\n")),
    "Dense(128) without its ReLU": cnn_answer(head="layers.Dense(128), layers.Dropout(0.25), layers.Dense(10)"),
    "Dropout(0.9)": cnn_answer(head="layers.Dense(128, activation='relu'), layers.Dropout(0.9), layers.Dense(10)"),
    "Rescaling(1/255) on images already in [0, 1]": cnn_answer(normalise="        layers.Rescaling(1 / 255),\n"),
    "ReLU before BatchNormalization": cnn_answer(blocks=(
        "        layers.Conv2D(16, 3, padding='same', use_bias=False, activation='relu'), layers.BatchNormalization(),\n"
        "        layers.MaxPooling2D(2),\n"
        "        layers.Conv2D(32, 3, padding='same', use_bias=False, activation='relu'), layers.BatchNormalization(),\n"
        "        layers.MaxPooling2D(2),\n")),
    "3×3 pooling": cnn_answer(blocks=CONV_BLOCKS.replace("MaxPooling2D(2)", "MaxPooling2D(3, strides=2, padding='same')")),
}, accepted_answers={
    "layers.Activation('relu') instead of layers.ReLU()": cnn_answer(
        blocks=CONV_BLOCKS.replace("layers.ReLU()", "layers.Activation('relu')"),
        head="layers.Dense(128), layers.Activation('relu'), layers.Dropout(0.25), layers.Dense(10)"),
    "Normalization(mean, variance) instead of Rescaling": cnn_answer(
        normalise="        layers.Normalization(mean=0.1307, variance=0.3081 ** 2),\n"),
    "Dense(128) followed by ReLU()": cnn_answer(
        head="layers.Dense(128), layers.ReLU(), layers.Dropout(0.25), layers.Dense(10, activation=None)"),
})
def check_build_cnn(build_my_cnn: Any) -> str:
    import keras

    from dlcourse.cnn_keras import build_cnn, trainable_params

    expect_callable(build_my_cnn, name="build_my_cnn")
    model = build_my_cnn()
    expect(isinstance(model, keras.Model), f"`build_my_cnn()` should return a keras.Model, not {type(model).__name__}.")
    expect(tuple(model.input_shape[1:]) == (28, 28, 1),
           f"The model's input shape is {tuple(model.input_shape[1:])}; MNIST images are (28, 28, 1).",
           "Start the Sequential with keras.Input(shape=(28, 28, 1)).")
    reference = build_cnn()
    got, want = model_ops(model), model_ops(reference)
    if ("act", "softmax") in got[-1:]:
        raise Mismatch("The last layer applies a softmax, so the model outputs probabilities, but the loss expects logits.",
                       "Leave the last Dense layer without an activation: CategoricalCrossentropy(from_logits=True) "
                       "applies the softmax itself, and a second softmax squashes the gradients.")
    if not any(op[0] == "batchnorm" for op in got):
        raise Mismatch("The model has no BatchNormalization.", OP_HINTS["batchnorm"])
    i = first_difference(got, want)
    if i is not None:
        mine, theirs = (got[i] if i < len(got) else None), (want[i] if i < len(want) else None)
        before = f"after {describe(want[i - 1])}" if i else "first"
        raise Mismatch(f"Step {i + 1} of your model computes {describe(mine)}; the course CNN computes "
                       f"{describe(theirs)} there ({before}).",
                       OP_HINTS.get((theirs or mine)[0], "Follow the table above layer by layer."))
    expect(trainable_params(model) == trainable_params(reference),
           f"The model has {trainable_params(model):,} trainable parameters; expected {trainable_params(reference):,}.",
           "Conv2D(..., use_bias=False): BatchNormalization's beta already adds a per-channel shift.")
    # A seeded forward pass with the same (non-identity) weights in both: it shows what the layers compute together.
    expect([tuple(w.shape) for w in model.weights] == [tuple(w.shape) for w in reference.weights],
           "The model's weights are not laid out like the course CNN's (same layers, in the same order).")
    weights = random_weights(reference, seed=5)
    reference.set_weights(weights)
    model.set_weights([w.copy() for w in weights])
    x = np.random.default_rng(6).random((5, 28, 28, 1), dtype=np.float32)
    want_out = np.asarray(reference(x, training=False))
    got_out = np.asarray(model(x.copy(), training=False))
    expect_array(got_out, want_out, name="the logits for 5 random images (same weights in both models, eval mode)",
                 rtol=1e-4, atol=1e-4, hint="Follow the table above layer by layer.")
    return (f"Every layer computes what the course CNN's does ({len(want)} steps, {trainable_params(model):,} "
            "trainable parameters), the output is logits, and with the same weights both give the same logits.")


# ------------------------------------------------------------------------------ 07.3

_SCHEDULE_CASES = ((1000, 0.05, 250), (938, 0.1, 0), (400, 0.2, 100))


def _reference_schedule(total_steps: int, peak_lr: float, warmup_steps: int) -> np.ndarray:
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(0.0, total_steps - warmup_steps, alpha=0.0,
                                                      warmup_target=peak_lr, warmup_steps=warmup_steps)
    if warmup_steps == 0:
        schedule = keras.optimizers.schedules.CosineDecay(peak_lr, total_steps, alpha=0.0)
    return np.array([float(schedule(step)) for step in range(total_steps + 1)])


@exercise("07.3", "Warm-up then cosine decay", wrong_answers={
    "no warm-up (decays from step 0)": "    return peak_lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))",
    "warms up, then stays at the peak": "    return peak_lr * min(1.0, step / warmup_steps) if warmup_steps else peak_lr",
    "cosine over the whole run, not after the warm-up": (
        "    if step < warmup_steps:\n"
        "        return peak_lr * step / warmup_steps\n"
        "    return peak_lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))"),
})
def check_learning_rate(learning_rate: Any) -> str:
    expect_callable(learning_rate, name="learning_rate")
    for total, peak, warmup in _SCHEDULE_CASES:
        want = _reference_schedule(total, peak, warmup)
        got = [learning_rate(step, total, peak, warmup) for step in range(total + 1)]
        expect_array(got, want, name=f"learning_rate(step, {total}, {peak}, {warmup}) for steps 0 to {total}",
                     rtol=1e-4, atol=1e-7,
                     hint="Rise linearly from 0 at step 0 to peak_lr at step warmup_steps; then follow "
                          "peak_lr · ½(1 + cos(π·t)) where t goes from 0 to 1 over the remaining steps.")
    return f"Matches keras.optimizers.schedules.CosineDecay with warm-up at every step of {len(_SCHEDULE_CASES)} schedules."


# ------------------------------------------------------------------------------ 07.4

def _factor_upper(layer: Any, attribute: str) -> float:
    value = getattr(layer, attribute)
    return float(max(abs(v) for v in value)) if isinstance(value, (tuple, list)) else abs(float(value))


_AUGMENT_SOLUTION = (
    "augment = keras.Sequential([\n"
    "    keras.layers.RandomRotation(0.03, fill_mode='constant'),\n"
    "    keras.layers.RandomTranslation(0.1, 0.1, fill_mode='constant'),\n"
    "    keras.layers.RandomZoom(0.1, fill_mode='constant'),\n"
    "])")


@exercise("07.4", "An augmentation pipeline", wrong_answers={
    "rotates up to 180° (a 6 becomes a 9)": _AUGMENT_SOLUTION.replace("RandomRotation(0.03", "RandomRotation(0.5"),
    "shifts the images at inference too": (
        "class ShiftRight(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return keras.ops.roll(x, 2, axis=2)\n"
        + _AUGMENT_SOLUTION.replace("\n])", "\n    ShiftRight(),\n])")),
    "zooms by up to 90%": _AUGMENT_SOLUTION.replace("RandomZoom(0.1", "RandomZoom(0.9"),
    "the default fill_mode='reflect' (mirrored strokes at the border)": _AUGMENT_SOLUTION.replace(", fill_mode='constant'", ""),
    "reflect fill in the zoom only": _AUGMENT_SOLUTION.replace("RandomZoom(0.1, fill_mode='constant')", "RandomZoom(0.1)"),
    "fills with white (fill_value=1)": _AUGMENT_SOLUTION.replace("fill_mode='constant'", "fill_mode='constant', fill_value=1.0"),
}, accepted_answers={
    "factors as (low, high) ranges, in another order": (
        "augment = keras.Sequential([\n"
        "    keras.layers.RandomZoom((-0.1, 0.1), fill_mode='constant'),\n"
        "    keras.layers.RandomTranslation((-0.1, 0.1), (-0.08, 0.08), fill_mode='constant'),\n"
        "    keras.layers.RandomRotation((-0.04, 0.04), fill_mode='constant'),\n"
        "])"),
})
def check_augmentation(augment: Any) -> str:
    import keras

    from dlcourse.data import load_mnist

    expect(isinstance(augment, keras.layers.Layer),
           f"`augment` should be a Keras layer or Sequential, not {type(augment).__name__}.")
    layers = augment.layers if isinstance(augment, keras.Sequential) else [augment]
    kinds = {type(layer).__name__: layer for layer in layers}
    for needed in ("RandomRotation", "RandomTranslation", "RandomZoom"):
        expect(needed in kinds, f"`augment` has no {needed} layer.",
               "Use keras.layers.RandomRotation, RandomTranslation and RandomZoom, in a keras.Sequential.")
    rotation = _factor_upper(kinds["RandomRotation"], "factor")
    expect(rotation <= 0.1, f"RandomRotation turns digits up to {rotation * 360:.0f}°; a 6 turned that far reads as a 9.",
           "The factor is a fraction of a full turn: 0.03 is about ±11°, like a tilted handwriting.")
    shift = max(_factor_upper(kinds["RandomTranslation"], "height_factor"),
                _factor_upper(kinds["RandomTranslation"], "width_factor"))
    expect(shift <= 0.2, f"RandomTranslation shifts up to {shift:.0%} of the image: digits leave the frame.",
           "MNIST digits are centred in a 20×20 box; 0.1 (about ±3 pixels) is plenty.")
    zoom_layer = kinds["RandomZoom"]
    zoom = max(_factor_upper(zoom_layer, "height_factor"),
               _factor_upper(zoom_layer, "width_factor") if zoom_layer.width_factor is not None else 0.0)
    expect(zoom <= 0.2, f"RandomZoom changes the size by up to {zoom:.0%}: a digit zoomed that far is cut off or shrinks "
                        "to a few pixels.", "A factor of 0.1 zooms between 90% and 110%, like handwriting of another size.")
    for name in ("RandomRotation", "RandomTranslation", "RandomZoom"):
        layer = kinds[name]
        expect(layer.fill_mode == "constant",
               f"{name} fills the new pixels with fill_mode={layer.fill_mode!r}: it copies strokes from the border "
               "into the empty corners.",
               "Pass fill_mode='constant' to each Random* layer: new pixels become 0, MNIST's black background.")
        expect(float(layer.fill_value) == 0.0,
               f"{name} fills the new pixels with {float(layer.fill_value):g}; MNIST's background is 0 (black).",
               "Keep fill_value at its default, 0.")
    x = load_mnist(scale=True, channels="last", n_test=32, n_train=1, seed=7).test.x
    inference = np.asarray(augment(x.copy(), training=False))
    expect_array(inference.shape, x.shape, name="the output shape of augment(x)")
    expect(inference.dtype == np.float32, f"`augment(x)` returns {inference.dtype}; expected float32 like its input.")
    expect(np.allclose(inference, x),
           "`augment(x, training=False)` changes the images: augmentation must be off at inference.",
           "Only the Random* layers: they act when training=True (inside fit) and pass images through otherwise.")
    keras.utils.set_random_seed(0)
    trained = np.asarray(augment(x.copy(), training=True))
    changed = float(np.mean(np.abs(trained - x).reshape(len(x), -1).max(axis=1) > 0.05))
    expect(changed > 0.5, f"`augment(x, training=True)` left {1 - changed:.0%} of the images unchanged.",
           "Check the factors: 0 turns a layer off.")
    return (f"Random rotation up to ±{rotation * 360:.0f}°, shifts up to {shift:.0%}, zoom up to ±{zoom:.0%}, "
            "black fill; on in training, off at inference.")


# ------------------------------------------------------------------------------ 07.5

@exercise("07.5", "Predict digits from raw images", wrong_answers={
    "forgot to scale the pixels": (
        "    logits = model.predict(images[..., None].astype('float32'), verbose=0)\n"
        "    probabilities = softmax(logits, axis=-1)\n"
        "    return probabilities, probabilities.argmax(axis=1)"),
    "softmax over the batch axis": (
        "    logits = model.predict(images[..., None].astype('float32') / 255.0, verbose=0)\n"
        "    probabilities = softmax(logits, axis=0)\n"
        "    return probabilities, probabilities.argmax(axis=1)"),
    "argmax over the batch axis": (
        "    logits = model.predict(images[..., None].astype('float32') / 255.0, verbose=0)\n"
        "    probabilities = softmax(logits, axis=-1)\n"
        "    return probabilities, probabilities.argmax(axis=0)"),
})
def check_predict_digits(predict_digits: Any) -> str:
    import keras

    from dlcourse.cnn_keras import build_cnn
    from dlcourse.data import load_mnist

    expect_callable(predict_digits, name="predict_digits")
    keras.utils.set_random_seed(1)
    model = build_cnn()  # untrained but fixed: the check is about the plumbing, not the accuracy
    images = load_mnist(n_test=12, n_train=1, seed=3).test.x  # raw uint8 (12, 28, 28), as read from a file
    logits = np.asarray(model(images[..., None].astype(np.float32) / 255.0, training=False))
    want_p = softmax(logits, axis=1)
    answer = predict_digits(model, images.copy())
    expect(isinstance(answer, tuple) and len(answer) == 2,
           f"`predict_digits` should return a pair (probabilities, labels), not {type(answer).__name__}.")
    probabilities, labels = answer
    p = np.asarray(probabilities)
    expect_array(p.shape, want_p.shape, name="the shape of probabilities",
                 hint="One row of 10 probabilities per image: shape (n, 10).")
    if np.allclose(p.sum(axis=0), 1.0, atol=1e-3) and not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise Mismatch("Each column of probabilities sums to 1, not each row: the softmax ran over the batch axis.",
                       "Use softmax(logits, axis=-1): every image gets its own distribution over the 10 digits.")
    expect_array(p, want_p, name="probabilities", rtol=1e-3, atol=1e-5,
                 hint="Scale the uint8 pixels to [0, 1] (divide by 255) and add the channel axis before "
                      "model.predict: the network was trained on images in [0, 1].")
    expect_array(labels, want_p.argmax(axis=1), name="labels", dtype_kind="iu",
                 hint="The predicted digit is the argmax over the 10 classes of each row: argmax(axis=1).")
    return f"Probabilities of shape {want_p.shape} with rows summing to 1, and the argmax of each row as the label."
