"""Lab 08's references and the small tools its checks share.

The references have the signatures of the lab's exercises: lab 08's training cell uses them, said in
one sentence, while an exercise is unsolved (`dlcourse.student.yours_or_reference`). The test inputs
are seeded, have sizes that differ on every axis, and are laid out non-contiguously, as real batches
can be (a transposed view, a channels_last copy).
"""

from __future__ import annotations

import copy
from typing import Any, Iterator

from dlcourse.check import expect


def _torch():
    import torch

    return torch


# ------------------------------------------------------------------------------ references

def reference_shuffled_batches(x: Any, y: Any, batch_size: int, generator: Any) -> Iterator[tuple[Any, Any]]:
    """Exercise 08.2's answer: one shuffled epoch of (x, y) batches, the last one possibly smaller."""
    from dlcourse.cnn_torch import batches

    return batches(x, y, batch_size, shuffle=True, generator=generator)


def reference_train_step(model: Any, x: Any, y: Any, optimizer: Any, loss_fn: Any) -> float:
    """Exercise 08.3's answer: zero_grad → forward → loss → backward → step; the loss before the update."""
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def reference_accuracy(model: Any, x: Any, y: Any, batch_size: int = 500) -> float:
    """Exercise 08.4's answer: accuracy in eval mode under inference_mode; the model's mode is restored."""
    from dlcourse.cnn_torch import evaluate

    return evaluate(model, x, y, batch_size=batch_size)


def reference_transfer_model(mnist_model: Any, freeze_features: bool) -> Any:
    """Exercise 08.5's answer: a copy of the MNIST network with a fresh head; features frozen or not."""
    from dlcourse.cnn_torch import build_cnn

    model = copy.deepcopy(mnist_model)
    model.classifier = build_cnn().classifier  # freshly initialised: Fashion-MNIST's classes are not digits
    for p in model.features.parameters():
        p.requires_grad_(not freeze_features)
    return model


# ------------------------------------------------------------------------------ test material

def randomise(model: Any, seed: int, *, everything: bool = False) -> Any:
    """Give BatchNorm non-identity γ and β (negative values too) and running statistics far from (0, 1),
    so eval mode and train mode really differ; ``everything`` redraws the other weights too."""
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.copy_(torch.rand(module.weight.shape, generator=g) * 3 - 1.5)
                module.bias.copy_(torch.rand(module.bias.shape, generator=g) - 0.5)
                module.running_mean.copy_(torch.rand(module.running_mean.shape, generator=g) - 0.5)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=g) * 0.25 + 0.05)
            elif everything and isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                for p in module.parameters():
                    p.copy_((torch.rand(p.shape, generator=g) - 0.5) * 0.2)
    return model


def images(n: int, seed: int) -> Any:
    """n images of 28×28 in [0, 1], shape (n, 1, 28, 28), as a non-contiguous (transposed) view."""
    torch = _torch()
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).transpose(2, 3)


def strided(y: Any) -> Any:
    """The same values as a non-contiguous view (every other element of a longer tensor)."""
    torch = _torch()
    return torch.stack([y, y], dim=1)[:, 0]


def float_tensors(module: Any, kind: str) -> list[Any]:
    """A module's floating-point parameters or buffers, in registration order."""
    return [t for t in getattr(module, kind)() if t.dtype.is_floating_point]


def copy_weights(source: Any, target: Any, what: str = "Your network") -> None:
    """Copy parameters and buffers in registration order (the names may differ, the shapes may not)."""
    torch = _torch()
    for kind in ("parameters", "buffers"):
        src, dst = float_tensors(source, kind), float_tensors(target, kind)
        shapes_src, shapes_dst = [tuple(t.shape) for t in src], [tuple(t.shape) for t in dst]
        expect(shapes_src == shapes_dst,
               f"{what}'s {kind} have shapes {shapes_dst}, but the shared CNN's are {shapes_src}.",
               "Create the layers in the order data flows through them: conv, batch norm, (ReLU, pool), conv, "
               "batch norm, ..., then Linear(1568, 128) and Linear(128, 10).")
        with torch.no_grad():
            for s, d in zip(src, dst):
                d.copy_(s)
