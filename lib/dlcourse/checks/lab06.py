"""Checks for lab 06 (Keras basics), and the reference versions each check compares with.

The lab trains, plots and scores with the student's own functions once their checks pass; until
then a cell says so (`dlcourse.student.ready`) and uses the ``reference_*`` functions here, so the
unsolved lab still runs top to bottom. Each check builds the right answer with them (or with
Keras, `dlcourse.metrics` and sklearn), calls the student's code at values that are nobody's
default, and compares behaviour, not source code or class names. Keras and TensorFlow are
imported inside the functions: importing this module stays light.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from dlcourse.batchnorm import batchnorm_forward as reference_batchnorm
from dlcourse.check import Mismatch, expect, expect_array, expect_callable, expect_number, exercise
from dlcourse.checks.lab06_training import F32, check_batchnorm, check_train_step, reference_train_step

N_PIXELS, N_HIDDEN, N_CLASSES = 784, 128, 10
LEARNING_RATE = 1e-3  # the lab's rate, which is also Adam's default
CHECK_LEARNING_RATE = 3.7e-3  # the 06.4 check's rate: not a default, so a rate that is not passed on shows

__all__ = ["reference_prepare_images", "reference_dense_model", "reference_compile", "reference_batchnorm",
           "reference_train_step", "check_prepare_images", "check_sequential", "check_functional", "check_compile",
           "check_batchnorm", "check_train_step", "check_classification_metrics"]


# ------------------------------------------------------------------------------ references

def reference_prepare_images(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) uint8 grey levels -> (n, 784) float32 in [0, 1]."""
    images = np.asarray(images)
    return images.reshape(len(images), -1).astype("float32") / 255.0


def reference_dense_model() -> Any:
    """784 -> 128 ReLU -> 10 softmax, as keras.Sequential."""
    import keras

    return keras.Sequential([
        keras.Input(shape=(N_PIXELS,)),
        keras.layers.Dense(N_HIDDEN, activation="relu", name="hidden"),
        keras.layers.Dense(N_CLASSES, activation="softmax", name="output"),
    ], name="dense_mnist")


