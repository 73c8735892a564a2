"""Checks for lab 10 (the Transformer encoder): LayerNorm by hand, the position-wise FFN, post-LN and pre-LN
encoder blocks (against ``torch.nn.TransformerEncoderLayer``), the sorting task's targets, masked token accuracy.

torch is imported inside the checks only, so importing this module stays light.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlcourse.check import expect, expect_array, expect_callable, expect_number, exercise

D_MODEL, N_HEADS, D_FF = 16, 4, 32
TOLERANCE = 1e-5  # float32 rounding; every wrong block tried differs by more than 0.1
LENGTHS = (5, 3, 2)  # the block checks use padded sequences, so a forgotten mask shows


def _layer_norm_reference(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """torch's own layer_norm in float64 (an independent reference)."""
    import torch

    t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    return torch.nn.functional.layer_norm(t, t.shape[-1:], torch.from_numpy(gamma.astype(np.float64)),
                                          torch.from_numpy(beta.astype(np.float64)), eps).numpy()


def _layer_norm_cases() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(10)
    return [
        ("a (2, 3, 8) batch of vectors", rng.normal(1.0, 3.0, (2, 3, 8)), rng.normal(1, 0.2, 8), rng.normal(0, 0.2, 8)),
        ("a (5, 4) batch with d = 4", rng.normal(0.0, 1.0, (5, 4)), rng.normal(1, 0.2, 4), rng.normal(0, 0.2, 4)),
        ("tiny activations (standard deviation 0.003)", rng.normal(0.0, 0.003, (3, 6)), np.ones(6), np.zeros(6)),
    ]


@exercise("10.1", "LayerNorm by hand", wrong_answers={
    "normalised over the batch axis": "mean = x.mean(axis=0, keepdims=True)\nvar = x.var(axis=0, keepdims=True)\n"
                                      "return gamma * (x - mean) / np.sqrt(var + eps) + beta",
    "unbiased variance (ddof=1)": "mean = x.mean(axis=-1, keepdims=True)\nvar = x.var(axis=-1, ddof=1, keepdims=True)\n"
                                  "return gamma * (x - mean) / np.sqrt(var + eps) + beta",
    "eps outside the square root": "mean = x.mean(axis=-1, keepdims=True)\nstd = x.std(axis=-1, keepdims=True)\n"
                                   "return gamma * (x - mean) / (std + eps) + beta",
})
def check_layer_norm(layer_norm: Any) -> str:
    expect_callable(layer_norm, name="layer_norm")
    for what, x, gamma, beta in _layer_norm_cases():
        expect_array(layer_norm(x.copy(), gamma, beta, 1e-5), _layer_norm_reference(x, gamma, beta, 1e-5),
                     name=f"layer_norm(x, gamma, beta) for {what}", rtol=1e-6, atol=1e-8,
                     hint="Each vector is normalised over its own features (the last axis), with the biased variance "
                          "(divide by d, as torch does) and eps inside the square root: (x − μ) / √(σ² + ε), "
                          "then scaled by gamma and shifted by beta.")
    return "Your layer_norm matches torch.nn.functional.layer_norm, including d = 4 and tiny activations where ε matters."


def _torch_block(norm_first: bool, activation: str = "relu") -> tuple[Any, Any]:
    """An nn.TransformerEncoderLayer with random LayerNorm parameters, and a dlcourse EncoderBlock with its weights."""
    import torch
    from torch import nn

    from dlcourse.transformer import EncoderBlock

    torch.manual_seed(10)
    layer = nn.TransformerEncoderLayer(D_MODEL, N_HEADS, D_FF, dropout=0.1, activation=activation, batch_first=True,
                                       norm_first=norm_first).eval()
    with torch.no_grad():  # γ ≠ 1 and β ≠ 0, and different in norm1 and norm2, so swapping them shows
        for norm in (layer.norm1, layer.norm2):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    block = EncoderBlock(D_MODEL, N_HEADS, D_FF, 0.1, norm_first=norm_first, activation=activation).eval()
    return layer, block.copy_from_torch(layer)


def _block_inputs() -> tuple[Any, Any]:
    import torch

    g = torch.Generator().manual_seed(11)
    x = torch.randn(len(LENGTHS), max(LENGTHS), D_MODEL, generator=g) * 2.0 + 0.5
    keep = torch.arange(max(LENGTHS))[None, :] < torch.tensor(LENGTHS)[:, None]  # (B, T) True = real token
    return x, keep


@exercise("10.2", "The position-wise feed-forward network", wrong_answers={
    "activation after the second linear layer": "return torch.relu(linear2(linear1(x)))",
    "no activation": "return linear2(linear1(x))",
})
def check_feed_forward(feed_forward: Any) -> str:
    import torch

    expect_callable(feed_forward, name="feed_forward")
    _, block = _torch_block(norm_first=False)
    x, _ = _block_inputs()
    with torch.no_grad():
        got = feed_forward(x, block.linear1, block.linear2)
        want = block.feed_forward(x)
    expect_array(got, want, name="feed_forward(x, linear1, linear2)", rtol=1e-5, atol=1e-6,
                 hint="FFN(x) = W₂ ReLU(W₁x + b₁) + b₂: the non-linearity sits between the two linear layers "
                      "(without it the two layers collapse into one linear map).")
    return f"Your FFN maps each of the {x.shape[0] * x.shape[1]} position vectors through {D_MODEL} → {D_FF} → {D_MODEL}, as the block does."


