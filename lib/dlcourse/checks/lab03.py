"""Checks for lab 03 (losses and activations): binary cross-entropy, a stable softmax,
cross-entropy from logits, its gradient p − y, and the derivatives of sigmoid, tanh and ReLU.

Every check compares with the reference maths in `dlcourse.functions` on ordinary inputs, on a
batch, and on the edge cases where the textbook formula breaks (probabilities of exactly 0 or 1,
logits of ±1000, in rows far apart within one batch so that only each row's own maximum works).
Every input is copied before the student's code sees it, and the expected value is computed first,
so an answer that changes its arguments in place cannot change the reference.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import dlcourse.functions as ref
from dlcourse.check import expect_array, expect_callable, expect_number, exercise


def _quietly(fn: Callable[..., Any], *args: Any) -> Any:
    """Call the student's function with NumPy's overflow/log(0) warnings off: the check explains instead."""
    with np.errstate(all="ignore"):
        return fn(*args)


def _batch(seed: int, shape: tuple[int, ...], scale: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=scale, size=shape)


# ------------------------------------------------------------------------------ 03.1

_BCE_BODY = "np.log(p) + (1 - y) * np.log(1 - p)"


@exercise("03.1", "Binary cross-entropy", wrong_answers={
    "swapped y and p": "return float(-np.mean(p * np.log(y) + (1 - p) * np.log(1 - y)))",
    "forgot the minus sign": "p = np.clip(p, eps, 1 - eps)\nreturn float(np.mean(y * " + _BCE_BODY + "))",
    "did not clip p": "return float(-np.mean(y * " + _BCE_BODY + "))",
    "clipped with a hard-coded 1e-12, not eps": "p = np.clip(p, 1e-12, 1 - 1e-12)\nreturn float(-np.mean(y * " + _BCE_BODY + "))",
    "averaged each row, then returned the rows": "p = np.clip(p, eps, 1 - eps)\nreturn -np.mean(y * " + _BCE_BODY + ", axis=-1)",
}, accepted_answers={
    "np.where on the label": "p = np.clip(p, eps, 1 - eps)\nreturn float(-np.mean(np.where(y == 1, np.log(p), np.log(1 - p))))",
    "sum divided by the size, in place on p": "np.clip(p, eps, 1 - eps, out=p)\nreturn float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum() / p.size)",
})
def check_bce(bce: Any) -> str:
    expect_callable(bce, name="bce")
    formula = "BCE = −mean(y·log p + (1 − y)·log(1 − p)): the label y weights the log of the predicted probability p."
    p = np.array([0.9, 0.2, 0.6, 0.99])
    y = np.array([1.0, 0.0, 1.0, 0.0])
    want = ref.binary_cross_entropy(p, y)
    expect_number(_quietly(bce, p.copy(), y.copy()), want, name="bce(p, y)", rtol=1e-6,
                  hint=formula + " The minus sign makes the loss positive.")
    p2 = np.random.default_rng(3).uniform(0.05, 0.95, size=(3, 4))
    y2 = (np.random.default_rng(4).uniform(size=(3, 4)) > 0.5).astype(float)
    expect_number(_quietly(bce, p2.copy(), y2.copy()), ref.binary_cross_entropy(p2, y2),
                  name="bce(p, y) for a (3, 4) batch",
                  rtol=1e-6, hint="Average over every entry with np.mean, whatever the shape, and return one number.")
    certain, labels = np.array([1.0, 0.0, 0.0]), np.array([1.0, 0.0, 1.0])
    clip_hint = ("Clip p into [eps, 1 − eps] with np.clip before taking logs: log(0) is −inf, and "
                 "0·(−inf) is nan. Use the eps the function is given, not a number of your own.")
    expect_number(_quietly(bce, certain.copy(), labels.copy()), ref.binary_cross_entropy(certain, labels),
                  name="bce([1, 0, 0], [1, 0, 1])", rtol=1e-6, hint=clip_hint)
    expect_number(_quietly(bce, certain.copy(), labels.copy(), 1e-4), ref.binary_cross_entropy(certain, labels, 1e-4),
                  name="bce([1, 0, 0], [1, 0, 1], eps=1e-4)", rtol=1e-6, hint=clip_hint)
    return (f"bce(p, y) = {want:.4f} for the 4 examples, and a certain-but-wrong "
            f"prediction costs −log(1e-12) = {-np.log(1e-12):.2f} instead of infinity (−log(eps) for any eps).")


# ------------------------------------------------------------------------------ 03.2

# Rows far apart in one batch, so only each row's own maximum keeps every row finite (a global
# maximum leaves the second row at e^(−2000) = 0), and a row that spans ±1000 (its minimum overflows).
_FAR_APART = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0], [-1000.0, 0.0, 1000.0]])
_FAR_APART_TEXT = "[[1000, 1001, 1002], [-1000, -1001, -1002], [-1000, 0, 1000]]"


@exercise("03.2", "Softmax with the log-sum-exp trick", wrong_answers={
    "naive exp / sum": "e = np.exp(z)\nreturn e / e.sum(axis=-1, keepdims=True)",
    "subtracted the minimum": "e = np.exp(z - z.min(axis=-1, keepdims=True))\nreturn e / e.sum(axis=-1, keepdims=True)",
    "subtracted the global maximum": "e = np.exp(z - np.max(z))\nreturn e / e.sum(axis=-1, keepdims=True)",
    "normalised over the whole batch": "e = np.exp(z - z.max())\nreturn e / e.sum()",
    "axis=1 instead of the last axis": "z = np.atleast_2d(z)\ne = np.exp(z - z.max(axis=1, keepdims=True))\nreturn e / e.sum(axis=1, keepdims=True)",
}, accepted_answers={
    "exp of z minus its log-sum-exp": ("z = np.asarray(z, dtype=float)\nm = z.max(axis=-1, keepdims=True)\n"
                                      "return np.exp(z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))"),
    "scipy.special.softmax": "from scipy.special import softmax\nreturn softmax(z, axis=-1)",
    "torch.softmax in float32": "import torch\nreturn torch.softmax(torch.tensor(z, dtype=torch.float32), dim=-1).numpy()",
    "in place on z": "z -= z.max(axis=-1, keepdims=True)\nnp.exp(z, out=z)\nz /= z.sum(axis=-1, keepdims=True)\nreturn z",
})
def check_softmax(softmax_stable: Any) -> str:
    expect_callable(softmax_stable, name="softmax_stable")
    # float32 answers (torch's default) are right: 1e-5 relative is float32's accuracy with room to spare.
    tol = dict(rtol=1e-5, atol=1e-8)
    small = np.array([2.0, 1.0, 0.1])
    expect_array(_quietly(softmax_stable, small.copy()), ref.softmax(small), name="softmax_stable([2.0, 1.0, 0.1])",
                 hint="softmax(z)_i = e^(z_i) / Σ_j e^(z_j): the outputs are positive and sum to 1.", **tol)
    batch = _batch(0, (4, 5))
    row_hint = ("Each row is one example: take the max and the sum along the last axis "
                "(axis=-1, keepdims=True), so every row sums to 1 on its own.")
    expect_array(_quietly(softmax_stable, batch.copy()), ref.softmax(batch), name="softmax_stable of a (4, 5) batch",
                 hint=row_hint, **tol)
    stack = _batch(6, (2, 3, 5))
    expect_array(_quietly(softmax_stable, stack.copy()), ref.softmax(stack), name="softmax_stable of a (2, 3, 5) array",
                 hint=row_hint + " Any shape works that way: the last axis holds the classes.", **tol)
    expect_array(_quietly(softmax_stable, _FAR_APART.copy()), ref.softmax(_FAR_APART),
                 name=f"softmax_stable({_FAR_APART_TEXT})",
                 hint="np.exp(1000) is inf and inf/inf is nan. Subtract each row's own MAXIMUM first "
                      "(z.max(axis=-1, keepdims=True)): softmax does not change when you shift a row, and then "
                      "every row's largest exponent is e^0 = 1. One maximum for the whole batch leaves the "
                      "second row at e^(−2000) = 0, and 0/0 is nan.", **tol)
    return (f"softmax_stable([1000, 1001, 1002]) = {np.array2string(ref.softmax(_FAR_APART[0]), precision=4)}, "
            "the same as for [0, 1, 2], with no overflow, and the row of −1000s in the same batch is fine too.")


# ------------------------------------------------------------------------------ 03.3

_LSE = "m = logits.max(axis=1, keepdims=True)\nlse = (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))[:, 0]\n"
_PICKED = "logits[np.arange(len(labels)), labels]"


@exercise("03.3", "Cross-entropy from logits", wrong_answers={
    "forgot the minus sign": _LSE + f"return float(np.mean({_PICKED} - lse))",
    "took the log of the logits": f"return float(-np.mean(np.log({_PICKED})))",
    "log of a naive softmax": ("p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)\n"
                               f"return float(-np.mean(np.log(p[np.arange(len(labels)), labels])))"),
    "subtracted the global maximum": ("m = logits.max()\nlse = m + np.log(np.exp(logits - m).sum(axis=1))\n"
                                      f"return float(np.mean(lse - {_PICKED}))"),
    "summed over the batch instead of the mean": _LSE + f"return float(np.sum(lse - {_PICKED}))",
}, accepted_answers={
    "scipy.special.logsumexp": ("from scipy.special import logsumexp\n"
                                f"return float(np.mean(logsumexp(logits, axis=1) - {_PICKED}))"),
    "torch F.cross_entropy in float32": ("import torch\nreturn float(torch.nn.functional.cross_entropy("
                                         "torch.tensor(logits, dtype=torch.float32), torch.tensor(labels)))"),
})
def check_cross_entropy(cross_entropy_logits: Any) -> str:
    expect_callable(cross_entropy_logits, name="cross_entropy_logits")
    hint = ("CE = mean over the batch of −log softmax(z)_y = mean of (log Σ_j e^(z_j) − z_y); "
            "it is positive and works on the logits z, not on probabilities.")
    logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
    labels = np.array([0, 1])
    want = ref.cross_entropy(logits, labels)
    # rtol 1e-5 admits float32 (torch's default); near ±1000 float32 resolves only ~6e-5, hence the atol there.
    expect_number(_quietly(cross_entropy_logits, logits.copy(), labels.copy()), want,
                  name="cross_entropy_logits for 2 examples", rtol=1e-5, hint=hint)
    batch, batch_labels = _batch(1, (8, 10)), np.array([3, 1, 4, 1, 5, 9, 2, 6])
    expect_number(_quietly(cross_entropy_logits, batch.copy(), batch_labels.copy()), ref.cross_entropy(batch, batch_labels),
                  name="cross_entropy_logits for a batch of 8", rtol=1e-5,
                  hint=hint + " Pick each row's own label with logits[np.arange(n), labels], and average (np.mean).")
    far_labels = np.array([2, 1, 0])
    far = ref.cross_entropy(_FAR_APART, far_labels)
    expect_number(_quietly(cross_entropy_logits, _FAR_APART.copy(), far_labels.copy()), far,
                  name=f"cross_entropy_logits({_FAR_APART_TEXT}, [2, 1, 0])", rtol=1e-5, atol=5e-4,
                  hint="Do not take the log of a softmax: a probability that underflows to 0 gives log 0 = −inf. "
                       "Compute log Σ e^z as m + log Σ e^(z − m) with m EACH ROW's maximum (log-sum-exp, "
                       "axis=1, keepdims=True): one maximum for the whole batch leaves the row of −1000s "
                       "with log 0 = −inf.")
    return (f"The loss is {want:.4f} for the 2-example batch and {far:.4f} for rows of logits near +1000 "
            "and −1000 in one batch, where a naive softmax gives nan.")


# ------------------------------------------------------------------------------ 03.4

def reference_cross_entropy_grad(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(softmax(logits) − onehot(labels)) / n: the gradient of the mean cross-entropy, which the lab uses in place
    of the student's `cross_entropy_grad` until exercise 03.4 is solved."""
    grad = ref.softmax(logits, axis=1)
    grad[np.arange(len(labels)), labels] -= 1.0
    return grad / len(labels)


