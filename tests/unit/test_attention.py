"""dlcourse.attention and dlcourse.transformer agree with PyTorch's own modules (float32, ≤1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse.attention import (MultiHeadAttention, attention_benchmark_inputs, causal_mask, merge_heads,
                                padding_mask, scaled_dot_product_attention, scaled_dot_product_attention_numpy,
                                sinusoidal_positions, split_heads)
from dlcourse.transformer import Encoder, EncoderBlock


def test_numpy_and_torch_attention_match_fused_sdpa_with_causal_mask() -> None:
    q, k, v = attention_benchmark_inputs(2, 3, 7, 8, seed=1)
    mask = torch.from_numpy(causal_mask(7))
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    naive, weights = scaled_dot_product_attention(q, k, v, mask)
    np_out, np_weights = scaled_dot_product_attention_numpy(q.numpy(), k.numpy(), v.numpy(), causal_mask(7))
    assert torch.allclose(naive, fused, atol=1e-5)
    assert np.allclose(np_out, fused.numpy(), atol=1e-5)
    assert np.allclose(np_weights.sum(-1), 1.0) and np.all(np.triu(np_weights[0, 0], 1) == 0)
    assert np_out.dtype == np.float32


def test_padding_mask_shape_and_bad_lengths() -> None:
    m = padding_mask([2, 4], 4)
    assert m.shape == (2, 1, 4) and m[0, 0].tolist() == [True, True, False, False]
    with pytest.raises(ValueError, match="lengths"):
        padding_mask([0, 5], 4)


def test_split_merge_roundtrip() -> None:
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(2, 3, 8)
    h = split_heads(x, 2)
    assert h.shape == (2, 2, 3, 4) and torch.equal(h[0, 1, 0], x[0, 0, 4:])
    assert torch.equal(merge_heads(h), x)


@pytest.mark.parametrize("use_weights", [False, True])
def test_multihead_matches_torch_with_padding(use_weights: bool) -> None:
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    ours = MultiHeadAttention(16, 4).eval().copy_from_torch(theirs)
    x = torch.randn(2, 5, 16)
    keep = torch.from_numpy(padding_mask([5, 3], 5))  # (B, 1, T)
    ref, ref_w = theirs(x, x, x, key_padding_mask=~keep[:, 0], average_attn_weights=False)
    out, w = ours(x, mask=keep[:, None], need_weights=use_weights)
    assert torch.allclose(out, ref, atol=1e-5)
    if use_weights:
        assert torch.allclose(w, ref_w, atol=1e-6)


def test_sinusoidal_positions_formula() -> None:
    pe = sinusoidal_positions(50, 16)
    assert pe.shape == (50, 16) and pe.dtype == np.float32
    assert np.isclose(pe[7, 4], np.sin(7 / 10000 ** (4 / 16))) and np.isclose(pe[7, 5], np.cos(7 / 10000 ** (4 / 16)))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_block_matches_transformer_encoder_layer(norm_first: bool, activation: str) -> None:
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, activation=activation, batch_first=True,
                                        norm_first=norm_first).eval()
    ours = EncoderBlock(32, 4, 64, norm_first=norm_first, activation=activation).eval().copy_from_torch(theirs)
    x = torch.randn(3, 6, 32)
    keep = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 2 + [False] * 4])
    with torch.no_grad():
        ref = theirs(x, src_key_padding_mask=~keep)
        out = ours(x, keep)
        out_w, w = ours.forward_with_attention(x, keep)
    rows = keep[:, :, None].expand_as(ref)  # torch's fast path zeroes padded rows; compare real tokens
    assert torch.allclose(out[rows], ref[rows], atol=1e-5)
    assert torch.allclose(out_w, out, atol=1e-6) and w.shape == (3, 4, 6, 6)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def test_encoder_shapes_attention_maps_and_mode_restored() -> None:
    torch.manual_seed(0)
    enc = Encoder(vocab_size=20, max_len=16, d_model=32, n_heads=4, n_layers=2).train()
    tokens = torch.randint(0, 20, (2, 10))
    assert enc(tokens).shape == (2, 10, 32)
    maps = enc.attention_maps(tokens)
    assert len(maps) == 2 and maps[0].shape == (2, 4, 10, 10) and enc.training
    assert torch.allclose(maps[1].sum(-1), torch.ones(2, 4, 10))
    with pytest.raises(ValueError, match="max_len"):
        enc(torch.zeros(1, 17, dtype=torch.long))
    causal = torch.from_numpy(causal_mask(10))
    enc.eval()
    with torch.no_grad():
        a = enc(tokens, attn_mask=causal)
        tokens2 = tokens.clone()
        tokens2[:, -1] = (tokens2[:, -1] + 1) % 20
        b = enc(tokens2, attn_mask=causal)
    assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-6)  # causal: changing the last token changes no earlier output
