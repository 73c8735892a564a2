"""Lab 15's bridge to transformers: the converted BertForMaskedLM computes the course model's logits, the saved
folder's pipeline("fill-mask") gives the course's own fill_mask, nothing is downloaded, the circulating example's
four mistakes show, and the checks of 15.6 / 15.7 accept the solution cells' registered alternatives and reject
their registered wrong answers with a sentence."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dlcourse.checks import lab15_hf  # noqa: E402
from dlcourse.checks.lab14_support import randomise  # noqa: E402
from dlcourse.finetune import hf, shipped  # noqa: E402
from dlcourse.mlm import CharTokenizer, build_vocab  # noqa: E402
from dlcourse.mlm_model import BertConfig, TinyBert, fill_mask  # noqa: E402
from dlcourse.notebooks import replace_regions  # noqa: E402

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\nWhat is the matter?\n")
SAMPLE = "Before we pro[MASK]eed any further, hear me speak."


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise 15.6: replace this line with your code.")


def _random_model(vocab_size: int, seed: int = 0, n_layers: int = 2) -> TinyBert:
    """BERT's layout at sizes no other test uses, every parameter random (no identity LayerNorm)."""
    torch.manual_seed(seed)
    model = TinyBert(BertConfig(vocab_size, max_len=47, d_model=21, n_heads=3, n_layers=n_layers, d_ff=38, dropout=0.0,
                                norm_first=False, embedding_norm=True))
    randomise(model, seed=seed, std=0.3)
    return model.eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[TinyBert, CharTokenizer, Path]:
    tokenizer = CharTokenizer(build_vocab(TEXT))
    model = _random_model(tokenizer.vocab_size)
    folder = tmp_path_factory.mktemp("tiny_bert_hf")
    hf.save_for_transformers(model, tokenizer, folder)
    return model, tokenizer, folder


# ------------------------------------------------------------------------------------------ conversion
def test_converted_logits_equal_the_course_models_with_and_without_padding(saved) -> None:
    model, tokenizer, _ = saved
    converted = hf.to_hf(model)
    ids = torch.randint(0, tokenizer.vocab_size, (3, 47), generator=torch.Generator().manual_seed(1))
    real = torch.ones_like(ids, dtype=torch.bool)
    real[1, 30:], real[2, 9:] = False, False
    assert hf.logit_gap(model, converted, ids) <= 1e-5
    assert hf.logit_gap(model, converted, ids, real) <= 1e-5
    assert hf.logit_gap(model, converted, ids[:, :12]) <= 1e-5  # shorter than max_len
    assert float((hf.course_logits(model, ids, real) - hf.course_logits(model, ids)).abs().max()) > 0.1  # mask matters
    assert not converted.training and converted.config.hidden_act == "gelu"
    assert converted.cls.predictions.decoder.weight is converted.bert.embeddings.word_embeddings.weight


def test_to_hf_copies_and_refuses_with_a_sentence(saved) -> None:
    model, _, _ = saved
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def vandal(state, n_layers):  # edits what it is given: the course model must not change
        mapped = hf.hf_state_dict(state, n_layers)
        state["bias"].add_(1.0)
        return mapped

    hf.to_hf(model, mapping=vandal)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="pre-LN"):
        hf.hf_config(BertConfig(11, max_len=9, d_model=8, n_heads=2, n_layers=1, d_ff=12))
    with pytest.raises(ValueError, match="unfilled"):
        hf.to_hf(model, mapping=lambda s, n: {"bert.embeddings.word_embeddings.weight": s["dense.weight"]})
    with pytest.raises(ValueError, match="does not have"):
        hf.to_hf(model, mapping=lambda s, n: {**hf.hf_state_dict(s, n), "bert.pooler.dense.weight": s["dense.weight"]})
    with pytest.raises(ValueError, match="dict of tensors"):
        hf.to_hf(model, mapping=lambda s, n: None)


# ------------------------------------------------------------------------------------ tokenizer, pipeline
def test_the_fast_tokenizer_gives_the_course_ids(saved) -> None:
    _, tokenizer, folder = saved
    fast, _ = hf.load_folder(folder)
    for text in (SAMPLE, "a  b\n\n[MASK]\t~x", "[PAD][UNK]<mask>", " leading and trailing "):
        ids = fast(text)["input_ids"]
        assert ids == tokenizer.encode(text), text  # no [CLS]/[SEP], unknown characters -> [UNK]
        assert fast.decode(ids) == tokenizer.decode(ids)
    assert fast.decode(fast(SAMPLE)["input_ids"]) == SAMPLE  # spaces and newlines kept, characters joined
    assert (fast.mask_token, fast.mask_token_id, fast.pad_token_id) == ("[MASK]", tokenizer.mask_id, tokenizer.pad_id)
    long = TEXT * 2 + "spe[MASK]k"
    assert fast(long, truncation=True)["input_ids"] == tokenizer.encode(long)[-47:]  # the course keeps the last max_len


