"""The sorting task: data, targets, accuracy, schedule, and a short training run that learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlcourse.seqtasks import (PAD, SortModel, evaluate, make_sort_batch, masked_token_accuracy, sequence_accuracy,
                               sort_targets, train_sort_model)
from dlcourse.optim import warmup_cosine


def test_batches_are_seeded_padded_and_sorted() -> None:
    a = make_sort_batch(50, 3, 9, np.random.default_rng(0))
    b = make_sort_batch(50, 3, 9, np.random.default_rng(0))
    assert np.array_equal(a.tokens, b.tokens) and a.tokens.shape == (50, 9) and a.tokens.dtype == np.int64
    lengths = a.mask.sum(1)
    assert lengths.min() >= 3 and lengths.max() <= 9
    assert np.all(a.tokens[~a.mask] == PAD) and np.all(a.tokens[a.mask] < 10)
    for row, keep, target in zip(a.tokens, a.mask, a.targets):
        assert target[keep].tolist() == sorted(row[keep].tolist()) and np.all(target[~keep] == PAD)
    assert np.array_equal(sort_targets(a.tokens, a.mask), a.targets)
    with pytest.raises(ValueError, match="min_len"):
        make_sort_batch(2, 5, 3, np.random.default_rng(0))


def test_accuracies_ignore_padding() -> None:
    targets = torch.tensor([[1, 2, PAD], [3, 4, 5]])
    mask = targets != PAD
    logits = torch.nn.functional.one_hot(torch.tensor([[1, 0, 0], [3, 4, 9]]), 10).float()
    assert masked_token_accuracy(logits, targets, mask) == pytest.approx(3 / 5)
    assert sequence_accuracy(logits, targets, mask) == 0.0
    assert sequence_accuracy(torch.nn.functional.one_hot(targets.clamp(max=9), 10).float(), targets, mask) == 1.0


def test_warmup_cosine_schedule() -> None:
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(100, 100, 10) == pytest.approx(0.0, abs=1e-12)


def test_short_training_learns_and_restores_mode() -> None:
    torch.manual_seed(0)
    model = SortModel(8, d_model=32, n_heads=2, n_layers=1)
    val = make_sort_batch(200, 2, 8, np.random.default_rng(1))
    before, _ = evaluate(model, val)
    history = train_sort_model(model, steps=60, batch_size=32, min_len=2, max_len=8, warmup=10, val_batch=val,
                               eval_every=30, progress=False)
    assert history["step"] == [30, 60] and len(history["val_accuracy"]) == 2 and model.training
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] > before + 0.1
    assert history["seconds"][-1] > 0