def _check_block(fn: Any, name: str, norm_first: bool, hint: str) -> None:
    import torch

    expect_callable(fn, name=name)
    layer, block = _torch_block(norm_first)
    x, keep = _block_inputs()
    with torch.no_grad():
        want = layer(x, src_key_padding_mask=~keep)  # torch: True = padding
        got = fn(x.clone(), block, keep[:, None, None, :])  # ours: True = may attend
    expect(isinstance(got, torch.Tensor), f"`{name}` should return a torch tensor, but it returned {type(got).__name__}.",
           hint)
    expect(tuple(got.shape) == tuple(want.shape), f"`{name}` returned shape {tuple(got.shape)}, expected {tuple(want.shape)}.",
           hint)
    real = keep[:, :, None].expand_as(want)  # torch's fast path zeroes padded rows: compare real tokens only
    expect_array(got[real], want[real], name=f"{name}(x, block, mask) on the real tokens", rtol=TOLERANCE, atol=TOLERANCE,
                 hint=hint)


@exercise("10.3", "A post-LN encoder block", wrong_answers={
    "no residual connections": "a, _ = block.self_attn(x, mask=mask)\nx = block.norm1(a)\nreturn block.norm2(block.feed_forward(x))",
    "LayerNorm before the sub-layers (pre-LN)": "a, _ = block.self_attn(block.norm1(x), mask=mask)\nx = x + a\n"
                                                "return x + block.feed_forward(block.norm2(x))",
    "forgot the padding mask": "a, _ = block.self_attn(x)\nx = block.norm1(x + a)\nreturn block.norm2(x + block.feed_forward(x))",
})
def check_post_ln_block(post_ln_block: Any) -> str:
    _check_block(post_ln_block, "post_ln_block", norm_first=False,
                         hint="Post-LN (Vaswani et al. 2017): x = LN₁(x + Attention(x)), then x = LN₂(x + FFN(x)). Pass "
                              "mask= to block.self_attn so no query looks at padding, and add each sub-layer's input back "
                              "(the residual) before normalising.")
    return f"Your post-LN block matches nn.TransformerEncoderLayer(norm_first=False) on every real token (to {TOLERANCE:.0e})."


@exercise("10.4", "A pre-LN encoder block", wrong_answers={
    "post-LN instead of pre-LN": "a, _ = block.self_attn(x, mask=mask)\nx = block.norm1(x + a)\n"
                                 "return block.norm2(x + block.feed_forward(x))",
    "normalised the residual stream itself": "x = block.norm1(x)\na, _ = block.self_attn(x, mask=mask)\nx = block.norm2(x + a)\n"
                                             "return x + block.feed_forward(x)",
    "norm1 used for both sub-layers": "a, _ = block.self_attn(block.norm1(x), mask=mask)\nx = x + a\n"
                                      "return x + block.feed_forward(block.norm1(x))",
})
def check_pre_ln_block(pre_ln_block: Any) -> str:
    _check_block(pre_ln_block, "pre_ln_block", norm_first=True,
                         hint="Pre-LN (Xiong et al. 2020): x = x + Attention(LN₁(x)), then x = x + FFN(LN₂(x)). Only the "
                              "sub-layer's input is normalised; the residual path x itself is never normalised.")
    return f"Your pre-LN block matches nn.TransformerEncoderLayer(norm_first=True) on every real token (to {TOLERANCE:.0e})."


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
    import torch

    from dlcourse.seqtasks import make_sort_batch

    batch = make_sort_batch(8, 2, 10, np.random.default_rng(13))
    tokens, targets, mask = batch.tensors()
    g = torch.Generator().manual_seed(13)
    logits = torch.randn(*targets.shape, 10, generator=g)
    right = torch.rand(targets.shape, generator=g) < 0.7  # about 70% of positions predict the target
    logits[right] = logits[right].scatter(-1, targets[right].clamp(max=9)[:, None], 10.0)
    return logits, targets, mask


@exercise("10.6", "Masked token accuracy", wrong_answers={
    "counted the padding positions": "return float((logits.argmax(-1) == targets).float().mean())",
    "averaged per sequence first": "correct = ((logits.argmax(-1) == targets) & mask).sum(1)\n"
                                   "return float((correct / mask.sum(1)).mean())",
})
def check_masked_accuracy(masked_token_accuracy: Any) -> str:
    import torch

    from dlcourse.seqtasks import masked_token_accuracy as reference

    expect_callable(masked_token_accuracy, name="masked_token_accuracy")
    logits, targets, mask = _accuracy_case()
    want = reference(logits, targets, mask)
    with torch.no_grad():
        got = masked_token_accuracy(logits, targets, mask)
    expect_number(got, want, name="masked_token_accuracy(logits, targets, mask)", rtol=1e-6,
                  hint="Count the correct predictions at real positions only and divide by the number of real positions "
                       "(mask.sum()) over the whole batch: padding is not a token the model was asked to predict, and "
                       "averaging per sequence first over-weights short sequences.")
    return f"{want:.4f} of the {int(mask.sum())} real positions are right; the {int((~mask).sum())} padded ones are ignored."
