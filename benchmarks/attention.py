"""Naive vs fused scaled dot-product attention: time per call, forward and forward + backward, for several T.

"naive" is ``dlcourse.attention.scaled_dot_product_attention`` (it materialises the B·H·T×T weights);
"fused" is ``torch.nn.functional.scaled_dot_product_attention`` (blocked kernels that never store them).
Both run with a causal mask (``is_causal=True`` for the fused one). The two versions are timed in alternating
rounds and each keeps its best round, so a busy moment on the machine slows one round, not one version.

    python benchmarks/attention.py                      # T = 128 … 2048, batch 4, 8 heads of 64, CPU or GPU
    python benchmarks/attention.py --lengths 256 4096   # other sequence lengths
    python benchmarks/attention.py --no-causal          # no mask
    python benchmarks/attention.py --fast               # seconds-long smoke run (tests use it)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from dlcourse.attention import attention_benchmark_inputs, causal_mask, scaled_dot_product_attention
from dlcourse.env import pick_device
from dlcourse.tables import format_table

FAST = {"lengths": [32, 64], "batch": 1, "heads": 2, "d_head": 16, "rounds": 1}

Attention = Callable[[Tensor, Tensor, Tensor], Tensor]


def versions(causal: bool) -> dict[str, Attention]:
    """The two implementations, with the same masking."""
    def naive(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        mask = torch.from_numpy(causal_mask(q.shape[-2])).to(q.device) if causal else None
        return scaled_dot_product_attention(q, k, v, mask)[0]

    def fused(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    return {"naive": naive, "fused": fused}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_call(fn: Attention, q: Tensor, k: Tensor, v: Tensor, backward: bool) -> float:
    """Seconds for one call (and one backward pass through it when `backward`)."""
    _sync(q.device)
    start = time.perf_counter()
    if backward:
        fn(q, k, v).sum().backward()
    else:
        with torch.inference_mode():
            fn(q, k, v)
    _sync(q.device)
    return time.perf_counter() - start


def measure(t: int, *, batch: int, heads: int, d_head: int, rounds: int, causal: bool, backward: bool,
            device: torch.device) -> dict[str, float]:
    """Best seconds of each version at sequence length `t` (one warm-up call each first)."""
    q, k, v = attention_benchmark_inputs(batch, heads, t, d_head, seed=0, device=device, requires_grad=backward)
    fns = versions(causal)
    for fn in fns.values():
        time_call(fn, q, k, v, backward)  # warm-up: kernel selection, allocator caches
    best = {name: math.inf for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], time_call(fn, q, k, v, backward))
    return best


def table_rows(lengths: list[int], batch: int, heads: int, backward: bool, **kwargs) -> list[list[str]]:
    rows = []
    for t in lengths:
        best = measure(t, batch=batch, heads=heads, backward=backward, **kwargs)
        matrix_mb = batch * heads * t * t * 4 / 2**20  # one float32 T×T matrix per head and sequence
        rows.append([str(t), f"{best['naive'] * 1e3:.2f}", f"{best['fused'] * 1e3:.2f}",
                     f"{best['naive'] / best['fused']:.2f}x", f"{matrix_mb:.2f}"])
    return rows


HEADER = ["T", "naive ms", "fused ms", "fused speed-up", "T×T matrix MB"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024, 2048], help="sequence lengths T")
    parser.add_argument("--batch", type=int, default=4, help="sequences per batch (default 4)")
    parser.add_argument("--heads", type=int, default=8, help="attention heads (default 8)")
    parser.add_argument("--d-head", type=int, default=64, help="numbers per head (default 64)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds; the best counts (default 5)")
    parser.add_argument("--no-causal", action="store_true", help="no mask instead of a causal one")
    parser.add_argument("--fast", action="store_true", help="tiny sizes, for a smoke test")
    args = parser.parse_args(argv)
    settings = {"lengths": args.lengths, "batch": args.batch, "heads": args.heads, "d_head": args.d_head,
                "rounds": args.rounds}
    if args.fast:
        settings.update(FAST)
    if min(settings["lengths"]) < 1 or settings["rounds"] < 1 or settings["batch"] < 1 or settings["heads"] < 1:
        parser.error("--lengths, --batch, --heads and --rounds must be at least 1")
    device = pick_device("torch")
    causal = not args.no_causal
    where = f"{device}" + (f", {torch.get_num_threads()} CPU threads" if device.type == "cpu" else "")
    print(f"Attention, B = {settings['batch']}, H = {settings['heads']}, d_head = {settings['d_head']}, "
          f"{'causal' if causal else 'no mask'}, float32, torch {torch.__version__} on {where}")
    for backward in (False, True):
        print(f"\n{'forward + backward' if backward else 'forward'} (best of {settings['rounds']} rounds)")
        rows = table_rows(settings["lengths"], settings["batch"], settings["heads"], backward,
                          d_head=settings["d_head"], rounds=settings["rounds"], causal=causal, device=device)
        print(format_table(HEADER, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
