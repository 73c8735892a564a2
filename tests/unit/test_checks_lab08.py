"""The lab 08 checks, called directly: they accept right answers and explain wrong ones."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlcourse.checks.lab08 import (check_accuracy, check_cnn_module, check_fashion_transfer, check_shuffled_batches,
                                   check_train_step)
from dlcourse.cnn_torch import MnistCNN, build_cnn


class SoftmaxCNN(MnistCNN):
    def forward(self, x):
        return torch.softmax(super().forward(x), dim=1)


class NoBatchNormCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)


def test_cnn_module() -> None:
    passed = check_cnn_module.evaluate(MnistCNN)
    assert passed.passed and "206,970" in passed.message
    softmax = check_cnn_module.evaluate(SoftmaxCNN)
    assert softmax.status == "failed" and "logits" in softmax.hint
    no_bn = check_cnn_module.evaluate(NoBatchNormCNN)
    assert no_bn.status == "failed" and "206874" in no_bn.message
    assert check_cnn_module.evaluate(None).status == "not_attempted"
    assert "should be a function" in check_cnn_module.evaluate(3).message
    assert "nn.Module" in check_cnn_module.evaluate(dict).message


def _right_batches(x, y, batch_size, generator):
    order = torch.randperm(len(x), generator=generator)
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        yield x[idx], y[idx]


def test_shuffled_batches() -> None:
    assert check_shuffled_batches.evaluate(_right_batches).passed

    def with_replacement(x, y, batch_size, generator):
        order = torch.randint(len(x), (len(x),), generator=generator)
        for start in range(0, len(x), batch_size):
            yield x[order[start:start + batch_size]], y[order[start:start + batch_size]]

    def drops_last(x, y, batch_size, generator):
        for bx, by in _right_batches(x, y, batch_size, generator):
            if len(bx) == batch_size:
                yield bx, by

    def stub(x, y, batch_size, generator):
        raise NotImplementedError

    assert "randperm" in check_shuffled_batches.evaluate(with_replacement).hint
    assert "sizes" in check_shuffled_batches.evaluate(drops_last).message
    assert check_shuffled_batches.evaluate(stub).status == "not_attempted"


def test_train_step() -> None:
    def right(model, x, y, optimizer, loss_fn):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    def no_zero_grad(model, x, y, optimizer, loss_fn):
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    assert check_train_step.evaluate(right).passed
    wrong = check_train_step.evaluate(no_zero_grad)
    assert wrong.status == "failed" and "zero_grad" in wrong.hint
    assert check_train_step.evaluate(lambda *args: "loss").status == "failed"


def test_accuracy() -> None:
    torch.manual_seed(0)
    model = build_cnn()
    with torch.no_grad():  # make train and eval mode differ
        model.features[1].running_mean.fill_(0.3)
    x, y = torch.rand(300, 1, 28, 28), torch.randint(0, 10, (300,))

    def right(model, x, y, batch_size=500):
        was = model.training
        model.eval()
        with torch.inference_mode():
            acc = (model(x).argmax(1) == y).float().mean().item()
        model.train(was)
        return acc

    def train_mode(model, x, y, batch_size=500):
        with torch.inference_mode():
            return (model(x).argmax(1) == y).float().mean().item()

    def no_restore(model, x, y, batch_size=500):
        model.eval()
        with torch.inference_mode():
            return (model(x).argmax(1) == y).float().mean().item()

    def with_autograd(model, x, y, batch_size=500):
        was = model.training
        model.eval()
        acc = (model(x).argmax(1) == y).float().mean().item()
        model.train(was)
        return acc

    assert check_accuracy.evaluate(right, model, x, y).passed
    assert "train mode" in check_accuracy.evaluate(train_mode, model, x, y).message
    assert "left in eval mode" in check_accuracy.evaluate(no_restore, model, x, y).message
    assert "inference_mode" in check_accuracy.evaluate(with_autograd, model, x, y).hint
    assert model.training, "the check works on a copy"


def test_fashion_transfer_rejects_an_untrained_model(shared_data, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLCOURSE_DATA", str(shared_data))
    result = check_fashion_transfer.evaluate(build_cnn())
    assert result.status == "failed" and "Fashion-MNIST test images" in result.message
    assert "load_fashion_mnist" in result.hint
    assert "trained torch model" in check_fashion_transfer.evaluate((1, 2)).message
    assert check_fashion_transfer.evaluate(None).status == "not_attempted"
