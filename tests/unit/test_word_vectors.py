"""dlcourse.word_vectors: co-occurrence counts, PPMI and a seeded truncated SVD."""

from __future__ import annotations

import numpy as np
import pytest

from dlcourse.word_vectors import cooccurrence, ppmi, tokenize, truncated_svd, word_vectors


def test_tokenize_keeps_inner_apostrophes() -> None:
    assert tokenize("The King's men, 3 of them -- 'tis true!") == ["the", "king's", "men", "of", "them", "tis", "true"]


def test_cooccurrence_counts_both_directions_within_the_window() -> None:
    counts = cooccurrence(["a", "b", "x", "a", "b"], ["a", "b"], window=1)
    assert counts.tolist() == [[0, 2], [2, 0]]  # "x" is outside the vocabulary; a-b twice, each way
    assert cooccurrence(["a", "x", "b"], ["a", "b"], window=2)[0, 1] == 1


def test_ppmi_is_positive_and_zero_for_unseen_pairs() -> None:
    counts = np.array([[0.0, 4.0, 0.0], [4.0, 0.0, 1.0], [0.0, 1.0, 2.0]])
    p = ppmi(counts)
    assert (p >= 0).all() and p[0, 2] == 0 and p[0, 0] == 0
    assert p[0, 1] == pytest.approx(np.log(4 * 12 / (4 * 5)))


def test_truncated_svd_matches_the_exact_one_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((60, 8)) @ rng.standard_normal((8, 60))  # rank 8
    u, s = truncated_svd(a, 5, seed=1)
    assert np.allclose(s, np.linalg.svd(a, compute_uv=False)[:5])
    assert np.allclose(np.abs(u.T @ u), np.eye(5), atol=1e-8)
    assert np.array_equal(u, truncated_svd(a, 5, seed=1)[0])


def test_similar_contexts_give_similar_vectors() -> None:
    text = " ".join(["the king rules the land", "the queen rules the land", "a dog eats a bone",
                     "a cat eats a bone"] * 20)
    vectors = word_vectors(text, vocab_size=20, dim=4, window=2)  # only 10 distinct words
    assert vectors.vectors.shape == (10, 4) and vectors.vectors.dtype == np.float32
    assert vectors.nearest("king", 1)[0][0] == "queen" and vectors.nearest("dog", 1)[0][0] == "cat"
    assert "king" in vectors and "horse" not in vectors
    with pytest.raises(KeyError, match="horse"):
        vectors.lookup(["king", "horse"])
