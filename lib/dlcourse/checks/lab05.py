"""Checks for lab 05 (a NumPy MLP on MNIST).

Every check builds its own small inputs (seeded, float64 so rounding cannot hide a mistake,
plus float32 where the lab trains in float32), with sizes that differ on every axis, runs the
student's function on private copies, at values of every argument other than the lab's, and
compares with the reference in `dlcourse.mlp`. An answer computed in float32 is compared with a
float32 tolerance. The backward check is a real gradient check: the student's gradients against
central differences of the loss, one relative error per parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlcourse import mlp as ref
from dlcourse.check import Mismatch, expect, expect_array, expect_callable, expect_number, exercise
from dlcourse.checks.lab05_support import (GRADIENT_TOLERANCE, _copies, _expect_param_dict, _pair, _tiny_network,
                                           _tolerance)
from dlcourse.checks.lab05_regularisation import check_dropout, check_weight_decay  # registers 05.6 and 05.7
from dlcourse.functions import relu, softmax

# ------------------------------------------------------------------------------ 05.1

@exercise("05.1", "Prepare the images", wrong_answers={
    "did not scale to [0, 1]": "return images.reshape(len(images), -1).astype(np.float32)",
    "flattened the whole batch into one vector": "return images.reshape(-1).astype(np.float32) / 255",
    "left the pixels as float64": "return images.reshape(len(images), -1) / 255.0",
    "integer division by 255": "return images.reshape(len(images), -1) // 255",
    "transposed each image before flattening": "return images.transpose(0, 2, 1).reshape(len(images), -1).astype(np.float32) / 255",
    "hard-coded a batch of 7 images": "return images.reshape(7, 784).astype(np.float32) / 255",
}, accepted_answers={
    "reshape(-1, 784), cast, then divide by a float32 255":
        "return images.reshape(-1, 784).astype(np.float32) / np.float32(255)",
    "multiplied by 1/255 in float32": "return np.float32(1 / 255) * images.reshape(len(images), 784).astype(np.float32)",
})
def check_prepare_images(prepare_images: Any) -> str:
    expect_callable(prepare_images, name="prepare_images")
    few = np.random.default_rng(2).integers(0, 256, size=(3, 28, 28)).astype(np.uint8)
    got = prepare_images(few.copy())
    expect(np.shape(got) == (3, 784), f"For 3 images `prepare_images` returned shape {np.shape(got)}; expected (3, 784).",
           "One row per image, whatever the number of images: images.reshape(len(images), -1).")
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
    expect_array(got, original.reshape(7, 784) / 255.0, name="prepare_images(images)", rtol=1e-6, atol=1e-7,
                 hint="Row i should be image i read row by row (reshape, not transpose), divided by 255.")
    expect(got.dtype == np.float32, f"`prepare_images` returned {got.dtype} values; expected float32.",
           "images / 255.0 gives float64. float32 holds 7 significant digits (plenty for pixels), needs half "
           "the memory and makes the matrix products about twice as fast: .astype(np.float32) / 255.")
    return "Images become float32 rows of 784 values in [0, 1], one row per image (batches of 7 and 3)."


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
    "the (n_out, n_in) layout of labs 01-02": '''z1 = params["W1"] @ x + params["b1"]
h1 = relu(z1)
logits = params["W2"] @ h1 + params["b2"]
return logits, {"x": x, "z1": z1, "h1": h1}''',
}, accepted_answers={
    "computed in float32": '''p = {k: v.astype(np.float32) for k, v in params.items()}
x = x.astype(np.float32)
z1 = x @ p["W1"] + p["b1"]
h1 = np.maximum(z1, np.float32(0))
logits = h1 @ p["W2"] + p["b2"]
return logits, {"x": x, "z1": z1, "h1": h1}''',
    "np.dot and np.maximum": '''z1 = np.dot(x, params["W1"]) + params["b1"]
h1 = np.maximum(z1, 0)
return np.dot(h1, params["W2"]) + params["b2"], {"x": x, "z1": z1, "h1": h1}''',
})
def check_forward(forward: Any) -> str:
    expect_callable(forward, name="forward")
    for dtype in (np.float64, np.float32):  # float32 is what the lab trains in
        params, x, _ = _tiny_network(n_in=19, n_hidden=12, n_out=5, n=7)
        params, x = {k: v.astype(dtype) for k, v in params.items()}, x.astype(dtype)
        want_logits, want_cache = ref.forward({k: v.astype(np.float64) for k, v in params.items()}, x.astype(np.float64))
        try:
            result = forward(_copies(params), x.copy())
        except ValueError as exc:
            raise Mismatch(f"Running your forward pass raised ValueError: {str(exc)[:200]}",
                           "This lab keeps one example per row: x is (n, 784) and W1 is (784, H), so a layer is "
                           "x @ W1 + b1 (not W1 @ x, the column-vector layout of Labs 01-02).") from None
        logits, cache = _pair(result, "forward", "(logits, cache)")
        hint = _FORWARD_HINT
        got = np.asarray(logits, dtype=float) if np.shape(logits) == want_logits.shape else None
        if got is not None and np.allclose(got, softmax(want_logits, axis=1)):
            hint = "These are probabilities: return the logits h1 @ W2 + b2 and leave softmax to the loss."
        elif got is not None and np.allclose(got, relu(want_logits)):
            hint = "No ReLU on the output layer: logits may be negative. " + _FORWARD_HINT
        where = "" if dtype is np.float64 else " (float32 inputs)"
        expect_array(logits, want_logits, name=f"logits{where}", hint=hint, **_tolerance(logits, x))
        expect(isinstance(cache, dict), f"The cache should be a dict, but it is a {type(cache).__name__}.",
               'Return {"x": x, "z1": z1, "h1": h1}: the backward pass reads these three.')
        for key in ("x", "z1", "h1"):
            expect(key in cache, f"The cache has no entry {key!r}.", 'Return {"x": x, "z1": z1, "h1": h1}.')
            expect_array(cache[key], want_cache[key], name=f"cache['{key}']{where}", hint=_FORWARD_HINT,
                         **_tolerance(cache[key], x))
    return ("Logits and cache match the reference for a batch of 7 (19 inputs, 12 hidden units, 5 classes), "
            "in float64 and in float32.")


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
    "gradient from a softmax that overflows": '''n = logits.shape[0]
rows = np.arange(n)
loss = -log_softmax(logits, axis=1)[rows, y].mean()
e = np.exp(logits)
dlogits = e / e.sum(axis=1, keepdims=True)
dlogits[rows, y] -= 1.0
return loss, dlogits / n''',
    "shifted by the batch's largest logit, not each row's": '''n = logits.shape[0]
rows = np.arange(n)
e = np.exp(logits - logits.max())
p = e / e.sum(axis=1, keepdims=True)
loss = -np.log(p[rows, y]).mean()
p[rows, y] -= 1.0
return loss, p / n''',
}, accepted_answers={
    "computed in float32": '''n = logits.shape[0]
rows = np.arange(n)
log_probs = log_softmax(logits, axis=1).astype(np.float32)
loss = -log_probs[rows, y].mean()
dlogits = np.exp(log_probs)
dlogits[rows, y] -= np.float32(1)
return loss, dlogits / np.float32(n)''',
    "softmax and a one-hot matrix from np.eye": '''n = logits.shape[0]
loss = -log_softmax(logits, axis=1)[np.arange(n), y].mean()
return loss, (softmax(logits, axis=1) - np.eye(logits.shape[1])[y]) / n''',
})
def check_softmax_cross_entropy(softmax_cross_entropy: Any) -> str:
    expect_callable(softmax_cross_entropy, name="softmax_cross_entropy")
    rng = np.random.default_rng(3)
    logits, y = 3.0 * rng.standard_normal((6, 10)), np.array([3, 0, 9, 3, 7, 1])
    want_loss, want_grad = ref.softmax_cross_entropy(logits, y)
    loss, dlogits = _pair(softmax_cross_entropy(logits.copy(), y.copy()), "softmax_cross_entropy", "(loss, dlogits)")
    expect_number(loss, want_loss, name="loss", rtol=_tolerance(dlogits)["rtol"],
                  hint="The loss is the mean over the batch of −log p[i, y[i]], where p = softmax over the classes "
                       "(axis=1, one row per example); log_softmax(logits, axis=1) gives log p directly.")
    hint = "dL/dlogits = (softmax(logits) − onehot(y)) / n: p minus 1 at each row's true class, divided by the batch size."
    if np.shape(dlogits) == want_grad.shape and np.allclose(np.asarray(dlogits, dtype=float), 6 * want_grad):
        hint = "Divide by n: the loss is the mean over the batch, so each example's share of the gradient is 1/n."
    tolerance = _tolerance(dlogits)
    expect_array(dlogits, want_grad, name="dlogits", hint=hint, **{**tolerance, "atol": tolerance["atol"] / 10})
    small = 2.0 * rng.standard_normal((4, 7)).astype(np.float32)  # the lab's dtype, another number of classes
    want_loss, want_grad = ref.softmax_cross_entropy(small.astype(np.float64), np.array([6, 0, 2, 2]))
    loss, dlogits = _pair(softmax_cross_entropy(small.copy(), np.array([6, 0, 2, 2])), "softmax_cross_entropy",
                          "(loss, dlogits)")
    expect_number(loss, want_loss, name="loss for 4 examples of 7 classes (float32 logits)", rtol=1e-4,
                  hint="Use the number of classes and of examples of the logits you are given: logits.shape.")
    expect_array(dlogits, want_grad, name="dlogits for 4 examples of 7 classes (float32 logits)", rtol=1e-4, atol=1e-6,
                 hint="Use the number of classes and of examples of the logits you are given: logits.shape.")
    # rows far apart: a shift by the batch's maximum, or a softmax without any shift, overflows or
    # underflows in one of them; and label 2 of the last row has probability e^-2000, 0 in floating point
    big, labels = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0], [1000.0, 0.0, -1000.0]]), np.array([0, 2, 2])
    want_loss, want_grad = ref.softmax_cross_entropy(big, labels)
    stable = ("Compute log p with log_softmax and p with softmax (the log-sum-exp trick of Lab 03: subtract each "
              "row's largest logit before exp). exp(1000) overflows to infinity, exp(-1000) underflows to 0, and "
              "log(softmax(...)) takes the log of a probability that underflowed to 0.")
    with np.errstate(all="ignore"):
        loss, dlogits = _pair(softmax_cross_entropy(big.copy(), labels.copy()), "softmax_cross_entropy", "(loss, dlogits)")
    expect_number(loss, want_loss, name="the loss for logits [[1000, 1001, 1002], [-1000, -1001, -1002], "
                  "[1000, 0, -1000]] with labels [0, 2, 2]", rtol=1e-6, hint=stable)
    expect_array(dlogits, want_grad, name="dlogits for those huge logits", rtol=1e-6, atol=1e-9, hint=stable)
    return (f"Loss and gradient match the reference (loss {ref.softmax_cross_entropy(logits, y)[0]:.4f} on the "
            "check's batch, also for 7 classes in float32), and stay right for logits of ±1000.")


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
    "divided by the batch size again": '''x, z1, h1 = cache["x"], cache["z1"], cache["h1"]
n = len(x)
dz1 = (dlogits @ params["W2"].T) * relu_grad(z1)
return {"W1": x.T @ dz1 / n, "b1": dz1.sum(axis=0) / n, "W2": h1.T @ dlogits / n, "b2": dlogits.sum(axis=0) / n}''',
}, accepted_answers={
    "the ReLU gate from h1 > 0, in float32": '''x, h1 = cache["x"].astype(np.float32), cache["h1"].astype(np.float32)
d = dlogits.astype(np.float32)
dz1 = (d @ params["W2"].astype(np.float32).T) * (h1 > 0)
return {"W1": x.T @ dz1, "b1": dz1.sum(axis=0), "W2": h1.T @ d, "b2": d.sum(axis=0)}''',
    "einsum": '''x, z1, h1 = cache["x"], cache["z1"], cache["h1"]
dz1 = np.einsum("nk,hk->nh", dlogits, params["W2"]) * (z1 > 0)
return {"W1": np.einsum("ni,nh->ih", x, dz1), "b1": dz1.sum(axis=0),
        "W2": np.einsum("nh,nk->hk", h1, dlogits), "b2": dlogits.sum(axis=0)}''',
})
def check_backward(backward: Any) -> str:
    expect_callable(backward, name="backward")
    params, x, y = _tiny_network(n_in=13, n_hidden=9, n_out=10, n=6)
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
    "hard-coded the learning rate 0.1": '''new_velocity = {k: momentum * velocity[k] + grads[k] for k in params}
return {k: params[k] - 0.1 * new_velocity[k] for k in params}, new_velocity''',
    "hard-coded the momentum 0.9": '''new_velocity = {k: 0.9 * velocity[k] + grads[k] for k in params}
return {k: params[k] - lr * new_velocity[k] for k in params}, new_velocity''',
    "an average of the gradients, v = mu*v + (1 - mu)*g": '''new_velocity = {k: momentum * velocity[k] + (1 - momentum) * grads[k] for k in params}
return {k: params[k] - lr * new_velocity[k] for k in params}, new_velocity''',
}, accepted_answers={
    "updated the arrays in place": '''for k in params:
    velocity[k] *= momentum
    velocity[k] += grads[k]
    params[k] -= lr * velocity[k]
return params, velocity''',
    "computed in float32": '''v = {k: np.float32(momentum) * velocity[k].astype(np.float32) + grads[k].astype(np.float32) for k in params}
return {k: params[k].astype(np.float32) - np.float32(lr) * v[k] for k in params}, v''',
})
def check_momentum_step(momentum_step: Any) -> str:
    expect_callable(momentum_step, name="momentum_step")
    params, _, _ = _tiny_network(n_in=5, n_hidden=4, n_out=3)
    rng = np.random.default_rng(11)
    gradients = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(10)]
    for lr, momentum in ((0.1, 0.9), (0.037, 0.62)):  # the lab's values, then others: nothing hard-coded
        ours, ours_v = _copies(params), {k: np.zeros_like(v) for k, v in params.items()}
        theirs, theirs_v = _copies(params), {k: np.zeros_like(v) for k, v in params.items()}
        for step, grads in enumerate(gradients, start=1):
            ours, ours_v = ref.momentum_step(ours, grads, ours_v, lr=lr, momentum=momentum)
            result = momentum_step(_copies(theirs), _copies(grads), _copies(theirs_v), lr, momentum)
            theirs, theirs_v = _pair(result, "momentum_step", "(params, velocity)")
            _expect_param_dict(theirs, "the new params", params)
            _expect_param_dict(theirs_v, "the new velocity", params)
            at = f"after step {step} with lr={lr}, momentum={momentum}"
            for key in ref.PARAM_NAMES:
                expect_array(theirs_v[key], ours_v[key], name=f"velocity['{key}'] {at}",
                             hint="v ← momentum·v + g (the gradient itself, not (1 − momentum)·g), starting from v = 0, "
                                  "with the `momentum` you are given; return the new velocity so the next step uses it.",
                             **_tolerance(theirs_v[key]))
                expect_array(theirs[key], ours[key], name=f"params['{key}'] {at}",
                             hint="θ ← θ − lr·v with the new velocity and the `lr` you are given: minus, because the "
                                  "gradient points uphill.", **_tolerance(theirs[key]))
    return ("Ten momentum steps on all four parameters match torch.optim.SGD's rule, at the lab's lr 0.1 and momentum "
            "0.9 and at lr 0.037, momentum 0.62.")
