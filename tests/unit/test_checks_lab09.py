"""The lab 09 checks, called directly: they accept right answers and explain the typical wrong ones."""

from __future__ import annotations

import math

import numpy as np
import torch

from dlcourse import attention as attn
from dlcourse.checks.lab09 import (check_attention_numpy, check_masks, check_multi_head_attention,
                                   check_positional_encoding, check_split_merge)
from dlcourse.functions import softmax


def _attention(axis: int = -1, scale: bool = True, wrong_sign: bool = False):
    def attention_numpy(q, k, v, mask=None):
        scores = q @ np.swapaxes(k, -1, -2) / (np.sqrt(q.shape[-1]) if scale else 1.0)
        if mask is not None:
            scores = np.where(mask, -np.inf, scores) if wrong_sign else np.where(mask, scores, -np.inf)
        weights = softmax(scores, axis=axis)
        return weights @ v, weights
    return attention_numpy


def test_attention_numpy() -> None:
    passed = check_attention_numpy.evaluate(_attention())
    assert passed.passed and "4 cases" in passed.message
    no_scale = check_attention_numpy.evaluate(_attention(scale=False))
    assert no_scale.status == "failed" and "√d_k" in no_scale.hint
    wrong_axis = check_attention_numpy.evaluate(_attention(axis=-2))
    assert wrong_axis.status == "failed" and "do not sum to 1" in wrong_axis.message and "axis=-1" in wrong_axis.hint
    wrong_sign = check_attention_numpy.evaluate(_attention(wrong_sign=True))
    assert wrong_sign.status == "failed" and "padding mask" in wrong_sign.message and "-np.inf" in wrong_sign.hint
    only_output = check_attention_numpy.evaluate(lambda q, k, v, mask=None: _attention()(q, k, v, mask)[0])
    assert only_output.status == "failed" and "pair" in only_output.message
    f32 = check_attention_numpy.evaluate(lambda q, k, v, mask=None: tuple(
        np.asarray(a, dtype=np.float32) for a in _attention()(*(np.float32(a) for a in (q, k, v)), mask)))
    assert f32.passed, f32.message
    assert check_attention_numpy.evaluate(None).status == "not_attempted"
    assert "should be a function" in check_attention_numpy.evaluate(3).message


def test_masks() -> None:
    def causal(t):
        return np.tril(np.ones((t, t), dtype=bool))

    def padding(lengths, t):
        return (np.arange(t)[None, :] < np.asarray(lengths)[:, None])[:, None, :]

    assert check_masks.evaluate(causal, padding).passed
    upper = check_masks.evaluate(lambda t: np.triu(np.ones((t, t), dtype=bool)), padding)
    assert upper.status == "failed" and "np.tril" in upper.hint
    no_diag = check_masks.evaluate(lambda t: np.tril(np.ones((t, t), dtype=bool), k=-1), padding)
    assert no_diag.status == "failed" and "sees itself" in no_diag.hint
    query_axis = check_masks.evaluate(causal, lambda lengths, t: padding(lengths, t)[:, 0, :, None])
    assert query_axis.status == "failed" and "shape (2, 5, 1)" in query_axis.message and "KEY" in query_axis.hint
    as_floats = check_masks.evaluate(lambda t: causal(t).astype(float), padding)
    assert as_floats.status == "failed" and "dtype" in as_floats.message

    def stub(*args):
        raise NotImplementedError

    assert check_masks.evaluate(causal, stub).status == "not_attempted"


def test_split_merge() -> None:
    def split(x, h):
        b, t, d = x.shape
        return x.reshape(b, t, h, d // h).transpose(1, 2)

    def merge(x):
        b, h, t, d = x.shape
        return x.transpose(1, 2).reshape(b, t, h * d)

    assert check_split_merge.evaluate(split, merge).passed
    no_transpose = check_split_merge.evaluate(lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1), merge)
    assert no_transpose.status == "failed" and "split_heads(x, 5)" in no_transpose.message
    wrong_merge = check_split_merge.evaluate(split, lambda x: x.reshape(x.shape[0], x.shape[2], -1))
    assert wrong_merge.status == "failed" and "wrong order" in wrong_merge.hint


