"""Checks for lab 01 (the forward pass by hand): a neuron and a worked example computed by hand,
a dense layer and a two-layer network in NumPy, and the kernel layout Keras expects.

Every check takes the lab's given inputs as arguments and recomputes the right answer from them
with the reference maths in `dlcourse.functions`; numbers typed by hand get a tolerance that
suits a calculator (three decimals), code gets a tight one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlcourse.check import Mismatch, expect_array, expect_callable, expect_number, exercise
from dlcourse.functions import relu, sigmoid

HAND_ATOL = 1e-3  # a number typed from a calculator: three correct decimals are enough


def _near(value: Any, target: float) -> bool:
    """True when `value` is a plain number within hand tolerance of `target` (for hints only)."""
    try:
        return math.isclose(float(value), target, abs_tol=HAND_ATOL)
    except (TypeError, ValueError):
        return False


def _sigma(z: float) -> float:
    return float(sigmoid(z))


# ------------------------------------------------------------------------------ 01.1 one neuron

@exercise("01.1", "One neuron by hand", wrong_answers={
    "forgot the bias": "z_hand = 1.0\na_hand = 0.7311",
    "sigmoid with the wrong sign, 1 / (1 + e^z)": "z_hand = 0.5\na_hand = 0.3775",
    "gave z as the output": "z_hand = 0.5\na_hand = 0.5",
    "two decimals only": "z_hand = 0.5\na_hand = 0.62",
}, accepted_answers={
    "three decimals, rounded": "z_hand = 0.5\na_hand = 0.623",
    "three decimals, cut off": "z_hand = 0.500\na_hand = 0.622",
})
def check_neuron_by_hand(z_hand: Any, a_hand: Any, w: Any, x: Any, b: Any) -> str:
    """z = w·x + b and a = σ(z), typed in as numbers."""
    w, x = np.asarray(w, dtype=float), np.asarray(x, dtype=float)
    b = float(b)
    weighted = float(w @ x)
    z = weighted + b
    a = _sigma(z)
    terms = " + ".join(f"({wi:g})·({xi:g})" for wi, xi in zip(w, x))
    hint = f"z = {terms} + ({b:g}): multiply each weight by its input, add the products, then add the bias."
    if _near(z_hand, weighted):
        hint = "That is w·x without the bias: a neuron adds b after the weighted sum."
    expect_number(z_hand, z, name="z_hand", rtol=0, atol=HAND_ATOL, hint=hint)
    hint = "σ(z) = 1 / (1 + e^(−z)) with your z; give at least three decimals."
    if _near(a_hand, _sigma(-z)):
        hint = "That is σ(−z) = 1 / (1 + e^(+z)): the exponent in σ is −z, so a positive z gives a value above 0.5."
    elif _near(a_hand, _sigma(weighted)) and not _near(weighted, z):
        hint = "That is σ(w·x), the neuron without its bias: apply σ to z = w·x + b."
    elif _near(a_hand, z):
        hint = "That is z itself: the neuron's output is the activation σ applied to z."
    elif _near(a_hand, 0.5):
        hint = "0.5 is σ(0); apply σ to your z instead."
    expect_number(a_hand, a, name="a_hand", rtol=0, atol=HAND_ATOL, hint=hint)
    return f"z = {z:.4f} and σ(z) = {a:.4f}: weighted sum, plus bias, through the activation."


# ------------------------------------------------------------------------------ 01.2 spot the bug

@exercise("01.2", "Spot the bug in a circulating worked example", wrong_answers={
    "typed 0.5 for σ(z)": "z_fixed = 1.4\nsigmoid_fixed = 0.5",
    "typed σ(0.7)": "z_fixed = 1.4\nsigmoid_fixed = 0.6682",
    "kept the example's z = 0.7": "z_fixed = 0.7\nsigmoid_fixed = 0.6682",
    "summed the weights only, not weight × input": "z_fixed = 0.6\nsigmoid_fixed = 0.6457",
}, accepted_answers={
    "three decimals": "z_fixed = 1.400\nsigmoid_fixed = 0.802",
})
def check_spot_the_bug(z_fixed: Any, sigmoid_fixed: Any, w_row: Any, x: Any) -> str:
    """The corrected weighted sum of one row of W with x, and its sigmoid, typed in as numbers."""
    w_row, x = np.asarray(w_row, dtype=float), np.asarray(x, dtype=float)
    z = float(w_row @ x)
    s = _sigma(z)
    terms = " + ".join(f"{wi:g}·{xi:g}" for wi, xi in zip(w_row, x))
    hint = f"Multiply each weight by its input and add: z = {terms}."
    if _near(z_fixed, 0.7):
        hint = "0.7 is the example's value, the first bug. " + hint
    expect_number(z_fixed, z, name="z_fixed", rtol=0, atol=HAND_ATOL, hint=hint)
    hint = "σ(z) = 1 / (1 + e^(−z)) with the corrected z; give at least three decimals."
    if _near(sigmoid_fixed, 0.5):
        hint = "0.5 is σ(0), the second bug: σ(z) is above 0.5 for every z > 0."
    elif _near(sigmoid_fixed, _sigma(0.7)):
        hint = "That is σ(0.7), the sigmoid of the example's wrong z; apply σ to the corrected z."
    expect_number(sigmoid_fixed, s, name="sigmoid_fixed", rtol=0, atol=HAND_ATOL, hint=hint)
    return f"z = {z:.4f} and σ(z) = {s:.4f}; the example was wrong twice (σ(0.7) = {_sigma(0.7):.4f} and 0.5 = σ(0))."


# ------------------------------------------------------------------------------ 01.3 a dense layer

def _dense_cases() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(X, W, b) cases. The first W is square, so a transposed W runs but gives wrong numbers."""
    rng = np.random.default_rng(1)
    worked = (np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]]),
              np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]]),
              np.array([0.5, -0.5, 1.0]))
    wide = (rng.normal(size=(4, 3)), rng.normal(size=(2, 3)), rng.normal(size=2))
    single = (rng.normal(size=(1, 5)), rng.normal(size=(3, 5)), rng.normal(size=3))
    return [worked, wide, single]


