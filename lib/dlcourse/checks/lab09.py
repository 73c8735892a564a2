"""Checks for lab 09 (attention): scaled dot-product attention in NumPy, causal and padding masks,
splitting and merging heads, a multi-head attention forward pass, sinusoidal positions.

Every check compares with ``dlcourse.attention`` on seeded inputs whose sizes differ on every axis and are not
multiples of one another (B = 2, T_q = 5, T_k = 7, d_k = 9, d_v = 11 in 09.1; B = 2, T = 3, H = 5, d_head = 7 in
09.3; B = 2, T = 5, H = 3, d_head = 7 in 09.4), so a transposed or swapped axis cannot pass by accident.
"""

from __future__ import annotations

import copy
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
def _qkv(seed: int, b: int = 2, t_q: int = 5, t_k: int = 7, d_k: int = 9, d_v: int = 11) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((b, t_q, d_k)), rng.standard_normal((b, t_k, d_k)), rng.standard_normal((b, t_k, d_v)))


_SCALE_HINT = ("Divide the scores q·k by √d_k = np.sqrt(q.shape[-1]) before the softmax: without it the scores grow "
               "with d_k and the softmax saturates.")
_AXIS_HINT = ("Each query's weights are a distribution over the KEYS: softmax(scores, axis=-1), so every row of "
              "`weights` sums to 1.")
_BATCH_HINT = ("q, k and v may carry several leading batch axes, (..., T, d): transpose only the last two axes of k "
               "(np.swapaxes(k, -1, -2); k.T reverses every axis).")
_RTOL, _ATOL = 1e-4, 1e-6  # float32 answers pass; every wrong answer registered differs by more than 1e-2
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
    "k.T reverses the batch axis too": (
        "scores = q @ k.T / np.sqrt(q.shape[-1])\n"
        "if mask is not None:\n"
        "    scores = np.where(mask, scores, -np.inf)\n"
        "weights = softmax(scores, axis=-1)\n"
        "return weights @ v, weights"),
    "scaled by √d_v instead of √d_k": (
        "scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(v.shape[-1])\n"
        "if mask is not None:\n"
        "    scores = np.where(mask, scores, -np.inf)\n"
        "weights = softmax(scores, axis=-1)\n"
        "return weights @ v, weights"),
    "masked weights zeroed after the softmax (rows no longer sum to 1)": (
        "scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])\n"
        "weights = softmax(scores, axis=-1)\n"
        "if mask is not None:\n"
        "    weights = np.where(mask, weights, 0.0)\n"
        "return weights @ v, weights"),
}, accepted_answers={
    "einsum for both products": (
        "scores = np.einsum('...qd,...kd->...qk', q, k) / np.sqrt(q.shape[-1])\n"
        "if mask is not None:\n"
        "    scores = np.where(mask, scores, -np.inf)\n"
        "weights = softmax(scores, axis=-1)\n"
        "return np.einsum('...qk,...kv->...qv', weights, v), weights"),
    "a large negative number instead of -inf, queries scaled first": (
        "scores = (q / np.sqrt(q.shape[-1])) @ np.swapaxes(k, -1, -2)\n"
        "if mask is not None:\n"
        "    scores = np.where(mask, scores, -1e9)\n"
        "weights = softmax(scores, axis=-1)\n"
        "return weights @ v, weights"),
    "float32 arithmetic": (
        "q, k, v = (np.asarray(a, dtype=np.float32) for a in (q, k, v))\n"
        "scores = q @ np.swapaxes(k, -1, -2) / np.float32(np.sqrt(q.shape[-1]))\n"
        "if mask is not None:\n"
        "    scores = np.where(mask, scores, np.float32(-np.inf))\n"
        "weights = softmax(scores, axis=-1)\n"
        "return weights @ v, weights"),
})
def check_attention_numpy(attention_numpy: Any) -> str:
    from dlcourse.attention import causal_mask, padding_mask, scaled_dot_product_attention_numpy as reference

    expect_callable(attention_numpy, name="attention_numpy")
    q, k, v = _qkv(0)
    out, weights = _pair(attention_numpy(q.copy(), k.copy(), v.copy()), "attention_numpy(q, k, v)")
    want_out, want_weights = reference(q, k, v)
    w = np.asarray(weights, dtype=float) if np.shape(weights) == want_weights.shape else None
    if w is not None and not np.allclose(w.sum(axis=-1), 1.0, atol=1e-5):
        raise Mismatch("The rows of `weights` do not sum to 1, so they are not a distribution over the keys.", _AXIS_HINT)
    expect_array(weights, want_weights, name="weights (no mask)", rtol=_RTOL, atol=_ATOL,
                 hint=_SCALE_HINT + " Shape (B, T_q, T_k): q @ k with its last two axes swapped.")
    expect_array(out, want_out, name="output (no mask)", rtol=_RTOL, atol=_ATOL,
                 hint="The output is the weighted sum of the values: weights @ v, shape (B, T_q, d_v).")
    cases = (("padding mask, lengths [7, 4]", padding_mask([7, 4], 7), (q, k, v)),
             ("causal mask", causal_mask(7), _qkv(1, t_q=7)),
             ("two batch axes (2, 3) and a causal mask", causal_mask(5), _qkv(2, b=6, t_q=5, t_k=5)))
    for label, mask, (qm, km, vm) in cases:
        if "two batch axes" in label:
            qm, km, vm = (a.reshape(2, 3, *a.shape[1:]) for a in (qm, km, vm))
        got = _pair(attention_numpy(qm.copy(), km.copy(), vm.copy(), mask.copy()),
                    f"attention_numpy(q, k, v, mask) with a {label}")
        want_out, want_weights = reference(qm, km, vm, mask)
        hint = _MASK_HINT if "batch axes" not in label else _BATCH_HINT
        expect_array(got[1], want_weights, name=f"weights with a {label}", rtol=_RTOL, atol=_ATOL, hint=hint)
        expect_array(got[0], want_out, name=f"output with a {label}", rtol=_RTOL, atol=_ATOL, hint=hint)
    return (f"Outputs and weights match dlcourse.attention for {1 + len(cases)} cases (no mask, padding, causal, two "
            f"batch axes); every row of weights sums to 1 and masked keys get exactly 0.")


