"""Checks for lab 08 (the same CNN in PyTorch): the module, in-memory batching, one training
step, evaluation in eval mode (`lab08_evaluation`) and the transfer to Fashion-MNIST.

Each check builds its own seeded inputs with sizes that differ on every axis, a length that is not a
multiple of the batch size and non-contiguous layouts, calls the student's code at values of every
argument other than the lab's, and compares what it computes (train mode with a seeded dropout mask,
eval mode, BatchNorm with non-identity γ, β and running statistics), never class names.
"""

from __future__ import annotations

from typing import Any

from dlcourse.check import Mismatch, expect, expect_array, expect_callable, expect_number, exercise
from dlcourse.checks.lab08_evaluation import check_accuracy, check_transfer_model  # registers 08.4 and 08.5
from dlcourse.checks.lab08_support import (_torch, copy_weights, images, randomise, reference_accuracy,
                                           reference_shuffled_batches, reference_train_step, reference_transfer_model,
                                           strided)

__all__ = ["check_cnn_module", "check_shuffled_batches", "check_train_step", "check_accuracy", "check_transfer_model",
           "reference_accuracy", "reference_shuffled_batches", "reference_train_step", "reference_transfer_model"]

N_PARAMS = 206_970

_FEATURES = ("self.features = nn.Sequential(\n"
             "    nn.Conv2d(1, 16, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),\n"
             "    nn.Conv2d(16, 32, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),\n"
             ")\n")
_HEAD = ("self.classifier = nn.Sequential(\n"
         "    nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10),\n"
         ")")
_FORWARD = "x = (x - 0.1307) / 0.3081\nreturn self.classifier(self.features(x))"


def _features_with(block1: str, block2: str) -> str:
    return (f"self.features = nn.Sequential(\n    {block1},\n    {block2},\n)\n")


def _head_with(layers: str) -> str:
    return f"self.classifier = nn.Sequential(\n    {layers},\n)"


