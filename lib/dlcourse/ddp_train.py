"""Data-parallel training of the lab 08 CNN with DistributedDataParallel, launched by torchrun.

    torchrun --nproc-per-node=2 -m dlcourse.ddp_train --out runs/ddp          # 2 CPU processes (gloo)
    torchrun --nproc-per-node=8 -m dlcourse.ddp_train --out runs/ddp          # 8 GPUs (nccl)

    # "interrupted" after epoch 1 of 3, then finished from rank 0's checkpoint
    torchrun --nproc-per-node=2 -m dlcourse.ddp_train --out runs/a --epochs 3 --stop-after-epoch 1
    torchrun --nproc-per-node=2 -m dlcourse.ddp_train --out runs/b --epochs 3 --resume runs/a/checkpoint.pt

    # 2 machines × 8 GPUs: the SAME command on every machine; node0 hosts the rendezvous on port 29400
    torchrun --nnodes=2 --nproc-per-node=8 --rdzv-backend=c10d --rdzv-endpoint=node0:29400 \
             --rdzv-id=mnist-ddp -m dlcourse.ddp_train --out runs/ddp

torchrun starts one process per device and gives each its RANK, LOCAL_RANK and WORLD_SIZE (and the
rendezvous address) in the environment; the script itself never changes with the machine count.
What each process does:

1. joins the process group (NCCL when it has a GPU, gloo on CPUs);
2. optionally proves DDP's core identity on one batch (``--check-gradients``): the gradient averaged
   over W ranks, each holding 1/W of the batch, equals the single-process gradient of the whole batch,
   and after the optimizer step every rank holds the same parameters;
3. trains on its shard of the data (``DistributedSampler``: a different 1/W of every epoch per rank);
4. rank 0 alone logs, writes the checkpoint (atomically) and the metrics JSON the notebook reads.

For the notebook, the module also simulates the all-reduce in one process (NumPy): the ring that NCCL
uses, the naive gather-to-rank-0 one, and the time each takes in Hockney's latency-bandwidth model.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from dlcourse.checkpoint import atomic_save
from dlcourse.cnn_torch import (RECIPE, MnistCNN, _as_images, _as_labels, count_params, evaluate, recipe_loss,
                                recipe_optimizer)
from dlcourse.data import ImageData, load_mnist


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for metrics.json and checkpoint.pt (rank 0 writes)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32, help="per rank; the effective batch is W times this")
    parser.add_argument("--lr", type=float, default=RECIPE["peak_lr"], help="peak learning rate (OneCycleLR)")
    parser.add_argument("--train-size", type=int, default=60_000)
    parser.add_argument("--test-size", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=100, help="steps between rank-0 log lines")
    parser.add_argument("--check-gradients", action="store_true", help="prove the gradient identity first")
    parser.add_argument("--check-batch", type=int, default=64, help="global batch of the gradient check")
    parser.add_argument("--resume", default=None, help="a checkpoint.pt to continue from (its next epoch)")
    parser.add_argument("--train-fn", default=None,
                        help="FILE.py:NAME, a train_epochs function to run instead of this module's own (lab 13's "
                             "notebook writes the student's there)")
    parser.add_argument("--stop-after-epoch", type=int, default=None,
                        help="stop after this epoch, as if interrupted (the checkpoint lets --resume finish the run)")
    return parser.parse_args(argv)


def setup() -> tuple[int, int, torch.device]:
    """Join the process group torchrun prepared; NCCL on GPUs, gloo on CPUs."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank, local_world = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    use_cuda = torch.cuda.is_available() and torch.cuda.device_count() >= local_world  # one GPU per process, or none
    if use_cuda:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return rank, world, device


def log(rank: int, message: str) -> None:
    """Rank 0 speaks for everyone: W copies of each line would say nothing more."""
    if rank == 0:
        print(f"[rank 0] {message}", flush=True)


