"""The lab 10 checks, called directly: they accept right answers and explain the typical wrong ones."""

from __future__ import annotations

import numpy as np
import torch

from dlcourse.checks.lab10 import (check_feed_forward, check_layer_norm, check_masked_accuracy, check_post_ln_block,
                                   check_pre_ln_block, check_sort_targets)
from dlcourse.seqtasks import make_sort_batch


def _stub(*args):
    raise NotImplementedError("Exercise 10.x: replace this line with your code.")


def test_layer_norm() -> None:
    def right(x, gamma, beta, eps=1e-5):
        return gamma * (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) + beta

    def eps_outside(x, gamma, beta, eps=1e-5):
        return gamma * (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + eps) + beta

    def unbiased(x, gamma, beta, eps=1e-5):
        return gamma * (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, ddof=1, keepdims=True) + eps) + beta

    assert check_layer_norm.evaluate(right).passed
    for wrong in (eps_outside, unbiased):
        result = check_layer_norm.evaluate(wrong)
        assert result.status == "failed" and "inside the square root" in result.hint
    assert check_layer_norm.evaluate(_stub).status == "not_attempted"
    assert "should be a function" in check_layer_norm.evaluate(np.zeros(3)).message
    assert check_layer_norm.evaluate(lambda x, g, b, e: "oops").status == "failed"


def test_feed_forward() -> None:
    assert check_feed_forward.evaluate(lambda x, l1, l2: l2(torch.relu(l1(x)))).passed
    failed = check_feed_forward.evaluate(lambda x, l1, l2: l2(l1(x)))
    assert failed.status == "failed" and "non-linearity" in failed.hint
    assert check_feed_forward.evaluate(lambda x, l1, l2: l1(x)).status == "failed"  # wrong shape, a sentence
    assert check_feed_forward.evaluate(_stub).status == "not_attempted"


def _post(x, block, mask=None):
    a, _ = block.self_attn(x, mask=mask)
    x = block.norm1(x + a)
    return block.norm2(x + block.feed_forward(x))


def _pre(x, block, mask=None):
    a, _ = block.self_attn(block.norm1(x), mask=mask)
    x = x + a
    return x + block.feed_forward(block.norm2(x))


def test_blocks() -> None:
    assert check_post_ln_block.evaluate(_post).passed
    assert check_pre_ln_block.evaluate(_pre).passed
    swapped = check_post_ln_block.evaluate(_pre)
    assert swapped.status == "failed" and "Post-LN" in swapped.hint
    assert check_pre_ln_block.evaluate(_post).status == "failed"
    no_mask = check_post_ln_block.evaluate(lambda x, block, mask=None: _post(x, block))
    assert no_mask.status == "failed" and "real tokens" in no_mask.message
    returns_numpy = check_pre_ln_block.evaluate(lambda x, block, mask=None: _pre(x, block, mask).numpy())
    assert returns_numpy.status == "failed" and "torch tensor" in returns_numpy.message
    assert check_pre_ln_block.evaluate(_stub).status == "not_attempted"


def test_sort_targets() -> None:
    batch = make_sort_batch(5, 2, 9, np.random.default_rng(3))
    assert check_sort_targets.evaluate(np.sort(batch.tokens, axis=1), batch.tokens, batch.mask).passed
    assert check_sort_targets.evaluate(batch.targets.tolist(), batch.tokens, batch.mask).passed, "a list is fine"
    failed = check_sort_targets.evaluate(np.argsort(batch.tokens, axis=1), batch.tokens, batch.mask)
    assert failed.status == "failed" and "argsort" in failed.hint
    assert "dtype" in check_sort_targets.evaluate(batch.targets.astype(float), batch.tokens, batch.mask).message
    assert check_sort_targets.evaluate(None, batch.tokens, batch.mask).status == "not_attempted"


def test_masked_accuracy() -> None:
    def right(logits, targets, mask):
        return float(((logits.argmax(-1) == targets) & mask).sum() / mask.sum())

    assert check_masked_accuracy.evaluate(right).passed
    assert check_masked_accuracy.evaluate(lambda l, t, m: ((l.argmax(-1) == t) & m).sum() / m.sum()).passed, \
        "a 0-d tensor is a number too"
    failed = check_masked_accuracy.evaluate(lambda l, t, m: float((l.argmax(-1) == t).float().mean()))
    assert failed.status == "failed" and "real positions" in failed.hint
    assert check_masked_accuracy.evaluate(_stub).status == "not_attempted"
