"""Lab 12: checkpoint → resume that repeats the uninterrupted run bit for bit (seeded, on the CPU).

A resumed run is identical only if the checkpoint holds *every* piece of state the future depends
on: weights, optimizer (momentum), scheduler (where in the schedule), the RNG states (dropout) and
the position in the shuffled data. `resume_demo` shows it, and what each missing piece changes.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from dlcourse.cnn_torch import RECIPE, _as_images, _as_labels, build_cnn, recipe_loss, recipe_optimizer
from dlcourse.errors import DlcourseError, whole_number
from dlcourse.tables import format_table


CHECKPOINT_PIECES = ("optimizer", "scheduler", "rng", "data_order")
_PIECE_NAMES = {"optimizer": "without the optimizer state (fresh momentum)",
                "scheduler": "without the scheduler (learning rate restarts its warm-up)",
                "rng": "without the RNG state (other dropout masks)",
                "data_order": "without the data order (batches start over)"}
_FORMAT = "dlcourse checkpoint 1"


@dataclass
class TrainState:
    """Everything a training run's future depends on; a checkpoint saves all of it.

    ``order`` is the current epoch's shuffled permutation and ``position`` how many of its samples
    were used, so a run interrupted mid-epoch continues with the very next batch. Dropout draws from
    torch's global RNG, which is therefore saved too (`save_checkpoint`), not held here.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # CPU generator for the data shuffle
    config: dict[str, Any]  # seed, total_steps, lr: what rebuilds the same structure on load
    step: int = 0
    order: Tensor | None = None
    position: int = 0


def new_state(seed: int, total_steps: int, *, lr: float = RECIPE["peak_lr"], device: Any = "cpu") -> TrainState:
    """A fresh lab 08 CNN with SGD (Nesterov momentum 0.9) and a OneCycleLR schedule of ``total_steps``.

    Seeds torch's global RNG with ``seed`` (initial weights, dropout) and a separate CPU generator
    (data order), as a training script does at its start. The CPU default is deliberate: CPU kernels
    are deterministic, so a resumed run can be compared bit for bit.
    """
    whole_number("seed", seed, 0)
    whole_number("total_steps", total_steps, 1)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, not {lr!r}.")
    device = torch.device(device)
    torch.manual_seed(seed)
    model = build_cnn().to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)  # ~3× faster convolutions on the CPU
    optimizer, scheduler = recipe_optimizer(model.parameters(), peak_lr=lr, total_steps=total_steps)
    return TrainState(model, optimizer, scheduler, torch.Generator().manual_seed(seed),
                      {"seed": seed, "total_steps": total_steps, "lr": float(lr)})


def _next_batch(state: TrainState, n: int, batch_size: int) -> Tensor:
    """Indices of the next batch: one randperm per epoch, continued where the last call stopped."""
    if state.order is None or state.position >= len(state.order):
        state.order, state.position = torch.randperm(n, generator=state.generator), 0
    if len(state.order) != n:
        raise DlcourseError(f"This run shuffles {len(state.order):,} samples, but x has {n:,}: "
                            "continue it with the same training data.")
    idx = state.order[state.position:state.position + batch_size]
    state.position += len(idx)
    return idx


def train_steps(state: TrainState, x: Any, y: Any, n_steps: int, batch_size: int) -> list[float]:
    """Train ``n_steps`` mini-batch steps (label-smoothed cross-entropy); returns each step's loss."""
    whole_number("n_steps", n_steps, 0)
    whole_number("batch_size", batch_size, 1)
    total = state.config["total_steps"]
    if state.step + n_steps > total:
        raise DlcourseError(f"This run was planned for {total} steps and has done {state.step}: "
                            f"{n_steps} more would run past the end of its learning-rate schedule.")
    device = next(state.model.parameters()).device
    x, y = _as_images(x).to(device), _as_labels(y).to(device)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, not {len(x)} and {len(y)}.")
    channels_last = device.type == "cpu"
    loss_fn = recipe_loss()
    state.model.train()
    losses = []
    for _ in range(n_steps):
        idx = _next_batch(state, len(x), batch_size).to(device)
        xb = x[idx].contiguous(memory_format=torch.channels_last) if channels_last else x[idx]
        state.optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(state.model(xb), y[idx])
        loss.backward()
        state.optimizer.step()
        state.scheduler.step()
        state.step += 1
        losses.append(loss.item())
    return losses


