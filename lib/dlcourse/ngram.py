"""Lab 14's count baselines for next-character prediction on held-out text: unigram, bigram (add-k) and an
interpolated Witten-Bell n-gram (Witten & Bell 1991; the smoothing compared in Chen & Goodman 1999).

Ids are small integers (a character tokeniser's); contexts of up to ``order - 1`` ids are packed into one
int64 per position, so counting and look-up are NumPy sorts and searches, not Python loops.
"""

from __future__ import annotations

import numpy as np


def _context_keys(ids: np.ndarray, n: int, base: int) -> np.ndarray:
    """For every position i ≥ n: the n ids before it packed into one integer (−1 where i < n)."""
    keys = np.full(len(ids), -1, dtype=np.int64)
    if n == 0:
        keys[:] = 0
        return keys
    packed = np.zeros(len(ids) - n, dtype=np.int64)
    for j in range(n):
        packed = packed * base + ids[j:len(ids) - n + j]
    keys[n:] = packed
    return keys


def _lookup(table_keys: np.ndarray, table_values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """table_values at each key (0 where the key is absent); table_keys sorted."""
    if len(table_keys) == 0:
        return np.zeros(len(keys))
    at = np.clip(np.searchsorted(table_keys, keys), 0, len(table_keys) - 1)
    return np.where(table_keys[at] == keys, table_values[at], 0).astype(float)


def witten_bell_log_probs(train_ids: np.ndarray, test_ids: np.ndarray, vocab_size: int, order: int) -> np.ndarray:
    """log P(test_ids[i] | the ``order - 1`` ids before it), interpolated Witten-Bell smoothing down to a
    uniform distribution over ``vocab_size``. The first positions of the test text use the contexts they have."""
    train_ids, test_ids = np.asarray(train_ids, dtype=np.int64), np.asarray(test_ids, dtype=np.int64)
    base = vocab_size + 1
    p = np.full(len(test_ids), 1.0 / vocab_size)  # order 0: uniform
    for n in range(order):  # n = context length
        ctx_train = _context_keys(train_ids, n, base)
        ok = ctx_train >= 0
        full_train = ctx_train[ok] * base + train_ids[ok]
        full_keys, full_counts = np.unique(full_train, return_counts=True)
        ctx_keys, ctx_counts = np.unique(ctx_train[ok], return_counts=True)
        types_keys, types = np.unique(full_keys // base, return_counts=True)  # distinct followers per context
        ctx_test = _context_keys(test_ids, n, base)
        has = ctx_test >= 0
        c_full = _lookup(full_keys, full_counts, np.where(has, ctx_test * base + test_ids, -1))
        c_ctx = _lookup(ctx_keys, ctx_counts, np.where(has, ctx_test, -1))
        t_ctx = _lookup(types_keys, types, np.where(has, ctx_test, -1))
        seen = has & (c_ctx > 0)
        # P(c | h) = (C(h c) + T(h) · P(c | shorter h)) / (C(h) + T(h)); an unseen context keeps the shorter one
        p = np.where(seen, (c_full + t_ctx * p) / np.maximum(c_ctx + t_ctx, 1), p)
    return np.log(p)


def add_k_log_probs(train_ids: np.ndarray, test_ids: np.ndarray, vocab_size: int, order: int,
                    k: float = 1.0) -> np.ndarray:
    """log P(c | previous order−1 ids) with add-k smoothing (order 1: unigram, 2: bigram); the first
    positions of the test text fall back to the unigram."""
    train_ids, test_ids = np.asarray(train_ids, dtype=np.int64), np.asarray(test_ids, dtype=np.int64)
    uni = (np.bincount(train_ids, minlength=vocab_size) + k) / (len(train_ids) + k * vocab_size)
    if order == 1:
        return np.log(uni[test_ids])
    counts = np.zeros((vocab_size, vocab_size))
    np.add.at(counts, (train_ids[:-1], train_ids[1:]), 1)
    cond = (counts + k) / (counts.sum(axis=1, keepdims=True) + k * vocab_size)
    out = np.log(uni[test_ids])
    out[1:] = np.log(cond[test_ids[:-1], test_ids[1:]])
    return out


def baseline_nats_per_char(train_ids: np.ndarray, test_ids: np.ndarray, vocab_size: int,
                           order: int = 5) -> dict[str, float]:
    """Held-out nats per character of the three count baselines (character ids: one id per character)."""
    return {
        "unigram (add-1)": float(-add_k_log_probs(train_ids, test_ids, vocab_size, 1).mean()),
        "bigram (add-1)": float(-add_k_log_probs(train_ids, test_ids, vocab_size, 2).mean()),
        f"{order}-gram (Witten-Bell)": float(-witten_bell_log_probs(train_ids, test_ids, vocab_size, order).mean()),
    }
