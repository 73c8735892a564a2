"""Checks for lab 13's data-parallel part: combining shard gradients, the DDP batch arithmetic, one rank's
training loop and a ring all-reduce.

NumPy only: a light interpreter imports this module."""

from __future__ import annotations

import math
import numbers
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


# ------------------------------------------------------------------------------------------ 13.10
_RING = ("chunks = [np.array_split(np.array(g), world) for g in grads]  # each rank's own copy, cut in W chunks\n"
         "sent = [0] * world\n"
         "for phase in (\"reduce-scatter\", \"all-gather\"):\n"
         "    shift = 0 if phase == \"reduce-scatter\" else 1\n"
         "    for step in range(world - 1):\n"
         "        messages = []  # every rank sends one chunk to its right-hand neighbour, all at the same time\n"
         "        for rank in range(world):\n"
         "            index = (rank - step + shift) % world\n"
         "            messages.append((rank, index, chunks[rank][index].copy()))\n"
         "            sent[rank] += chunks[rank][index].size\n"
         "        for rank, index, chunk in messages:\n"
         "            receiver = chunks[(rank + 1) % world]\n"
         "            if phase == \"reduce-scatter\":\n"
         "                receiver[index] = receiver[index] + chunk\n"
         "            else:\n"
         "                receiver[index] = chunk\n"
         "averaged = [np.concatenate(own) / world for own in chunks]")
_WHOLE_VECTORS = ("vectors = [np.array(g) for g in grads]\n"
                  "totals = [v.copy() for v in vectors]\n"
                  "sent = [0] * world\n"
                  "for step in range(world - 1):  # every rank passes a whole vector on and adds what arrives\n"
                  "    vectors = [vectors[(rank - 1) % world] for rank in range(world)]\n"
                  "    for rank in range(world):\n"
                  "        totals[rank] = totals[rank] + vectors[rank]\n"
                  "        sent[(rank - 1) % world] += vectors[rank].size\n"
                  "averaged = [t / world for t in totals]")
_IN_PLACE = ("chunks = [np.array_split(np.array(g), world) for g in grads]\n"
             "sent = [0] * world\n"
             "for step in range(world - 1):  # reduce-scatter\n"
             "    for rank in range(world):\n"
             "        index = (rank - step) % world\n"
             "        chunks[(rank + 1) % world][index] += chunks[rank][index]\n"
             "        sent[rank] += chunks[rank][index].size\n"
             "for step in range(world - 1):  # all-gather\n"
             "    for rank in range(world):\n"
             "        index = (rank + 1 - step) % world\n"
             "        chunks[(rank + 1) % world][index][:] = chunks[rank][index]\n"
             "        sent[rank] += chunks[rank][index].size\n"
             "averaged = [np.concatenate(own) / world for own in chunks]")
_SECONDS = ("step_seconds = latency_s + n_numbers / world * bytes_per_number / link_bytes_per_s\n"
            "return 2 * (world - 1) * step_seconds")
_RING_HINT = ("W − 1 reduce-scatter steps leave each rank with the sum of ONE chunk (rank r: chunk r + 1); W − 1 "
              "all-gather steps then pass the finished chunks on round the ring; divide by W at the end.")


def _ring_hint(value: Any, want: np.ndarray, world: int) -> str:
    """Which typical mistake a rank's wrong vector shows: the sum, a half-finished vector, or something else."""
    try:
        got = np.asarray(value, dtype=float).reshape(want.shape)
    except (TypeError, ValueError):
        return _RING_HINT
    if np.allclose(got, want * world, rtol=1e-4, atol=1e-6):
        return "That is the sum over the ranks: divide it by W for the average, which is what DDP applies."
    finished = np.isclose(got, want, rtol=1e-4, atol=1e-6) | np.isclose(got, want * world, rtol=1e-4, atol=1e-6)
    if 0 < finished.mean() < 1:
        return "Only part of the vector is finished. " + _RING_HINT
    return _RING_HINT


def _whole_numbers(values: Any, count: int, name: str) -> list[int]:
    expect(isinstance(values, (list, tuple, np.ndarray)) and len(values) == count,
           f"`{name}` should be a list of {count} whole numbers, one per rank.")
    for v in values:
        expect(isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v).is_integer(),
               f"`{name}` should hold whole numbers (elements sent), but it holds {v!r}.")
    return [int(v) for v in values]


