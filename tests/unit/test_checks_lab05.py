"""The lab 05 checks, called directly: they accept right answers and explain wrong ones."""

from __future__ import annotations

import numpy as np

from dlcourse import mlp
from dlcourse.checks.lab05 import (check_backward, check_dropout, check_forward, check_momentum_step,
                                   check_prepare_images, check_softmax_cross_entropy, check_weight_decay)
from dlcourse.functions import relu, relu_grad, softmax


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise 05.k: replace this line with your code.")


def test_prepare_images() -> None:
    assert check_prepare_images.evaluate(mlp.prepare_images).passed
    assert check_prepare_images.evaluate(_stub).status == "not_attempted"
    assert check_prepare_images.evaluate(None).status == "not_attempted"
    unscaled = check_prepare_images.evaluate(lambda im: im.reshape(len(im), -1).astype(np.float32))
    assert unscaled.status == "failed" and "up to 255" in unscaled.message and "Divide by 255" in unscaled.hint
    flat = check_prepare_images.evaluate(lambda im: im.reshape(-1).astype(np.float32) / 255)
    assert flat.status == "failed" and "(2352,)" in flat.message and "One row per image" in flat.hint
    wide = check_prepare_images.evaluate(lambda im: im.reshape(len(im), -1) / 255.0)
    assert wide.status == "failed" and "float64" in wide.message and "half" in wide.hint
    integer = check_prepare_images.evaluate(lambda im: im.reshape(len(im), -1) // 255)
    assert integer.status == "failed" and "uint8" in integer.message
    transposed = check_prepare_images.evaluate(lambda im: im.transpose(0, 2, 1).reshape(len(im), -1).astype(np.float32) / 255)
    assert transposed.status == "failed" and "reshape, not transpose" in transposed.hint

    def in_place(im):
        im //= 2
        return mlp.prepare_images(im)

    assert "changed the images" in check_prepare_images.evaluate(in_place).message
    assert "should be a function" in check_prepare_images.evaluate(np.zeros((7, 784))).message


def test_forward() -> None:
    assert check_forward.evaluate(mlp.forward).passed
    assert check_forward.evaluate(_stub).status == "not_attempted"

    def no_bias(params, x):
        z1 = x @ params["W1"]
        h1 = relu(z1)
        return h1 @ params["W2"], {"x": x, "z1": z1, "h1": h1}

    def probabilities(params, x):
        logits, cache = mlp.forward(params, x)
        return softmax(logits, axis=1), cache

    def output_relu(params, x):
        logits, cache = mlp.forward(params, x)
        return relu(logits), cache

    assert check_forward.evaluate(no_bias).status == "failed"
    assert "probabilities" in check_forward.evaluate(probabilities).hint
    assert "No ReLU on the output" in check_forward.evaluate(output_relu).hint
    only_logits = check_forward.evaluate(lambda params, x: mlp.forward(params, x)[0])
    assert only_logits.status == "failed" and "two values" in only_logits.message
    no_cache = check_forward.evaluate(lambda params, x: (mlp.forward(params, x)[0], {"x": x}))
    assert no_cache.status == "failed" and "'z1'" in no_cache.message


def test_softmax_cross_entropy() -> None:
    assert check_softmax_cross_entropy.evaluate(mlp.softmax_cross_entropy).passed

    def undivided(logits, y):
        loss, grad = mlp.softmax_cross_entropy(logits, y)
        return loss, grad * len(y)

    def naive_log(logits, y):
        p = softmax(logits, axis=1)
        loss = -np.log(p[np.arange(len(y)), y]).mean()
        return loss, mlp.softmax_cross_entropy(logits, y)[1]

    def batch_axis(logits, y):
        return mlp.softmax_cross_entropy(logits.T, y[:10] if len(y) >= 10 else np.resize(y, 10))

    assert check_softmax_cross_entropy.evaluate(_stub).status == "not_attempted"
    result = check_softmax_cross_entropy.evaluate(undivided)
    assert result.status == "failed" and "Divide by n" in result.hint
    result = check_softmax_cross_entropy.evaluate(naive_log)
    assert result.status == "failed" and "log_softmax" in result.hint and "1000" in result.message
    assert check_softmax_cross_entropy.evaluate(batch_axis).status == "failed"
    assert "two values" in check_softmax_cross_entropy.evaluate(lambda logits, y: 2.3).message


def test_backward() -> None:
    passed = check_backward.evaluate(mlp.backward)
    assert passed.passed and "gradient check" in passed.message
    assert check_backward.evaluate(_stub).status == "not_attempted"

    def no_relu_grad(params, cache, dlogits):
        grads = mlp.backward(params, cache, dlogits)
        dz1 = dlogits @ params["W2"].T
        return {**grads, "W1": cache["x"].T @ dz1, "b1": dz1.sum(axis=0)}

    def averaged_biases(params, cache, dlogits):
        grads = mlp.backward(params, cache, dlogits)
        dz1 = (dlogits @ params["W2"].T) * relu_grad(cache["z1"])
        return {**grads, "b1": dz1.mean(axis=0), "b2": dlogits.mean(axis=0)}

    def untransposed(params, cache, dlogits):
        dz1 = (dlogits @ params["W2"]) * relu_grad(cache["z1"])
        return mlp.backward(params, cache, dlogits) | {"W1": cache["x"].T @ dz1}

    result = check_backward.evaluate(no_relu_grad)
    assert result.status == "failed" and "W1" in result.message and "relu_grad(z1)" in result.hint
    result = check_backward.evaluate(averaged_biases)
    assert result.status == "failed" and "b1" in result.message and "do not average" in result.hint
    result = check_backward.evaluate(untransposed)
    assert result.status == "failed" and "ValueError" in result.message and "transpose" in result.hint
    swapped = check_backward.evaluate(lambda p, c, d: {**mlp.backward(p, c, d), "W2": d.T @ c["h1"]})
    assert swapped.status == "failed" and "shape (10, 9)" in swapped.message
    missing = check_backward.evaluate(lambda p, c, d: {k: v for k, v in mlp.backward(p, c, d).items() if k != "b2"})
    assert missing.status == "failed" and "b2" in missing.message
    assert "should be a dict" in check_backward.evaluate(lambda p, c, d: [1, 2, 3, 4]).message


def test_momentum_step() -> None:
    assert check_momentum_step.evaluate(mlp.momentum_step).passed
    assert check_momentum_step.evaluate(_stub).status == "not_attempted"

    def uphill(params, grads, velocity, lr, momentum=0.9):
        v = {k: momentum * velocity[k] + grads[k] for k in params}
        return {k: params[k] + lr * v[k] for k in params}, v

    def no_velocity(params, grads, velocity, lr, momentum=0.9):
        return {k: params[k] - lr * grads[k] for k in params}, velocity

    def in_place(params, grads, velocity, lr, momentum=0.9):
        for k in params:
            velocity[k] *= momentum
            velocity[k] += grads[k]
            params[k] -= lr * velocity[k]
        return params, velocity

    result = check_momentum_step.evaluate(uphill)
    assert result.status == "failed" and "params['W1'] after step 1" in result.message and "minus" in result.hint
    result = check_momentum_step.evaluate(no_velocity)
    assert result.status == "failed" and "velocity['W1'] after step 1" in result.message
    assert check_momentum_step.evaluate(in_place).passed, "updating in place is fine"
    assert "two values" in check_momentum_step.evaluate(lambda p, g, v, lr, m: p).message


def test_forward_accepts_float32_and_explains_the_column_layout() -> None:
    def in_float32(params, x):
        return mlp.forward({k: v.astype(np.float32) for k, v in params.items()}, x.astype(np.float32))

    assert check_forward.evaluate(in_float32).passed
    columns = check_forward.evaluate(lambda params, x: mlp.forward({**params, "W1": params["W1"].T}, x.T))
    assert columns.status == "failed" and "ValueError" in columns.message and "x @ W1" in columns.hint


def test_softmax_cross_entropy_checks_the_gradient_at_huge_logits() -> None:
    def overflowing(logits, y):
        e = np.exp(logits)
        p = e / e.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        return mlp.softmax_cross_entropy(logits, y)[0], p / len(y)

    result = check_softmax_cross_entropy.evaluate(overflowing)
    assert result.status == "failed" and "huge logits" in result.message and "log-sum-exp" in result.hint
    in_float32 = check_softmax_cross_entropy.evaluate(lambda z, y: mlp.softmax_cross_entropy(z.astype(np.float32), y))
    assert in_float32.passed


def test_momentum_step_is_called_at_other_values_than_the_labs() -> None:
    def fixed_lr(params, grads, velocity, lr, momentum=0.9):
        return mlp.momentum_step(params, grads, velocity, 0.1, momentum)

    def fixed_momentum(params, grads, velocity, lr, momentum=0.9):
        return mlp.momentum_step(params, grads, velocity, lr, 0.9)

    for wrong in (fixed_lr, fixed_momentum):
        result = check_momentum_step.evaluate(wrong)
        assert result.status == "failed" and "lr=0.037, momentum=0.62" in result.message


def test_dropout() -> None:
    assert check_dropout.evaluate(mlp.dropout).passed
    assert check_dropout.evaluate(_stub).status == "not_attempted"

    def unscaled(h, rate, rng, training=True):
        out, mask = mlp.dropout(h, rate, rng, training)
        return out * (1 - rate), mask * (1 - rate)

    def always_on(h, rate, rng, training=True):
        return mlp.dropout(h, rate, rng, True)

    def keep_prob(h, rate, rng, training=True):
        return mlp.dropout(h, 1 - rate, rng, training)

    result = check_dropout.evaluate(unscaled)
    assert result.status == "failed" and "1/(1 - rate)" in result.message
    result = check_dropout.evaluate(always_on)
    assert result.status == "failed" and "training=False" in result.message
    result = check_dropout.evaluate(keep_prob)
    assert result.status == "failed" and "zeroed" in result.message
    assert "two values" in check_dropout.evaluate(lambda h, rate, rng, training=True: h).message


def test_weight_decay() -> None:
    assert check_weight_decay.evaluate(mlp.add_weight_decay).passed
    assert check_weight_decay.evaluate(_stub).status == "not_attempted"
    biases = check_weight_decay.evaluate(lambda g, p, wd: {k: g[k] + wd * p[k] for k in g})
    assert biases.status == "failed" and "b1" in biases.message and "not decayed" in biases.hint
    fixed = check_weight_decay.evaluate(lambda g, p, wd: mlp.add_weight_decay(g, p, 0.013))
    assert fixed.status == "failed" and "weight_decay=0.21" in fixed.message
