"""Checks for lab 08 (the same CNN in PyTorch): the module, in-memory batching, one training
step, evaluation in eval mode, and the Fashion-MNIST transfer."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from dlcourse.check import Mismatch, expect, expect_array, expect_callable, expect_number, exercise

N_PARAMS = 206_970


def _torch():
    import torch

    return torch


def _instantiate(cls: Any) -> Any:
    torch = _torch()
    expect_callable(cls, name="CNN")
    torch.manual_seed(0)
    model = cls()
    expect(isinstance(model, torch.nn.Module), f"`CNN()` should be a torch.nn.Module, but it is {type(model).__name__}.",
           "Write `class CNN(nn.Module):` and call `super().__init__()` first in `__init__`.")
    return model


def _copy_weights(source: Any, target: Any) -> None:
    """Copy parameters and buffers in registration order (the names may differ, the shapes may not)."""
    torch = _torch()
    for kind in ("parameters", "buffers"):
        src, dst = list(getattr(source, kind)()), list(getattr(target, kind)())
        shapes_src = [tuple(t.shape) for t in src if t.dtype.is_floating_point]
        shapes_dst = [tuple(t.shape) for t in dst if t.dtype.is_floating_point]
        expect(shapes_src == shapes_dst,
               f"Your network's {kind} have shapes {shapes_dst}, but the shared CNN's are {shapes_src}.",
               "Create the layers in the order data flows through them: conv, batch norm, (ReLU, pool), conv, "
               "batch norm, ..., then Linear(1568, 128) and Linear(128, 10).")
        with torch.no_grad():
            for s, d in zip([t for t in src if t.dtype.is_floating_point], [t for t in dst if t.dtype.is_floating_point]):
                d.copy_(s)


@exercise("08.1", "The CNN as an nn.Module", wrong_answers={
    "softmax at the end of forward": [None, "return torch.softmax(self.classifier(self.features((x - 0.1307) / 0.3081)), dim=1)"],
    "no batch normalisation": [
        "self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),\n"
        "                              nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2))\n"
        "self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))",
        None],
    "forgot to normalise the input": [None, "return self.classifier(self.features(x))"],
})
def check_cnn_module(CNN: Any) -> str:
    torch = _torch()
    from dlcourse.cnn_torch import build_cnn, count_params

    model = _instantiate(CNN)
    n_params = count_params(model)
    expect_number(n_params, N_PARAMS, name="trainable parameters of CNN()", integer=True, rtol=0, atol=0,
                  hint="Conv 3×3 1→16 and 16→32 without bias, BatchNorm2d(16) and BatchNorm2d(32), "
                       "Linear(32·7·7, 128) and Linear(128, 10): 144 + 32 + 4,608 + 64 + 200,832 + 1,290.")
    reference = build_cnn()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode is really tested
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    _copy_weights(reference, model)
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    model.eval(), reference.eval()
    with torch.no_grad():
        out = model(x)
        want = reference(x)
    expect_array(out, want, name="CNN()(x) in eval mode", rtol=1e-4, atol=1e-5,
                 hint="forward() should return raw logits (CrossEntropyLoss applies log-softmax itself), and normalise "
                      "the input first: (x - 0.1307) / 0.3081.")
    model.train()
    torch.manual_seed(2)
    out_train = model(x)
    expect(tuple(out_train.shape) == (8, 10), f"In train mode the output has shape {tuple(out_train.shape)}, not (8, 10).")
    return f"CNN() has {n_params:,} trainable parameters and computes exactly the shared network's logits."


@exercise("08.2", "In-memory shuffled batches", wrong_answers={
    "sampled with replacement": [
        "order = torch.randint(len(x), (len(x),), generator=generator)\n"
        "for start in range(0, len(x), batch_size):\n"
        "    idx = order[start:start + batch_size]\n"
        "    yield x[idx], y[idx]"],
    "dropped the last partial batch": [
        "order = torch.randperm(len(x), generator=generator)\n"
        "for start in range(0, len(x) - batch_size + 1, batch_size):\n"
        "    idx = order[start:start + batch_size]\n"
        "    yield x[idx], y[idx]"],
    "shuffled x and y with different orders": [
        "order_x = torch.randperm(len(x), generator=generator)\n"
        "order_y = torch.randperm(len(x), generator=generator)\n"
        "for start in range(0, len(x), batch_size):\n"
        "    yield x[order_x[start:start + batch_size]], y[order_y[start:start + batch_size]]"],
    "forgot to shuffle": [
        "for start in range(0, len(x), batch_size):\n"
        "    yield x[start:start + batch_size], y[start:start + batch_size]"],
})
def check_shuffled_batches(shuffled_batches: Any) -> str:
    torch = _torch()
    expect_callable(shuffled_batches, name="shuffled_batches")
    n, batch_size = 103, 10
    ids = torch.arange(n)
    x = ids.float().reshape(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()  # each image holds its own index
    y = ids * 7 % 10 + 100 * ids  # a label that also tells which sample it belongs to
    got = list(shuffled_batches(x, y, batch_size, torch.Generator().manual_seed(0)))
    sizes = [len(b[0]) for b in got]
    expected_sizes = [batch_size] * (n // batch_size) + [n % batch_size]
    expect(sizes == expected_sizes, f"With 103 samples and batch_size 10 your batches have sizes {sizes}, "
                                    f"not {expected_sizes}.",
           "Slice the shuffled order in steps of batch_size up to len(x): the last batch keeps the 3 left-over samples.")
    seen = torch.cat([b[0][:, 0, 0, 0] for b in got]).long()
    labels = torch.cat([b[1] for b in got])
    expect(bool((labels == seen * 7 % 10 + 100 * seen).all()),
           "Some images are paired with another sample's label.",
           "Index x and y with the SAME permutation.")
    expect(sorted(seen.tolist()) == list(range(n)),
           f"One epoch should contain every sample exactly once, but {n - len(set(seen.tolist()))} samples are missing.",
           "Use a permutation (torch.randperm), not random draws with replacement (torch.randint).")
    expect(seen.tolist() != list(range(n)), "The batches come in the original order: they are not shuffled.",
           "Draw torch.randperm(len(x), generator=generator) once per epoch and index with slices of it.")
    again = torch.cat([b[0][:, 0, 0, 0] for b in shuffled_batches(x, y, batch_size, torch.Generator().manual_seed(0))])
    expect(again.long().tolist() == seen.tolist(), "The same generator seed gave a different order.",
           "Pass generator=generator to torch.randperm so the shuffle is reproducible.")
    return f"Every sample once per epoch, shuffled, labels aligned, batch sizes {sizes[0]}…{sizes[-1]}."


def _reference_step(model: Any, x: Any, y: Any, optimizer: Any, loss_fn: Any) -> float:
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def _step_setup() -> tuple[Any, Any, Any, Any, Any]:
    torch = _torch()
    from dlcourse.cnn_torch import build_cnn

    torch.manual_seed(0)
    model = build_cnn()
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(32, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (32,), generator=gen)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, x, y, optimizer, torch.nn.CrossEntropyLoss()


@exercise("08.3", "One training step", wrong_answers={
    "forgot optimizer.zero_grad()": "loss = loss_fn(model(x), y)\nloss.backward()\noptimizer.step()\nreturn loss.item()",
    "stepped before backward": "optimizer.zero_grad()\nloss = loss_fn(model(x), y)\noptimizer.step()\nloss.backward()\nreturn loss.item()",
})
def check_train_step(train_step: Any) -> str:
    torch = _torch()
    expect_callable(train_step, name="train_step")
    mine, ref = _step_setup(), _step_setup()
    mine[0].train(), ref[0].train()
    for step in range(3):
        torch.manual_seed(10 + step)  # the same dropout masks for both
        loss = train_step(*mine)
        torch.manual_seed(10 + step)
        want = _reference_step(*ref)
        expect_number(loss, want, name=f"the loss train_step returned at step {step + 1}", rtol=1e-4, atol=1e-6,
                      hint="Return the loss of this batch computed BEFORE the update, as a Python number (loss.item()).")
        for (name, p), q in zip(mine[0].named_parameters(), ref[0].parameters()):
            expect_array(p.detach(), q.detach(), name=f"parameter {name} after step {step + 1}", rtol=1e-4, atol=1e-6,
                         hint="The order is optimizer.zero_grad(), forward, loss, loss.backward(), optimizer.step(). "
                              "Without zero_grad, backward() ADDS to the previous step's gradients.")
    return "Three steps match torch's reference step exactly: zero_grad → forward → loss → backward → step."


# The counting loop both wrong answers share; they differ only in how they handle the model's mode.
_COUNT_CORRECT = (
    "correct = 0\n"
    "with torch.inference_mode():\n"
    "    for start in range(0, len(x), batch_size):\n"
    "        logits = model(x[start:start + batch_size])\n"
    "        correct += (logits.argmax(dim=1) == y[start:start + batch_size]).sum().item()\n"
    "return correct / len(x)")


@exercise("08.4", "Accuracy in eval mode", wrong_answers={
    "left the model in train mode": [_COUNT_CORRECT],
    "did not restore the train/eval mode": ["model.eval()\n" + _COUNT_CORRECT],
})
def check_accuracy(accuracy: Any, model: Any, x: Any, y: Any) -> str:
    torch = _torch()
    from dlcourse.cnn_torch import evaluate

    expect_callable(accuracy, name="accuracy")
    x, y = torch.as_tensor(np.asarray(x)), torch.as_tensor(np.asarray(y))
    model = copy.deepcopy(model).cpu()
    model.train()
    want = evaluate(model, x, y)
    calls: list[tuple[bool, bool]] = []  # (autograd on, train mode) at each forward pass
    hook = model.register_forward_hook(lambda module, args, out: calls.append((torch.is_grad_enabled(), module.training)))
    try:
        got = accuracy(model, x, y)
    finally:
        hook.remove()
    eval_hint = ("Call model.eval() first: in train mode Dropout drops units and BatchNorm normalises with "
                 "each batch's statistics instead of the running averages learned in training.")
    expect(bool(calls), "accuracy(...) never called the model.")
    expect(not any(training for _, training in calls), "The model was in train mode during evaluation.", eval_hint)
    expect_number(got, want, name="accuracy(model, x_test, y_test)", rtol=0, atol=1e-9,
                  hint="Count the samples whose largest logit is at the true label, over ALL samples, and divide by len(x).")
    expect(model.training, "After accuracy(...) a model that was in train mode is left in eval mode.",
           "Remember was_training = model.training, and call model.train(was_training) at the end "
           "(a try/finally makes it happen even on an error).")
    expect(not any(grad for grad, _ in calls), "The forward passes ran with autograd on: they record a graph nobody uses.",
           "Wrap the loop in `with torch.inference_mode():`.")
    model.eval()
    accuracy(model, x[:100], y[:100])
    expect(not model.training, "A model that was in eval mode comes back in train mode.",
           "Restore the mode the model had before, not always train mode.")
    return "Your accuracy equals the reference exactly: eval mode, no autograd, and the model's mode is restored."


FASHION_THRESHOLD = 0.70  # a trained CNN gets ~0.9; an MNIST model or an untrained one gets ~0.1


@exercise("08.5", "Transfer to Fashion-MNIST", wrong_answers={
    "trained on MNIST, not Fashion-MNIST": "fashion = load_mnist(scale=True, channels='first', n_train=N_TRAIN, n_test=N_TEST, seed=SEED)\n"
                                           "fashion_model, fashion_result = train_cnn(fashion, seed=SEED, progress=False)",
    "reused the MNIST model": "fashion_model, fashion_result = model, result",
})
def check_fashion_transfer(fashion_model: Any, n_test: Any = 2000) -> str:
    torch = _torch()
    from dlcourse.cnn_torch import evaluate
    from dlcourse.data import load_fashion_mnist

    expect(isinstance(fashion_model, torch.nn.Module),
           f"`fashion_model` should be the trained torch model, but it is {type(fashion_model).__name__}.",
           "train_cnn returns (model, result): unpack both.")
    test = load_fashion_mnist(scale=True, channels="first", n_test=int(n_test), seed=1).test
    acc = evaluate(fashion_model.cpu(), torch.from_numpy(test.x), torch.from_numpy(test.y))
    expect(acc >= FASHION_THRESHOLD,
           f"`fashion_model` classifies only {acc:.1%} of Fashion-MNIST test images correctly (want at least "
           f"{FASHION_THRESHOLD:.0%}).",
           "Load the data with load_fashion_mnist(scale=True, channels='first', ...) and train a fresh network on it "
           "with train_cnn: a digit classifier knows nothing about shirts and shoes.")
    return f"Your Fashion-MNIST network classifies {acc:.2%} of {len(test.y):,} Fashion-MNIST test images correctly."