def checkpoint_payload(state: TrainState) -> dict[str, Any]:
    """Every piece of ``state`` plus torch's global RNG state, as tensors, dicts and numbers (the
    reference for exercise 12.6): what `save_checkpoint` writes and `restore_state` reads back."""
    return {"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(), "step": state.step,
            "rng": {"torch": torch.get_rng_state(), "shuffle": state.generator.get_state()},
            "data": {"order": state.order, "position": state.position}}


def restore_state(state: TrainState, payload: dict[str, Any]) -> None:
    """Put everything `checkpoint_payload` saved back into a freshly built ``state`` (exercise 12.6)."""
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    state.scheduler.load_state_dict(payload["scheduler"])
    state.step = payload["step"]
    torch.set_rng_state(payload["rng"]["torch"])
    state.generator.set_state(payload["rng"]["shuffle"])
    state.order, state.position = payload["data"]["order"], payload["data"]["position"]


def save_checkpoint(state: TrainState, path: str | os.PathLike, *, payload: Any = checkpoint_payload) -> Path:
    """Save ``payload(state)`` with the run's config (and CUDA RNG states on a GPU), atomically.

    Only tensors, dicts, lists, numbers and strings go in, so `torch.load(weights_only=True)` can
    read it without running pickled code. Written atomically (`atomic_save`).
    """
    on_cuda = next(state.model.parameters()).device.type == "cuda"
    content = dict(payload(state))
    content.update({"format": _FORMAT, "config": dict(state.config),
                    "cuda_rng": torch.cuda.get_rng_state_all() if on_cuda else []})
    return atomic_save(content, path)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save ``obj`` to a temporary file in the same folder, then rename it over ``path``.

    A crash (or a full disk) mid-write therefore never leaves a half-written file where a good one was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _forgetful_restore(forget: Sequence[str]) -> Any:
    """`restore_state` that leaves the named pieces out on purpose, to show what each is for."""
    def restore(state: TrainState, ckpt: dict[str, Any]) -> None:
        state.model.load_state_dict(ckpt["model"])
        state.step = ckpt["step"]
        state.optimizer.load_state_dict(ckpt["optimizer"])  # learning rate and momentum of this step
        if "optimizer" in forget:
            state.optimizer.state.clear()  # the classic mistake: momentum buffers start again from zero
        if "scheduler" not in forget:
            state.scheduler.load_state_dict(ckpt["scheduler"])
        if "rng" not in forget:
            torch.set_rng_state(ckpt["rng"]["torch"])
        if "data_order" not in forget:
            state.generator.set_state(ckpt["rng"]["shuffle"])
            state.order, state.position = ckpt["data"]["order"], ckpt["data"]["position"]
    return restore


def load_checkpoint(path: str | os.PathLike, *, device: Any = "cpu", forget: Sequence[str] = (),
                    restore: Any = None) -> TrainState:
    """The TrainState saved at ``path``, with torch's global RNG restored, ready for `train_steps`.

    ``restore(state, checkpoint)`` fills a freshly built state (default `restore_state`). ``forget``
    leaves pieces out on purpose, to show what each is for: "optimizer" (momentum buffers start at
    zero), "scheduler" (the schedule restarts), "rng" (dropout RNG as freshly seeded), "data_order"
    (the shuffle starts over from epoch 0).
    """
    unknown = set(forget) - set(CHECKPOINT_PIECES)
    if unknown:
        raise ValueError(f"forget can name {', '.join(CHECKPOINT_PIECES)}, not {', '.join(sorted(unknown))}.")
    path = Path(path)
    if not path.is_file():
        raise DlcourseError(f"There is no checkpoint at {path}: save one first with save_checkpoint(state, path).")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DlcourseError(f"{path} could not be read as a checkpoint ({type(err).__name__}): it is truncated, "
                            "corrupt or not a checkpoint; save it again with save_checkpoint(state, path).") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
        raise DlcourseError(f"{path} is a torch file but not a checkpoint written by save_checkpoint.")
    if forget:
        restore = _forgetful_restore(forget)
    try:
        cfg = ckpt["config"]
        state = new_state(cfg["seed"], cfg["total_steps"], lr=cfg["lr"], device=device)
        (restore or restore_state)(state, ckpt)
        if ckpt.get("cuda_rng") and torch.cuda.is_available() and "rng" not in forget:
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise DlcourseError(f"{path} does not hold a complete lab 12 CNN checkpoint ({type(err).__name__}: "
                            f"{str(err)[:120]}); save it again with save_checkpoint(state, path).") from None
    return state


