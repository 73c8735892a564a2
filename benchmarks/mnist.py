"""How fast do the lab 07 (Keras) and lab 08 (PyTorch) MNIST recipes reach 99% test accuracy?

Each run trains in a fresh interpreter (so one framework's thread pools and caches cannot slow
the other) on the full MNIST training set and reports: parameters, epochs, training seconds
(data loading and evaluation excluded), test accuracy, and the training seconds until the test
accuracy first reached 99.0%. The keras.io "Simple MNIST convnet" (15 epochs, batch 128, Adam)
runs in the same invocation as the reference.

    python benchmarks/mnist.py                # lab recipes (seed 0) + the keras.io reference
    python benchmarks/mnist.py --seeds 3      # mean and spread over seeds 0, 1, 2
    python benchmarks/mnist.py --no-reference # skip the ~15-epoch reference
    python benchmarks/mnist.py --fast         # seconds-long smoke run on a subset (tests use it)
    python benchmarks/mnist.py --onednn off   # both Keras runs without TensorFlow's oneDNN kernels

The Keras runs (the lab 07 recipe and the reference) use TensorFlow's oneDNN CPU kernels, as labs 07, 08, 12
and 13 do (`TF_ENABLE_ONEDNN_OPTS=1`; see ``dlcourse.env.tensorflow_onednn``), unless ``--onednn off``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import asdict

from dlcourse.tables import format_table
from dlcourse.training import TrainResult

RECIPES = ("keras", "torch", "reference")
FAST_SIZES = {"n_train": 1024, "n_test": 512}


def run_one(recipe: str, seed: int, fast: bool) -> TrainResult:
    """Train one recipe in this process and return its result (the child side of `measure`)."""
    from dlcourse.data import load_mnist

    sizes = FAST_SIZES if fast else {}
    if recipe == "torch":
        from dlcourse.cnn_torch import train_cnn

        data = load_mnist(scale=True, channels="first", seed=seed, **sizes)
        _, result = train_cnn(data, seed=seed, progress=False, **({"epochs": 0.5} if fast else {}))
        return result
    data = load_mnist(scale=True, channels="last", seed=seed, **sizes)
    if recipe == "keras":
        from dlcourse.cnn_keras import train_cnn

        _, result = train_cnn(data, seed=seed, **({"epochs": 0.5} if fast else {}))
        return result
    from dlcourse.cnn_keras import train_keras_io_reference

    _, result = train_keras_io_reference(data, seed=seed, epochs=1 if fast else 15)
    return result


def measure(recipe: str, seed: int, fast: bool, onednn: bool = True) -> TrainResult:
    """Run `run_one` in a fresh interpreter and read its result back as JSON."""
    from dlcourse.env import ONEDNN_VARIABLE

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
           ONEDNN_VARIABLE: "1" if onednn else "0"}
    args = [sys.executable, __file__, "--child", recipe, "--seed", str(seed)] + (["--fast"] if fast else [])
    out = subprocess.run(args, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"The {recipe} run (seed {seed}) failed:\n{out.stderr[-3000:]}")
    return TrainResult(**json.loads(out.stdout.strip().splitlines()[-1]))


def _spread(values: list[float], digits: int) -> str:
    """'mean ± standard deviation' (just the value for a single run)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def summary_row(runs: list[TrainResult]) -> list[str]:
    """One table row for several seeds of the same recipe."""
    first = runs[0]
    reached = [r.seconds_to_target for r in runs if r.seconds_to_target is not None]
    to_target = _spread(reached, 1) if reached else "not reached"
    if reached and len(reached) < len(runs):
        to_target += f" ({len(reached)}/{len(runs)} runs)"
    return [first.recipe, first.framework, first.device, f"{first.params:,}", f"{first.epochs:g}", str(len(runs)),
            _spread([r.train_seconds for r in runs], 1), _spread([r.test_accuracy for r in runs], 4), to_target]


HEADER = ["recipe", "framework", "device", "params", "epochs", "seeds", "train s", "test acc", "s to 99.0%"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 for the lab recipes (default 1)")
    parser.add_argument("--no-reference", action="store_true", help="skip the keras.io convnet (15 epochs)")
    parser.add_argument("--fast", action="store_true", help="tiny subset, for a smoke test")
    parser.add_argument("--onednn", choices=("on", "off"), default="on", help="TensorFlow's oneDNN kernels (default on)")
    parser.add_argument("--child", choices=RECIPES, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(asdict(run_one(args.child, args.seed, args.fast))))
        return 0
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    plan = [(recipe, range(args.seeds)) for recipe in ("keras", "torch")]
    if not args.no_reference:
        plan.append(("reference", range(1)))
    rows, to_target = [], {}
    for recipe, seeds in plan:
        runs = []
        for seed in seeds:
            runs.append(measure(recipe, seed, args.fast, onednn=args.onednn == "on"))
            print(f"  {recipe} seed {seed}: {runs[-1].train_seconds:.1f} s, test accuracy {runs[-1].test_accuracy:.4f}",
                  file=sys.stderr, flush=True)
        rows.append(summary_row(runs))
        reached = [r.seconds_to_target for r in runs if r.seconds_to_target is not None]
        if len(reached) == len(runs):
            to_target[recipe] = statistics.mean(reached)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    data = "a 1024-image subset (FAST smoke run)" if args.fast else "the full 60k training set, 10k test set"
    print(f"MNIST recipes on {data}, {cores} CPU cores, TensorFlow's oneDNN kernels {args.onednn}")
    print(format_table(HEADER, rows))
    for slower in ("keras", "reference"):
        if slower in to_target and "torch" in to_target:
            print(f"{slower} / torch, mean seconds to 99.0%: {to_target[slower] / to_target['torch']:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