def _mha(scale_by_model: bool = False, out_proj: bool = True, causal_only: bool = False):
    def multi_head_attention(x, mha, mask=None):
        h = mha.n_heads
        q, k, v = (attn.split_heads(p(x), h) for p in (mha.q_proj, mha.k_proj, mha.v_proj))
        scores = q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1] if scale_by_model else q.shape[-1])
        if mask is not None:
            if causal_only:  # ignores the mask it is given and always hides the future
                mask = torch.tril(torch.ones(x.shape[1], x.shape[1], dtype=torch.bool))
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        merged = attn.merge_heads(weights @ v)
        return (mha.out_proj(merged) if out_proj else merged), weights
    return multi_head_attention


def test_multi_head_attention() -> None:
    passed = check_multi_head_attention.evaluate(_mha())
    assert passed.passed and "causal mask" in passed.message and "padding mask" in passed.message
    causal_only = check_multi_head_attention.evaluate(_mha(causal_only=True))
    assert causal_only.status == "failed" and "padding mask" in causal_only.message and "(B, 1, 1, T)" in causal_only.hint
    model_scale = check_multi_head_attention.evaluate(_mha(scale_by_model=True))
    assert model_scale.status == "failed" and "weights (no mask)" in model_scale.message and "d_head" in model_scale.hint
    no_out = check_multi_head_attention.evaluate(_mha(out_proj=False))
    assert no_out.status == "failed" and "output (no mask)" in no_out.message and "out_proj" in no_out.hint


def test_positional_encoding() -> None:
    def right(t, d):
        angle = np.arange(t)[:, None] / 10000 ** (np.arange(0, d, 2)[None, :] / d)
        pe = np.zeros((t, d))
        pe[:, 0::2], pe[:, 1::2] = np.sin(angle), np.cos(angle)
        return pe

    assert check_positional_encoding.evaluate(right).passed
    assert check_positional_encoding.evaluate(lambda t, d: right(t, d).astype(np.float32)).passed
    swapped = check_positional_encoding.evaluate(lambda t, d: right(t, d)[:, [i ^ 1 for i in range(d)]])
    assert swapped.status == "failed" and "2i" in swapped.hint
    assert "shape" in check_positional_encoding.evaluate(lambda t, d: right(t, d).T).message


def _parity_rows(monkeypatch, capsys, answer) -> tuple[float, str]:
    """Run the solution's cells from the set-up to the nn.MultiheadAttention parity table, with exercise 09.4 replaced
    by `answer` (a registered answer, None for the lab's stub, or "solution"); return the largest difference between
    the student's multi_head_attention and PyTorch's module, and what the cells printed."""
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    from dlcourse import notebooks

    nb = notebooks.read(Path(__file__).resolve().parents[2] / "solutions" / "09_attention.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    ns: dict = {}
    for cell in code:
        source = cell.source
        if notebooks.meta(cell).get("exercise") == "09.4" and answer != "solution":
            source = notebooks.replace_regions(source, answer, "09.4")
        if notebooks.meta(cell).get("check") or "subprocess" in source:
            continue
        capsys.readouterr()
        exec(source, ns)
        if "mha_worst = " in source:
            break
    rows = ns["rows"]
    return max(float(r[1]) for r in rows), capsys.readouterr().out


def test_parity_runs_the_students_multi_head_attention(monkeypatch, capsys) -> None:
    """The nn.MultiheadAttention parity table runs the student's multi_head_attention: a registered wrong answer moves
    it from float32 rounding to a visible gap with a sentence; unsolved, the reference stands in, said in a sentence."""
    from dlcourse.check import registry

    wrong = registry("09")["09.4"].wrong_answers
    right, printed = _parity_rows(monkeypatch, capsys, "solution")
    assert right < 1e-5 and "run the check" not in printed
    no_out, printed = _parity_rows(monkeypatch, capsys, wrong["no output projection"])
    assert no_out > 1e-2 and "run the check of 09.4" in printed
    unsolved, printed = _parity_rows(monkeypatch, capsys, None)
    assert unsolved < 1e-5 and "solve exercise 09.4 first" in printed and "reference stands in" in printed
