"""Lab 11's masked language model, data side: a character tokeniser, the split by position, BERT masking,
the fixed held-out set, the two count baselines and top-k fill-in. The model is in ``dlcourse.mlm_model``.

Conventions: token ids 0..n_special-1 are the special tokens ([PAD], [UNK], [MASK]); the normal characters
follow. Labels hold the original token at selected positions and IGNORE (-100) elsewhere, as
``F.cross_entropy(..., ignore_index=-100)`` and Hugging Face's ``DataCollatorForLanguageModeling`` expect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from dlcourse.functions import log_softmax, softmax

IGNORE = -100
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[MASK]")


class CharTokenizer:
    """One token per character, plus [PAD], [UNK] and [MASK] (Devlin et al. 2019 spell BERT's mask ``[MASK]``).

    Build it from the TRAINING text only: a character that appears only in validation becomes [UNK],
    exactly as an unseen word would for a real tokeniser.
    """

    pad_token, unk_token, mask_token = SPECIAL_TOKENS

    def __init__(self, chars: list[str]) -> None:
        self.chars = list(chars)
        self.itos = list(SPECIAL_TOKENS) + self.chars
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.n_special = len(SPECIAL_TOKENS)
        self.pad_id, self.unk_id, self.mask_id = (self.stoi[t] for t in SPECIAL_TOKENS)
        self._special = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls(build_vocab(text))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Characters → ids; the literal strings "[MASK]", "[PAD]", "[UNK]" become their single special id."""
        ids: list[int] = []
        for piece in self._special.split(text):
            if piece in SPECIAL_TOKENS:
                ids.append(self.stoi[piece])
            else:
                ids.extend(self.stoi.get(c, self.unk_id) for c in piece)
        return ids

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids)


def build_vocab(train_text: str) -> list[str]:
    """The sorted distinct characters of the training text."""
    return sorted(set(train_text))


def split_by_position(text: str, fraction: float = 0.9) -> tuple[str, str]:
    """First ``fraction`` of the characters for training, the rest for validation: no shared passage."""
    cut = int(len(text) * fraction)
    return text[:cut], text[cut:]


def bert_mask(tokens: Tensor, generator: torch.Generator, *, mask_id: int, n_special: int, vocab_size: int,
              select_prob: float = 0.15, mask_prob: float = 0.8, random_prob: float = 0.1) -> tuple[Tensor, Tensor]:
    """BERT's corruption (Devlin et al. 2019, §3.1): select 15% of positions; of those 80% → [MASK],
    10% → a random normal token, 10% unchanged. Returns (inputs, labels with IGNORE where not selected)."""
    selected = torch.rand(tokens.shape, generator=generator) < select_prob
    labels = torch.where(selected, tokens, torch.full_like(tokens, IGNORE))
    action = torch.rand(tokens.shape, generator=generator)
    to_mask = selected & (action < mask_prob)
    to_random = selected & (action >= mask_prob) & (action < mask_prob + random_prob)
    random_tokens = torch.randint(n_special, vocab_size, tokens.shape, generator=generator, dtype=tokens.dtype)
    inputs = torch.where(to_mask, torch.full_like(tokens, mask_id), tokens)
    inputs = torch.where(to_random, random_tokens, inputs)
    return inputs, labels


def random_windows(ids: Tensor, batch_size: int, seq_len: int, generator: torch.Generator) -> Tensor:
    """(batch_size, seq_len) windows of the 1-D id tensor at random start positions."""
    starts = torch.randint(0, len(ids) - seq_len + 1, (batch_size,), generator=generator)
    return ids[starts[:, None] + torch.arange(seq_len)]


@dataclass
class MaskedSet:
    """A fixed masked evaluation set: built once (seeded), the same for every model and baseline."""

    inputs: Tensor  # (N, T) corrupted windows
    labels: Tensor  # (N, T) original token at selected positions, IGNORE elsewhere

    @property
    def n_targets(self) -> int:
        return int((self.labels != IGNORE).sum())


def make_masked_set(ids: Tensor, tokenizer: CharTokenizer, seq_len: int, n_windows: int | None = None,
                    seed: int = 1234) -> MaskedSet:
    """Non-overlapping windows of ``ids`` (the first ``n_windows``, or all), masked BERT-style with a fixed seed."""
    n = len(ids) // seq_len if n_windows is None else min(n_windows, len(ids) // seq_len)
    windows = ids[: n * seq_len].reshape(n, seq_len)
    inputs, labels = bert_mask(windows, torch.Generator().manual_seed(seed), mask_id=tokenizer.mask_id,
                               n_special=tokenizer.n_special, vocab_size=tokenizer.vocab_size)
    return MaskedSet(inputs, labels)


