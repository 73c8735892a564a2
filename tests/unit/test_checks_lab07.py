"""The lab 07 checks, called directly: they accept right answers and explain wrong ones."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")

from dlcourse.checks.lab07 import (  # noqa: E402
    check_augmentation, check_build_cnn, check_conv_shape_and_params, check_learning_rate, check_predict_digits)
from dlcourse.cnn_keras import augmentation_layers, build_cnn  # noqa: E402
from dlcourse.functions import softmax  # noqa: E402


@pytest.fixture(autouse=True)
def _data(shared_data, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLCOURSE_DATA", str(shared_data))


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your code.")


def test_conv_shape_and_params() -> None:
    def right(input_shape, filters, kernel_size, padding="same", use_bias=True):
        h, w, c_in = input_shape
        lost = 0 if padding == "same" else kernel_size - 1
        return (h - lost, w - lost, filters), kernel_size * kernel_size * c_in * filters + (filters if use_bias else 0)

    def no_channels(input_shape, filters, kernel_size, padding="same", use_bias=True):
        (shape, _) = right(input_shape, filters, kernel_size, padding, use_bias)
        return shape, kernel_size * kernel_size * filters + (filters if use_bias else 0)

    passed = check_conv_shape_and_params.evaluate(right)
    assert passed.passed and "4,640" in passed.message, passed.message
    failed = check_conv_shape_and_params.evaluate(no_channels)
    assert failed.status == "failed" and "input_channels" in failed.hint
    assert check_conv_shape_and_params.evaluate(_stub).status == "not_attempted"
    assert "should be a function" in check_conv_shape_and_params.evaluate(3).message
    assert "pair" in check_conv_shape_and_params.evaluate(lambda *a: 3).message


def test_build_cnn() -> None:
    assert check_build_cnn.evaluate(build_cnn).passed

    def with_softmax():
        model = build_cnn()
        model.layers[-1].activation = keras.activations.softmax
        return model

    failed = check_build_cnn.evaluate(with_softmax)
    assert failed.status == "failed" and "logits" in failed.message
    assert check_build_cnn.evaluate(_stub).status == "not_attempted"
    assert "keras.Model" in check_build_cnn.evaluate(lambda: 3).message


def _lr(step, total_steps, peak_lr, warmup_steps):
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    t = (step - warmup_steps) / (total_steps - warmup_steps)
    return peak_lr * 0.5 * (1 + math.cos(math.pi * t))


def test_learning_rate() -> None:
    assert check_learning_rate.evaluate(_lr).passed
    no_warmup = check_learning_rate.evaluate(lambda s, t, p, w: p * 0.5 * (1 + math.cos(math.pi * s / t)))
    assert no_warmup.status == "failed" and "linearly" in no_warmup.hint
    assert check_learning_rate.evaluate(_stub).status == "not_attempted"
    assert check_learning_rate.evaluate(lambda s, t, p, w: "fast").status == "failed"


class _ShiftRight(keras.layers.Layer):
    def call(self, x):
        return keras.ops.roll(x, 2, axis=2)


def test_augmentation() -> None:
    assert check_augmentation.evaluate(keras.Sequential(augmentation_layers())).passed
    too_much = keras.Sequential([keras.layers.RandomRotation(0.5), keras.layers.RandomTranslation(0.1, 0.1),
                                 keras.layers.RandomZoom(0.1)])
    assert "9" in check_augmentation.evaluate(too_much).message
    always = keras.Sequential(augmentation_layers() + [_ShiftRight()])
    assert "inference" in check_augmentation.evaluate(always).message
    assert "no RandomZoom" in check_augmentation.evaluate(keras.Sequential(augmentation_layers()[:2])).message
    assert check_augmentation.evaluate(None).status == "not_attempted"
    assert "Keras layer" in check_augmentation.evaluate([1, 2]).message


def _predict(model, images):
    logits = model.predict(images[..., None].astype("float32") / 255.0, verbose=0)
    probabilities = softmax(logits, axis=-1)
    return probabilities, probabilities.argmax(axis=1)


def test_predict_digits() -> None:
    assert check_predict_digits.evaluate(_predict).passed

    def unscaled(model, images):
        probabilities = softmax(model.predict(images[..., None].astype("float32"), verbose=0), axis=-1)
        return probabilities, probabilities.argmax(axis=1)

    def batch_axis(model, images):
        probabilities, _ = _predict(model, images)
        return probabilities, probabilities.argmax(axis=0)

    assert "255" in check_predict_digits.evaluate(unscaled).hint
    assert "shape" in check_predict_digits.evaluate(batch_axis).message
    assert check_predict_digits.evaluate(_stub).status == "not_attempted"
    assert "pair" in check_predict_digits.evaluate(lambda m, x: np.zeros(3)).message


def _registered(check, kind: str, label: str, wrap: str):
    """Build a registered answer's object from its code (`wrap` is the function header, or '' for a value)."""
    code = (check.wrong_answers if kind == "wrong" else check.accepted_answers)[label]
    namespace = {"keras": keras, "math": math}
    exec(wrap + code, namespace)
    return namespace


