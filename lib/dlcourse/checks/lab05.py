"""Checks for lab 05 (a NumPy MLP on MNIST).

Every check builds its own small inputs (seeded, float64 so rounding cannot hide a mistake),
runs the student's function on private copies, and compares with the reference in
`dlcourse.mlp`. The backward check is a real gradient check: the student's gradients against
central differences of the loss, one relative error per parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlcourse import mlp as ref
from dlcourse.check import Mismatch, expect, expect_array, expect_callable, expect_number, exercise
from dlcourse.functions import relu, softmax

GRADIENT_TOLERANCE = 1e-5  # a right backward pass gives ~1e-7; the typical mistakes give 1e-2 to 1


def _tiny_network(n_in: int = 12, n_hidden: int = 8, n_out: int = 10, n: int = 6, seed: int = 5):
    """Float64 parameters with non-zero biases (so a forgotten bias shows), inputs and labels."""
    rng = np.random.default_rng(seed)
    params = ref.init_params(n_in, n_hidden, n_out, seed=seed, dtype=np.float64)
    params["b1"] = 0.1 * rng.standard_normal(n_hidden)
    params["b2"] = 0.1 * rng.standard_normal(n_out)
    return params, rng.standard_normal((n, n_in)), rng.integers(0, n_out, size=n)


def _copies(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in params.items()}


def _pair(result: Any, name: str, what: str) -> tuple[Any, Any]:
    """The two values a function must return, with a sentence when it returned something else."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        got = f"{len(result)} values" if isinstance(result, (tuple, list)) else f"a {type(result).__name__}"
        raise Mismatch(f"`{name}` should return two values, {what}, but it returned {got}.",
                       f"End your function with `return {what.strip('()')}`.")
    return result[0], result[1]


def _expect_param_dict(value: Any, name: str, like: dict[str, np.ndarray]) -> None:
    """A dict with the keys W1, b1, W2, b2, each array shaped like its parameter."""
    if not isinstance(value, dict):
        raise Mismatch(f"`{name}` should be a dict with keys {', '.join(ref.PARAM_NAMES)}, but it is a {type(value).__name__}.",
                       'Build it as {"W1": ..., "b1": ..., "W2": ..., "b2": ...}.')
    missing = [k for k in ref.PARAM_NAMES if k not in value]
    expect(not missing, f"`{name}` has no entry for {', '.join(missing)}.",
           "It needs one entry per parameter: W1, b1, W2 and b2.")
    for key in ref.PARAM_NAMES:
        shape = np.shape(value[key])
        expect(shape == like[key].shape, f"`{name}['{key}']` has shape {shape}, but {key} has shape {like[key].shape}.",
               "A gradient (or velocity) always has its parameter's shape. A transposed shape means the factors "
               "of a matrix product are in the wrong order; a missing axis means you summed over the wrong one.")


# ------------------------------------------------------------------------------ 05.1

