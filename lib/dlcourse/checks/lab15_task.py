"""Checks for lab 15's downstream task: the honest split (15.1) and mean pooling over real tokens (15.2).
Re-exported by ``dlcourse.checks.lab15``.

The registered wrong and accepted answers replace the solution region of the exercise cells, whose exact sources
are ``SOLUTION_15_1`` and ``SOLUTION_15_2`` below: the notebook's exercise cells must be exactly these (the answers
assume their imports and names; the unit tests run every answer through them).

Both checks call the student's function on inputs of their own: 15.1 on a small play written here (speeches with
questions, statements and exclamations; sentences repeated on both sides of the cut, one inside a longer line, one
with a different mark) at two settings of every argument; 15.2 on two batches whose sizes differ on every axis,
with large values at the padded positions. torch is imported inside the checks (a light interpreter imports this
module).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from dlcourse.check import expect, expect_array, expect_callable, exercise

SOLUTION_15_1 = '''import random

from dlcourse.finetune.task import question_examples, speech_sentences
from dlcourse.mlm import split_by_position


def split_task(text: str, pretrain_fraction: float, n_val: int, max_chars: int, seed: int):
    # Returns (train, val, test): lists of (sentence without its final punctuation, 1 if a question else 0).
    ### BEGIN SOLUTION
    pretrain, heldout = split_by_position(text, pretrain_fraction)
    labelled = question_examples(speech_sentences(pretrain), max_chars)
    random.Random(seed).shuffle(labelled)
    val, train = labelled[:n_val], labelled[n_val:]
    seen = " ".join(pretrain.split())  # the pre-training text, line breaks made spaces as in the sentences
    test = [(s, y) for s, y in question_examples(speech_sentences(heldout), max_chars) if s not in seen]
    ### END SOLUTION
    return train, val, test'''

SOLUTION_15_2 = '''import torch


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # hidden: (B, T, d) encoder outputs; mask: (B, T) bool, True for real characters, False for padding.
    # Returns (B, d): the mean of each sentence's real positions only.
    ### BEGIN SOLUTION
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1): 1 at real characters, 0 at padding
    pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    ### END SOLUTION
    return pooled'''


# ------------------------------------------------------------------------------------------- a small play
_NOUNS = ("crown", "letter", "sword", "horse", "ring", "garden", "prisoner", "banner", "cup", "glove", "bell",
          "tower", "ship", "purse", "key", "lute")
_ASK = ("Where is the {n}", "Why dost thou keep the {n} from me", "What say you to the {n}",
        "Shall we fetch the {n} before the king wakes", "Is this the {n}", "Who stole the {n} from the {m}")
_TELL = ("I will fetch the {n} tonight", "Thou hast lost the {n}", "The {n} lies beside the {m}",
         "Give me the {n}, and be gone", "My lord hath sent the {n} and the {m} to the duke of Milan")
_SHOUT = ("O, the {n}", "Away with the {n}")
_SPEAKERS = ("ROMEO", "First Citizen", "LADY CAPULET", "GREMIO", "KING RICHARD III", "Nurse")
# repeated across the cut: an example on both sides; a test sentence found only inside a longer pre-training
# line; the same words with a different mark (a statement before, a question after); one with a line break inside
_EARLY = "GREMIO:\nGood morrow, gentle Katharina.\nCome hither, sirrah, and bring me word of the duke's intent.\n" \
         "Thou art a traitor!\nI pray you, bring the\nhorses to the gate.\n\n"
_LATE = "ROMEO:\nGood morrow, gentle Katharina.\nCome hither, sirrah.\nThou art a traitor?\n" \
        "I pray you, bring the horses to the gate.\n\n"


def _sentence(rng: random.Random, index: int) -> str:
    kind = rng.choice((_ASK, _ASK, _TELL, _TELL, _SHOUT))
    n, m = _NOUNS[index % len(_NOUNS)], _NOUNS[(index * 7 + 3) % len(_NOUNS)]
    words = rng.choice(kind).format(n=n, m=m) + (f" of {_NOUNS[index % 5]}" * (index % 3 == 0))
    return words + ("?" if kind is _ASK else "!" if kind is _SHOUT else ".")


def small_play(n_speeches: int = 44, seed: int = 5) -> str:
    """Speeches in Tiny Shakespeare's layout; some sentences run over two lines, some are short ("Ay, my lord?")."""
    rng = random.Random(seed)
    speeches, index = [], 0
    for s in range(n_speeches):
        lines = []
        for _ in range(rng.randint(1, 3)):
            sentence = _sentence(rng, index)
            index += 1
            cut = sentence.find(" ", 20)
            if cut > 0 and rng.random() < 0.4:  # a sentence that runs over a line break
                sentence = sentence[:cut] + "\n" + sentence[cut + 1:]
            lines.append(sentence)
        if s % 9 == 4:
            lines.append("Ay, my lord?")
        speeches.append(f"{_SPEAKERS[s % len(_SPEAKERS)]}:\n" + "\n".join(lines) + "\n\n")
    return "".join(speeches[:3]) + _EARLY + "".join(speeches[3:-2]) + _LATE + "".join(speeches[-2:])