def reference_compile(model: Any, learning_rate: float = LEARNING_RATE) -> Any:
    """Adam, sparse categorical cross-entropy on probabilities, accuracy; returns the model."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])
    return model


# ------------------------------------------------------------------------------ 06.1

def _uint8_images(n: int, seed: int, brightest: int = 255) -> np.ndarray:
    images = np.random.default_rng(seed).integers(0, brightest + 1, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[-1, 0, 0] = 0, brightest  # both ends of the range appear
    return images


@exercise("06.1", "Flatten and scale the images", wrong_answers={
    "forgot to scale the pixels": "return images.reshape(len(images), -1).astype('float32')",
    "flattened everything into one vector": "return images.reshape(-1).astype('float32') / 255.0",
    "left the values as float64": "return images.reshape(len(images), -1) / 255.0",
    "divided by 256": "return images.reshape(len(images), -1).astype('float32') / 256.0",
    "divided by the batch's brightest pixel": "return images.reshape(len(images), -1).astype('float32') / images.max()",
    "reshape(784, -1), which scrambles the images": "return images.reshape(784, -1).astype('float32') / 255.0",
}, accepted_answers={
    "reshape(-1, 784)": "return images.reshape(-1, 784).astype('float32') / 255.0",
    "scale first, then cast and reshape": "return (images / 255.0).astype(np.float32).reshape(len(images), 28 * 28)",
    "divide by np.float32(255)": "return images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255)",
})
def check_prepare_images(prepare_images: Any) -> str:
    expect_callable(prepare_images, name="prepare_images")
    for images in (_uint8_images(6, seed=6), _uint8_images(3, seed=61, brightest=200)):  # a dark batch too
        original = images.copy()
        got = prepare_images(images)
        want = reference_prepare_images(original)
        got_array = np.asarray(got)
        if got_array.shape == want.shape and np.isclose(got_array.max(), 1.0) and want.max() < 1.0:
            raise Mismatch("On a batch whose brightest pixel is 200, your values reach 1.0: you divide by the batch's "
                           "largest value, so the same grey level means different inputs in different batches.",
                           "Divide by 255, the largest grey level a uint8 pixel can hold, for every batch.")
        expect_array(got, want, name="prepare_images(images)", rtol=1e-6, atol=1e-7,
                     hint="Reshape (n, 28, 28) to (n, 784) with images.reshape(len(images), -1), then divide by "
                          "255 so every pixel lies in [0, 1]: inputs in the hundreds saturate the softmax and make "
                          "the first gradient steps huge.")
        expect(got_array.dtype == np.float32, f"`prepare_images` returns {got_array.dtype} values; Keras computes in float32.",
               "Add .astype('float32'): float64 takes twice the memory and is converted on every batch anyway.")
        expect(np.array_equal(images, original), "`prepare_images` changed the array it was given.",
               "Build a new array (reshape, astype and / all do) instead of writing into `images`.")
    return "(n, 28, 28) uint8 in 0..255 becomes (n, 784) float32 in [0, 1], for 6 images and for 3."


# ------------------------------------------------------------------------------ 06.2 and 06.3

def _probe_inputs(n: int = 9, seed: int = 62) -> np.ndarray:
    return np.random.default_rng(seed).random((n, N_PIXELS)).astype("float32")


def _expect_same_network(model: Any, name: str) -> None:
    """`model` computes exactly what the reference does once it holds the reference's weights."""
    import keras

    expect(isinstance(model, keras.Model), f"`{name}` should return a Keras model, but it returned {type(model).__name__}.",
           "Return the model object itself.")
    reference = reference_dense_model()
    count, want = model.count_params(), reference.count_params()
    expect(count == want, f"Your model has {count:,} parameters; 784 -> 128 -> 10 has {want:,}.",
           "Two Dense layers: 128 ReLU units, then 10 output units, one per digit (784·128 + 128 + 128·10 + 10).")
    shapes = [w.shape for w in model.get_weights()]
    expect(shapes == [w.shape for w in reference.get_weights()],
           f"Your model's weights have shapes {shapes}, not [(784, 128), (128,), (128, 10), (10,)].",
           "Stack Dense(128, activation='relu') and then Dense(10, ...), in that order.")
    weights = [np.random.default_rng(k).normal(0.0, 0.05, s).astype("float32") for k, s in enumerate(shapes)]
    model.set_weights(weights)
    reference.set_weights(weights)
    x = _probe_inputs()
    got, expected = np.asarray(model(x)), np.asarray(reference(x))
    if got.shape == expected.shape and not np.allclose(got, expected, rtol=1e-5, atol=1e-6):
        if np.allclose(got.sum(axis=0), 1.0, atol=1e-4):
            raise Mismatch("Each column of your outputs sums to 1, not each row: the softmax runs over the batch axis.",
                           "Softmax must normalise over the 10 classes of each image, the last axis (axis=-1): "
                           "use Dense(10, activation='softmax').")
        if not np.allclose(got.sum(axis=1), 1.0, atol=1e-4):
            raise Mismatch("Your model's outputs are not probabilities: a row does not sum to 1.",
                           "End with Dense(10, activation='softmax'): the loss this lab uses, "
                           "SparseCategoricalCrossentropy(), expects probabilities.")
        raise Mismatch("With the same weights your model computes different outputs from 784 -> 128 ReLU -> 10 softmax.",
                       "Check the hidden layer's activation: it should be 'relu'.")
    expect_array(got, expected, name=f"{name}'s outputs", rtol=1e-5, atol=1e-6)


_SEQUENTIAL = """
return keras.Sequential([
    keras.Input(shape=(784,)),
    {}
])"""
_FUNCTIONAL = """
inputs = keras.Input(shape=(784,))
{}
return keras.Model(inputs, outputs)"""


@exercise("06.2", "A dense network with keras.Sequential", wrong_answers={
    "no softmax on the output": _SEQUENTIAL.format("keras.layers.Dense(128, activation='relu'), keras.layers.Dense(10),"),
    "softmax over the batch axis": _SEQUENTIAL.format(
        "keras.layers.Dense(128, activation='relu'), keras.layers.Dense(10), keras.layers.Softmax(axis=0),"),
    "64 hidden units": _SEQUENTIAL.format(
        "keras.layers.Dense(64, activation='relu'), keras.layers.Dense(10, activation='softmax'),"),
    "sigmoid hidden units": _SEQUENTIAL.format(
        "keras.layers.Dense(128, activation='sigmoid'), keras.layers.Dense(10, activation='softmax'),"),
    "sigmoid on the output": _SEQUENTIAL.format(
        "keras.layers.Dense(128, activation='relu'), keras.layers.Dense(10, activation='sigmoid'),"),
}, accepted_answers={
    "a separate Softmax layer": _SEQUENTIAL.format(
        "keras.layers.Dense(128, activation='relu'), keras.layers.Dense(10), keras.layers.Softmax(),"),
    "ReLU and Activation layers": _SEQUENTIAL.format(
        "keras.layers.Dense(128), keras.layers.ReLU(), keras.layers.Dense(10), keras.layers.Activation('softmax'),"),
})
def check_sequential(build_sequential: Any) -> str:
    import keras

    expect_callable(build_sequential, name="build_sequential")
    model = build_sequential()
    expect(isinstance(model, keras.Sequential), f"`build_sequential()` returned {type(model).__name__}, not a keras.Sequential.",
           "Return keras.Sequential([keras.Input(shape=(784,)), ...layers...]).")
    _expect_same_network(model, "build_sequential()")
    return f"784 -> 128 ReLU -> 10 softmax: {model.count_params():,} parameters, outputs identical to the reference."


