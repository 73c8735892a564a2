"""Checks for lab 10 (the Transformer encoder): LayerNorm by hand, the position-wise FFN, post-LN and pre-LN
encoder blocks written from plain parts (against ``torch.nn.TransformerEncoderLayer`` in eval mode, and against the
reference with deterministic dropout stand-ins in train mode), the sorting task's targets, masked token accuracy;
the sorter, its training step, schedule and held-out evaluation are in ``lab10_model`` (re-exported here).

torch is imported inside the checks only, so importing this module stays light.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlcourse.check import expect, expect_array, expect_callable, expect_number, exercise

D_MODEL, N_HEADS, D_FF = 21, 3, 38  # d_head = 7: no size equals or divides another (B = 2, T = 5)
TOLERANCE = 2e-5  # float32 rounding (outputs of size ~1); every wrong block tried differs by more than 0.05
LENGTHS = (5, 2)  # the block checks use padded sequences, so a forgotten mask shows


def _layer_norm_reference(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """torch's own layer_norm in float64 (an independent reference)."""
    import torch

    t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    return torch.nn.functional.layer_norm(t, t.shape[-1:], torch.from_numpy(gamma.astype(np.float64)),
                                          torch.from_numpy(beta.astype(np.float64)), eps).numpy()


def _layer_norm_cases() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, float]]:
    rng = np.random.default_rng(10)
    return [
        ("a (2, 3, 7) batch of vectors, eps = 1e-5", rng.normal(1.0, 3.0, (2, 3, 7)), rng.normal(1, 0.2, 7),
         rng.normal(0, 0.2, 7), 1e-5),
        ("a (5, 4) batch with d = 4, eps = 0.3", rng.normal(0.0, 1.0, (5, 4)), rng.normal(1, 0.2, 4),
         rng.normal(0, 0.2, 4), 0.3),
        ("tiny activations (standard deviation 0.003), eps = 1e-5", rng.normal(0.0, 0.003, (3, 6)), np.ones(6),
         np.zeros(6), 1e-5),
        ("standard deviation 0.1, eps = 0.01", rng.normal(2.0, 0.1, (3, 9)), rng.normal(-1, 0.3, 9),
         rng.normal(0.5, 0.2, 9), 0.01),
    ]


@exercise("10.1", "LayerNorm by hand", wrong_answers={
    "normalised over the batch axis": "mean = x.mean(axis=0, keepdims=True)\nvar = x.var(axis=0, keepdims=True)\n"
                                      "return gamma * (x - mean) / np.sqrt(var + eps) + beta",
    "unbiased variance (ddof=1)": "mean = x.mean(axis=-1, keepdims=True)\nvar = x.var(axis=-1, ddof=1, keepdims=True)\n"
                                  "return gamma * (x - mean) / np.sqrt(var + eps) + beta",
    "eps outside the square root": "mean = x.mean(axis=-1, keepdims=True)\nstd = x.std(axis=-1, keepdims=True)\n"
                                   "return gamma * (x - mean) / (std + eps) + beta",
    "eps hard-coded to 1e-5": "mean = x.mean(axis=-1, keepdims=True)\nvar = x.var(axis=-1, keepdims=True)\n"
                              "return gamma * (x - mean) / np.sqrt(var + 1e-5) + beta",
    "gamma and beta swapped": "mean = x.mean(axis=-1, keepdims=True)\nvar = x.var(axis=-1, keepdims=True)\n"
                              "return beta * (x - mean) / np.sqrt(var + eps) + gamma",
}, accepted_answers={
    "float32 arithmetic": "x = np.asarray(x, dtype=np.float32)\nmean = x.mean(axis=-1, keepdims=True)\n"
                          "var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)\n"
                          "return (gamma * (x - mean) / np.sqrt(var + np.float32(eps)) + beta).astype(np.float32)",
    "the variance as E[x²] − E[x]²": "mean = x.mean(axis=-1, keepdims=True)\n"
                                      "var = (x ** 2).mean(axis=-1, keepdims=True) - mean ** 2\n"
                                      "return gamma * (x - mean) / np.sqrt(var + eps) + beta",
})
def check_layer_norm(layer_norm: Any) -> str:
    expect_callable(layer_norm, name="layer_norm")
    for what, x, gamma, beta, eps in _layer_norm_cases():
        expect_array(layer_norm(x.copy(), gamma.copy(), beta.copy(), eps), _layer_norm_reference(x, gamma, beta, eps),
                     name=f"layer_norm(x, gamma, beta, eps) for {what}", rtol=2e-5, atol=2e-6,
                     hint="Each vector is normalised over its own features (the last axis), with the biased variance "
                          "(divide by d, as torch does) and the eps you are given inside the square root: "
                          "(x − μ) / √(σ² + ε), then scaled by gamma and shifted by beta.")
    return ("Your layer_norm matches torch.nn.functional.layer_norm for 4 cases, including d = 4, tiny activations "
            "where ε matters, and ε = 0.01 and 0.3.")


