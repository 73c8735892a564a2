"""The lab 02 checks, called directly: they accept right answers and explain wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

from dlcourse.checks.lab02 import (NEURON, check_backward, check_backward_deltas, check_compute_gradients,
                                   check_neuron_gradients, check_value_ops, neuron_gradients, random_network,
                                   two_layer_backward, two_layer_forward)
from dlcourse.functions import mse, numeric_gradient, relative_error, sigmoid
from dlcourse.graphs import Value, topological_order


# ------------------------------------------------------------------------------ 02.1

def test_neuron_gradients() -> None:
    g = neuron_gradients(**NEURON)
    right = (g["w0"], g["x0"], g["w1"], g["x1"], g["w2"])
    assert check_neuron_gradients.evaluate(*right).passed
    assert check_neuron_gradients.evaluate(*[round(v, 4) for v in right]).passed, "four decimals by hand are fine"
    assert check_neuron_gradients.evaluate(None, *right[1:]).status == "not_attempted"
    s = float(sigmoid(NEURON["w0"] * NEURON["x0"] + NEURON["w1"] * NEURON["x1"] + NEURON["w2"]))
    dz = s * (1 + s)
    wrong = check_neuron_gradients.evaluate(dz * NEURON["x0"], dz * NEURON["w0"], dz * NEURON["x1"], dz * NEURON["w1"], dz)
    assert wrong.status == "failed" and "with a minus" in wrong.hint
    assert "remove the quotes" in check_neuron_gradients.evaluate(*right[:4], "0.1966").message


# ------------------------------------------------------------------------------ 02.2

def _deltas(cache, y, W2):
    a1, a2 = cache["a1"], cache["a2"]
    delta2 = 2.0 * (a2 - y) / a2.size * a2 * (1 - a2)
    return delta2, (W2.T @ delta2) * a1 * (1 - a1)


def test_two_layer_reference_matches_numeric_gradients() -> None:
    net = random_network(np.random.default_rng(0), (3, 5, 2))
    ref = two_layer_backward(**net)
    for name in ("W1", "b1", "W2", "b2"):
        def loss(value, name=name):
            params = {k: net[k] for k in ("W1", "b1", "W2", "b2")} | {name: value}
            return mse(two_layer_forward(net["x"], **params)["a2"], net["y"])
        assert relative_error(numeric_gradient(loss, net[name]), ref[f"d{name}"]) < 1e-6


def test_backward_deltas() -> None:
    assert check_backward_deltas.evaluate(_deltas).passed

    def stub(cache, y, W2):
        raise NotImplementedError("Exercise 02.2: replace this line with your code.")

    def not_transposed(cache, y, W2):
        delta2 = _deltas(cache, y, W2)[0]
        return delta2, (W2 @ delta2) * cache["a1"] * (1 - cache["a1"])

    def plus_sigma(cache, y, W2):
        a1, a2 = cache["a1"], cache["a2"]
        delta2 = 2.0 * (a2 - y) / a2.size * a2 * (1 + a2)
        return delta2, (W2.T @ delta2) * a1 * (1 + a1)

    assert check_backward_deltas.evaluate(stub).status == "not_attempted"
    failed = check_backward_deltas.evaluate(not_transposed)
    assert failed.status == "failed" and "W2.T" in failed.hint and "ValueError" in failed.message
    assert "with a minus" in check_backward_deltas.evaluate(plus_sigma).hint
    assert "two arrays" in check_backward_deltas.evaluate(lambda cache, y, W2: 3).message
    assert "should be a function" in check_backward_deltas.evaluate(np.zeros(2)).message


# ------------------------------------------------------------------------------ 02.3 and 02.4

class TanhOneMinusT(Value):
    def tanh(self):
        t = float(np.tanh(self.data))
        return self._unary(t, "tanh", 1.0 - t)


class Overwrites(Value):
    def __add__(self, other):
        other = other if isinstance(other, Value) else Overwrites(other)
        out = Overwrites(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad = out.grad
            other.grad = out.grad
        out._backward = _backward
        return out


class Broken(Value):
    def exp(self):
        return "not a Value"


def test_value_ops() -> None:
    assert check_value_ops.evaluate(Value).passed
    tanh = check_value_ops.evaluate(TanhOneMinusT)
    assert tanh.status == "failed" and "`tanh` operation" in tanh.message and "1 − t²" in tanh.hint
    overwrite = check_value_ops.evaluate(Overwrites)
    assert overwrite.status == "failed" and "a + a" in overwrite.message and "+=" in overwrite.hint
    broken = check_value_ops.evaluate(Broken)
    assert broken.status == "failed" and "AttributeError" in broken.message
    assert "the class you defined" in check_value_ops.evaluate(Value(1.0)).message


def _right_backward(root) -> None:
    root.grad = 1.0
    for node in reversed(topological_order(root)):
        node._backward()


def _breadth_first(root) -> None:
    root.grad = 1.0
    queue, seen = [root], set()
    while queue:
        node = queue.pop(0)
        if node not in seen:
            seen.add(node)
            node._backward()
            queue.extend(node._prev)


def test_backward() -> None:
    assert check_backward.evaluate(_right_backward).passed
    unsorted = check_backward.evaluate(_breadth_first)
    assert unsorted.status == "failed" and "used twice" in unsorted.message and "post-order" in unsorted.hint
    no_seed = check_backward.evaluate(lambda root: [n._backward() for n in reversed(topological_order(root))])
    assert no_seed.status == "failed" and "root.grad = 1.0" in no_seed.hint
    assert check_backward.evaluate(lambda root: (_ for _ in ()).throw(NotImplementedError())).status == "not_attempted"


# ------------------------------------------------------------------------------ 02.5

def test_compute_gradients() -> None:
    tf = pytest.importorskip("tensorflow")

    def right(model, loss_fn, x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    def outside(model, loss_fn, x, y):
        with tf.GradientTape() as tape:
            predictions = model(x, training=True)
        return tape.gradient(loss_fn(y, predictions), model.trainable_variables)

    assert check_compute_gradients.evaluate(right).passed
    bug = check_compute_gradients.evaluate(outside)
    assert bug.status == "failed" and "None" in bug.message and "inside its `with` block" in bug.hint
    assert "one gradient per trainable variable" in check_compute_gradients.evaluate(lambda m, f, x, y: 0.5).message


def test_neuron_gradients_accept_three_decimals_and_reject_chain_rule_mistakes() -> None:
    assert NEURON == {"w0": 2.0, "x0": -1.0, "w1": -3.0, "x1": -2.0, "w2": -2.5}, "no two inputs share a value"
    assert check_neuron_gradients.evaluate(-0.149, 0.298, -0.298, -0.447, 0.149).passed, "three decimals, as lab 01 taught"
    dz = 0.149  # a rounded dz carried through the × rules in code
    assert check_neuron_gradients.evaluate(dz * -1.0, dz * 2.0, dz * -2.0, dz * -3.0, dz).passed
    assert check_neuron_gradients.evaluate(-0.149, 0.298, -0.298, -0.447, 1.0).status == "failed", "dw2 without dz"
    assert check_neuron_gradients.evaluate(0.149, -0.298, 0.298, 0.447, 0.149).status == "failed", "signs flipped"
    assert check_neuron_gradients.evaluate(0.298, -0.149, -0.447, -0.298, 0.149).status == "failed", "× rule swapped"
    assert check_neuron_gradients.evaluate(-0.149, 0.298, -0.298, dz * -2.5, 0.149).status == "failed", "w2 for w1"


def test_compute_gradients_catches_swapped_loss_arguments() -> None:
    import tensorflow as tf

    def swapped(model, loss_fn, x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(model(x, training=True), y)
        return tape.gradient(loss, model.trainable_variables)

    def right(model, loss_fn, x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x))
        return tape.gradient(loss, model.trainable_weights)

    result = check_compute_gradients.evaluate(swapped)
    assert result.status == "failed" and "cross-entropy" in result.message and "(y_true, y_pred)" in result.hint
    assert check_compute_gradients.evaluate(right).passed


# ------------------------------------------------------------------------------ 02.6 and the MLP on the engine

from dlcourse import value_mlp  # noqa: E402
from dlcourse.checks.lab02 import check_training_pieces  # noqa: E402


class _MLP(value_mlp.MLP):
    """The lab's MLP(n_in, sizes, rng) on the reference Value."""

    def __init__(self, n_in, sizes, rng):
        super().__init__(n_in, sizes, rng, Value)


