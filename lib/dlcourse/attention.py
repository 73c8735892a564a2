"""Attention (lab 09): scaled dot-product attention in NumPy and PyTorch, masks, multi-head attention, positions.

Mask convention, everywhere in dlcourse: a **boolean mask with True = "may attend"** (the convention of
``torch.nn.functional.scaled_dot_product_attention``'s boolean ``attn_mask``). ``torch.nn.MultiheadAttention``
and ``nn.TransformerEncoderLayer`` use the opposite for ``key_padding_mask`` / boolean ``attn_mask``
(True = blocked): pass ``~mask`` there. Labs 10 and 11 build on these pieces (``dlcourse.transformer``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse.functions import softmax


# ---------------------------------------------------------------------------------------------- masks
def causal_mask(t: int) -> np.ndarray:
    """(T, T) boolean, True on and below the diagonal: query i may attend to keys 0..i (no peeking ahead)."""
    return np.tril(np.ones((t, t), dtype=bool))


def padding_mask(lengths: Sequence[int], t: int) -> np.ndarray:
    """(B, 1, T) boolean, True where key j is a real token (j < length); broadcasts over the query axis.

    For multi-head scores (B, H, T, T) use ``mask[:, None]``.
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or (lengths < 1).any() or (lengths > t).any():
        raise ValueError(f"lengths must be a 1-D list of integers between 1 and {t}, got {lengths.tolist()}.")
    return (np.arange(t)[None, :] < lengths[:, None])[:, None, :]


# --------------------------------------------------------------------------------- single-head attention
def scaled_dot_product_attention_numpy(q: np.ndarray, k: np.ndarray, v: np.ndarray,
                                       mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """softmax(QKᵀ/√d_k) V in NumPy (Vaswani et al. 2017, eq. 1); returns (output, attention weights).

    q: (..., T_q, d_k), k: (..., T_k, d_k), v: (..., T_k, d_v); mask broadcastable to (..., T_q, T_k),
    True = may attend. Every query must be allowed at least one key.
    """
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = softmax(scores, axis=-1)  # over the keys: each query's weights sum to 1
    return (weights @ v).astype(np.result_type(q, v)), weights.astype(np.result_type(q, v))


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, *,
                                 dropout_p: float = 0.0) -> tuple[Tensor, Tensor]:
    """The same in PyTorch, written out ("naive": it materialises the T_q×T_k weights); returns (output, weights).

    ``F.scaled_dot_product_attention`` computes the same output with a fused kernel that never stores the weights.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


# ----------------------------------------------------------------------------------- multi-head attention
def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """(B, T, H·d_head) → (B, H, T, d_head): head h gets features h·d_head … (h+1)·d_head − 1."""
    b, t, d = x.shape
    if d % n_heads:
        raise ValueError(f"d_model = {d} is not divisible by n_heads = {n_heads}.")
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, T, d_head) → (B, T, H·d_head), the exact inverse of ``split_heads``."""
    b, h, t, d_head = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d_head)


def _as_tensor_mask(mask: Tensor | np.ndarray | None, device: torch.device) -> Tensor | None:
    if mask is None:
        return None
    mask = torch.as_tensor(mask, device=device)
    if mask.dtype != torch.bool:
        raise TypeError("attention masks are boolean (True = may attend).")
    return mask


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al. 2017, §3.2.2): project, split into heads, attend, merge, project.

    Same maths and parameter count as ``nn.MultiheadAttention(d_model, n_heads, batch_first=True)``;
    ``copy_from_torch`` loads that module's weights. Masks: True = may attend, shape broadcastable to
    (B, H, T_q, T_k) — e.g. ``padding_mask(...)[:, None]`` or ``causal_mask(T)``.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model = {d_model} is not divisible by n_heads = {n_heads}.")
        self.d_model, self.n_heads, self.dropout = d_model, n_heads, dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None,
                mask: Tensor | np.ndarray | None = None, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """(B, T_q, d) queries attend to (B, T_k, d) keys/values (self-attention when key/value are None).

        Returns (output (B, T_q, d), per-head weights (B, H, T_q, T_k) or None). Without ``need_weights``
        the fused ``F.scaled_dot_product_attention`` kernel runs; with it, the written-out version.
        """
        key = query if key is None else key
        value = key if value is None else value
        q = split_heads(self.q_proj(query), self.n_heads)
        k = split_heads(self.k_proj(key), self.n_heads)
        v = split_heads(self.v_proj(value), self.n_heads)
        mask = _as_tensor_mask(mask, query.device)
        p = self.dropout if self.training else 0.0
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p=p)
        else:
            out, weights = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p), None
        return self.out_proj(merge_heads(out)), weights

    @torch.no_grad()
    def copy_from_torch(self, other: nn.MultiheadAttention) -> "MultiHeadAttention":
        """Load the weights of an ``nn.MultiheadAttention`` (its packed in_proj = [W_q; W_k; W_v])."""
        if other.embed_dim != self.d_model or other.num_heads != self.n_heads:
            raise ValueError("copy_from_torch needs the same d_model and n_heads.")
        for proj, w in zip((self.q_proj, self.k_proj, self.v_proj), other.in_proj_weight.chunk(3)):
            proj.weight.copy_(w)
        if other.in_proj_bias is not None and self.q_proj.bias is not None:
            for proj, b in zip((self.q_proj, self.k_proj, self.v_proj), other.in_proj_bias.chunk(3)):
                proj.bias.copy_(b)
        self.out_proj.load_state_dict(other.out_proj.state_dict())
        return self


# ------------------------------------------------------------------------------------------- positions
def sinusoidal_positions(t: int, d: int, base: float = 10000.0) -> np.ndarray:
    """(T, d) float32: PE(pos, 2i) = sin(pos / base^(2i/d)), PE(pos, 2i+1) = cos(…) (Vaswani et al. 2017, §3.5)."""
    if d % 2:
        raise ValueError(f"d must be even for sine/cosine pairs, got {d}.")
    pos = np.arange(t, dtype=np.float64)[:, None]
    freq = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)  # one frequency per (sin, cos) pair
    pe = np.zeros((t, d))
    pe[:, 0::2] = np.sin(pos * freq)
    pe[:, 1::2] = np.cos(pos * freq)
    return pe.astype(np.float32)


def attention_benchmark_inputs(batch: int, heads: int, t: int, d_head: int, *, seed: int = 0,
                               device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                               requires_grad: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Seeded random (B, H, T, d_head) q, k, v for timing and parity tests (lab 09 and benchmarks/attention.py)."""
    g = torch.Generator().manual_seed(seed)
    qkv = [torch.randn(batch, heads, t, d_head, generator=g, dtype=dtype).to(device) for _ in range(3)]
    for x in qkv:
        x.requires_grad_(requires_grad)
    return qkv[0], qkv[1], qkv[2]
