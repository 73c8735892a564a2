"""dlcourse.cnn_torch: the shared CNN, in-memory batching, evaluation and the training recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dlcourse import cnn_torch
from dlcourse.training import TrainResult


@pytest.fixture
def tiny_mnist(shared_data, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DLCOURSE_DATA", str(shared_data))
    from dlcourse.data import load_mnist

    return load_mnist(scale=True, channels="first", n_train=640, n_test=300, seed=0)


def test_build_cnn_has_the_shared_shape() -> None:
    model = cnn_torch.build_cnn()
    assert cnn_torch.count_params(model) == 206_970
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    buffers = sum(b.numel() for name, b in model.named_buffers() if "running" in name)
    assert buffers == 96, "Keras' count_params() adds these 2·(16+32) moving statistics: 207,066"


def test_batches_cover_every_sample_once() -> None:
    x, y = torch.arange(10).float().reshape(10, 1), torch.arange(10)
    got = list(cnn_torch.batches(x, y, 4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [len(b) for b, _ in got] == [4, 4, 2]
    order = torch.cat([b for _, b in got])
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    assert all(torch.equal(bx[:, 0].long(), by) for bx, by in got), "x and y stay paired"
    plain = torch.cat([b for _, b in cnn_torch.batches(x, y, 4, shuffle=False)])
    assert plain.tolist() == list(range(10))
    with pytest.raises(ValueError, match="same length"):
        next(cnn_torch.batches(x, y[:5], 4, shuffle=False))


def test_evaluate_uses_eval_mode_and_restores_it() -> None:
    torch.manual_seed(0)
    model = cnn_torch.build_cnn()
    x, y = torch.rand(50, 1, 28, 28), torch.randint(0, 10, (50,))
    model.train()
    first = cnn_torch.evaluate(model, x, y, batch_size=7)
    assert model.training
    assert cnn_torch.evaluate(model, x, y, batch_size=50, channels_last=True) == pytest.approx(first)
    model.eval()
    cnn_torch.evaluate(model, x.numpy(), y.numpy())
    assert not model.training


def test_images_in_the_wrong_form_get_a_sentence() -> None:
    model = cnn_torch.build_cnn()
    with pytest.raises(ValueError, match="scale=True"):
        cnn_torch.evaluate(model, torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.zeros(2))
    assert cnn_torch.evaluate(model, torch.zeros(2, 28, 28, 1), torch.zeros(2)) >= 0  # channels-last is converted


def test_train_cnn_reports_a_train_result(tiny_mnist) -> None:
    model, result = cnn_torch.train_cnn(tiny_mnist, epochs=1.5, batch_size=64, device="cpu", progress=False, target=0.5)
    assert isinstance(result, TrainResult)
    assert result.framework.startswith("PyTorch") and result.recipe == "lab 08 CNN" and result.device == "cpu"
    assert result.params == 206_970 and result.epochs == 1.5
    assert set(result.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(result.history["val_accuracy"]) == 2, "one entry per (partial) epoch"
    assert result.test_accuracy == result.history["val_accuracy"][-1]
    assert result.test_accuracy > 0.5 and result.seconds_to_target is not None
    assert 0 < result.seconds_to_target <= result.train_seconds
    assert not model.training
    x, y = torch.from_numpy(tiny_mnist.test.x), torch.from_numpy(tiny_mnist.test.y)
    assert cnn_torch.evaluate(model, x, y) == pytest.approx(result.test_accuracy)


def test_train_cnn_is_repeatable_and_works_without_channels_last(tiny_mnist) -> None:
    _, a = cnn_torch.train_cnn(tiny_mnist, epochs=0.5, seed=3, device="cpu", channels_last=False, progress=False)
    _, b = cnn_torch.train_cnn(tiny_mnist, epochs=0.5, seed=3, device="cpu", channels_last=False, progress=False)
    assert a.history["loss"] == pytest.approx(b.history["loss"])
    assert a.seconds_to_target is None, "0.99 is out of reach for half an epoch on 640 images"


def test_recipe_is_complete() -> None:
    for key in ("epochs", "batch_size", "peak_lr", "momentum", "weight_decay", "label_smoothing"):
        assert key in cnn_torch.RECIPE


def test_recipe_optimizer_survives_very_short_runs() -> None:
    from dlcourse.cnn_torch import recipe_optimizer

    for total in (1, 2, 3, 4, 5, 100):  # 4 × pct_start 0.25 = 1 used to divide by zero inside OneCycleLR
        optimizer, scheduler = recipe_optimizer(cnn_torch.build_cnn().parameters(), peak_lr=0.05, total_steps=total)
        for _ in range(total):
            optimizer.step()
            scheduler.step()
    assert scheduler.state_dict()["total_steps"] == 100


def test_recipe_schedule_is_what_onecyclelr_does() -> None:
    """What lab 08 prints: OneCycleLR's defaults start at peak/25, end at peak/25/1e4, and cycle the momentum
    0.95 → 0.85 → 0.95 instead of RECIPE's 0.9."""
    trace = cnn_torch.recipe_schedule(400, peak_lr=0.05)
    assert len(trace["lr"]) == len(trace["momentum"]) == 400
    assert trace["lr"][0] == pytest.approx(0.05 / 25) and max(trace["lr"]) == pytest.approx(0.05, rel=1e-4)
    assert trace["lr"][-1] == pytest.approx(0.05 / 25 / 1e4, rel=1e-2)
    assert trace["momentum"][0] == pytest.approx(0.95) and min(trace["momentum"]) == pytest.approx(0.85, abs=1e-4)
    assert trace["lr"].index(max(trace["lr"])) == trace["momentum"].index(min(trace["momentum"])) == 99