def _max_abs_diff(a: Sequence[float], b: Sequence[float]) -> float:
    return (torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)).abs().max().item()


def resume_demo(x: Any, y: Any, *, total_steps: int, interrupt_at: int, batch_size: int = 64, seed: int = 0,
                folder: str | os.PathLike, forget_pieces: Sequence[str] = CHECKPOINT_PIECES,
                payload: Any = checkpoint_payload, restore: Any = restore_state) -> dict[str, Any]:
    """Train without a break, then interrupted at ``interrupt_at`` → save → load → finish; compare.

    ``identical`` is True when the losses and every tensor of the final state_dict are bitwise equal.
    For each piece in ``forget_pieces`` the run is resumed once more without it: ``forgotten`` maps
    the piece to max |Δ loss| against the uninterrupted curve, ``forgotten_losses`` to that curve.
    ``payload`` and ``restore`` are what the full resume saves and restores with (the student's, in the lab).
    """
    whole_number("interrupt_at", interrupt_at, 1)
    if interrupt_at >= total_steps:
        raise ValueError(f"interrupt_at must be below total_steps ({total_steps}), not {interrupt_at}.")
    state = new_state(seed, total_steps)
    uninterrupted = train_steps(state, x, y, total_steps, batch_size)
    final = {k: v.clone() for k, v in state.model.state_dict().items()}

    state = new_state(seed, total_steps)
    first = train_steps(state, x, y, interrupt_at, batch_size)
    path = save_checkpoint(state, Path(folder) / "checkpoint.pt", payload=payload)
    reference_path = save_checkpoint(state, Path(folder) / "reference.pt")  # for the variants that forget a piece
    del state  # the "crash": nothing survives but the files
    resumed = load_checkpoint(path, restore=restore)
    losses = first + train_steps(resumed, x, y, total_steps - interrupt_at, batch_size)
    same_weights = all(torch.equal(final[k], v) for k, v in resumed.model.state_dict().items())
    identical = torch.equal(torch.tensor(uninterrupted), torch.tensor(losses)) and same_weights

    curves = {}
    for piece in forget_pieces:
        broken = load_checkpoint(reference_path, forget=(piece,))
        curves[piece] = first + train_steps(broken, x, y, total_steps - interrupt_at, batch_size)
    return {"uninterrupted": uninterrupted, "resumed": losses, "interrupt_at": interrupt_at, "identical": identical,
            "max_abs_diff": _max_abs_diff(uninterrupted, losses), "checkpoint_bytes": path.stat().st_size,
            "forgotten": {p: _max_abs_diff(uninterrupted, c) for p, c in curves.items()},
            "forgotten_losses": curves}


def _first_difference(a: Sequence[float], b: Sequence[float]) -> str:
    return next((str(i + 1) for i, (u, v) in enumerate(zip(a, b)) if u != v), "none")


def resume_table(demo: dict[str, Any]) -> str:
    """`resume_demo`'s result as a table: what the checkpoint held → how far the curve moved."""
    reference = demo["uninterrupted"]
    rows = [["everything", f"{demo['max_abs_diff']:.3g}", _first_difference(reference, demo["resumed"])]]
    for piece, curve in demo["forgotten_losses"].items():
        rows.append([_PIECE_NAMES[piece], f"{demo['forgotten'][piece]:.3g}", _first_difference(reference, curve)])
    return format_table(["resumed", "max |Δ loss|", "first step that differs"], rows)
