"""The Keras encoder block matches dlcourse.transformer.EncoderBlock (and so nn.TransformerEncoderLayer) given its weights."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import numpy as np
import pytest
import torch

keras = pytest.importorskip("keras")

from dlcourse.transformer import EncoderBlock  # noqa: E402
from dlcourse.transformer_keras import KerasEncoderBlock, copy_from_torch, keras_block_from_torch  # noqa: E402


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_keras_block_matches_torch_block(norm_first: bool, activation: str) -> None:
    torch.manual_seed(0)
    ours = EncoderBlock(32, 4, 64, norm_first=norm_first, activation=activation).eval()
    with torch.no_grad():  # non-default LayerNorm parameters, so a mix-up of norm1 and norm2 would show
        for norm in (ours.norm1, ours.norm2):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    block = keras_block_from_torch(ours)
    x = torch.randn(3, 6, 32)
    keep = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 2 + [False] * 4])
    with torch.no_grad():
        want = ours(x, keep).numpy()
    got = keras.ops.convert_to_numpy(block(x.numpy(), keep.numpy()))
    assert np.abs(got - want)[keep.numpy()].max() <= 1e-5
    no_mask = keras.ops.convert_to_numpy(block(x.numpy()))
    with torch.no_grad():
        assert np.abs(no_mask - ours(x).numpy()).max() <= 1e-5
    assert block.count_params() == sum(p.numel() for p in ours.parameters())
    assert block.norm1.epsilon == 1e-5 and block.norm_first == norm_first


def test_kernel_layouts_and_bad_sizes() -> None:
    torch.manual_seed(1)
    ours = EncoderBlock(16, 2, 32).eval()
    block = copy_from_torch(KerasEncoderBlock(16, 2, 32), ours)
    q = block.self_attn.query_dense
    assert tuple(q.kernel.shape) == (16, 2, 8) and tuple(q.bias.shape) == (2, 8)
    assert tuple(block.self_attn.output_dense.kernel.shape) == (2, 8, 16)
    # head 1's query weights are torch's rows 8..15 of W_q, transposed
    assert np.allclose(np.asarray(q.kernel.numpy())[:, 1, :], ours.self_attn.q_proj.weight.detach().numpy()[8:].T)
    with pytest.raises(ValueError, match="divisible"):
        KerasEncoderBlock(10, 3, 20)
