"""The lab 07 CNN in Keras 3: the shared architecture, its tuned training recipe, and the
keras.io "Simple MNIST convnet" as the reference it is measured against.

Labs 07 and 08 and ``benchmarks/mnist.py`` import this module; ``import dlcourse`` does not
(Keras takes seconds to import). Both trainers return ``(model, TrainResult)``: the training
seconds exclude data preparation and the test-set checkpoints, which run with the
`Stopwatch` paused.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # oneDNN's CPU kernels: see dlcourse.env.tensorflow_onednn

import keras  # noqa: E402  (after the environment defaults above)

from dlcourse.data import ImageData, Split  # noqa: E402
from dlcourse.env import seed_everything  # noqa: E402
from dlcourse.training import Stopwatch, TrainResult  # noqa: E402

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # pixel mean and std of the MNIST training set (in [0, 1])

# Every tuned knob of the lab 07 recipe, in one place (the benchmark prints it).
RECIPE: dict[str, Any] = {
    "batch_size": 64,
    "peak_lr": 0.05,  # SGD with Nesterov momentum; BatchNorm is what makes a rate this high stable
    "epochs": 1.5,
    "warmup_fraction": 0.25,  # linear warm-up over this share of the steps, then cosine decay to 0
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "steps_per_execution": 20,  # run 20 batches per call into TensorFlow: less Python overhead per step
    "checkpoints_per_epoch": 4,  # test-set evaluations per epoch, for "seconds to 99%"
}


def framework_name() -> str:
    """E.g. 'Keras 3.15.1 (tensorflow)'."""
    return f"Keras {keras.__version__} ({keras.backend.backend()})"


def augmentation_layers(seed: int | None = None) -> list[keras.layers.Layer]:
    """Small random rotations, shifts and zooms, active only in training (model.fit)."""
    return [
        keras.layers.RandomRotation(0.03, fill_mode="constant", seed=seed),  # 0.03 of a turn: about ±11°
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed),  # up to ±2.8 pixels
        keras.layers.RandomZoom(0.1, fill_mode="constant", seed=seed),
    ]


def build_cnn(*, augment: bool = False, dropout: float = 0.25, synchronized_bn: bool = False) -> keras.Model:
    """The shared lab 07/08 CNN: two conv-BN-ReLU-pool blocks, then Dense 128 and 10 logits.

    Input (28, 28, 1) floats in [0, 1]; output logits (use a loss with ``from_logits=True``).
    206,970 trainable parameters (plus 96 BatchNorm moving statistics, which are not trained).
    ``synchronized_bn`` makes BatchNorm use the statistics of the whole global batch under a
    tf.distribute strategy (lab 13); on one device it changes nothing.
    """
    layers = keras.layers
    model_layers: list[layers.Layer] = [keras.Input(shape=(28, 28, 1))]
    if augment:
        model_layers += augmentation_layers()
    model_layers += [
        layers.Rescaling(1 / MNIST_STD, offset=-MNIST_MEAN / MNIST_STD, name="normalise"),
        layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1"),  # BN's beta replaces the bias
        layers.BatchNormalization(synchronized=synchronized_bn, name="bn1"),
        layers.ReLU(name="relu1"),
        layers.MaxPooling2D(2, name="pool1"),
        layers.Conv2D(32, 3, padding="same", use_bias=False, name="conv2"),
        layers.BatchNormalization(synchronized=synchronized_bn, name="bn2"),
        layers.ReLU(name="relu2"),
        layers.MaxPooling2D(2, name="pool2"),
        layers.Flatten(name="flatten"),
        layers.Dense(128, activation="relu", name="dense"),
        layers.Dropout(dropout, name="dropout"),
        layers.Dense(10, name="logits"),
    ]
    return keras.Sequential(model_layers, name="lab07_cnn_augmented" if augment else "lab07_cnn")


def trainable_params(model: keras.Model) -> int:
    """Trainable parameters only (``count_params()`` also counts BatchNorm's moving statistics)."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def warmup_cosine_schedule(total_steps: int, peak_lr: float, warmup_fraction: float):
    """Linear warm-up from 0 to ``peak_lr``, then cosine decay to 0 at ``total_steps``."""
    warmup = int(round(warmup_fraction * total_steps))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=max(total_steps - warmup, 1), alpha=0.0,
        warmup_target=peak_lr, warmup_steps=warmup)