# ------------------------------------------------------------------------------------------- 15.1
_PARTS = "pretrain, heldout = split_by_position(text, pretrain_fraction)\n"
_LABELLED = "labelled = question_examples(speech_sentences(pretrain), max_chars)\n"
_HELD = "held = question_examples(speech_sentences(heldout), max_chars)\n"
_SEEN = "seen = ' '.join(pretrain.split())\n"
_TEST = "test = [(s, y) for s, y in held if s not in seen]"
_SHUFFLE = "random.Random(seed).shuffle(labelled)\nval, train = labelled[:n_val], labelled[n_val:]\n"


@exercise("15.1", "An honest split for the question task", wrong_answers={
    "all sentences shuffled, then split (the test set was read in pre-training)": (
        "examples = question_examples(speech_sentences(text), max_chars)\n"
        "random.Random(seed).shuffle(examples)\n"
        "n_test = int(len(examples) * (1 - pretrain_fraction))\n"
        "test, val, train = examples[:n_test], examples[n_test:n_test + n_val], examples[n_test + n_val:]"),
    "test sentences already in the pre-training text kept": (
        _PARTS + _LABELLED + _SHUFFLE + "test = question_examples(speech_sentences(heldout), max_chars)"),
    "test compared with the labelled pre-training examples only, not the whole text": (
        _PARTS + _LABELLED + _HELD + "known = set(labelled)\n" + _SHUFFLE
        + "test = [(s, y) for s, y in held if (s, y) not in known]"),
    "test compared with the training examples only (validation and the rest of the text missed)": (
        _PARTS + _LABELLED + _HELD + _SHUFFLE + "known = {s for s, _ in train}\n"
        + "test = [(s, y) for s, y in held if s not in known]"),
    "the raw pre-training text searched (a repeat with a line break inside is missed)": (
        _PARTS + _LABELLED + _HELD + _SHUFFLE + "test = [(s, y) for s, y in held if s not in pretrain]"),
    "final punctuation kept (the label is in the input)": (
        _PARTS + "def with_marks(part):\n"
        "    return [(s, int(s.endswith('?'))) for s in speech_sentences(part) if 12 <= len(s) - 1 <= max_chars]\n"
        "labelled, held = with_marks(pretrain), with_marks(heldout)\n" + _SHUFFLE + _SEEN + _TEST),
    "validation carved from the test part": (
        _PARTS + _LABELLED + _HELD + _SEEN + "train = labelled\n"
        "kept = [(s, y) for s, y in held if s not in seen]\n"
        "random.Random(seed).shuffle(kept)\nval, test = kept[:n_val], kept[n_val:]"),
    "validation examples left in the training set too": (
        _PARTS + _LABELLED + _HELD + _SEEN + "random.Random(seed).shuffle(labelled)\n"
        "val, train = labelled[:n_val], labelled\n" + _TEST),
    "validation = the last n_val examples (not drawn with the seed)": (
        _PARTS + _LABELLED + _HELD + _SEEN + "val, train = labelled[-n_val:], labelled[:-n_val]\n" + _TEST),
    "shuffled without the seed (a different split every run)": (
        _PARTS + _LABELLED + _HELD + _SEEN + "random.shuffle(labelled)\n"
        "val, train = labelled[:n_val], labelled[n_val:]\n" + _TEST),
    "the seed ignored (always 0)": (
        _PARTS + _LABELLED + _HELD + _SEEN + "random.Random(0).shuffle(labelled)\n"
        "val, train = labelled[:n_val], labelled[n_val:]\n" + _TEST),
    "n_val ignored (always 500)": (
        _PARTS + _LABELLED + _HELD + _SEEN + "random.Random(seed).shuffle(labelled)\n"
        "val, train = labelled[:500], labelled[500:]\n" + _TEST),
    "pretrain_fraction ignored (always 0.9)": (
        "pretrain, heldout = split_by_position(text, 0.9)\n" + _LABELLED + _HELD + _SEEN + _SHUFFLE + _TEST),
    "max_chars ignored (always 64)": (
        _PARTS + "labelled = question_examples(speech_sentences(pretrain), 64)\n"
        "held = question_examples(speech_sentences(heldout), 64)\n" + _SEEN + _SHUFFLE + _TEST),
}, accepted_answers={
    "random.Random(seed).sample for the validation indices": (
        _PARTS + _LABELLED + _HELD + _SEEN
        + "chosen = set(random.Random(seed).sample(range(len(labelled)), n_val))\n"
        "val = [e for i, e in enumerate(labelled) if i in chosen]\n"
        "train = [e for i, e in enumerate(labelled) if i not in chosen]\n" + _TEST),
    "a NumPy permutation": (
        "import numpy as np\n" + _PARTS + _LABELLED + _HELD + _SEEN
        + "order = np.random.default_rng(seed).permutation(len(labelled))\n"
        "val = [labelled[i] for i in order[:n_val]]\ntrain = [labelled[i] for i in order[n_val:]]\n" + _TEST),
    "torch.randperm with a seeded generator, test as a loop": (
        "import torch\n" + _PARTS + _LABELLED + _SEEN
        + "order = torch.randperm(len(labelled), generator=torch.Generator().manual_seed(seed)).tolist()\n"
        "val, train = [labelled[i] for i in order[:n_val]], [labelled[i] for i in order[n_val:]]\n"
        "test = []\nfor sentence, label in question_examples(speech_sentences(heldout), max_chars):\n"
        "    if sentence not in seen:\n        test.append((sentence, label))"),
})
def check_split_task(split_task: Any) -> str:
    from dlcourse.finetune import task
    from dlcourse.mlm import split_by_position

    expect_callable(split_task, name="split_task")
    text = small_play()
    settings = ((0.7, 7, 40, 3), (0.78, 5, 50, 11))
    for fraction, n_val, max_chars, seed in settings:
        got = _call_split(split_task, text, fraction, n_val, max_chars, seed)
        pretrain, _ = split_by_position(text, fraction)
        _expect_honest(got, task.split_task(text, fraction, n_val, max_chars, seed), pretrain,
                       f"split_task(text, {fraction}, {n_val}, {max_chars}, {seed})", n_val, max_chars)
        again = _call_split(split_task, text, fraction, n_val, max_chars, seed)
        expect(Counter(again[1]) == Counter(got[1]),
               "Called twice with the same seed, `split_task` gives two different validation sets.",
               "Draw them with a generator of your own, random.Random(seed): the global random.shuffle continues "
               "from wherever the notebook left it, so no run can be repeated.")
        other = _call_split(split_task, text, fraction, n_val, max_chars, seed + 1)
        expect(Counter(other[1]) != Counter(got[1]),
               f"With seed {seed} and seed {seed + 1} the validation sets are the same: the seed is not used.",
               "Draw the validation examples with random.Random(seed), so a different seed gives a different draw.")
    return ("Test examples come only from the held-out part and none was read in pre-training; validation is a "
            "seeded draw from the pre-training examples, and no label is left in the input.")


