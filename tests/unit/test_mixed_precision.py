"""dlcourse.mixed_precision: the formats' bits, float16 underflow and what loss scaling rescues, and
the same CNN trained in float32 and with autocast."""

from __future__ import annotations

import torch

from dlcourse.data import load_mnist
from dlcourse.mixed_precision import autocast_dtype, format_rows, train_torch_precisions, underflow_rows


def test_format_rows_give_the_bit_layouts() -> None:
    rows = {r[0]: r for r in format_rows()}
    assert rows["float32"][1:4] == ["32", "8", "23"]
    assert rows["bfloat16"][1:4] == ["16", "8", "7"]
    assert rows["float16"][1:4] == ["16", "5", "10"] and rows["float16"][4] == "6.55e+04"


def test_loss_scaling_rescues_what_float16_flushes_to_zero() -> None:
    rows = {r[0]: r for r in underflow_rows((1e-3, 1e-8))}
    assert float(rows["1e-08"][1]) == 0.0 and float(rows["1e-08"][2]) != 0.0  # float16 zero, bfloat16 not
    assert abs(float(rows["1e-08"][3]) - 1e-8) < 1e-10  # scaled by 2^16, it survives
    assert abs(float(rows["1e-03"][1]) - 1e-3) < 1e-6


def test_autocast_dtype_per_device() -> None:
    assert autocast_dtype(torch.device("cpu")) == torch.bfloat16
    assert autocast_dtype(torch.device("cuda")) == torch.float16


def test_both_precisions_train_from_the_same_start(shared_data) -> None:
    data = load_mnist(scale=True, channels="first", n_train=512, n_test=200, seed=0)
    fp32, mixed = train_torch_precisions(data, epochs=0.25, seed=0, device="cpu", progress=False)
    assert fp32.recipe == "lab 08 CNN" and mixed.recipe == "lab 08 CNN, autocast bfloat16"
    assert 0.0 <= fp32.test_accuracy <= 1.0 and 0.0 <= mixed.test_accuracy <= 1.0
    assert fp32.history["loss"] != mixed.history["loss"]  # autocast really changed the arithmetic


def test_the_labs_training_runs_the_step_it_is_given(shared_data) -> None:
    """Lab 12 trains with the student's amp_train_step: a step that never unscales and steps trains nothing."""
    from dlcourse.mixed_precision import amp_train_step, float32_train_step, train_with_step

    data = load_mnist(scale=True, channels="first", n_train=256, n_test=200, seed=0)

    def forgets_the_step(model, optimizer, scaler, x, y, loss_fn, dtype):
        optimizer.zero_grad()
        with torch.autocast(x.device.type, dtype=dtype):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        return loss.item()

    runs = {name: train_with_step(data, step, dtype=dtype, epochs=1, seed=0, device="cpu", progress=False)
            for name, step, dtype in [("float32", float32_train_step, None), ("mixed", amp_train_step, torch.bfloat16),
                                      ("wrong", forgets_the_step, torch.bfloat16)]}
    assert runs["float32"][1].epochs == 1 and runs["mixed"][1].recipe == "lab 08 CNN, autocast bfloat16"
    torch.manual_seed(0)
    from dlcourse.cnn_torch import build_cnn

    start = build_cnn().state_dict()
    trained = {name: model.state_dict() for name, (model, _) in runs.items()}
    assert all(torch.equal(start[k].float(), trained["wrong"][k].float()) for k in start if "running" not in k
               and "num_batches" not in k)
    assert not torch.equal(start["features.0.weight"], trained["mixed"]["features.0.weight"])
    assert not torch.equal(trained["float32"]["features.0.weight"], trained["mixed"]["features.0.weight"])
