"""The lab 06 checks, called directly: they accept right answers, explain wrong ones, and the
reference GradientTape step reproduces one epoch of Keras `fit` to 1e-5; the lab's fit recipe
trains what the student's functions build, so a wrong answer changes the headline accuracy."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from dlcourse.checks.lab06 import (  # noqa: E402
    check_batchnorm, check_classification_metrics, check_compile, check_functional, check_prepare_images,
    check_sequential, check_train_step, reference_batchnorm, reference_compile, reference_dense_model,
    reference_prepare_images, reference_train_step)


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise 06.x: replace this line with your code.")


def test_prepare_images() -> None:
    assert check_prepare_images.evaluate(reference_prepare_images).passed
    assert check_prepare_images.evaluate(_stub).status == "not_attempted"
    unscaled = check_prepare_images.evaluate(lambda images: images.reshape(len(images), -1).astype("float32"))
    assert unscaled.status == "failed" and "divide by 255" in unscaled.hint
    float64 = check_prepare_images.evaluate(lambda images: images.reshape(len(images), -1) / 255.0)
    assert float64.status == "failed" and "float32" in float64.message
    flat = check_prepare_images.evaluate(lambda images: images.reshape(-1).astype("float32") / 255.0)
    assert flat.status == "failed" and "shape (4704,)" in flat.message
    assert "should be a function" in check_prepare_images.evaluate(np.zeros(3)).message
    by_max = check_prepare_images.evaluate(lambda images: images.reshape(len(images), -1).astype("float32") / images.max())
    assert by_max.status == "failed" and "largest value" in by_max.message
    assert check_prepare_images.evaluate(lambda images: images.reshape(-1, 784).astype("float32") / 255.0).passed


def _sequential(*layers):
    return lambda: keras.Sequential([keras.Input(shape=(784,)), *layers])


def test_sequential() -> None:
    right = _sequential(keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10, activation="softmax"))
    passed = check_sequential.evaluate(right)
    assert passed.passed and "101,770" in passed.message
    no_softmax = check_sequential.evaluate(_sequential(keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)))
    assert no_softmax.status == "failed" and "not probabilities" in no_softmax.message
    batch_axis = check_sequential.evaluate(_sequential(keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10),
                                                       keras.layers.Softmax(axis=0)))
    assert batch_axis.status == "failed" and "batch axis" in batch_axis.message
    narrow = check_sequential.evaluate(_sequential(keras.layers.Dense(64, activation="relu"),
                                                   keras.layers.Dense(10, activation="softmax")))
    assert narrow.status == "failed" and "50,890 parameters" in narrow.message
    sigmoid = check_sequential.evaluate(_sequential(keras.layers.Dense(128, activation="sigmoid"),
                                                    keras.layers.Dense(10, activation="softmax")))
    assert sigmoid.status == "failed" and "'relu'" in sigmoid.hint
    assert check_sequential.evaluate(_stub).status == "not_attempted"
    assert "returned int" in check_sequential.evaluate(lambda: 3).message


def test_functional() -> None:
    def right():
        inputs = keras.Input(shape=(784,))
        hidden = keras.layers.Dense(128, activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))

    assert check_functional.evaluate(right).passed
    sequential = check_functional.evaluate(reference_dense_model)
    assert sequential.status == "failed" and "keras.Sequential" in sequential.message

    def skipped():
        inputs = keras.Input(shape=(784,))
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(inputs))

    assert "7,850 parameters" in check_functional.evaluate(skipped).message
    assert check_functional.evaluate(_stub).status == "not_attempted"


def _compiler(**kwargs):
    def compile_model(model, learning_rate):  # the check's rate is not the default: Adam(learning_rate) passes
        options = {"optimizer": keras.optimizers.Adam(learning_rate),
                   "loss": keras.losses.SparseCategoricalCrossentropy(), "metrics": ["accuracy"]}
        model.compile(**{**options, **kwargs})
        return model
    return compile_model


def test_compile() -> None:
    assert check_compile.evaluate(reference_compile).passed
    assert check_compile.evaluate(_compiler(loss="sparse_categorical_crossentropy")).passed
    one_hot = check_compile.evaluate(_compiler(loss=keras.losses.CategoricalCrossentropy()))
    assert one_hot.status == "failed" and "integer labels" in one_hot.message and "one-hot" in one_hot.hint
    logits = check_compile.evaluate(_compiler(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)))
    assert logits.status == "failed" and "from_logits" in logits.hint
    sgd = check_compile.evaluate(lambda model, learning_rate: _compiler(optimizer=keras.optimizers.SGD(learning_rate))(
        model, learning_rate))
    assert sgd.status == "failed" and "differently from Adam" in sgd.message
    adam_string = check_compile.evaluate(_compiler(optimizer="adam"))
    assert adam_string.status == "failed" and "0.001" in adam_string.message and "default" in adam_string.hint
    for metric in ("sparse_categorical_accuracy", keras.metrics.SparseCategoricalAccuracy()):
        assert check_compile.evaluate(_compiler(metrics=[metric])).passed
    categorical = check_compile.evaluate(_compiler(metrics=["categorical_accuracy"]))
    assert categorical.status == "failed" and "one-hot" in categorical.hint
    unreturned = check_compile.evaluate(lambda model, learning_rate: _compiler()(model, learning_rate) and None)
    assert unreturned.status == "failed" and "return model" in unreturned.hint
    no_metric = check_compile.evaluate(_compiler(metrics=None))
    assert no_metric.status == "failed" and "accuracy" in no_metric.hint
    assert "not compiled" in check_compile.evaluate(lambda model, learning_rate: model).message
    assert check_compile.evaluate(_stub).status == "not_attempted"


def test_train_step() -> None:
    assert check_train_step.evaluate(reference_train_step).passed

    def outside(model, optimizer, loss_fn, x, y):
        loss = loss_fn(y, model(x, training=True))
        with tf.GradientTape() as tape:
            pass
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    def inference_mode(model, optimizer, loss_fn, x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    def no_update(model, optimizer, loss_fn, x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        tape.gradient(loss, model.trainable_variables)
        return loss

    result = check_train_step.evaluate(outside)
    assert result.status == "failed" and "None" in result.message and "GradientTape" in result.hint
    result = check_train_step.evaluate(inference_mode)
    assert result.status == "failed" and "training=True" in result.hint
    result = check_train_step.evaluate(no_update)
    assert result.status == "failed" and "apply_gradients" in result.hint
    assert "returned None" in check_train_step.evaluate(lambda *args: reference_train_step(*args) and None).message
    assert check_train_step.evaluate(_stub).status == "not_attempted"


def _confusion(y_true, y_pred, n_classes):
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def _scores(matrix, precision_axis=0):
    tp = np.diag(matrix).astype(float)
    precision, recall = tp / matrix.sum(axis=precision_axis), tp / matrix.sum(axis=1 - precision_axis)
    return precision, recall, 2 * precision * recall / (precision + recall)


def test_classification_metrics() -> None:
    from dlcourse import metrics

    assert check_classification_metrics.evaluate(_confusion, _scores).passed
    assert check_classification_metrics.evaluate(metrics.confusion_matrix, metrics.precision_recall_f1).passed
    transposed = check_classification_metrics.evaluate(lambda t, p, k: _confusion(p, t, k), _scores)
    assert transposed.status == "failed" and "Row i is the true class" in transposed.hint
    swapped = check_classification_metrics.evaluate(_confusion, lambda m: _scores(m, precision_axis=1))
    assert swapped.status == "failed" and "`precision`" in swapped.message and "PREDICTED" in swapped.hint
    mean_f1 = check_classification_metrics.evaluate(_confusion, lambda m: (*_scores(m)[:2], sum(_scores(m)[:2]) / 2))
    assert mean_f1.status == "failed" and "harmonic" in mean_f1.hint
    two = check_classification_metrics.evaluate(_confusion, lambda m: _scores(m)[:2])
    assert two.status == "failed" and "three arrays" in two.message
    assert check_classification_metrics.evaluate(_confusion, _stub).status == "not_attempted"


def test_one_epoch_of_the_gradient_tape_loop_matches_fit() -> None:
    """The lab's headline claim, on a small seeded problem: same epoch loss and weights to 1e-5."""
    rng = np.random.default_rng(0)
    x = rng.random((300, 784)).astype("float32")  # 300 = 2 full batches of 128 and a short one of 44
    y = rng.integers(0, 10, 300)
    fit_model = reference_dense_model()
    loop_model = keras.models.clone_model(fit_model)
    loop_model.set_weights(fit_model.get_weights())
    fit_model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy())
    fit_loss = fit_model.fit(x, y, batch_size=128, epochs=1, shuffle=False, verbose=0).history["loss"][0]
    optimizer, loss_fn, mean = keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(), keras.metrics.Mean()
    for start in range(0, len(x), 128):
        loss = reference_train_step(loop_model, optimizer, loss_fn, x[start:start + 128], y[start:start + 128])
        mean.update_state(loss, sample_weight=len(x[start:start + 128]))
    assert abs(fit_loss - float(mean.result())) <= 1e-5
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(fit_model.get_weights(), loop_model.get_weights())) <= 1e-5


