"""dlcourse.throughput: FLOPs and bytes counted from shapes, thread settings restored, sane timings."""

from __future__ import annotations

import pytest
import torch

from dlcourse.throughput import (layer_costs, memory_bandwidth, peak_matmul_flops, torch_threads,
                                 training_flops_per_sample, training_throughput)


def test_layer_costs_count_flops_and_bytes_from_the_shapes() -> None:
    costs = {c.name: c for c in layer_costs(2, time_layers=False)}
    assert costs["features.0"].flops == 2 * 2 * 16 * 28 * 28 * 1 * 9  # batch × out pixels × taps, ×2 for mul+add
    assert costs["features.4"].flops == 2 * 2 * 32 * 14 * 14 * 16 * 9
    assert costs["classifier.1"].flops == 2 * 2 * 128 * 1568
    assert costs["classifier.1"].bytes == 4 * (2 * 1568 + 2 * 128 + 1568 * 128 + 128)
    assert costs["features.2"].intensity == pytest.approx(1 / 8)  # ReLU: one op per 4 bytes read + 4 written
    assert costs["classifier.0"].flops == 0  # Flatten is a view


def test_batching_raises_the_linear_layers_intensity() -> None:
    one = {c.name: c for c in layer_costs(1, time_layers=False)}
    many = {c.name: c for c in layer_costs(256, time_layers=False)}
    assert one["classifier.1"].intensity < 1 < 30 < many["classifier.1"].intensity
    assert many["features.6"].intensity == pytest.approx(one["features.6"].intensity)  # ReLU: no weights to reuse


def test_training_flops_per_sample_is_three_forward_passes() -> None:
    costs = layer_costs(4, time_layers=False)
    assert training_flops_per_sample(costs, 4) == pytest.approx(3 * sum(c.flops for c in costs) / 4)
    assert 7e6 < training_flops_per_sample(costs, 4) < 8e6


def test_measurements_are_positive_and_threads_are_restored() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    assert training_throughput(8, threads=1, steps=2, rounds=1) > 0
    assert torch.get_num_threads() == before
    assert peak_matmul_flops(128, rounds=1) > 1e6 and memory_bandwidth(8, rounds=1) > 1e6
    timed = layer_costs(2, repeats=1, rounds=1)
    assert all(c.seconds > 0 for c in timed)
