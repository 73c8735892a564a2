"""How fast does lab 11's tiny BERT train on this machine, and how good is it after N seconds?

Measures training throughput (tokens/s, evaluation excluded), then trains the lab's model for about N seconds (the
number of steps is set from the measured speed, so the learning-rate schedule still ends at 0) and reports the
held-out masked-character loss and accuracy next to the unigram and both-sides bigram baselines, all on the lab's
fixed held-out set.

    python benchmarks/mlm.py                 # 300 s of training (the lab's full-mode budget)
    python benchmarks/mlm.py --seconds 60    # a shorter budget
    python benchmarks/mlm.py --threads 1     # pin torch to one thread
    python benchmarks/mlm.py --fast          # seconds-long smoke run (tests use it)
"""

from __future__ import annotations

import argparse
import time

import torch

from dlcourse import mlm
from dlcourse.cnn_torch import count_params
from dlcourse.data import load_text
from dlcourse.mlm_model import BertConfig, TinyBert, TrainConfig, evaluate_mlm, train_mlm
from dlcourse.tables import format_table

LAB = {"seq_len": 32, "batch_size": 128, "n_layers": 2, "d_model": 128, "n_heads": 4, "d_ff": 256, "lr": 5e-3,
       "warmup": 30}  # the lab's full-mode recipe (solutions/11_masked_language_model.ipynb)


def build(tokenizer: mlm.CharTokenizer, seed: int) -> TinyBert:
    torch.manual_seed(seed)
    return TinyBert(BertConfig(tokenizer.vocab_size, max_len=LAB["seq_len"], d_model=LAB["d_model"],
                               n_heads=LAB["n_heads"], n_layers=LAB["n_layers"], d_ff=LAB["d_ff"], dropout=0.0))


def tokens_per_second(tokenizer: mlm.CharTokenizer, train_ids: torch.Tensor, steps: int, seed: int) -> float:
    """Training tokens per second over `steps` steps, after 3 warm-up steps."""
    model = build(tokenizer, seed)
    train_mlm(model, train_ids, tokenizer, TrainConfig(steps=3, batch_size=LAB["batch_size"], warmup=1), progress=False)
    history = train_mlm(model, train_ids, tokenizer, TrainConfig(steps=steps, batch_size=LAB["batch_size"], warmup=1),
                        progress=False)
    return history.tokens_seen / history.train_seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="training budget in seconds (default 300)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="a seconds-long smoke run on a small held-out set")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    seconds = 3.0 if args.fast else args.seconds

    text = load_text("tinyshakespeare")
    train_text, val_text = mlm.split_by_position(text, 0.9)
    tokenizer = mlm.CharTokenizer.from_text(train_text)
    train_ids, val_ids = torch.tensor(tokenizer.encode(train_text)), torch.tensor(tokenizer.encode(val_text))
    held_out = mlm.make_masked_set(val_ids, tokenizer, LAB["seq_len"], n_windows=200 if args.fast else None)

    speed = tokens_per_second(tokenizer, train_ids, steps=3 if args.fast else 20, seed=args.seed)
    steps = max(1, int(seconds * speed / (LAB["batch_size"] * LAB["seq_len"])))
    model = build(tokenizer, args.seed)
    config = TrainConfig(steps=steps, batch_size=LAB["batch_size"], lr=LAB["lr"], warmup=min(LAB["warmup"], steps),
                         seed=args.seed)
    start = time.perf_counter()
    history = train_mlm(model, train_ids, tokenizer, config, progress=False)
    wall = time.perf_counter() - start
    loss, accuracy = evaluate_mlm(model, held_out)

    print(f"tiny BERT ({count_params(model):,} parameters), {torch.get_num_threads()} torch threads, "
          f"held-out set: {held_out.n_targets:,} masked characters")
    print(format_table(["measure", "value"], [
        ["training tokens/s", f"{speed:,.0f}"],
        ["steps (batch 128 × 32 chars)", f"{steps}"],
        ["training seconds", f"{history.train_seconds:.1f} (wall {wall:.1f})"],
    ]))
    print()
    rows = [[name, f"{b_loss:.4f}", f"{b_acc:.4f}"]
            for name, (b_loss, b_acc) in mlm.baseline_scores(held_out, train_ids.numpy(), tokenizer).items()]
    rows.append([f"tiny BERT after {history.train_seconds:.0f} s", f"{loss:.4f}", f"{accuracy:.4f}"])
    print(format_table(["model", "held-out loss (nats)", "accuracy"], rows))


if __name__ == "__main__":
    main()
