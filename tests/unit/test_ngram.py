"""dlcourse.ngram: Witten-Bell probabilities are a distribution, and the baselines rank as they should."""

from __future__ import annotations

import numpy as np
import pytest

from dlcourse import ngram

pytestmark = pytest.mark.lab("14")


def test_witten_bell_sums_to_one_over_the_vocabulary() -> None:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 6, 3000)
    context = rng.integers(0, 6, 12)
    total = sum(np.exp(ngram.witten_bell_log_probs(train, np.append(context, c), 6, 4)[-1]) for c in range(6))
    assert total == pytest.approx(1.0, abs=1e-12)


def test_longer_contexts_help_on_a_text_with_structure() -> None:
    pattern = np.array([0, 1, 2, 3, 1, 2, 0, 3, 2, 1] * 300)
    scores = ngram.baseline_nats_per_char(pattern[:2500], pattern[2500:], 4, order=4)
    unigram, bigram, four = scores.values()
    assert unigram > bigram > four and four < 0.05
    assert list(scores) == ["unigram (add-1)", "bigram (add-1)", "4-gram (Witten-Bell)"]
