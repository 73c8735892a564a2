"""The lab 11 checks, called directly: they accept the library's reference answers and explain wrong ones."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dlcourse import mlm
from dlcourse.checks.lab11 import (check_bert_mask, check_bigram_fill, check_masked_lm_loss, check_split_and_vocab,
                                   check_top_k_fill)
from dlcourse.functions import log_softmax, softmax
from dlcourse.mlm_model import masked_lm_loss

WHOLE_TEXT = "every character of the whole corpus, QZ! included"


def test_split_and_vocab() -> None:
    assert check_split_and_vocab.evaluate(mlm.split_by_position, mlm.build_vocab).passed

    def overlapping(text, fraction):
        cut = int(len(text) * fraction)
        return text[:cut], text[cut - 100:]

    def shuffled(text, fraction):
        lines = text.splitlines(keepends=True)
        order = np.random.default_rng(0).permutation(len(lines))
        cut = int(len(lines) * fraction)
        return "".join(lines[i] for i in order[:cut]), "".join(lines[i] for i in order[cut:])

    assert "exactly one part" in check_split_and_vocab.evaluate(overlapping, mlm.build_vocab).message
    assert "memorise" in check_split_and_vocab.evaluate(shuffled, mlm.build_vocab).hint
    whole = check_split_and_vocab.evaluate(mlm.split_by_position, lambda train_text: sorted(set(WHOLE_TEXT)))
    assert whole.status == "failed" and "[UNK]" in whole.hint
    assert check_split_and_vocab.evaluate(None, mlm.build_vocab).status == "not_attempted"
    assert "should be a function" in check_split_and_vocab.evaluate("text", mlm.build_vocab).message


def test_bert_mask() -> None:
    assert check_bert_mask.evaluate(mlm.bert_mask).passed

    def all_mask(tokens, generator, *, mask_id, n_special, vocab_size):
        selected = torch.rand(tokens.shape, generator=generator) < 0.15
        return (torch.where(selected, torch.full_like(tokens, mask_id), tokens),
                torch.where(selected, tokens, torch.full_like(tokens, -100)))

    def vocabulary(tokens, generator, *, mask_id, n_special, vocab_size):
        chosen = torch.randperm(vocab_size, generator=generator)[: int(0.15 * vocab_size)]
        selected = torch.isin(tokens, chosen)
        return (torch.where(selected, torch.full_like(tokens, mask_id), tokens),
                torch.where(selected, tokens, torch.full_like(tokens, -100)))

    def every_label(tokens, generator, **sizes):
        inputs, _ = mlm.bert_mask(tokens, generator, **sizes)
        return inputs, tokens.clone()

    assert "80% / 10% / 10%" in check_bert_mask.evaluate(all_mask).message
    assert "POSITIONS" in check_bert_mask.evaluate(vocabulary).hint
    assert "100.0%" in check_bert_mask.evaluate(every_label).message
    assert "special token" in check_bert_mask.evaluate(
        lambda t, g, **s: mlm.bert_mask(t, g, **{**s, "n_special": 0})).message


def test_masked_lm_loss() -> None:
    assert check_masked_lm_loss.evaluate(masked_lm_loss).passed

    def mean_over_all(logits, labels):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none").mean()

    def detached(logits, labels):
        return masked_lm_loss(logits, labels).item()

    wrong = check_masked_lm_loss.evaluate(mean_over_all)
    assert wrong.status == "failed" and "SELECTED" in wrong.hint
    assert "torch tensor" in check_masked_lm_loss.evaluate(detached).message


def test_bigram_fill() -> None:
    assert check_bigram_fill.evaluate(mlm.bigram_fill_log_probs).passed

    def transposed(counts, left, right, k):
        v = counts.shape[0]
        p_left = (counts[left] + k) / (counts[left].sum() + k * v)
        p_right = (counts[right] + k) / (counts[right].sum() + k * v)
        return log_softmax(np.log(p_left) + np.log(p_right))

    def unsmoothed(counts, left, right, k):
        return log_softmax(np.log(counts[left] / counts[left].sum()) + np.log(counts[:, right] / counts.sum(axis=1)))

    assert check_bigram_fill.evaluate(transposed).status == "failed"
    assert "NaN or infinite" in check_bigram_fill.evaluate(unsmoothed).message


def test_top_k_fill() -> None:
    assert check_top_k_fill.evaluate(mlm.top_k_fill).passed

    def with_specials(logits, position, k, n_special):
        probs = softmax(np.asarray(logits[position], dtype=float))
        ids = np.argsort(-probs)[:k]
        return ids, probs[ids]

    def wrong_axis(logits, position, k, n_special):
        probs = softmax(np.asarray(logits, dtype=float), axis=0)[position]
        probs[:n_special] = 0
        ids = np.argsort(-probs)[:k]
        return ids, probs[ids]

    assert "-inf" in check_top_k_fill.evaluate(with_specials).hint
    assert check_top_k_fill.evaluate(wrong_axis).status == "failed"
    assert "(ids, probabilities)" in check_top_k_fill.evaluate(lambda *a: [1, 2, 3]).message