def test_the_pipeline_equals_the_course_fill_mask(saved) -> None:
    model, tokenizer, folder = saved
    for text in (SAMPLE, TEXT * 2 + "What is the ma[MASK]ter?"):  # the second is longer than max_len
        comparison = hf.compare_fill_mask(model, tokenizer, folder, text, 5)
        assert comparison.same_characters, comparison
        assert comparison.max_difference <= 1e-5, comparison
        assert 0.0 < comparison.special_mass < 1.0  # a random model gives the specials real mass: renormalised


def test_the_unrestricted_pipeline_is_the_full_softmax(saved) -> None:
    model, tokenizer, folder = saved
    special = sum(p for _, p in hf.pipeline_fill_mask(folder, SAMPLE, 3, targets=["[PAD]", "[UNK]", "[MASK]"]))
    course = dict(fill_mask(model, tokenizer, SAMPLE, tokenizer.vocab_size - tokenizer.n_special))
    raw = hf.pipeline_fill_mask(folder, SAMPLE, 8)
    for token, score in raw:  # may rank a special token, which the course never proposes
        if token not in ("[PAD]", "[UNK]", "[MASK]"):
            assert abs(score / (1 - special) - course[token]) <= 1e-5, token
    assert abs(sum(course.values()) - 1.0) < 1e-9


