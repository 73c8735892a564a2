"""The lab 12 checks, called directly: they accept the library's reference answers and explain wrong ones."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from dlcourse import checkpoint, deploy, mixed_precision
from dlcourse.checks.lab12 import (check_amp_train_step, check_checkpoint, check_images_per_second,
                                   check_int8_linear, check_layer_flops, check_quantize_int8)
from dlcourse.cnn_torch import build_cnn
from dlcourse.errors import DlcourseError
from dlcourse.throughput import (images_per_second, inference_throughput, layer_costs, layer_flops,
                                 training_flops_per_sample)


def test_layer_flops_and_the_lab_counts_with_the_students_function() -> None:
    assert check_layer_flops.evaluate(layer_flops).passed
    assert check_layer_flops.evaluate(None).status == "not_attempted"

    def mult_adds(layer, out_shape):  # a registered wrong answer: no factor 2
        return layer_flops(layer, out_shape) / 2

    result = check_layer_flops.evaluate(mult_adds)
    assert result.status == "failed" and "2 FLOPs" in result.hint
    # the lab's layer table and its training FLOPs per image come from the function it is given
    ours = training_flops_per_sample(layer_costs(3, time_layers=False, flops=layer_flops), 3)
    assert ours == training_flops_per_sample(layer_costs(3, time_layers=False), 3)
    assert training_flops_per_sample(layer_costs(3, time_layers=False, flops=mult_adds), 3) < 0.6 * ours


def _timer_without_images(model, x, *, warmup, iterations, synchronize):  # a registered wrong answer
    return images_per_second(model, x, warmup=warmup, iterations=iterations, synchronize=synchronize) / len(x)


def test_images_per_second() -> None:
    assert check_images_per_second.evaluate(images_per_second).passed
    assert check_images_per_second.evaluate(None).status == "not_attempted"
    result = check_images_per_second.evaluate(_timer_without_images)
    assert result.status == "failed" and "only" in result.message and "len(x)" in result.hint

    def timed_in_train_mode(model, x, *, warmup, iterations, synchronize):
        for _ in range(warmup):
            model(x)
        synchronize()
        start = time.perf_counter()
        for _ in range(iterations):
            model(x)
        synchronize()
        return len(x) * iterations / (time.perf_counter() - start)

    result = check_images_per_second.evaluate(timed_in_train_mode)
    assert result.status == "failed" and "training mode" in result.message

    def no_final_sync(model, x, *, warmup, iterations, synchronize):
        return images_per_second(model, x, warmup=warmup, iterations=iterations, synchronize=lambda: None)

    result = check_images_per_second.evaluate(no_final_sync)
    assert result.status == "failed" and "queued" in result.message
    assert "positive number" in check_images_per_second.evaluate(lambda *a, **k: "fast").message


def test_the_labs_timings_come_from_the_students_timer() -> None:
    """The layer table and the int8 table time with the timer they are given: a wrong one shows."""
    def constant(model, x, *, warmup, iterations, synchronize):
        return 4000.0

    assert {c.seconds for c in layer_costs(8, repeats=2, rounds=2, timer=constant)} == {8 / 4000.0}
    torch.manual_seed(0)
    cnn, x = build_cnn().eval(), torch.rand(64, 1, 28, 28)
    right = deploy.latency_ms(cnn, x, repeats=3, rounds=2)
    wrong = deploy.latency_ms(cnn, x, repeats=3, rounds=2, timer=_timer_without_images)
    assert wrong > 10 * right  # per call, not per image: 64 times too slow
    with pytest.raises(DlcourseError, match="not a positive number of images per second"):
        inference_throughput(cnn, x, iterations=1, rounds=1, timer=lambda *a, **k: float("nan"))


def test_amp_train_step() -> None:
    assert check_amp_train_step.evaluate(mixed_precision.amp_train_step).passed
    assert check_amp_train_step.evaluate(None).status == "not_attempted"

    def no_autocast(model, optimizer, scaler, x, y, loss_fn, dtype):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.item()

    result = check_amp_train_step.evaluate(no_autocast)
    assert result.status == "failed" and "autocast" in result.message

    def plain_step(model, optimizer, scaler, x, y, loss_fn, dtype):  # steps through the overflow
        optimizer.zero_grad()
        with torch.autocast(x.device.type, dtype=dtype):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        optimizer.step()
        scaler.update()
        return loss.item()

    result = check_amp_train_step.evaluate(plain_step)
    assert result.status == "failed" and "skipped" in result.message

    def no_update(model, optimizer, scaler, x, y, loss_fn, dtype):
        optimizer.zero_grad()
        with torch.autocast(x.device.type, dtype=dtype):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        return loss.item()

    result = check_amp_train_step.evaluate(no_update)
    assert result.status == "failed" and "scaler.update()" in result.hint


def test_checkpoint() -> None:
    assert check_checkpoint.evaluate(checkpoint.checkpoint_payload, checkpoint.restore_state).passed

    def forgets_position(state, payload):
        checkpoint.restore_state(state, payload)
        state.position = 0

    result = check_checkpoint.evaluate(checkpoint.checkpoint_payload, forgets_position)
    assert result.status == "failed" and "same position" in result.message

    def saves_objects(state):
        return {"model": state.model, "generator": state.generator}

    result = check_checkpoint.evaluate(saves_objects, checkpoint.restore_state)
    assert result.status == "failed" and "weights_only" in result.message


def test_quantize_int8() -> None:
    assert check_quantize_int8.evaluate(deploy.quantize_int8).passed
    truncated = check_quantize_int8.evaluate(lambda w: ((w / (np.abs(w).max() / 127)).astype(np.int8),
                                                        float(np.abs(w).max() / 127)))
    assert truncated.status == "failed" and "NEAREST" in truncated.hint
    floats = check_quantize_int8.evaluate(lambda w: (np.round(w / (np.abs(w).max() / 127)), float(np.abs(w).max() / 127)))
    assert "int8" in floats.message
    assert "pair" in check_quantize_int8.evaluate(lambda w: w).message


def test_a_wrong_restore_breaks_the_labs_resume(tmp_path) -> None:
    """The lab's resume runs the student's checkpoint_payload and restore_state: a wrong one shows."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(48, 1, 28, 28, generator=gen), torch.randint(0, 10, (48,), generator=gen)

    def forgets_the_optimizer(state, payload):
        payload = dict(payload)
        optimizer = payload.pop("optimizer")
        checkpoint.restore_state(state, {**payload, "optimizer": {"state": {}, "param_groups":
                                                                  optimizer["param_groups"]}})

    kwargs = dict(total_steps=6, interrupt_at=3, batch_size=16, seed=0, forget_pieces=())
    right = checkpoint.resume_demo(x, y, folder=tmp_path / "right", **kwargs)
    wrong = checkpoint.resume_demo(x, y, folder=tmp_path / "wrong", restore=forgets_the_optimizer, **kwargs)
    assert right["identical"] and right["max_abs_diff"] == 0
    assert not wrong["identical"] and wrong["max_abs_diff"] > 0


