"""Checks for lab 10's sorter: the encoder the student assembles from embeddings, positions and block parts
(10.7, compared with ``dlcourse.seqtasks.SortTransformer`` given the same weights), its training step (10.8,
compared step for step with ``sort_train_step``), the schedule (10.9) and the held-out evaluation (10.10, against
``dlcourse.seqtasks.evaluate`` on a recording stand-in model). Re-exported by ``dlcourse.checks.lab10``.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import numpy as np

from dlcourse.check import Mismatch, expect, expect_array, expect_callable, expect_number, exercise

# Sizes of the model the checks build: none equals or divides another on any axis the forward pass touches.
SIZES = {"vocab_size": 13, "max_len": 9, "d_model": 15, "n_heads": 3, "n_layers": 2, "d_ff": 23, "n_classes": 11}
LENGTHS = (7, 4)  # a padded batch with B = 2, T = 7 < max_len, so positions must be sliced to T


def _tokens(seed: int) -> tuple[Any, Any]:
    import torch

    g = torch.Generator().manual_seed(seed)
    t = max(LENGTHS)
    mask = torch.arange(t)[None, :] < torch.tensor(LENGTHS)[:, None]
    tokens = torch.randint(0, SIZES["vocab_size"], (len(LENGTHS), t), generator=g)
    return tokens, mask


def _build(cls: Any, norm_first: bool) -> Any:
    from torch import nn

    try:
        model = cls(**SIZES, dropout=0.0, norm_first=norm_first)
    except TypeError as exc:
        raise Mismatch(f"`SortTransformer(**sizes, dropout=0.0, norm_first={norm_first})` could not be built: {exc}.",
                       "Keep the signature given: __init__(self, vocab_size, max_len, d_model, n_heads, n_layers, "
                       "d_ff, n_classes, dropout=0.0, norm_first=True).") from None
    expect(isinstance(model, nn.Module), "`SortTransformer` should build an nn.Module.",
           "Start the class with `class SortTransformer(nn.Module):` and call super().__init__() first.")
    return model


_NAMES_HINT = ("Use the names the exercise gives: token_embedding (nn.Embedding), position_embedding (an "
               "nn.Parameter of shape (max_len, d_model)), blocks (an nn.ModuleList of block_parts(...)), final_norm "
               "(nn.LayerNorm when norm_first, else nn.Identity()) and head (nn.Linear to n_classes).")


@exercise("10.7", "The sorter: embeddings, positions, blocks, head", wrong_answers={
    "forgot the position embedding": [None, (
        "x = self.token_embedding(tokens)\n"
        "block = pre_ln_block if self.norm_first else post_ln_block\n"
        "for parts in self.blocks:\n"
        "    x = block(x, parts, mask[:, None, None, :])\n"
        "return self.head(self.final_norm(x))")],
    "padding mask not passed to the blocks": [None, (
        "x = self.token_embedding(tokens) + self.position_embedding[: tokens.shape[1]]\n"
        "block = pre_ln_block if self.norm_first else post_ln_block\n"
        "for parts in self.blocks:\n"
        "    x = block(x, parts, None)\n"
        "return self.head(self.final_norm(x))")],
    "always pre-LN, whatever norm_first says": [None, (
        "x = self.token_embedding(tokens) + self.position_embedding[: tokens.shape[1]]\n"
        "for parts in self.blocks:\n"
        "    x = pre_ln_block(x, parts, mask[:, None, None, :])\n"
        "return self.head(self.final_norm(x))")],
    "no final LayerNorm in the pre-LN model": [(
        "self.norm_first = norm_first\n"
        "self.token_embedding = nn.Embedding(vocab_size, d_model)\n"
        "self.position_embedding = nn.Parameter(torch.randn(max_len, d_model) * 0.02)\n"
        "self.blocks = nn.ModuleList(block_parts(d_model, n_heads, d_ff, dropout, activation='gelu')\n"
        "                            for _ in range(n_layers))\n"
        "self.final_norm = nn.Identity()\n"
        "self.head = nn.Linear(d_model, n_classes)"), None],
    "one block reused n_layers times": [None, (
        "x = self.token_embedding(tokens) + self.position_embedding[: tokens.shape[1]]\n"
        "block = pre_ln_block if self.norm_first else post_ln_block\n"
        "for _ in self.blocks:\n"
        "    x = block(x, self.blocks[0], mask[:, None, None, :])\n"
        "return self.head(self.final_norm(x))")],
}, accepted_answers={
    "an explicit if in the loop, the mask built once": [None, (
        "key_mask = mask[:, None, None, :]\n"
        "x = self.token_embedding(tokens) + self.position_embedding[: tokens.shape[1]][None]\n"
        "for parts in self.blocks:\n"
        "    if self.norm_first:\n"
        "        x = pre_ln_block(x, parts, key_mask)\n"
        "    else:\n"
        "        x = post_ln_block(x, parts, key_mask)\n"
        "return self.head(self.final_norm(x))")],
})
def check_sort_transformer(SortTransformer: Any) -> str:
    import torch

    from dlcourse.seqtasks import SortTransformer as Reference

    expect_callable(SortTransformer, name="SortTransformer")
    tokens, mask = _tokens(21)
    for norm_first in (True, False):
        label = "pre-LN" if norm_first else "post-LN"
        torch.manual_seed(22)
        model, reference = _build(SortTransformer, norm_first), Reference(**SIZES, dropout=0.0, norm_first=norm_first)
        want_shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
        got_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        missing, extra = sorted(set(want_shapes) - set(got_shapes)), sorted(set(got_shapes) - set(want_shapes))
        expect(not missing and not extra, f"The {label} model's parameters do not have the expected names: "
               f"missing {missing[:4]}, unexpected {extra[:4]}.", _NAMES_HINT)
        wrong = [k for k in want_shapes if want_shapes[k] != got_shapes[k]]
        expect(not wrong, f"In the {label} model, `{wrong[0] if wrong else ''}` has shape "
               f"{got_shapes.get(wrong[0]) if wrong else ''}, expected {want_shapes.get(wrong[0]) if wrong else ''}.",
               _NAMES_HINT)
        with torch.no_grad():  # random weights everywhere (LayerNorm γ and β too, positions large) so nothing hides
            g = torch.Generator().manual_seed(23)
            for p in reference.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (0.3 if p.ndim == 1 else 0.0))
        model.load_state_dict(reference.state_dict())
        model.eval(), reference.eval()
        with torch.no_grad():
            want = reference(tokens, mask)
            got = model(tokens.clone(), mask.clone())
        expect(isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(want.shape),
               f"The {label} model returned {type(got).__name__} of shape {tuple(getattr(got, 'shape', ()))}, expected "
               f"scores of shape {tuple(want.shape)} (B, T, n_classes).",
               "forward(tokens, mask) returns self.head(...) at every position.")
        real = mask[:, :, None].expand_as(want)
        expect_array(got[real], want[real], name=f"the {label} model's scores at the real positions", rtol=1e-4,
                     atol=1e-5, hint="x = token_embedding(tokens) + position_embedding[:T]; then every block in "
                     "order, pre_ln_block when norm_first else post_ln_block, each with the padding mask as "
                     "mask[:, None, None, :] (True = may attend); then final_norm and head.")
    return (f"Your SortTransformer, built at vocab {SIZES['vocab_size']}, max_len {SIZES['max_len']}, d_model "
            f"{SIZES['d_model']}, {SIZES['n_heads']} heads, {SIZES['n_layers']} blocks, d_ff {SIZES['d_ff']}, "
            f"{SIZES['n_classes']} classes, matches the reference given the same weights, pre-LN and post-LN.")


# ------------------------------------------------------------------------------------------ 10.8
def _step_setup(seed: int) -> tuple[Any, Any, Any]:
    import torch

    from dlcourse.optim import warmup_cosine
    from dlcourse.seqtasks import SortTransformer as Reference

    torch.manual_seed(seed)
    model = Reference(**SIZES, dropout=0.0, norm_first=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, 7, 3))
    return model, optimizer, scheduler


def _step_batch(i: int) -> tuple[Any, Any, Any]:
    import torch

    tokens, mask = _tokens(40 + i)
    targets = torch.where(mask, tokens % SIZES["n_classes"], torch.full_like(tokens, SIZES["n_classes"]))
    return tokens, targets, mask  # targets hold n_classes (out of range) on padding: a loss there raises


_STEP_HINT = ("One step: logits = model(tokens, mask); loss = F.cross_entropy(logits[mask], targets[mask]) (real "
              "positions only); optimizer.zero_grad(); loss.backward(); optimizer.step(); scheduler.step(); "
              "return loss.item().")


@exercise("10.8", "One training step", wrong_answers={
    "no zero_grad (gradients pile up)": (
        "logits = model(tokens, mask)\nloss = F.cross_entropy(logits[mask], targets[mask])\n"
        "loss.backward()\noptimizer.step()\nscheduler.step()\nreturn loss.item()"),
    "the scheduler never stepped": (
        "logits = model(tokens, mask)\nloss = F.cross_entropy(logits[mask], targets[mask])\n"
        "optimizer.zero_grad()\nloss.backward()\noptimizer.step()\nreturn loss.item()"),
    "zero_grad between backward and step (no update)": (
        "logits = model(tokens, mask)\nloss = F.cross_entropy(logits[mask], targets[mask])\n"
        "loss.backward()\noptimizer.zero_grad()\noptimizer.step()\nscheduler.step()\nreturn loss.item()"),
    "the loss summed instead of averaged": (
        "logits = model(tokens, mask)\nloss = F.cross_entropy(logits[mask], targets[mask], reduction='sum')\n"
        "optimizer.zero_grad()\nloss.backward()\noptimizer.step()\nscheduler.step()\nreturn loss.item()"),
    "the loss on every position, padding too": (
        "logits = model(tokens, mask)\n"
        "loss = F.cross_entropy(logits.flatten(0, 1), targets.clamp(max=logits.shape[-1] - 1).flatten())\n"
        "optimizer.zero_grad()\nloss.backward()\noptimizer.step()\nscheduler.step()\nreturn loss.item()"),
}, accepted_answers={
    "ignore_index on the padded targets": (
        "logits = model(tokens, mask)\n"
        "loss = F.cross_entropy(logits.flatten(0, 1), targets.masked_fill(~mask, -100).flatten(), ignore_index=-100)\n"
        "optimizer.zero_grad(set_to_none=False)\nloss.backward()\noptimizer.step()\nscheduler.step()\n"
        "return float(loss)"),
})
def check_train_step(train_step: Any) -> str:
    import torch

    from dlcourse.seqtasks import sort_train_step

    expect_callable(train_step, name="train_step")
    mine, theirs = _step_setup(30), _step_setup(30)
    for i in range(3):
        tokens, targets, mask = _step_batch(i)
        want = sort_train_step(*mine, tokens, targets, mask)
        got = train_step(*theirs, tokens.clone(), targets.clone(), mask.clone())
        expect_number(got, want, name=f"the loss train_step returned at step {i + 1}", rtol=1e-5, atol=1e-6,
                      hint=_STEP_HINT + " The loss averages over the real positions only, and the gradients are "
                      "zeroed before backward (or they pile up across steps and the next loss differs).")
    want_lr, got_lr = mine[2].get_last_lr()[0], theirs[2].get_last_lr()[0]
    expect(abs(want_lr - got_lr) < 1e-12, f"After 3 steps the learning rate is {got_lr:.4g}, expected {want_lr:.4g}.",
           "Call scheduler.step() once per training step, after optimizer.step().")
    for (name, p), q in zip(mine[0].named_parameters(), theirs[0].parameters()):
        expect_array(q.detach(), p.detach(), name=f"`{name}` after 3 steps", rtol=1e-4, atol=1e-6, hint=_STEP_HINT +
                     " Zero the gradients before backward (or they pile up across steps), and step the optimizer "
                     "after backward.")
    return "Three steps of your train_step give the reference's losses, learning rates and weights."


# ------------------------------------------------------------------------------------------ 10.9
_SCHEDULE_CASES = ((0, 37, 6), (2, 37, 6), (5, 37, 6), (6, 37, 6), (20, 37, 6), (36, 37, 6), (0, 23, 0), (11, 23, 0),
                   (22, 23, 0), (0, 9, 1), (4, 9, 1))
_SCHEDULE_HINT = ("Warm-up: (step + 1) / warmup for step < warmup, so step 0 already learns and step warmup − 1 "
                  "reaches 1. Then cosine: 0.5 · (1 + cos(π · (step − warmup) / (total − warmup))), 1 right after the "
                  "warm-up and 0 at step = total. With warmup = 0 there is no warm-up: the cosine starts at step 0.")


@exercise("10.9", "Warm-up, then cosine decay", wrong_answers={
    "warm-up starts at 0 (step 0 learns nothing)": (
        "if step < warmup:\n    return step / warmup\n"
        "return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))"),
    "cosine over the whole run, warm-up steps included": (
        "if step < warmup:\n    return (step + 1) / warmup\n"
        "return 0.5 * (1 + math.cos(math.pi * step / total))"),
    "linear decay instead of cosine": (
        "if step < warmup:\n    return (step + 1) / warmup\n"
        "return 1 - (step - warmup) / (total - warmup)"),
    "warm-up and decay hard-coded to the lab's numbers": (
        "if step < 50:\n    return (step + 1) / 50\n"
        "return 0.5 * (1 + math.cos(math.pi * (step - 50) / (300 - 50)))"),
}, accepted_answers={
    "numpy, max() guarding the division": (
        "if step < warmup:\n    return float((step + 1) / warmup)\n"
        "return float(0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, total - warmup))))"),
})
def check_lr_factor(lr_factor: Any) -> str:
    from dlcourse.optim import warmup_cosine

    expect_callable(lr_factor, name="lr_factor")
    for step, total, warmup in _SCHEDULE_CASES:
        expect_number(lr_factor(step, total, warmup), warmup_cosine(step, total, warmup),
                      name=f"lr_factor({step}, total={total}, warmup={warmup})", rtol=1e-6, atol=1e-9,
                      hint=_SCHEDULE_HINT)
    return (f"Your schedule matches linear warm-up then cosine decay at {len(_SCHEDULE_CASES)} points, with warm-ups of "
            f"6, 1 and 0 steps.")


# ------------------------------------------------------------------------------------------ 10.10
EVAL_LISTS, EVAL_MAX_LEN = 31, 9
EVAL_CASES = ((7, True), (12, False))  # (batch_size, model in train mode): chunks of 7 leave 3 lists, of 12 leave 7
_HELD_OUT = (  # the solution; the wrong answers below are small edits of it
    "was_training = model.training\n"
    "model.eval()\n"
    "device = next(model.parameters()).device\n"
    "tokens, targets, mask = batch.tensors(device)\n"
    "token_hits, list_hits = 0.0, 0.0\n"
    "with torch.no_grad():\n"
    "    for start in range(0, len(tokens), batch_size):\n"
    "        part = slice(start, start + batch_size)\n"
    "        t, y, m = tokens[part], targets[part], mask[part]\n"
    "        logits = model(t, m)\n"
    "        token_hits += accuracy(logits, y, m) * int(m.sum())\n"
    "        list_hits += sequence_accuracy(logits, y, m) * len(t)\n"
    "model.train(was_training)\n"
    "return token_hits / int(mask.sum()), list_hits / len(tokens)")


def _held_out(*edits: tuple[str, str]) -> str:
    for old, new in edits:
        assert old in _HELD_OUT, old
    return functools.reduce(lambda code, edit: code.replace(*edit), edits, _HELD_OUT)


def _without_no_grad() -> str:
    head, loop = _HELD_OUT.split("with torch.no_grad():\n")
    body, tail = loop.split("model.train(")
    return head + "".join(line[4:] + "\n" for line in body.splitlines()) + "model.train(" + tail


def _recording_sorter() -> Any:
    """A stand-in model with dropout: it scores the sorted digit a little above fixed noise (one noise vector per
    token and position), so about half of the real positions are right, differently in every list; it records each
    call's number of lists, whether it was in train mode and whether gradients were on."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from dlcourse.seqtasks import PAD, VOCAB_SIZE

    class RecordingSorter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            g = torch.Generator().manual_seed(50)  # its own generator: the notebook's random state stays as it was
            self.noise = nn.Embedding.from_pretrained(torch.randn(VOCAB_SIZE * EVAL_MAX_LEN, VOCAB_SIZE, generator=g),
                                                      freeze=False)
            self.dropout = nn.Dropout(0.5)
            self.calls: list[tuple[int, bool, bool]] = []

        def forward(self, tokens: Any, mask: Any) -> Any:
            self.calls.append((len(tokens), self.training, torch.is_grad_enabled()))
            sorted_digits = torch.sort(torch.where(mask, tokens, PAD), dim=1).values
            where = tokens * EVAL_MAX_LEN + torch.arange(tokens.shape[1], device=tokens.device)
            return 1.5 * F.one_hot(sorted_digits, VOCAB_SIZE).float() + self.dropout(self.noise(where))

    return RecordingSorter()