def _call_split(split_task: Any, text: str, fraction: float, n_val: int, max_chars: int, seed: int):
    got = split_task(text, fraction, n_val, max_chars, seed)
    expect(isinstance(got, (tuple, list)) and len(got) == 3,
           f"`split_task` should return three lists (train, val, test), not {type(got).__name__}.")
    parts = []
    for name, part in zip(("train", "val", "test"), got):
        expect(isinstance(part, (list, tuple)), f"`{name}` should be a list of (sentence, label) pairs, "
                                               f"not {type(part).__name__}.")
        pairs = []
        for item in part:
            expect(isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)
                   and not isinstance(item[1], bool) and item[1] in (0, 1),
                   f"Each entry of `{name}` should be a (sentence, label) pair with label 0 or 1; one is {item!r}.")
            pairs.append((item[0], int(item[1])))
        parts.append(pairs)
    return parts


def _expect_honest(got: list, want: tuple, pretrain: str, call: str, n_val: int, max_chars: int) -> None:
    train, val, test = got
    want_train, want_val, want_test = want
    marked = [s for s, _ in train + val + test if s.rstrip()[-1:] in ".?!"]
    expect(not marked, f"{call}: the sentence {marked[:1][0]!r} still ends in its punctuation mark." if marked else "",
           "The mark IS the label ('?' = question): a model given it reads the answer instead of learning the task. "
           "Use question_examples, which removes it.")
    sizes = [s for s, _ in train + val + test if not 12 <= len(s) <= max_chars]
    expect(not sizes, f"{call}: the sentence {sizes[:1][0]!r} has {len(sizes[:1][0])} characters; the examples "
                      f"should have 12 to max_chars = {max_chars}." if sizes else "",
           "Let question_examples(sentences, max_chars) choose the examples, with the max_chars you were given.")
    seen = " ".join(pretrain.split())
    leaked = [s for s, _ in test if s in seen or s in pretrain]
    broken = [s for s in leaked if s not in pretrain]
    expect(not leaked, f"{call}: {len(leaked)} test sentence(s) also occur in the pre-training text, e.g. "
                       f"{(broken or leaked)[0]!r}." if leaked else "",
           "That sentence is in the pre-training text with a line break inside it: the sentences have their line "
           "breaks made spaces, so search a copy of the text that has them made spaces too, "
           "' '.join(pretrain.split())." if broken and len(broken) == len(leaked) else
           "The encoder read the whole pre-training part: take test examples only from the held-out part "
           "(split_by_position), and drop every one whose text occurs ANYWHERE in the pre-training text, not only "
           "among its labelled examples.")
    pool = Counter(want_train + want_val)
    foreign = [e for e in val if e not in pool]
    expect(not foreign, f"{call}: the validation example {foreign[:1][0]!r} is not a labelled example of the "
                        "pre-training part." if foreign else "",
           "Carve validation out of the examples of the pre-training part (the first pretrain_fraction of the "
           "text, split_by_position): the test set is touched once, at the end, "
           "and nothing may be tuned on it.")
    expect(len(val) == n_val, f"{call}: `val` has {len(val)} examples; n_val asks for {n_val}.",
           "Take exactly n_val examples for validation, and the rest for training.")
    together = Counter(train) + Counter(val)
    expect(together == pool,
           f"{call}: train and val together hold {sum(together.values())} examples; the pre-training part has "
           f"{sum(pool.values())} labelled examples (sentences of 12..{max_chars} characters), each belonging to "
           "exactly one of the two.",
           "Cut the text at pretrain_fraction, keep every example of question_examples(speech_sentences(pretrain), "
           "max_chars), and put each in val OR train — a validation example left in train is scored on what it "
           "was trained on.")
    expect(Counter(test) == Counter(want_test),
           f"{call}: `test` has {len(test)} examples; the held-out part has {len(want_test)} that were not read "
           "in pre-training.",
           "test = the examples of the held-out part (the text after the cut, max_chars as given) whose sentence "
           "does not occur in the pre-training text.")