def _ascent(parameters, lr):
    for p in parameters:
        p.data += lr * p.grad


def test_training_pieces() -> None:
    assert check_training_pieces.evaluate(_MLP, value_mlp.zero_grad, value_mlp.sgd_step).passed
    climbing = check_training_pieces.evaluate(_MLP, value_mlp.zero_grad, _ascent)
    assert climbing.status == "failed" and "subtracts" in climbing.hint

    def fixed_lr(parameters, lr):
        value_mlp.sgd_step(parameters, 0.1)

    assert "lr=0.037" in check_training_pieces.evaluate(_MLP, value_mlp.zero_grad, fixed_lr).message

    class NoBias(_MLP):
        def parameters(self):
            return [w for layer in self.layers for n in layer.neurons for w in n.w]

    assert "biases are missing" in check_training_pieces.evaluate(NoBias, value_mlp.zero_grad, value_mlp.sgd_step).hint

    def stub(parameters):
        raise NotImplementedError("Exercise 02.6: replace this line with your code.")

    assert check_training_pieces.evaluate(_MLP, stub, value_mlp.sgd_step).status == "not_attempted"


def _trained_accuracy(sgd_step) -> float:
    X, y = value_mlp.make_moons(80, seed=1)
    model = _MLP(2, [8, 8, 1], np.random.default_rng(0))
    value_mlp.train_value_mlp(model, X, y, parameters=model.parameters, zero_grad=value_mlp.zero_grad, sgd_step=sgd_step,
                              steps=40, lr=0.5, batch_size=16, progress=False)
    return value_mlp.accuracy(model, X, y)


def test_headline_accuracy_comes_from_the_students_step() -> None:
    right, wrong = _trained_accuracy(value_mlp.sgd_step), _trained_accuracy(_ascent)
    assert right >= 0.85 and wrong < right - 0.2, (right, wrong)