def test_train_cnn_with_the_students_pieces_trains_as_the_library_does(tiny_mnist) -> None:
    """Lab 08 passes the student's CNN, batches, step and accuracy; the reference pieces give the library's run."""
    from dlcourse.checks.lab08 import reference_accuracy, reference_shuffled_batches, reference_train_step

    options = dict(epochs=1.5, seed=2, device="cpu", progress=False, target=0.5)
    _, library = cnn_torch.train_cnn(tiny_mnist, **options)
    _, pieces = cnn_torch.train_cnn(tiny_mnist, build=cnn_torch.MnistCNN, make_batches=reference_shuffled_batches,
                                    train_step=reference_train_step, accuracy=reference_accuracy, recipe="yours",
                                    **options)
    assert pieces.recipe == "yours" and "accuracy" not in pieces.history, "train_step returns only the loss"
    assert pieces.history["val_accuracy"] == library.history["val_accuracy"]
    assert pieces.history["loss"] == pytest.approx(library.history["loss"], rel=1e-5)


def test_train_cnn_optimises_only_what_requires_gradients(tiny_mnist) -> None:
    def frozen_features() -> nn.Module:
        model = cnn_torch.build_cnn()
        model.features.requires_grad_(False)
        return model

    model, result = cnn_torch.train_cnn(tiny_mnist, epochs=0.5, device="cpu", progress=False, build=frozen_features)
    torch.manual_seed(0)
    start = cnn_torch.build_cnn()
    assert result.params == 206_970 - 4_848
    assert torch.equal(model.features[0].weight, start.features[0].weight), "the frozen kernels did not move"
    assert not torch.equal(model.classifier[1].weight, start.classifier[1].weight)


def test_keras_weights_permute_the_flattened_features() -> None:
    """Keras flattens (h, w, c), PyTorch (c, h, w): the first dense layer's rows are permuted so both compute
    the same pre-activations from the same feature map."""
    torch.manual_seed(0)
    model = cnn_torch.build_cnn()
    weights = cnn_torch.keras_weights(model)
    assert [w.shape for w in weights["conv1"]] == [(3, 3, 1, 16)]
    assert [w.shape for w in weights["bn2"]] == [(32,)] * 4
    assert [w.shape for w in weights["dense"]] == [(1568, 128), (128,)]
    feature_map = torch.rand(32, 7, 7)
    torch_pre = model.classifier[1](feature_map.reshape(1, -1)).detach().numpy()[0]
    keras_pre = feature_map.permute(1, 2, 0).reshape(-1).numpy() @ weights["dense"][0] + weights["dense"][1]
    assert np.allclose(torch_pre, keras_pre, atol=1e-5)
    with pytest.raises(ValueError, match="shared CNN"):
        cnn_torch.keras_weights(nn.Linear(3, 2))