class TestCheckpoints(keras.callbacks.Callback):
    """Evaluates the test set at the end of every (virtual) epoch with the stopwatch paused.

    Keeps the test loss and accuracy per checkpoint and the training seconds at which the test
    accuracy first reached ``target``.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, watch: Stopwatch, target: float) -> None:
        super().__init__()
        self.x, self.y, self.watch, self.target = x, y, watch, target
        self.loss: list[float] = []
        self.accuracy: list[float] = []
        self.seconds: list[float] = []
        self.seconds_to_target: float | None = None

    def on_train_begin(self, logs=None) -> None:
        self.watch.start()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        seconds = self.watch.stop()  # logs hold Python floats here, so the steps have finished
        loss, accuracy = self.model.evaluate(self.x, self.y, batch_size=1000, verbose=0)
        self.loss.append(float(loss))
        self.accuracy.append(float(accuracy))
        self.seconds.append(seconds)
        if self.seconds_to_target is None and accuracy >= self.target:
            self.seconds_to_target = seconds
        self.watch.start()

    def on_train_end(self, logs=None) -> None:
        self.watch.stop()


def holdout(data: ImageData, n: int, seed: int) -> tuple[ImageData, ImageData]:
    """Carve a seeded validation set of ``n`` images out of ``data.train``.

    Returns ``(fit_data, test_data)``: ``fit_data`` trains on the other training images and uses the ``n``
    held-out ones in place of a test set (its checkpoints, curves and early choices), and ``test_data`` is
    ``data`` unchanged, for the one final evaluation on the test set.
    """
    (x, y), test = data
    if not 0 < n < len(x):
        raise ValueError(f"The validation set needs between 1 and {len(x) - 1} of the {len(x)} training images, not {n}.")
    order = np.random.default_rng(seed).permutation(len(x))
    val, fit = order[:n], order[n:]
    return ImageData(train=Split(x[fit], y[fit]), test=Split(x[val], y[val])), ImageData(Split(x, y), Split(*test))


def _copy_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A fresh layer computing the same thing (for a student's augmentation: never train theirs in place)."""
    return layer.__class__.from_config(layer.get_config())


def _batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """An endless stream of shuffled mini-batches (a new permutation every epoch)."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return data.repeat().batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def train_cnn(data: ImageData, *, epochs: float | None = None, batch_size: int | None = None,
              peak_lr: float | None = None, seed: int = 0, augment: bool | keras.layers.Layer = False,
              target: float = 0.99, verbose: int = 0, strategy: Any = None, synchronized_bn: bool = False,
              build: Callable[[], keras.Model] | None = None, recipe: str | None = None
              ) -> tuple[keras.Model, TrainResult]:
    """Train a CNN with the lab 07 recipe (None means the `RECIPE` value).

    ``data`` comes from ``load_mnist(scale=True, channels="last")``, or from `holdout` so that the
    checkpoints evaluate a validation set instead of the test set. Epochs may be fractional:
    training runs in checkpoints of 1/``checkpoints_per_epoch`` epoch, each followed by an
    evaluation of ``data.test`` that the training time does not include. ``build`` makes the network
    (default `build_cnn`); ``augment`` is True for `augmentation_layers`, or a Keras layer whose copy is
    put in front of the network. ``recipe`` names the row. ``strategy`` (a tf.distribute strategy) builds
    and compiles the model in its scope, so ``fit`` splits every global batch across its replicas.
    """
    epochs = RECIPE["epochs"] if epochs is None else epochs
    batch_size = RECIPE["batch_size"] if batch_size is None else batch_size
    peak_lr = RECIPE["peak_lr"] if peak_lr is None else peak_lr
    (x_train, y_train), (x_test, y_test) = data
    _check_images(x_train, "data.train.x")

    seed_everything(seed)
    steps_per_epoch = len(x_train) // batch_size
    n_checkpoints = max(1, round(epochs * RECIPE["checkpoints_per_epoch"]))
    steps_per_checkpoint = max(1, round(epochs * steps_per_epoch / n_checkpoints))
    # Under a tf.distribute strategy Keras 3's multi-step loop fails ("You must feed a value for
    # placeholder tensor"), so distributed runs execute one step per call.
    spe = 1 if strategy is not None else min(RECIPE["steps_per_execution"], steps_per_checkpoint)
    steps_per_checkpoint = max(spe, round(steps_per_checkpoint / spe) * spe)  # whole executions per checkpoint
    total_steps = n_checkpoints * steps_per_checkpoint

    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = _model(build, augment, synchronized_bn)
        optimizer = keras.optimizers.SGD(
            learning_rate=warmup_cosine_schedule(total_steps, peak_lr, RECIPE["warmup_fraction"]),
            momentum=RECIPE["momentum"], nesterov=True, weight_decay=RECIPE["weight_decay"])
        # One-hot targets because Keras' sparse loss has no label smoothing.
        loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=RECIPE["label_smoothing"])
        model.compile(optimizer=optimizer, loss=loss, metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
                      steps_per_execution=spe)
    y_train_1h = keras.utils.to_categorical(y_train, 10).astype(np.float32)
    y_test_1h = keras.utils.to_categorical(y_test, 10).astype(np.float32)

    watch = Stopwatch()
    checkpoints = TestCheckpoints(x_test, y_test_1h, watch, target)
    with _quiet_retracing():
        history = model.fit(_batches(x_train, y_train_1h, batch_size, seed), epochs=n_checkpoints,
                            steps_per_epoch=steps_per_checkpoint, callbacks=[checkpoints], shuffle=False,
                            verbose=verbose)
    curves = {"loss": history.history["loss"], "accuracy": history.history["accuracy"],
              "val_loss": checkpoints.loss, "val_accuracy": checkpoints.accuracy}
    result = TrainResult(
        framework=framework_name(),
        recipe=recipe or "lab 07 CNN" + (" + augmentation" if augment is not False else ""),
        params=trainable_params(model), epochs=round(total_steps * batch_size / len(x_train), 2),
        train_seconds=watch.seconds, test_accuracy=checkpoints.accuracy[-1],
        seconds_to_target=checkpoints.seconds_to_target, target=target, history=curves, device=_device())
    return model, result


@contextlib.contextmanager
def _quiet_retracing():
    """Hide TensorFlow's "triggered tf.function retracing" warning: each new model traces its own step
    function once, as it should, and a lab that trains several models would print it every time."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def _model(build: Callable[[], keras.Model] | None, augment: bool | keras.layers.Layer,
           synchronized_bn: bool) -> keras.Model:
    """The network to train: `build_cnn` or ``build()``, with the augmentation in front of it."""
    if build is None and not isinstance(augment, keras.layers.Layer):
        return build_cnn(augment=bool(augment), synchronized_bn=synchronized_bn)
    network = build_cnn(synchronized_bn=synchronized_bn) if build is None else build()
    if augment is False:
        return network
    front = _copy_layer(augment) if isinstance(augment, keras.layers.Layer) else keras.Sequential(augmentation_layers())
    return keras.Sequential([keras.Input(shape=(28, 28, 1)), front, network], name=f"{network.name}_augmented")


