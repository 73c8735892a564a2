"""Lab 15's downstream task: is a line of Shakespeare a question? Built from the text itself, so no new data.

Every speech of Tiny Shakespeare is ``NAME:\\nline\\nline\\n\\n``. ``speech_sentences`` drops the speaker line,
joins the lines with spaces and cuts the speech into sentences ending in ``.``, ``?`` or ``!``;
``question_examples`` removes the final mark (it IS the label: leaving it in would let the model read the answer)
and keeps the sentences of 12..max_chars characters, label 1 for a question.

The split (``split_task``, the reference of exercise 15.1) keeps the pre-trained model honest: the shipped encoder
read the first 90% of the text during pre-training, so train and validation examples come from that part, and the
test examples only from the held-out last 10% — minus any sentence whose text also occurs in the first 90%
(Shakespeare repeats himself; a repeated line is one the encoder has already read).

Baselines that any fine-tuned model must beat: the majority class of the training examples, and a logistic
regression on character counts (scikit-learn), its regularisation C chosen on validation.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Sequence

import torch
from torch import Tensor

from dlcourse.mlm import CharTokenizer, split_by_position

Example = tuple[str, int]  # (sentence without its final punctuation, 1 = question / 0 = statement or exclamation)

MIN_CHARS = 12  # shorter sentences ("My lord", "Ay") are mostly the same few words either way
_SENTENCE = re.compile(r"[^.?!]*[.?!]")
_SPEAKER = re.compile(r"^[^\s:][^:.?!]*:$")  # "First Citizen:", "KING RICHARD III:"


def speech_sentences(text: str) -> list[str]:
    """The sentences of every speech, in text order: speaker line dropped, lines joined with single spaces, each
    sentence ending in ``.``, ``?`` or ``!`` (a speech's unfinished tail, e.g. at a cut, is dropped)."""
    sentences: list[str] = []
    for speech in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in speech.strip().split("\n")]
        if lines and _SPEAKER.match(lines[0]):
            lines = lines[1:]
        joined = " ".join(line for line in lines if line)
        sentences.extend(" ".join(s.split()) for s in _SENTENCE.findall(joined) if s.strip(" .?!"))
    return sentences


def question_examples(sentences: Sequence[str], max_chars: int) -> list[Example]:
    """(sentence without its final mark, 1 if it was ``?``) for every sentence of MIN_CHARS..max_chars characters
    once the mark is removed."""
    examples: list[Example] = []
    for sentence in sentences:
        sentence = sentence.strip()
        if not sentence or sentence[-1] not in ".?!":
            continue
        body = sentence[:-1].rstrip()
        if MIN_CHARS <= len(body) <= max_chars:
            examples.append((body, int(sentence[-1] == "?")))
    return examples


def seen_text(part: str) -> str:
    """``part`` with every run of whitespace made one space: a sentence that occurs in it with different line
    breaks is still found by ``sentence in seen_text(part)``."""
    return " ".join(part.split())


def split_task(text: str, pretrain_fraction: float = 0.9, n_val: int = 500, max_chars: int = 64,
               seed: int = 0) -> tuple[list[Example], list[Example], list[Example]]:
    """(train, val, test) examples (the reference of exercise 15.1).

    train + val: the examples of the pre-training part (the first ``pretrain_fraction`` of the text), ``n_val`` of
    them drawn for validation with ``random.Random(seed)``; test: the examples of the held-out part whose text does
    not occur anywhere in the pre-training part."""
    pretrain, heldout = split_by_position(text, pretrain_fraction)
    labelled = question_examples(speech_sentences(pretrain), max_chars)
    order = list(range(len(labelled)))
    random.Random(seed).shuffle(order)
    val = [labelled[i] for i in order[:n_val]]
    train = [labelled[i] for i in order[n_val:]]
    seen = seen_text(pretrain)
    test = [(s, y) for s, y in question_examples(speech_sentences(heldout), max_chars) if s not in seen]
    return train, val, test


def read_in_pretraining(examples: Sequence[Example], text: str, pretrain_fraction: float = 0.9) -> list[Example]:
    """The examples whose sentence occurs somewhere in the pre-training part of ``text`` (for a test set: none)."""
    pretrain, _ = split_by_position(text, pretrain_fraction)
    seen = seen_text(pretrain)
    return [(s, y) for s, y in examples if s in seen]


def padded_batch(texts: Sequence[str], tokenizer: CharTokenizer, max_len: int) -> tuple[Tensor, Tensor]:
    """(ids (B, T) long, mask (B, T) bool, True = real character): each text's first ``max_len`` characters,
    padded with ``tokenizer.pad_id`` to the longest in the batch."""
    encoded = [tokenizer.encode(t)[:max_len] for t in texts]
    longest = max((len(e) for e in encoded), default=0)
    ids = torch.full((len(encoded), max(longest, 1)), tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros(ids.shape, dtype=torch.bool)
    for row, e in enumerate(encoded):
        ids[row, :len(e)] = torch.tensor(e, dtype=torch.long)
        mask[row, :len(e)] = True
    return ids, mask


# ------------------------------------------------------------------------------------------- baselines
def class_balance(examples: Sequence[Example]) -> float:
    """The share of questions (label 1) among ``examples``."""
    return sum(y for _, y in examples) / max(1, len(examples))


def majority_accuracy(train: Sequence[Example], test: Sequence[Example]) -> float:
    """Accuracy on ``test`` of always answering the most common label of ``train``."""
    majority = Counter(y for _, y in train).most_common(1)[0][0]
    return sum(y == majority for _, y in test) / max(1, len(test))


def bag_of_characters(train: Sequence[Example], val: Sequence[Example], test: Sequence[Example],
                      cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0)) -> tuple[float, float]:
    """(test accuracy, chosen C) of a logistic regression on character counts (case kept), C chosen on val."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = CountVectorizer(analyzer="char", lowercase=False)
    x_train = vectorizer.fit_transform([s for s, _ in train])
    x_val, x_test = (vectorizer.transform([s for s, _ in part]) for part in (val, test))
    y_train, y_val, y_test = ([y for _, y in part] for part in (train, val, test))
    best: tuple[float, float, LogisticRegression] | None = None
    for c in cs:
        model = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
        score = model.score(x_val, y_val)
        if best is None or score > best[0]:
            best = (score, c, model)
    assert best is not None, "cs must hold at least one value of C"
    return float(best[2].score(x_test, y_test)), float(best[1])
