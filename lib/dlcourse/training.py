"""What every MNIST training recipe reports (labs 07, 08, benchmarks/mnist.py), framework-free.

The Keras recipe (`dlcourse.cnn_keras`) and the PyTorch recipe (`dlcourse.cnn_torch`) both
return a `TrainResult`, so one table can put them side by side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

from dlcourse.tables import format_table


@dataclass
class TrainResult:
    """One training run: what was trained, how long it took, how well it does."""

    framework: str  # e.g. "Keras 3.15 (tensorflow)" or "PyTorch 2.13"
    recipe: str  # a short name, e.g. "lab 07 CNN"
    params: int
    epochs: float
    train_seconds: float  # training only: no data loading, no evaluation
    test_accuracy: float
    seconds_to_target: float | None = None  # training seconds until test accuracy first reached `target`
    target: float = 0.99
    history: dict[str, list[float]] = field(default_factory=dict)  # per-epoch curves, Keras-style keys
    device: str = "cpu"

    def row(self) -> list[str]:
        """The result as table cells, in the order of `RESULT_HEADER`."""
        reached = "not reached" if self.seconds_to_target is None else f"{self.seconds_to_target:.1f}"
        return [self.recipe, self.framework, self.device, f"{self.params:,}", f"{self.epochs:g}",
                f"{self.train_seconds:.1f}", f"{self.seconds_per_epoch:.1f}", f"{self.test_accuracy:.4f}", reached]

    @property
    def seconds_per_epoch(self) -> float:
        return self.train_seconds / self.epochs if self.epochs else float("nan")


RESULT_HEADER = ["recipe", "framework", "device", "params", "epochs", "train s", "s/epoch", "test acc",
                 "s to 99.0%"]


def results_table(results: Sequence[TrainResult]) -> str:
    """An aligned plain-text table of results (printed by lab 08 and the benchmark)."""
    return format_table(RESULT_HEADER, [r.row() for r in results])


class Stopwatch:
    """Accumulates training time only: pause it around evaluation so evaluation is not counted.

    >>> watch = Stopwatch(); watch.start(); ...; watch.stop(); watch.seconds
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started: float | None = None

    def start(self) -> None:
        self._started = time.perf_counter()

    def stop(self) -> float:
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None
        return self.seconds
