"""Checks for lab 02 (backprop by hand): the chain rule on a neuron's graph, the deltas of a
2-layer sigmoid network, a scalar autograd engine (its operations and its backward pass),
and the TensorFlow "loss outside the tape" bug; 02.6 (the training pieces of an MLP on the
engine) is in `dlcourse.checks.lab02_training`, re-exported here.

The references here are also what the lab uses after each exercise, so the lab runs to the
end even before the student has solved anything.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Callable

import numpy as np

from dlcourse.check import Mismatch, NotAttempted, expect, expect_array, expect_callable, expect_number, exercise
from dlcourse.functions import mse, sigmoid, sigmoid_grad
from dlcourse.graphs import Expression, Step, Value, random_expression, topological_order, torch_gradients
from dlcourse.checks.lab02_training import check_training_pieces  # registers 02.6 with the lab's other checks

# ------------------------------------------------------------------------------ 02.1 a neuron's graph

HAND_ATOL, HAND_RTOL = 1e-3, 4e-3  # three decimals typed by hand, or a three-decimal dz multiplied through
NEURON = {"w0": 2.0, "x0": -1.0, "w1": -3.0, "x1": -2.0, "w2": -2.5}  # f = σ(w0·x0 + w1·x1 + w2)


def neuron_gradients(w0: float, x0: float, w1: float, x1: float, w2: float) -> dict[str, float]:
    """∂f/∂(each input) for f = σ(w0·x0 + w1·x1 + w2), by the chain rule."""
    dz = float(sigmoid_grad(w0 * x0 + w1 * x1 + w2))
    return {"w0": dz * x0, "x0": dz * w0, "w1": dz * x1, "x1": dz * w1, "w2": dz}


@exercise("02.1", "Chain rule on a neuron's graph", wrong_answers={
    "σ' written as σ(1 + σ)": "dz = s * (1 + s)\ndw2 = dz\ndw0, dx0 = dz * x0, dz * w0\ndw1, dx1 = dz * x1, dz * w1",
    "forgot σ' (the gradient skips the sigmoid)": "dz = 1.0\ndw2 = dz\ndw0, dx0 = dz * x0, dz * w0\ndw1, dx1 = dz * x1, dz * w1",
    "swapped the × rule": "dz = s * (1 - s)\ndw2 = dz\ndw0, dx0 = dz * w0, dz * x0\ndw1, dx1 = dz * w1, dz * x1",
    "dw2 = 1, the + node's local derivative without dz": "dz = s * (1 - s)\ndw2 = 1.0\ndw0, dx0 = dz * x0, dz * w0\n"
                                                       "dw1, dx1 = dz * x1, dz * w1",
    "σ'(z) taken as z(1 − z)": "dz = z * (1 - z)\ndw2 = dz\ndw0, dx0 = dz * x0, dz * w0\ndw1, dx1 = dz * x1, dz * w1",
    "mixed up the names: w2 for w1 in dx1": "dz = s * (1 - s)\ndw2 = dz\ndw0, dx0 = dz * x0, dz * w0\ndw1, dx1 = dz * x1, dz * w2",
    "sign of the × rule flipped": "dz = s * (1 - s)\ndw2 = dz\ndw0, dx0 = -dz * x0, -dz * w0\ndw1, dx1 = -dz * x1, -dz * w1",
}, accepted_answers={
    "typed to three decimals": "dz = 0.149\ndw2 = 0.149\ndw0, dx0 = -0.149, 0.298\ndw1, dx1 = -0.298, -0.447",
    "dz rounded to three decimals, then the rules in code": "dz = 0.149\ndw2 = dz\ndw0, dx0 = dz * x0, dz * w0\n"
                                                             "dw1, dx1 = dz * x1, dz * w1",
    "σ' from the library": "dz = float(sigmoid_grad(w0 * x0 + w1 * x1 + w2))\ndw2 = dz\ndw0, dx0 = dz * x0, dz * w0\n"
                           "dw1, dx1 = dz * x1, dz * w1",
})
def check_neuron_gradients(dw0: Any, dx0: Any, dw1: Any, dx1: Any, dw2: Any) -> str:
    want = neuron_gradients(**NEURON)
    s = float(sigmoid(NEURON["w0"] * NEURON["x0"] + NEURON["w1"] * NEURON["x1"] + NEURON["w2"]))
    hint = _diagnose_dz(dw2, s) or (
        "Work right to left: ∂f/∂z = σ(z)(1 − σ(z)); a + node passes that on unchanged, and a × node "
        "sends each input the OTHER input times the gradient arriving from the right.")
    got = {"w2": dw2, "w0": dw0, "x0": dx0, "w1": dw1, "x1": dx1}
    for name, value in got.items():
        # Three decimals, as lab 01 taught, also when a rounded dz is carried through the × rules (0.34% relative).
        expect_number(value, want[name], name=f"d{name}", rtol=HAND_RTOL, atol=HAND_ATOL, hint=hint)
    z = NEURON["w0"] * NEURON["x0"] + NEURON["w1"] * NEURON["x1"] + NEURON["w2"]
    return (f"∂f/∂z = σ'({z:g}) = {want['w2']:.4f}, and every input's gradient follows from it: "
            f"dw0 = {want['w0']:.4f}, dx0 = {want['x0']:.4f}, dw1 = {want['w1']:.4f}, dx1 = {want['x1']:.4f}.")


def _diagnose_dz(value: Any, s: float) -> str:
    """A specific hint when ∂f/∂z was written with a typical mistake."""
    try:
        dz = float(np.asarray(value, dtype=float))
    except (TypeError, ValueError):
        return ""
    if np.isclose(dz, s * (1 + s)):
        return "σ'(z) = σ(z)(1 − σ(z)), with a minus: your dz is σ(1 + σ)."
    if np.isclose(dz, 1.0):
        return "The sigmoid sits between z and f: multiply by σ'(z) = σ(z)(1 − σ(z))."
    return ""


# ------------------------------------------------------------------------------ 02.2 two-layer deltas

def two_layer_forward(x: np.ndarray, W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray) -> dict[str, np.ndarray]:
    """z1 = W1 x + b1, a1 = σ(z1), z2 = W2 a1 + b2, a2 = σ(z2) for one sample."""
    z1 = W1 @ x + b1
    a1 = sigmoid(z1)
    z2 = W2 @ a1 + b2
    return {"x": x, "z1": z1, "a1": a1, "z2": z2, "a2": sigmoid(z2)}


def two_layer_backward(x: np.ndarray, y: np.ndarray, W1: np.ndarray, b1: np.ndarray, W2: np.ndarray,
                       b2: np.ndarray) -> dict[str, Any]:
    """The forward values, the loss mse(a2, y), both deltas and all four gradients (the reference)."""
    c = two_layer_forward(x, W1, b1, W2, b2)
    dL_da2 = 2.0 * (c["a2"] - y) / y.size  # mse averages over the outputs
    delta2 = dL_da2 * sigmoid_grad(c["z2"])
    delta1 = (W2.T @ delta2) * sigmoid_grad(c["z1"])
    return {**c, "loss": mse(c["a2"], y), "dL_da2": dL_da2, "delta2": delta2, "delta1": delta1,
            "dW2": np.outer(delta2, c["a1"]), "db2": delta2, "dW1": np.outer(delta1, x), "db1": delta1}


def random_network(rng: np.random.Generator, sizes: tuple[int, int, int]) -> dict[str, np.ndarray]:
    n_in, n_hidden, n_out = sizes
    return {"x": rng.normal(size=n_in), "y": rng.uniform(size=n_out),
            "W1": rng.normal(size=(n_hidden, n_in)), "b1": rng.normal(size=n_hidden),
            "W2": rng.normal(size=(n_out, n_hidden)), "b2": rng.normal(size=n_out)}


_NETWORK_SIZES = ((3, 4, 2), (5, 3, 2), (2, 6, 3), (4, 4, 1))


@exercise("02.2", "The deltas of a 2-layer sigmoid network", wrong_answers={
    "σ' written as σ(1 + σ)": "dL_da2 = 2.0 * (a2 - y) / a2.size\ndelta2 = dL_da2 * a2 * (1.0 + a2)\n"
                              "delta1 = (W2.T @ delta2) * a1 * (1.0 + a1)",
    "W2 not transposed": "dL_da2 = 2.0 * (a2 - y) / a2.size\ndelta2 = dL_da2 * a2 * (1.0 - a2)\n"
                         "delta1 = (W2 @ delta2) * a1 * (1.0 - a1)",
    "forgot σ'(z1) in the hidden delta": "dL_da2 = 2.0 * (a2 - y) / a2.size\ndelta2 = dL_da2 * a2 * (1.0 - a2)\n"
                                         "delta1 = W2.T @ delta2",
    "dropped the 2/n of the mean squared error": "dL_da2 = a2 - y\ndelta2 = dL_da2 * a2 * (1.0 - a2)\n"
                                                 "delta1 = (W2.T @ delta2) * a1 * (1.0 - a1)",
    "summed instead of averaging (2, not 2/n)": "dL_da2 = 2.0 * (a2 - y)\ndelta2 = dL_da2 * a2 * (1.0 - a2)\n"
                                               "delta1 = (W2.T @ delta2) * a1 * (1.0 - a1)",
    "(y − a2) instead of (a2 − y)": "dL_da2 = 2.0 * (y - a2) / a2.size\ndelta2 = dL_da2 * a2 * (1.0 - a2)\n"
                                   "delta1 = (W2.T @ delta2) * a1 * (1.0 - a1)",
}, accepted_answers={
    "σ' from z with sigmoid_grad, n from len(y)": "dL_da2 = 2.0 * (a2 - y) / len(y)\ndelta2 = dL_da2 * sigmoid_grad(cache['z2'])\n"
                                                  "delta1 = (W2.T @ delta2) * sigmoid_grad(cache['z1'])",
    "np.dot and an explicit mean": "dL_da2 = 2.0 * (a2 - y) / np.size(y)\ndelta2 = dL_da2 * (a2 - a2 ** 2)\n"
                                   "delta1 = np.dot(W2.T, delta2) * (a1 - a1 ** 2)",
})
def check_backward_deltas(backward_deltas: Any) -> str:
    expect_callable(backward_deltas, name="backward_deltas")
    rng = np.random.default_rng(202)
    for sizes in _NETWORK_SIZES:
        net = random_network(rng, sizes)
        ref = two_layer_backward(**net)
        cache = two_layer_forward(net["x"], net["W1"], net["b1"], net["W2"], net["b2"])
        where = f"on a {sizes[0]}-{sizes[1]}-{sizes[2]} network"
        try:
            result = backward_deltas(copy.deepcopy(cache), net["y"].copy(), net["W2"].copy())
        except ValueError as exc:  # shape errors from @ and broadcasting
            raise Mismatch(f"backward_deltas raised ValueError {where}: {str(exc)[:160]}",
                           f"W2 has shape {net['W2'].shape} (outputs × hidden): it maps hidden units to outputs. "
                           "To send δ2 back to the hidden units use its transpose, W2.T @ delta2.") from None
        expect(isinstance(result, (tuple, list)) and len(result) == 2,
               f"backward_deltas should return two arrays (delta2, delta1), but it returned {type(result).__name__}.")
        delta2, delta1 = result
        a2, a1 = cache["a2"], cache["a1"]
        hint2 = ("δ2 = ∂L/∂z2 = ∂L/∂a2 ⊙ σ'(z2), with ∂L/∂a2 = 2(a2 − y)/n for the mean squared error over n "
                 "outputs and σ'(z2) = a2(1 − a2).")
        if np.allclose(np.asarray(delta2, dtype=float), ref["dL_da2"] * a2 * (1 + a2)):
            hint2 = "σ'(z) = σ(z)(1 − σ(z)), with a minus: you wrote a2(1 + a2)."
        expect_array(delta2, ref["delta2"], name=f"delta2 ({where})", rtol=1e-7, atol=1e-10, hint=hint2)
        hint1 = "δ1 = (W2.T @ δ2) ⊙ σ'(z1), with σ'(z1) = a1(1 − a1): back through W2, then through the sigmoid."
        if np.shape(delta1) == ref["delta1"].shape and np.allclose(np.asarray(delta1, dtype=float), net["W2"].T @ ref["delta2"]):
            hint1 = "You sent δ2 back through W2 but not through the hidden sigmoid: multiply by a1(1 − a1)."
        expect_array(delta1, ref["delta1"], name=f"delta1 ({where})", rtol=1e-7, atol=1e-10, hint=hint1)
    return f"delta2 and delta1 are right on all {len(_NETWORK_SIZES)} test networks (up to 6 hidden units, 1 to 3 outputs)."


# ------------------------------------------------------------------------------ 02.3 and 02.4 the engine

def _expression(leaves: tuple[float, ...], *steps: tuple) -> Expression:
    return Expression(leaves, tuple(Step(*s) for s in steps))


# (expression, what it tests, hint): each operation alone first, so a failure names the operation.
_OP_CASES = (
    (_expression((1.5, -0.5), ("+", (0, 1))), "+", "∂(a + b)/∂a = ∂(a + b)/∂b = 1: `+` passes out.grad to both inputs unchanged."),
    (_expression((1.5, -2.0), ("×", (0, 1))), "×", "∂(a·b)/∂a = b and ∂(a·b)/∂b = a: each input gets the OTHER input's data times out.grad."),
    (_expression((1.5,), ("**", (0,), 3.0)), "**", "The power rule: ∂(x**k)/∂x = k·x**(k − 1), times out.grad."),
    (_expression((0.7,), ("tanh", (0,))), "tanh", "With t = tanh(x), ∂t/∂x = 1 − t² (t squared, not t), times out.grad."),
    (_expression((1.3,), ("relu", (0,))), "relu", "relu passes out.grad where its input is positive and nothing (0) elsewhere."),
    (_expression((-0.4,), ("relu", (0,))), "relu", "relu passes out.grad where its input is positive and nothing (0) elsewhere."),
    (_expression((0.8,), ("exp", (0,))), "exp", "exp is its own derivative: ∂e^x/∂x = e^x, which is out.data."),
)
_ACCUMULATE = ("A Value used more than once receives gradient from every use: each _backward must ADD its "
               "contribution (self.grad += ...), never overwrite it (self.grad = ...).")
_REUSE_CASES = (
    (_expression((1.5,), ("+", (0, 0))), "a + a", _ACCUMULATE),
    (_expression((1.5,), ("×", (0, 0))), "a × a", _ACCUMULATE),
    (_expression((0.6, -1.1), ("×", (0, 1)), ("tanh", (2,)), ("+", (2, 3))), "a node used twice", _ACCUMULATE),
)
N_RANDOM = 200


@functools.cache
def random_expressions(n: int = N_RANDOM, seed: int = 2) -> tuple[Expression, ...]:
    """The seeded random expressions the engine checks use (2 to 4 leaves, 3 to 8 operations)."""
    rng = np.random.default_rng(seed)
    return tuple(random_expression(rng, int(rng.integers(2, 5)), int(rng.integers(3, 9))) for _ in range(n))


def _as_float(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Mismatch(f"{what} should be a number, but it is {type(value).__name__}.") from None
    expect(np.isfinite(number), f"{what} is {number}, not a finite number.")
    return number


def _reference_backward(root: Any) -> None:
    """Run the engine's own _backward closures in reverse topological order (what 02.4 asks for)."""
    root.grad = 1.0
    for node in reversed(topological_order(root)):
        node._backward()


