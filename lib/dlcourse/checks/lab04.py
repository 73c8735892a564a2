"""Checks for lab 04 (optimizers and initialisation).

The optimizer checks run the student's step function for many steps on a fixed sequence of
gradients whose scales span six orders of magnitude (so where ε enters is visible) and compare
the final parameters and state with `dlcourse.optim`, which matches torch.optim step for step.
Every hyper-parameter is set to a value other than its default, so an answer that ignores an
argument (a hard-coded 0.9, 0.99 or 1e-8) fails.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from dlcourse.check import Mismatch, expect, expect_array, expect_callable, expect_number, exercise
from dlcourse import optim as ref

N_STEPS = 100


def _gradients(n_steps: int = N_STEPS, seed: int = 4) -> np.ndarray:
    """A fixed (n_steps, 6) sequence of gradients, one column per scale from 1e-4 to 10."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_steps, 6)) * np.array([1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0])


def _theta0() -> np.ndarray:
    return np.linspace(-1.0, 1.0, 6)


def _as_pair(result: Any, name: str) -> tuple[Any, Any]:
    """The (theta, state) pair a step function must return."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        got = type(result).__name__ if not isinstance(result, (tuple, list)) else f"{len(result)} values"
        raise Mismatch(f"`{name}` should return two values, (theta, state), but it returned {got}.",
                       "End your function with `return new_theta, new_state`.")
    return result[0], result[1]


def _run(step: Callable, state: Any, name: str, n_steps: int = N_STEPS, **hyper: float) -> tuple[Any, Any]:
    """n_steps of `step` on the fixed gradients; fresh copies go in, so in-place updates cannot hurt."""
    theta = _theta0()
    with np.errstate(all="ignore"):  # a wrong answer may divide by zero; its NaN is reported instead
        for grad in _gradients(n_steps):
            theta, new_state = _as_pair(step(np.array(theta, dtype=float), grad.copy(), _copy_state(state), **hyper), name)
            _expect_like(new_state, state, name)
            state = new_state
    return theta, state


def _expect_like(new_state: Any, old_state: Any, name: str) -> None:
    """A tuple state (Adam's (m, v, t)) must come back as a tuple of the same length."""
    if isinstance(old_state, tuple) and not (isinstance(new_state, (tuple, list)) and len(new_state) == len(old_state)):
        raise Mismatch(f"`{name}` should return its new state as a tuple of {len(old_state)} values, (m, v, t), "
                       f"but it returned {_describe_state(new_state)}.", "End with `return theta, (m, v, t)`.")


def _describe_state(state: Any) -> str:
    if isinstance(state, (tuple, list)):
        return f"{len(state)} values"
    return f"a {type(state).__name__}"


def _copy_state(state: Any) -> Any:
    """A private copy of a state to hand over: arrays copied, a tuple or list (Adam's (m, v, t)) item by item."""
    if isinstance(state, (tuple, list)):
        return type(state)(np.array(s, dtype=float) if isinstance(s, np.ndarray) else s for s in state)
    try:
        return np.array(state, dtype=float)
    except (TypeError, ValueError):
        raise Mismatch(f"The state your step returned should be an array of numbers, but it is {_describe_state(state)}.",
                       "Return the new state as a NumPy array of the same shape as theta.") from None


# ------------------------------------------------------------------------------ 04.1

_MATRICES = (
    ref.ill_conditioned_quadratic(50.0, 30.0)[1],  # the lab's quadratic: eigenvalues 1 and 50, turned 30°
    np.diag([2.0, 0.5]),
    np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 4.0]]),
)


