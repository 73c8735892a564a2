"""Reference optimizers, test functions and initialisation for lab 04.

Every optimizer is one small function ``step(theta, grad, state, lr, ...) -> (theta, state)``
that returns new arrays and never changes its inputs, so a trajectory is a plain loop
(`run`). The formulas follow PyTorch's ``torch.optim`` (2.13); the two keyword switches
``eps_inside_sqrt`` (RMSprop) and ``epsilon_hat`` (Adam) give Keras's variants, which differ
only in where ε enters. Labs and checks use these once the student has written their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from dlcourse.functions import ACTIVATIONS

Array = np.ndarray
Step = Callable[..., tuple[Array, Any]]

__all__ = [
    "Objective", "quadratic", "ill_conditioned_quadratic", "rosenbrock",
    "gd_step", "momentum_step", "rmsprop_step", "adam_step", "init_state", "run", "OPTIMIZERS",
    "gd_stability_limit", "glorot_std", "he_std", "init_std", "activation_stats", "plot_paths", "plot_loss_curves",
]


# ------------------------------------------------------------------------------ test functions

@dataclass(frozen=True)
class Objective:
    """A 2-D function to minimise, its gradient, where its minimum is, and a box to plot it in."""

    name: str
    f: Callable[[Array], float]
    grad: Callable[[Array], Array]
    minimum: Array
    extent: tuple[float, float, float, float]  # x_min, x_max, y_min, y_max


def quadratic(A: Array, extent: tuple[float, float, float, float] = (-5, 5, -5, 5), name: str = "quadratic") -> Objective:
    """f(θ) = ½ θᵀAθ for a symmetric positive-definite A: gradient Aθ, minimum 0 at θ = 0."""
    A = np.asarray(A, dtype=float)
    return Objective(name, lambda t: float(0.5 * t @ A @ t), lambda t: A @ np.asarray(t, dtype=float),
                     np.zeros(len(A)), extent)


def ill_conditioned_quadratic(condition: float = 50.0, angle_deg: float = 30.0) -> tuple[Objective, Array]:
    """A quadratic with eigenvalues 1 and ``condition``, its axes turned by ``angle_deg``; returns (objective, A).

    The rotation matters: an optimizer that scales each coordinate separately (RMSProp, Adam)
    would find an axis-aligned valley much easier than a tilted one.
    """
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    R = np.array([[c, -s], [s, c]])
    A = R @ np.diag([1.0, condition]) @ R.T
    return quadratic(A, name=f"quadratic, condition number {condition:g}"), A


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Objective:
    """Rosenbrock's banana valley (a − x)² + b(y − x²)², minimum 0 at (a, a²)."""
    def f(t: Array) -> float:
        x, y = t
        return float((a - x) ** 2 + b * (y - x * x) ** 2)

    def grad(t: Array) -> Array:
        x, y = t
        return np.array([-2 * (a - x) - 4 * b * x * (y - x * x), 2 * b * (y - x * x)])

    return Objective(f"Rosenbrock (a={a:g}, b={b:g})", f, grad, np.array([a, a * a]), (-2.0, 2.0, -1.0, 3.0))


def gd_stability_limit(A: Array) -> float:
    """The largest stable GD learning rate on ½θᵀAθ: 2/L, L the largest eigenvalue of A."""
    return 2.0 / float(np.linalg.eigvalsh(np.asarray(A, dtype=float)).max())


# ------------------------------------------------------------------------------ optimizers

def gd_step(theta: Array, grad: Array, state: Any, lr: float) -> tuple[Array, Any]:
    """Plain gradient descent: θ ← θ − lr·g (no state)."""
    return theta - lr * grad, state


def momentum_step(theta: Array, grad: Array, velocity: Array, lr: float, momentum: float = 0.9) -> tuple[Array, Array]:
    """torch.optim.SGD(momentum=μ): b ← μb + g; θ ← θ − lr·b (b starts at 0)."""
    velocity = momentum * velocity + grad
    return theta - lr * velocity, velocity


def rmsprop_step(theta: Array, grad: Array, square_avg: Array, lr: float, alpha: float = 0.99,
                 eps: float = 1e-8, eps_inside_sqrt: bool = False) -> tuple[Array, Array]:
    """torch.optim.RMSprop: v ← αv + (1 − α)g²; θ ← θ − lr·g / (√v + ε).

    ``eps_inside_sqrt=True`` is keras.optimizers.RMSprop: θ ← θ − lr·g / √(v + ε).
    """
    square_avg = alpha * square_avg + (1 - alpha) * grad * grad
    denom = np.sqrt(square_avg + eps) if eps_inside_sqrt else np.sqrt(square_avg) + eps
    return theta - lr * grad / denom, square_avg


def adam_step(theta: Array, grad: Array, state: tuple[Array, Array, int], lr: float, beta1: float = 0.9,
              beta2: float = 0.999, eps: float = 1e-8, epsilon_hat: bool = False) -> tuple[Array, tuple[Array, Array, int]]:
    """Adam (Kingma & Ba 2015, Algorithm 1) as torch.optim.Adam computes it; state = (m, v, t).

    ``epsilon_hat=True`` is keras.optimizers.Adam (the form just before §2.1 of the paper):
    αₜ = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ) and θ ← θ − αₜ·m / (√v + ε̂).
    """
    m, v, t = state
    t += 1
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    if epsilon_hat:
        alpha_t = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        return theta - alpha_t * m / (np.sqrt(v) + eps), (m, v, t)
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    return theta - lr * m_hat / (np.sqrt(v_hat) + eps), (m, v, t)


