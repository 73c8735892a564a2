"""Checks for lab 06 (Keras basics), and the reference versions the lab runs on.

The lab calls the ``reference_*`` functions after each exercise, so the unsolved lab still runs
top to bottom; each check builds the right answer with them (or with `dlcourse.metrics` and
sklearn) and compares behaviour, not source code. Keras and TensorFlow are imported inside
the functions: importing this module stays light.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from dlcourse.check import Mismatch, expect, expect_array, expect_callable, expect_number, exercise

N_PIXELS, N_HIDDEN, N_CLASSES = 784, 128, 10
LEARNING_RATE = 1e-3


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


def reference_train_step(model: Any, optimizer: Any, loss_fn: Callable, x: Any, y: Any) -> Any:
    """One optimisation step with tf.GradientTape; returns the batch loss (a scalar tensor)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:  # the forward pass AND the loss must be recorded
        probabilities = model(x, training=True)
        loss = loss_fn(y, probabilities)
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return loss


# ------------------------------------------------------------------------------ 06.1

def _uint8_images(n: int = 6, seed: int = 6) -> np.ndarray:
    images = np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[1, 0, 0] = 0, 255  # both ends of the range appear
    return images


@exercise("06.1", "Flatten and scale the images", wrong_answers={
    "forgot to scale the pixels": "return images.reshape(len(images), -1).astype('float32')",
    "flattened everything into one vector": "return images.reshape(-1).astype('float32') / 255.0",
})
def check_prepare_images(prepare_images: Any) -> str:
    expect_callable(prepare_images, name="prepare_images")
    images = _uint8_images()
    original = images.copy()
    got = prepare_images(images)
    want = reference_prepare_images(original)
    expect_array(got, want, name="prepare_images(images)", rtol=1e-6, atol=1e-7,
                 hint="Reshape (n, 28, 28) to (n, 784) with images.reshape(len(images), -1), then divide by "
                      "255 so every pixel lies in [0, 1]: inputs in the hundreds saturate ReLU units and make "
                      "the first gradient steps huge.")
    expect(np.asarray(got).dtype == np.float32, f"`prepare_images` returns {np.asarray(got).dtype} values; Keras computes in float32.",
           "Add .astype('float32'): float64 takes twice the memory and is converted on every batch anyway.")
    expect(np.array_equal(images, original), "`prepare_images` changed the array it was given.",
           "Build a new array (reshape, astype and / all do) instead of writing into `images`.")
    return "(n, 28, 28) uint8 in 0..255 becomes (n, 784) float32 in [0, 1]."


# ------------------------------------------------------------------------------ 06.2 and 06.3

def _probe_inputs(n: int = 8, seed: int = 62) -> np.ndarray:
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


@exercise("06.2", "A dense network with keras.Sequential", wrong_answers={
    "no softmax on the output": """
return keras.Sequential([
    keras.Input(shape=(784,)),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.Dense(10),
])""",
    "softmax over the batch axis": """
return keras.Sequential([
    keras.Input(shape=(784,)),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.Dense(10),
    keras.layers.Softmax(axis=0),
])""",
    "64 hidden units": """
return keras.Sequential([
    keras.Input(shape=(784,)),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])""",
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
    "skipped the hidden layer": """
inputs = keras.Input(shape=(784,))
outputs = keras.layers.Dense(10, activation="softmax")(inputs)
return keras.Model(inputs, outputs)""",
    "ReLU on the output layer": """
inputs = keras.Input(shape=(784,))
hidden = keras.layers.Dense(128, activation="relu")(inputs)
outputs = keras.layers.Dense(10, activation="relu")(hidden)
return keras.Model(inputs, outputs)""",
})
def check_functional(build_functional: Any) -> str:
    import keras

    expect_callable(build_functional, name="build_functional")
    model = build_functional()
    expect(not isinstance(model, keras.Sequential), "`build_functional()` returned a keras.Sequential.",
           "This exercise is about the functional API: call each layer on the previous tensor and finish with "
           "keras.Model(inputs, outputs).")
    expect(type(model).__name__ == "Functional",
           f"`build_functional()` returned a {type(model).__name__}, not a functional model.",
           "Finish with keras.Model(inputs, outputs), where outputs comes from calling the layers on inputs.")
    _expect_same_network(model, "build_functional()")
    return (f"Functional and Sequential versions both have {model.count_params():,} parameters and, with the same "
            "weights, give identical outputs.")


