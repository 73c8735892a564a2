"""The lab 08 checks, called directly: they accept right answers and explain wrong ones; and lab 08's
training runs the student's pieces (a wrong one changes the trained result, a stub is replaced by the
reference, said in one sentence)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from dlcourse.checks.lab08 import (check_accuracy, check_cnn_module, check_shuffled_batches, check_train_step,
                                   check_transfer_model, reference_accuracy, reference_shuffled_batches,
                                   reference_train_step, reference_transfer_model)
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


def _head(layers):
    class Variant(MnistCNN):
        def __init__(self):
            super().__init__()
            self.classifier = nn.Sequential(*layers())

    return Variant


def _batchnorm(**options):
    class Variant(MnistCNN):
        def __init__(self):
            super().__init__()
            for i, channels in ((1, 16), (5, 32)):
                self.features[i] = nn.BatchNorm2d(channels, **options)

    return Variant


def test_cnn_module() -> None:
    passed = check_cnn_module.evaluate(MnistCNN)
    assert passed.passed and "206,970" in passed.message
    softmax = check_cnn_module.evaluate(SoftmaxCNN)
    assert softmax.status == "failed" and "probabilities" in softmax.message and "logits" in softmax.hint
    no_bn = check_cnn_module.evaluate(NoBatchNormCNN)
    assert no_bn.status == "failed" and "206874" in no_bn.message
    assert check_cnn_module.evaluate(None).status == "not_attempted"
    assert "should be a function" in check_cnn_module.evaluate(3).message
    assert "nn.Module" in check_cnn_module.evaluate(dict).message


def test_cnn_module_compares_train_mode_and_batchnorm() -> None:
    """Variants that agree in eval mode with identity BatchNorm: only a seeded train-mode pass, BatchNorm with
    non-identity γ, β and running statistics, and the running statistics after a step tell them apart."""
    no_dropout = _head(lambda: [nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(), nn.Linear(128, 10)])
    dropout_on_logits = _head(lambda: [nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(), nn.Linear(128, 10), nn.Dropout(0.9)])
    for variant in (no_dropout, dropout_on_logits):
        result = check_cnn_module.evaluate(variant)
        assert result.status == "failed" and "train mode" in result.message, result
    momentum = check_cnn_module.evaluate(_batchnorm(momentum=0.01))
    assert momentum.status == "failed" and "running statistics" in momentum.message and "momentum" in momentum.hint
    eps = check_cnn_module.evaluate(_batchnorm(eps=1e-3))
    assert eps.status == "failed" and "eval mode" in eps.message
    dropout_first = _head(lambda: [nn.Flatten(), nn.Linear(1568, 128), nn.Dropout(0.25), nn.ReLU(), nn.Linear(128, 10)])
    assert check_cnn_module.evaluate(dropout_first).passed, "dropout and ReLU commute: both orders are right"


def test_shuffled_batches() -> None:
    assert check_shuffled_batches.evaluate(reference_shuffled_batches).passed

    def with_replacement(x, y, batch_size, generator):
        order = torch.randint(len(x), (len(x),), generator=generator)
        for start in range(0, len(x), batch_size):
            yield x[order[start:start + batch_size]], y[order[start:start + batch_size]]

    def drops_last(x, y, batch_size, generator):
        for bx, by in reference_shuffled_batches(x, y, batch_size, generator):
            if len(bx) == batch_size:
                yield bx, by

    def unseeded(x, y, batch_size, generator):
        return reference_shuffled_batches(x, y, batch_size, None)

    def stub(x, y, batch_size, generator):
        raise NotImplementedError

    assert "randperm" in check_shuffled_batches.evaluate(with_replacement).hint
    assert "sizes" in check_shuffled_batches.evaluate(drops_last).message
    assert "same generator seed" in check_shuffled_batches.evaluate(unseeded).message
    assert check_shuffled_batches.evaluate(stub).status == "not_attempted"


def test_train_step() -> None:
    def no_zero_grad(model, x, y, optimizer, loss_fn):
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    def returns_tensor(model, x, y, optimizer, loss_fn):
        reference_train_step(model, x, y, optimizer, loss_fn)
        return torch.tensor(0.0)

    def own_loss(model, x, y, optimizer, loss_fn):
        return reference_train_step(model, x, y, optimizer, nn.CrossEntropyLoss())

    assert check_train_step.evaluate(reference_train_step).passed
    wrong = check_train_step.evaluate(no_zero_grad)
    assert wrong.status == "failed" and "zero_grad" in wrong.hint
    assert "not a Python number" in check_train_step.evaluate(returns_tensor).message
    assert "loss_fn you are given" in check_train_step.evaluate(own_loss).hint
    assert check_train_step.evaluate(lambda *args: "loss").status == "failed"


def test_accuracy() -> None:
    def train_mode(model, x, y, batch_size=500):
        with torch.inference_mode():
            return sum((model(x[s:s + batch_size]).argmax(1) == y[s:s + batch_size]).sum().item()
                       for s in range(0, len(x), batch_size)) / len(x)

    def no_restore(model, x, y, batch_size=500):
        model.eval()
        return train_mode(model, x, y, batch_size)

    def with_autograd(model, x, y, batch_size=500):
        was = model.training
        model.eval()
        acc = sum((model(x[s:s + batch_size]).argmax(1) == y[s:s + batch_size]).sum().item()
                  for s in range(0, len(x), batch_size)) / len(x)
        model.train(was)
        return acc

    def one_pass(model, x, y, batch_size=500):
        return reference_accuracy(model, x, y, batch_size=len(x))

    assert check_accuracy.evaluate(reference_accuracy).passed
    assert "train mode" in check_accuracy.evaluate(train_mode).message
    assert "left in eval mode" in check_accuracy.evaluate(no_restore).message
    assert "inference_mode" in check_accuracy.evaluate(with_autograd).hint
    assert "at once" in check_accuracy.evaluate(one_pass).message
    assert check_accuracy.evaluate(None).status == "not_attempted"


def test_transfer_model() -> None:
    assert check_transfer_model.evaluate(reference_transfer_model).passed

    def in_place(mnist_model, freeze_features):
        mnist_model.classifier = build_cnn().classifier
        return mnist_model

    def kept_head(mnist_model, freeze_features):
        model = copy.deepcopy(mnist_model)
        model.features.requires_grad_(not freeze_features)
        return model

    def froze_everything(mnist_model, freeze_features):
        model = reference_transfer_model(mnist_model, freeze_features)
        return model.requires_grad_(not freeze_features)

    assert "changed the MNIST network" in check_transfer_model.evaluate(in_place).message
    assert "MNIST network's weights" in check_transfer_model.evaluate(kept_head).message
    assert "head is frozen" in check_transfer_model.evaluate(froze_everything).message
    assert "should return a torch.nn.Module" in check_transfer_model.evaluate(lambda m, f: 3).message


# ------------------------------------------------------------------------------ the lab trains the student's code

def _train_like_the_lab(monkeypatch, capsys, answers: dict) -> tuple[float, list[float], str]:
    """Run lab 08's own cells up to its MNIST training (tiny sizes), with exercises replaced as `answers` says
    (a registered answer, or None for the lab's stub); return the validation accuracy, the training-loss curve
    and what the training cell printed."""
    from dlcourse import notebooks

    nb = notebooks.read(Path(__file__).resolve().parents[2] / "solutions" / "08_pytorch_cnn.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    ns: dict = {}
    exec(next(c.source for c in code if "parameters" in c.metadata.get("tags", [])), ns)
    ns.update(N_TRAIN=700, N_VAL=200, N_TEST=100, EPOCHS=1.5)
    exec(next(c.source for c in code if "seed_everything(SEED)" in c.source), ns)
    for exercise_id in ("08.1", "08.2", "08.3", "08.4"):
        source = next(c.source for c in code if notebooks.meta(c).get("exercise") == exercise_id)
        if exercise_id in answers:
            source = notebooks.replace_regions(source, answers[exercise_id], exercise_id)
        exec(source, ns)
    exec(next(c.source for c in code if "def hold_out" in c.source), ns)
    capsys.readouterr()
    exec(next(c.source for c in code if "pieces = {" in c.source), ns)
    result = ns["result"]
    return result.test_accuracy, result.history["loss"], capsys.readouterr().out


def test_the_lab_trains_the_students_pieces(shared_data, monkeypatch, capsys) -> None:
    """Lab 08's training uses the student's CNN, batches, step and accuracy: a registered wrong step or a wrong
    evaluation changes the trained result; while unsolved the reference stands in (the same run), said in one
    sentence."""
    from dlcourse.check import registry

    monkeypatch.setenv("DLCOURSE_DATA", str(shared_data))
    monkeypatch.setenv("DLCOURSE_FAST", "1")
    wrong = {ex: check.wrong_answers for ex, check in registry("08").items()}
    right, loss, printed = _train_like_the_lab(monkeypatch, capsys, {})
    assert "reference" not in printed and right > 0.5
    no_zero_grad, bad_loss, _ = _train_like_the_lab(monkeypatch, capsys, {"08.3": wrong["08.3"]["forgot optimizer.zero_grad()"]})
    assert bad_loss != loss and no_zero_grad != right, "the updates are the student's train_step"
    train_mode, _, _ = _train_like_the_lab(monkeypatch, capsys, {"08.4": wrong["08.4"]["left the model in train mode"]})
    assert train_mode != right, "the checkpoints are scored with the student's accuracy"
    no_dropout, _, _ = _train_like_the_lab(monkeypatch, capsys, {"08.1": wrong["08.1"]["no dropout in the head"]})
    assert no_dropout != right, "the network is the student's CNN"
    unsolved, unsolved_loss, printed = _train_like_the_lab(monkeypatch, capsys, {"08.2": None, "08.3": None})
    assert (unsolved, unsolved_loss) == (right, loss), "the reference pieces train exactly as the solution's"
    assert "solve exercises 08.2 and 08.3 first" in printed and "Until then the course's reference stands in." in printed