def test_nothing_downloads_and_the_folder_is_the_only_source(saved, monkeypatch) -> None:
    model, tokenizer, folder = saved
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json",
                                                         "tokenizer_config.json"]

    def no_network(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    fast, loaded = hf.load_folder(folder)
    assert Path(loaded.name_or_path) == folder and Path(fast.name_or_path) == folder
    assert hf.pipeline_fill_mask(folder, SAMPLE, 3)
    assert hf.fixed_example(folder, SAMPLE.replace("[MASK]", "<mask>"))[1] == 3


def test_importing_the_bridge_stays_light_and_transformers_never_imports_tensorflow(saved) -> None:
    code = ("import sys, dlcourse.finetune.hf, dlcourse.checks.lab15_hf; "
            "assert 'transformers' not in sys.modules and 'tensorflow' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert "transformers" in sys.modules  # here transformers ran (fixture); test_shipped_lab15 checks, in a fresh
    # interpreter, that it never imports TensorFlow (other tests of this worker may have loaded TensorFlow here)


# ------------------------------------------------------------------------------- the circulating example
def test_the_four_mistakes_show_when_run(saved) -> None:
    _, _, folder = saved
    future = hf.future_changes_prediction(folder, "What is th", (" matter?", "s?"))
    assert future.total_variation > 0.01 and future.texts[0].startswith("What is th[MASK]")
    roberta = hf.roberta_mask(folder)
    assert roberta.mask_token == "[MASK]" and roberta.mask_positions == 0 and "No mask_token" in roberta.pipeline_says
    assert "<mask>" not in roberta.tokens and len(roberta.tokens) == len("The cat sat on the <mask>.")
    spread = hf.identical_logits(folder)
    assert spread.real > 0.1 and spread.blind < 1e-6
    hidden = hf.hidden_states_demo(folder)
    assert hidden.without is None and hidden.count == hidden.n_layers + 1 == 3 and hidden.shape[-1] == 21


def test_the_fixed_example_reads_the_mask_position(saved) -> None:
    _, _, folder = saved
    tokens, count = hf.fixed_example(folder, SAMPLE.replace("[MASK]", "<mask>"))
    assert tokens == [t for t, _ in hf.pipeline_fill_mask(folder, SAMPLE, 5)] and count == 3


# ------------------------------------------------------------------------------------------- the checks
def _cell_function(cell: str, name: str, code: str | None | bool) -> object:
    """The solution cell run with ``code`` in its solution region (True: the solution itself, None: the stub)."""
    source = cell if code is True else replace_regions(cell, code, "15.x")
    namespace: dict = {"torch": torch}
    exec(source, namespace)
    return namespace[name]


CELLS = {"15.6": (lab15_hf.check_hf_state_dict, lab15_hf.SOLUTION_15_6, "hf_state_dict"),
         "15.7": (lab15_hf.check_fixed_example, lab15_hf.SOLUTION_15_7, "fixed_example")}


@pytest.mark.parametrize("exercise", sorted(CELLS))
def test_each_check_passes_the_reference_and_the_cell_and_waits_for_the_stub(exercise: str) -> None:
    check, cell, name = CELLS[exercise]
    assert check.evaluate(getattr(hf, name)).passed
    result = check.evaluate(_cell_function(cell, name, True))
    assert result.passed, result.message
    assert check.evaluate(_cell_function(cell, name, None)).status == "not_attempted"
    assert check.evaluate(_stub).status == "not_attempted"
    assert check.evaluate(None).status == "not_attempted"
    assert check.evaluate("not a function").status == "failed"


WRONG = [(e, label) for e, (check, _, _) in sorted(CELLS.items()) for label in check.wrong_answers]
ACCEPTED = [(e, label) for e, (check, _, _) in sorted(CELLS.items()) for label in check.accepted_answers]


@pytest.mark.parametrize(("exercise", "label"), WRONG)
def test_every_registered_wrong_answer_is_rejected_with_a_sentence(exercise: str, label: str) -> None:
    check, cell, name = CELLS[exercise]
    result = check.evaluate(_cell_function(cell, name, check.wrong_answers[label]))
    assert result.status == "failed", (label, result.message)
    assert result.message.endswith((".", ")")) and result.hint, (label, result.message, result.hint)


@pytest.mark.parametrize(("exercise", "label"), ACCEPTED)
def test_every_registered_alternative_is_accepted(exercise: str, label: str) -> None:
    check, cell, name = CELLS[exercise]
    result = check.evaluate(_cell_function(cell, name, check.accepted_answers[label]))
    assert result.passed, (label, result.message)


@pytest.mark.parametrize("label", list(lab15_hf.check_hf_state_dict.wrong_answers))
def test_a_wrong_mapping_swapped_into_to_hf_refuses_or_changes_the_logits(saved, label: str) -> None:
    """The lab's own conversion with a registered wrong mapping: a sentence, or logits that are not the model's."""
    tokenizer = saved[1]
    model = _random_model(tokenizer.vocab_size, seed=4, n_layers=3)  # not the two layers a constant could assume
    wrong = _cell_function(lab15_hf.SOLUTION_15_6, "hf_state_dict",
                           lab15_hf.check_hf_state_dict.wrong_answers[label])
    ids = torch.randint(0, tokenizer.vocab_size, (2, 47), generator=torch.Generator().manual_seed(3))
    try:
        converted = hf.to_hf(model, mapping=wrong)
    except (ValueError, KeyError) as error:
        assert str(error), label
        return
    assert hf.logit_gap(model, converted, ids) > 1e-3, label


def test_the_solution_cells_are_what_the_module_says() -> None:
    assert lab15_hf.SOLUTION_15_6.startswith("def hf_state_dict(course_state: dict[str, torch.Tensor], n_layers: int)")
    assert lab15_hf.SOLUTION_15_6.rstrip().endswith("### END SOLUTION\n    return hf")
    assert lab15_hf.SOLUTION_15_7.startswith("from transformers import AutoModelForMaskedLM, AutoTokenizer\n")
    assert textwrap.dedent(lab15_hf._MAPPING) in lab15_hf.SOLUTION_15_6.replace("\n    ", "\n")


# ------------------------------------------------------------------------------------ the shipped weights
def test_the_shipped_model_converts_exactly_and_its_pipeline_agrees(tmp_path) -> None:
    if not (shipped.WEIGHTS_DIR / shipped.WEIGHTS_NAME).exists():
        pytest.skip("the shipped weights are not built yet (make tiny-bert)")
    model, tokenizer, record = shipped.load_shipped()
    converted = hf.to_hf(model)
    line = "What is the matter, my lord?\nWhat is th[MASK] matter?"
    ids = torch.tensor([tokenizer.encode(line)])
    assert hf.logit_gap(model, converted, ids) <= 1e-5
    hf.save_for_transformers(model, tokenizer, tmp_path)
    comparison = hf.compare_fill_mask(model, tokenizer, tmp_path, line, 5)
    assert comparison.same_characters and comparison.max_difference <= 1e-5, comparison
    assert comparison.special_mass < 1e-3  # never a target in pre-training
