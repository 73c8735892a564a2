"""Checks for lab 06 exercises 06.5 (batch normalization in NumPy) and 06.6 (a GradientTape
training step), and the reference step; `dlcourse.checks.lab06` imports and re-exports them, which
registers them with the lab's other checks. Keras and TensorFlow are imported inside the functions.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from dlcourse.batchnorm import keras_batchnorm
from dlcourse.check import Mismatch, expect, expect_array, expect_callable, expect_number, exercise

F32 = {"rtol": 1e-4, "atol": 1e-5}  # float32 results compared with float32 (or float64) ones


def reference_train_step(model: Any, optimizer: Any, loss_fn: Callable, x: Any, y: Any) -> Any:
    """One optimisation step with tf.GradientTape; returns the batch loss (a scalar tensor)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:  # the forward pass AND the loss must be recorded
        probabilities = model(x, training=True)
        loss = loss_fn(y, probabilities)
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return loss


# ------------------------------------------------------------------------------ 06.5

def _batchnorm_case(n: int, features: int, seed: int) -> list[np.ndarray]:
    """x (n, features) with uneven per-feature means and spreads; γ ≠ 1, β ≠ 0; running stats ≠ (0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)) * rng.uniform(0.5, 3.0, features) + rng.uniform(-4.0, 4.0, features)
    gamma, beta = rng.uniform(0.5, 2.0, features), rng.normal(size=features)
    running_mean, running_var = rng.normal(size=features), rng.uniform(0.5, 2.0, features)
    return [a.astype("float32") for a in (x, gamma, beta, running_mean, running_var)]


def _normalised(x, gamma, beta, mean, var, epsilon, *, eps_outside: bool = False) -> np.ndarray:
    scale = (np.sqrt(var) + epsilon) if eps_outside else np.sqrt(var + epsilon)
    return gamma * (x - mean) / scale + beta


def _batchnorm_mistakes(case: list[np.ndarray], training: bool, epsilon: float) -> dict[str, tuple[np.ndarray, str, str]]:
    """What typical wrong answers output for y, with the sentence and hint each deserves."""
    x, gamma, beta, running_mean, running_var = (a.astype("float64") for a in case)
    batch = dict(mean=x.mean(axis=0), var=x.var(axis=0))
    used = batch if training else dict(mean=running_mean, var=running_var)
    mistakes = {"eps outside": (_normalised(x, gamma, beta, **used, epsilon=epsilon, eps_outside=True),
                                "Your output puts ε outside the square root: (x − μ) / (√σ² + ε).",
                                "Keras adds ε to the variance: (x − μ) / √(σ² + ε).")}
    if training:
        mistakes["unbiased"] = (_normalised(x, gamma, beta, x.mean(axis=0), x.var(axis=0, ddof=1), epsilon),
                                "In training mode you normalise with the unbiased variance (divided by n − 1).",
                                "Keras normalises with the batch's biased variance, the mean of (x − μ)² over the "
                                "batch (divide by n): x.var(axis=0).")
        mistakes["axis"] = (_normalised(x, gamma, beta, x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True),
                                        epsilon),
                            "You normalise each example over its features (axis 1); BatchNormalization normalises "
                            "each feature over the batch.",
                            "Take the mean and variance over axis 0, the batch axis: one mean and one variance per "
                            "feature, shape (features,).")
        mistakes["running in training"] = (_normalised(x, gamma, beta, running_mean, running_var, epsilon),
                                           "In training mode your output uses the running statistics.",
                                           "While training, normalise with the batch's own mean and variance; the "
                                           "running statistics are for inference.")
    else:
        mistakes["batch in inference"] = (_normalised(x, gamma, beta, **batch, epsilon=epsilon),
                                          "In inference mode (training=False) your output uses the batch's own "
                                          "statistics.",
                                          "At inference normalise with running_mean and running_var, so that an "
                                          "image's output does not depend on the other images in its batch.")
    mistakes["no affine"] = (_normalised(x, 1.0, 0.0, **used, epsilon=epsilon), "Your output leaves out γ and β.",
                             "Scale by gamma and shift by beta after normalising: y = γ · x̂ + β.")
    return mistakes


def _expect_running(got: Any, old: np.ndarray, batch: np.ndarray, want: np.ndarray, *, name: str,
                    training: bool, momentum: float, unbiased: np.ndarray | None = None) -> None:
    got = np.asarray(got, dtype="float64") if np.shape(got) == want.shape else got
    if not training:
        expect_array(got, want, name=f"{name} with training=False", **F32,
                     hint="In inference mode return the running statistics unchanged: inference must not learn "
                          "from the batch it is shown.")
        return
    diagnoses = [((1 - momentum) * old + momentum * batch,
                  f"Your {name} gives the batch weight momentum = {momentum:g}: that is PyTorch's convention.",
                  f"In Keras momentum is the weight of the OLD value: {name} = momentum · old + (1 − momentum) · batch."),
                 (old, f"In training mode your {name} did not change.",
                  f"Move it towards the batch: {name} = momentum · old + (1 − momentum) · batch.")]
    if unbiased is not None:
        diagnoses.append((momentum * old + (1 - momentum) * unbiased,
                          "Your running variance is updated with the unbiased variance (n − 1), PyTorch's choice.",
                          "Keras updates it with the same biased variance it normalises with (divide by n)."))
    if isinstance(got, np.ndarray) and not np.allclose(got, want, **F32):
        for value, reason, hint in diagnoses:
            if np.allclose(got, value, **F32):
                raise Mismatch(reason, hint)
    expect_array(got, want, name=f"{name} with training=True", **F32,
                 hint=f"{name} = momentum · old + (1 − momentum) · (the batch's statistic), with the biased variance.")


@exercise("06.5", "Batch normalization in NumPy, training and inference", wrong_answers={
    "unbiased variance (n − 1) to normalise": """
