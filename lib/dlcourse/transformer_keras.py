"""The lab 10 encoder block in Keras, from ``keras.layers.MultiHeadAttention`` + ``LayerNormalization`` + ``Dense``.

Same maths as ``dlcourse.transformer.EncoderBlock`` (post-LN or pre-LN); ``copy_from_torch`` loads a torch block's
weights so the two frameworks can be compared number for number. Two details make that parity possible:

* LayerNorm epsilon: torch uses 1e-5, Keras's ``LayerNormalization`` defaults to 1e-3; we pass 1e-5.
* Kernel layouts: ``Dense`` computes x @ kernel, torch's ``Linear`` x @ Wᵀ, so kernel = Wᵀ. Keras's multi-head
  attention keeps the heads as a separate axis: query/key/value kernels are (d_model, heads, d_head) with biases
  (heads, d_head), and the output kernel is (heads, d_head, d_model). Torch's head h uses features h·d_head…(h+1)·d_head−1,
  so the torch matrices only need a transpose and a reshape.

Import this module only after setting KERAS_BACKEND (it imports keras).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


class KerasEncoderBlock(keras.layers.Layer):
    """Self-attention → add & norm → position-wise FFN → add & norm, in Keras (post-LN by default)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1, *, norm_first: bool = False,
                 activation: str = "relu", layer_norm_eps: float = 1e-5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if d_model % n_heads:
            raise ValueError(f"d_model = {d_model} is not divisible by n_heads = {n_heads}.")
        self.d_model, self.n_heads, self.norm_first = d_model, n_heads, norm_first
        self.self_attn = keras.layers.MultiHeadAttention(n_heads, key_dim=d_model // n_heads, dropout=dropout)
        self.linear1 = keras.layers.Dense(d_ff, activation=activation)  # "relu" or "gelu" (exact, like torch's)
        self.linear2 = keras.layers.Dense(d_model)
        self.norm1 = keras.layers.LayerNormalization(epsilon=layer_norm_eps)  # Keras's default 1e-3 ≠ torch's 1e-5
        self.norm2 = keras.layers.LayerNormalization(epsilon=layer_norm_eps)
        self.dropout, self.dropout1, self.dropout2 = (keras.layers.Dropout(dropout) for _ in range(3))

    def build(self, input_shape: tuple) -> None:
        self.self_attn.build(input_shape, input_shape)
        self.linear1.build(input_shape)
        self.linear2.build((*input_shape[:-1], self.linear1.units))
        self.norm1.build(input_shape)
        self.norm2.build(input_shape)
        self.built = True

    def feed_forward(self, x: Any, training: bool = False) -> Any:
        return self.linear2(self.dropout(self.linear1(x), training=training))

    def _attend(self, x: Any, mask: Any, training: bool) -> Any:
        out = self.self_attn(x, x, attention_mask=mask, training=training)
        return self.dropout1(out, training=training)

    def call(self, x: Any, key_padding: Any = None, training: bool = False) -> Any:
        """(B, T, d) → (B, T, d). key_padding: (B, T) True for real tokens (hidden from every query when False)."""
        mask = None
        if key_padding is not None:  # Keras's attention_mask is (B, T_q, T_k), True = may attend
            keep = keras.ops.cast(key_padding, "bool")[:, None, :]
            mask = keras.ops.broadcast_to(keep, (keras.ops.shape(x)[0], keras.ops.shape(x)[1], keras.ops.shape(x)[1]))
        if self.norm_first:
            x = x + self._attend(self.norm1(x), mask, training)
            return x + self.dropout2(self.feed_forward(self.norm2(x), training), training=training)
        x = self.norm1(x + self._attend(x, mask, training))
        return self.norm2(x + self.dropout2(self.feed_forward(x, training), training=training))


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def copy_from_torch(block: KerasEncoderBlock, torch_block: Any) -> KerasEncoderBlock:
    """Load a ``dlcourse.transformer.EncoderBlock``'s weights into ``block`` (built on first use if needed)."""
    d, h = block.d_model, block.n_heads
    if not block.built:
        block.build((None, None, d))
    attn = torch_block.self_attn
    for dense, proj in ((block.self_attn.query_dense, attn.q_proj), (block.self_attn.key_dense, attn.k_proj),
                        (block.self_attn.value_dense, attn.v_proj)):
        dense.set_weights([_numpy(proj.weight).T.reshape(d, h, d // h), _numpy(proj.bias).reshape(h, d // h)])
    block.self_attn.output_dense.set_weights([_numpy(attn.out_proj.weight).T.reshape(h, d // h, d),
                                              _numpy(attn.out_proj.bias)])
    for dense, linear in ((block.linear1, torch_block.linear1), (block.linear2, torch_block.linear2)):
        dense.set_weights([_numpy(linear.weight).T, _numpy(linear.bias)])
    for norm, torch_norm in ((block.norm1, torch_block.norm1), (block.norm2, torch_block.norm2)):
        norm.set_weights([_numpy(torch_norm.weight), _numpy(torch_norm.bias)])
    return block


def keras_block_from_torch(torch_block: Any) -> KerasEncoderBlock:
    """A KerasEncoderBlock with the same sizes, options and weights as a torch ``EncoderBlock``."""
    block = KerasEncoderBlock(torch_block.linear1.in_features, torch_block.self_attn.n_heads,
                              torch_block.linear1.out_features, torch_block.dropout.p,
                              norm_first=torch_block.norm_first, activation=torch_block.activation,
                              layer_norm_eps=torch_block.norm1.eps)
    return copy_from_torch(block, torch_block)
