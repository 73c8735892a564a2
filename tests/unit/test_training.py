"""dlcourse.training and dlcourse.tables: the result rows every MNIST recipe prints."""

from __future__ import annotations

import time

from dlcourse.tables import format_table
from dlcourse.training import RESULT_HEADER, Stopwatch, TrainResult, results_table


def test_format_table_aligns_columns_and_right_aligns_numbers() -> None:
    lines = format_table(["name", "seconds"], [["keras", "12.5"], ["torch", "9.25"]]).splitlines()
    assert lines[0].split() == ["name", "seconds"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].endswith(" 12.5") and lines[3].endswith("9.25")
    assert len({len(line) for line in lines}) == 1


def test_result_row_and_table() -> None:
    done = TrainResult("PyTorch 2.13", "lab 08 CNN", 206970, 1.0, 12.94, 0.99012, seconds_to_target=10.0)
    never = TrainResult("Keras 3.15 (tensorflow)", "lab 07 CNN", 206970, 2, 30.0, 0.9876)
    assert done.row() == ["lab 08 CNN", "PyTorch 2.13", "cpu", "206,970", "1", "12.9", "12.9", "0.9901", "10.0"]
    assert never.row()[-1] == "not reached" and never.seconds_per_epoch == 15.0
    lines = results_table([done, never]).splitlines()
    assert lines[0].split()[:2] == RESULT_HEADER[:2] and len(lines) == 4


def test_stopwatch_counts_only_the_running_intervals() -> None:
    watch = Stopwatch()
    watch.start()
    time.sleep(0.05)
    first = watch.stop()
    time.sleep(0.1)  # paused: e.g. evaluation
    assert watch.stop() == first and 0.04 < first < 0.1
    watch.start()
    time.sleep(0.02)
    assert watch.stop() > first
