"""The lab 12 checks, called directly: they accept the library's reference answers and explain wrong ones."""

from __future__ import annotations

import numpy as np
import torch

from dlcourse import checkpoint, mixed_precision
from dlcourse.checks.lab12 import check_amp_train_step, check_checkpoint, check_layer_flops, check_quantize_int8
from dlcourse.throughput import layer_costs, layer_flops, training_flops_per_sample


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
    def right(w):
        scale = float(np.abs(w).max()) / 127
        return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale

    assert check_quantize_int8.evaluate(right).passed
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