def init_state(step: Step, theta: Array) -> Any:
    """The state an optimizer starts from: nothing for GD, zeros for the running averages."""
    zeros = np.zeros_like(np.asarray(theta, dtype=float))
    if step is gd_step:
        return None
    if step is adam_step:
        return (zeros, zeros.copy(), 0)
    return zeros


def run(step: Step, grad_fn: Callable[[Array], Array], theta0: Array, n_steps: int,
        state: Any = None, **hyper: float) -> Array:
    """The path θ₀, θ₁, …, θₙ as an (n_steps + 1, d) array; stops early (path padded with NaN) if it blows up."""
    theta = np.array(theta0, dtype=float)
    state = init_state(step, theta) if state is None else state
    path = np.full((n_steps + 1, theta.size), np.nan)
    path[0] = theta
    for i in range(1, n_steps + 1):
        theta, state = step(theta, grad_fn(theta), state, **hyper)
        if not np.all(np.isfinite(theta)) or np.abs(theta).max() > 1e8:
            break
        path[i] = theta
    return path


# Name → step function, as the labs list them.
OPTIMIZERS: Mapping[str, Step] = {"GD": gd_step, "momentum": momentum_step, "RMSProp": rmsprop_step, "Adam": adam_step}


# ------------------------------------------------------------------------------ initialisation

def glorot_std(fan_in: int, fan_out: int) -> float:
    """Glorot & Bengio (2010): Var(w) = 2 / (fan_in + fan_out)."""
    return float(np.sqrt(2.0 / (fan_in + fan_out)))


def he_std(fan_in: int) -> float:
    """He et al. (2015): Var(w) = 2 / fan_in (ReLU zeroes half the signal; the 2 makes up for it)."""
    return float(np.sqrt(2.0 / fan_in))


def init_std(fan_in: int, fan_out: int, scheme: str) -> float:
    """The weight standard deviation of an initialisation scheme: "glorot", "he" or a fixed number as text."""
    if scheme == "glorot":
        return glorot_std(fan_in, fan_out)
    if scheme == "he":
        return he_std(fan_in)
    return float(scheme)


def activation_stats(activation: str, scheme: str, *, depth: int = 20, width: int = 256, batch: int = 1000,
                     seed: int = 0) -> tuple[Array, Array]:
    """Mean and standard deviation of every layer's activations in a deep square MLP (no biases).

    The inputs are ``batch`` standard-normal vectors; each layer draws W ~ N(0, std²) with the
    scheme's std, so the numbers show how the signal's scale travels through depth.
    """
    rng = np.random.default_rng(seed)
    act = ACTIVATIONS[activation].fn
    h = rng.standard_normal((batch, width))
    means, stds = np.empty(depth), np.empty(depth)
    for layer in range(depth):
        W = rng.standard_normal((width, width)) * init_std(width, width, scheme)
        h = act(h @ W)
        means[layer], stds[layer] = h.mean(), h.std()
    return means, stds


# ------------------------------------------------------------------------------ plotting

_END_MARKERS = ("X", "P", "s", "D", "^", "v")  # one shape per path, so ends that land together stay apart


def plot_paths(ax: Any, objective: Objective, paths: Mapping[str, Array], *, title: str | None = None,
               resolution: int = 200) -> Any:
    """Log-spaced contours of ``objective`` with each path drawn on top (start ○, end a filled marker of
    its own shape, named in the legend); returns ax."""
    x0, x1, y0, y1 = objective.extent
    xs, ys = np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
    X, Y = np.meshgrid(xs, ys)
    Z = np.array([objective.f(np.array([x, y])) for x, y in zip(X.ravel(), Y.ravel())]).reshape(X.shape)
    floor = max(Z.min(), 1e-3)
    ax.contour(X, Y, Z, levels=np.geomspace(floor, Z.max(), 18), cmap="viridis", alpha=0.45, linewidths=0.8)
    for i, (name, path) in enumerate(paths.items()):
        style, marker = ("-", "--", "-.", ":")[i % 4], _END_MARKERS[i % len(_END_MARKERS)]
        path = path[np.all(np.isfinite(path), axis=1)]  # a diverged run stops where it left the numbers
        line, = ax.plot(path[:, 0], path[:, 1], style, lw=1.4, label=name)
        ax.plot(path[0, 0], path[0, 1], "o", color=line.get_color(), mfc="none")
        ax.plot(path[-1, 0], path[-1, 1], marker, color=line.get_color(), ms=9 - 1.5 * (i % 3), mec="black",
                mew=0.6, alpha=0.9, linestyle="none", label=f"{name}: end")
    ax.plot(*objective.minimum, "*", color="black", ms=10, label="minimum")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel(r"$\theta_1$")
    ax.set_ylabel(r"$\theta_2$")
    ax.set_title(title or objective.name)
    ax.legend(fontsize=7, loc="best", ncol=2 if len(paths) > 2 else 1)
    return ax


def plot_loss_curves(ax: Any, objective: Objective, paths: Mapping[str, Array], *, title: str | None = None) -> Any:
    """f(θ) at every step of each path on a log scale (a diverged run's curve stops where it left); returns ax."""
    for i, (name, path) in enumerate(paths.items()):
        finite = path[np.all(np.isfinite(path), axis=1)]
        losses = np.array([objective.f(p) for p in finite])
        ax.semilogy(np.arange(len(losses)), np.maximum(losses, 1e-300), ("-", "--", "-.", ":")[i % 4], lw=1.4, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss f(θ) (log scale)")
    ax.set_title(title or f"{objective.name}: loss per step")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor for step 0, 1, …: linear warm-up to 1 over `warmup` steps, then cosine decay to 0 at
    `total` (warm-up: Vaswani et al. 2017; cosine: Loshchilov & Hutter 2017). Labs 10 and 11 use it."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
