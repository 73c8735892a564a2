"""Checks for lab 11 (a masked language model): the split by position and the vocabulary, BERT masking,
the loss on selected positions only, the both-sides bigram baseline, and top-k fill-in probabilities.
The model (11.5) and its training step (11.6) are checked in ``dlcourse.checks.lab11_model``, the held-out
evaluation (11.7) in ``dlcourse.checks.lab11_eval``; both are re-exported here.

torch is imported inside the checks (a light interpreter imports this module)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlcourse.check import expect, expect_array, expect_callable, expect_number, exercise
from dlcourse.checks.lab11_eval import check_evaluate_mlm  # noqa: F401 (registers 11.7)
from dlcourse.checks.lab11_model import check_masked_lm, check_train_step  # noqa: F401 (registers 11.5, 11.6)

IGNORE = -100


def _torch():
    import torch

    return torch


# ------------------------------------------------------------------------------------------- 11.1
@exercise("11.1", "Split by position and a training-only vocabulary", wrong_answers={
    "random split of the lines (leaks passages)": [
        "lines = text.splitlines(keepends=True)\n"
        "order = np.random.default_rng(0).permutation(len(lines))\n"
        "cut = int(len(lines) * fraction)\n"
        "train = ''.join(lines[i] for i in order[:cut])\n"
        "return train, ''.join(lines[i] for i in order[cut:])", None],
    "validation overlaps the end of training": [
        "cut = int(len(text) * fraction)\n"
        "return text[:cut], text[cut - 100:]", None],
    "vocabulary built from the whole text": [None, "return sorted(set(text))"],
})
def check_split_and_vocab(split_by_position: Any, build_vocab: Any) -> str:
    expect_callable(split_by_position, name="split_by_position")
    expect_callable(build_vocab, name="build_vocab")
    rng = np.random.default_rng(11)
    lines = ["".join(rng.choice(list("abcdefgh ,."), size=int(rng.integers(5, 30)))) + "\n" for _ in range(200)]
    text = "".join(lines) + "QZ!"  # characters that only the validation part contains
    got = split_by_position(text, 0.9)
    expect(isinstance(got, tuple) and len(got) == 2 and all(isinstance(p, str) for p in got),
           "`split_by_position` should return a pair of strings (train, validation).")
    train, val = got
    cut = int(len(text) * 0.9)
    expect(len(train) + len(val) == len(text),
           f"The two parts have {len(train)} + {len(val)} characters, but the text has {len(text)}: "
           "every character should land in exactly one part.",
           "Validation starts exactly where training stops: text[:cut] and text[cut:].")
    expect(train == text[:cut] and val == text[cut:],
           "The parts are not the first 90% and the last 10% of the text in their original order.",
           "Shuffling lines (or characters) before splitting puts neighbours of validation passages into training: "
           "the model can then memorise what it will be tested on. Cut once, at int(len(text) * fraction).")
    vocab = build_vocab(train)
    expect(isinstance(vocab, (list, tuple)) and all(isinstance(c, str) and len(c) == 1 for c in vocab),
           "`build_vocab` should return a list of single characters.")
    want = sorted(set(train))
    expect(set(vocab) <= set(train),
           f"The vocabulary contains characters that are not in the training text: {sorted(set(vocab) - set(train))[:8]}.",
           "Build it from the argument `train_text` only (not from a global `text`): characters seen only in "
           "validation must become [UNK], or the held-out score is measured with knowledge of the held-out text.")
    expect(list(vocab) == want, f"The vocabulary has {len(vocab)} entries; the sorted distinct characters of the "
                                f"training text are {len(want)}.", "sorted(set(train_text)) gives a stable order.")
    return f"{len(train)} + {len(val)} characters, no shared passage, and {len(want)} training characters."


# ------------------------------------------------------------------------------------------- 11.2
def _masking(draws: str, *, select: str = "torch.rand(tokens.shape, generator=generator) < 0.15",
             labels: str = "torch.where(selected, tokens, torch.full_like(tokens, -100))",
             mask: str = "torch.full_like(tokens, mask_id)") -> str:
    """A bert_mask body whose random replacements come from ``draws`` (a torch.randint call)."""
    return (f"selected = {select}\n"
            f"labels = {labels}\n"
            "action = torch.rand(tokens.shape, generator=generator)\n"
            f"random_tokens = {draws}\n"
            f"inputs = torch.where(selected & (action < 0.8), {mask}, tokens)\n"
            "inputs = torch.where(selected & (action >= 0.8) & (action < 0.9), random_tokens, inputs)")


CHARACTERS = "torch.randint(n_special, vocab_size, tokens.shape, generator=generator)"


@exercise("11.2", "BERT masking: 15% selected, 80/10/10", wrong_answers={
    "every selected position becomes [MASK]": (
        "selected = torch.rand(tokens.shape, generator=generator) < 0.15\n"
        "labels = torch.where(selected, tokens, torch.full_like(tokens, -100))\n"
        "inputs = torch.where(selected, torch.full_like(tokens, mask_id), tokens)"),
    "15% of the vocabulary selected, not 15% of the positions": (
        "chosen = torch.randperm(vocab_size, generator=generator)[: int(0.15 * vocab_size)]\n"
        "selected = torch.isin(tokens, chosen)\n"
        "labels = torch.where(selected, tokens, torch.full_like(tokens, -100))\n"
        "action = torch.rand(tokens.shape, generator=generator)\n"
        "random_tokens = torch.randint(n_special, vocab_size, tokens.shape, generator=generator)\n"
        "inputs = torch.where(selected & (action < 0.8), torch.full_like(tokens, mask_id), tokens)\n"
        "inputs = torch.where(selected & (action >= 0.8) & (action < 0.9), random_tokens, inputs)"),
    "labels keep every token (loss would cover all positions)": _masking(CHARACTERS, labels="tokens.clone()"),
    "labels only at the [MASK] positions (random and unchanged ones unscored)": (
        "selected = torch.rand(tokens.shape, generator=generator) < 0.15\n"
        "action = torch.rand(tokens.shape, generator=generator)\n"
        "random_tokens = torch.randint(n_special, vocab_size, tokens.shape, generator=generator)\n"
        "labels = torch.where(selected & (action < 0.8), tokens, torch.full_like(tokens, -100))\n"
        "inputs = torch.where(selected & (action < 0.8), torch.full_like(tokens, mask_id), tokens)\n"
        "inputs = torch.where(selected & (action >= 0.8) & (action < 0.9), random_tokens, inputs)"),
    "draws from the global random generator (not repeatable)": (
        "selected = torch.rand(tokens.shape) < 0.15\n"
        "labels = torch.where(selected, tokens, torch.full_like(tokens, -100))\n"
        "action = torch.rand(tokens.shape)\n"
        "random_tokens = torch.randint(n_special, vocab_size, tokens.shape)\n"
        "inputs = torch.where(selected & (action < 0.8), torch.full_like(tokens, mask_id), tokens)\n"
        "inputs = torch.where(selected & (action >= 0.8) & (action < 0.9), random_tokens, inputs)"),
    "ignores the generator it is given (a fixed seed inside)": (
        "generator = torch.Generator().manual_seed(0)\n" + _masking(CHARACTERS)),
    "mask id typed in as 2": _masking(CHARACTERS, mask="torch.full_like(tokens, 2)"),
    "random ids can reach vocab_size (one past the last id)": _masking(
        "torch.randint(n_special, vocab_size + 1, tokens.shape, generator=generator)"),
    "random replacements are special tokens only": _masking(
        "torch.randint(0, n_special, tokens.shape, generator=generator)"),
}, accepted_answers={
    "BERT's recipe: random replacements from the whole vocabulary": _masking(
        "torch.randint(0, vocab_size, tokens.shape, generator=generator)"),
    "selection with torch.bernoulli": _masking(
        CHARACTERS, select="torch.bernoulli(torch.full(tokens.shape, 0.15), generator=generator).bool()"),
})
def check_bert_mask(bert_mask: Any) -> str:
    torch = _torch()
    expect_callable(bert_mask, name="bert_mask")
    n_special, vocab_size, mask_id = 4, 37, 1  # not the lab's sizes: a typed-in 3, 68 or 2 shows
    tokens = torch.randint(n_special, vocab_size, (211, 307), generator=torch.Generator().manual_seed(5))

    def run(seed: int, global_seed: int) -> tuple[Any, Any]:
        with torch.random.fork_rng(devices=[]):  # the global generator is reseeded here only, then restored
            torch.manual_seed(global_seed)
            got = bert_mask(tokens.clone(), torch.Generator().manual_seed(seed), mask_id=mask_id, n_special=n_special,
                            vocab_size=vocab_size)
        expect(isinstance(got, tuple) and len(got) == 2, "`bert_mask` should return a pair (inputs, labels).")
        return tuple(t if isinstance(t, torch.Tensor) else torch.as_tensor(np.asarray(t)) for t in got)

    inputs, labels = run(7, 0)
    expect_array(inputs.shape, tokens.shape, name="inputs.shape")
    expect_array(labels.shape, tokens.shape, name="labels.shape")
    again_inputs, again_labels = run(7, 99)
    expect(torch.equal(inputs, again_inputs) and torch.equal(labels, again_labels),
           "The same `generator` seed gave two different maskings.",
           "Draw every random number from the generator you are given: torch.rand(tokens.shape, generator=generator) "
           "and torch.randint(low, high, tokens.shape, generator=generator); the global generator makes the masking "
           "depend on whatever ran before.")
    other_inputs, other_labels = run(8, 0)
    expect(not (torch.equal(inputs, other_inputs) and torch.equal(labels, other_labels)),
           "Two different `generator` seeds gave the same masking.",
           "Use the `generator` argument itself, not a generator you seed inside the function.")
    selected = labels != IGNORE
    per_token = [selected[tokens == t].float().mean().item() for t in range(n_special, vocab_size)]
    expect(max(per_token) - min(per_token) < 0.08,
           f"Some characters are selected far more often than others (from {min(per_token):.0%} to {max(per_token):.0%}).",
           "Select POSITIONS at random, independently of which token sits there (torch.rand(tokens.shape) < 0.15), "
           "not a random 15% of the vocabulary: every character must be practised.")
    fraction = selected.float().mean().item()
    expect(0.14 < fraction < 0.16, f"{fraction:.1%} of the positions have a label; BERT selects 15%.",
           "Labels keep the original token at EVERY selected position ([MASK], random and unchanged alike) and -100 "
           "everywhere else, so the loss ignores the other 85%.")
    expect(bool((labels[selected] == tokens[selected]).all()), "At selected positions the label should be the "
           "ORIGINAL token (what the model must recover).")
    expect(bool((inputs[~selected] == tokens[~selected]).all()),
           "Some positions that were not selected were changed in the inputs.",
           "Only selected positions are corrupted.")
    sel_in, sel_tok = inputs[selected], tokens[selected]
    expect(bool(((sel_in >= 0) & (sel_in < vocab_size)).all()),
           f"Some inputs are ids outside the vocabulary (0 … {vocab_size - 1}): up to {int(sel_in.max())}.",
           "torch.randint(low, high, …) draws up to high − 1: high = vocab_size.")
    masked = (sel_in == mask_id).float().mean().item()
    unchanged = (sel_in == sel_tok).float().mean().item()
    replaced = 1 - masked - unchanged
    expect(abs(masked - 0.8) < 0.015 and abs(replaced - 0.1) < 0.015 and abs(unchanged - 0.1) < 0.015,
           f"Of the selected positions {masked:.1%} became [MASK] (id {mask_id}), {replaced:.1%} a different token and "
           f"{unchanged:.1%} stayed unchanged; BERT uses 80% / 10% / 10%.",
           "Decide per SELECTED position with a second uniform draw: < 0.8 → mask_id, 0.8–0.9 → random token, "
           "else keep. Use the `mask_id` argument, not a typed-in id.")
    swapped = sel_in[(sel_in != mask_id) & (sel_in != sel_tok)]
    special = (swapped < n_special).float().mean().item()
    expect(len(set(swapped.tolist())) >= vocab_size - n_special - 1 and special < n_special / (vocab_size - 1) + 0.03,
           f"The random replacements take only {len(set(swapped.tolist()))} distinct ids ({special:.0%} of them "
           "special tokens).",
           "Draw each replacement uniformly: torch.randint(n_special, vocab_size, …) (normal tokens only, this lab's "
           "choice) or torch.randint(0, vocab_size, …) (BERT's: the whole vocabulary).")
    source = "the whole vocabulary (BERT's recipe)" if special > 0 else "the normal tokens (this lab's choice)"
    return (f"{fraction:.1%} selected; of those {masked:.1%} [MASK], {replaced:.1%} random from {source}, "
            f"{unchanged:.1%} unchanged; the same generator seed gives the same masking.")


# ------------------------------------------------------------------------------------------- 11.3
@exercise("11.3", "The loss on selected positions only", wrong_answers={
    "mean over every position (ignored ones count as 0)": (
        "per_position = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),\n"
        "                               ignore_index=-100, reduction='none')\n"
        "loss = per_position.mean()"),
    "ignored positions scored as token 0": (
        "loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).clamp(min=0))"),
    "summed instead of averaged": (
        "loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,\n"
        "                       reduction='sum')"),
    "mean per sequence, then over the batch": (
        "per_position = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction='none')\n"
        "loss = (per_position.sum(dim=1) / (labels != -100).sum(dim=1)).mean()"),
}, accepted_answers={
    "selected positions picked out first": (
        "selected = labels != -100\n"
        "loss = F.cross_entropy(logits[selected], labels[selected])"),
    "log_softmax and gather by hand": (
        "selected = labels != -100\n"
        "log_p = torch.log_softmax(logits[selected], dim=-1)\n"
        "loss = -log_p.gather(1, labels[selected][:, None]).mean()"),
})
def check_masked_lm_loss(masked_lm_loss: Any) -> str:
    torch = _torch()
    from dlcourse.functions import log_softmax

    expect_callable(masked_lm_loss, name="masked_lm_loss")
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 14, 11, generator=g) * 2  # float32, as the model gives them
    tokens = torch.randint(0, 11, (3, 14), generator=g)
    selected = torch.rand(3, 14, generator=g) < 0.25
    labels = torch.where(selected, tokens, torch.full_like(tokens, IGNORE))
    logp = log_softmax(logits.numpy().astype(np.float64))
    want = float(-logp[selected.numpy()][np.arange(int(selected.sum())), tokens[selected].numpy()].mean())
    got = masked_lm_loss(logits.clone().requires_grad_(True), labels.clone())
    expect_number(got, want, name="masked_lm_loss(logits, labels)", rtol=1e-5,
                  hint="Average the cross-entropy over the SELECTED positions only: F.cross_entropy(logits.reshape(-1, V), "
                       "labels.reshape(-1), ignore_index=-100) divides by the number of selected positions, not by B·T.")
    expect(isinstance(got, torch.Tensor) and got.requires_grad,
           "The loss should be a torch tensor connected to the logits, so loss.backward() can run.")
    return f"{int(selected.sum())} of {selected.numel()} positions scored; loss {want:.4f} nats."


# ------------------------------------------------------------------------------------------- 11.4
@exercise("11.4", "The both-sides bigram baseline", wrong_answers={
    "P(c | right) instead of P(right | c)": (
        "v = counts.shape[0]\n"
        "p_c_given_left = (counts[left] + k) / (counts[left].sum() + k * v)\n"
        "p_c_given_right = (counts[right] + k) / (counts[right].sum() + k * v)\n"
        "log_p = log_softmax(np.log(p_c_given_left) + np.log(p_c_given_right))"),
    "not normalised": (
        "v = counts.shape[0]\n"
        "p_c_given_left = (counts[left] + k) / (counts[left].sum() + k * v)\n"
        "p_right_given_c = (counts[:, right] + k) / (counts.sum(axis=1) + k * v)\n"
        "log_p = np.log(p_c_given_left) + np.log(p_right_given_c)"),
    "no smoothing": (
        "p_c_given_left = counts[left] / counts[left].sum()\n"
        "p_right_given_c = counts[:, right] / counts.sum(axis=1)\n"
        "log_p = log_softmax(np.log(p_c_given_left) + np.log(p_right_given_c))"),
})
def check_bigram_fill(bigram_fill_log_probs: Any) -> str:
    from dlcourse.mlm import bigram_fill_log_probs as reference

    expect_callable(bigram_fill_log_probs, name="bigram_fill_log_probs")
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 20, size=(9, 9)).astype(float)
    counts[rng.random((9, 9)) < 0.3] = 0.0  # unseen pairs: smoothing matters
    for left, right in ((1, 4), (7, 0), (3, 3)):
        want = reference(counts, left, right, k=0.5)
        got = bigram_fill_log_probs(counts.copy(), left, right, 0.5)
        expect_array(got, want, name=f"bigram_fill_log_probs(counts, left={left}, right={right}, k=0.5)", rtol=1e-6,
                     atol=1e-9, hint="log P(c | l, r) = log P(c | l) + log P(r | c) − log Σ_c' (…): P(c | l) is row l of "
                                     "counts normalised, P(r | c) is column r divided by each ROW total c; add k to every "
                                     "count (and k·V to each total) so unseen pairs keep a small probability; finish with "
                                     "log_softmax so the probabilities sum to 1.")
    return "log P(c | left, right) matches the reference for three (left, right) pairs, smoothing included."


# ------------------------------------------------------------------------------------------- 11.8
@exercise("11.8", "Top-k fill-in probabilities", wrong_answers={
    "softmax over the positions": (
        "probs = softmax(np.asarray(logits, dtype=float), axis=0)[position]\n"
        "probs[:n_special] = 0.0\n"
        "ids = np.argsort(-probs)[:k]\n"
        "top = (ids, probs[ids])"),
    "special tokens allowed": (
        "probs = softmax(np.asarray(logits[position], dtype=float))\n"
        "ids = np.argsort(-probs)[:k]\n"
        "top = (ids, probs[ids])"),
    "special tokens dropped after the softmax (not renormalised)": (
        "probs = softmax(np.asarray(logits[position], dtype=float))\n"
        "probs[:n_special] = 0.0\n"
        "ids = np.argsort(-probs)[:k]\n"
        "top = (ids, probs[ids])"),
    "top k of the whole vocabulary, then the specials removed": (
        "probs = softmax(np.asarray(logits[position], dtype=float)[n_special:])\n"
        "ids = np.argsort(-probs)[:k]\n"
        "top = (ids, probs[ids])"),
}, accepted_answers={
    "softmax written out, ids sorted by probability": (
        "row = np.asarray(logits[position], dtype=float).copy()\n"
        "row[:n_special] = -np.inf\n"
        "probs = np.exp(row - row.max())\n"
        "probs = probs / probs.sum()\n"
        "ids = np.argsort(probs)[::-1][:k]\n"
        "top = (ids, probs[ids])"),
    "float32 logits": (
        "row = np.asarray(logits[position], dtype=np.float32).copy()\n"
        "row[:n_special] = -np.inf\n"
        "probs = softmax(row)\n"
        "ids = np.argsort(-probs)[:k]\n"
        "top = (ids, probs[ids])"),
})
def check_top_k_fill(top_k_fill: Any) -> str:
    from dlcourse.mlm import top_k_fill as reference

    expect_callable(top_k_fill, name="top_k_fill")
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(6, 20)) * 2
    logits[2, 2] = 6.0  # the model "predicts" [MASK] at the masked position: it must never be offered
    want_ids, want_probs = reference(logits, 2, 5, 3)
    got = top_k_fill(logits.copy(), 2, 5, 3)
    expect(isinstance(got, tuple) and len(got) == 2, "`top_k_fill` should return a pair (ids, probabilities).")
    ids, probs = got
    expect_array(np.asarray(ids).astype(int), want_ids, name="the top-5 ids",
                 hint="Take the softmax over the VOCABULARY axis of logits[position], after setting the special "
                      "tokens' logits to -inf: [MASK] or [PAD] is never a useful fill-in.")
    expect_array(np.asarray(probs, dtype=np.float64), want_probs, name="the top-5 probabilities", rtol=1e-5, atol=1e-7,
                 hint="Exclude the special tokens BEFORE the softmax (logit -inf), so the probabilities of the real "
                      "characters sum to 1.")
    return f"top-5 ids {list(map(int, want_ids))} with probabilities summing to {want_probs.sum():.3f} of the mass."
