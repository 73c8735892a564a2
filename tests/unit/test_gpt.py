"""dlcourse.gpt and dlcourse.sampling: the reference model is causal and tied, the cache equals recomputation,
nats per character counts characters, and the samplers keep what they promise."""

from __future__ import annotations

import pytest
import torch

from dlcourse import gpt, sampling

pytestmark = pytest.mark.lab("14")


def _model(block_size: int = 12) -> gpt.GPT:
    torch.manual_seed(0)
    return gpt.GPT(15, block_size, 16, 2, 2).eval()


def test_the_model_is_causal_and_its_output_layer_is_the_embedding() -> None:
    model = _model()
    assert model.head.weight is model.token_embedding.weight
    ids = torch.randint(0, 15, (2, 10))
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 15
    with torch.no_grad():
        assert torch.allclose(model(ids)[:, :-1], model(changed)[:, :-1])
    assert gpt.count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_cached_decoding_equals_full_recomputation() -> None:
    model = _model()
    gaps = sampling.cache_logit_gap(model, torch.randint(0, 15, (2, 3)), 9)
    assert len(gaps) == 9 and max(gaps) < 1e-5
    with pytest.raises(ValueError, match="do not fit"):
        sampling.generate(model, torch.zeros(1, 5, dtype=torch.long), 10, cache=True)
    greedy = sampling.generate(model, torch.zeros(1, 2, dtype=torch.long), 8, temperature=0.0)
    assert torch.equal(greedy, sampling.generate(model, torch.zeros(1, 2, dtype=torch.long), 8, temperature=0.0,
                                                 cache=True))
    assert gpt.kv_cache_bytes_per_token(3, 128, 4) == 3072


def test_nats_per_character_divides_by_the_characters_the_scored_tokens_spell() -> None:
    model = _model(block_size=4)
    ids = torch.randint(0, 15, (23,))
    per_token = gpt.loss_per_token(model, gpt.fixed_chunks(ids, 5))
    lengths = torch.full((15,), 2)
    assert gpt.heldout_nats_per_char(model, ids, lengths) == pytest.approx(per_token / 2)


def test_top_p_and_top_k_keep_the_most_probable_tokens() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.5, 0.0, 5.0, -0.5]]).log_softmax(-1)
    kept = torch.isfinite(sampling.top_p_filter(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False], [False, False, True, False]]
    assert torch.isfinite(sampling.top_k_filter(logits, 3)).sum(-1).tolist() == [3, 3]
    assert sampling.next_token(logits, temperature=0.0).tolist() == [0, 2]


def test_a_few_training_steps_lower_the_loss() -> None:
    ids = torch.tensor([0, 1, 2, 3, 4] * 200)
    model = _model(block_size=8).train()
    config = gpt.TrainConfig(steps=30, batch_size=8, lr=1e-2, warmup=3, eval_every=10, eval_chunks=4)
    history = gpt.train_gpt(model, ids, ids, config, progress=False)
    assert history.val_loss[-1] < history.val_loss[0] and history.step == [10, 20, 30]