@exercise("01.3", "A dense layer in NumPy", wrong_answers={
    "forgot the bias": "return X @ W.T",
    "used W instead of W.T": "return X @ W + b",
    "applied an activation (the exercise asks for pre-activations)": "return sigmoid(X @ W.T + b)",
    "bias added once, to the first row only": "Z = X @ W.T\nZ[0] += b\nreturn Z",
}, accepted_answers={
    "einsum": "return np.einsum('ni,oi->no', X, W) + b",
    "float32": "return (X.astype(np.float32) @ W.T.astype(np.float32) + b.astype(np.float32))",
    "(W xᵀ)ᵀ for the whole batch": "return (W @ X.T).T + b",
})
def check_dense_forward(dense_forward: Any) -> str:
    """dense_forward(X, W, b) = X @ W.T + b for X (n, n_in), W (n_out, n_in), b (n_out,)."""
    expect_callable(dense_forward, name="dense_forward")
    for X, W, b in _dense_cases():
        expected = X @ W.T + b
        got = dense_forward(X.copy(), W.copy(), b.copy())
        hint = "Each row of X is one input; the layer computes W x + b for each, which for all rows at once is X @ W.T + b."
        if np.shape(got) == expected.shape:
            got_array = np.asarray(got, dtype=float)
            if np.allclose(got_array, X @ W.T):
                hint = "Your numbers equal X @ W.T: the bias b is missing."
            elif W.shape[0] == W.shape[1] and np.allclose(got_array, X @ W + b):
                hint = "Your numbers equal X @ W + b: W is stored as (n_out, n_in), so the batch product needs W.T."
        expect_array(got, expected, name=f"dense_forward(X, W, b) for X {X.shape}, W {W.shape}", hint=hint)
    return "dense_forward agrees with X @ W.T + b for a square, a non-square and a one-row case."


# ------------------------------------------------------------------------------ 01.4 two layers

