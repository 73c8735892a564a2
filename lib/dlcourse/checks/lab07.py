"""Checks for lab 07 (a Keras CNN on MNIST). Each builds its reference with Keras itself or
with `dlcourse.cnn_keras`, never from the student's notebook state."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlcourse.check import Mismatch, expect, expect_array, expect_callable, expect_number, exercise
from dlcourse.functions import softmax

# ------------------------------------------------------------------------------ 07.1

_CONV_CASES = (  # (input_shape, filters, kernel_size, padding, use_bias)
    ((28, 28, 1), 16, 3, "same", False),
    ((14, 14, 16), 32, 3, "same", True),
    ((28, 28, 1), 32, 3, "valid", True),
    ((13, 13, 32), 64, 5, "valid", True),
)


def _keras_conv(input_shape: tuple[int, int, int], filters: int, kernel_size: int, padding: str,
                use_bias: bool) -> tuple[tuple[int, ...], int]:
    import keras

    layer = keras.layers.Conv2D(filters, kernel_size, padding=padding, use_bias=use_bias)
    output = layer.compute_output_shape((None, *input_shape))
    layer.build((None, *input_shape))
    return tuple(int(d) for d in output[1:]), int(layer.count_params())


@exercise("07.1", "A convolution's output shape and parameters", wrong_answers={
    "forgot the input channels": (
        "    size = h if padding == 'same' else h - kernel_size + 1\n"
        "    return (size, size, filters), kernel_size * kernel_size * filters + (filters if use_bias else 0)"),
    "always counted a bias": (
        "    size = h if padding == 'same' else h - kernel_size + 1\n"
        "    return (size, size, filters), kernel_size * kernel_size * c_in * filters + filters"),
    "'valid' padding kept the size": (
        "    return (h, w, filters), kernel_size * kernel_size * c_in * filters + (filters if use_bias else 0)"),
})
def check_conv_shape_and_params(conv_shape_and_params: Any) -> str:
    expect_callable(conv_shape_and_params, name="conv_shape_and_params")
    for input_shape, filters, kernel_size, padding, use_bias in _CONV_CASES:
        call = f"conv_shape_and_params({input_shape}, {filters}, {kernel_size}, {padding!r}, {use_bias})"
        want_shape, want_params = _keras_conv(input_shape, filters, kernel_size, padding, use_bias)
        answer = conv_shape_and_params(input_shape, filters, kernel_size, padding, use_bias)
        expect(isinstance(answer, tuple) and len(answer) == 2,
               f"`{call}` should return a pair (output_shape, n_params), not {type(answer).__name__} {answer!r:.60}.")
        shape, params = answer
        expect_array(shape, want_shape, name=f"the output shape from {call}",
                     hint="'same' padding keeps height and width; 'valid' loses kernel_size - 1 pixels (stride 1). "
                          "The last axis is the number of filters.")
        expect_number(params, want_params, name=f"the parameter count from {call}", integer=True, rtol=0, atol=0,
                      hint="Each filter has kernel_size × kernel_size × input_channels weights (it looks at every "
                           "input channel), plus one bias when use_bias is True.")
    shape, params = _keras_conv(*_CONV_CASES[1])
    dense = 14 * 14 * 16 * math.prod(shape)
    return (f"Right for all {len(_CONV_CASES)} layers. Conv 3×3, 16→32 channels on 14×14: {params:,} parameters; "
            f"a Dense layer between the same shapes would need {dense:,} weights.")


# ------------------------------------------------------------------------------ 07.2

def _layer_summary(model: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(type(layer).__name__, tuple(layer.output.shape[1:])) for layer in model.layers]


@exercise("07.2", "Build the CNN", wrong_answers={
    "softmax on the last layer (a double softmax with from_logits=True)": (
        "    from dlcourse.cnn_keras import build_cnn\n"
        "    model = build_cnn()\n"
        "    model.layers[-1].activation = keras.activations.softmax\n"
        "    return model"),
    "forgot BatchNormalization": (
        "    layers = keras.layers\n"
        "    return keras.Sequential([\n"
        "        keras.Input(shape=(28, 28, 1)),\n"
        "        layers.Rescaling(1 / 0.3081, offset=-0.1307 / 0.3081),\n"
        "        layers.Conv2D(16, 3, padding='same', use_bias=False), layers.ReLU(), layers.MaxPooling2D(2),\n"
        "        layers.Conv2D(32, 3, padding='same', use_bias=False), layers.ReLU(), layers.MaxPooling2D(2),\n"
        "        layers.Flatten(), layers.Dense(128, activation='relu'), layers.Dropout(0.25), layers.Dense(10)])"),
    "convolutions with biases and 'valid' padding": (
        "    layers = keras.layers\n"
        "    return keras.Sequential([\n"
        "        keras.Input(shape=(28, 28, 1)),\n"
        "        layers.Rescaling(1 / 0.3081, offset=-0.1307 / 0.3081),\n"
        "        layers.Conv2D(16, 3), layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D(2),\n"
        "        layers.Conv2D(32, 3), layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D(2),\n"
        "        layers.Flatten(), layers.Dense(128, activation='relu'), layers.Dropout(0.25), layers.Dense(10)])"),
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
    got, want = _layer_summary(model), _layer_summary(reference)
    got_types, want_types = [t for t, _ in got], [t for t, _ in want]
    if "BatchNormalization" not in got_types:
        raise Mismatch("The model has no BatchNormalization layer.",
                       "Put BatchNormalization between each Conv2D and its ReLU: it keeps activations well scaled, "
                       "which is what lets this recipe use a high learning rate.")
    expect(got_types == want_types, f"The layers are {', '.join(got_types)}; expected {', '.join(want_types)}.",
           "Follow the table above layer by layer (Rescaling first; Conv2D → BatchNormalization → ReLU → MaxPooling2D twice).")
    for (kind, shape), (_, want_shape) in zip(got, want):
        expect(shape == want_shape, f"The {kind} layer outputs {shape}; expected {want_shape}.",
               "Use padding='same' so a 3×3 convolution keeps 28×28 (and 14×14); each 2×2 pooling halves it.")
    expect(trainable_params(model) == trainable_params(reference),
           f"The model has {trainable_params(model):,} trainable parameters; expected {trainable_params(reference):,}.",
           "Conv2D(..., use_bias=False): BatchNormalization's beta already adds a per-channel shift.")
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    out = np.asarray(model(x, training=False))
    if np.allclose(out.sum(axis=-1), 1.0, atol=1e-4) and (out >= 0).all():
        raise Mismatch("The model outputs probabilities (each row sums to 1), but the loss expects logits.",
                       "Leave the last Dense layer without an activation: SparseCategoricalCrossentropy(from_logits=True) "
                       "applies the softmax itself, and a second softmax squashes the gradients.")
    return (f"Same layers, shapes and {trainable_params(model):,} trainable parameters as the course CNN; "
            "the output is logits.")


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


@exercise("07.4", "An augmentation pipeline", wrong_answers={
    "rotates up to 180° (a 6 becomes a 9)": (
        "    augment = keras.Sequential([keras.layers.RandomRotation(0.5), keras.layers.RandomTranslation(0.1, 0.1),\n"
        "                                keras.layers.RandomZoom(0.1)])"),
    "shifts the images at inference too": (
        "class ShiftRight(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return keras.ops.roll(x, 2, axis=2)\n"
        "augment = keras.Sequential([keras.layers.RandomRotation(0.03), keras.layers.RandomTranslation(0.1, 0.1),\n"
        "                            keras.layers.RandomZoom(0.1), ShiftRight()])"),
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
    x = load_mnist(scale=True, channels="last", n_test=32, n_train=1, seed=7).test.x
    inference = np.asarray(augment(x, training=False))
    expect_array(inference.shape, x.shape, name="the output shape of augment(x)")
    expect(inference.dtype == np.float32, f"`augment(x)` returns {inference.dtype}; expected float32 like its input.")
    expect(np.allclose(inference, x),
           "`augment(x, training=False)` changes the images: augmentation must be off at inference.",
           "Only the Random* layers: they act when training=True (inside fit) and pass images through otherwise.")
    keras.utils.set_random_seed(0)
    trained = np.asarray(augment(x, training=True))
    changed = float(np.mean(np.abs(trained - x).reshape(len(x), -1).max(axis=1) > 0.05))
    expect(changed > 0.5, f"`augment(x, training=True)` left {1 - changed:.0%} of the images unchanged.",
           "Check the factors: 0 turns a layer off.")
    return (f"Random rotation up to ±{rotation * 360:.0f}°, shifts up to {shift:.0%}, zoom; on in training, "
            "off at inference.")


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