@exercise("05.1", "Prepare the images", wrong_answers={
    "did not scale to [0, 1]": "return images.reshape(len(images), -1).astype(np.float32)",
    "flattened the whole batch into one vector": "return images.reshape(-1).astype(np.float32) / 255",
    "left the pixels as float64": "return images.reshape(len(images), -1) / 255.0",
})
def check_prepare_images(prepare_images: Any) -> str:
    expect_callable(prepare_images, name="prepare_images")
    images = np.random.default_rng(1).integers(0, 256, size=(7, 28, 28)).astype(np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255  # both ends of the range
    original = images.copy()
    got = prepare_images(images)
    expect(isinstance(got, np.ndarray), f"`prepare_images(images)` should return a NumPy array, but it returned a {type(got).__name__}.")
    expect(np.array_equal(images, original), "`prepare_images` changed the images it was given.",
           "Build a new array (reshape and astype do) instead of writing into the input.")
    expect(got.shape == (7, 784), f"For 7 images `prepare_images` returned shape {got.shape}; expected (7, 784).",
           "One row per image: images.reshape(len(images), -1) keeps the batch axis and flattens 28×28 into 784.")
    expect(got.dtype.kind == "f", f"`prepare_images` returned {got.dtype} values; expected float32.",
           "Integer arithmetic (uint8, //) cannot hold values between 0 and 1: cast with .astype(np.float32) first.")
    expect(float(got.max()) <= 1.0, f"The pixel values go up to {float(got.max()):g}; they should lie in [0, 1].",
           "Divide by 255. Inputs of size ~100 make the first layer's sums huge, so the initial weights (chosen "
           "for inputs of size ~1) and the learning rate no longer fit: training diverges or crawls.")
    expect_array(got, original.reshape(7, 784) / 255.0, name="prepare_images(images)", rtol=1e-6,
                 hint="Row i should be image i read row by row (reshape, not transpose), divided by 255.")
    expect(got.dtype == np.float32, f"`prepare_images` returned {got.dtype} values; expected float32.",
           "images / 255.0 gives float64. float32 holds 7 significant digits (plenty for pixels), needs half "
           "the memory and makes the matrix products about twice as fast: .astype(np.float32) / 255.")
    return "Images become float32 rows of 784 values in [0, 1], one row per image."


# ------------------------------------------------------------------------------ 05.2

_FORWARD_HINT = ("z1 = x @ W1 + b1, h1 = relu(z1), logits = h1 @ W2 + b2: both layers need their bias, and the "
                 "output layer has no activation (softmax belongs to the loss, in the next exercise).")


@exercise("05.2", "The forward pass", wrong_answers={
    "forgot the biases": '''z1 = x @ params["W1"]
h1 = relu(z1)
logits = h1 @ params["W2"]
return logits, {"x": x, "z1": z1, "h1": h1}''',
    "ReLU on the output layer too": '''z1 = x @ params["W1"] + params["b1"]
h1 = relu(z1)
logits = relu(h1 @ params["W2"] + params["b2"])
return logits, {"x": x, "z1": z1, "h1": h1}''',
    "returned probabilities, not logits": '''z1 = x @ params["W1"] + params["b1"]
h1 = relu(z1)
logits = softmax(h1 @ params["W2"] + params["b2"], axis=1)
return logits, {"x": x, "z1": z1, "h1": h1}''',
})
def check_forward(forward: Any) -> str:
    expect_callable(forward, name="forward")
    params, x, _ = _tiny_network(n_in=20, n_hidden=16, n=7)
    want_logits, want_cache = ref.forward(params, x)
    logits, cache = _pair(forward(_copies(params), x.copy()), "forward", "(logits, cache)")
    hint = _FORWARD_HINT
    got = np.asarray(logits, dtype=float) if np.shape(logits) == want_logits.shape else None
    if got is not None and np.allclose(got, softmax(want_logits, axis=1)):
        hint = "These are probabilities: return the logits h1 @ W2 + b2 and leave softmax to the loss."
    elif got is not None and np.allclose(got, relu(want_logits)):
        hint = "No ReLU on the output layer: logits may be negative. " + _FORWARD_HINT
    expect_array(logits, want_logits, name="logits", rtol=1e-6, atol=1e-9, hint=hint)
    expect(isinstance(cache, dict), f"The cache should be a dict, but it is a {type(cache).__name__}.",
           'Return {"x": x, "z1": z1, "h1": h1}: the backward pass reads these three.')
    for key in ("x", "z1", "h1"):
        expect(key in cache, f"The cache has no entry {key!r}.", 'Return {"x": x, "z1": z1, "h1": h1}.')
        expect_array(cache[key], want_cache[key], name=f"cache['{key}']", rtol=1e-6, atol=1e-9, hint=_FORWARD_HINT)
    return "Logits and cache match the reference for a batch of 7 (20 inputs, 16 hidden units, 10 classes)."


# ------------------------------------------------------------------------------ 05.3

@exercise("05.3", "Softmax cross-entropy and its gradient", wrong_answers={
    "did not divide the gradient by n": '''rows = np.arange(logits.shape[0])
log_probs = log_softmax(logits, axis=1)
loss = -log_probs[rows, y].mean()
dlogits = np.exp(log_probs)
dlogits[rows, y] -= 1.0
return loss, dlogits''',
    "softmax over the batch axis (axis 0)": '''n = logits.shape[0]
rows = np.arange(n)
log_probs = log_softmax(logits, axis=0)
loss = -log_probs[rows, y].mean()
dlogits = np.exp(log_probs)
dlogits[rows, y] -= 1.0
return loss, dlogits / n''',
    "treated the labels as one-hot": '''n = logits.shape[0]
log_probs = log_softmax(logits, axis=1)
loss = -log_probs[np.arange(n), y].mean()
dlogits = (np.exp(log_probs) - y[:, None]) / n
return loss, dlogits''',
})
def check_softmax_cross_entropy(softmax_cross_entropy: Any) -> str:
    expect_callable(softmax_cross_entropy, name="softmax_cross_entropy")
    rng = np.random.default_rng(3)
    logits, y = 3.0 * rng.standard_normal((6, 10)), np.array([3, 0, 9, 3, 7, 1])
    want_loss, want_grad = ref.softmax_cross_entropy(logits, y)
    loss, dlogits = _pair(softmax_cross_entropy(logits.copy(), y.copy()), "softmax_cross_entropy", "(loss, dlogits)")
    expect_number(loss, want_loss, name="loss", rtol=1e-6,
                  hint="The loss is the mean over the batch of −log p[i, y[i]], where p = softmax over the classes "
                       "(axis=1, one row per example); log_softmax(logits, axis=1) gives log p directly.")
    hint = "dL/dlogits = (softmax(logits) − onehot(y)) / n: p minus 1 at each row's true class, divided by the batch size."
    if np.shape(dlogits) == want_grad.shape and np.allclose(np.asarray(dlogits, dtype=float), 6 * want_grad):
        hint = "Divide by n: the loss is the mean over the batch, so each example's share of the gradient is 1/n."
    expect_array(dlogits, want_grad, name="dlogits", rtol=1e-6, atol=1e-10, hint=hint)
    big = np.array([[1000.0, 0.0, -1000.0] + [0.0] * 7])  # the true class's probability underflows to 0
    with np.errstate(all="ignore"):
        loss, _ = _pair(softmax_cross_entropy(big, np.array([1])), "softmax_cross_entropy", "(loss, dlogits)")
    expect_number(loss, 1000.0, name="the loss for logits [1000, 0, -1000, 0, ...] with label 1", rtol=1e-9,
                  hint="Compute log p with log_softmax (the log-sum-exp trick of Lab 03): log(softmax(...)) takes the "
                       "log of a probability that underflowed to 0 and gives infinity.")
    return f"Loss and gradient match the reference (loss {want_loss:.4f} on the check's batch), and stay finite for huge logits."


# ------------------------------------------------------------------------------ 05.4

_BACKWARD_HINTS = {
    "W2": "dW2 = h1.T @ dlogits: the hidden activations of each example times its output gradient, summed over the batch.",
    "b2": "db2 = dlogits.sum(axis=0): dlogits already carries the 1/n of the mean, so sum; do not average again.",
    "W1": "dh1 = dlogits @ W2.T, then dz1 = dh1 * relu_grad(z1) (no gradient through units that were off), "
          "then dW1 = x.T @ dz1.",
    "b1": "db1 = dz1.sum(axis=0), with dz1 = (dlogits @ W2.T) * relu_grad(z1); sum over the batch, do not average.",
}


@exercise("05.4", "The backward pass", wrong_answers={
    "forgot the ReLU derivative": '''x, h1 = cache["x"], cache["h1"]
dz1 = dlogits @ params["W2"].T
return {"W1": x.T @ dz1, "b1": dz1.sum(axis=0), "W2": h1.T @ dlogits, "b2": dlogits.sum(axis=0)}''',
    "averaged the bias gradients again": '''x, z1, h1 = cache["x"], cache["z1"], cache["h1"]
dz1 = (dlogits @ params["W2"].T) * relu_grad(z1)
return {"W1": x.T @ dz1, "b1": dz1.mean(axis=0), "W2": h1.T @ dlogits, "b2": dlogits.mean(axis=0)}''',
    "W2 not transposed": '''x, z1, h1 = cache["x"], cache["z1"], cache["h1"]
dz1 = (dlogits @ params["W2"]) * relu_grad(z1)
return {"W1": x.T @ dz1, "b1": dz1.sum(axis=0), "W2": h1.T @ dlogits, "b2": dlogits.sum(axis=0)}''',
})
def check_backward(backward: Any) -> str:
    expect_callable(backward, name="backward")
    params, x, y = _tiny_network()
    logits, cache = ref.forward(params, x)
    _, dlogits = ref.softmax_cross_entropy(logits, y)
    try:
        grads = backward(_copies(params), _copies(cache), dlogits.copy())
    except ValueError as exc:
        raise Mismatch(f"Running your backward pass raised ValueError: {str(exc)[:200]}",
                       "A shape mismatch in a matrix product usually means a missing transpose: the gradient flows "
                       "back through W2 as dlogits @ W2.T, and x.T @ dz1 and h1.T @ dlogits give the weight gradients.") from None
    _expect_param_dict(grads, "backward(...)", params)
    errors = ref.gradient_check(backward, params, x, y)
    for name in ref.PARAM_NAMES:
        expect(errors[name] < GRADIENT_TOLERANCE,
               f"Your gradient for {name} disagrees with the numerical gradient: relative error {errors[name]:.1e} "
               f"(a right one gives about 1e-7).", _BACKWARD_HINTS[name])
    worst = max(errors.values())
    return f"All four gradients pass the gradient check (largest relative error {worst:.0e}, below {GRADIENT_TOLERANCE:.0e})."


# ------------------------------------------------------------------------------ 05.5

@exercise("05.5", "A momentum-SGD step", wrong_answers={
    "stepped uphill (sign error)": '''new_velocity = {k: momentum * velocity[k] + grads[k] for k in params}
return {k: params[k] + lr * new_velocity[k] for k in params}, new_velocity''',
    "forgot the velocity": '''return {k: params[k] - lr * grads[k] for k in params}, velocity''',
})
def check_momentum_step(momentum_step: Any) -> str:
    expect_callable(momentum_step, name="momentum_step")
    params, _, _ = _tiny_network(n_in=5, n_hidden=4, n_out=3)
    rng = np.random.default_rng(11)
    gradients = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(10)]
    ours, ours_v = _copies(params), {k: np.zeros_like(v) for k, v in params.items()}
    theirs, theirs_v = _copies(params), {k: np.zeros_like(v) for k, v in params.items()}
    for step, grads in enumerate(gradients, start=1):
        ours, ours_v = ref.momentum_step(ours, grads, ours_v, lr=0.1, momentum=0.9)
        result = momentum_step(_copies(theirs), _copies(grads), _copies(theirs_v), 0.1, 0.9)
        theirs, theirs_v = _pair(result, "momentum_step", "(params, velocity)")
        _expect_param_dict(theirs, "the new params", params)
        _expect_param_dict(theirs_v, "the new velocity", params)
        for key in ref.PARAM_NAMES:
            expect_array(theirs_v[key], ours_v[key], name=f"velocity['{key}'] after step {step}", rtol=1e-9, atol=1e-12,
                         hint="v ← momentum·v + g, starting from v = 0; return the new velocity so the next step uses it.")
            expect_array(theirs[key], ours[key], name=f"params['{key}'] after step {step}", rtol=1e-9, atol=1e-12,
                         hint="θ ← θ − lr·v with the new velocity: minus, because the gradient points uphill.")
    return "Ten momentum steps on all four parameters match torch.optim.SGD(momentum=0.9)'s rule."


__all__ = ["check_prepare_images", "check_forward", "check_softmax_cross_entropy", "check_backward",
           "check_momentum_step", "GRADIENT_TOLERANCE"]