def _compare(expression: Expression, build: Callable[[Any], Any], differentiate: Callable[[Any], None],
             label: str, hint: str) -> None:
    """Build and differentiate an expression with the student's code and compare with torch.autograd."""
    try:
        leaves, out = build(expression)
        differentiate(out)
        value = _as_float(out.data, f"f.data for {expression.describe()}")
        grads = [_as_float(leaf.grad, f"the gradient of {name} for {expression.describe()}")
                 for leaf, name in zip(leaves, expression.names())]
    except (NotImplementedError, NotAttempted, Mismatch):
        raise
    except Exception as exc:  # the student's code broke: say where, in one sentence
        raise Mismatch(f"For {label} ({expression.describe()}) your code raised {type(exc).__name__}: {str(exc)[:160]}",
                       hint) from None
    want_value, want_grads = torch_gradients(expression)
    expect(np.isclose(value, want_value, rtol=1e-9, atol=1e-12),
           f"For {label} ({expression.describe()}) your f.data is {value:.6g}, but it should be {want_value:.6g}.", hint)
    for name, got, want in zip(expression.names(), grads, want_grads):
        expect(np.isclose(got, want, rtol=1e-9, atol=1e-10),
               f"For {label} ({expression.describe()}) your ∂f/∂{name} is {got:.6g}, but torch.autograd gives {want:.6g}.",
               hint)


