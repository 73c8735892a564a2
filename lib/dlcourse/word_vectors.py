"""Word vectors from co-occurrence counts (lab 09): PPMI + truncated SVD, seconds on a CPU, no downloads.

A word is described by the words around it ("You shall know a word by the company it keeps", Firth 1957).
Count how often each pair of frequent words occurs within a small window, turn the counts into positive
pointwise mutual information (PPMI: how much more often than chance), and keep the top singular directions
of that matrix (Levy, Goldberg & Dagan 2015). Words used in similar contexts get similar vectors, which is
all lab 09 needs to show attention weights on a real sentence without a pretrained model.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def tokenize(text: str) -> list[str]:
    """Lower-case words (apostrophes inside a word kept: "king's"); punctuation and numbers dropped."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class WordVectors:
    """One row of ``vectors`` per word of ``vocab`` (most frequent first); ``index`` maps word → row."""

    vocab: list[str]
    vectors: np.ndarray  # (V, dim) float32

    @property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.vocab)}

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def lookup(self, words: list[str]) -> np.ndarray:
        """(len(words), dim) vectors; raises KeyError naming the first word outside the vocabulary."""
        index = self.index
        missing = [w for w in words if w not in index]
        if missing:
            raise KeyError(f"{missing[0]!r} is not among the {len(self.vocab)} most frequent words.")
        return self.vectors[[index[w] for w in words]]

    def nearest(self, word: str, n: int = 5) -> list[tuple[str, float]]:
        """The `n` other words with the highest cosine similarity to `word`."""
        unit = self.vectors / np.maximum(np.linalg.norm(self.vectors, axis=1, keepdims=True), 1e-12)
        similarity = unit @ unit[self.index[word]]
        order = [i for i in np.argsort(-similarity, kind="stable") if self.vocab[i] != word][:n]
        return [(self.vocab[i], float(similarity[i])) for i in order]


def cooccurrence(tokens: list[str], vocab: list[str], window: int = 4) -> np.ndarray:
    """(V, V) symmetric counts of vocabulary words within `window` positions of each other."""
    index = {w: i for i, w in enumerate(vocab)}
    ids = np.array([index.get(t, -1) for t in tokens])
    v = len(vocab)
    counts = np.zeros(v * v, dtype=np.float64)
    for offset in range(1, window + 1):
        left, right = ids[:-offset], ids[offset:]
        keep = (left >= 0) & (right >= 0)
        pairs = left[keep] * v + right[keep]
        counts += np.bincount(pairs, minlength=v * v)  # bincount: one vectorised pass, no Python loop per pair
    counts = counts.reshape(v, v)
    return counts + counts.T  # a window looks both ways


def ppmi(counts: np.ndarray) -> np.ndarray:
    """Positive pointwise mutual information max(0, log P(a,b) / (P(a) P(b))); 0 where a pair never occurs."""
    total = counts.sum()
    row = counts.sum(axis=1, keepdims=True)
    col = counts.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(counts * total / (row * col))
    return np.where(np.isfinite(pmi) & (pmi > 0), pmi, 0.0)


def truncated_svd(matrix: np.ndarray, dim: int, *, seed: int = 0, oversample: int = 10,
                  power_iterations: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The top-`dim` left singular vectors and singular values by randomized SVD (Halko, Martinsson & Tropp 2011).

    Signs are fixed (largest entry of each vector positive) so a seeded run always gives the same vectors.
    """
    rng = np.random.default_rng(seed)
    sketch = matrix @ rng.standard_normal((matrix.shape[1], dim + oversample))
    for _ in range(power_iterations):  # sharpen the sketch towards the top singular directions
        sketch, _ = np.linalg.qr(sketch)
        sketch = matrix @ (matrix.T @ sketch)
    basis, _ = np.linalg.qr(sketch)
    u_small, s, _ = np.linalg.svd(basis.T @ matrix, full_matrices=False)
    u = (basis @ u_small)[:, :dim]
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(dim)])
    return u * signs, s[:dim]


def word_vectors(text: str, *, vocab_size: int = 2000, dim: int = 64, window: int = 4, seed: int = 0) -> WordVectors:
    """PPMI + truncated-SVD vectors for the `vocab_size` most frequent words of `text` (√singular-value weighting)."""
    tokens = tokenize(text)
    vocab = [w for w, _ in sorted(Counter(tokens).items(), key=lambda item: (-item[1], item[0]))[:vocab_size]]
    u, s = truncated_svd(ppmi(cooccurrence(tokens, vocab, window)), dim, seed=seed)
    return WordVectors(vocab, (u * np.sqrt(s)).astype(np.float32))
