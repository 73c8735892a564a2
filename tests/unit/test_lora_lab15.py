"""Lab 15's LoRA: the library (``dlcourse.finetune.lora``) and the checks of 15.3-15.5. Each check passes the
reference and the solution cell, waits for the stub, rejects every registered wrong answer with a sentence and
passes every accepted one; a wrong answer swapped into the downstream code changes what it computes; and the
course's LoRA agrees with peft's on a post-LN tiny BERT."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dlcourse.checks.lab14_support import randomise
from dlcourse.checks.lab15_lora import (CELL_IMPORTS, SOLUTION_CELLS, check_lora_linear, check_merge_lora,
                                        check_set_trainable)
from dlcourse.finetune import lora
from dlcourse.finetune.shipped import bert_config
from dlcourse.mlm_model import TinyBert
from dlcourse.notebooks import replace_regions

CHECKS = {"15.3": (check_lora_linear, "LoRALinear", lora.LoRALinear),
          "15.4": (check_set_trainable, "set_trainable", lora.set_trainable),
          "15.5": (check_merge_lora, "merge_lora", lora.merge_lora)}


def _cell(exercise_id: str, answer=False):
    """The exercise cell's object after running its source with ``answer`` in the solution regions (False: the
    solution itself, None: the lab's stub); 15.5's cell runs after the reference LoRALinear is defined."""
    source = SOLUTION_CELLS[exercise_id]
    if answer is not False:
        source = replace_regions(source, answer, exercise_id)
    namespace: dict = {"LoRALinear": lora.LoRALinear}
    exec(CELL_IMPORTS + "\n" + source, namespace)
    return namespace[CHECKS[exercise_id][1]]


def _variants(kind: str):
    return [pytest.param(i, label, id=f"{i} {label}") for i, (check, _, _) in CHECKS.items()
            for label in getattr(check, kind)]


@pytest.mark.parametrize("exercise_id", list(CHECKS))
def test_the_check_passes_the_reference_and_the_solution_cell_and_waits_for_the_stub(exercise_id: str) -> None:
    check, _, reference = CHECKS[exercise_id]
    for answer in (reference, _cell(exercise_id)):
        result = check.evaluate(answer)
        assert result.passed, (exercise_id, result.message, result.hint)
    assert check.evaluate(None).status == "not_attempted"
    assert check.evaluate(_cell(exercise_id, None)).status == "not_attempted"


@pytest.mark.parametrize("exercise_id,label", _variants("wrong_answers"))
def test_every_registered_wrong_answer_is_rejected_with_a_sentence(exercise_id: str, label: str) -> None:
    check = CHECKS[exercise_id][0]
    result = check.evaluate(_cell(exercise_id, check.wrong_answers[label]))
    assert result.status == "failed", (label, result.message)
    assert result.message.endswith((".", ")")) and "Traceback" not in result.message, result.message
    assert not result.message.startswith("Running your code raised"), result.message  # a reason, not a crash


@pytest.mark.parametrize("exercise_id,label", _variants("accepted_answers"))
def test_every_accepted_alternative_passes(exercise_id: str, label: str) -> None:
    check = CHECKS[exercise_id][0]
    result = check.evaluate(_cell(exercise_id, check.accepted_answers[label]))
    assert result.passed, (label, result.message, result.hint)


def test_the_checks_name_the_mistake() -> None:
    wrong = check_lora_linear.wrong_answers
    assert "zero" in check_lora_linear.evaluate(_cell("15.3", wrong["B random like A (the model changes before any "
                                                                     "training)"])).message
    assert "alpha / r" in check_lora_linear.evaluate(_cell("15.3", wrong["scaling by r"])).hint
    assert "requires_grad" in check_lora_linear.evaluate(_cell("15.3", wrong["base weights left trainable"])).message
    merged = check_merge_lora.evaluate(_cell("15.5", check_merge_lora.wrong_answers["no scaling"]))
    assert "scaling" in merged.hint
    transposed = check_merge_lora.wrong_answers["A and B multiplied the wrong way round (the update transposed)"]
    assert "transposed" in check_merge_lora.evaluate(_cell("15.5", transposed)).hint
    probe = check_set_trainable.evaluate(_cell("15.4", check_set_trainable.wrong_answers[
        "probe: the encoder put in eval mode, not frozen"]))
    assert "still trains" in probe.message and "eval()" in probe.hint
    assert "should be a function" in check_set_trainable.evaluate("probe").message


def test_set_trainable_must_not_touch_the_weights() -> None:
    def reinitialises_the_head(classifier, method):
        classifier.head.reset_parameters()
        return lora.set_trainable(classifier, method)

    result = check_set_trainable.evaluate(reinitialises_the_head)
    assert result.status == "failed" and "changed the values" in result.message


# ------------------------------------------------------------------------------------------- the library
def _tiny_bert(seed: int = 0) -> TinyBert:
    """The shipped architecture (post-LN, embedding LayerNorm) with random weights."""
    torch.manual_seed(seed)
    model = TinyBert(bert_config(68))
    randomise(model, seed=seed, std=0.05)
    return model.eval()


def test_add_lora_wraps_query_and_value_and_starts_equal() -> None:
    model = _tiny_bert()
    ids = torch.randint(0, 68, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(ids)
        wrapped = lora.add_lora(copy.deepcopy(model), 4, 8)
        assert torch.equal(wrapped(ids), before)  # B = 0: exactly the pre-trained function
    names = [n for n, m in wrapped.named_modules() if isinstance(m, lora.LoRALinear)]
    assert names == [f"encoder.blocks.{i}.self_attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")]
    with pytest.raises(ValueError, match="nothing to wrap"):
        lora.add_lora(nn.Sequential(nn.Linear(3, 2)), 2, 4)


def test_merge_all_lora_keeps_the_function() -> None:
    model = lora.add_lora(_tiny_bert(), 3, 5)
    with torch.no_grad():
        for m in model.modules():
            if lora.is_lora_layer(m):
                m.lora_B.normal_(0, 0.2)
        ids = torch.randint(0, 68, (2, 17), generator=torch.Generator().manual_seed(2))
        want = model(ids)
        merged = lora.merge_all_lora(model)
        assert not any(lora.is_lora_layer(m) for m in merged.modules())
        assert float((merged(ids) - want).abs().max()) < 1e-5


class _Classifier(nn.Module):
    def __init__(self, model: TinyBert) -> None:
        super().__init__()
        self.encoder, self.head = copy.deepcopy(model.encoder), nn.Linear(model.config.d_model, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ids)[:, 0])


def _fine_tune(set_trainable, method: str, lora_class=lora.LoRALinear, steps: int = 3) -> tuple[int, nn.Module]:
    torch.manual_seed(3)
    classifier = _Classifier(_tiny_bert())
    if method == "lora":
        lora.add_lora(classifier.encoder, 4, 8, lora_class=lora_class)
    count = set_trainable(classifier, method)
    optimizer = torch.optim.AdamW([p for p in classifier.parameters() if p.requires_grad], lr=1e-2)
    g = torch.Generator().manual_seed(4)
    for _ in range(steps):
        ids, labels = torch.randint(0, 68, (8, 12), generator=g), torch.randint(0, 2, (8,), generator=g)
        optimizer.zero_grad()
        nn.functional.cross_entropy(classifier(ids), labels).backward()
        optimizer.step()
    return count, classifier


def test_set_trainable_counts_and_freezes() -> None:
    model = _tiny_bert()
    counts = {m: _fine_tune(lora.set_trainable, m, steps=0)[0] for m in lora.METHODS}
    head = 128 * 2 + 2
    assert counts["probe"] == head
    assert counts["lora"] == head + 2 * 2 * 4 * (128 + 128)  # 2 layers × (q, v) × r·(in + out)
    assert counts["full"] == sum(p.numel() for p in model.encoder.parameters()) + head
    with_lora = _Classifier(model)
    lora.add_lora(with_lora.encoder, 4, 8)
    assert lora.set_trainable(with_lora, "full") == counts["full"] + counts["lora"] - head  # the bases train too
    with pytest.raises(ValueError, match="add_lora"):
        lora.set_trainable(_Classifier(model), "lora")
    with pytest.raises(ValueError, match="one of"):
        lora.set_trainable(_Classifier(model), "adapters")


# ------------------------------------------------------------------------------------------- swap tests
def test_a_random_B_changes_the_model_before_any_training() -> None:
    """The registered "B random" answer: the wrapped model no longer computes the pre-trained function."""
    wrong = _cell("15.3", check_lora_linear.wrong_answers["B random like A (the model changes before any training)"])
    model = _tiny_bert()
    ids = torch.randint(0, 68, (2, 20), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        gap = float((lora.add_lora(copy.deepcopy(model), 4, 8, lora_class=wrong)(ids) - model(ids)).abs().max())
    assert gap > 1e-2, gap


def test_a_wrong_set_trainable_changes_what_fine_tuning_trains() -> None:
    """LoRA with the rest of the encoder left trainable: far more numbers train and the embeddings move."""
    wrong = _cell("15.4", check_set_trainable.wrong_answers["lora: the rest of the encoder left trainable"])
    (right_count, right), (wrong_count, moved) = _fine_tune(lora.set_trainable, "lora"), _fine_tune(wrong, "lora")
    pretrained = _tiny_bert().encoder.token_embedding.weight
    assert torch.equal(right.encoder.token_embedding.weight, pretrained)
    assert not torch.equal(moved.encoder.token_embedding.weight, pretrained)
    assert wrong_count > 10 * right_count, (wrong_count, right_count)


def test_wrong_scaling_trains_a_different_model() -> None:
    """Scaling by r instead of α/r: the same data and steps give other LoRA weights and other outputs."""
    wrong = _cell("15.3", check_lora_linear.wrong_answers["scaling by r"])
    _, right = _fine_tune(lora.set_trainable, "lora")
    _, other = _fine_tune(lora.set_trainable, "lora", lora_class=wrong)
    ids = torch.randint(0, 68, (4, 12), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert float((right(ids) - other(ids)).abs().max()) > 1e-3


# ------------------------------------------------------------------------------------------- peft
def test_the_course_lora_computes_what_peft_computes() -> None:
    """Same adapters (B non-zero) in the course's LoRA and peft's on a random post-LN tiny BERT: the same logits,
    the same number of trainable parameters, the same merged model."""
    model = _tiny_bert(7)
    parity = lora.peft_parity(model, r=4, alpha=8, seed=1)
    assert parity.lora_effect > 1e-2, parity  # the update moves the logits, so agreement is not trivial
    assert parity.max_logit_difference <= 1e-5, parity
    assert parity.course_trainable == parity.peft_trainable == 2 * 2 * 4 * (128 + 128)
    assert parity.merged_logit_difference <= 1e-5 and parity.merged_weight_difference <= 1e-6, parity
    assert "trainable parameters" in parity.summary()
    wrong_scaling = _cell("15.3", check_lora_linear.wrong_answers["scaling by r"])
    assert lora.peft_parity(model, r=4, alpha=8, lora_class=wrong_scaling, seed=1).max_logit_difference > 1e-3
    no_scaling = _cell("15.5", check_merge_lora.wrong_answers["no scaling"])
    assert lora.peft_parity(model, r=4, alpha=8, merge=no_scaling, seed=1).merged_logit_difference > 1e-3


def test_peft_parity_on_the_shipped_model() -> None:
    from dlcourse.finetune import shipped

    if not (shipped.WEIGHTS_DIR / shipped.RECORD_NAME).exists():
        pytest.skip("the shipped tiny BERT is not built yet")
    model, _, _ = shipped.load_shipped()
    parity = lora.peft_parity(model, r=8, alpha=16, seed=0)
    assert parity.max_logit_difference <= 1e-5 and parity.merged_logit_difference <= 1e-5, parity
    assert parity.course_trainable == parity.peft_trainable, parity
