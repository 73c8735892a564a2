"""The lab 10 checks, called directly: they accept right answers and explain the typical wrong ones; and the lab's
sorter is the student's code (a wrong answer swapped in changes what it learns)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dlcourse.checks.lab10 import (check_feed_forward, check_held_out_accuracy, check_layer_norm, check_lr_factor,
                                   check_masked_accuracy, check_post_ln_block, check_pre_ln_block, check_sort_targets,
                                   check_sort_transformer, check_train_step)
from dlcourse.optim import warmup_cosine
from dlcourse.seqtasks import (N_DIGITS, VOCAB_SIZE, SortTransformer, evaluate, make_sort_batch, masked_token_accuracy,
                               sequence_accuracy, sort_train_step, train_sort_model)
from dlcourse.transformer import parts_feed_forward, post_ln_forward, pre_ln_forward


def _stub(*args):
    raise NotImplementedError("Exercise 10.x: replace this line with your code.")


def test_layer_norm() -> None:
    def right(x, gamma, beta, eps=1e-5):
        return gamma * (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) + beta

    def eps_outside(x, gamma, beta, eps=1e-5):
        return gamma * (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + eps) + beta

    def unbiased(x, gamma, beta, eps=1e-5):
        return gamma * (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, ddof=1, keepdims=True) + eps) + beta

    def hard_coded(x, gamma, beta, eps=1e-5):
        return right(x, gamma, beta, 1e-5)

    assert check_layer_norm.evaluate(right).passed
    assert check_layer_norm.evaluate(lambda x, g, b, e: right(x.astype(np.float32), g, b, e).astype(np.float32)).passed
    for wrong in (eps_outside, unbiased, hard_coded):
        result = check_layer_norm.evaluate(wrong)
        assert result.status == "failed" and "inside the square root" in result.hint
    assert "eps = 0.3" in check_layer_norm.evaluate(hard_coded).message
    assert check_layer_norm.evaluate(_stub).status == "not_attempted"
    assert "should be a function" in check_layer_norm.evaluate(np.zeros(3)).message
    assert check_layer_norm.evaluate(lambda x, g, b, e: "oops").status == "failed"


def test_feed_forward() -> None:
    assert check_feed_forward.evaluate(parts_feed_forward).passed
    relu = check_feed_forward.evaluate(lambda x, p: p.linear2(p.dropout(torch.relu(p.linear1(x)))))
    assert relu.status == "failed" and "GELU" in relu.message and "activation" in relu.hint
    no_dropout = check_feed_forward.evaluate(lambda x, p: p.linear2(p.activation(p.linear1(x))))
    assert no_dropout.status == "failed" and "train mode" in no_dropout.message
    assert check_feed_forward.evaluate(lambda x, p: p.linear1(x)).status == "failed"  # wrong shape, a sentence
    assert check_feed_forward.evaluate(_stub).status == "not_attempted"


def test_blocks() -> None:
    assert check_post_ln_block.evaluate(post_ln_forward).passed
    assert check_pre_ln_block.evaluate(pre_ln_forward).passed
    swapped = check_post_ln_block.evaluate(pre_ln_forward)
    assert swapped.status == "failed" and "Post-LN" in swapped.hint
    assert check_pre_ln_block.evaluate(post_ln_forward).status == "failed"
    no_mask = check_post_ln_block.evaluate(lambda x, parts, mask=None: post_ln_forward(x, parts))
    assert no_mask.status == "failed" and "real tokens" in no_mask.message

    def dropout_after_add(x, p, mask=None):
        a, _ = p.self_attn(x, mask=mask)
        x = p.norm1(p.dropout1(x + a))
        return p.norm2(x + p.dropout2(parts_feed_forward(x, p)))

    residual = check_post_ln_block.evaluate(dropout_after_add)
    assert residual.status == "failed" and "train mode" in residual.message and "never dropped" in residual.hint
    returns_numpy = check_pre_ln_block.evaluate(lambda x, parts, mask=None: pre_ln_forward(x, parts, mask).numpy())
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
    unmasked_numerator = check_masked_accuracy.evaluate(lambda l, t, m: float((l.argmax(-1) == t).sum() / m.sum()))
    assert unmasked_numerator.status == "failed", "PAD is an argmax at padded positions, so this over-counts"
    assert check_masked_accuracy.evaluate(_stub).status == "not_attempted"


def test_sort_transformer_and_train_step() -> None:
    assert check_sort_transformer.evaluate(SortTransformer).passed
    assert check_train_step.evaluate(sort_train_step).passed

    class NoPositions(SortTransformer):
        def forward(self, tokens, mask):
            x = self.token_embedding(tokens)
            for parts in self.blocks:
                x = (pre_ln_forward if self.norm_first else post_ln_forward)(x, parts, mask[:, None, None, :])
            return self.head(self.final_norm(x))

    no_positions = check_sort_transformer.evaluate(NoPositions)
    assert no_positions.status == "failed" and "position_embedding[:T]" in no_positions.hint

    class OtherNames(torch.nn.Module):
        def __init__(self, vocab_size, max_len, d_model, n_heads, n_layers, d_ff, n_classes, dropout=0.0,
                     norm_first=True):
            super().__init__()
            self.emb = torch.nn.Embedding(vocab_size, d_model)

    renamed = check_sort_transformer.evaluate(OtherNames)
    assert renamed.status == "failed" and "missing" in renamed.message and "token_embedding" in renamed.hint

    def no_zero_grad(model, optimizer, scheduler, tokens, targets, mask):
        loss = F.cross_entropy(model(tokens, mask)[mask], targets[mask])
        loss.backward()
        optimizer.step()
        scheduler.step()
        return loss.item()

    piled = check_train_step.evaluate(no_zero_grad)
    assert piled.status == "failed" and "pile up" in piled.hint
    assert check_train_step.evaluate(_stub).status == "not_attempted"


def test_lr_factor() -> None:
    import math

    assert check_lr_factor.evaluate(warmup_cosine).passed

    def from_zero(step, total, warmup):
        if step < warmup:
            return step / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))

    zero = check_lr_factor.evaluate(from_zero)
    assert zero.status == "failed" and "step 0 already learns" in zero.hint

    def no_zero_guard(step, total, warmup):
        return (step + 1) / warmup if step < warmup else from_zero(step, total, warmup)

    assert check_lr_factor.evaluate(no_zero_guard).passed, "warmup = 0 never reaches the division"
    hard_coded = check_lr_factor.evaluate(lambda step, total, warmup: warmup_cosine(step, 300, 50))
    assert hard_coded.status == "failed"
    assert check_lr_factor.evaluate(_stub).status == "not_attempted"


def _train(step, steps: int = 120) -> float:
    torch.manual_seed(0)
    model = SortTransformer(VOCAB_SIZE, 8, 32, 4, 1, 64, N_DIGITS)
    val = make_sort_batch(200, 3, 8, np.random.default_rng(1))
    train_sort_model(model, steps=steps, batch_size=32, min_len=3, max_len=8, lr=3e-3, warmup=10, seed=0,
                     progress=False, step=step)
    return evaluate(model, val)[0]


def test_the_trained_sorter_is_the_students() -> None:
    """train_sort_model trains with the step it is given: the registered wrong answer 'the scheduler never stepped'
    (the learning rate stays at the warm-up's first, tiny value) leaves the sorter far behind the right step."""
    def scheduler_never_stepped(model, optimizer, scheduler, tokens, targets, mask):
        loss = F.cross_entropy(model(tokens, mask)[mask], targets[mask])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    right = _train(sort_train_step)
    frozen = _train(scheduler_never_stepped)
    assert right > 0.5 and right - frozen > 0.2, (right, frozen)


def _per_batch_mean(model, batch, accuracy, batch_size):
    """The registered wrong answer 'averaged the per-batch accuracies' (everything else right)."""
    was_training = model.training
    model.eval()
    tokens, targets, mask = batch.tensors()
    token_accs, list_accs = [], []
    with torch.no_grad():
        for start in range(0, len(tokens), batch_size):
            t, y, m = tokens[start:start + batch_size], targets[start:start + batch_size], mask[start:start + batch_size]
            logits = model(t, m)
            token_accs.append(accuracy(logits, y, m))
            list_accs.append(sequence_accuracy(logits, y, m))
    model.train(was_training)
    return float(np.mean(token_accs)), float(np.mean(list_accs))


def _left_in_eval(model, batch, accuracy, batch_size):
    """The registered wrong answer 'left the model in eval mode'."""
    model.eval()
    return evaluate(model, batch, accuracy, batch_size)  # which restores the mode it found: eval


def test_held_out_accuracy() -> None:
    assert check_held_out_accuracy.evaluate(evaluate).passed
    assert check_held_out_accuracy.evaluate(_stub).status == "not_attempted"
    pooled = check_held_out_accuracy.evaluate(_per_batch_mean)
    assert pooled.status == "failed" and "token accuracy" in pooled.message and "last chunk" in pooled.hint
    assert "eval mode" in check_held_out_accuracy.evaluate(_left_in_eval).message

    def dropout_on(model, batch, accuracy, batch_size):
        tokens, targets, mask = batch.tensors()
        with torch.no_grad():
            logits = model(tokens, mask)
        return accuracy(logits, targets, mask), sequence_accuracy(logits, targets, mask)

    dropout = check_held_out_accuracy.evaluate(dropout_on)
    assert dropout.status == "failed" and "dropout" in dropout.message and "model.eval()" in dropout.hint
    one_number = check_held_out_accuracy.evaluate(lambda model, batch, accuracy, batch_size: 0.5)
    assert one_number.status == "failed" and "two numbers" in one_number.message
    ignored = check_held_out_accuracy.evaluate(lambda model, batch, accuracy, batch_size: evaluate(model, batch, accuracy))
    assert ignored.status == "failed" and "lists at once" in ignored.message


def _train_with(evaluator, dropout: float = 0.0) -> tuple[dict, SortTransformer]:
    torch.manual_seed(0)
    model = SortTransformer(VOCAB_SIZE, 8, 32, 4, 1, 64, N_DIGITS, dropout=dropout)
    val = make_sort_batch(203, 3, 8, np.random.default_rng(1))  # chunks of 64 leave 11
    history = train_sort_model(model, steps=30, batch_size=32, min_len=3, max_len=8, lr=3e-3, warmup=5, seed=0,
                               val_batch=val, eval_every=10, progress=False, accuracy=masked_token_accuracy,
                               evaluator=evaluator, eval_batch_size=64)
    return history, model


def test_the_held_out_numbers_are_the_students() -> None:
    """train_sort_model measures with the evaluation it is given: the per-batch mean records other held-out
    accuracies for the same training, and an evaluation that leaves the model in eval mode changes the training
    itself (dropout goes off after the first evaluation, so the weights end up different)."""
    right, right_model = _train_with(evaluate)
    mean, mean_model = _train_with(_per_batch_mean)
    assert all(torch.equal(p, q) for p, q in zip(right_model.parameters(), mean_model.parameters()))
    assert right["val_accuracy"] != mean["val_accuracy"], (right["val_accuracy"], mean["val_accuracy"])
    _, with_dropout = _train_with(evaluate, dropout=0.2)
    _, frozen_mode = _train_with(_left_in_eval, dropout=0.2)
    assert not frozen_mode.training and with_dropout.training
    gap = max((p - q).abs().max().item() for p, q in zip(with_dropout.parameters(), frozen_mode.parameters()))
    assert gap > 1e-3, gap