@exercise("06.3", "The same network with the functional API", wrong_answers={
    "skipped the hidden layer": _FUNCTIONAL.format("outputs = keras.layers.Dense(10, activation='softmax')(inputs)"),
    "ReLU on the output layer": _FUNCTIONAL.format(
        "hidden = keras.layers.Dense(128, activation='relu')(inputs)\n"
        "outputs = keras.layers.Dense(10, activation='relu')(hidden)"),
    "a Sequential model again": _SEQUENTIAL.format(
        "keras.layers.Dense(128, activation='relu'), keras.layers.Dense(10, activation='softmax'),"),
}, accepted_answers={
    "keras.Model(inputs=..., outputs=...)": """
inputs = keras.Input(shape=(784,))
hidden = keras.layers.Dense(128, activation="relu")(inputs)
return keras.Model(inputs=inputs, outputs=keras.layers.Dense(10, activation="softmax")(hidden))""",
    "a separate Softmax layer": _FUNCTIONAL.format(
        "hidden = keras.layers.Dense(128, activation='relu')(inputs)\n"
        "outputs = keras.layers.Softmax()(keras.layers.Dense(10)(hidden))"),
})
def check_functional(build_functional: Any) -> str:
    import keras

    expect_callable(build_functional, name="build_functional")
    model = build_functional()
    expect(not isinstance(model, keras.Sequential), "`build_functional()` returned a keras.Sequential.",
           "This exercise is about the functional API: call each layer on the previous tensor and finish with "
           "keras.Model(inputs, outputs).")
    graph_inputs = getattr(model, "inputs", None) if isinstance(model, keras.Model) else None
    expect(isinstance(graph_inputs, list) and len(graph_inputs) > 0,
           f"`build_functional()` returned {type(model).__name__}, which is not a model built from an input tensor.",
           "Start from inputs = keras.Input(shape=(784,)), call the layers on it, and finish with "
           "keras.Model(inputs, outputs).")
    _expect_same_network(model, "build_functional()")
    return (f"Functional and Sequential versions both have {model.count_params():,} parameters and, with the same "
            "weights, give identical outputs.")


# ------------------------------------------------------------------------------ 06.4

def _probabilities(n: int = 7, seed: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.random((n, N_CLASSES)).astype("float32") + 0.05
    return p / p.sum(axis=1, keepdims=True), rng.integers(0, N_CLASSES, n)


def _steps(optimizer: Any) -> np.ndarray:
    """Where `optimizer` moves a scratch weight vector in three steps with fixed, uneven gradients."""
    import keras

    weight = keras.Variable(np.array([1.0, -2.0, 0.5], dtype="float32"))
    for gradient in ([0.3, -2.0, 5.0], [0.1, 1.0, -4.0], [-0.2, 0.5, 3.0]):
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(np.array(gradient, dtype="float32")), weight)])
    return np.asarray(weight)


