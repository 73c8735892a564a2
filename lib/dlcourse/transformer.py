"""The Transformer encoder (lab 10) built from the lab 09 pieces; lab 11's tiny BERT is an ``Encoder`` + MLM head.

``EncoderBlock`` mirrors ``torch.nn.TransformerEncoderLayer`` (same sub-module names, same maths, post-LN or
pre-LN) so ``copy_from_torch`` makes the two agree to float32 rounding. Masks: True = may attend
(see ``dlcourse.attention``); a key-padding mask is (B, T) with True for real tokens.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse.attention import MultiHeadAttention, sinusoidal_positions

Activation = Literal["relu", "gelu"]


def _attention_mask(key_padding: Tensor | None, attn_mask: Tensor | None) -> Tensor | None:
    """Combine a (B, T_k) key-padding mask and a (T_q, T_k) mask into one broadcastable to (B, H, T_q, T_k)."""
    mask = None if key_padding is None else key_padding[:, None, None, :]
    if attn_mask is not None:
        mask = attn_mask if mask is None else mask & attn_mask
    return mask


class EncoderBlock(nn.Module):
    """Self-attention → add & norm → position-wise FFN → add & norm (Vaswani et al. 2017, §3.1).

    ``norm_first=False`` is the original post-LN block: x = LN(x + Sublayer(x)).
    ``norm_first=True`` is pre-LN: x = x + Sublayer(LN(x)), in use by 2019 (GPT-2) and analysed by
    Xiong et al. 2020, who argue it needs no warm-up.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1, *,
                 norm_first: bool = False, activation: Activation = "relu", layer_norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout, self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm_first, self.activation = norm_first, activation

    def feed_forward(self, x: Tensor) -> Tensor:
        """FFN(x) = W₂ act(W₁x + b₁) + b₂, applied to every position independently."""
        act = F.gelu if self.activation == "gelu" else F.relu
        return self.linear2(self.dropout(act(self.linear1(x))))

    def _attend(self, x: Tensor, mask: Tensor | None, need_weights: bool) -> tuple[Tensor, Tensor | None]:
        out, weights = self.self_attn(x, mask=mask, need_weights=need_weights)
        return self.dropout1(out), weights

    def forward_with_attention(self, x: Tensor, key_padding: Tensor | None = None,
                               attn_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, T, d) → ((B, T, d), attention weights (B, H, T, T))."""
        return self._forward(x, _attention_mask(key_padding, attn_mask), need_weights=True)

    def forward(self, x: Tensor, key_padding: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        """(B, T, d) → (B, T, d). key_padding: (B, T) True for real tokens; attn_mask: (T, T) True = may attend."""
        return self._forward(x, _attention_mask(key_padding, attn_mask), need_weights=False)[0]

    def _forward(self, x: Tensor, mask: Tensor | None, need_weights: bool) -> tuple[Tensor, Tensor | None]:
        if self.norm_first:
            a, weights = self._attend(self.norm1(x), mask, need_weights)
            x = x + a
            x = x + self.dropout2(self.feed_forward(self.norm2(x)))
        else:
            a, weights = self._attend(x, mask, need_weights)
            x = self.norm1(x + a)
            x = self.norm2(x + self.dropout2(self.feed_forward(x)))
        return x, weights

    @torch.no_grad()
    def copy_from_torch(self, layer: nn.TransformerEncoderLayer) -> "EncoderBlock":
        """Load the weights of an ``nn.TransformerEncoderLayer`` (batch_first=True, same sizes)."""
        self.self_attn.copy_from_torch(layer.self_attn)
        for name in ("linear1", "linear2", "norm1", "norm2"):
            getattr(self, name).load_state_dict(getattr(layer, name).state_dict())
        return self


class Encoder(nn.Module):
    """Token embedding + positions (learned or sinusoidal) + N encoder blocks (+ final LayerNorm when pre-LN).

    The body of lab 10's sequence model and of lab 11's tiny BERT (Devlin et al. 2019 use learned positions).
    """

    def __init__(self, vocab_size: int, max_len: int, d_model: int = 128, n_heads: int = 4, n_layers: int = 2,
                 d_ff: int | None = None, dropout: float = 0.1, *, positions: Literal["learned", "sinusoidal"] = "learned",
                 norm_first: bool = True, activation: Activation = "gelu", embedding_norm: bool = False) -> None:
        super().__init__()
        self.max_len, self.d_model = max_len, d_model
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        if positions == "learned":
            self.position_embedding = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        else:
            self.register_buffer("position_embedding", torch.from_numpy(sinusoidal_positions(max_len, d_model)))
        # BERT normalises the summed embeddings before the first (post-LN) block; lab 10/11's pre-LN encoders do not
        self.embedding_norm = nn.LayerNorm(d_model) if embedding_norm else nn.Identity()
        self.embedding_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(d_model, n_heads, d_ff or 4 * d_model, dropout, norm_first=norm_first, activation=activation)
            for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def embed(self, tokens: Tensor) -> Tensor:
        """(B, T) token ids → (B, T, d): token vector + position vector (then LayerNorm when ``embedding_norm``)."""
        t = tokens.shape[1]
        if t > self.max_len:
            raise ValueError(f"sequence length {t} is longer than max_len = {self.max_len}.")
        return self.embedding_dropout(self.embedding_norm(self.token_embedding(tokens) + self.position_embedding[:t]))

    def forward(self, tokens: Tensor, key_padding: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        """(B, T) token ids → (B, T, d) contextual vectors."""
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, key_padding, attn_mask)
        return self.final_norm(x)

    @torch.no_grad()
    def attention_maps(self, tokens: Tensor, key_padding: Tensor | None = None) -> list[Tensor]:
        """Per-layer attention weights [(B, H, T, T), …] for ``tokens`` (model put in eval mode, mode restored)."""
        was_training = self.training
        self.eval()
        try:
            x, maps = self.embed(tokens), []
            for block in self.blocks:
                x, weights = block.forward_with_attention(x, key_padding)
                maps.append(weights)
            return maps
        finally:
            self.train(was_training)



# ------------------------------------------------------------------------ lab 10: a block as plain parts
def block_parts(d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0, *, activation: Activation = "relu",
                layer_norm_eps: float = 1e-5) -> nn.ModuleDict:
    """The sub-modules of one encoder block in a plain container with no forward pass of its own (lab 10's
    students write that): ``self_attn`` (lab 09's attention, returns (output, weights)), ``linear1``,
    ``activation``, ``dropout`` (inside the FFN), ``linear2``, ``norm1``, ``norm2``, ``dropout1`` (on the attention
    output) and ``dropout2`` (on the FFN output). Same names as ``EncoderBlock`` and ``nn.TransformerEncoderLayer``."""
    return nn.ModuleDict({
        "self_attn": MultiHeadAttention(d_model, n_heads, dropout=dropout),
        "linear1": nn.Linear(d_model, d_ff),
        "activation": nn.GELU() if activation == "gelu" else nn.ReLU(),
        "dropout": nn.Dropout(dropout),
        "linear2": nn.Linear(d_ff, d_model),
        "norm1": nn.LayerNorm(d_model, eps=layer_norm_eps),
        "norm2": nn.LayerNorm(d_model, eps=layer_norm_eps),
        "dropout1": nn.Dropout(dropout),
        "dropout2": nn.Dropout(dropout),
    })


def parts_of(block: EncoderBlock) -> nn.ModuleDict:
    """``block``'s own sub-modules (shared, not copied) as ``block_parts`` lays them out."""
    return nn.ModuleDict({
        "self_attn": block.self_attn, "linear1": block.linear1,
        "activation": nn.GELU() if block.activation == "gelu" else nn.ReLU(), "dropout": block.dropout,
        "linear2": block.linear2, "norm1": block.norm1, "norm2": block.norm2,
        "dropout1": block.dropout1, "dropout2": block.dropout2,
    })


def parts_feed_forward(x: Tensor, parts: nn.ModuleDict) -> Tensor:
    """linear1 → activation → dropout → linear2, at every position (the reference for lab 10's FFN)."""
    return parts.linear2(parts.dropout(parts.activation(parts.linear1(x))))


def post_ln_forward(x: Tensor, parts: nn.ModuleDict, mask: Tensor | None = None) -> Tensor:
    """Post-LN from parts: x = LN₁(x + drop₁(Attn(x))), then x = LN₂(x + drop₂(FFN(x))). mask: True = may attend."""
    a, _ = parts.self_attn(x, mask=mask)
    x = parts.norm1(x + parts.dropout1(a))
    return parts.norm2(x + parts.dropout2(parts_feed_forward(x, parts)))


def pre_ln_forward(x: Tensor, parts: nn.ModuleDict, mask: Tensor | None = None) -> Tensor:
    """Pre-LN from parts: x = x + drop₁(Attn(LN₁(x))), then x = x + drop₂(FFN(LN₂(x)))."""
    a, _ = parts.self_attn(parts.norm1(x), mask=mask)
    x = x + parts.dropout1(a)
    return x + parts.dropout2(parts_feed_forward(parts.norm2(x), parts))