_POOL_HINT = ("Each chunk's accuracy is a share of that chunk's real positions: multiply it by the chunk's number of "
              "real positions (int(m.sum())) to get its right tokens, add those up, and divide by the real positions "
              "of the whole batch (mask.sum()). A plain mean of the chunks' accuracies gives the small last chunk as "
              "much weight as a full one, and padded positions are not tokens. The sequence accuracy pools the same "
              "way, weighted by each chunk's number of lists.")
_MODE_HINT = ("Remember model.training, call model.eval() before the loop and model.train(was_training) after it: "
              "the training loop calls this every EVAL_EVERY steps and goes on training in the mode it was in.")


@exercise("10.10", "The held-out evaluation", wrong_answers={
    "forgot eval mode (dropout stays on)": _held_out(("model.eval()\n", "")),
    "no torch.no_grad()": _without_no_grad(),
    "the whole batch at once (batch_size ignored)": _held_out(("batch_size", "len(tokens)")),
    "the batch size hard-coded to EVAL_BATCH": _held_out(("batch_size", "128")),
    "the last, smaller batch dropped": _held_out(("range(0, len(tokens), batch_size)",
                                                  "range(0, len(tokens) - batch_size + 1, batch_size)")),
    "averaged the per-batch accuracies": _held_out(
        ("token_hits, list_hits = 0.0, 0.0", "token_accs, list_accs = [], []"),
        ("token_hits += accuracy(logits, y, m) * int(m.sum())", "token_accs.append(accuracy(logits, y, m))"),
        ("list_hits += sequence_accuracy(logits, y, m) * len(t)", "list_accs.append(sequence_accuracy(logits, y, m))"),
        ("return token_hits / int(mask.sum()), list_hits / len(tokens)",
         "return float(np.mean(token_accs)), float(np.mean(list_accs))")),
    "each batch weighted by its lists, not its real positions": _held_out(
        ("accuracy(logits, y, m) * int(m.sum())", "accuracy(logits, y, m) * len(t)"),
        ("token_hits / int(mask.sum())", "token_hits / len(tokens)")),
    "divided by every position, padding included": _held_out(("hits / int(mask.sum())", "hits / mask.numel()")),
    "left the model in eval mode": _held_out(("model.train(was_training)\n", "")),
    "model.train() at the end, whatever the mode was": _held_out(("model.train(was_training)", "model.train()")),
}, accepted_answers={
    "NumPy slices, counting right tokens and lists": (
        "model_was_training = model.training\nmodel.eval()\ndevice = next(model.parameters()).device\n"
        "token_hits = list_hits = 0\n"
        "with torch.no_grad():\n"
        "    for start in range(0, len(batch.tokens), batch_size):\n"
        "        part = slice(start, start + batch_size)\n"
        "        t, y, m = (torch.from_numpy(a[part]).to(device) for a in (batch.tokens, batch.targets, batch.mask))\n"
        "        right = (model(t, m).argmax(-1) == y) | ~m\n"
        "        token_hits += int((right & m).sum())\n"
        "        list_hits += int(right.all(1).sum())\n"
        "model.train(model_was_training)\n"
        "return token_hits / int(batch.mask.sum()), list_hits / len(batch.tokens)"),
    "torch.split, inference_mode and try/finally": (
        "was_training = model.training\nmodel.eval()\ntokens, targets, mask = batch.tensors(next(model.parameters()).device)\n"
        "token_hits = list_hits = 0.0\n"
        "try:\n"
        "    with torch.inference_mode():\n"
        "        for t, y, m in zip(tokens.split(batch_size), targets.split(batch_size), mask.split(batch_size)):\n"
        "            logits = model(t, m)\n"
        "            token_hits += float(accuracy(logits, y, m)) * float(m.sum())\n"
        "            list_hits += float(sequence_accuracy(logits, y, m)) * len(t)\n"
        "finally:\n"
        "    model.train(was_training)\n"
        "return token_hits / float(mask.sum()), list_hits / len(tokens)"),
})
def check_held_out_accuracy(held_out_accuracy: Any) -> str:
    from dlcourse.seqtasks import evaluate, make_sort_batch, masked_token_accuracy

    expect_callable(held_out_accuracy, name="held_out_accuracy")
    batch = make_sort_batch(EVAL_LISTS, 2, EVAL_MAX_LEN, np.random.default_rng(51))
    for batch_size, training in EVAL_CASES:
        model = _recording_sorter().train(training)
        want = evaluate(copy.deepcopy(model), batch, masked_token_accuracy, batch_size)
        name = f"held_out_accuracy(model, batch, accuracy, batch_size={batch_size})"
        got = held_out_accuracy(model, copy.deepcopy(batch), masked_token_accuracy, batch_size)
        expect(isinstance(got, (tuple, list)) and len(got) == 2,
               f"`{name}` should return two numbers, (token accuracy, sequence accuracy), but it returned "
               f"{type(got).__name__}{f' of length {len(got)}' if isinstance(got, (tuple, list)) else ''}.",
               "End with `return token_accuracy, sequence_accuracy`.")
        sizes = [n for n, _, _ in model.calls] or [0]
        expect(not any(train for _, train, _ in model.calls),
               f"`{name}` ran the model in train mode (the model came in {'train' if training else 'eval'} mode), so "
               "dropout was still on and the numbers measure a random thinned copy of the model.",
               "Call model.eval() before the loop. " + _MODE_HINT)
        expect(not any(grad for _, _, grad in model.calls), f"`{name}` ran the model with gradients on.",
               "Wrap the loop in `with torch.no_grad():`: evaluation back-propagates nothing, so there is no reason "
               "to keep every activation for a backward pass (on a large held-out set it runs out of memory).")
        expect(max(sizes) <= batch_size, f"`{name}` called the model on {max(sizes)} lists at once.",
               "Feed the lists batch_size at a time (the batch_size you are given): tokens[start:start + batch_size] "
               "for start in range(0, len(tokens), batch_size).")
        expect(sum(sizes) >= EVAL_LISTS, f"`{name}` ran the model on {sum(sizes)} of the {EVAL_LISTS} lists.",
               f"range(0, len(tokens), batch_size) also reaches the last, smaller chunk ({EVAL_LISTS % batch_size} "
               f"lists here): every held-out list counts.")
        expect_number(got[0], want[0], name=f"the token accuracy from {name}", rtol=1e-6, atol=1e-9, hint=_POOL_HINT)
        expect_number(got[1], want[1], name=f"the sequence accuracy from {name}", rtol=1e-6, atol=1e-9,
                      hint=_POOL_HINT)
        mode = {True: "train", False: "eval"}
        expect(model.training == training, f"After `{name}` the model is in {mode[model.training]} mode; it came in "
               f"{mode[training]} mode.", _MODE_HINT)
    return (f"Your evaluation pools chunks of {' and '.join(str(b) for b, _ in EVAL_CASES)} of {EVAL_LISTS} lists by "
            "their real positions and lists, in eval mode without gradients, and hands the model back in the mode it "
            "came in.")