_ONEHOT = "p = ref.softmax(logits, axis=1)\ny = np.eye(logits.shape[1])[labels]\n"


@exercise("03.4", "The gradient of cross-entropy: p − y", wrong_answers={
    "forgot to divide by the batch size": _ONEHOT + "return p - y",
    "y − p instead of p − y": _ONEHOT + "return (y - p) / len(labels)",
    "subtracted the label index, not a one-hot": "return (ref.softmax(logits, axis=1) - labels[:, None]) / len(labels)",
    "own softmax with the global maximum": ("e = np.exp(logits - logits.max())\np = e / e.sum(axis=1, keepdims=True)\n"
                                            "return (p - np.eye(logits.shape[1])[labels]) / len(labels)"),
    "divided by the number of classes": _ONEHOT + "return (p - y) / logits.shape[1]",
}, accepted_answers={
    "subtract 1 at each label in place": ("p = ref.softmax(logits, axis=1)\np[np.arange(len(labels)), labels] -= 1\n"
                                          "return p / len(labels)"),
    "torch autograd in float32": ("import torch\nz = torch.tensor(logits, dtype=torch.float32, requires_grad=True)\n"
                                  "torch.nn.functional.cross_entropy(z, torch.tensor(labels)).backward()\n"
                                  "return z.grad.numpy()"),
})
def check_cross_entropy_grad(cross_entropy_grad: Any) -> str:
    expect_callable(cross_entropy_grad, name="cross_entropy_grad")
    logits, labels = _batch(2, (4, 3)), np.array([0, 2, 1, 2])
    numeric = ref.numeric_gradient(lambda z: ref.cross_entropy(z, labels), logits)
    expect_array(_quietly(cross_entropy_grad, logits.copy(), labels.copy()), numeric,
                 name="cross_entropy_grad for a batch of 4", rtol=1e-4, atol=1e-7,
                 hint="∂CE/∂z = (softmax(z) − onehot(y)) / n: subtract 1 at each row's label (y is one-hot, "
                      "not the label number) and divide by the batch size n, because the loss is a mean.")
    far_labels = np.array([2, 1, 2])
    expect_array(_quietly(cross_entropy_grad, _FAR_APART.copy(), far_labels.copy()),
                 reference_cross_entropy_grad(_FAR_APART, far_labels),
                 name=f"cross_entropy_grad for {_FAR_APART_TEXT}", rtol=1e-5, atol=1e-7,
                 hint="Use a stable softmax (ref.softmax, or each row's own maximum subtracted) so huge logits "
                      "give probabilities, not nan, in every row.")
    return ("Your gradient matches central differences of the loss: ∂CE/∂z = (p − y)/n, so a correct, confident "
            "prediction gets almost no push and a wrong one gets a push of up to 1/n.")


