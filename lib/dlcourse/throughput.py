"""Lab 12: how fast the lab 08 CNN trains, and why — samples/s, FLOPs, bytes and the roofline.

A layer is *compute-bound* when the arithmetic units are the bottleneck and *memory-bound* when
moving its data is: compare its arithmetic intensity (FLOPs per byte moved) with the machine's
balance (peak FLOP/s ÷ memory bandwidth), the "roofline" of Williams, Waterman & Patterson (2009).
Every number here is measured or counted on the machine that runs it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from dlcourse.cnn_torch import _sync, build_cnn
from dlcourse.errors import DlcourseError

BYTES_PER_FLOAT = 4


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Use ``n`` intra-op threads inside the block, then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def best_seconds(run, repeats: int, rounds: int) -> float:
    """Best of ``rounds`` timings of ``repeats`` calls (after one warm-up call)."""
    run()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def images_per_second(model: nn.Module, x: torch.Tensor, *, warmup: int, iterations: int,
                      synchronize: Callable[[], None]) -> float:
    """Inference throughput of ``model`` on the batch ``x``: images per second over ``iterations`` timed
    calls, after ``warmup`` untimed ones (the first calls allocate memory and pick kernels), in eval mode
    under torch.inference_mode. ``synchronize()`` waits for queued device work (a GPU runs asynchronously)
    before the clock starts and before it stops. The model's mode is restored. The reference for lab 12's
    exercise 12.2."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            synchronize()
            start = time.perf_counter()
            for _ in range(iterations):
                model(x)
            synchronize()
            seconds = time.perf_counter() - start
    finally:
        model.train(was_training)
    return len(x) * iterations / seconds


Timer = Callable[..., float]  # images_per_second's signature: (model, x, *, warmup, iterations, synchronize)


def inference_throughput(model: nn.Module, x: torch.Tensor, *, iterations: int, rounds: int,
                         timer: Timer | None = None) -> float:
    """The best images/s of ``rounds`` calls of ``timer`` (`images_per_second` unless given: lab 12's exercise
    12.2), each one warm-up call then ``iterations`` timed ones; a busy machine only ever slows a round down.
    The timer gets its own copies of the model and the batch, and a synchroniser for the batch's device."""
    timer = timer or images_per_second
    synchronize = functools.partial(_sync, x.device)
    best = 0.0
    for _ in range(rounds):
        rate = timer(copy.deepcopy(model), x.clone(), warmup=1, iterations=iterations, synchronize=synchronize)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
            raise DlcourseError(f"The timer returned {rate!r}, not a positive number of images per second: "
                                "run the check of exercise 12.2 on it.")
        best = max(best, float(rate))
    return best


