"""The lab 11 checks, called directly: they accept the library's reference answers and explain wrong ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlcourse import mlm
from dlcourse.checks.lab11 import (check_bert_mask, check_bigram_fill, check_evaluate_mlm, check_masked_lm,
                                   check_masked_lm_loss, check_split_and_vocab, check_top_k_fill, check_train_step)
from dlcourse.functions import log_softmax, softmax
from dlcourse.mlm_model import BertConfig, TinyBert, TrainConfig, evaluate_mlm, masked_lm_loss, train_mlm, train_step
from dlcourse.notebooks import find_exercises, read, replace_regions

SOLUTION = Path(__file__).resolve().parents[2] / "solutions" / "11_masked_language_model.ipynb"

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

    def global_rng(tokens, generator, **sizes):
        return mlm.bert_mask(tokens, torch.Generator().manual_seed(int(torch.randint(0, 10**6, ()))), **sizes)

    def own_seed(tokens, generator, **sizes):
        return mlm.bert_mask(tokens, torch.Generator().manual_seed(0), **sizes)

    assert "80% / 10% / 10%" in check_bert_mask.evaluate(all_mask).message
    assert "POSITIONS" in check_bert_mask.evaluate(vocabulary).hint
    assert "100.0%" in check_bert_mask.evaluate(every_label).message
    assert "same `generator` seed gave two different" in check_bert_mask.evaluate(global_rng).message
    assert "different `generator` seeds gave the same" in check_bert_mask.evaluate(own_seed).message
    # BERT's recipe (random tokens from the whole vocabulary, specials included) is accepted and named
    whole = check_bert_mask.evaluate(lambda t, g, **s: mlm.bert_mask(t, g, **{**s, "n_special": 0}))
    assert whole.passed and "whole vocabulary (BERT's recipe)" in whole.message
    assert "this lab's choice" in check_bert_mask.evaluate(mlm.bert_mask).message


def test_bert_mask_is_repeatable_with_the_same_generator_seed() -> None:
    tokens = torch.randint(3, 30, (7, 50), generator=torch.Generator().manual_seed(1))
    sizes = {"mask_id": 2, "n_special": 3, "vocab_size": 30}
    first = mlm.bert_mask(tokens, torch.Generator().manual_seed(4), **sizes)
    torch.manual_seed(123)  # the global generator does not matter
    again = mlm.bert_mask(tokens, torch.Generator().manual_seed(4), **sizes)
    other = mlm.bert_mask(tokens, torch.Generator().manual_seed(5), **sizes)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[1], other[1])


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


def test_the_labs_bigram_baseline_is_the_students_fill() -> None:
    text = "to be or not to be, that is the question: whether 'tis nobler in the mind to suffer " * 3
    tokenizer = mlm.CharTokenizer(mlm.build_vocab(text))
    ids = torch.tensor(tokenizer.encode(text))
    held_out = mlm.make_masked_set(ids[:150], tokenizer, 13, seed=5)
    train_ids = ids.numpy()
    library = mlm.baseline_scores(held_out, train_ids, tokenizer, k=0.5)
    yours = mlm.baseline_scores(held_out, train_ids, tokenizer, k=0.5, fill=mlm.bigram_fill_log_probs)
    np.testing.assert_allclose(yours["bigram (both sides)"], library["bigram (both sides)"], rtol=1e-12)

    def left_only(counts, left, right, k):  # a wrong answer: ignores the right neighbour
        return np.log((counts[left] + k) / (counts[left].sum() + k * counts.shape[0]))

    wrong = mlm.baseline_scores(held_out, train_ids, tokenizer, k=0.5, fill=left_only)
    assert wrong["bigram (both sides)"][0] > library["bigram (both sides)"][0] + 0.05
    assert wrong["unigram"] == library["unigram"]


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


def _lab_code(exercise_id: str, code=None) -> dict:
    """Run the lab's exercise cell (its solution, or ``code`` in its solution regions); return its namespace."""
    from torch import nn

    from dlcourse.transformer import EncoderBlock

    nb = read(SOLUTION)
    cell = next(nb.cells[e.exercise_index] for e in find_exercises(nb) if e.id == exercise_id)
    namespace = {"torch": torch, "nn": nn, "F": F, "np": np, "mlm": mlm, "EncoderBlock": EncoderBlock,
                 "BertConfig": BertConfig, "masked_lm_loss": masked_lm_loss}
    exec(cell.source if code is None else replace_regions(cell.source, code, exercise_id), namespace)
    return namespace


def test_the_lab_model_and_step_pass_and_the_library_step_agrees() -> None:
    assert check_masked_lm.evaluate(_lab_code("11.5")["MaskedLM"]).passed
    assert check_train_step.evaluate(_lab_code("11.6")["train_step"]).passed
    assert check_train_step.evaluate(train_step).passed
    assert check_masked_lm.evaluate(TinyBert).status == "failed"  # its parameters live under `encoder.`
    assert check_masked_lm.evaluate(lambda config: None).status == "failed"
    assert "should return the loss as a number" in check_train_step.evaluate(lambda *a: "done").message