def test_build_cnn_compares_what_each_layer_computes() -> None:
    def answer(label, kind="wrong"):
        return _registered(check_build_cnn, kind, label, "def build_my_cnn():\n")["build_my_cnn"]

    no_relu = check_build_cnn.evaluate(answer("Dense(128) without its ReLU"))
    assert no_relu.status == "failed" and "relu" in no_relu.message
    assert "Dropout(0.9)" in check_build_cnn.evaluate(answer("Dropout(0.9)")).message
    rescaled = check_build_cnn.evaluate(answer("Rescaling(1/255) on images already in [0, 1]"))
    assert rescaled.status == "failed" and "0.1307" in rescaled.hint
    for label in check_build_cnn.accepted_answers:
        assert check_build_cnn.evaluate(answer(label, "accepted")).passed, label


def test_augmentation_reads_the_zoom_and_the_fill() -> None:
    def answer(label, kind="wrong"):
        return _registered(check_augmentation, kind, label, "")["augment"]

    assert "90%" in check_augmentation.evaluate(answer("zooms by up to 90%")).message
    reflect = check_augmentation.evaluate(answer("the default fill_mode='reflect' (mirrored strokes at the border)"))
    assert reflect.status == "failed" and "fill_mode='constant'" in reflect.hint
    assert check_augmentation.evaluate(answer("factors as (low, high) ranges, in another order", "accepted")).passed


def test_conv_shapes_are_not_square() -> None:
    from dlcourse.checks.lab07 import _CONV_CASES

    for (h, w, c), filters, kernel, _, _ in _CONV_CASES:
        assert len({h, w, c, filters, kernel}) == 5
    height_twice = _registered(check_conv_shape_and_params, "wrong", "used the height for the width too",
                               "def f(input_shape, filters, kernel_size, padding='same', use_bias=True):\n"
                               "    h, w, c_in = input_shape\n")["f"]
    assert check_conv_shape_and_params.evaluate(height_twice).status == "failed"


def _notebook_cell(cell_id: str) -> str:
    from pathlib import Path

    from dlcourse import notebooks

    nb = notebooks.read(Path(__file__).resolve().parents[2] / "solutions" / "07_keras_cnn.ipynb")
    return next(c["source"] for c in nb.cells if c["id"] == cell_id)


def test_the_lab_trains_the_students_network(capsys) -> None:
    """The notebook's own cells: a wrong `build_my_cnn` changes what is trained; a stub makes the cell say so."""
    from dlcourse.cnn_keras import holdout
    from dlcourse.data import load_mnist

    data = load_mnist(scale=True, channels="last", n_train=700, n_test=100, seed=0)
    fit_data, _ = holdout(data, 180, seed=0)
    wrong = _registered(check_build_cnn, "wrong", "convolutions with biases and 'valid' padding",
                        "def build_my_cnn():\n")["build_my_cnn"]
    outcomes = {}
    def stub():
        raise NotImplementedError("Exercise 07.2: replace this line with your code.")

    for name, build_my_cnn in (("right", build_cnn), ("wrong", wrong), ("stub", stub)):
        namespace = {"build_my_cnn": build_my_cnn, "keras": keras, "np": np}
        exec(_notebook_cell("efbca210"), namespace)
        namespace.update(fit_data=fit_data, EPOCHS=0.5, SEED=0, VERBOSE=0)
        exec(_notebook_cell("c54bed4b"), namespace)
        outcomes[name] = namespace["result"]
    printed = capsys.readouterr().out
    assert "This cell will build the network with your `build_my_cnn`: solve exercise 07.2 first" in printed
    assert outcomes["stub"].recipe == "reference CNN" and outcomes["right"].recipe == "your CNN"
    # The wrong network ('valid' convolutions with biases) is what trains: another size, other curves.
    assert (outcomes["right"].params, outcomes["stub"].params) == (206_970, 206_970)
    assert outcomes["wrong"].params == 3 * 3 * 16 + 16 + 3 * 3 * 16 * 32 + 32 + 2 * (16 + 32) + 800 * 128 + 128 + 1290
    assert outcomes["wrong"].history["val_loss"] != outcomes["right"].history["val_loss"]