def _batchnorm(variance_ddof=0, running_ddof=0, axis=0, momentum_of_batch=False, update_in_inference=False):
    def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum, epsilon):
        new_mean, new_var = running_mean, running_var
        if training or update_in_inference:
            old = momentum_of_batch and (1 - momentum) or momentum
            new_mean = old * running_mean + (1 - old) * x.mean(axis=0)
            new_var = old * running_var + (1 - old) * x.var(axis=0, ddof=running_ddof)
        if training:
            mean, var = x.mean(axis=axis, keepdims=True), x.var(axis=axis, ddof=variance_ddof, keepdims=True)
        else:
            mean, var = running_mean, running_var
        return gamma * (x - mean) / np.sqrt(var + epsilon) + beta, new_mean, new_var
    return batchnorm_forward


def test_batchnorm() -> None:
    assert check_batchnorm.evaluate(reference_batchnorm).passed
    assert check_batchnorm.evaluate(_batchnorm()).passed
    assert check_batchnorm.evaluate(_stub).status == "not_attempted"
    cases = {"unbiased variance": (_batchnorm(variance_ddof=1), "unbiased"),
             "PyTorch's running variance": (_batchnorm(running_ddof=1), "unbiased"),
             "wrong axis": (_batchnorm(axis=1), "over its features"),
             "PyTorch's momentum": (_batchnorm(momentum_of_batch=True), "PyTorch's convention"),
             "updated in inference": (_batchnorm(update_in_inference=True), "training=False")}
    for label, (answer, words) in cases.items():
        result = check_batchnorm.evaluate(answer)
        assert result.status == "failed", label
        assert words in result.message + result.hint, (label, result.text())
    two = check_batchnorm.evaluate(lambda *args, **kwargs: reference_batchnorm(*args, **kwargs)[:2])
    assert two.status == "failed" and "three arrays" in two.message