@exercise("08.1", "The CNN as an nn.Module", wrong_answers={
    "softmax at the end of forward": [None, "return torch.softmax(self.classifier(self.features((x - 0.1307) / 0.3081)), dim=1)"],
    "no batch normalisation": [
        "self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),\n"
        "                              nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2))\n"
        "self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))",
        None],
    "forgot to normalise the input": [None, "return self.classifier(self.features(x))"],
    "mean and standard deviation swapped": [None, "return self.classifier(self.features((x - 0.3081) / 0.1307))"],
    "no dropout in the head": [_FEATURES + _head_with("nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10)"), None],
    "Dropout(0.9) on the logits": [_FEATURES + _head_with(
        "nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10), nn.Dropout(0.9)"), None],
    "dropout rate 0.5": [_FEATURES + _head_with(
        "nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10)"), None],
    "ReLU before BatchNorm": [_features_with(
        "nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.ReLU(), nn.BatchNorm2d(16), nn.MaxPool2d(2)",
        "nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.ReLU(), nn.BatchNorm2d(32), nn.MaxPool2d(2)") + _HEAD, None],
    "Keras' BatchNorm momentum (momentum=0.01)": [_features_with(
        "nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16, momentum=0.01), nn.ReLU(), nn.MaxPool2d(2)",
        "nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32, momentum=0.01), nn.ReLU(), nn.MaxPool2d(2)")
        + _HEAD, None],
    "Keras' BatchNorm epsilon (eps=1e-3)": [_features_with(
        "nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16, eps=1e-3), nn.ReLU(), nn.MaxPool2d(2)",
        "nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32, eps=1e-3), nn.ReLU(), nn.MaxPool2d(2)")
        + _HEAD, None],
    "kept the convolution biases": [_features_with(
        "nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)",
        "nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2)") + _HEAD, None],
    "flattened with .view (breaks on channels_last batches)": [
        _FEATURES + _head_with("nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10)"),
        "x = self.features((x - 0.1307) / 0.3081)\nreturn self.classifier(x.view(x.size(0), -1))"],
}, accepted_answers={
    "max-pool before the ReLU (they commute)": [_features_with(
        "nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.MaxPool2d(2), nn.ReLU()",
        "nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.MaxPool2d(2), nn.ReLU()") + _HEAD, None],
    "dropout before the ReLU (it only scales)": [_FEATURES + _head_with(
        "nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.Dropout(0.25), nn.ReLU(), nn.Linear(128, 10)"), None],
    "torch.flatten in forward": [
        _FEATURES + _head_with("nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10)"),
        "x = self.features(x.sub(0.1307).div(0.3081))\nreturn self.classifier(torch.flatten(x, 1))"],
})
def check_cnn_module(CNN: Any) -> str:
    torch = _torch()
    from dlcourse.cnn_torch import build_cnn, count_params

    expect_callable(CNN, name="CNN")
    torch.manual_seed(0)
    model = CNN()
    expect(isinstance(model, torch.nn.Module), f"`CNN()` should be a torch.nn.Module, but it is {type(model).__name__}.",
           "Write `class CNN(nn.Module):` and call `super().__init__()` first in `__init__`.")
    n_params = count_params(model)
    expect_number(n_params, N_PARAMS, name="trainable parameters of CNN()", integer=True, rtol=0, atol=0,
                  hint="Conv 3×3 1→16 and 16→32 without bias, BatchNorm2d(16) and BatchNorm2d(32), "
                       "Linear(32·7·7, 128) and Linear(128, 10): 144 + 32 + 4,608 + 64 + 200,832 + 1,290.")
    reference = randomise(build_cnn(), seed=4)
    copy_weights(reference, model)
    x = images(7, seed=1)  # 7 images: no axis equal to another, a transposed (non-contiguous) view
    model.eval(), reference.eval()
    with torch.no_grad():
        out, want = model(x), reference(x)
    shape_hint = "forward() should return one row of 10 logits per image."
    expect(tuple(out.shape) == (7, 10), f"CNN()(x) has shape {tuple(out.shape)} for 7 images, not (7, 10).", shape_hint)
    logits_hint = ("forward() should return raw logits (CrossEntropyLoss applies log-softmax itself), normalise the input "
                   "first, (x - 0.1307) / 0.3081, and run conv → BatchNorm(16 or 32, default eps) → ReLU → pool in each block.")
    if torch.allclose(out, torch.softmax(want, dim=1), atol=1e-5):
        raise Mismatch("CNN()(x) returns probabilities (each row sums to 1), not logits.", logits_hint)
    expect_array(out, want, name="CNN()(x) in eval mode (BatchNorm with its running statistics)", rtol=1e-4, atol=1e-5,
                 hint=logits_hint)
    # Train mode on channels_last copies, as train_cnn runs on the CPU: the same dropout mask for both.
    model.to(memory_format=torch.channels_last).train(), reference.to(memory_format=torch.channels_last).train()
    x_cl = x.contiguous(memory_format=torch.channels_last)
    torch.manual_seed(2)
    out = model(x_cl)
    torch.manual_seed(2)
    want = reference(x_cl)
    expect_array(out.detach(), want.detach(), name="CNN()(x) in train mode (same weights, same dropout seed)",
                 rtol=1e-4, atol=1e-5,
                 hint="In train mode Dropout acts: the head is Flatten → Linear(1568, 128) → ReLU → Dropout(0.25) → "
                      "Linear(128, 10), with no dropout on the logits.")
    for i, (mine, theirs) in enumerate(zip(model.buffers(), reference.buffers())):
        if mine.dtype.is_floating_point:
            expect_array(mine, theirs, name=f"BatchNorm's running statistics (buffer {i}) after one train-mode pass",
                         rtol=1e-4, atol=1e-6,
                         hint="Keep BatchNorm2d's defaults: PyTorch's momentum=0.1 weighs the NEW batch by 0.1 "
                              "(Keras' momentum=0.99 weighs the OLD average by 0.99).")
    return f"CNN() has {n_params:,} trainable parameters and computes the shared network in eval and in train mode."


_EPOCH = ("for start in range(0, len(x), batch_size):\n"
          "    idx = order[start:start + batch_size]\n"
          "    yield x[idx], y[idx]")