if training:
    mean, var = x.mean(axis=0), x.var(axis=0, ddof=1)
    running_mean = momentum * running_mean + (1 - momentum) * mean
    running_var = momentum * running_var + (1 - momentum) * var
else:
    mean, var = running_mean, running_var
return gamma * (x - mean) / np.sqrt(var + epsilon) + beta, running_mean, running_var""",
    "unbiased variance in the running estimate (PyTorch's choice)": """
if training:
    mean, var = x.mean(axis=0), x.var(axis=0)
    running_mean = momentum * running_mean + (1 - momentum) * mean
    running_var = momentum * running_var + (1 - momentum) * x.var(axis=0, ddof=1)
else:
    mean, var = running_mean, running_var
return gamma * (x - mean) / np.sqrt(var + epsilon) + beta, running_mean, running_var""",
    "running statistics updated in inference mode": """
mean, var = x.mean(axis=0), x.var(axis=0)
new_mean = momentum * running_mean + (1 - momentum) * mean
new_var = momentum * running_var + (1 - momentum) * var
if not training:
    mean, var = running_mean, running_var
return gamma * (x - mean) / np.sqrt(var + epsilon) + beta, new_mean, new_var""",
    "momentum as the batch's weight (PyTorch's convention)": """
if training:
    mean, var = x.mean(axis=0), x.var(axis=0)
    running_mean = (1 - momentum) * running_mean + momentum * mean
    running_var = (1 - momentum) * running_var + momentum * var
else:
    mean, var = running_mean, running_var
return gamma * (x - mean) / np.sqrt(var + epsilon) + beta, running_mean, running_var""",
    "normalised over the features (axis 1)": """
if training:
    mean, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    running_mean = momentum * running_mean + (1 - momentum) * x.mean(axis=0)
    running_var = momentum * running_var + (1 - momentum) * x.var(axis=0)
else:
    mean, var = running_mean, running_var
return gamma * (x - mean) / np.sqrt(var + epsilon) + beta, running_mean, running_var""",
    "batch statistics in inference mode too": """
mean, var = x.mean(axis=0), x.var(axis=0)
if training:
    running_mean = momentum * running_mean + (1 - momentum) * mean
    running_var = momentum * running_var + (1 - momentum) * var
return gamma * (x - mean) / np.sqrt(var + epsilon) + beta, running_mean, running_var""",
    "ε outside the square root": """
if training:
    mean, var = x.mean(axis=0), x.var(axis=0)
    running_mean = momentum * running_mean + (1 - momentum) * mean
    running_var = momentum * running_var + (1 - momentum) * var
else:
    mean, var = running_mean, running_var
return gamma * (x - mean) / (np.sqrt(var) + epsilon) + beta, running_mean, running_var""",
    "Keras's default momentum and ε, not the arguments": """
if training:
    mean, var = x.mean(axis=0), x.var(axis=0)
    running_mean = 0.99 * running_mean + 0.01 * mean
    running_var = 0.99 * running_var + 0.01 * var