def _expect_adam(optimizer: Any, learning_rate: float) -> None:
    """`optimizer` takes Adam's steps at `learning_rate` (what it does, not what its class is called)."""
    import keras

    try:
        rate = float(np.asarray(optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        raise Mismatch("The model's optimizer has no numeric learning rate.",
                       "optimizer=keras.optimizers.Adam(learning_rate)") from None
    expect(np.isclose(rate, learning_rate, rtol=1e-6),
           f"The optimizer's learning rate is {rate:g}, but the check called compile_model(model, "
           f"learning_rate={learning_rate:g}).",
           "Pass the argument on: keras.optimizers.Adam(learning_rate). optimizer='adam' and Adam() use Adam's "
           "default, 0.001, whatever learning_rate says.")
    got, want = _steps(optimizer), _steps(keras.optimizers.Adam(learning_rate))
    expect(np.allclose(got, want, **F32),
           f"Your optimizer moves the weights differently from Adam: after three steps a test weight vector is "
           f"{np.round(got, 4).tolist()} instead of {np.round(want, 4).tolist()}.",
           "Use keras.optimizers.Adam(learning_rate): it scales each step by running averages of the gradient and "
           "its square, where plain SGD steps by learning_rate × gradient.")


_COMPILE = """
model.compile(optimizer={optimizer}, loss={loss}, metrics={metrics})
return model"""
_ADAM, _SPARSE = "keras.optimizers.Adam(learning_rate)", "keras.losses.SparseCategoricalCrossentropy()"


def _compile(optimizer: str = _ADAM, loss: str = _SPARSE, metrics: str = '["accuracy"]') -> str:
    """The code of a compile_model answer that differs from the solution where it says so."""
    return _COMPILE.format(optimizer=optimizer, loss=loss, metrics=metrics)


@exercise("06.4", "Compile for integer labels", wrong_answers={
    "CategoricalCrossentropy with integer labels": _compile(loss="keras.losses.CategoricalCrossentropy()"),
    "from_logits=True on a softmax output": _compile(loss="keras.losses.SparseCategoricalCrossentropy(from_logits=True)"),
    "no accuracy metric": _compile(metrics="None"),
    "optimizer='adam', which ignores learning_rate": _compile(optimizer='"adam"'),
    "SGD instead of Adam": _compile(optimizer="keras.optimizers.SGD(learning_rate)"),
    "categorical_accuracy with integer labels": _compile(metrics='["categorical_accuracy"]'),
    "compiled, but did not return the model": _compile().replace("return model", ""),
}, accepted_answers={
    "metrics=[keras.metrics.SparseCategoricalAccuracy()]": _compile(metrics="[keras.metrics.SparseCategoricalAccuracy()]"),
    "metrics=['sparse_categorical_accuracy']": _compile(metrics='["sparse_categorical_accuracy"]'),
    "the loss by its name, the rate by keyword": _compile(optimizer="keras.optimizers.Adam(learning_rate=learning_rate)",
                                                          loss='"sparse_categorical_crossentropy"'),
})
def check_compile(compile_model: Any) -> str:
    import tensorflow as tf

    expect_callable(compile_model, name="compile_model")
    model = reference_dense_model()
    returned = compile_model(model, CHECK_LEARNING_RATE)
    expect(getattr(model, "compiled", False) and getattr(model, "loss", None) is not None,
           "The model is not compiled: `compile_model` must call model.compile(...).")
    expect(returned is model, f"`compile_model` returned {'None' if returned is None else type(returned).__name__}, "
                              "not the model it compiled.", "End with `return model`.")
    _expect_adam(model.optimizer, CHECK_LEARNING_RATE)
    p, y = _probabilities()
    want = float(-np.log(p[np.arange(len(y)), y]).mean())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = float(model.compute_loss(x=None, y=y, y_pred=tf.constant(p)))
    except Exception as exc:  # e.g. a loss that wants one-hot targets
        raise Mismatch(f"Your loss cannot take integer labels of shape {y.shape} ({type(exc).__name__}: {str(exc)[:120]}).",
                       "MNIST labels are integers 0-9, one per image. CategoricalCrossentropy expects one-hot rows "
                       "of length 10; SparseCategoricalCrossentropy takes the integers as they are.") from None
    expect_number(got, want, name="your loss on a batch of probabilities", rtol=1e-4,
                  hint="The model ends in softmax, so it outputs probabilities: keep from_logits=False (the default). "
                       "from_logits=True tells the loss to apply a softmax of its own: on these probabilities that is a "
                       "second softmax (inside fit, Keras warns when it can trace the output to its softmax, and "
                       "quietly uses the logits instead).")
    x = _probe_inputs(13)
    predicted = np.asarray(model(x)).argmax(axis=1)
    labels = np.where(np.arange(13) < 5, predicted, (predicted + 1) % N_CLASSES)  # 5 of 13 right
    results = model.evaluate(x, labels, verbose=0, return_dict=True)
    reported = {name: float(value) for name, value in results.items() if name != "loss"}
    expect(reported, "evaluate() reports only the loss: the model has no metric.",
           "Add metrics=['accuracy'] to compile: the loss alone is hard to interpret.")
    expect(any(np.isclose(value, 5 / 13, atol=1e-6) for value in reported.values()),
           f"On 13 images of which the model gets 5 right (accuracy {5 / 13:.4f}), evaluate() reports "
           + ", ".join(f"{name} = {value:.4f}" for name, value in reported.items()) + ".",
           "With integer labels use metrics=['accuracy'] (Keras picks the sparse version) or "
           "keras.metrics.SparseCategoricalAccuracy(); 'categorical_accuracy' expects one-hot labels.")
    return (f"Adam at the learning rate you are given, sparse categorical cross-entropy ({want:.4f} on the check's "
            "batch, which is −mean log p[label]) and an accuracy that counts correct predictions.")


# ------------------------------------------------------------------------------ 06.7

def _labels_and_predictions() -> tuple[np.ndarray, np.ndarray]:
    """4 classes, every class present and predicted, and an asymmetric matrix (so a transpose shows)."""
    rng = np.random.default_rng(66)
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, (y_true + 1 + (rng.random(200) < 0.2)) % 4)
    return y_true, y_pred


@exercise("06.7", "Confusion matrix, precision, recall and F1", wrong_answers={
    "rows and columns swapped": ["""
matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
np.add.at(matrix, (y_pred, y_true), 1)
return matrix""", None],
    "precision and recall swapped (divided by the wrong axis)": [None, """
true_positives = np.diag(matrix).astype(float)
precision = true_positives / matrix.sum(axis=1)
recall = true_positives / matrix.sum(axis=0)
f1 = 2 * precision * recall / (precision + recall)
return precision, recall, f1"""],
    "F1 as the plain mean": [None, """
true_positives = np.diag(matrix).astype(float)
precision = true_positives / matrix.sum(axis=0)
recall = true_positives / matrix.sum(axis=1)
f1 = (precision + recall) / 2
return precision, recall, f1"""],
    "matrix[y_true, y_pred] += 1, which counts a repeated pair once": ["""
matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
matrix[y_true, y_pred] += 1
return matrix""", None],
}, accepted_answers={
    "np.bincount over flat indices": ["""
return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)""", None],
    "a loop, and scores in float32": ["""
matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
for true_class, predicted_class in zip(y_true, y_pred):
    matrix[true_class, predicted_class] += 1
return matrix""", """
matrix = np.asarray(matrix, dtype=np.float32)
true_positives = np.diag(matrix)
precision, recall = true_positives / matrix.sum(axis=0), true_positives / matrix.sum(axis=1)
return precision, recall, 2 * precision * recall / (precision + recall)"""],
})
def check_classification_metrics(confusion_matrix: Any, precision_recall_f1: Any) -> str:
    from sklearn import metrics as sk

    from dlcourse import metrics as ref

    expect_callable(confusion_matrix, name="confusion_matrix")
    expect_callable(precision_recall_f1, name="precision_recall_f1")
    y_true, y_pred = _labels_and_predictions()
    want = sk.confusion_matrix(y_true, y_pred, labels=range(4))
    expect_array(confusion_matrix(y_true.copy(), y_pred.copy(), 4), want, name="confusion_matrix(y_true, y_pred, 4)",
                 rtol=0, atol=0, hint="Row i is the true class and column j the predicted class (sklearn's convention): "
                                      "matrix[y_true[n], y_pred[n]] += 1 for every example n.")
    expect_array(confusion_matrix(np.array([0, 1, 1]), np.array([1, 1, 0]), 3), ref.confusion_matrix([0, 1, 1], [1, 1, 0], 3),
                 name="confusion_matrix([0, 1, 1], [1, 1, 0], 3)", rtol=0, atol=0,
                 hint="The matrix is n_classes × n_classes even when a class never occurs.")
    result = precision_recall_f1(want.copy())
    expect(isinstance(result, (tuple, list)) and len(result) == 3,
           "`precision_recall_f1` should return three arrays: (precision, recall, f1).", "End with `return precision, recall, f1`.")
    precision, recall, f1, _ = sk.precision_recall_fscore_support(y_true, y_pred, labels=range(4), zero_division=0)
    expect_array(result[0], precision, name="precision", rtol=1e-5,
                 hint="Precision of class k: of everything PREDICTED as k (column k), the share that really is k: "
                      "diag / matrix.sum(axis=0).")
    expect_array(result[1], recall, name="recall", rtol=1e-5,
                 hint="Recall of class k: of everything that really IS k (row k), the share the model found: "
                      "diag / matrix.sum(axis=1).")
    expect_array(result[2], f1, name="f1", rtol=1e-5,
                 hint="F1 is the harmonic mean 2PR / (P + R): it is low when either is low, unlike (P + R) / 2.")
    return "Your confusion matrix and per-class precision, recall and F1 match sklearn.metrics."