# ------------------------------------------------------------------------------ 06.4

def _probabilities(n: int = 6, seed: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.random((n, N_CLASSES)).astype("float32") + 0.05
    return p / p.sum(axis=1, keepdims=True), rng.integers(0, N_CLASSES, n)


@exercise("06.4", "Compile for integer labels", wrong_answers={
    "CategoricalCrossentropy with integer labels": """
model.compile(optimizer=keras.optimizers.Adam(learning_rate),
              loss=keras.losses.CategoricalCrossentropy(),
              metrics=["accuracy"])
return model""",
    "from_logits=True on a softmax output": """
model.compile(optimizer=keras.optimizers.Adam(learning_rate),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
return model""",
    "no accuracy metric": """
model.compile(optimizer=keras.optimizers.Adam(learning_rate),
              loss=keras.losses.SparseCategoricalCrossentropy())
return model""",
})
def check_compile(compile_model: Any) -> str:
    import keras
    import tensorflow as tf

    expect_callable(compile_model, name="compile_model")
    model = reference_dense_model()
    compile_model(model, LEARNING_RATE)
    expect(getattr(model, "optimizer", None) is not None and getattr(model, "loss", None) is not None,
           "The model is not compiled: `compile_model` must call model.compile(...).")
    expect(isinstance(model.optimizer, keras.optimizers.Adam),
           f"The optimizer is {type(model.optimizer).__name__}, not Adam.", "optimizer=keras.optimizers.Adam(learning_rate)")
    expect_number(float(model.optimizer.learning_rate), LEARNING_RATE, name="the learning rate", rtol=1e-6,
                  hint="Pass the `learning_rate` argument to Adam.")
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
                       "from_logits=True applies a second softmax inside the loss (Keras warns when it can tell).")
    x = _probe_inputs(16)
    labels = np.arange(16) % N_CLASSES
    results = model.evaluate(x, labels, verbose=0, return_dict=True)
    expect("accuracy" in results, f"evaluate() reports {sorted(results)}, but no accuracy.",
           "Add metrics=['accuracy'] to compile: the loss alone is hard to interpret.")
    return f"Adam, sparse categorical cross-entropy ({want:.4f} on the check's batch, which is −mean log p[label]) and accuracy."


# ------------------------------------------------------------------------------ 06.5

