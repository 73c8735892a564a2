"""How good is lab 14's character GPT after N seconds of training on this machine?

Measures training throughput (tokens/s, evaluation excluded) and CPU seconds per step, then trains the lab's
recipe for about N seconds (the number of steps is set from the measured speed, so the learning-rate schedule
still ends at 0) and prints the held-out loss in nats per character next to the unigram, bigram and Witten-Bell
n-gram baselines on the same held-out text (the last 10% of Tiny Shakespeare).

    python benchmarks/gpt.py                 # 150 s of training (one of the lab's two full-mode models)
    python benchmarks/gpt.py --seconds 300   # another budget
    python benchmarks/gpt.py --threads 1     # pin torch to one thread
    python benchmarks/gpt.py --fast          # seconds-long smoke run (tests use it)
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from dlcourse import gpt, mlm, ngram
from dlcourse.data import load_text
from dlcourse.tables import format_table

# the lab's full-mode recipe (solutions/14_gpt_from_scratch.ipynb)
LAB = {"block_size": 64, "batch_size": 32, "d_model": 128, "n_heads": 4, "n_layers": 3, "lr": 3e-3, "warmup": 100}


def build(vocab_size: int, seed: int) -> gpt.GPT:
    torch.manual_seed(seed)
    return gpt.GPT(vocab_size, LAB["block_size"], LAB["d_model"], LAB["n_heads"], LAB["n_layers"])


def speed(vocab_size: int, train_ids: torch.Tensor, val_ids: torch.Tensor, steps: int, seed: int) -> tuple[float, float]:
    """(training tokens per second, CPU seconds per step) over ``steps`` steps after 2 warm-up steps."""
    model = build(vocab_size, seed)
    config = gpt.TrainConfig(steps=2, batch_size=LAB["batch_size"], warmup=1, eval_every=10**9, eval_chunks=1)
    gpt.train_gpt(model, train_ids, val_ids, config, progress=False)
    config.steps = steps
    history = gpt.train_gpt(model, train_ids, val_ids, config, progress=False)
    return history.tokens_seen / history.train_seconds, history.cpu_seconds / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0, help="training budget in seconds (default 150)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="a seconds-long smoke run on a short held-out text")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    seconds = 3.0 if args.fast else args.seconds

    text = load_text("tinyshakespeare")
    train_text, val_text = mlm.split_by_position(text, 0.9)
    if args.fast:
        val_text = val_text[:5000]
    chars = mlm.CharTokenizer.from_text(train_text)
    train_ids, val_ids = torch.tensor(chars.encode(train_text)), torch.tensor(chars.encode(val_text))

    tokens_s, cpu_step = speed(chars.vocab_size, train_ids, val_ids, steps=2 if args.fast else 10, seed=args.seed)
    per_step = LAB["batch_size"] * LAB["block_size"]
    steps = max(2, int(seconds * tokens_s / per_step))
    model = build(chars.vocab_size, args.seed)
    config = gpt.TrainConfig(steps=steps, batch_size=LAB["batch_size"], lr=LAB["lr"],
                             warmup=min(LAB["warmup"], steps // 2), eval_every=10**9, eval_chunks=8, seed=args.seed)
    start = time.perf_counter()
    history = gpt.train_gpt(model, train_ids, val_ids, config, progress=False)
    wall = time.perf_counter() - start
    loss = gpt.heldout_nats_per_char(model, val_ids, torch.ones(chars.vocab_size, dtype=torch.long))
    baselines = ngram.baseline_nats_per_char(train_ids.numpy(), val_ids.numpy(), chars.vocab_size, 5)

    print(f"character GPT ({gpt.count_parameters(model):,} parameters), {torch.get_num_threads()} torch threads, "
          f"held-out text: {len(val_text):,} characters")
    print(format_table(["measure", "value"], [
        ["training tokens/s", f"{tokens_s:,.0f}"],
        ["CPU seconds per step", f"{cpu_step:.3f}"],
        [f"steps (batch {LAB['batch_size']} x {LAB['block_size']} tokens)", f"{steps}"],
        ["training seconds", f"{history.train_seconds:.1f} (wall {wall:.1f})"],
    ]))
    rows = [[name, f"{value:.3f}", f"{value / math.log(2):.3f}"] for name, value in baselines.items()]
    rows.append(["character GPT", f"{loss:.3f}", f"{loss / math.log(2):.3f}"])
    print(format_table(["model", "held-out nats per character", "bits per character"], rows))


if __name__ == "__main__":
    main()