@exercise("13.10", "A ring all-reduce, and its time", wrong_answers={
    "reduce-scatter only (each rank holds one finished chunk)":
        [_RING.replace('("reduce-scatter", "all-gather")', '("reduce-scatter",)'), None],
    "W steps per phase, not W − 1": [_RING.replace("range(world - 1)", "range(world)"), None],
    "W − 2 steps per phase": [_RING.replace("range(world - 1)", "range(world - 2)"), None],
    "the all-gather starts from the wrong chunk": [_RING.replace('0 if phase == "reduce-scatter" else 1', "0"), None],
    "summed, not averaged": [_RING.replace("np.concatenate(own) / world", "np.concatenate(own)"), None],
    "whole vectors passed round the ring": [_WHOLE_VECTORS, None],
    "ring_seconds: the latency paid once, not per step":
        [None, "return latency_s + 2 * (world - 1) * n_numbers / world * bytes_per_number / link_bytes_per_s"],
    "ring_seconds: the whole vector at every step": [None, _SECONDS.replace("n_numbers / world", "n_numbers")],
    "ring_seconds: one phase only": [None, _SECONDS.replace("2 * (world - 1)", "(world - 1)")],
}, accepted_answers={
    "the left-hand neighbour": [_RING.replace("(rank - step + shift)", "(rank + step - shift)")
                                .replace("chunks[(rank + 1) % world]", "chunks[(rank - 1) % world]"), None],
    "in place, one rank after another": [_IN_PLACE, None],
    "chunks rounded up, like torch.chunk": [_RING.replace(
        "chunks = [np.array_split(np.array(g), world) for g in grads]",
        "size = -(-len(grads[0]) // world)  # ceil(N / W)\n"
        "chunks = [[np.array(g[i * size:(i + 1) * size]) for i in range(world)] for g in grads]"), None],
    "ring_seconds with chunks rounded up":
        [None, _SECONDS.replace("n_numbers / world", "math.ceil(n_numbers / world)")],
})
def check_ring_all_reduce(ring_all_reduce: Any, ring_seconds: Any) -> str:
    from dlcourse.ddp_train import ring_all_reduce_seconds

    expect_callable(ring_all_reduce, name="ring_all_reduce")
    expect_callable(ring_seconds, name="ring_seconds")
    rng = np.random.default_rng(1310)
    for world, n, dtype in [(2, 9, np.float64), (3, 10, np.float64), (5, 23, np.float64), (4, 1001, np.float32),
                            (7, 100, np.float64)]:
        grads = [rng.normal(size=n).astype(dtype) for _ in range(world)]
        want = np.mean(np.stack(grads).astype(np.float64), axis=0)
        got = ring_all_reduce([g.copy() for g in grads])
        case = f"W = {world} ranks, N = {n}"
        expect(isinstance(got, tuple) and len(got) == 2,
               "`ring_all_reduce` should return a pair: (every rank's final vector, the elements each rank sent).")
        finals, sent = got
        expect(isinstance(finals, (list, tuple, np.ndarray)) and len(finals) == world,
               f"`ring_all_reduce` should return one final vector per rank: {world} for {case}.")
        tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-12)
        for rank, final in enumerate(finals):
            expect_array(final, want, name=f"rank {rank}'s final vector for {case}", **tolerance,
                         hint=_ring_hint(final, want, world))
        counts = _whole_numbers(sent, world, f"the elements sent per rank for {case}")
        most = 2 * (world - 1) * -(-n // world)
        expect(sum(counts) == 2 * (world - 1) * n and max(counts) <= most,
               f"For {case} the ranks sent {counts} elements ({sum(counts)} in all); a ring sends 2(W − 1)·N = "
               f"{2 * (world - 1) * n} in all, at most {most} from one rank.",
               "A ring takes W − 1 steps in each phase, 2(W − 1) in all, and in each step every rank sends ONE "
               "chunk of about N/W elements to its neighbour: add that chunk's size, not the whole vector's.")
    for n, world, b, link, latency in [(1.1e8, 7, 2, 25e9, 5e-6), (7e9, 64, 4, 12.5e9, 2e-5),
                                       (2.5e6, 3, 1, 1e9, 1e-3)]:
        expect_number(ring_seconds(n, world, b, link, latency), ring_all_reduce_seconds(n, world, b, link, latency),
                      name=f"ring_seconds({n:.3g}, {world}, {b}, {link:.3g}, {latency:.3g})", rtol=1e-6,
                      hint="Two phases of W − 1 steps; each step costs the latency once plus one chunk of N/W "
                           "numbers × bytes per number ÷ the link's bytes per second.")
    return ("Right: every rank ends with the average, and each sends 2(W − 1) chunks, just under 2N elements however "
            "many ranks join.")
