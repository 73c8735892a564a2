"""Checks for lab 13's data-parallel part: combining shard gradients and the DDP batch arithmetic.

NumPy only: a light interpreter imports this module."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlcourse.check import expect, expect_array, expect_callable, expect_number, exercise


# ------------------------------------------------------------------------------------------- 13.7
def _least_squares_gradient(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Gradient of the MEAN squared error (1/n)·Σ (x_i·w − y_i)² with respect to w."""
    return 2 * x.T @ (x @ w - y) / len(x)


@exercise("13.7", "Combine the gradients of data-parallel shards", wrong_answers={
    "plain mean of the shard gradients": "return np.mean(np.stack(shard_grads), axis=0)",
    "sum of the shard gradients": "return np.sum(np.stack(shard_grads), axis=0)",
})
def check_combine_gradients(combine_gradients: Any) -> str:
    expect_callable(combine_gradients, name="combine_gradients")
    rng = np.random.default_rng(12)
    x, y, w = rng.normal(size=(100, 5)), rng.normal(size=100), rng.normal(size=5)
    full = _least_squares_gradient(x, y, w)
    for sizes in [(50, 50), (25, 25, 25, 25), (64, 36), (10, 30, 60)]:
        bounds = np.cumsum((0,) + sizes)
        shards = [_least_squares_gradient(x[a:b], y[a:b], w) for a, b in zip(bounds[:-1], bounds[1:])]
        got = combine_gradients(shards, list(sizes))
        equal = len(set(sizes)) == 1
        expect_array(got, full, name=f"combine_gradients(...) for shards of sizes {list(sizes)}", rtol=1e-9, atol=1e-12,
                     hint="Each shard's gradient is a MEAN over its own samples. The full-batch mean weights every "
                          "sample once, so shard r counts n_r times: Σ n_r·g_r / Σ n_r."
                          + ("" if equal else " With equal shards that is the plain average, which is what DDP "
                                              "computes; with unequal shards the plain average is biased."))
    return "Right: with equal shards this is DDP's all-reduce average, and it equals the full-batch gradient."


# ------------------------------------------------------------------------------------------- 13.8
def _ddp_schedule(n: int, per_device: int, world: int, accumulation: int) -> tuple[int, int, int]:
    per_rank = math.ceil(n / world)  # DistributedSampler(drop_last=False) pads by repeating samples
    return per_device * world * accumulation, per_rank, math.ceil(per_rank / per_device)


@exercise("13.8", "Batch arithmetic under DistributedDataParallel", wrong_answers={
    "gradient accumulation left out": "effective_batch = per_device_batch * world_size\n"
                                      "samples_per_rank = math.ceil(n_samples / world_size)\n"
                                      "batches_per_rank = math.ceil(samples_per_rank / per_device_batch)",
    "every rank sees the whole data set": "effective_batch = per_device_batch * world_size * accumulation_steps\n"
                                          "samples_per_rank = n_samples\n"
                                          "batches_per_rank = math.ceil(samples_per_rank / per_device_batch)",
    "DistributedSampler drops the remainder": "effective_batch = per_device_batch * world_size * accumulation_steps\n"
                                              "samples_per_rank = n_samples // world_size\n"
                                              "batches_per_rank = math.ceil(samples_per_rank / per_device_batch)",
})
def check_ddp_schedule(ddp_schedule: Any) -> str:
    expect_callable(ddp_schedule, name="ddp_schedule")
    cases = [(60_000, 32, 2, 1), (60_000, 32, 2, 4), (10_001, 64, 4, 1), (1_281_167, 32, 256, 1), (50, 8, 3, 2)]
    for n, b, w, a in cases:
        got = ddp_schedule(n, b, w, a)
        expect(isinstance(got, tuple) and len(got) == 3,
               "`ddp_schedule` should return a tuple of three integers: (effective_batch, samples_per_rank, "
               "batches_per_rank).")
        want = _ddp_schedule(n, b, w, a)
        for name, g, v in zip(("effective_batch", "samples_per_rank", "batches_per_rank"), got, want):
            expect_number(g, v, name=f"{name} for n_samples={n:,}, per_device_batch={b}, world_size={w}, "
                                     f"accumulation_steps={a}", integer=True, rtol=0, atol=0,
                          hint="One optimizer step averages per_device_batch × world_size × accumulation_steps samples. "
                               "DistributedSampler gives each rank ceil(n / world_size) samples (it repeats a few "
                               "to make the shards equal), and the last batch of a rank may be short.")
    return "Right: with 2 ranks of 32 the effective batch is 64, the lab 08 recipe's batch size."




