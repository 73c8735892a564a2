"""The lab 04 checks, called directly: they accept right answers, reject typical mistakes with a
sentence, and the reference optimizers in dlcourse.optim match torch.optim step for step."""

from __future__ import annotations

import numpy as np
import pytest

from dlcourse import optim
from dlcourse.checks.lab04 import (check_adam_step, check_init_std, check_max_stable_lr, check_momentum_step,
                                   check_rmsprop_step)


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise 04.x: replace this line with your code.")


def test_max_stable_lr() -> None:
    assert check_max_stable_lr.evaluate(lambda A: 2 / np.linalg.eigvalsh(A).max()).passed
    diagonal = check_max_stable_lr.evaluate(lambda A: 2 / np.max(np.diag(A)))
    assert diagonal.status == "failed" and "diagonal" in diagonal.hint
    assert check_max_stable_lr.evaluate(lambda A: 1 / np.linalg.eigvalsh(A).max()).status == "failed"
    assert check_max_stable_lr.evaluate(_stub).status == "not_attempted"
    assert check_max_stable_lr.evaluate(None).status == "not_attempted"
    assert "should be a function" in check_max_stable_lr.evaluate(0.04).message
    assert "remove the quotes" in check_max_stable_lr.evaluate(lambda A: "0.04").message


def test_momentum_step() -> None:
    assert check_momentum_step.evaluate(optim.momentum_step).passed

    def keras_form(theta, grad, velocity, lr, momentum=0.9):
        velocity = momentum * velocity - lr * grad
        return theta + velocity, velocity

    def in_place(theta, grad, velocity, lr, momentum=0.9):
        velocity *= momentum
        velocity += grad
        theta -= lr * velocity
        return theta, velocity

    result = check_momentum_step.evaluate(keras_form)
    assert result.status == "failed" and "velocity" in result.message and "Keras" in result.hint, \
        "the right path, but Keras's velocity: the check says which convention the lab wants"
    assert check_momentum_step.evaluate(in_place).passed, "in-place updates of the given arrays are fine"
    assert "two values" in check_momentum_step.evaluate(lambda theta, grad, velocity, lr, momentum=0.9: theta).message
    assert check_momentum_step.evaluate(_stub).status == "not_attempted"


def test_rmsprop_step() -> None:
    assert check_rmsprop_step.evaluate(optim.rmsprop_step).passed
    keras_eps = check_rmsprop_step.evaluate(
        lambda theta, grad, square_avg, lr, alpha=0.99, eps=1e-8: optim.rmsprop_step(
            theta, grad, square_avg, lr, alpha, eps, eps_inside_sqrt=True))
    assert keras_eps.status == "failed" and "theta" in keras_eps.message and "AFTER the square root" in keras_eps.hint
    assert check_rmsprop_step.evaluate(_stub).status == "not_attempted"