# ------------------------------------------------------------------------------------------ 09.2
@exercise("09.2", "Causal and padding masks", wrong_answers={
    "upper triangle (the future instead of the past)": ["return np.triu(np.ones((t, t), dtype=bool))", None],
    "diagonal excluded (a token may not see itself)": ["return np.tril(np.ones((t, t), dtype=bool), k=-1)", None],
    "padding on the query axis instead of the keys": [
        None, "lengths = np.asarray(lengths)\nreturn (np.arange(t)[None, :] < lengths[:, None])[:, :, None]"],
    "True marks the padding (torch.nn's convention)": [
        None, "lengths = np.asarray(lengths)\nreturn (np.arange(t)[None, :] >= lengths[:, None])[:, None, :]"],
    "one key too many (<= instead of <)": [
        None, "lengths = np.asarray(lengths)\nreturn (np.arange(t)[None, :] <= lengths[:, None])[:, None, :]"],
    "no query axis, shape (B, T)": [
        None, "lengths = np.asarray(lengths)\nreturn np.arange(t)[None, :] < lengths[:, None]"],
}, accepted_answers={
    "comparisons of positions, a list comprehension": [
        "return np.arange(t)[:, None] >= np.arange(t)[None, :]",
        "return np.array([[[j < n for j in range(t)]] for n in lengths], dtype=bool)"],
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
    for lengths, t in (([3, 5], 5), ([1, 4, 2], 7)):
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
    "time and feature axes swapped instead of time and head": [
        "b, t, d = x.shape\nreturn x.reshape(b, t, n_heads, d // n_heads).transpose(1, 3)", None],
}, accepted_answers={
    "unflatten / flatten": ["return x.unflatten(-1, (n_heads, -1)).transpose(1, 2)",
                            "return x.transpose(1, 2).flatten(2)"],
    "view and permute, contiguous before view": [
        "b, t, d = x.shape\nreturn x.view(b, t, n_heads, d // n_heads).permute(0, 2, 1, 3)",
        "b, h, t, d_head = x.shape\nreturn x.permute(0, 2, 1, 3).contiguous().view(b, t, h * d_head)"],
})
def check_split_merge(split_heads: Any, merge_heads: Any) -> str:
    import torch

    from dlcourse.attention import merge_heads as merge_reference, split_heads as split_reference

    expect_callable(split_heads, name="split_heads")
    expect_callable(merge_heads, name="merge_heads")
    b, t, h, d_head = 2, 3, 5, 7  # every axis a different length, none a multiple of another
    d = h * d_head
    x = torch.arange(b * t * d, dtype=torch.float32).reshape(b, t, d)  # each number says where it came from
    split = split_heads(x.clone(), h)
    expect_array(split, split_reference(x, h), name=f"split_heads(x, {h})", rtol=0, atol=0, hint=_ORDER_HINT)
    heads = split_reference(x, h) * 1.0
    expect_array(merge_heads(heads.clone()), merge_reference(heads), name="merge_heads(heads)", rtol=0, atol=0,
                 hint=_ORDER_HINT)
    expect_array(merge_heads(split_heads(x.clone(), h)), x, name=f"merge_heads(split_heads(x, {h}))", rtol=0, atol=0, hint=_ORDER_HINT)
    return "split_heads gives head h the features h·d_head … (h+1)·d_head − 1, and merge_heads is its exact inverse."