# ------------------------------------------------------------------------------------------- 15.2
_MASK = "m = mask.unsqueeze(-1)\n"


def _expect_not(got: Any, wrong: Any, reason: str, hint: str = "") -> None:
    """Fail with ``reason`` when ``got`` equals a known wrong result."""
    same = tuple(got.shape) == tuple(wrong.shape) and bool((got.detach().double() - wrong.double()).abs().max() < 1e-5)
    expect(not same, reason, hint or "Padding is not part of the sentence: weight each position by the mask, so "
                                     "padding counts neither in the sum nor in the count.")


@exercise("15.2", "Mean pooling over the real characters", wrong_answers={
    "the mean over every position (padding counted)": "pooled = hidden.mean(dim=1)",
    "masked sum divided by T (padding counted in the count)": (
        "pooled = (hidden * mask.unsqueeze(-1)).sum(dim=1) / hidden.shape[1]"),
    "the sum, not the mean": "pooled = (hidden * mask.unsqueeze(-1)).sum(dim=1)",
    "mask inverted (the mean over the padding)": (
        "keep = (~mask).unsqueeze(-1).float()\npooled = (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)"),
    "the first position only": "pooled = hidden[:, 0]",
    "the last position (padding, in a short sentence)": "pooled = hidden[:, -1]",
    "the mean over the feature axis": (
        "pooled = (hidden * mask.unsqueeze(-1)).sum(dim=-1) / hidden.shape[-1]"),
    "max pooling": "pooled = hidden.masked_fill(~mask.unsqueeze(-1), float('-inf')).max(dim=1).values",
    "detached (no gradient reaches the encoder)": (
        "pooled = ((hidden * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True)).detach()"),
}, accepted_answers={
    "masked sum over the count": "pooled = (hidden * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True)",
    "einsum with a float mask": (
        "m = mask.float()\npooled = torch.einsum('btd,bt->bd', hidden, m) / m.sum(dim=1, keepdim=True)"),
    "masked_fill, then sum": (
        "pooled = hidden.masked_fill(~mask.unsqueeze(-1), 0.0).sum(dim=1) / mask.sum(dim=1, keepdim=True)"),
    "a loop over the sentences": "pooled = torch.stack([h[m].mean(dim=0) for h, m in zip(hidden, mask)])",
    "a weighted matrix product": (
        "w = mask.float() / mask.sum(dim=1, keepdim=True)\npooled = (w.unsqueeze(1) @ hidden).squeeze(1)"),
})
def check_mean_pool(mean_pool: Any) -> str:
    import torch

    expect_callable(mean_pool, name="mean_pool")
    generator = torch.Generator().manual_seed(15)
    for lengths, d in (((7, 3, 1), 5), ((2, 6, 5, 1), 9)):
        b, t = len(lengths), max(lengths)
        mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
        hidden = torch.randn(b, t, d, generator=generator)
        hidden = torch.where(mask[..., None], hidden, 40.0 + torch.randn(b, t, d, generator=generator) ** 2)
        want = torch.stack([hidden[i, :n].double().mean(dim=0) for i, n in enumerate(lengths)])
        given = hidden.clone()
        got = mean_pool(given, mask.clone())
        expect(isinstance(got, torch.Tensor), f"`mean_pool` should return a torch tensor, not {type(got).__name__}.",
               "Stay in torch, so the gradient can flow back into the encoder during fine-tuning.")
        expect(torch.equal(given, hidden), "`mean_pool` changed `hidden` in place.",
               "Compute a new tensor (hidden * weights, masked_fill, ...) instead of writing into hidden: it is the "
               "encoder's output, which the backward pass still needs.")
        name = f"mean_pool for a ({b}, {t}, {d}) batch of lengths {list(lengths)}"
        _expect_not(got, hidden.mean(dim=1), f"{name} is the mean over EVERY position, padding included.")
        _expect_not(got, (hidden * mask[..., None]).sum(dim=1), f"{name} is the sum over the real characters.",
                    "Divide by the number of real characters of each sentence, mask.sum(dim=1, keepdim=True).")
        expect_array(got.detach(), want, name=name, rtol=1e-5, atol=1e-5,
                     hint="Average each sentence over its REAL characters only (mask True): sum hidden × mask over "
                          "the time axis (dim 1) and divide by the number of real characters — padding must count "
                          "neither in the sum nor in the count, or a sentence's vector depends on its batch.")
        given = hidden.clone().requires_grad_(True)
        got = mean_pool(given, mask.clone())
        expect(isinstance(got, torch.Tensor) and got.requires_grad, f"{name}: the result carries no gradient.",
               "Do not detach or go through NumPy: fine-tuning trains the encoder through this function.")
        got.sum().backward()
        expect(given.grad is not None and float(given.grad[~mask].abs().max()) == 0.0,
               "The gradient reaches the padded positions: they are part of the result.")
    return "The mean over each sentence's real characters, padding ignored, gradient intact, at two sizes."
