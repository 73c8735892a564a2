"""Shared helpers of lab 14's checks: torch imported on first use, seeded non-trivial weights, weight copies
that turn a renamed sub-module into a sentence."""

from __future__ import annotations

from typing import Any

from dlcourse.check import Mismatch


def torch_modules():
    """(torch, torch.nn.functional, torch.nn), imported when a check runs."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    return torch, F, nn


def randomise(module: Any, *, seed: int, std: float) -> None:
    """Every parameter drawn from N(0, std²), LayerNorm weights from N(1, std²): no identity affine maps, no
    near-uniform softmax, so a missing piece changes the output. A tied matrix is drawn once."""
    torch, _, nn = torch_modules()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            for name, p in sub.named_parameters(recurse=False):
                p.copy_(torch.randn(p.shape, generator=g) * std + (1.0 if isinstance(sub, nn.LayerNorm) and
                                                                   name == "weight" else 0.0))


def copy_weights(source: Any, target: Any, name: str) -> None:
    """Load ``source``'s state dict into ``target``; a missing or differently shaped entry is the student's
    change to the given __init__, said in one sentence."""
    try:
        target.load_state_dict(source.state_dict())
    except (RuntimeError, KeyError, AttributeError) as error:
        first = str(error).strip().splitlines()[0][:200]
        raise Mismatch(f"`{name}` does not have the sub-modules the cell's __init__ makes ({first}).",
                       "Keep the given __init__ as it is: the checks and the lab's training look its pieces up "
                       "by name.") from None