else:
    mean, var = running_mean, running_var
return gamma * (x - mean) / np.sqrt(var + 1e-3) + beta, running_mean, running_var""",
}, accepted_answers={
    "variance as the mean of squared deviations, update as a lerp": """
if training:
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    running_mean = running_mean + (1 - momentum) * (mean - running_mean)
    running_var = running_var + (1 - momentum) * (var - running_var)
else:
    mean, var = running_mean, running_var
return gamma * (x - mean) / np.sqrt(var + epsilon) + beta, running_mean, running_var""",
    "Keras's own form, x · inv + (β − μ · inv), in float64": """
x = x.astype(np.float64)
mean, var = (x.mean(axis=0), x.var(axis=0)) if training else (running_mean, running_var)
if training:
    running_mean = momentum * running_mean + (1 - momentum) * mean
    running_var = momentum * running_var + (1 - momentum) * var
inv = gamma / np.sqrt(var + epsilon)
return x * inv + (beta - mean * inv), running_mean.copy(), running_var.copy()""",
})
def check_batchnorm(batchnorm_forward: Any) -> str:
    expect_callable(batchnorm_forward, name="batchnorm_forward")
    for n, features, momentum, epsilon, seed in ((7, 5, 0.8, 0.05, 65), (11, 3, 0.6, 0.02, 66)):
        case = _batchnorm_case(n, features, seed)
        for training in (True, False):
            mode = f"training={training}"
            result = batchnorm_forward(*[a.copy() for a in case], training=training, momentum=momentum, epsilon=epsilon)
            expect(isinstance(result, (tuple, list)) and len(result) == 3,
                   "`batchnorm_forward` should return three arrays: (y, running_mean, running_var).",
                   "End with `return y, running_mean, running_var` (in inference mode, the running statistics unchanged).")
            y, running_mean, running_var = result
            want = keras_batchnorm(*case, training=training, momentum=momentum, epsilon=epsilon)
            where = f"on a ({n}, {features}) batch with momentum={momentum:g}, epsilon={epsilon:g}, {mode}"
            if np.shape(y) == want[0].shape and not np.allclose(np.asarray(y, dtype="float64"), want[0], **F32):
                for value, reason, hint in _batchnorm_mistakes(case, training, epsilon).values():
                    if np.allclose(np.asarray(y, dtype="float64"), value, **F32):
                        raise Mismatch(f"{reason} ({where})", hint)
            expect_array(y, want[0], name=f"y {where}", **F32,
                         hint="y = γ · (x − μ) / √(σ² + ε) + β, with μ and σ² the batch's mean and biased variance "
                              "per feature in training, the running ones in inference.")
            x = case[0].astype("float64")
            _expect_running(running_mean, case[3], x.mean(axis=0), want[1], name="running_mean", training=training,
                            momentum=momentum)
            _expect_running(running_var, case[4], x.var(axis=0), want[2], name="running_var", training=training,
                            momentum=momentum, unbiased=x.var(axis=0, ddof=1))
    return ("Training and inference mode, y and both running statistics, match keras.layers.BatchNormalization "
            "on a (7, 5) and an (11, 3) batch at non-default momentum and ε.")


# ------------------------------------------------------------------------------ 06.6

def _batchnorm_model(seed: int = 65) -> Any:
    """7 inputs -> Dense 11 ReLU -> BatchNormalization -> Dense 3 softmax, for the 06.6 check: its output
    depends on `training`. Its weights come from a private NumPy generator, so the check never touches
    the lab's seeds."""
    import keras

    model = keras.Sequential([keras.Input(shape=(7,)), keras.layers.Dense(11, activation="relu"),
                              keras.layers.BatchNormalization(momentum=0.7), keras.layers.Dense(3, activation="softmax")])
    rng = np.random.default_rng(seed)
    model.set_weights([np.asarray(w) if w.ndim == 1 and "batch" in v.path else rng.normal(0.0, 0.4, w.shape).astype("float32")
                       for w, v in zip(model.get_weights(), model.weights)])
    return model


def _twin(model: Any) -> Any:
    import keras

    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin


_STEP = """
with tf.GradientTape() as tape:
    probabilities = model(x, training=True)
    loss = {loss}
gradients = tape.gradient(loss, model.trainable_variables)
{apply}
return {result}"""
_APPLY = "optimizer.apply_gradients(zip(gradients, model.trainable_variables))"