def reference_two_layer(X: np.ndarray, W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """σ(relu(X W1ᵀ + b1) W2ᵀ + b2): the network of lab 01, for a batch X of shape (n, n_in)."""
    return sigmoid(relu(X @ W1.T + b1) @ W2.T + b2)


@exercise("01.4", "A two-layer network's forward pass", wrong_answers={
    "forgot the hidden ReLU": "return sigmoid(dense_forward(dense_forward(X, W1, b1), W2, b2))",
    "forgot the output sigmoid": "return dense_forward(relu(dense_forward(X, W1, b1)), W2, b2)",
    "sigmoid in the hidden layer": "return sigmoid(dense_forward(sigmoid(dense_forward(X, W1, b1)), W2, b2))",
    "ignored its arguments (read the notebook's W1, b1, W2, b2)":
        "g = globals()\nhidden = relu(dense_forward(X, g['W1'], g['b1']))\nreturn sigmoid(dense_forward(hidden, g['W2'], g['b2']))",
    "hard-coded the output size (reshape to (n, 1))":
        "hidden = relu(dense_forward(X, W1, b1))\nreturn sigmoid(dense_forward(hidden, W2, b2))[:, :1]",
}, accepted_answers={
    "written out without dense_forward": "return sigmoid(relu(X @ W1.T + b1) @ W2.T + b2)",
    "in float32": "f = np.float32\nhidden = relu(X.astype(f) @ W1.T.astype(f) + b1.astype(f))\n"
                  "return sigmoid(hidden @ W2.T.astype(f) + b2.astype(f))",
})
def check_two_layer_forward(two_layer_forward: Any, W1: Any, b1: Any, W2: Any, b2: Any) -> str:
    """two_layer_forward(X, W1, b1, W2, b2) on the lab's weights, then on other weights and layer sizes."""
    expect_callable(two_layer_forward, name="two_layer_forward")
    W1, b1, W2, b2 = (np.asarray(a, dtype=float) for a in (W1, b1, W2, b2))
    rng = np.random.default_rng(2)
    lab = (np.vstack([[1.0, 2.0], rng.uniform(-3, 3, size=(7, W1.shape[1]))]), W1, b1, W2, b2)
    cases = [("the lab's weights", lab)]
    for n, n_in, n_hidden, n_out in ((5, 4, 7, 1), (3, 5, 2, 2)):  # sizes that differ on every axis
        cases.append((f"a {n_in}-{n_hidden}-{n_out} network with other weights",
                      (rng.uniform(-2, 2, size=(n, n_in)), rng.normal(size=(n_hidden, n_in)), rng.normal(size=n_hidden),
                       rng.normal(size=(n_out, n_hidden)), rng.normal(size=n_out))))
    for where, args in cases:
        X = args[0]
        expected = reference_two_layer(*args)
        try:
            got = two_layer_forward(*(a.copy() for a in args))
        except ValueError as error:  # shape errors from @ and broadcasting
            raise Mismatch(f"two_layer_forward raised ValueError on {where}: {str(error)[:120]}",
                           "Use the arguments W1, b1, W2, b2 your function is given, whatever their sizes, not the "
                           "lab's own arrays: h = relu(X @ W1.T + b1), p = sigmoid(h @ W2.T + b2).") from None
        hint = "Hidden layer: h = relu(X @ W1.T + b1). Output: p = sigmoid(h @ W2.T + b2). Every p lies between 0 and 1."
        if np.shape(got) == expected.shape:
            got_array = np.asarray(got, dtype=float)
            a_, w1, c1, w2, c2 = args
            if np.allclose(got_array, sigmoid((a_ @ w1.T + c1) @ w2.T + c2)):
                hint = "Your numbers match a network without the hidden ReLU: apply relu to the first layer's output."
            elif np.allclose(got_array, relu(a_ @ w1.T + c1) @ w2.T + c2):
                hint = "Your numbers are the output layer's z: apply sigmoid to turn it into a probability."
            elif np.any(got_array < 0) or np.any(got_array > 1):
                hint = "Some outputs lie outside [0, 1]; the output layer ends with a sigmoid. " + hint
        elif where != cases[0][0]:
            hint = ("Use the arguments W1, b1, W2, b2 your function is given, whatever their sizes, not the lab's own "
                    "arrays or sizes: p has one row per input and one column per output neuron. " + hint)
        expect_array(got, expected, name=f"two_layer_forward on {where}", rtol=1e-5, atol=1e-6, hint=hint)
    return (f"For x = [1, 2] the network outputs p = {reference_two_layer(*lab)[0, 0]:.4f}; it agrees on {len(lab[0]) - 1} "
            "other inputs and on a 4-7-1 and a 5-2-2 network with other weights.")


# ------------------------------------------------------------------------------ 01.5 Keras kernels

def _kernel_hint(name: str, got: Any, W: np.ndarray) -> str:
    base = f"Keras stores a Dense kernel as (n_in, n_out), the transpose of W's (n_out, n_in): use {name} = W.T."
    try:
        got_array = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        return base
    if got_array.shape == W.T.shape and W.shape != W.T.shape and np.allclose(got_array, W.reshape(W.T.shape)):
        return ("That is W.reshape: it keeps the numbers in their memory order and only relabels the axes. "
                "Transposing swaps rows and columns: use .T.")
    return base


@exercise("01.5", "Weights for Keras: the transposition trap", wrong_answers={
    "kept PyTorch's (out, in) layout": "kernel1, kernel2 = W1, W2",
    "reshaped instead of transposing": "kernel1, kernel2 = W1.reshape(2, 3), W2.reshape(3, 1)",
    "transposed only the first kernel": "kernel1, kernel2 = W1.T, W2",
}, accepted_answers={
    "np.transpose, in float32": "kernel1, kernel2 = np.transpose(W1).astype('float32'), np.transpose(W2).astype('float32')",
    "nested lists": "kernel1, kernel2 = W1.T.tolist(), W2.T.tolist()",
})
def check_keras_kernels(kernel1: Any, kernel2: Any, W1: Any, W2: Any) -> str:
    """The kernels to give keras.layers.Dense so it computes the same layers as W1 and W2."""
    W1, W2 = np.asarray(W1, dtype=float), np.asarray(W2, dtype=float)
    for name, got, W in (("kernel1", kernel1, W1), ("kernel2", kernel2, W2)):
        expect_array(got, W.T, name=name, hint=_kernel_hint(name, got, W))
    return (f"kernel1 has shape {W1.T.shape} and kernel2 {W2.T.shape}: (n_in, n_out), so Keras computes x @ kernel + bias, "
            "the same numbers as W x + b.")