@exercise("04.1", "The largest stable learning rate", wrong_answers={
    "1/L instead of 2/L": "return 1.0 / np.linalg.eigvalsh(A).max()",
    "read L off the diagonal": "return 2.0 / np.max(np.diag(A))",
    "used the smallest eigenvalue": "return 2.0 / np.linalg.eigvalsh(A).min()",
    "hard-coded the lab's 2/50": "return 0.04",
    "2/L with L the largest entry of A": "return 2.0 / np.abs(A).max()",
}, accepted_answers={
    "the spectral norm (np.linalg.norm(A, 2))": "return 2.0 / np.linalg.norm(A, 2)",
    "np.linalg.eigvals": "return 2.0 / float(np.max(np.linalg.eigvals(A).real))",
    "in float32": "return float(2.0 / np.linalg.eigvalsh(A.astype(np.float32)).max())",
})
def check_max_stable_lr(max_stable_lr: Any) -> str:
    expect_callable(max_stable_lr, name="max_stable_lr")
    for A in _MATRICES:
        # rtol 1e-5: an answer computed in float32 is right too
        expect_number(max_stable_lr(A.copy()), ref.gd_stability_limit(A), name=f"max_stable_lr(A) for a {len(A)}×{len(A)} A",
                      rtol=1e-5, hint="Along eigenvector i, one GD step multiplies the error by (1 − lr·λᵢ); "
                                      "it shrinks only while |1 − lr·λᵢ| < 1, i.e. lr < 2/λᵢ. The largest "
                                      "eigenvalue L (np.linalg.eigvalsh(A).max()) sets the limit; the "
                                      "diagonal of a rotated A is not its eigenvalues.")
    return f"max_stable_lr = 2/L = {ref.gd_stability_limit(_MATRICES[0]):.4f} for the lab's quadratic (L = 50), right for all {len(_MATRICES)} matrices."


# ------------------------------------------------------------------------------ 04.2

@exercise("04.2", "A momentum step", wrong_answers={
    "forgot to accumulate (plain GD)": "velocity = grad\nreturn theta - lr * velocity, velocity",
    "stepped with the old velocity": "new_theta = theta - lr * velocity\nreturn new_theta, momentum * velocity + grad",
    "lr inside and outside the buffer": "velocity = momentum * velocity + lr * grad\nreturn theta - lr * velocity, velocity",
    "hard-coded momentum 0.9": "velocity = 0.9 * velocity + grad\nreturn theta - lr * velocity, velocity",
    "hard-coded lr 0.01": "velocity = momentum * velocity + grad\nreturn theta - 0.01 * velocity, velocity",
}, accepted_answers={
    "updated the given arrays in place": "velocity *= momentum\nvelocity += grad\ntheta -= lr * velocity\nreturn theta, velocity",
    "returned a list": "velocity = momentum * velocity + grad\nreturn [theta - lr * velocity, velocity]",
})
def check_momentum_step(momentum_step: Any) -> str:
    expect_callable(momentum_step, name="momentum_step")
    hyper = dict(lr=0.02, momentum=0.75)  # not the defaults (0.9) nor the lab's 0.01: a hard-coded value fails
    theta, velocity = _run(momentum_step, np.zeros(6), "momentum_step", **hyper)
    want_theta, want_velocity = _run(ref.momentum_step, np.zeros(6), "reference", **hyper)
    hint = ("torch.optim.SGD: first b ← μ·b + g, then θ ← θ − lr·b with the NEW b; return (θ, b). "
            "b holds no learning rate (Keras's v = −lr·b does). Use the lr and momentum you are given.")
    expect_array(theta, want_theta, name=f"theta after {N_STEPS} steps", rtol=1e-9, atol=1e-12, hint=hint)
    expect_array(velocity, want_velocity, name=f"velocity after {N_STEPS} steps", rtol=1e-9, atol=1e-12, hint=hint)
    return f"θ and the velocity match torch.optim.SGD's formula for {N_STEPS} steps at lr = 0.02, momentum = 0.75."


# ------------------------------------------------------------------------------ 04.3