def _check_engine(build: Callable[[Any], Any], differentiate: Callable[[Any], None], random_hint: str,
                  only_hint: str = "") -> None:
    """Single operations, then reused nodes, then the random expressions; `only_hint` replaces every hint."""
    for expression, what, hint in _OP_CASES:
        _compare(expression, build, differentiate, f"the `{what}` operation alone", only_hint or hint)
    for expression, what, hint in _REUSE_CASES:
        _compare(expression, build, differentiate, what, only_hint or hint)
    for k, expression in enumerate(random_expressions()):
        _compare(expression, build, differentiate, f"random expression {k + 1} of {N_RANDOM}", only_hint or random_hint)


@exercise("02.3", "A scalar autograd engine: each operation's local derivative", wrong_answers={
    "= instead of += (gradients overwrite instead of accumulating)": [
        "self.grad = out.grad\nother.grad = out.grad",
        "self.grad = other.data * out.grad\nother.grad = self.data * out.grad", None, None, None, None],
    "tanh' written as 1 - t": [None, None, None, "self.grad += (1 - t) * out.grad", None, None],
    "power rule without the exponent": [None, None, "self.grad += self.data ** (k - 1) * out.grad", None, None, None],
    "× rule without swapping (each input gets its own data)": [
        None, "self.grad += self.data * out.grad\nother.grad += other.data * out.grad", None, None, None, None],
    "relu passes the gradient everywhere": [None, None, None, None, "self.grad += out.grad", None],
    "exp' written as x, not e^x": [None, None, None, None, None, "self.grad += self.data * out.grad"],
}, accepted_answers={
    "derivatives from out.data (tanh, relu) and math.exp": [
        None, None, "self.grad += out.grad * k * self.data ** (k - 1)", "self.grad += (1.0 - out.data * out.data) * out.grad",
        "self.grad += out.grad if out.data > 0 else 0.0", "self.grad += math.exp(self.data) * out.grad"],
})
def check_value_ops(Value: Any) -> str:
    expect(isinstance(Value, type), f"`Value` should be the class you defined, but it is {type(Value).__name__}.")
    probe = Value(1.0)
    expect(hasattr(probe, "_prev") and hasattr(probe, "_backward") and hasattr(probe, "grad"),
           "Value objects need .data, .grad, ._prev and ._backward, as in the skeleton: keep those lines as given.")
    _check_engine(lambda e: e.run(Value), _reference_backward,
                  "Find the operation in this expression whose _backward is wrong; remember that gradients add up (+=).")
    return (f"All 6 operations are right, gradients accumulate, and all {N_RANDOM} random expressions "
            "(with reused nodes) match torch.autograd to 1e-9.")