def keras_io_convnet() -> keras.Model:
    """The keras.io "Simple MNIST convnet" (F. Chollet), exactly as published: 34,826 parameters."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ], name="keras_io_convnet")


def train_keras_io_reference(data: ImageData, *, epochs: int = 15, seed: int = 0, target: float = 0.99,
                             verbose: int = 0) -> tuple[keras.Model, TrainResult]:
    """Train `keras_io_convnet` as published: Adam, batch 128, one-hot labels, validation_split=0.1.

    The test set is evaluated after every epoch (stopwatch paused) for the seconds to ``target``.
    """
    (x_train, y_train), (x_test, y_test) = data
    _check_images(x_train, "data.train.x")
    seed_everything(seed)
    model = keras_io_convnet()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    y_train_1h = keras.utils.to_categorical(y_train, 10)
    y_test_1h = keras.utils.to_categorical(y_test, 10)
    watch = Stopwatch()
    checkpoints = TestCheckpoints(x_test, y_test_1h, watch, target)
    history = model.fit(x_train, y_train_1h, batch_size=128, epochs=epochs, validation_split=0.1,
                        callbacks=[checkpoints], verbose=verbose)
    # fit's own validation (on the held-out 10%) runs inside the stopwatch: part of the published recipe.
    result = TrainResult(
        framework=framework_name(), recipe="keras.io convnet", params=trainable_params(model), epochs=epochs,
        train_seconds=watch.seconds, test_accuracy=checkpoints.accuracy[-1],
        seconds_to_target=checkpoints.seconds_to_target, target=target,
        history={k: list(v) for k, v in history.history.items()}, device=_device())
    return model, result


def _check_images(x: np.ndarray, name: str) -> None:
    if x.ndim != 4 or x.shape[1:] != (28, 28, 1) or x.dtype != np.float32 or x.max() > 1.0:
        raise ValueError(f"{name} must be float32 images of shape (n, 28, 28, 1) in [0, 1], got {x.dtype} "
                         f"{x.shape}; load it with load_mnist(scale=True, channels='last').")


def _device() -> str:
    import tensorflow as tf

    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def validation_table(results: list[TrainResult]) -> str:
    """Runs trained on `holdout` data, side by side: their checkpoints measured the validation set."""
    from dlcourse.tables import format_table

    header = ["recipe", "epochs", "train s", "train acc (running)", "val acc", "s to 99.0% val"]
    rows = [[r.recipe, f"{r.epochs:g}", f"{r.train_seconds:.1f}", f"{r.history['accuracy'][-1]:.4f}",
             f"{r.test_accuracy:.4f}", "not reached" if r.seconds_to_target is None else f"{r.seconds_to_target:.1f}"]
            for r in results]
    return format_table(header, rows)
