"""Checks for lab 11's model (11.5: the tiny BERT the lab trains) and its training step (11.6).

The model check builds the student's class at sizes unlike the lab's, gives it the parameter values of a reference
``TinyBert`` whose every parameter (LayerNorm scales, biases included) is randomised, and compares what the two
compute: logits in train and eval mode and the gradient reaching the tied embedding. The step check runs the
student's step twice on a small model of its own with SGD and compares the loss it returns and the parameters after
each step with a reference step; the common mistakes (no zero_grad, no clipping, a typed-in max_norm) are named.
torch is imported inside the checks (a light interpreter imports this module).
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from dlcourse.check import expect, expect_array, expect_callable, expect_number, exercise

IGNORE = -100

_INIT = ("d = config.d_model\n"
         "self.token_embedding = nn.Embedding(config.vocab_size, d)\n"
         "self.position_embedding = nn.Parameter(torch.randn(config.max_len, d) * 0.02)\n"
         "self.blocks = nn.ModuleList(\n"
         "    EncoderBlock(d, config.n_heads, config.d_ff, config.dropout, norm_first={norm_first}, activation='gelu')\n"
         "    for _ in range({layers}))\n"
         "self.final_norm = nn.LayerNorm(d)\n"
         "self.dense = nn.Linear(d, d)\n"
         "self.norm = nn.LayerNorm(d)\n"
         "self.bias = nn.Parameter(torch.zeros(config.vocab_size))")
_FORWARD = ("x = self.embed(tokens)\n"
            "for block in self.blocks:\n"
            "    x = block(x)\n"
            "x = {final}\n"
            "h = self.norm({act}(self.dense(x)))\n"
            "logits = {out}")


def _init(norm_first: str = "True", layers: str = "config.n_layers", extra: str = "") -> str:
    return _INIT.format(norm_first=norm_first, layers=layers) + extra


def _forward(final: str = "self.final_norm(x)", act: str = "F.gelu",
             out: str = "h @ self.token_embedding.weight.T + self.bias") -> str:
    return _FORWARD.format(final=final, act=act, out=out)


_EMBED = "return self.token_embedding(tokens) + self.position_embedding[: tokens.shape[1]]"


def _torch():
    import torch

    return torch


# The reference's parameter names, as the lab's class names them (TinyBert keeps the body under `encoder.`).
_HINTS = {
    "token_embedding": "`self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)`",
    "position_embedding": "learned positions: `self.position_embedding = nn.Parameter(torch.randn(config.max_len, "
                          "config.d_model) * 0.02)`",
    "blocks": "`self.blocks = nn.ModuleList(EncoderBlock(...) for _ in range(config.n_layers))`",
    "final_norm": "`self.final_norm = nn.LayerNorm(config.d_model)` after the last pre-LN block",
    "dense": "the head's `self.dense = nn.Linear(config.d_model, config.d_model)`",
    "norm": "the head's `self.norm = nn.LayerNorm(config.d_model)`",
    "bias": "the output bias `self.bias = nn.Parameter(torch.zeros(config.vocab_size))`",
}


def _load_reference_values(model: Any, reference: Any) -> None:
    """Copy the reference's parameter values into the student's model, matched by name; a sentence on mismatch."""
    torch = _torch()
    wanted = {name.removeprefix("encoder."): p for name, p in reference.named_parameters()}
    names: dict[int, list[str]] = {}
    params: dict[int, Any] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
        params[id(p)] = p
    found: set[str] = set()
    vocab, d = reference.encoder.token_embedding.weight.shape
    for key, p in params.items():
        match = [n for n in names[key] if n in wanted]
        if not match:
            extra = names[key][0]
            expect(tuple(p.shape) != (vocab, d) and tuple(p.shape) != (d, vocab),
                   f"Your model has its own output matrix `{extra}` of shape {tuple(p.shape)}.",
                   "Tie the output layer to the token embedding: logits = h @ self.token_embedding.weight.T + self.bias "
                   "(the same Parameter, not a copy).")
            expect(False, f"Your model has a parameter `{extra}` of shape {tuple(p.shape)} that the tiny BERT does not "
                          "have.", "Build exactly the pieces the exercise lists, with the names it gives.")
        name = match[0]
        want = wanted[name]
        expect(tuple(p.shape) == tuple(want.shape),
               f"`{name}` has shape {tuple(p.shape)}; for this configuration it should be {tuple(want.shape)}.",
               "Take every size from `config` (vocab_size, max_len, d_model, n_heads, n_layers, d_ff): the check "
               "builds your class at sizes unlike the lab's.")
        with torch.no_grad():
            p.copy_(want)
        found.update(match)
    missing = sorted(set(wanted) - found)
    if missing:
        top = missing[0].split(".")[0]
        expect(False, f"Your model has no parameter `{missing[0]}`"
                      f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}.",
               f"It needs {_HINTS.get(top, 'every piece the exercise lists')}, built from "
               "dlcourse.transformer.EncoderBlock where it is a block.")


# ------------------------------------------------------------------------------------------- 11.5
@exercise("11.5", "The tiny BERT: embeddings, encoder blocks, a tied MLM head", wrong_answers={
    "a separate (untied) output layer": [
        _init(extra="\nself.decoder = nn.Linear(d, config.vocab_size, bias=False)"), None,
        _forward(out="self.decoder(h) + self.bias")],
    "positions never added": [None, "return self.token_embedding(tokens)", None],
    "all max_len positions added (fails on a shorter input)": [
        None, "return self.token_embedding(tokens) + self.position_embedding", None],
    "post-LN blocks (norm_first=False)": [_init(norm_first="False"), None, None],
    "final LayerNorm left out": [None, None, _forward(final="x")],
    "head without its GELU": [None, None, _forward(act="")],
    "output bias left out": [None, None, _forward(out="h @ self.token_embedding.weight.T")],
    "two blocks typed in": [_init(layers="2"), None, None],
    "tied through a detached copy (no gradient reaches the embedding from the output)": [
        None, None, _forward(out="h @ self.token_embedding.weight.detach().T + self.bias")],
}, accepted_answers={
    "a decoder Linear that shares the embedding's Parameter": [
        _init(extra="\nself.decoder = nn.Linear(d, config.vocab_size, bias=False)\n"
                    "self.decoder.weight = self.token_embedding.weight"), None,
        _forward(out="self.decoder(h) + self.bias")],
    "F.linear with the embedding weight": [None, None, _forward(out="F.linear(h, self.token_embedding.weight, self.bias)")],
})
def check_masked_lm(MaskedLM: Any) -> str:
    torch = _torch()
    from dlcourse.mlm_model import BertConfig, TinyBert

    expect(inspect.isclass(MaskedLM) and issubclass(MaskedLM, torch.nn.Module),
           "`MaskedLM` should be a class derived from torch.nn.Module.")
    config = BertConfig(vocab_size=23, max_len=11, d_model=24, n_heads=3, n_layers=4, d_ff=40, dropout=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        model = MaskedLM(copy.deepcopy(config))
        reference = TinyBert(config)
        with torch.no_grad():  # every parameter away from its initial value: LayerNorm scales and biases included
            for p in reference.parameters():
                p.add_(torch.randn_like(p) * 0.3)
        tokens = torch.randint(0, config.vocab_size, (5, 9))
        full = torch.randint(0, config.vocab_size, (2, config.max_len))
    expect(isinstance(model, torch.nn.Module), "`MaskedLM(config)` should build a torch.nn.Module.")
    _load_reference_values(model, reference)
    for mode in ("eval", "train"):
        model.train(mode == "train")
        reference.train(mode == "train")
        for x in (tokens, full):
            got = model(x.clone())
            expect(isinstance(got, torch.Tensor), f"`forward` returned {type(got).__name__}; it should return the "
                                                  "logits tensor.")
            want = reference(x)
            expect_array(tuple(got.shape), tuple(want.shape), name=f"the logits' shape for input {tuple(x.shape)}",
                         hint="(B, T) ids → (B, T, vocab_size) logits: one score per vocabulary entry at every position.")
            expect_array(got.detach(), want.detach(), name=f"the logits ({mode} mode, input {tuple(x.shape)})",
                         rtol=1e-4, atol=1e-5,
                         hint="token + position embedding (positions[:T]) → every block in order → final LayerNorm → "
                              "dense → GELU → LayerNorm → h @ token_embedding.weight.T + bias; the blocks are pre-LN "
                              "(norm_first=True) with GELU, and every size comes from `config`.")
    model.train()
    reference.train()
    model.zero_grad()
    reference.zero_grad()
    weights = torch.randn(5, 9, config.vocab_size, generator=torch.Generator().manual_seed(2))
    (model(tokens.clone()) * weights).sum().backward()
    (reference(tokens) * weights).sum().backward()
    grad = model.token_embedding.weight.grad if hasattr(model, "token_embedding") else None
    expect(grad is not None, "No gradient reached `token_embedding.weight`.")
    expect_array(grad, reference.encoder.token_embedding.weight.grad, name="the gradient of token_embedding.weight",
                 rtol=1e-4, atol=1e-5,
                 hint="The tied weight gets gradient from BOTH uses, the input lookup and the output layer: use "
                      "self.token_embedding.weight itself in the head (no .detach(), .data or copy).")
    n = sum(p.numel() for p in model.parameters())
    return (f"Built at vocab 23, max_len 11, width 24, 3 heads, 4 blocks, d_ff 40 ({n:,} parameters, output tied to "
            "the embedding), it computes the reference's logits in both modes and its gradients.")


# ------------------------------------------------------------------------------------------- 11.6
_STEP = ("optimizer.zero_grad(set_to_none=True)\n"
         "logits = model(inputs)\n"
         "loss = masked_lm_loss(logits, labels)\n"
         "loss.backward()\n"
         "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)\n"
         "optimizer.step()")


def _step_without(line: str, replacement: str | None = None) -> str:
    lines = _STEP.splitlines()
    index = next(i for i, text in enumerate(lines) if text.startswith(line))
    lines[index:index + 1] = [] if replacement is None else [replacement]
    return "\n".join(lines)


@exercise("11.6", "The training step", wrong_answers={
    "gradients never cleared (they accumulate)": _step_without("optimizer.zero_grad"),
    "no gradient clipping": _step_without("torch.nn.utils.clip_grad_norm_"),
    "clipped at 1.0 typed in, not at max_norm": _step_without(
        "torch.nn.utils.clip_grad_norm_", "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)"),
    "clipped after the optimizer step": _step_without("torch.nn.utils.clip_grad_norm_") + (
        "\ntorch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)"),
    "optimizer step before backward": (
        "optimizer.zero_grad(set_to_none=True)\n"
        "logits = model(inputs)\n"
        "loss = masked_lm_loss(logits, labels)\n"
        "optimizer.step()\n"
        "loss.backward()"),
    "loss over every position (ignored ones scored as token 0)": _step_without(
        "loss = masked_lm_loss", "loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), "
                                 "labels.reshape(-1).clamp(min=0))"),
}, accepted_answers={
    "gradients cleared at the end of the step": _step_without("optimizer.zero_grad") + "\noptimizer.zero_grad()",
    "clip_grad_norm_ on a list of the parameters": _step_without(
        "torch.nn.utils.clip_grad_norm_", "torch.nn.utils.clip_grad_norm_(list(model.parameters()), max_norm)"),
})
def check_train_step(train_step: Any) -> str:
    torch = _torch()
    from dlcourse.mlm_model import masked_lm_loss

    expect_callable(train_step, name="train_step")
    vocab, max_norm, lr = 13, 0.37, 0.3
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(6)
        start = torch.nn.Sequential(torch.nn.Embedding(vocab, 7), torch.nn.Linear(7, vocab))
        with torch.no_grad():
            for p in start.parameters():
                p.mul_(3.0)  # large logits: the gradient norm is well above max_norm, so clipping shows
        batches = []
        for _ in range(2):
            tokens = torch.randint(0, vocab, (5, 9))
            labels = torch.where(torch.rand(5, 9) < 0.3, torch.randint(0, vocab, (5, 9)), torch.full((5, 9), IGNORE))
            batches.append((tokens, labels))

    def reference_step(model, optimizer, inputs, labels, *, clear=True, clip: float | None = max_norm) -> float:
        if clear:
            optimizer.zero_grad(set_to_none=True)
        loss = masked_lm_loss(model(inputs), labels)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        return loss.item()

    def run(step, **options) -> tuple[list[float], list[list[Any]]]:
        model = copy.deepcopy(start)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        losses, states = [], []
        for inputs, labels in batches:
            if options:
                got = step(model, optimizer, inputs.clone(), labels.clone(), **options)
            else:
                got = step(model, optimizer, inputs.clone(), labels.clone(), max_norm)
            losses.append(got)
            states.append([p.detach().clone() for p in model.parameters()])
        return losses, states

    want_losses, want_states = run(reference_step, clip=max_norm)
    got_losses, got_states = run(train_step)
    variants = {
        "match a step that never clears the gradients.": (
            {"clear": False}, "Call optimizer.zero_grad() in every step: backward ADDS to .grad, so without it each "
                              "step also applies all the earlier gradients."),
        "match a step without gradient clipping (or one clipped after the update).": (
            {"clip": None}, "After loss.backward() and before optimizer.step(): "
                            "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)."),
        f"match a step clipped at 1.0, not at the `max_norm` it was given ({max_norm} here).": (
            {"clip": 1.0}, "Clip at the argument: clip_grad_norm_(model.parameters(), max_norm)."),
    }

    def same(states: list[list[Any]], i: int) -> bool:
        return all(torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(states[i], got_states[i]))

    for i, got in enumerate(got_losses):
        expect(isinstance(got, (float, int)) or (isinstance(got, torch.Tensor) and got.numel() == 1),
               f"`train_step` returned {type(got).__name__}; it should return the loss as a number (loss.item()).")
        expect_number(float(got), want_losses[i], name=f"the loss returned by step {i + 1}", rtol=1e-5, atol=1e-6,
                      hint="Return the masked-LM loss of this batch computed BEFORE the update: masked_lm_loss(model("
                           "inputs), labels), which averages over the selected positions only.")
        if same(want_states, i):
            continue
        for reason, (options, hint) in variants.items():
            expect(not same(run(reference_step, **options)[1], i), f"After step {i + 1} the parameters {reason}", hint)
        expect(False, f"After step {i + 1} the parameters differ from one SGD update with the clipped gradient of the "
                      "masked-LM loss.",
               "zero_grad → logits = model(inputs) → loss = masked_lm_loss(logits, labels) → loss.backward() → "
               "clip_grad_norm_(model.parameters(), max_norm) → optimizer.step().")
    return (f"Two steps at max_norm {max_norm}: the losses ({want_losses[0]:.4f}, {want_losses[1]:.4f} nats) and the "
            "parameters match clear → loss → backward → clip → step.")