def test_a_wrong_answer_changes_the_trained_model() -> None:
    """The lab trains the student's model and step: a registered wrong answer moves the held-out loss."""
    text = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
            "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n") * 30
    tok = mlm.CharTokenizer.from_text(text)
    ids = torch.tensor(tok.encode(text))
    held = mlm.make_masked_set(ids, tok, 16, n_windows=60)
    config = BertConfig(tok.vocab_size, max_len=16, d_model=32, n_heads=2, n_layers=1, d_ff=64, dropout=0.0)
    training = TrainConfig(steps=300, batch_size=32, lr=3e-3, warmup=10)
    unigram = mlm.baseline_scores(held, ids.numpy(), tok)["unigram"][0]

    def trained(step_code=None) -> float:
        torch.manual_seed(0)
        model = _lab_code("11.5")["MaskedLM"](config)
        step = _lab_code("11.6", step_code)["train_step"]
        train_mlm(model, ids, tok, training, progress=False, step=step)
        return evaluate_mlm(model, held)[0]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small model: one thread is as fast, and parallel test workers do not compete
    try:
        right = trained()
        wrong = trained(check_train_step.wrong_answers["loss over every position (ignored ones scored as token 0)"])
    finally:
        torch.set_num_threads(threads)
    assert right < unigram - 0.2  # the lab's own model and step learn (2.35 vs 2.82 nats when written)
    assert wrong > unigram > right  # scoring the unselected positions as [PAD] trains a worse model (3.79 nats)


def test_evaluate_mlm_accepts_the_reference_the_solution_and_the_alternatives_and_names_the_mistakes() -> None:
    assert check_evaluate_mlm.evaluate(evaluate_mlm).passed
    assert check_evaluate_mlm.evaluate(_lab_code("11.7")["evaluate_mlm"]).passed
    assert check_evaluate_mlm.evaluate(None).status == "not_attempted"

    def stub(model, masked, batch_size=256):
        raise NotImplementedError("Exercise 11.7: replace this line with your code.")

    assert check_evaluate_mlm.evaluate(stub).status == "not_attempted"
    for label, code in check_evaluate_mlm.accepted_answers.items():
        assert check_evaluate_mlm.evaluate(_lab_code("11.7", code)["evaluate_mlm"]).passed, label
    verdicts = {label: check_evaluate_mlm.evaluate(_lab_code("11.7", code)["evaluate_mlm"])
                for label, code in check_evaluate_mlm.wrong_answers.items()}
    assert all(v.status == "failed" and v.message and v.hint for v in verdicts.values()), verdicts
    assert "dropout was on" in verdicts["training mode left on (no model.eval())"].message
    assert "torch.no_grad()" in verdicts["gradients tracked (no torch.no_grad())"].hint
    assert "model.train(was_training)" in verdicts["model.train() at the end, whatever the mode was"].hint
    assert "divide ONCE" in verdicts["mean of the per-batch means"].hint
    assert "scored 18 windows; the set has 23" in verdicts["the last, shorter batch left out"].message
    assert "`batch_size` is 6" in verdicts["the whole set in one batch (batch_size ignored)"].message
    assert "pair of numbers" in check_evaluate_mlm.evaluate(lambda model, masked, batch_size: 1.5).message


def test_the_lab_measures_and_trains_with_the_students_evaluation() -> None:
    """The curve and the headline loss come from the student's evaluate_mlm: a wrong answer changes them."""
    text = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
            "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n") * 30
    tok = mlm.CharTokenizer.from_text(text)
    ids = torch.tensor(tok.encode(text))
    held = mlm.make_masked_set(ids, tok, 16)  # about 300 windows: batches of 256 and a short last one
    curve = mlm.MaskedSet(held.inputs[:40], held.labels[:40])
    config = BertConfig(tok.vocab_size, max_len=16, d_model=32, n_heads=2, n_layers=1, d_ff=64, dropout=0.3)
    training = TrainConfig(steps=40, batch_size=32, lr=3e-3, warmup=5, eval_every=10)
    yours = _lab_code("11.7")["evaluate_mlm"]
    wrong = check_evaluate_mlm.wrong_answers

    def trained(evaluate=None):
        torch.manual_seed(0)
        model = TinyBert(config)
        extra = {} if evaluate is None else {"evaluate": evaluate}
        history = train_mlm(model, ids, tok, training, val_set=curve, progress=False, **extra)
        return model, history

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, library = trained()
        _, mine = trained(yours)
        _, stuck = trained(_lab_code("11.7", wrong["model left in evaluation mode afterwards"])["evaluate_mlm"])
        headline = yours(model, held)
        batch_means = _lab_code("11.7", wrong["mean of the per-batch means"])["evaluate_mlm"](model, held)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(mine.val_loss, library.val_loss, rtol=1e-6)  # the solution is the library's measure
    np.testing.assert_allclose(headline, evaluate_mlm(model, held), rtol=1e-5)
    # left in evaluation mode, the model trains on without dropout after the first evaluation: another model
    assert abs(stuck.val_loss[-1] - library.val_loss[-1]) > 1e-3
    assert abs(batch_means[0] - headline[0]) > 1e-4  # the short last batch weighs as much as a full one