def peak_matmul_flops(n: int = 1024, *, threads: int | None = None, rounds: int = 3) -> float:
    """Measured float32 FLOP/s of an n×n matrix product: as close to this CPU's peak as torch gets."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    with torch_threads(threads or torch.get_num_threads()):
        seconds = best_seconds(lambda: a @ b, repeats=4, rounds=rounds)
    return 2 * n ** 3 / seconds


def memory_bandwidth(megabytes: int = 128, *, threads: int | None = None, rounds: int = 3) -> float:
    """Measured bytes/s of copying a large float32 tensor (read + write), far bigger than the caches."""
    src = torch.empty(megabytes * 2 ** 20 // BYTES_PER_FLOAT)
    dst = torch.empty_like(src)
    with torch_threads(threads or torch.get_num_threads()):
        seconds = best_seconds(lambda: dst.copy_(src), repeats=4, rounds=rounds)
    return 2 * src.numel() * BYTES_PER_FLOAT / seconds


@dataclass
class LayerCost:
    name: str
    kind: str
    flops: float  # forward FLOPs for the whole batch (a multiply-add counts as 2)
    bytes: float  # float32 bytes read and written: input + output activations + parameters
    seconds: float = float("nan")  # measured forward time of this layer alone

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes


def layer_flops(layer: nn.Module, out_shape: tuple[int, ...]) -> float:
    """Forward FLOPs of one call of an nn.Conv2d or nn.Linear whose output has ``out_shape`` (the whole
    batch; a multiply-add is 2 FLOPs; bias additions left out). The reference for lab 12's exercise 12.1."""
    outputs = math.prod(out_shape)
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        return 2.0 * outputs * (layer.in_channels // layer.groups) * kh * kw
    if isinstance(layer, nn.Linear):
        return 2.0 * outputs * layer.in_features
    raise ValueError(f"layer_flops counts nn.Conv2d and nn.Linear layers, not {type(layer).__name__}.")


def _forward_flops(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """FLOPs of one forward call, counted from the shapes (2 per multiply-add)."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        return layer_flops(module, tuple(y.shape))
    if isinstance(module, nn.BatchNorm2d):
        return 2 * y.numel()  # inference form: x·scale + shift
    if isinstance(module, nn.MaxPool2d):
        k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
        return (k * k - 1) * y.numel()  # comparisons
    if isinstance(module, (nn.ReLU, nn.Dropout)):
        return y.numel()
    return 0.0  # Flatten: a view, no arithmetic


def layer_costs(batch_size: int, *, model: nn.Module | None = None, time_layers: bool = True,
                repeats: int = 20, rounds: int = 3, channels_last: bool = True,
                flops: Callable[[nn.Module, tuple[int, ...]], float] | None = None,
                timer: Timer | None = None) -> list[LayerCost]:
    """FLOPs, bytes and (optionally) measured forward time of every leaf layer of the lab 08 CNN.

    The model runs in eval mode on random images (channels_last, as lab 08 trains on the CPU); each
    layer is then timed alone on the input it saw, by `inference_throughput` with ``timer`` (lab 12's
    exercise 12.2; None: `images_per_second`). ``flops(layer, out_shape)`` (lab 12's exercise 12.1)
    counts the Conv2d and Linear layers, each handed a copy of the layer; None counts them here.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = (model or build_cnn()).to(memory_format=fmt).eval()
    leaves = [(name, m) for name, m in model.named_modules() if not list(m.children())]
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: seen.__setitem__(name, (inp[0], out)))
             for name, m in leaves]
    x = torch.rand(batch_size, 1, 28, 28, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=fmt)
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    costs = []
    for name, module in leaves:
        inp, out = seen[name]
        n_params = sum(p.numel() for p in module.parameters())
        if flops is not None and isinstance(module, (nn.Conv2d, nn.Linear)):
            counted = float(flops(copy.deepcopy(module), tuple(out.shape)))
        else:
            counted = _forward_flops(module, inp, out)
        cost = LayerCost(name, type(module).__name__, counted,
                         BYTES_PER_FLOAT * (inp.numel() + out.numel() + n_params))
        if time_layers:
            cost.seconds = len(inp) / inference_throughput(module, inp, iterations=repeats, rounds=rounds, timer=timer)
        costs.append(cost)
    return costs


def training_flops_per_sample(costs: Sequence[LayerCost], batch_size: int) -> float:
    """≈ 3 × the forward FLOPs: the backward pass costs about twice the forward (two products per layer)."""
    return 3 * sum(c.flops for c in costs) / batch_size


def training_throughput(batch_size: int, *, threads: int, steps: int = 20, rounds: int = 3,
                        channels_last: bool = True, seed: int = 0) -> float:
    """Training samples per second of the lab 08 CNN (forward, backward, SGD step) on random images.

    Image content does not change the speed of a dense network, so no data set is needed. Best of
    ``rounds`` timings of ``steps`` steps each, after one warm-up step.
    """
    torch.manual_seed(seed)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_cnn().to(memory_format=fmt).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch_size, 1, 28, 28).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch_size,))
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    with torch_threads(threads):
        seconds = best_seconds(step, repeats=steps, rounds=rounds)
    return batch_size / seconds


def throughput_grid(batch_sizes: Sequence[int], thread_counts: Sequence[int], *, samples_per_point: int = 8192,
                    rounds: int = 3, progress: bool = True) -> list[dict]:
    """samples/s for every (threads, batch size); each point trains on about ``samples_per_point`` images."""
    points = [(t, b) for t in thread_counts for b in batch_sizes]
    iterator = points
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(points, desc="throughput", unit="point")
    rows = []
    for threads, batch in iterator:
        steps = max(2, samples_per_point // (batch * rounds))
        rows.append({"threads": threads, "batch_size": batch,
                     "samples_per_s": training_throughput(batch, threads=threads, steps=steps, rounds=rounds)})
    return rows


def plot_throughput(rows: Sequence[dict], *, flops_per_sample: float | None = None):
    """samples/s against batch size (log axis), one line per thread count."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for threads in sorted({r["threads"] for r in rows}):
        mine = [r for r in rows if r["threads"] == threads]
        ax.plot([r["batch_size"] for r in mine], [r["samples_per_s"] for r in mine], "o-",
                label=f"{threads} thread{'s' if threads > 1 else ''}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size (images per step)")
    ax.set_ylabel("training throughput (images/s)")
    ax.set_title("Lab 08 CNN: training throughput on this CPU")
    if flops_per_sample:
        right = ax.secondary_yaxis("right", functions=(lambda s: s * flops_per_sample / 1e9,
                                                       lambda g: g * 1e9 / flops_per_sample))
        right.set_ylabel("achieved GFLOP/s")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