@exercise("06.6", "A training step with tf.GradientTape", wrong_answers={
    "loss computed outside the tape": """
probabilities = model(x, training=True)
loss = loss_fn(y, probabilities)
with tf.GradientTape() as tape:
    pass
gradients = tape.gradient(loss, model.trainable_variables)
optimizer.apply_gradients(zip(gradients, model.trainable_variables))
return loss""",
    "forgot training=True": _STEP.replace("training=True", "").replace("(x, )", "(x)").format(
        loss="loss_fn(y, probabilities)", apply=_APPLY, result="loss"),
    "never applied the gradients": _STEP.format(loss="loss_fn(y, probabilities)", apply="", result="loss"),
    "a new optimizer at every step": _STEP.format(
        loss="loss_fn(y, probabilities)", result="loss",
        apply="keras.optimizers.Adam(1e-3).apply_gradients(zip(gradients, model.trainable_variables))"),
    "its own loss instead of loss_fn": _STEP.format(
        loss="keras.losses.SparseCategoricalCrossentropy()(y, probabilities)", apply=_APPLY, result="loss"),
    "returned the loss after the update": _STEP.format(
        loss="loss_fn(y, probabilities)", apply=_APPLY, result="loss_fn(y, model(x, training=True))"),
}, accepted_answers={
    "gradients applied as a list of pairs": _STEP.format(
        loss="loss_fn(y, probabilities)", result="loss",
        apply="optimizer.apply_gradients(list(zip(gradients, model.trainable_variables)))"),
    "optimizer.apply(gradients, variables)": _STEP.format(
        loss="loss_fn(y, probabilities)", result="loss",
        apply="optimizer.apply(gradients, model.trainable_variables)"),
})
def check_train_step(train_step: Any) -> str:
    import keras

    expect_callable(train_step, name="train_step")
    rng = np.random.default_rng(66)
    x = rng.normal(size=(37, 7)).astype("float32")  # batches of 13, 13 and 11
    y = rng.integers(0, 3, 37)
    reference = _batchnorm_model()
    student = _twin(reference)
    # Adam at a rate nobody's default, and a summed loss: the step must use what it is given.
    ref_opt, student_opt = keras.optimizers.Adam(0.0123), keras.optimizers.Adam(0.0123)
    ref_loss, student_loss = (keras.losses.SparseCategoricalCrossentropy(reduction="sum") for _ in range(2))
    for step, start in enumerate(range(0, len(x), 13), start=1):
        xb, yb = x[start:start + 13], y[start:start + 13]
        want = float(reference_train_step(reference, ref_opt, ref_loss, xb.copy(), yb.copy()))
        before = student.get_weights()
        try:
            got = train_step(student, student_opt, student_loss, xb.copy(), yb.copy())
        except ValueError as exc:
            if "No gradients" not in str(exc):
                raise
            raise Mismatch("tape.gradient returned None for every weight, so the optimizer had nothing to apply.",
                           "The tape only records what runs inside `with tf.GradientTape() as tape:`. Put the "
                           "forward pass and the loss inside the block; call tape.gradient after it.") from None
        expect(got is not None, "`train_step` returned None; it should return the batch loss.", "End with `return loss`.")
        expect_number(got, want, name=f"the loss train_step returned at step {step}", rtol=1e-5, atol=1e-5,
                      hint="Return loss_fn(y, model(x, training=True)) as computed inside the tape, before the update, "
                           "with the loss_fn you are given: BatchNormalization behaves differently while training, "
                           "and fit() passes training=True too.")
        unchanged = all(np.array_equal(a, b) for a, b, v in zip(student.get_weights(), before, student.weights)
                        if v.trainable)
        expect(not unchanged, f"After step {step} the trainable weights are unchanged: `train_step` computed "
                              "gradients but never applied them.",
               "Finish with optimizer.apply_gradients(zip(gradients, model.trainable_variables)).")
        gap = max(float(np.max(np.abs(a - b))) for a, b in zip(student.get_weights(), reference.get_weights()))
        expect(gap <= 1e-5, f"After step {step} your weights differ from the reference by up to {gap:.3g}.",
               "Use the optimizer you are given (it keeps Adam's running averages from step to step), once per step, "
               "on model.trainable_variables, and call the model with training=True (BatchNormalization updates "
               "its running statistics only then).")
    return "3 steps with Adam: the same losses and the same weights as the reference GradientTape step."
