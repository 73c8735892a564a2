"""The lab 14 checks, called directly: they accept the course's reference answers, say "not attempted" for the
stubs, explain wrong ones; and a registered wrong answer swapped into the lab's own cells changes what it trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dlcourse import bpe, gpt, sampling
from dlcourse.check import registry
from dlcourse.checks.lab14 import (check_bpe, check_causal_attention, check_decoder_block, check_gpt, check_kv_cache,
                                   check_top_p, check_train_step)
from dlcourse.notebooks import meta, read, replace_regions

SOLUTION = Path(__file__).resolve().parents[2] / "solutions" / "14_gpt_from_scratch.ipynb"


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise 14.1: replace this line with your code.")


def test_every_check_passes_the_reference_and_waits_for_the_stub() -> None:
    cases = [(check_bpe, (bpe.count_pairs, bpe.merge_pair)), (check_causal_attention, (gpt.CausalSelfAttention,)),
             (check_decoder_block, (gpt.DecoderBlock,)), (check_gpt, (gpt.GPT,)),
             (check_train_step, (gpt.train_step,)), (check_top_p, (sampling.top_p_filter,)),
             (check_kv_cache, (gpt.cached_attention,))]
    for check, answers in cases:
        result = check.evaluate(*answers)
        assert result.passed, (check.id, result.message)
        assert check.evaluate(*[_stub] * len(answers)).status == "not_attempted", check.id
        assert check.evaluate(*[None] * len(answers)).status == "not_attempted", check.id
    assert len(registry("14")) == 7


def test_a_check_turns_bad_input_into_a_sentence() -> None:
    assert "should be a function" in check_bpe.evaluate("pairs", bpe.merge_pair).message
    assert "dict" in check_bpe.evaluate(lambda words: [1, 2], bpe.merge_pair).message

    class Renamed(torch.nn.Module):
        def __init__(self, d_model, n_heads):
            super().__init__()
            self.ln1, self.ln2 = torch.nn.LayerNorm(d_model), torch.nn.LayerNorm(d_model)
            self.attn = torch.nn.Linear(d_model, d_model)
            self.mlp = torch.nn.Sequential()

        def forward(self, x):
            return x

    result = check_decoder_block.evaluate(Renamed)
    assert result.status == "failed" and "sub-modules" in result.message


def test_top_p_one_token_too_few_is_named() -> None:
    def too_few(logits, p):
        probs, order = torch.softmax(logits, dim=-1).sort(dim=-1, descending=True)
        drop = (probs.cumsum(-1) >= p)
        return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))

    result = check_top_p.evaluate(too_few)
    assert result.status == "failed" and "nucleus" in result.message and "takes the total past p" in result.hint


def test_the_cache_must_append_before_attending() -> None:
    def replaced(attn, x, cache):
        q, k, v = (gpt.split_heads(t, attn.n_heads) for t in attn.qkv(x).split(attn.d_model, dim=-1))
        cache["k"], cache["v"] = k, v
        return attn.proj(gpt.merge_heads(torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)))

    result = check_kv_cache.evaluate(replaced)
    assert result.status == "failed" and "full recomputation" in result.message


# ------------------------------------------------------------------- the lab's own cells, with a wrong answer
def _lab_classes(answers: dict) -> dict:
    """Run the solution's exercise cells 14.2-14.5 (with ``answers`` replacing regions) and return their namespace."""
    nb = read(SOLUTION)
    code = [c for c in nb.cells if c.cell_type == "code"]
    namespace: dict = {}
    exec(next(c.source for c in code if "import math" in c.source and "load_text" in c.source)
         .split("seed_everything(SEED)")[0], namespace)
    for exercise_id in ("14.2", "14.3", "14.4", "14.5"):
        source = next(c.source for c in code if meta(c).get("exercise") == exercise_id)
        if exercise_id in answers:
            source = replace_regions(source, answers[exercise_id], exercise_id)
        exec(source, namespace)
    return namespace


def _train(namespace: dict, text: str) -> float:
    ids = torch.tensor([ord(c) - 97 for c in text])
    cut = int(len(ids) * 0.9)
    torch.manual_seed(0)
    model = namespace["GPT"](26, 16, 32, 4, 1)
    config = gpt.TrainConfig(steps=60, batch_size=16, lr=3e-3, warmup=5, eval_every=60)
    gpt.train_gpt(model, ids[:cut], ids[cut:], config, step=namespace["train_step"], progress=False)
    return gpt.heldout_nats_per_char(model, ids[cut:], torch.ones(26, dtype=torch.long))


@pytest.mark.lab("14")
def test_without_the_causal_mask_the_lab_model_reads_its_targets() -> None:
    """Random letters cannot be predicted (ln 26 ≈ 3.26 nats): the lab's model with the solution stays near that,
    the registered "no causal mask" answer sees the next letter and its held-out loss falls below it."""
    text = "".join(chr(97 + i) for i in torch.randint(0, 26, (6000,), generator=torch.Generator().manual_seed(1)))
    wrong = registry("14")["14.2"].wrong_answers["no causal mask (every position sees the future)"]
    honest = _train(_lab_classes({}), text)
    cheating = _train(_lab_classes({"14.2": wrong}), text)
    assert honest > 3.0, honest
    assert cheating < honest - 0.1, (cheating, honest)  # measured: 3.14 vs 3.29 after 60 steps


@pytest.mark.lab("14")
def test_unshifted_targets_change_what_the_lab_trains() -> None:
    """With the targets not shifted the model learns to copy its input: on text with structure (a repeated
    alphabet) the honest model predicts the next letter, the copying one cannot."""
    text = "abcdefghijklmnopqrstuvwxyz" * 250
    wrong = registry("14")["14.5"].wrong_answers["targets not shifted (predicts the token it is given)"]
    honest = _train(_lab_classes({}), text)
    copying = _train(_lab_classes({"14.5": wrong}), text)
    assert honest < 1.5 and copying > honest + 2.0, (honest, copying)  # measured: 0.99 vs 4.13