# ------------------------------------------------------------------------------------------- 13.9
_LOOP = ("for epoch in epochs:\n"
         "    sampler.set_epoch(epoch)\n"
         "    order = torch.tensor(list(sampler), device=x.device)\n"
         "    for begin in range(0, len(order), batch_size):\n"
         "        idx = order[begin:begin + batch_size]\n"
         "        optimizer.zero_grad(set_to_none=True)\n"
         "        loss = loss_fn(ddp(x[idx]), y[idx])\n"
         "        loss.backward()\n"
         "        optimizer.step()\n"
         "        scheduler.step()\n"
         "        on_step(loss)\n"
         "    if rank == 0:\n"
         "        save(epoch)")


class _Sampler:
    """A DistributedSampler for (rank, world) without a process group, recording set_epoch."""

    def __init__(self, n: int, world: int, rank: int, seed: int) -> None:
        from torch.utils.data import DistributedSampler

        self.inner = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed)
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)
        self.inner.set_epoch(epoch)

    def __iter__(self):
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)


def _run_rank(train_epochs: Any, rank: int, epochs: range) -> dict[str, Any]:
    import torch
    from torch import nn

    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    gen = torch.Generator().manual_seed(8)
    x, y = torch.randn(23, 5, generator=gen), torch.randint(0, 3, (23,), generator=gen)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    sampler = _Sampler(len(x), world=3, rank=rank, seed=11)
    losses: list[float] = []
    saves: list[int] = []
    train_epochs(model, sampler, x, y, optimizer, scheduler, nn.CrossEntropyLoss(), epochs, 3, rank,
                 saves.append, lambda loss: losses.append(float(loss.detach())))
    return {"losses": losses, "saves": saves, "set_epoch": sampler.epochs,
            "params": [p.detach().clone() for p in model.parameters()], "lr": optimizer.param_groups[0]["lr"]}


@exercise("13.9", "One rank's training loop", wrong_answers={
    "set_epoch never called (the same order every epoch)": _LOOP.replace("    sampler.set_epoch(epoch)\n", ""),
    "every rank writes the checkpoint": _LOOP.replace("    if rank == 0:\n        save(epoch)", "    save(epoch)"),
    "the whole data set on every rank": _LOOP.replace("torch.tensor(list(sampler), device=x.device)",
                                                      "torch.randperm(len(x), device=x.device)"),
    "the scheduler never stepped": _LOOP.replace("        scheduler.step()\n", ""),
    "the checkpoint only after the last epoch": _LOOP.replace("    if rank == 0:\n        save(epoch)",
                                                              "if rank == 0:\n    save(epochs[-1])"),
    "gradients never zeroed": _LOOP.replace("        optimizer.zero_grad(set_to_none=True)\n", ""),
}, accepted_answers={
    "the sampler's indices as a list": _LOOP.replace("torch.tensor(list(sampler), device=x.device)", "list(sampler)")
                                            .replace("idx = order[begin:begin + batch_size]",
                                                     "idx = torch.tensor(order[begin:begin + batch_size])"),
})
def check_train_epochs(train_epochs: Any) -> str:
    import torch

    from dlcourse.ddp_train import train_epochs as reference

    expect_callable(train_epochs, name="train_epochs")
    epochs = range(1, 4)  # resumed after epoch 0: epochs 1, 2 and 3
    for rank in (0, 2):
        got, want = _run_rank(train_epochs, rank, epochs), _run_rank(reference, rank, epochs)
        expect(got["set_epoch"] == list(epochs),
               f"On rank {rank} sampler.set_epoch was called with {got['set_epoch']}, not once per epoch with "
               f"{list(epochs)}.", "Call sampler.set_epoch(epoch) at the start of every epoch: without it every "
                                   "epoch repeats the same shuffle.")
        expect(got["saves"] == want["saves"],
               f"On rank {rank} the checkpoint was saved after epochs {got['saves']}, not {want['saves']}.",
               "Rank 0 alone saves, after every epoch (if rank == 0: save(epoch)): W ranks writing one file "
               "race each other, and a run interrupted mid-way should lose at most one epoch.")
        expect(len(got["losses"]) == len(want["losses"]),
               f"On rank {rank} on_step was called {len(got['losses'])} times, not once per step "
               f"({len(want['losses'])} steps: this rank's share of {len(epochs)} epochs in batches of 3).",
               "Iterate over this rank's indices, list(sampler), in batches, and call on_step(loss) after each "
               "step.")
        expect_array(torch.tensor(got["losses"]), torch.tensor(want["losses"]), name=f"the losses on rank {rank}",
                     rtol=1e-5, atol=1e-6,
                     hint="Each step: optimizer.zero_grad(), the loss of the batch x[idx], y[idx] through ddp, "
                          "backward(), optimizer.step(), scheduler.step(), then on_step(loss).")
        expect_number(got["lr"], want["lr"], name=f"the learning rate at the end on rank {rank}",
                      hint="Step the scheduler once per optimizer step.")
    return "Right: each epoch a new shard of the same shuffle on every rank, and one checkpoint per epoch, from rank 0."