# ------------------------------------------------------------------------------------------- baselines
def bigram_counts(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """counts[a, b] = how often token b directly follows token a in ``ids``."""
    counts = np.zeros((vocab_size, vocab_size))
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    return counts


def unigram_log_probs(ids: np.ndarray, tokenizer: CharTokenizer, k: float = 1.0) -> np.ndarray:
    """log P(c) from training frequencies (add-k), over the normal characters only (specials get -inf)."""
    counts = np.bincount(ids, minlength=tokenizer.vocab_size).astype(float) + k
    counts[: tokenizer.n_special] = 0.0
    with np.errstate(divide="ignore"):
        return np.log(counts / counts.sum())


def bigram_fill_log_probs(counts: np.ndarray, left: int, right: int, k: float = 1.0) -> np.ndarray:
    """log P(c | left, right) ∝ log P(c | left) + log P(right | c), each from ``counts`` with add-k smoothing."""
    v = counts.shape[0]
    p_c_given_left = (counts[left] + k) / (counts[left].sum() + k * v)
    p_right_given_c = (counts[:, right] + k) / (counts.sum(axis=1) + k * v)
    return log_softmax(np.log(p_c_given_left) + np.log(p_right_given_c))


def baseline_scores(masked: MaskedSet, train_ids: np.ndarray, tokenizer: CharTokenizer,
                    k: float = 1.0, fill: Callable[[np.ndarray, int, int, float], np.ndarray] | None = None
                    ) -> dict[str, tuple[float, float]]:
    """Held-out masked-character (loss in nats, accuracy) of the unigram and the both-sides bigram baseline.

    The bigram sees the same corrupted window as the model: a neighbour that is a special token ([MASK], …)
    or lies outside the window contributes no factor. ``fill(counts, left, right, k)`` (lab 11's exercise
    11.4: log P(c | left, right) over the normal characters, from their bigram counts) scores every target
    that has both neighbours, once per distinct pair; None uses the vectorised formula below.
    """
    inputs, labels = masked.inputs.numpy(), masked.labels.numpy()
    rows, cols = np.nonzero(labels != IGNORE)
    targets = labels[rows, cols]
    uni = unigram_log_probs(train_ids, tokenizer, k)
    counts = bigram_counts(train_ids, tokenizer.vocab_size)
    ns = tokenizer.n_special
    normal = np.arange(ns, tokenizer.vocab_size)
    sub = counts[np.ix_(normal, normal)]
    v = len(normal)
    log_left = np.log((sub + k) / (sub.sum(axis=1, keepdims=True) + k * v))  # [l, c] = log P(c | l)
    log_right = log_left.T  # [r, c] = log P(r | c)
    t = inputs.shape[1]
    left = np.where(cols > 0, inputs[rows, np.maximum(cols - 1, 0)], -1)
    right = np.where(cols < t - 1, inputs[rows, np.minimum(cols + 1, t - 1)], -1)
    has_left, has_right = left >= ns, right >= ns
    # no left neighbour: P(c | right) ∝ P(c) P(right | c); no right one: P(c | left); neither: P(c)
    scores = np.where(has_left[:, None], log_left[np.maximum(left - ns, 0)], uni[ns:][None, :])
    scores = scores + np.where(has_right[:, None], log_right[np.maximum(right - ns, 0)], 0.0)
    bi = log_softmax(scores)
    if fill is not None:
        both = np.nonzero(has_left & has_right)[0]
        pairs = {(int(a), int(b)) for a, b in zip(left[both] - ns, right[both] - ns)}
        filled = {pair: np.asarray(fill(sub.copy(), *pair, k), dtype=np.float64) for pair in pairs}
        bi[both] = np.stack([filled[(int(a), int(b))] for a, b in zip(left[both] - ns, right[both] - ns)])
    out = {}
    for name, lp in (("unigram", np.broadcast_to(uni[ns:], (len(targets), v))), ("bigram (both sides)", bi)):
        picked = lp[np.arange(len(targets)), targets - ns]
        out[name] = (float(-picked.mean()), float((lp.argmax(axis=1) + ns == targets).mean()))
    return out


# ------------------------------------------------------------------------------------------- fill-in
def top_k_fill(logits: np.ndarray, position: int, k: int, n_special: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (ids, probabilities) at one position of (T, V) logits; special tokens can never be predicted."""
    row = np.array(logits[position], dtype=np.float64)
    row[:n_special] = -np.inf
    probs = softmax(row)
    ids = np.argsort(-probs, kind="stable")[:k]
    return ids, probs[ids]