def _fit_like_the_lab(build, compile_model, x, y, learning_rate=1e-3):
    """The lab's fit cell on a small problem: the student's builder and compile function, early stopping."""
    keras.utils.set_random_seed(0)
    model = compile_model(build(), learning_rate)
    stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    model.fit(x[:500], y[:500], validation_split=0.1, epochs=3, batch_size=64, callbacks=[stopping], verbose=0)
    return model.evaluate(x[500:], y[500:], verbose=0, return_dict=True)["accuracy"]


def test_a_wrong_answer_changes_the_headline_accuracy() -> None:
    rng = np.random.default_rng(6)
    teacher = rng.normal(size=(784, 10))
    x = rng.random((800, 784)).astype("float32")
    y = (x @ teacher).argmax(axis=1)
    right = _fit_like_the_lab(reference_dense_model, reference_compile, x, y)
    again = _fit_like_the_lab(reference_dense_model, reference_compile, x, y)
    # 06.4's wrong answer "SGD instead of Adam"; note that from_logits=True would not do: when Keras can trace
    # the output to its softmax it warns and uses the logits, so fit trains exactly as with the right loss.
    wrong = _fit_like_the_lab(reference_dense_model, lambda model, learning_rate: _compiler(
        optimizer=keras.optimizers.SGD(learning_rate))(model, learning_rate), x, y)
    assert right == again  # the recipe is repeatable, so the difference below is the wrong answer's
    assert right > wrong + 0.05, (right, wrong)


def test_confusion_matrix_colours_the_errors_on_their_own_scale() -> None:
    from dlcourse.plot import plot_confusion_matrix

    matrix = np.array([[950, 3, 7], [2, 1000, 30], [12, 1, 900]])
    fig = plot_confusion_matrix(matrix, errors_scale=True)
    errors = fig.axes[0].images[0]
    assert errors.norm.vmax == 30 and bool(errors.get_array().mask[0, 0])  # scale set by the errors; diagonal masked
    assert "errors" in fig.axes[1].get_ylabel()
    default = plot_confusion_matrix(matrix)
    assert default.axes[0].images[0].norm.vmax == 1000 and default.axes[1].get_ylabel() == "count"