# ------------------------------------------------------------------------------------------ 09.4
def _mha_code(project: str = "", scores: str = "q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])",
              masking: str = "    scores = scores.masked_fill(~mask, float('-inf'))\n", softmax_dim: int = -1,
              output: str = "mha.out_proj(attn.merge_heads(weights @ v))") -> str:
    """A 09.4 answer with one step changed (the default arguments give the solution)."""
    project = project or "".join(f"{n} = attn.split_heads(mha.{n}_proj(x), h)\n" for n in "qkv")
    return (f"h = mha.n_heads\n{project}scores = {scores}\nif mask is not None:\n{masking}"
            f"weights = torch.softmax(scores, dim={softmax_dim})\nreturn {output}, weights")


@exercise("09.4", "A multi-head attention forward pass", wrong_answers={
    "no output projection": _mha_code(output="attn.merge_heads(weights @ v)"),
    "scaled by √d_model instead of √d_head": _mha_code(scores="q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1])"),
    "keys projected with the query weights": _mha_code(project="q = attn.split_heads(mha.q_proj(x), h)\n"
                                                               "k = attn.split_heads(mha.q_proj(x), h)\n"
                                                               "v = attn.split_heads(mha.v_proj(x), h)\n"),
    "softmax over the query axis": _mha_code(softmax_dim=-2),
    "a causal mask built in place of the mask passed in": _mha_code(masking=(
        "    t = x.shape[1]\n"
        "    scores = scores.masked_fill(~torch.tril(torch.ones(t, t, dtype=torch.bool)), float('-inf'))\n")),
    "heads split by reshape alone (no transpose)": _mha_code(project="b, t, d = x.shape\n" + "".join(
        f"{n} = mha.{n}_proj(x).reshape(b, h, t, d // h)\n" for n in "qkv")),
}, accepted_answers={
    "einsum, queries scaled first": (
        "h = mha.n_heads\n"
        "q, k, v = (attn.split_heads(proj(x), h) for proj in (mha.q_proj, mha.k_proj, mha.v_proj))\n"
        "scores = torch.einsum('bhqd,bhkd->bhqk', q / q.shape[-1] ** 0.5, k)\n"
        "if mask is not None:\n    scores = torch.where(mask, scores, torch.tensor(float('-inf')))\n"
        "weights = scores.softmax(-1)\n"
        "return mha.out_proj(attn.merge_heads(torch.einsum('bhqk,bhkd->bhqd', weights, v))), weights"),
})
def check_multi_head_attention(multi_head_attention: Any) -> str:
    import torch

    from dlcourse.attention import MultiHeadAttention, causal_mask, padding_mask

    expect_callable(multi_head_attention, name="multi_head_attention")
    b, t, h, d_head = 2, 5, 3, 7  # every axis a different length, none a multiple of another
    torch.manual_seed(0)
    mha = MultiHeadAttention(h * d_head, h).eval()
    x = torch.randn(b, t, h * d_head, generator=torch.Generator().manual_seed(1))
    masks = {"no mask": None, "causal mask": torch.from_numpy(causal_mask(t)),
             "padding mask, lengths [5, 3]": torch.from_numpy(padding_mask([5, 3], t))[:, None]}  # (B, 1, 1, T)
    for label, mask in masks.items():
        with torch.no_grad():
            want_out, want_weights = mha(x, mask=mask, need_weights=True)
            got = multi_head_attention(x.clone(), copy.deepcopy(mha), None if mask is None else mask.clone())
            out, weights = _pair(got, f"multi_head_attention(x, mha, mask) ({label})")
        expect_array(weights, want_weights, name=f"weights ({label})", rtol=1e-4, atol=1e-6,
                     hint=_MHA_MASK_HINT if mask is not None else _MHA_HINT)
        expect_array(out, want_out, name=f"output ({label})", rtol=1e-4, atol=1e-6,
                     hint="After weights @ v, merge the heads back to (B, T, d_model) and apply the output projection "
                          "mha.out_proj: it mixes what the heads found.")
    return (f"Output and per-head weights match dlcourse.attention.MultiHeadAttention ({', '.join(masks)}; "
            f"B = {b}, T = {t}, H = {h}, d_head = {d_head}), ≤1e-4.")