@exercise("04.3", "An RMSProp step", wrong_answers={
    "ε inside the square root (Keras's form)":
        "square_avg = alpha * square_avg + (1 - alpha) * grad**2\nreturn theta - lr * grad / np.sqrt(square_avg + eps), square_avg",
    "forgot the square root":
        "square_avg = alpha * square_avg + (1 - alpha) * grad**2\nreturn theta - lr * grad / (square_avg + eps), square_avg",
    "swapped α and 1 − α":
        "square_avg = (1 - alpha) * square_avg + alpha * grad**2\nreturn theta - lr * grad / (np.sqrt(square_avg) + eps), square_avg",
    "hard-coded α = 0.99":
        "square_avg = 0.99 * square_avg + 0.01 * grad**2\nreturn theta - lr * grad / (np.sqrt(square_avg) + eps), square_avg",
    "hard-coded ε = 1e-8":
        "square_avg = alpha * square_avg + (1 - alpha) * grad**2\nreturn theta - lr * grad / (np.sqrt(square_avg) + 1e-8), square_avg",
}, accepted_answers={
    "np.square and np.divide":
        "square_avg = alpha * square_avg + (1 - alpha) * np.square(grad)\n"
        "return theta - lr * np.divide(grad, np.sqrt(square_avg) + eps), square_avg",
})
def check_rmsprop_step(rmsprop_step: Any) -> str:
    expect_callable(rmsprop_step, name="rmsprop_step")
    hyper = dict(lr=0.02, alpha=0.9, eps=1e-6)  # none of them the default: a hard-coded α or ε fails
    theta, square_avg = _run(rmsprop_step, np.zeros(6), "rmsprop_step", **hyper)
    want_theta, want_avg = _run(ref.rmsprop_step, np.zeros(6), "reference", **hyper)
    expect_array(square_avg, want_avg, name=f"square_avg after {N_STEPS} steps", rtol=1e-7, atol=1e-20,
                 hint="v ← α·v + (1 − α)·g², elementwise, with the α you are given (the check uses α = 0.9).")
    expect_array(theta, want_theta, name=f"theta after {N_STEPS} steps", rtol=1e-7, atol=1e-10,
                 hint="θ ← θ − lr·g / (√v + ε), with ε added AFTER the square root as torch.optim.RMSprop "
                      "does, and the ε you are given (the check uses 1e-6); the first column's gradients are ~1e-4, "
                      "where ε's value and place matter.")
    return (f"θ and the running average of g² match torch.optim.RMSprop's formula for {N_STEPS} steps "
            "at lr = 0.02, α = 0.9, ε = 1e-6.")


# ------------------------------------------------------------------------------ 04.4

_ADAM_CORE = "m, v, t = state\n{t_line}m = beta1 * m + (1 - beta1) * grad\nv = beta2 * v + (1 - beta2) * grad**2\n"


@exercise("04.4", "An Adam step with bias correction", wrong_answers={
    "no bias correction": _ADAM_CORE.format(t_line="t = t + 1\n")
        + "return theta - lr * m / (np.sqrt(v) + eps), (m, v, t)",
    "bias correction with t starting at 0": _ADAM_CORE.format(t_line="")
        + "m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)\nt = t + 1\n"
          "return theta - lr * m_hat / (np.sqrt(v_hat) + eps), (m, v, t)",
    "forgot the square root": _ADAM_CORE.format(t_line="t = t + 1\n")
        + "m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)\n"
          "return theta - lr * m_hat / (v_hat + eps), (m, v, t)",
    "hard-coded β₁ = 0.9": _ADAM_CORE.format(t_line="t = t + 1\n").replace("beta1", "0.9")
        + "m_hat, v_hat = m / (1 - 0.9**t), v / (1 - beta2**t)\nreturn theta - lr * m_hat / (np.sqrt(v_hat) + eps), (m, v, t)",
    "hard-coded β₂ = 0.999": _ADAM_CORE.format(t_line="t = t + 1\n").replace("beta2", "0.999")
        + "m_hat, v_hat = m / (1 - beta1**t), v / (1 - 0.999**t)\nreturn theta - lr * m_hat / (np.sqrt(v_hat) + eps), (m, v, t)",
    "hard-coded ε = 1e-8": _ADAM_CORE.format(t_line="t = t + 1\n")
        + "m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)\nreturn theta - lr * m_hat / (np.sqrt(v_hat) + 1e-8), (m, v, t)",
}, accepted_answers={
    "the state as a list [m, v, t]": _ADAM_CORE.format(t_line="t = t + 1\n")
        + "m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)\nreturn theta - lr * m_hat / (np.sqrt(v_hat) + eps), [m, v, t]",
    "step size folded into αₜ, ε corrected": _ADAM_CORE.format(t_line="t = t + 1\n")
        + "alpha_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)\n"
          "return theta - alpha_t * m / (np.sqrt(v) + eps * np.sqrt(1 - beta2**t)), (m, v, t)",
})
def check_adam_step(adam_step: Any) -> str:
    expect_callable(adam_step, name="adam_step")
    hyper = dict(lr=0.02, beta1=0.8, beta2=0.99, eps=1e-6)  # none of them the default: a hard-coded value fails
    start = (np.zeros(6), np.zeros(6), 0)
    hint = ("Increment t FIRST (the first step has t = 1), then m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ) and "
            "θ ← θ − lr·m̂/(√v̂ + ε), with the β₁, β₂ and ε you are given (the check uses 0.8, 0.99 and 1e-6). Without the correction the early steps are several times too large: m is shrunk by (1 − β₁ᵗ) but √v by the much smaller √(1 − β₂ᵗ).")
    theta1, _ = _run(adam_step, start, "adam_step", n_steps=1, **hyper)
    want1, _ = _run(ref.adam_step, start, "reference", n_steps=1, **hyper)
    expect_array(theta1, want1, name="theta after the first step", rtol=1e-7, atol=1e-12, hint=hint)
    theta, state = _run(adam_step, start, "adam_step", **hyper)
    want_theta, (want_m, want_v, _) = _run(ref.adam_step, start, "reference", **hyper)
    expect_array(theta, want_theta, name=f"theta after {N_STEPS} steps", rtol=1e-7, atol=1e-10, hint=hint)
    expect(isinstance(state, (tuple, list)) and len(state) == 3,
           "The new state should be the tuple (m, v, t).", "Return `theta, (m, v, t)`.")
    expect_array(state[0], want_m, name="m", rtol=1e-7, atol=1e-20, hint="Return the raw average m, not m̂.")
    expect_array(state[1], want_v, name="v", rtol=1e-7, atol=1e-20, hint="Return the raw average v, not v̂.")
    expect_number(state[2], N_STEPS, name=f"t after {N_STEPS} steps", integer=True, rtol=0, atol=0,
                  hint="t counts the steps taken: add 1 at each call.")
    return (f"θ, m, v and t match torch.optim.Adam's formula, first step and after {N_STEPS} steps, "
            "at lr = 0.02, β₁ = 0.8, β₂ = 0.99, ε = 1e-6.")


