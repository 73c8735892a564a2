"""dlcourse.mlm and dlcourse.mlm_model: tokeniser, split, masking statistics, baselines, fill-in, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlcourse import mlm
from dlcourse.mlm_model import (BertConfig, TinyBert, TrainConfig, attention_of, evaluate_mlm, fill_mask, load_mlm,
                                masked_lm_loss, save_mlm, train_mlm, train_step)

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 20


def test_tokenizer_round_trip_unknown_and_special_tokens() -> None:
    tok = mlm.CharTokenizer.from_text("abc ")
    assert tok.itos[:3] == ["[PAD]", "[UNK]", "[MASK]"] and tok.vocab_size == 7
    assert tok.decode(tok.encode("ab c")) == "ab c"
    assert tok.encode("az") == [tok.stoi["a"], tok.unk_id]
    assert tok.encode(f"a{tok.mask_token}b") == [tok.stoi["a"], tok.mask_id, tok.stoi["b"]]
    assert len(tok.encode("<mask>")) == 6 and tok.mask_id not in tok.encode("<mask>")


def test_split_by_position_has_no_overlap() -> None:
    train, val = mlm.split_by_position("abcdefghij", 0.9)
    assert (train, val) == ("abcdefghi", "j")


def test_bert_mask_statistics_and_invariants() -> None:
    tokens = torch.randint(3, 50, (300, 400), generator=torch.Generator().manual_seed(0))
    inputs, labels = mlm.bert_mask(tokens, torch.Generator().manual_seed(1), mask_id=2, n_special=3, vocab_size=50)
    selected = labels != mlm.IGNORE
    assert abs(selected.float().mean().item() - 0.15) < 0.005
    assert torch.equal(inputs[~selected], tokens[~selected]) and torch.equal(labels[selected], tokens[selected])
    chosen = inputs[selected]
    assert abs((chosen == 2).float().mean().item() - 0.8) < 0.01
    assert abs((chosen == tokens[selected]).float().mean().item() - 0.1) < 0.01
    assert int(((chosen < 3) & (chosen != 2)).sum()) == 0


def test_baselines_on_a_repetitive_text() -> None:
    tok = mlm.CharTokenizer.from_text(TEXT)
    ids = torch.tensor(tok.encode(TEXT))
    held = mlm.make_masked_set(ids, tok, 32)
    scores = mlm.baseline_scores(held, ids.numpy(), tok)
    (uni, uni_acc), (bi, bi_acc) = scores["unigram"], scores["bigram (both sides)"]
    assert bi < uni < np.log(len(tok.chars)) and bi_acc > uni_acc
    counts = mlm.bigram_counts(ids.numpy(), tok.vocab_size)
    log_p = mlm.bigram_fill_log_probs(counts, tok.stoi["t"], tok.stoi["e"], k=1.0)
    assert np.isclose(np.exp(log_p).sum(), 1.0) and tok.itos[int(log_p.argmax())] == "h"


def test_top_k_fill_never_predicts_special_tokens() -> None:
    logits = np.zeros((2, 6))
    logits[1, 2], logits[1, 4] = 10.0, 1.0
    ids, probs = mlm.top_k_fill(logits, 1, 2, n_special=3)
    assert ids.tolist() == [4, 3]
    assert np.isclose(probs[0], np.e / (np.e + 2))


def test_masked_lm_loss_averages_over_selected_positions() -> None:
    logits = torch.zeros(1, 4, 5)
    labels = torch.tensor([[1, -100, -100, 3]])
    assert torch.isclose(masked_lm_loss(logits, labels), torch.log(torch.tensor(5.0)))


def test_training_lowers_the_loss_and_save_load_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    tok = mlm.CharTokenizer.from_text(TEXT)
    ids = torch.tensor(tok.encode(TEXT))
    model = TinyBert(BertConfig(tok.vocab_size, max_len=16, d_model=32, n_heads=2, n_layers=1, d_ff=64))
    held = mlm.make_masked_set(ids, tok, 16, n_windows=40)
    before, _ = evaluate_mlm(model, held)
    history = train_mlm(model, ids, tok, TrainConfig(steps=60, batch_size=32, lr=3e-3, warmup=5, eval_every=30),
                        val_set=held, progress=False)
    assert history.step == [30, 60] and history.val_loss[-1] < before - 0.3
    path = tmp_path / "bert.pt"
    save_mlm(path, model, tok)
    reloaded, tok2 = load_mlm(path)
    assert tok2.itos == tok.itos
    assert fill_mask(reloaded, tok2, "To be, or not to b[MASK]", 3) == fill_mask(model, tok, "To be, or not to b[MASK]", 3)
    with pytest.raises(ValueError, match="No mask token"):
        fill_mask(model, tok, "no <mask> here")


def test_train_mlm_runs_the_given_step_and_masking_and_both_steps_agree() -> None:
    torch.manual_seed(0)
    tok = mlm.CharTokenizer.from_text(TEXT)
    ids = torch.tensor(tok.encode(TEXT))
    model = TinyBert(BertConfig(tok.vocab_size, max_len=16, d_model=16, n_heads=2, n_layers=1, d_ff=32))
    calls: list = []

    def step(model, optimizer, inputs, labels):
        calls.append(tuple(inputs.shape))
        return train_step(model, optimizer, inputs, labels)

    def mask(windows, generator, **sizes):
        calls.append("mask")
        return mlm.bert_mask(windows, generator, **sizes)

    train_mlm(model, ids, tok, TrainConfig(steps=3, batch_size=5, warmup=1), progress=False, step=step, mask=mask)
    assert calls == ["mask", (5, 16)] * 3
    inputs, labels = mlm.bert_mask(ids[:64].reshape(4, 16), torch.Generator().manual_seed(0), mask_id=tok.mask_id,
                                   n_special=tok.n_special, vocab_size=tok.vocab_size)
    assert torch.isclose(model.loss(inputs, labels), masked_lm_loss(model(inputs), labels), atol=1e-6)
    maps = attention_of(model, tok, TEXT[:10])
    assert maps.shape == (1, 2, 10, 10) and np.allclose(maps.sum(-1), 1, atol=1e-5)
    assert fill_mask(model, tok, "To b[MASK]", 2, top_k=lambda logits, position, k, n_special: ([4, 5], [0.5, 0.25])) \
        == [(tok.itos[4], 0.5), (tok.itos[5], 0.25)]