@exercise("02.4", "A topological backward pass", wrong_answers={
    "not topologically sorted (breadth-first from the root)":
        "root.grad = 1.0\nqueue, seen = [root], set()\nwhile queue:\n    v = queue.pop(0)\n    if v in seen:\n"
        "        continue\n    seen.add(v)\n    v._backward()\n    queue.extend(v._prev)",
    "forgot to seed the root gradient with 1":
        "order, visited = [], set()\ndef visit(v):\n    if v not in visited:\n        visited.add(v)\n"
        "        for child in v._prev:\n            visit(child)\n        order.append(v)\nvisit(root)\n"
        "for v in reversed(order):\n    v._backward()",
    "topological order not reversed":
        "order, visited = [], set()\ndef visit(v):\n    if v not in visited:\n        visited.add(v)\n"
        "        for child in v._prev:\n            visit(child)\n        order.append(v)\nvisit(root)\n"
        "root.grad = 1.0\nfor v in order:\n    v._backward()",
    "no visited set (a node reached twice runs twice)":
        "order = []\ndef visit(v):\n    for child in v._prev:\n        visit(child)\n    order.append(v)\nvisit(root)\n"
        "root.grad = 1.0\nfor v in reversed(order):\n    v._backward()",
}, accepted_answers={
    "an iterative depth-first search with a stack":
        "order, visited, stack = [], set(), [(root, False)]\nwhile stack:\n    v, done = stack.pop()\n    if done:\n"
        "        order.append(v)\n    elif v not in visited:\n        visited.add(v)\n        stack.append((v, True))\n"
        "        stack.extend((c, False) for c in v._prev)\nroot.grad = 1.0\nfor v in reversed(order):\n    v._backward()",
})
def check_backward(backward: Any) -> str:
    expect_callable(backward, name="backward")

    def differentiate(root: Any) -> None:
        backward(root)
        if root.grad == 0.0 and root._prev:
            raise Mismatch("After backward(f), f.grad is still 0.", "Start with root.grad = 1.0: ∂f/∂f = 1 seeds the chain rule.")

    order_hint = ("Call each node's _backward only after every node that uses it has called its own, and once: "
                  "list the nodes in depth-first post-order (each after its inputs, using a visited set), then reverse.")
    _check_engine(lambda e: e.run(Value), differentiate, order_hint, only_hint=order_hint)
    return (f"backward() gets every leaf gradient right on {len(_OP_CASES) + len(_REUSE_CASES) + N_RANDOM} "
            "expressions, including nodes used several times.")