# ------------------------------------------------------------------------------ 04.5

_FANS = ((256, 256), (784, 128), (100, 400), (3, 10))
F32_RTOL = 1e-6  # float32 (torch's default) carries ~7 significant digits; every wrong formula is off by far more


@exercise("04.5", "Glorot and He standard deviations", wrong_answers={
    "He with fan_out": [None, "return np.sqrt(2.0 / fan_out)"],
    "He without the 2 (that is LeCun's)": [None, "return np.sqrt(1.0 / fan_in)"],
    "Glorot without the 2": ["return np.sqrt(1.0 / (fan_in + fan_out))", None],
    "gave the variance, not the std": ["return 2.0 / (fan_in + fan_out)", None],
    "Glorot's uniform limit, not its std": ["return np.sqrt(6.0 / (fan_in + fan_out))", None],
    "Glorot with fan_in · fan_out": ["return np.sqrt(2.0 / (fan_in * fan_out))", None],
}, accepted_answers={
    "torch, in float32": ["import torch\nreturn torch.tensor(2.0 / (fan_in + fan_out)).sqrt()",
                          "import torch\nreturn torch.tensor(2.0 / fan_in).sqrt()"],
    "math.sqrt": ["import math\nreturn math.sqrt(2 / (fan_in + fan_out))", "import math\nreturn math.sqrt(2 / fan_in)"],
    "torch's gain for ReLU": [None, "import torch\nreturn torch.nn.init.calculate_gain('relu') / np.sqrt(fan_in)"],
})
def check_init_std(glorot_std: Any, he_std: Any) -> str:
    expect_callable(glorot_std, name="glorot_std")
    expect_callable(he_std, name="he_std")
    for fan_in, fan_out in _FANS:
        expect_number(glorot_std(fan_in, fan_out), ref.glorot_std(fan_in, fan_out), name=f"glorot_std({fan_in}, {fan_out})",
                      rtol=F32_RTOL, hint="Glorot & Bengio (2010) average the forward and backward conditions: "
                                      "Var(w) = 2/(fan_in + fan_out); return the square root, a std.")
        expect_number(he_std(fan_in, fan_out), ref.he_std(fan_in), name=f"he_std({fan_in}, {fan_out})",
                      rtol=F32_RTOL, hint="He et al. (2015): Var(w) = 2/fan_in — fan_in, the number of inputs each "
                                      "unit sums; the 2 makes up for ReLU zeroing half the signal. Return the std.")
    return (f"For a 784 → 128 layer: Glorot std {ref.glorot_std(784, 128):.4f}, He std {ref.he_std(784):.4f}; "
            f"right for all {len(_FANS)} layer shapes.")
