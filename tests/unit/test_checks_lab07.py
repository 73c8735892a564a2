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