# ------------------------------------------------------------------------------ 03.5

_GRID = np.linspace(-6.0, 6.0, 24)  # 24 points: no z is exactly 0, where ReLU′ is a convention


@exercise("03.5", "Derivatives of sigmoid, tanh and ReLU", wrong_answers={
    "σ′ written as σ(1 + σ)": ["s = ref.sigmoid(z)\nreturn s * (1 + s)", None, None],
    "σ′ returned σ itself": ["return ref.sigmoid(z)", None, None],
    "tanh′ written as 1 − tanh": [None, "return 1 - np.tanh(z)", None],
    "ReLU′ returned ReLU itself": [None, None, "return np.maximum(z, 0.0)"],
    "ReLU′ written as sign(z)": [None, None, "return np.sign(z)"],
}, accepted_answers={
    "σ′ as e^(−z)/(1 + e^(−z))²": ["e = np.exp(-z)\nreturn e / (1 + e) ** 2", None, None],
    "tanh′ as 1/cosh²": [None, "return 1 / np.cosh(z) ** 2", None],
    "ReLU′ as np.heaviside, 1 at 0": [None, None, "return np.heaviside(z, 1.0)"],
    "ReLU′ as a True/False array": [None, None, "return np.asarray(z) > 0"],
})
def check_activation_grads(sigmoid_prime: Any, tanh_prime: Any, relu_prime: Any) -> str:
    cases = (("sigmoid_prime", sigmoid_prime, ref.sigmoid_grad,
              "σ′(z) = σ(z)·(1 − σ(z)): it peaks at 0.25 at z = 0 and goes to 0 on both sides."),
             ("tanh_prime", tanh_prime, ref.tanh_grad,
              "tanh′(z) = 1 − tanh²(z): square the tanh. It is 1 at z = 0 and never negative."),
             ("relu_prime", relu_prime, ref.relu_grad,
              "ReLU′(z) is 1 where z > 0 and 0 where z < 0: a step, e.g. (z > 0).astype(float)."))
    batch = _batch(5, (3, 4), scale=3.0)
    for name, fn, reference, hint in cases:
        expect_callable(fn, name=name)
        expect_array(_quietly(fn, _GRID.copy()), reference(_GRID), name=f"{name} on 24 points from −6 to 6", hint=hint)
        expect_array(_quietly(fn, batch.copy()), reference(batch), name=f"{name} of a (3, 4) array",
                     hint="Work elementwise and keep the input's shape.")
    return "All three derivatives match: σ′ is at most 0.25, tanh′ at most 1, and ReLU′ is exactly 1 wherever z > 0."