class _FixedDropout:
    """A dropout stand-in whose mask depends only on the input's shape and its own seed: a check can then compare a
    train-mode forward pass, whatever order the student calls the parts in, and swapped dropouts show."""

    def __init__(self, seed: int, p: float = 0.25) -> None:
        self.seed, self.p = seed, p

    def module(self) -> Any:
        import torch
        from torch import nn

        seed, p = self.seed, self.p

        class FixedDropout(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                g = torch.Generator().manual_seed(seed + x.numel())
                keep = torch.rand(x.shape, generator=g) >= p
                return x * keep.to(x.dtype) / (1 - p)

        return FixedDropout()


def _train_mode_parts(activation: str) -> Any:
    """block_parts with random LayerNorm parameters, the given activation, and fixed-mask dropouts (train mode)."""
    import torch

    from dlcourse.transformer import block_parts

    torch.manual_seed(12)
    parts = block_parts(D_MODEL, N_HEADS, D_FF, 0.0, activation=activation)
    with torch.no_grad():
        for norm in (parts.norm1, parts.norm2):
            norm.weight.uniform_(-1.5, 1.5)  # negative values too
            norm.bias.uniform_(-0.5, 0.5)
    for name, seed in (("dropout", 100), ("dropout1", 200), ("dropout2", 300)):
        parts[name] = _FixedDropout(seed).module()
    return parts.train()


def _torch_block(norm_first: bool, activation: str = "relu") -> tuple[Any, Any]:
    """An nn.TransformerEncoderLayer with random LayerNorm parameters, and its weights as block_parts (eval mode)."""
    import torch
    from torch import nn

    from dlcourse.transformer import EncoderBlock, parts_of

    torch.manual_seed(10)
    layer = nn.TransformerEncoderLayer(D_MODEL, N_HEADS, D_FF, dropout=0.1, activation=activation, batch_first=True,
                                       norm_first=norm_first).eval()
    with torch.no_grad():  # γ ≠ 1 (some negative) and β ≠ 0, different in norm1 and norm2, so swapping them shows
        for norm in (layer.norm1, layer.norm2):
            norm.weight.uniform_(-1.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    block = EncoderBlock(D_MODEL, N_HEADS, D_FF, 0.1, norm_first=norm_first, activation=activation)
    return layer, parts_of(block.copy_from_torch(layer)).eval()


def _block_inputs() -> tuple[Any, Any]:
    import torch

    g = torch.Generator().manual_seed(11)
    x = torch.randn(len(LENGTHS), max(LENGTHS), D_MODEL, generator=g) * 2.0 + 0.5
    keep = torch.arange(max(LENGTHS))[None, :] < torch.tensor(LENGTHS)[:, None]  # (B, T) True = real token
    return x, keep


_FFN_HINT = ("FFN(x) = linear2(dropout(activation(linear1(x)))): parts.linear1, then parts.activation (the block's "
             "own, ReLU or GELU), then parts.dropout, then parts.linear2. Without the activation the two linear layers "
             "collapse into one linear map.")


@exercise("10.2", "The position-wise feed-forward network", wrong_answers={
    "activation after the second linear layer": "return parts.activation(parts.linear2(parts.dropout(parts.linear1(x))))",
    "no activation": "return parts.linear2(parts.dropout(parts.linear1(x)))",
    "ReLU hard-coded instead of parts.activation": "return parts.linear2(parts.dropout(torch.relu(parts.linear1(x))))",
    "dropout after the second linear layer": "return parts.dropout(parts.linear2(parts.activation(parts.linear1(x))))",
    "no dropout": "return parts.linear2(parts.activation(parts.linear1(x)))",
}, accepted_answers={
    "step by step": "h = parts.linear1(x)\nh = parts.activation(h)\nh = parts.dropout(h)\nreturn parts.linear2(h)",
    "nn.Sequential of the parts": "return torch.nn.Sequential(parts.linear1, parts.activation, parts.dropout, parts.linear2)(x)",
})
def check_feed_forward(feed_forward: Any) -> str:
    import torch

    from dlcourse.transformer import parts_feed_forward

    expect_callable(feed_forward, name="feed_forward")
    x, _ = _block_inputs()
    _, eval_parts = _torch_block(norm_first=False)
    for label, parts in (("eval mode, ReLU", eval_parts), ("train mode, GELU, dropout", _train_mode_parts("gelu"))):
        with torch.no_grad():
            got = feed_forward(x.clone(), parts)
            want = parts_feed_forward(x, parts)
        expect_array(got, want, name=f"feed_forward(x, parts) ({label})", rtol=TOLERANCE, atol=TOLERANCE,
                     hint=_FFN_HINT)
    return (f"Your FFN maps each of the {x.shape[0] * x.shape[1]} position vectors through {D_MODEL} → {D_FF} → "
            f"{D_MODEL} with the block's activation and dropout in the right places, in eval and train mode.")


def _check_block(fn: Any, name: str, norm_first: bool, hint: str) -> None:
    import torch

    from dlcourse.transformer import post_ln_forward, pre_ln_forward

    expect_callable(fn, name=name)
    x, keep = _block_inputs()
    mask = keep[:, None, None, :]  # ours: True = may attend, (B, 1, 1, T)
    layer, parts = _torch_block(norm_first)
    with torch.no_grad():
        want = layer(x, src_key_padding_mask=~keep)  # torch: True = padding
        got = fn(x.clone(), parts, mask.clone())
    expect(isinstance(got, torch.Tensor), f"`{name}` should return a torch tensor, but it returned {type(got).__name__}.",
           hint)
    expect(tuple(got.shape) == tuple(want.shape), f"`{name}` returned shape {tuple(got.shape)}, expected {tuple(want.shape)}.",
           hint)
    real = keep[:, :, None].expand_as(want)  # torch's fast path zeroes padded rows: compare real tokens only
    expect_array(got[real], want[real], name=f"{name}(x, parts, mask) on the real tokens, eval mode", rtol=TOLERANCE,
                 atol=TOLERANCE, hint=hint)
    reference = pre_ln_forward if norm_first else post_ln_forward
    parts = _train_mode_parts("gelu")
    with torch.no_grad():
        want = reference(x, parts, mask)
        got = fn(x.clone(), parts, mask.clone())
    expect_array(got[real], want[real], name=f"{name}(x, parts, mask) on the real tokens, train mode with dropout",
                 rtol=TOLERANCE, atol=TOLERANCE, hint=_DROPOUT_HINT)


_DROPOUT_HINT = ("In train mode each sub-layer's output goes through its own dropout before it is added to the "
                 "residual stream: parts.dropout1 on the attention output, parts.dropout2 on the FFN output (and "
                 "parts.dropout inside the FFN, after the activation). The residual stream itself is never dropped.")

def _post(body_attn: str = "a, _ = parts.self_attn(x, mask=mask)\n", add1: str = "x = parts.norm1(x + parts.dropout1(a))\n",
          ffn: str = "f = parts.linear2(parts.dropout(parts.activation(parts.linear1(x))))\n",
          add2: str = "return parts.norm2(x + parts.dropout2(f))") -> str:
    return body_attn + add1 + ffn + add2


def _pre(body_attn: str = "a, _ = parts.self_attn(parts.norm1(x), mask=mask)\n", add1: str = "x = x + parts.dropout1(a)\n",
         ffn: str = "f = parts.linear2(parts.dropout(parts.activation(parts.linear1(parts.norm2(x)))))\n",
         add2: str = "return x + parts.dropout2(f)") -> str:
    return body_attn + add1 + ffn + add2


@exercise("10.3", "A post-LN encoder block", wrong_answers={
    "no residual connections": _post(add1="x = parts.norm1(parts.dropout1(a))\n", add2="return parts.norm2(parts.dropout2(f))"),
    "LayerNorm before the sub-layers (pre-LN)": _pre(),
    "forgot the padding mask": _post(body_attn="a, _ = parts.self_attn(x)\n"),
    "dropout on the residual stream (after the add)": _post(add1="x = parts.norm1(parts.dropout1(x + a))\n"),
    "dropout1 and dropout2 swapped": _post(add1="x = parts.norm1(x + parts.dropout2(a))\n",
                                           add2="return parts.norm2(x + parts.dropout1(f))"),
    "norm1 used for both sub-layers": _post(add2="return parts.norm1(x + parts.dropout2(f))"),
}, accepted_answers={
    "with the FFN of exercise 10.2": _post(ffn="f = feed_forward(x, parts)\n"),
})
def check_post_ln_block(post_ln_block: Any) -> str:
    _check_block(post_ln_block, "post_ln_block", norm_first=False,
                 hint="Post-LN (Vaswani et al. 2017): x = LN₁(x + Attention(x)), then x = LN₂(x + FFN(x)). Pass "
                      "mask= to parts.self_attn so no query looks at padding, and add each sub-layer's input back "
                      "(the residual) before normalising.")
    return (f"Your post-LN block matches nn.TransformerEncoderLayer(norm_first=False) on every real token (to "
            f"{TOLERANCE:.0e}), and puts each dropout in its place in train mode.")


@exercise("10.4", "A pre-LN encoder block", wrong_answers={
    "post-LN instead of pre-LN": _post(),
    "normalised the residual stream itself": ("x = parts.norm1(x)\na, _ = parts.self_attn(x, mask=mask)\n"
                                              "x = parts.norm2(x + parts.dropout1(a))\n"
                                              "f = parts.linear2(parts.dropout(parts.activation(parts.linear1(x))))\n"
                                              "return x + parts.dropout2(f)"),
    "norm1 used for both sub-layers": _pre(
        ffn="f = parts.linear2(parts.dropout(parts.activation(parts.linear1(parts.norm1(x)))))\n"),
    "forgot the padding mask": _pre(body_attn="a, _ = parts.self_attn(parts.norm1(x))\n"),
    "dropout on the residual stream (after the add)": _pre(add1="x = parts.dropout1(x + a)\n"),
}, accepted_answers={
    "with the FFN of exercise 10.2": _pre(ffn="f = feed_forward(parts.norm2(x), parts)\n"),
})
def check_pre_ln_block(pre_ln_block: Any) -> str:
    _check_block(pre_ln_block, "pre_ln_block", norm_first=True,
                 hint="Pre-LN: x = x + Attention(LN₁(x)), then x = x + FFN(LN₂(x)). Only the sub-layer's input is "
                      "normalised; the residual path x itself is never normalised.")
    return (f"Your pre-LN block matches nn.TransformerEncoderLayer(norm_first=True) on every real token (to "
            f"{TOLERANCE:.0e}), and puts each dropout in its place in train mode.")


def _sort_case() -> tuple[np.ndarray, np.ndarray]:
    from dlcourse.seqtasks import make_sort_batch

    batch = make_sort_batch(6, 2, 8, np.random.default_rng(12))
    return batch.tokens, batch.mask


@exercise("10.5", "Targets for the sorting task", wrong_answers={
    "sorted along the batch axis": "targets = np.sort(tokens, axis=0)",
    "descending order": "targets = np.sort(tokens, axis=1)[:, ::-1]",
    "argsort instead of sort": "targets = np.argsort(tokens, axis=1)",
})
def check_sort_targets(targets: Any, tokens: Any, mask: Any) -> str:
    from dlcourse.seqtasks import PAD, sort_targets

    tokens, mask = np.asarray(tokens), np.asarray(mask, dtype=bool)
    want = sort_targets(tokens, mask)
    expect_array(targets, want, name="targets", rtol=0, atol=0, dtype_kind="iu",
                 hint=f"Sort each row (axis=1), smallest first; the padding token {PAD} is larger than every digit, so "
                      "the padding stays at the end. np.sort returns the values, np.argsort their positions.")
    return f"All {len(tokens)} rows are sorted, digits first in ascending order, padding ({PAD}) last."


def _accuracy_case() -> tuple[Any, Any, Any]:
    """Scores over the 11 tokens (digits and PAD), so PAD can be an argmax: at most padded positions it is, which an
    unmasked numerator would count as correct."""
    import torch

    from dlcourse.seqtasks import PAD, VOCAB_SIZE, make_sort_batch

    batch = make_sort_batch(7, 2, 9, np.random.default_rng(13))
    tokens, targets, mask = batch.tensors()
    g = torch.Generator().manual_seed(13)
    logits = torch.randn(*targets.shape, VOCAB_SIZE, generator=g)
    right = (torch.rand(targets.shape, generator=g) < 0.6) & mask  # about 60% of the real positions are right
    logits[right] = logits[right].scatter(-1, targets[right][:, None], 10.0)
    pad_wins = ~mask & (torch.rand(targets.shape, generator=g) < 0.8)
    logits[pad_wins] = logits[pad_wins].scatter(-1, torch.full_like(targets[pad_wins], PAD)[:, None], 10.0)
    return logits, targets, mask


@exercise("10.6", "Masked token accuracy", wrong_answers={
    "counted the padding positions": "return float((logits.argmax(-1) == targets).float().mean())",
    "averaged per sequence first": "correct = ((logits.argmax(-1) == targets) & mask).sum(1)\n"
                                   "return float((correct / mask.sum(1)).mean())",
    "numerator not masked": "correct = (logits.argmax(-1) == targets).sum()\nreturn float(correct / mask.sum())",
    "divided by every position": "correct = ((logits.argmax(-1) == targets) & mask).sum()\n"
                                 "return float(correct / mask.numel())",
}, accepted_answers={
    "boolean indexing": "return (logits.argmax(-1)[mask] == targets[mask]).float().mean().item()",
    "a 0-d tensor": "return ((logits.argmax(-1) == targets) & mask).sum() / mask.sum()",
})
def check_masked_accuracy(masked_token_accuracy: Any) -> str:
    import torch

    from dlcourse.seqtasks import masked_token_accuracy as reference

    expect_callable(masked_token_accuracy, name="masked_token_accuracy")
    logits, targets, mask = _accuracy_case()
    want = reference(logits, targets, mask)
    with torch.no_grad():
        got = masked_token_accuracy(logits.clone(), targets.clone(), mask.clone())
    expect_number(got, want, name="masked_token_accuracy(logits, targets, mask)", rtol=1e-6,
                  hint="Count the correct predictions at real positions only (& mask) and divide by the number of "
                       "real positions (mask.sum()) over the whole batch: padding is not a token the model was asked "
                       "to predict (a model may well predict PAD there), and averaging per sequence first "
                       "over-weights short sequences.")
    return (f"{want:.4f} of the {int(mask.sum())} real positions are right; the {int((~mask).sum())} padded ones are "
            f"ignored, even where the scores pick PAD.")


from dlcourse.checks.lab10_model import (check_held_out_accuracy, check_lr_factor,  # noqa: E402  registers 10.7-10.10
                                         check_sort_transformer, check_train_step)
