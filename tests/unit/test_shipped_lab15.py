"""Lab 15's shipped tiny BERT: the committed weights load (safetensors, hash verified), match their recorded config,
and reproduce their recorded held-out masked loss; the new dependencies stay out of everything else."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlcourse.data import load_text
from dlcourse.finetune import shipped
from dlcourse.mlm_model import BertConfig, TinyBert, evaluate_mlm


def test_the_shipped_weights_load_and_match_their_record() -> None:
    model, tokenizer, record = shipped.load_shipped()
    assert isinstance(model, TinyBert) and not model.training
    assert model.config == BertConfig(**record["config"])
    assert model.config == shipped.bert_config(tokenizer.vocab_size, shipped.Recipe(**record["recipe"]))
    # BERT's own layout, so transformers.BertForMaskedLM can hold it
    assert model.config.norm_first is False and model.config.embedding_norm is True
    assert tokenizer.mask_token == "[MASK]" and tokenizer.chars == record["chars"]
    weights = shipped.WEIGHTS_DIR / shipped.WEIGHTS_NAME
    assert shipped.sha256_of(weights) == record["sha256"] and weights.stat().st_size == record["bytes"]
    assert record["bytes"] < 4_000_000, "a few MB at most"
    params = sum(p.numel() for p in model.parameters())
    assert params * 4 <= record["bytes"] < params * 4 + 20_000  # float32, the tied decoder stored once


def test_the_shipped_weights_reproduce_their_held_out_masked_loss() -> None:
    model, tokenizer, record = shipped.load_shipped()
    recipe = shipped.Recipe(**record["recipe"])
    loss, accuracy = evaluate_mlm(model, shipped.heldout_masked_set(load_text(), tokenizer, recipe))
    assert loss == pytest.approx(record["heldout_masked_loss"], abs=shipped.LOSS_TOLERANCE)
    assert accuracy == pytest.approx(record["heldout_masked_accuracy"], abs=1e-3)
    assert loss < 2.0  # far below a uniform guess (ln 68 ≈ 4.2) and lab 11's unigram (≈ 3.3)


def test_a_changed_weight_file_is_refused_with_a_sentence(tmp_path: Path) -> None:
    for name in (shipped.WEIGHTS_NAME, shipped.RECORD_NAME):
        shutil.copy(shipped.WEIGHTS_DIR / name, tmp_path / name)
    data = bytearray((tmp_path / shipped.WEIGHTS_NAME).read_bytes())
    data[-1] ^= 1
    (tmp_path / shipped.WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(shipped.ShippedModelError, match="SHA-256"):
        shipped.load_shipped(tmp_path)
    (tmp_path / shipped.RECORD_NAME).unlink()
    with pytest.raises(shipped.ShippedModelError, match="make tiny-bert"):
        shipped.load_shipped(tmp_path)


def test_the_recipe_writes_files_that_load(tmp_path: Path) -> None:
    text = load_text()[:60_000]
    model, tokenizer, record = shipped.pretrain(text, shipped.Recipe(steps=3, batch_size=4), progress=False)
    shipped.write_shipped(model, record, tmp_path)
    again, tokenizer_again, saved = shipped.load_shipped(tmp_path)
    assert saved["sha256"] == shipped.sha256_of(tmp_path / shipped.WEIGHTS_NAME)
    assert json.loads((tmp_path / shipped.RECORD_NAME).read_text())["recipe"]["steps"] == 3
    ids = torch.tensor([tokenizer.encode("To be, or not to be")])
    assert torch.equal(again(ids), model.eval()(ids)) and tokenizer_again.itos == tokenizer.itos


def _modules_after(code: str) -> list[str]:
    probe = (f"import json, sys\n{code}\n"
             "print(json.dumps(sorted(m for m in ('tensorflow', 'keras', 'jax', 'transformers', 'peft', 'safetensors')"
             " if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_new_dependencies_load_only_when_lab_15_asks_for_them() -> None:
    assert _modules_after("import dlcourse, dlcourse.finetune, dlcourse.mlm_model, dlcourse.checks.lab15") == []
    # transformers 5 has no TensorFlow code path: loading the BERT classes and the pipeline never imports it
    loaded = _modules_after("from transformers import BertForMaskedLM, pipeline, PreTrainedTokenizerFast\nimport peft")
    assert "tensorflow" not in loaded and "keras" not in loaded and "transformers" in loaded


def test_a_missing_package_is_named_with_its_fix() -> None:
    from dlcourse.finetune import MissingPackageError, require

    assert require("json").dumps([1]) == "[1]"
    with pytest.raises(MissingPackageError, match="pip install no_such_package_dlcourse"):
        require("no_such_package_dlcourse")
