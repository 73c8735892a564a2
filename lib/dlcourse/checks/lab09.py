"""Checks for lab 09 (attention): scaled dot-product attention in NumPy, causal and padding masks,
splitting and merging heads, a multi-head attention forward pass, sinusoidal positions.

Every check compares with ``dlcourse.attention`` on seeded inputs whose shapes differ on purpose
(T_q ≠ T_k, d_v ≠ d_k, B ≠ H), so a transposed or swapped axis cannot pass by accident.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlcourse.check import Mismatch, expect, expect_array, expect_callable, exercise


def _pair(result: Any, name: str) -> tuple[Any, Any]:
    """A function that should return (output, weights) must return exactly two things."""
    expect(isinstance(result, (tuple, list)) and len(result) == 2,
           f"`{name}` should return a pair (output, weights), but it returned {type(result).__name__}.",
           "End with `return weights @ v, weights`.")
    return result[0], result[1]


# ------------------------------------------------------------------------------------------ 09.1
def _qkv(seed: int, b: int = 2, t_q: int = 5, t_k: int = 6, d_k: int = 8, d_v: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((b, t_q, d_k)), rng.standard_normal((b, t_k, d_k)), rng.standard_normal((b, t_k, d_v)))


_SCALE_HINT = ("Divide the scores q·k by √d_k = np.sqrt(q.shape[-1]) before the softmax: without it the scores grow "
               "with d_k and the softmax saturates.")
_AXIS_HINT = ("Each query's weights are a distribution over the KEYS: softmax(scores, axis=-1), so every row of "
              "`weights` sums to 1.")
_MASK_HINT = ("Keep the score where the mask is True (may attend) and put -inf where it is False: "
              "np.where(mask, scores, -np.inf). softmax turns -inf into a weight of exactly 0.")


@exercise("09.1", "Scaled dot-product attention in NumPy", wrong_answers={
    "forgot to divide by √d_k": (
        "scores = q @ np.swapaxes(k, -1, -2)\n"
        "if mask is not None:\n"
        "    scores = np.where(mask, scores, -np.inf)\n"
        "weights = softmax(scores, axis=-1)\n"
        "return weights @ v, weights"),
    "softmax over the query axis": (
        "scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])\n"
        "if mask is not None:\n"
        "    scores = np.where(mask, scores, -np.inf)\n"
        "weights = softmax(scores, axis=-2)\n"
        "return weights @ v, weights"),
    "mask applied with the wrong sign": (
        "scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])\n"
        "if mask is not None:\n"
        "    scores = np.where(mask, -np.inf, scores)\n"
        "weights = softmax(scores, axis=-1)\n"
        "return weights @ v, weights"),
})
def check_attention_numpy(attention_numpy: Any) -> str:
    from dlcourse.attention import causal_mask, padding_mask, scaled_dot_product_attention_numpy as reference

    expect_callable(attention_numpy, name="attention_numpy")
    q, k, v = _qkv(0)
    out, weights = _pair(attention_numpy(q, k, v), "attention_numpy(q, k, v)")
    want_out, want_weights = reference(q, k, v)
    w = np.asarray(weights, dtype=float) if np.shape(weights) == want_weights.shape else None
    if w is not None and not np.allclose(w.sum(axis=-1), 1.0, atol=1e-6):
        raise Mismatch("The rows of `weights` do not sum to 1, so they are not a distribution over the keys.", _AXIS_HINT)
    expect_array(weights, want_weights, name="weights (no mask)", rtol=1e-5, atol=1e-7,
                 hint=_SCALE_HINT + " Shape (B, T_q, T_k): q @ k with its last two axes swapped.")
    expect_array(out, want_out, name="output (no mask)", rtol=1e-5, atol=1e-7,
                 hint="The output is the weighted sum of the values: weights @ v, shape (B, T_q, d_v).")
    checked = 1
    for label, mask, (qm, km, vm) in (("padding mask, lengths [6, 4]", padding_mask([6, 4], 6), (q, k, v)),
                                      ("causal mask", causal_mask(6), _qkv(1, t_q=6))):
        got = _pair(attention_numpy(qm, km, vm, mask), f"attention_numpy(q, k, v, mask) with a {label}")
        want_out, want_weights = reference(qm, km, vm, mask)
        expect_array(got[1], want_weights, name=f"weights with a {label}", rtol=1e-5, atol=1e-7, hint=_MASK_HINT)
        expect_array(got[0], want_out, name=f"output with a {label}", rtol=1e-5, atol=1e-7, hint=_MASK_HINT)
        checked += 1
    return (f"Outputs and weights match dlcourse.attention for {checked} cases (no mask, padding, causal); "
            f"every row of weights sums to 1 and masked keys get exactly 0.")


# ------------------------------------------------------------------------------------------ 09.2
@exercise("09.2", "Causal and padding masks", wrong_answers={
    "upper triangle (the future instead of the past)": ["return np.triu(np.ones((t, t), dtype=bool))", None],
    "diagonal excluded (a token may not see itself)": ["return np.tril(np.ones((t, t), dtype=bool), k=-1)", None],
    "padding on the query axis instead of the keys": [
        None, "lengths = np.asarray(lengths)\nreturn (np.arange(t)[None, :] < lengths[:, None])[:, :, None]"],
    "True marks the padding (torch.nn's convention)": [
        None, "lengths = np.asarray(lengths)\nreturn (np.arange(t)[None, :] >= lengths[:, None])[:, None, :]"],
})
def check_masks(make_causal_mask: Any, make_padding_mask: Any) -> str:
    from dlcourse.attention import causal_mask, padding_mask

    expect_callable(make_causal_mask, name="make_causal_mask")
    expect_callable(make_padding_mask, name="make_padding_mask")
    for t in (1, 4, 7):
        got = make_causal_mask(t)
        expect_array(got, causal_mask(t), name=f"make_causal_mask({t})", dtype_kind="b",
                     hint="Query i (row) may attend to keys 0..i (columns): True on and below the diagonal, "
                          "np.tril(np.ones((t, t), dtype=bool)). A token always sees itself.")
    for lengths, t in (([3, 5], 5), ([1, 4, 2], 6)):
        expect_array(make_padding_mask(lengths, t), padding_mask(lengths, t), name=f"make_padding_mask({lengths}, {t})",
                     dtype_kind="b",
                     hint="Shape (B, 1, T): True where KEY j is a real token (j < length). The 1 is the query axis, "
                          "so the same row of keys broadcasts to every query; padding is hidden from the keys, "
                          "not from the queries.")
    return "Both masks match dlcourse.attention (True = may attend): causal (T, T) lower triangle, padding (B, 1, T)."


# ------------------------------------------------------------------------------------------ 09.3
_ORDER_HINT = ("A reshape alone regroups numbers in memory order: (B, T, H·d) → (B, T, H, d_head) is right, then "
               "transpose(1, 2) moves the head axis in front of time. Merging undoes it: transpose(1, 2) first, "
               "then reshape(B, T, H·d_head). Otherwise the heads are merged in the wrong order.")


@exercise("09.3", "Split and merge heads", wrong_answers={
    "split by reshape without transpose": ["b, t, d = x.shape\nreturn x.reshape(b, n_heads, t, d // n_heads)", None],
    "merged without transposing back (heads in the wrong order)": [
        None, "b, h, t, d_head = x.shape\nreturn x.reshape(b, t, h * d_head)"],
    "each head takes every H-th feature": [
        "b, t, d = x.shape\nreturn x.reshape(b, t, d // n_heads, n_heads).permute(0, 3, 1, 2)", None],
})
def check_split_merge(split_heads: Any, merge_heads: Any) -> str:
    import torch

    from dlcourse.attention import merge_heads as merge_reference, split_heads as split_reference

    expect_callable(split_heads, name="split_heads")
    expect_callable(merge_heads, name="merge_heads")
    b, t, d, h = 2, 3, 12, 4  # every axis a different length
    x = torch.arange(b * t * d, dtype=torch.float32).reshape(b, t, d)  # each number says where it came from
    split = split_heads(x, h)
    expect_array(split, split_reference(x, h), name="split_heads(x, 4)", rtol=0, atol=0, hint=_ORDER_HINT)
    heads = split_reference(x, h) * 1.0
    expect_array(merge_heads(heads), merge_reference(heads), name="merge_heads(heads)", rtol=0, atol=0, hint=_ORDER_HINT)
    expect_array(merge_heads(split_heads(x, h)), x, name="merge_heads(split_heads(x, 4))", rtol=0, atol=0, hint=_ORDER_HINT)
    return "split_heads gives head h the features h·d_head … (h+1)·d_head − 1, and merge_heads is its exact inverse."


# ------------------------------------------------------------------------------------------ 09.4
@exercise("09.4", "A multi-head attention forward pass", wrong_answers={
    "no output projection": (
        "h = mha.n_heads\n"
        "q = attn.split_heads(mha.q_proj(x), h)\n"
        "k = attn.split_heads(mha.k_proj(x), h)\n"
        "v = attn.split_heads(mha.v_proj(x), h)\n"
        "scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
        "if mask is not None:\n"
        "    scores = scores.masked_fill(~mask, float('-inf'))\n"
        "weights = torch.softmax(scores, dim=-1)\n"
        "return attn.merge_heads(weights @ v), weights"),
    "scaled by √d_model instead of √d_head": (
        "h = mha.n_heads\n"
        "q = attn.split_heads(mha.q_proj(x), h)\n"
        "k = attn.split_heads(mha.k_proj(x), h)\n"
        "v = attn.split_heads(mha.v_proj(x), h)\n"
        "scores = q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1])\n"
        "if mask is not None:\n"
        "    scores = scores.masked_fill(~mask, float('-inf'))\n"
        "weights = torch.softmax(scores, dim=-1)\n"
        "return mha.out_proj(attn.merge_heads(weights @ v)), weights"),
    "keys projected with the query weights": (
        "h = mha.n_heads\n"
        "q = attn.split_heads(mha.q_proj(x), h)\n"
        "k = attn.split_heads(mha.q_proj(x), h)\n"
        "v = attn.split_heads(mha.v_proj(x), h)\n"
        "scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
        "if mask is not None:\n"
        "    scores = scores.masked_fill(~mask, float('-inf'))\n"
        "weights = torch.softmax(scores, dim=-1)\n"
        "return mha.out_proj(attn.merge_heads(weights @ v)), weights"),
})
def check_multi_head_attention(multi_head_attention: Any) -> str:
    import torch

    from dlcourse.attention import MultiHeadAttention, causal_mask

    expect_callable(multi_head_attention, name="multi_head_attention")
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(1))
    checked = []
    for label, mask in (("no mask", None), ("causal mask", torch.from_numpy(causal_mask(5)))):
        with torch.no_grad():
            want_out, want_weights = mha(x, mask=mask, need_weights=True)
            out, weights = _pair(multi_head_attention(x, mha, mask), f"multi_head_attention(x, mha, mask) ({label})")
        expect_array(weights, want_weights, name=f"weights ({label})", rtol=1e-4, atol=1e-6,
                     hint="Shape (B, H, T, T). Project x with mha.q_proj and mha.k_proj (two different matrices), "
                          "split into heads, and scale by √d_head = √(d_model / H), the size of one head's vectors.")
        expect_array(out, want_out, name=f"output ({label})", rtol=1e-4, atol=1e-6,
                     hint="After weights @ v, merge the heads back to (B, T, d_model) and apply the output projection "
                          "mha.out_proj: it mixes what the heads found.")
        checked.append(label)
    return f"Output and per-head weights match dlcourse.attention.MultiHeadAttention ({' and '.join(checked)}), ≤1e-4."


# ------------------------------------------------------------------------------------------ 09.5
@exercise("09.5", "Sinusoidal positional encoding", wrong_answers={
    "sin and cos swapped": (
        "pos = np.arange(t)[:, None]\n"
        "angle = pos / 10000 ** (np.arange(0, d, 2)[None, :] / d)\n"
        "pe = np.zeros((t, d))\n"
        "pe[:, 0::2] = np.cos(angle)\n"
        "pe[:, 1::2] = np.sin(angle)\n"
        "return pe"),
    "exponent i/d instead of 2i/d": (
        "pos = np.arange(t)[:, None]\n"
        "angle = pos / 10000 ** (np.arange(d // 2)[None, :] / d)\n"
        "pe = np.zeros((t, d))\n"
        "pe[:, 0::2] = np.sin(angle)\n"
        "pe[:, 1::2] = np.cos(angle)\n"
        "return pe"),
    "sines in the first half, cosines in the second": (
        "pos = np.arange(t)[:, None]\n"
        "angle = pos / 10000 ** (np.arange(0, d, 2)[None, :] / d)\n"
        "return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)"),
})
def check_positional_encoding(positional_encoding: Any) -> str:
    from dlcourse.attention import sinusoidal_positions

    expect_callable(positional_encoding, name="positional_encoding")
    for t, d in ((50, 16), (7, 6)):
        expect_array(positional_encoding(t, d), sinusoidal_positions(t, d), name=f"positional_encoding({t}, {d})",
                     rtol=1e-4, atol=1e-5,
                     hint="Column 2i holds sin(pos / 10000^(2i/d)) and column 2i+1 the cos of the same angle: "
                          "the exponent uses the EVEN column index 2i = np.arange(0, d, 2), and the pairs interleave "
                          "(pe[:, 0::2], pe[:, 1::2]).")
    return "positional_encoding matches PE(pos, 2i) = sin(pos/10000^(2i/d)), PE(pos, 2i+1) = cos(…) for (50, 16) and (7, 6)."