def _linear_without_zero_point(q_x, x_scale, x_zero, q_weight, w_scale, bias):  # a registered wrong answer
    return deploy.int8_linear(q_x, x_scale, 0, q_weight, w_scale, bias)


def test_int8_linear() -> None:
    assert check_int8_linear.evaluate(deploy.quantize_activations, deploy.int8_linear).passed
    assert check_int8_linear.evaluate(None, deploy.int8_linear).status == "not_attempted"
    result = check_int8_linear.evaluate(deploy.quantize_activations, _linear_without_zero_point)
    assert result.status == "failed" and "zero point" in result.hint

    def not_stretched(x):  # the range of the data only: 0 is not one of the levels
        lo, hi = x.min().item(), x.max().item()
        scale = (hi - lo) / 255
        zero = round(-lo / scale)
        return torch.clamp(torch.round(x / scale) + zero, 0, 255).to(torch.uint8), scale, zero

    result = check_int8_linear.evaluate(not_stretched, deploy.int8_linear)
    assert result.status == "failed" and result.message.startswith("`scale for an x from 0.40")
    result = check_int8_linear.evaluate(lambda x: (x, *deploy.quantize_activations(x)[1:]), deploy.int8_linear)
    assert result.status == "failed" and "uint8" in result.message


def test_a_wrong_int8_linear_changes_the_labs_int8_cnn() -> None:
    """The lab's int8 CNN computes its Linear layers with the student's functions: a wrong one shows."""
    def weights_scale_only(q_x, x_scale, x_zero, q_weight, w_scale, bias):  # a registered wrong answer
        return deploy.int8_linear(q_x, 1.0, x_zero, q_weight, w_scale, bias)

    torch.manual_seed(2)
    cnn, x = build_cnn().eval(), torch.rand(32, 1, 28, 28)
    right = deploy.with_int8_linear_layers(cnn, deploy.quantize_int8)
    wrong = deploy.with_int8_linear_layers(cnn, deploy.quantize_int8, linear=weights_scale_only)
    kinds = [type(m).__name__ for m in right.modules()]
    assert kinds.count("Int8Linear") == 2 and "Linear" not in kinds
    assert right.classifier[1].q_weight.dtype == torch.int8
    with torch.inference_mode():
        float_logits, int8_logits, wrong_logits = cnn(x), right(x), wrong(x)
    scale = float_logits.abs().max().item()
    assert (int8_logits - float_logits).abs().max().item() < 0.05 * scale  # int8 rounding only
    assert (wrong_logits - float_logits).abs().max().item() > 0.5 * scale