# ------------------------------------------------------------------------------ 02.5 TensorFlow tape

def keras_reference_gradients(model: Any, loss_fn: Any, x: Any, y: Any) -> list[np.ndarray]:
    """Gradients of loss_fn(y, model(x)) for model.trainable_variables, as NumPy arrays (the right way)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))  # inside the block, so the tape records it
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def _keras_problem(kind: str) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """A small seeded Keras model, a loss and a batch (float32), built afresh on every call.

    "mse" is the lab's loss; "bce" is binary cross-entropy on logits, which is not symmetric in its
    arguments, so a loss_fn(predictions, y) swap gives other gradients."""
    import keras

    seed, n_in, n_hidden, n = {"mse": (205, 3, 4, 8), "bce": (305, 5, 3, 7)}[kind]
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input((n_in,)), keras.layers.Dense(n_hidden, activation="tanh"), keras.layers.Dense(1)])
    model.set_weights([(0.7 * rng.normal(size=w.shape)).astype("float32") for w in model.get_weights()])
    x = rng.normal(size=(n, n_in)).astype("float32")
    if kind == "mse":
        return model, keras.losses.MeanSquaredError(), x, rng.normal(size=(n, 1)).astype("float32")
    y = rng.integers(0, 2, size=(n, 1)).astype("float32")
    return model, keras.losses.BinaryCrossentropy(from_logits=True), x, y


_TAPE_BODY = "with tf.GradientTape() as tape:\n    predictions = model(x, training=True)\n    loss = {loss}\n" \
             "return tape.gradient(loss, model.trainable_variables)"


@exercise("02.5", "Spot the bug: the loss must be computed inside the tape", wrong_answers={
    "the bug: loss computed after the tape block":
        "with tf.GradientTape() as tape:\n    predictions = model(x, training=True)\nloss = loss_fn(y, predictions)\n"
        "return tape.gradient(loss, model.trainable_variables)",
    "differentiated the predictions, not the loss":
        "with tf.GradientTape() as tape:\n    predictions = model(x, training=True)\n    loss = loss_fn(y, predictions)\n"
        "return tape.gradient(predictions, model.trainable_variables)",
    "swapped the loss's arguments, loss_fn(predictions, y)": _TAPE_BODY.format(loss="loss_fn(predictions, y)"),
}, accepted_answers={
    "one line inside the tape, trainable_weights": "with tf.GradientTape() as tape:\n    loss = loss_fn(y, model(x))\n"
                                                   "return tape.gradient(loss, model.trainable_weights)",
    "keyword arguments y_true= and y_pred=": _TAPE_BODY.format(loss="loss_fn(y_true=y, y_pred=predictions)"),
})
def check_compute_gradients(compute_gradients: Any) -> str:
    expect_callable(compute_gradients, name="compute_gradients")
    for kind in ("mse", "bce"):
        model, loss_fn, x, y = _keras_problem(kind)  # the reference runs on its own copy of the model
        want = keras_reference_gradients(model, loss_fn, x, y)
        model, loss_fn, x, y = _keras_problem(kind)
        got = compute_gradients(model, loss_fn, x.copy(), y.copy())
        expect(isinstance(got, (list, tuple)) and len(got) == len(want),
               f"compute_gradients should return a list with one gradient per trainable variable ({len(want)} here), "
               f"but it returned {type(got).__name__}{f' of length {len(got)}' if isinstance(got, (list, tuple)) else ''}.")
        missing = [i for i, g in enumerate(got) if g is None]
        expect(not missing, f"{len(missing)} of {len(want)} gradients are None: the tape did not see the loss being computed.",
               "A GradientTape only records what runs inside its `with` block: compute the predictions AND the loss there, "
               "then call tape.gradient(loss, model.trainable_variables) (after the block is fine).")
        hint = "Differentiate the loss (one number), not the predictions, with respect to model.trainable_variables."
        if kind == "bce":
            model, loss_fn, x, y = _keras_problem(kind)
            swapped = keras_reference_gradients(model, lambda a, b: loss_fn(b, a), x, y)
            if all(np.shape(g) == np.shape(s) and np.allclose(np.asarray(g), s, rtol=1e-5, atol=1e-6)
                   for g, s in zip(got, swapped)):
                hint = ("Your gradients are those of loss_fn(predictions, y): Keras losses take (y_true, y_pred), "
                        "so call loss_fn(y, predictions). Mean squared error hides the swap; cross-entropy does not.")
        where = "with mean squared error" if kind == "mse" else "with binary cross-entropy on logits"
        for i, (g, w) in enumerate(zip(got, want)):
            expect_array(g, w, name=f"gradient {i} ({where})", rtol=1e-5, atol=1e-6, hint=hint)
    return ("No gradient is None, and all match the reference to 1e-5 for mean squared error and for binary "
            "cross-entropy (which catches swapped arguments): the tape saw the loss.")