def flat_grad(model: nn.Module) -> Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def flat_params(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def max_across_ranks(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def ranks_identical(vector: Tensor) -> float:
    """max |rank r's vector − rank 0's| over all ranks (0.0 means bit-for-bit identical)."""
    gathered = [torch.empty_like(vector) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, vector.contiguous())
    return max(float((g - gathered[0]).abs().max()) for g in gathered)


def gradient_identity(x: Tensor, y: Tensor, *, seed: int, train_mode: bool, lr: float,
                      device: torch.device) -> dict[str, Any]:
    """One DDP step on 1/W of a batch per rank versus one process on the whole batch.

    DDP all-reduces (sums) the gradients and divides by W. With a mean loss on equal shards, the average
    of the W shard gradients is exactly the gradient of the mean loss over the whole batch, up to float32
    rounding. Dropout is off (its masks depend on the batch layout); ``train_mode`` decides whether
    BatchNorm normalises with the statistics of the batch each rank sees (training) or its running ones.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(seed)
    single = MnistCNN(dropout=0.0).to(device)  # identical initial weights on every rank: same seed
    ddp = DistributedDataParallel(copy.deepcopy(single), device_ids=[device.index] if device.type == "cuda" else None)
    for model in (single, ddp):
        model.train(train_mode)
    loss_fn = nn.CrossEntropyLoss()
    shard_x, shard_y = x.chunk(world)[rank], y.chunk(world)[rank]

    loss_fn(ddp(shard_x), shard_y).backward()  # backward() all-reduces the gradients while it runs
    loss_fn(single(x), y).backward()  # the reference: the whole batch in one process
    ddp_grad, full_grad = flat_grad(ddp.module), flat_grad(single)
    local = copy.deepcopy(single)  # this rank's shard alone, without the all-reduce
    local.zero_grad()
    loss_fn(local(shard_x), shard_y).backward()

    optimizer = torch.optim.SGD(ddp.parameters(), lr=lr)
    optimizer.step()
    return {
        "batchnorm": "batch statistics (train mode)" if train_mode else "running statistics (eval mode)",
        "global_batch": len(x), "per_rank_batch": len(shard_x),
        "max_abs_diff_allreduced_vs_full": max_across_ranks(float((ddp_grad - full_grad).abs().max()), device),
        "max_abs_diff_one_shard_vs_full": max_across_ranks(float((flat_grad(local) - full_grad).abs().max()), device),
        "max_abs_grad": float(full_grad.abs().max()),
        "params_max_diff_between_ranks": ranks_identical(flat_params(ddp.module)),
    }


# ------------------------------------------------------------------ the all-reduce, simulated in one process

def combine_gradients(shard_grads: Sequence[np.ndarray], shard_sizes: Sequence[int]) -> np.ndarray:
    """The full-batch gradient from the mean-loss gradients of shards of n_r samples each, Σ n_r·g_r / Σ n_r
    (lab 13's exercise 13.7); with equal shards it is the plain average that DDP's all-reduce computes."""
    sizes = np.asarray(shard_sizes, dtype=float)
    return np.tensordot(sizes, np.stack(shard_grads), axes=1) / sizes.sum()


def shard_gradients(model: nn.Module, x: Tensor, y: Tensor, world: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The flattened gradients of the mean cross-entropy on each of ``world`` equal shards of (x, y), as W
    DDP ranks hold them before the all-reduce, and the gradient of the whole batch in one process."""
    if world < 1 or len(x) % world:
        raise ValueError(f"{len(x)} samples do not split into {world} equal shards: pick a batch that divides.")
    loss_fn = nn.CrossEntropyLoss()

    def gradient(xb: Tensor, yb: Tensor) -> np.ndarray:
        model.zero_grad(set_to_none=True)
        loss_fn(model(xb), yb).backward()
        return flat_grad(model).detach().cpu().numpy().copy()

    return [gradient(xs, ys) for xs, ys in zip(x.chunk(world), y.chunk(world))], gradient(x, y)


def ring_all_reduce(grads: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """Average W vectors of length N, one per rank, as a ring all-reduce does, and count the elements each
    rank sends (lab 13's exercise 13.10). Every rank cuts its copy into W chunks (np.array_split).
    Reduce-scatter: in each of W − 1 steps rank r sends chunk (r − step) mod W to rank r + 1, which adds
    it to its own; then rank r holds the sum of chunk r + 1. All-gather: in W − 1 more steps rank r sends
    the finished chunk (r + 1 − step) mod W on, and the receiver keeps it. Every rank sends 2(W − 1)
    chunks, about 2(W − 1)/W · N elements: the least any all-reduce can (Patarasuk & Yuan 2009)."""
    shapes = {np.shape(g) for g in grads}
    if not grads or len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"ring_all_reduce takes one 1-D array of the same length per rank, not shapes {shapes}.")
    world = len(grads)
    chunks = [np.array_split(np.array(g), world) for g in grads]  # each rank's own copy
    sent = [0] * world
    for shift, adds in ((0, True), (1, False)):  # reduce-scatter, then all-gather
        for step in range(world - 1):
            outbox = [(rank, (rank - step + shift) % world) for rank in range(world)]
            messages = [(rank, index, chunks[rank][index].copy()) for rank, index in outbox]  # all send at once
            for rank, index, chunk in messages:
                sent[rank] += chunk.size
                receiver = chunks[(rank + 1) % world]
                receiver[index] = receiver[index] + chunk if adds else chunk
    return [np.concatenate(own) / world for own in chunks], sent


def gather_all_reduce(grads: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """The naive all-reduce: every rank sends its whole vector to rank 0, which averages them and sends the
    average back to each: rank 0 sends (W − 1)·N elements, every other rank N."""
    world, n = len(grads), int(np.size(grads[0]))
    average = np.sum(np.stack(grads), axis=0) / world
    return [average.copy() for _ in range(world)], [(world - 1) * n] + [n] * (world - 1)


def ring_all_reduce_seconds(n_numbers: float, world: int, bytes_per_number: float, link_bytes_per_s: float,
                            latency_s: float) -> float:
    """Hockney's (1994) model of a message, latency + bytes ÷ link speed, for the ring's 2(W − 1) steps,
    each one chunk of N/W numbers over every link at once."""
    return 2 * (world - 1) * (latency_s + n_numbers / world * bytes_per_number / link_bytes_per_s)


def gather_all_reduce_seconds(n_numbers: float, world: int, bytes_per_number: float, link_bytes_per_s: float,
                              latency_s: float) -> float:
    """The naive all-reduce in the same model: rank 0's one link takes W − 1 whole vectors in, then W − 1 out."""
    return 2 * (world - 1) * (latency_s + n_numbers * bytes_per_number / link_bytes_per_s)


def mean_across_ranks(value: Tensor) -> float:
    t = value.detach().clone().float()
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def train_epochs(ddp: nn.Module, sampler: DistributedSampler, x: Tensor, y: Tensor, optimizer: torch.optim.Optimizer,
                 scheduler: Any, loss_fn: Any, epochs: range, batch_size: int, rank: int, save: Any,
                 on_step: Any) -> None:
    """One rank's training loop (the reference for lab 13's exercise 13.9): for each epoch, a new shuffle
    (``sampler.set_epoch``: the same permutation on every rank, so the shards never overlap), this rank's
    share of it in batches, ``on_step(loss)`` after every step, and the checkpoint from rank 0 alone."""
    for epoch in epochs:
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler), device=x.device)
        for begin in range(0, len(order), batch_size):
            idx = order[begin:begin + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(ddp(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            scheduler.step()
            on_step(loss)
        if rank == 0:
            save(epoch)


def load_train_fn(spec: str) -> Any:
    """The function NAME defined in FILE.py, from ``"FILE.py:NAME"``."""
    import importlib.util

    file, _, name = spec.rpartition(":")
    module_spec = importlib.util.spec_from_file_location("dlcourse_user_train_fn", file)
    if not file or module_spec is None or module_spec.loader is None:
        raise SystemExit(f"--train-fn must be FILE.py:NAME, not {spec!r}.")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, name)


def train(args: argparse.Namespace, data: ImageData, rank: int, world: int, device: torch.device) -> dict[str, Any]:
    x, y = _as_images(data.train.x).to(device), _as_labels(data.train.y).to(device)
    sampler = DistributedSampler(range(len(x)), num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    steps_per_epoch = math.ceil(len(sampler) / args.batch_size)
    total_steps = args.epochs * steps_per_epoch

    torch.manual_seed(args.seed)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    model = MnistCNN().to(device)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = recipe_loss()
    optimizer, scheduler = recipe_optimizer(ddp.parameters(), peak_lr=args.lr, total_steps=total_steps)
    first_epoch = 0
    if args.resume:
        state = torch.load(args.resume, map_location=device, weights_only=True)
        if state["epochs"] != args.epochs:  # the schedule was planned for the whole run
            raise ValueError(f"{args.resume} belongs to a run planned for {state['epochs']} epoch(s): resume it "
                             f"with --epochs {state['epochs']}, not {args.epochs}.")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        first_epoch = int(state["epoch"]) + 1
        log(rank, f"resumed from {args.resume} after epoch {first_epoch}")

    out = Path(args.out)
    log(rank, f"{world} processes ({dist.get_backend()}, {device.type}), {len(sampler)} samples per rank per "
              f"epoch, {args.batch_size} per rank per step, effective batch {args.batch_size * world}")
    curve: list[tuple[int, float]] = []
    start = time.perf_counter()
    step = first_epoch * steps_per_epoch
    ddp.train()
    last_epoch = min(args.epochs, args.stop_after_epoch or args.epochs)

    def on_step(loss: Tensor) -> None:  # every rank calls it after every step; rank 0 logs
        nonlocal step
        step += 1
        if step % args.log_every == 0 or step == total_steps:
            mean_loss = mean_across_ranks(loss)  # every rank must join this collective, not only rank 0
            curve.append((step, mean_loss))
            log(rank, f"step {step}/{total_steps} loss {mean_loss:.4f}")

    def save(epoch: int) -> None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "epoch": epoch, "epochs": args.epochs,
                     "step": step, "world_size": world}, out / "checkpoint.pt")
        log(rank, f"checkpoint written after epoch {epoch + 1}")

    run_epochs = load_train_fn(args.train_fn) if args.train_fn else train_epochs
    run_epochs(ddp, sampler, x, y, optimizer, scheduler, loss_fn, range(first_epoch, last_epoch), args.batch_size,
               rank, save, on_step)
    dist.barrier()  # nobody exits while rank 0 writes
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    trained_steps = step - first_epoch * steps_per_epoch
    return {
        "steps": trained_steps, "train_seconds": seconds,
        "samples_per_second": trained_steps * args.batch_size * world / max(seconds, 1e-9),
        "loss_curve": curve, "params": count_params(model),
        "params_max_diff_between_ranks": ranks_identical(flat_params(model)),
        "test_accuracy": evaluate(model, data.test.x, data.test.y) if rank == 0 else None,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rank, world, device = setup()
    try:
        report: dict[str, Any] = {"world_size": world, "backend": dist.get_backend(), "device": device.type,
                                  "threads_per_process": torch.get_num_threads(), "per_rank_batch": args.batch_size,
                                  "effective_batch": args.batch_size * world}
        data = load_mnist(scale=True, channels="first", n_train=args.train_size, n_test=args.test_size, seed=args.seed)
        if args.check_gradients:  # on the first images of the (shuffled) training subset
            xb = _as_images(data.train.x[:args.check_batch]).to(device)
            yb = _as_labels(data.train.y[:args.check_batch]).to(device)
            report["gradient_identity"] = [gradient_identity(xb, yb, seed=args.seed, train_mode=mode, lr=args.lr,
                                                             device=device) for mode in (False, True)]
            log(rank, "gradient check: " + "; ".join(
                f"BN {r['batchnorm']}: max |all-reduced − full| = {r['max_abs_diff_allreduced_vs_full']:.2e}"
                for r in report["gradient_identity"]))
        report.update(train(args, data, rank, world, device))
        if rank == 0:
            Path(args.out, "metrics.json").write_text(json.dumps(report, indent=1))
            log(rank, f"test accuracy {report['test_accuracy']:.4f}; {report['samples_per_second']:.0f} samples/s")
    finally:
        dist.destroy_process_group()


def exit_without_finalization() -> None:
    """End a worker that finished cleanly without Python's interpreter teardown.

    Gloo's C++ threads can still hold work objects with Python references when the interpreter
    finalizes; freeing them then aborts the process (SIGABRT), which torchrun reports as a failed job
    although every result was written (pytorch/pytorch#179291). Seen once in about a dozen CI runs:
    rank 1 finished first and died with signal 6 while rank 0 was still evaluating.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()  # an exception still ends the process the normal way, with its traceback and exit code 1
    exit_without_finalization()
