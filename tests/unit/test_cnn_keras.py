"""dlcourse.cnn_keras: the shared architecture, the schedule, and both trainers on a tiny subset."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")

from dlcourse import cnn_keras  # noqa: E402
from dlcourse.training import TrainResult  # noqa: E402


@pytest.fixture(scope="module")
def tiny(shared_data):
    from dlcourse.data import load_mnist

    return load_mnist(root=shared_data, scale=True, channels="last", n_train=640, n_test=200, seed=0)


def test_import_dlcourse_does_not_import_keras() -> None:
    code = "import sys, dlcourse; print('keras' in sys.modules, 'dlcourse.cnn_keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_build_cnn_is_the_shared_architecture() -> None:
    model = cnn_keras.build_cnn()
    assert cnn_keras.trainable_params(model) == 206_970
    assert model.count_params() == 207_066  # + BatchNorm moving mean and variance, 2 × (16 + 32)
    assert model.output_shape == (None, 10)
    assert model.get_layer("flatten").output.shape[1:] == (1568,)
    assert model.layers[-1].activation is keras.activations.linear  # logits
    augmented = cnn_keras.build_cnn(augment=True)
    assert cnn_keras.trainable_params(augmented) == 206_970
    kinds = [type(layer).__name__ for layer in augmented.layers[:3]]
    assert kinds == ["RandomRotation", "RandomTranslation", "RandomZoom"]


def test_normalisation_uses_mnist_statistics() -> None:
    layer = cnn_keras.build_cnn().get_layer("normalise")
    out = np.asarray(layer(np.array([[0.1307, 1.0]], dtype=np.float32)))
    assert out[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert out[0, 1] == pytest.approx((1 - 0.1307) / 0.3081, rel=1e-6)


def test_schedule_warms_up_then_decays_to_zero() -> None:
    schedule = cnn_keras.warmup_cosine_schedule(100, 0.05, 0.25)
    values = [float(schedule(s)) for s in range(101)]
    assert values[0] == 0.0 and values[25] == pytest.approx(0.05)
    assert values[10] == pytest.approx(0.02)
    assert values[100] == pytest.approx(0.0, abs=1e-9)
    assert values[25 + 75 // 2] == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * 37 / 75)), rel=1e-5)


def test_keras_io_convnet_as_published() -> None:
    model = cnn_keras.keras_io_convnet()
    assert model.count_params() == 34_826
    assert model.layers[-1].activation is keras.activations.softmax


def test_train_cnn_returns_a_result(tiny) -> None:
    model, result = cnn_keras.train_cnn(tiny, epochs=1.0, batch_size=32, seed=0, target=0.5)
    assert isinstance(result, TrainResult) and isinstance(model, keras.Model)
    assert result.recipe == "lab 07 CNN" and result.framework.startswith("Keras 3")
    assert "(tensorflow)" in result.framework and result.params == 206_970
    assert result.epochs == pytest.approx(1.0, abs=0.1)
    assert set(result.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(result.history["val_accuracy"]) == cnn_keras.RECIPE["checkpoints_per_epoch"]
    assert result.test_accuracy == result.history["val_accuracy"][-1]
    assert 0 < result.train_seconds and 0.0 <= result.test_accuracy <= 1.0
    if result.seconds_to_target is not None:
        assert result.seconds_to_target <= result.train_seconds + 1e-9


def test_train_cnn_rejects_unscaled_images(tiny) -> None:
    (x, y), test = tiny
    bad = type(tiny)(type(tiny.train)(x * 255, y), test)
    with pytest.raises(ValueError, match="scale=True"):
        cnn_keras.train_cnn(bad, epochs=0.25)


def test_keras_io_reference_trains(tiny) -> None:
    model, result = cnn_keras.train_keras_io_reference(tiny, epochs=1, target=1.01)
    assert result.recipe == "keras.io convnet" and result.params == 34_826 and result.epochs == 1
    assert result.seconds_to_target is None
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(result.history)


def test_holdout_carves_a_seeded_validation_set(tiny) -> None:
    fit, test = cnn_keras.holdout(tiny, 140, seed=3)
    assert (len(fit.train.x), len(fit.test.x)) == (500, 140)
    assert np.array_equal(test.test.x, tiny.test.x) and len(test.train.x) == 640
    again, _ = cnn_keras.holdout(tiny, 140, seed=3)
    assert np.array_equal(again.test.y, fit.test.y)
    # Every training image is in exactly one of the two parts.
    together = np.concatenate([fit.train.x, fit.test.x]).reshape(640, -1)
    assert len(np.unique(together, axis=0)) == len(np.unique(tiny.train.x.reshape(640, -1), axis=0))
    with pytest.raises(ValueError, match="between 1 and 639"):
        cnn_keras.holdout(tiny, 640, seed=0)


def test_train_cnn_trains_the_given_network_and_a_copy_of_the_given_augmentation(tiny) -> None:
    built = []

    def build():
        built.append(cnn_keras.build_cnn())
        return built[-1]

    augment = keras.Sequential([keras.layers.RandomZoom(0.1, fill_mode="constant")])
    model, result = cnn_keras.train_cnn(tiny, build=build, augment=augment, epochs=0.25, recipe="mine")
    assert len(built) == 1 and built[0] in model.layers and result.recipe == "mine"
    assert augment not in model.layers  # a copy: the student's own layer is never trained in place
    assert type(model.layers[0]).__name__ == "Sequential"
    assert [type(layer).__name__ for layer in model.layers[0].layers] == ["RandomZoom"]
    table = cnn_keras.validation_table([result])
    assert "val acc" in table and "mine" in table