_MHA_HINT = ("Shape (B, H, T, T). Project x with mha.q_proj and mha.k_proj (two different matrices), split into heads "
             "with attn.split_heads (reshape, then transpose), scale by √d_head = √(d_model / H), the size of one head's "
             "vectors, and take the softmax over the keys (dim=-1).")
_MHA_MASK_HINT = ("Apply the mask you are given, whatever it is: scores.masked_fill(~mask, float('-inf')) (True = may "
                  "attend). Here it may be a causal (T, T) mask or a padding mask (B, 1, 1, T) that hides padded keys.")


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
    "positions counted from 1": (
        "pos = np.arange(1, t + 1)[:, None]\n"
        "angle = pos / 10000 ** (np.arange(0, d, 2)[None, :] / d)\n"
        "pe = np.zeros((t, d))\n"
        "pe[:, 0::2] = np.sin(angle)\n"
        "pe[:, 1::2] = np.cos(angle)\n"
        "return pe"),
}, accepted_answers={
    "float32, frequencies as exp(−2i·ln(10000)/d)": (
        "pos = np.arange(t, dtype=np.float32)[:, None]\n"
        "freq = np.exp(-np.arange(0, d, 2, dtype=np.float32) * np.float32(np.log(10000.0) / d))\n"
        "pe = np.zeros((t, d), dtype=np.float32)\n"
        "pe[:, 0::2] = np.sin(pos * freq)\n"
        "pe[:, 1::2] = np.cos(pos * freq)\n"
        "return pe"),
    "a list of lists": (
        "return [[(math.sin if j % 2 == 0 else math.cos)(p / 10000 ** ((j - j % 2) / d)) for j in range(d)]\n"
        "        for p in range(t)]"),
})
def check_positional_encoding(positional_encoding: Any) -> str:
    from dlcourse.attention import sinusoidal_positions

    expect_callable(positional_encoding, name="positional_encoding")
    for t, d in ((50, 16), (7, 6), (3, 10)):
        expect_array(positional_encoding(t, d), sinusoidal_positions(t, d), name=f"positional_encoding({t}, {d})",
                     rtol=1e-4, atol=1e-5,
                     hint="Column 2i holds sin(pos / 10000^(2i/d)) and column 2i+1 the cos of the same angle: "
                          "the exponent uses the EVEN column index 2i = np.arange(0, d, 2), and the pairs interleave "
                          "(pe[:, 0::2], pe[:, 1::2]).")
    return "positional_encoding matches PE(pos, 2i) = sin(pos/10000^(2i/d)), PE(pos, 2i+1) = cos(…) for (50, 16), (7, 6) and (3, 10)."