@exercise("08.2", "In-memory shuffled batches", wrong_answers={
    "sampled with replacement": ["order = torch.randint(len(x), (len(x),), generator=generator)\n" + _EPOCH],
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
    "ignored the generator": ["order = torch.randperm(len(x))\n" + _EPOCH],
    "batch size fixed at 64": [
        "order = torch.randperm(len(x), generator=generator)\n"
        "for start in range(0, len(x), 64):\n"
        "    idx = order[start:start + 64]\n"
        "    yield x[idx], y[idx]"],
}, accepted_answers={
    "torch.split of the permutation": [
        "for idx in torch.randperm(len(x), generator=generator).split(batch_size):\n"
        "    yield x[idx], y[idx]"],
    "a list of batches": [
        "order = torch.randperm(len(x), generator=generator)\n"
        "return [(x[order[s:s + batch_size]], y[order[s:s + batch_size]]) for s in range(0, len(x), batch_size)]"],
})
def check_shuffled_batches(shuffled_batches: Any) -> str:
    torch = _torch()
    expect_callable(shuffled_batches, name="shuffled_batches")
    n = 103  # not a multiple of any batch size below
    ids = torch.arange(n)
    x = (ids.float().reshape(n, 1, 1, 1) * torch.ones(n, 3, 5, 4)).transpose(2, 3)  # (103, 3, 4, 5), non-contiguous
    y = strided(ids * 7 % 10 + 100 * ids)  # a label that also tells which sample it belongs to

    def epoch(batch_size: int, seed: int) -> tuple[list[int], Any]:
        got = list(shuffled_batches(x, y, batch_size, torch.Generator().manual_seed(seed)))
        for xb, yb in got:
            expect(tuple(xb.shape[1:]) == (3, 4, 5) and xb.ndim == 4 and yb.ndim == 1,
                   f"A batch of x has shape {tuple(xb.shape)} and of y {tuple(yb.shape)}; images of shape (3, 4, 5) "
                   f"should keep that shape.", "Index x and y with a tensor of sample indices: x[idx], y[idx].")
        sizes = [len(xb) for xb, _ in got]
        expected = [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
        expect(sizes == expected, f"With 103 samples and batch_size {batch_size} your batches have sizes {sizes}, "
                                  f"not {expected}.",
               "Slice the shuffled order in steps of batch_size up to len(x): the last batch keeps the left-over samples.")
        seen = torch.cat([xb[:, 0, 0, 0] for xb, _ in got]).long()
        labels = torch.cat([yb for _, yb in got])
        expect(bool((labels == seen * 7 % 10 + 100 * seen).all()), "Some images are paired with another sample's label.",
               "Index x and y with the SAME permutation.")
        expect(sorted(seen.tolist()) == list(range(n)),
               f"One epoch should contain every sample exactly once, but {n - len(set(seen.tolist()))} samples are missing.",
               "Use a permutation (torch.randperm), not random draws with replacement (torch.randint).")
        expect(seen.tolist() != list(range(n)), "The batches come in the original order: they are not shuffled.",
               "Draw torch.randperm(len(x), generator=generator) once per epoch and index with slices of it.")
        return sizes, seen

    for batch_size in (10, 32, 128):
        sizes, seen = epoch(batch_size, seed=5)
        _, again = epoch(batch_size, seed=5)
        expect(again.tolist() == seen.tolist(), "The same generator seed gave a different order.",
               "Pass generator=generator to torch.randperm so the shuffle is reproducible.")
    return "Every sample once per epoch, shuffled by the generator, labels aligned, at batch sizes 10, 32 and 128 of 103."


def _step_setup() -> tuple[Any, Any, Any, Any, Any]:
    """A model, a 13-image channels_last batch, SGD with Nesterov and weight decay, a label-smoothed loss:
    none of them the lab's values."""
    torch = _torch()
    from dlcourse.cnn_torch import build_cnn

    torch.manual_seed(0)
    model = build_cnn().to(memory_format=torch.channels_last)
    x = images(13, seed=3).contiguous(memory_format=torch.channels_last)
    y = strided(torch.randint(0, 10, (13,), generator=torch.Generator().manual_seed(3)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.8, nesterov=True, weight_decay=1e-3)
    return model, x, y, optimizer, torch.nn.CrossEntropyLoss(label_smoothing=0.2)


@exercise("08.3", "One training step", wrong_answers={
    "forgot optimizer.zero_grad()": "loss = loss_fn(model(x), y)\nloss.backward()\noptimizer.step()\nreturn loss.item()",
    "stepped before backward": "optimizer.zero_grad()\nloss = loss_fn(model(x), y)\noptimizer.step()\nloss.backward()\nreturn loss.item()",
    "used F.cross_entropy, not loss_fn": "optimizer.zero_grad()\nloss = nn.functional.cross_entropy(model(x), y)\n"
                                         "loss.backward()\noptimizer.step()\nreturn loss.item()",
    "returned the loss after the update": "optimizer.zero_grad()\nloss = loss_fn(model(x), y)\nloss.backward()\n"
                                          "optimizer.step()\nreturn loss_fn(model(x), y).item()",
    "returned the loss tensor": "optimizer.zero_grad()\nloss = loss_fn(model(x), y)\nloss.backward()\noptimizer.step()\nreturn loss",
}, accepted_answers={
    "zero_grad after the step": "loss = loss_fn(model(x), y)\nloss.backward()\noptimizer.step()\noptimizer.zero_grad()\n"
                                "return loss.item()",
    "model.zero_grad()": "model.zero_grad()\nloss = loss_fn(model(x), y)\nloss.backward()\noptimizer.step()\n"
                         "return float(loss)",
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
        want = reference_train_step(*ref)
        expect(isinstance(loss, (int, float)) and not isinstance(loss, bool),
               f"train_step returned {type(loss).__name__}, not a Python number.",
               "Return loss.item(): a tensor keeps its autograd graph (and memory) alive as long as you keep it.")
        expect_number(loss, want, name=f"the loss train_step returned at step {step + 1}", rtol=1e-4, atol=1e-6,
                      hint="Compute the loss with the loss_fn you are given, on this batch, BEFORE the update.")
        for (name, p), q in zip(mine[0].named_parameters(), ref[0].parameters()):
            expect_array(p.detach(), q.detach(), name=f"parameter {name} after step {step + 1}", rtol=1e-4, atol=1e-6,
                         hint="The order is optimizer.zero_grad(), forward, loss, loss.backward(), optimizer.step(). "
                              "Without zero_grad, backward() ADDS to the previous step's gradients.")
    return "Three steps (Nesterov SGD with weight decay, a label-smoothed loss) match torch's reference step exactly."