def test_adam_step() -> None:
    assert check_adam_step.evaluate(optim.adam_step).passed
    keras_form = check_adam_step.evaluate(
        lambda theta, grad, state, lr, beta1=0.9, beta2=0.999, eps=1e-8: optim.adam_step(
            theta, grad, state, lr, beta1, beta2, eps, epsilon_hat=True))
    assert keras_form.status == "failed", "ε̂ differs from ε: with gradients of 1e-4 the check sees it"

    def t_from_zero(theta, grad, state, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        m, v, t = state
        m, v = beta1 * m + (1 - beta1) * grad, beta2 * v + (1 - beta2) * grad**2
        step = lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
        return theta - step, (m, v, t + 1)

    with np.errstate(all="raise"):  # the check must silence the division by zero itself
        result = check_adam_step.evaluate(t_from_zero)
    assert result.status == "failed" and "NaN or infinite" in result.message and "Increment t FIRST" in result.hint

    def raw_moments_not_returned(theta, grad, state, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        new_theta, (m, v, t) = optim.adam_step(theta, grad, state, lr, beta1, beta2, eps)
        return new_theta, (m, v)

    assert "(m, v, t)" in check_adam_step.evaluate(raw_moments_not_returned).message
    assert check_adam_step.evaluate(_stub).status == "not_attempted"


def test_init_std() -> None:
    def glorot(fan_in, fan_out):
        return np.sqrt(2 / (fan_in + fan_out))

    def he(fan_in, fan_out):
        return np.sqrt(2 / fan_in)

    passed = check_init_std.evaluate(glorot, he)
    assert passed.passed and "0.0468" in passed.message and "0.0505" in passed.message
    fan_out = check_init_std.evaluate(glorot, lambda fan_in, fan_out: np.sqrt(2 / fan_out))
    assert fan_out.status == "failed" and "he_std(784, 128)" in fan_out.message and "fan_in" in fan_out.hint
    assert check_init_std.evaluate(lambda a, b: 2 / (a + b), he).status == "failed"
    assert check_init_std.evaluate(glorot, _stub).status == "not_attempted"
    assert check_init_std.evaluate(glorot, None).status == "not_attempted"


def test_gd_stability_limit_is_sharp() -> None:
    objective, A = optim.ill_conditioned_quadratic(50.0, 30.0)
    limit = optim.gd_stability_limit(A)
    assert limit == pytest.approx(0.04)
    start = np.array([-4.0, 3.0])
    assert objective.f(optim.run(optim.gd_step, objective.grad, start, 300, lr=0.9 * limit)[-1]) < 1e-6
    assert objective.f(optim.run(optim.gd_step, objective.grad, start, 300, lr=1.01 * limit)[-1]) > objective.f(start)
    assert np.isnan(optim.run(optim.gd_step, objective.grad, start, 300, lr=1.1 * limit)[-1]).all(), \
        "run() stops a run that blows up and pads the path with NaN"


def test_reference_optimizers_match_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    grads = rng.standard_normal((50, 4)) * np.array([1e-4, 1e-2, 1.0, 10.0])
    start = rng.standard_normal(4)
    cases = [
        (optim.momentum_step, np.zeros(4), dict(lr=0.01, momentum=0.9), torch.optim.SGD, dict(lr=0.01, momentum=0.9)),
        (optim.rmsprop_step, np.zeros(4), dict(lr=0.01), torch.optim.RMSprop, dict(lr=0.01)),
        (optim.adam_step, (np.zeros(4), np.zeros(4), 0), dict(lr=0.01), torch.optim.Adam, dict(lr=0.01)),
    ]
    for step, state, hyper, torch_class, torch_hyper in cases:
        theta = start.copy()
        param = torch.tensor(start, dtype=torch.float64, requires_grad=True)
        opt = torch_class([param], **torch_hyper)
        for g in grads:
            theta, state = step(theta, g, state, **hyper)
            param.grad = torch.tensor(g)
            opt.step()
        np.testing.assert_allclose(theta, param.detach().numpy(), rtol=0, atol=1e-12, err_msg=step.__name__)


def test_activation_stats_show_he_keeps_relu_alive() -> None:
    _, he_stds = optim.activation_stats("relu", "he", depth=10, width=64, batch=200)
    _, glorot_stds = optim.activation_stats("relu", "glorot", depth=10, width=64, batch=200)
    assert 0.3 < he_stds[-1] < 3 and glorot_stds[-1] < 0.1 * he_stds[-1]


def test_optimizer_checks_reject_hard_coded_hyper_parameters() -> None:
    def momentum_fixed(theta, grad, velocity, lr, momentum=0.9):
        return optim.momentum_step(theta, grad, velocity, lr, 0.9)

    def rmsprop_fixed_alpha(theta, grad, square_avg, lr, alpha=0.99, eps=1e-8):
        return optim.rmsprop_step(theta, grad, square_avg, lr, 0.99, eps)

    def rmsprop_fixed_eps(theta, grad, square_avg, lr, alpha=0.99, eps=1e-8):
        return optim.rmsprop_step(theta, grad, square_avg, lr, alpha, 1e-8)

    assert check_momentum_step.evaluate(momentum_fixed).status == "failed"
    assert check_rmsprop_step.evaluate(rmsprop_fixed_alpha).status == "failed"
    assert check_rmsprop_step.evaluate(rmsprop_fixed_eps).status == "failed"
    for fixed in (dict(beta1=0.9), dict(beta2=0.999), dict(eps=1e-8)):
        def adam_fixed(theta, grad, state, lr, beta1=0.9, beta2=0.999, eps=1e-8, fixed=fixed):
            hyper = dict(beta1=beta1, beta2=beta2, eps=eps) | fixed
            return optim.adam_step(theta, grad, state, lr, **hyper)

        result = check_adam_step.evaluate(adam_fixed)
        assert result.status == "failed" and "you are given" in result.hint, fixed
    assert check_max_stable_lr.evaluate(lambda A: 0.04).status == "failed"


def test_adam_state_may_be_a_list() -> None:
    def as_list(theta, grad, state, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        new_theta, (m, v, t) = optim.adam_step(theta, grad, tuple(state), lr, beta1, beta2, eps)
        return new_theta, [m, v, t]

    assert check_adam_step.evaluate(as_list).passed
    bad = check_momentum_step.evaluate(lambda theta, grad, velocity, lr, momentum=0.9: (theta, "v"))
    assert bad.status == "failed" and "array of numbers" in bad.message, "a bad state gets a sentence, not a traceback"


def test_init_std_accepts_float32() -> None:
    torch = pytest.importorskip("torch")
    result = check_init_std.evaluate(lambda fan_in, fan_out: torch.tensor(2.0 / (fan_in + fan_out)).sqrt(),
                                     lambda fan_in, fan_out: torch.tensor(2.0 / fan_in).sqrt())
    assert result.passed, result.message
    assert check_init_std.evaluate(lambda a, b: np.sqrt(6 / (a + b)), lambda a, b: np.sqrt(2 / a)).status == "failed"


def test_headline_parity_breaks_with_a_wrong_adam() -> None:
    """The lab's headline is max |ours − torch.optim.Adam| after 100 steps: rounding-level with the right
    step, far from it with a registered wrong answer (no bias correction)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((100, 6)) * np.array([1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0])
    start = rng.standard_normal(6)

    def no_bias_correction(theta, grad, state, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        m, v, t = state
        m, v = beta1 * m + (1 - beta1) * grad, beta2 * v + (1 - beta2) * grad**2
        return theta - lr * m / (np.sqrt(v) + eps), (m, v, t + 1)

    param = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([param], lr=0.01)
    for g in grads:
        param.grad = torch.tensor(g)
        opt.step()

    def gap(step) -> float:
        theta, state = start.copy(), (np.zeros(6), np.zeros(6), 0)
        for g in grads:
            theta, state = step(theta, g, state, 0.01)
        return float(np.abs(theta - param.detach().numpy()).max())

    assert gap(optim.adam_step) < 1e-12
    assert gap(no_bias_correction) > 1e-3