def _batchnorm_model(seed: int = 65) -> Any:
    """A small model whose output depends on `training` (BatchNormalization), for the 06.5 check.

    Its weights come from a private NumPy generator, so the check never touches the lab's seeds.
    """
    import keras

    model = keras.Sequential([keras.Input(shape=(8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.Dense(3, activation="softmax")])
    rng = np.random.default_rng(seed)
    model.set_weights([np.asarray(w) if w.ndim == 1 and "batch" in v.path else rng.normal(0.0, 0.4, w.shape).astype("float32")
                       for w, v in zip(model.get_weights(), model.weights)])
    return model


def _twin(model: Any) -> Any:
    import keras

    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin


@exercise("06.5", "A training step with tf.GradientTape", wrong_answers={
    "loss computed outside the tape": """
probabilities = model(x, training=True)
loss = loss_fn(y, probabilities)
with tf.GradientTape() as tape:
    pass
gradients = tape.gradient(loss, model.trainable_variables)
optimizer.apply_gradients(zip(gradients, model.trainable_variables))
return loss""",
    "forgot training=True": """
with tf.GradientTape() as tape:
    probabilities = model(x)
    loss = loss_fn(y, probabilities)
gradients = tape.gradient(loss, model.trainable_variables)
optimizer.apply_gradients(zip(gradients, model.trainable_variables))
return loss""",
    "never applied the gradients": """
with tf.GradientTape() as tape:
    probabilities = model(x, training=True)
    loss = loss_fn(y, probabilities)
gradients = tape.gradient(loss, model.trainable_variables)
return loss""",
})
def check_train_step(train_step: Any) -> str:
    import keras

    expect_callable(train_step, name="train_step")
    rng = np.random.default_rng(65)
    x = rng.normal(size=(48, 8)).astype("float32")
    y = rng.integers(0, 3, 48)
    reference = _batchnorm_model()
    student = _twin(reference)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    ref_opt, student_opt = keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1)
    for step, start in enumerate(range(0, len(x), 16), start=1):
        xb, yb = x[start:start + 16], y[start:start + 16]
        want = float(reference_train_step(reference, ref_opt, loss_fn, xb, yb))
        before = student.get_weights()
        try:
            got = train_step(student, student_opt, loss_fn, xb, yb)
        except ValueError as exc:
            if "No gradients" not in str(exc):
                raise
            raise Mismatch("tape.gradient returned None for every weight, so the optimizer had nothing to apply.",
                           "The tape only records what runs inside `with tf.GradientTape() as tape:`. Put the "
                           "forward pass and the loss inside the block; call tape.gradient after it.") from None
        expect(got is not None, "`train_step` returned None; it should return the batch loss.", "End with `return loss`.")
        expect_number(got, want, name=f"the loss train_step returned at step {step}", rtol=1e-5, atol=1e-6,
                      hint="Call the model as model(x, training=True) inside the tape: BatchNormalization and "
                           "Dropout behave differently while training, and fit() passes training=True too.")
        unchanged = all(np.array_equal(a, b) for a, b, v in zip(student.get_weights(), before, student.weights)
                        if v.trainable)
        expect(not unchanged, f"After step {step} the trainable weights are unchanged: `train_step` computed "
                              "gradients but never applied them.",
               "Finish with optimizer.apply_gradients(zip(gradients, model.trainable_variables)).")
        gap = max(float(np.max(np.abs(a - b))) for a, b in zip(student.get_weights(), reference.get_weights()))
        expect(gap <= 1e-5, f"After step {step} your weights differ from the reference by up to {gap:.3g}.",
               "Use the optimizer you are given, once per step, on model.trainable_variables, and call the model "
               "with training=True (BatchNormalization updates its running statistics only then).")
    return "3 steps: the same losses and the same weights as the reference GradientTape step."


# ------------------------------------------------------------------------------ 06.6

def _labels_and_predictions() -> tuple[np.ndarray, np.ndarray]:
    """4 classes, every class present and predicted, and an asymmetric matrix (so a transpose shows)."""
    rng = np.random.default_rng(66)
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, (y_true + 1 + (rng.random(200) < 0.2)) % 4)
    return y_true, y_pred


@exercise("06.6", "Confusion matrix, precision, recall and F1", wrong_answers={
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
    expect_array(result[0], precision, name="precision", rtol=1e-6,
                 hint="Precision of class k: of everything PREDICTED as k (column k), the share that really is k: "
                      "diag / matrix.sum(axis=0).")
    expect_array(result[1], recall, name="recall", rtol=1e-6,
                 hint="Recall of class k: of everything that really IS k (row k), the share the model found: "
                      "diag / matrix.sum(axis=1).")
    expect_array(result[2], f1, name="f1", rtol=1e-6,
                 hint="F1 is the harmonic mean 2PR / (P + R): it is low when either is low, unlike (P + R) / 2.")
    return "Your confusion matrix and per-class precision, recall and F1 match sklearn.metrics."
