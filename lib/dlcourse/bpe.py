"""Lab 14's tokenisers: byte-pair encoding over characters (Sennrich et al. 2016), written out, and the same
training through the Hugging Face ``tokenizers`` library for comparison (imported only when asked for).

BPE here works as Sennrich et al. describe it: the training text is cut into words (a word keeps its leading
space), each distinct word becomes a tuple of symbols with its count, and every merge joins the most frequent
adjacent pair of symbols into one new symbol. A merge never crosses a word boundary, so the table of distinct
words (about 25,000 for Tiny Shakespeare) stands in for the million characters and training takes seconds.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

Word = tuple[str, ...]
Pair = tuple[str, str]

# A newline; a word of letters with an optional leading space; a run of other non-space characters with an
# optional leading space; any other single whitespace character. Every character matches one alternative,
# so the words concatenate back to the text.
WORD_PATTERN = r"\n| ?[A-Za-z]+| ?[^A-Za-z\s]+|\s"
_WORDS = re.compile(WORD_PATTERN)


def split_words(text: str) -> list[str]:
    """The text cut into words; ``"".join(split_words(text)) == text``."""
    return _WORDS.findall(text)


def word_counts(text: str) -> dict[Word, int]:
    """{(c₁, c₂, …): count} for every distinct word of the text, each word a tuple of its characters."""
    return {tuple(word): n for word, n in Counter(split_words(text)).items()}


def count_pairs(words: dict[Word, int]) -> Counter:
    """How often each adjacent pair of symbols occurs, every word weighted by its count."""
    pairs: Counter = Counter()
    for word, n in words.items():
        for pair in zip(word, word[1:]):
            pairs[pair] += n
    return pairs


def merge_pair(word: Word, pair: Pair) -> Word:
    """The word with every occurrence of ``pair`` (left to right, not overlapping) joined into one symbol."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def best_pair(pairs: Counter) -> Pair:
    """The most frequent pair; ties go to the pair that sorts first, so training is deterministic."""
    top = max(pairs.values())
    return min(p for p, n in pairs.items() if n == top)


@dataclass
class BPETokenizer:
    """A vocabulary (the training characters, then one symbol per merge) and the ordered merge list."""

    alphabet: list[str]
    merges: list[Pair] = field(default_factory=list)
    unk: str = "\ufffd"  # a character the training text never had is spelled with this symbol

    def __post_init__(self) -> None:
        self.itos = [self.unk] + list(self.alphabet) + [a + b for a, b in self.merges]
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.rank = {pair: i for i, pair in enumerate(self.merges)}
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def token_lengths(self) -> list[int]:
        """Characters spelled by each token id (the unknown symbol spells one character)."""
        return [len(s) for s in self.itos]

    def _encode_word(self, word: str) -> list[int]:
        if word not in self._cache:
            symbols = [c if c in self.stoi else self.unk for c in word]
            while len(symbols) > 1:
                ranked = [(self.rank.get(p, len(self.rank)), i) for i, p in enumerate(zip(symbols, symbols[1:]))]
                rank, i = min(ranked)
                if rank == len(self.rank):
                    break  # no learned merge applies any more
                symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
            self._cache[word] = [self.stoi[s] for s in symbols]
        return self._cache[word]

    def encode(self, text: str) -> list[int]:
        """Apply the merges in the order they were learned, word by word (cached per distinct word)."""
        return [i for word in split_words(text) for i in self._encode_word(word)]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[int(i)] for i in ids)


def train_bpe(text: str, vocab_size: int, *, count: Callable[[dict[Word, int]], dict] = count_pairs,
              merge: Callable[[Word, Pair], Word] = merge_pair, progress: bool = False) -> BPETokenizer:
    """Learn ``vocab_size - 1 - len(alphabet)`` merges on ``text`` with the given pair counting and merge step."""
    words = word_counts(text)
    alphabet = sorted(set(text))
    n_merges = vocab_size - 1 - len(alphabet)
    if n_merges < 0:
        raise ValueError(f"vocab_size = {vocab_size} is smaller than the {len(alphabet) + 1} characters it must hold.")
    merges: list[Pair] = []
    steps = range(n_merges)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="BPE merges", unit="merge")
    for _ in steps:
        pairs = count(words)
        if not pairs:
            break
        pair = best_pair(Counter(pairs))
        merges.append(pair)
        words = {merge(word, pair) if pair[0] in word else word: n for word, n in words.items()}
    return BPETokenizer(alphabet, merges)


# ------------------------------------------------------------------------------------ Hugging Face tokenizers
def train_hf_bpe(text: str, vocab_size: int):
    """The same corpus, word split and vocabulary size through ``tokenizers``' BPE trainer (lazy import)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="\ufffd"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="isolated")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["\ufffd"], show_progress=False,
                                  initial_alphabet=sorted(set(text)), limit_alphabet=len(set(text)))
    tokenizer.train_from_iterator([text], trainer=trainer)
    return tokenizer


def hf_decode(tokenizer, ids: Iterable[int]) -> str:
    """Concatenate the token strings (``Tokenizer.decode`` would put spaces between BPE tokens)."""
    return "".join(tokenizer.id_to_token(int(i)) for i in ids)
