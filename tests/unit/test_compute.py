"""Lab 12's compute and cost: formula counts against real torch modules, 6·N·D against published
figures, and estimates against numbers worked out by hand."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
from torch import nn

from dlcourse.cnn_torch import build_cnn
from dlcourse.compute import (
    ACCELERATORS,
    BERT_BASE,
    GPT3,
    BertShaped,
    batchnorm_params,
    bert_base_on_meta,
    bert_params,
    claim_check,
    conv2d_params,
    embedding_params,
    encoder_layer_params,
    estimate_summary,
    estimate_table,
    estimate_training,
    inference_flops,
    lab08_cnn_params_by_formula,
    layernorm_params,
    linear_params,
    training_flops,
)


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_layer_formulas_match_torch_modules() -> None:
    assert linear_params(784, 128) == 100_480 == _numel(nn.Linear(784, 128))
    assert linear_params(784, 128, bias=False) == 100_352
    assert conv2d_params(3, 64, (3, 5)) == 2_944 == _numel(nn.Conv2d(3, 64, (3, 5)))
    assert conv2d_params(16, 32, 3, bias=False) == 4_608 == _numel(nn.Conv2d(16, 32, 3, bias=False))
    assert batchnorm_params(64) == 128 == _numel(nn.BatchNorm2d(64))  # running stats are buffers
    assert layernorm_params(768) == 1_536 == _numel(nn.LayerNorm(768))
    assert embedding_params(1000, 32) == 32_000 == _numel(nn.Embedding(1000, 32))
    layer = nn.TransformerEncoderLayer(64, 4, 256, batch_first=True)
    assert encoder_layer_params(64, 256) == 49_984 == _numel(layer)


def test_bert_base_breakdown() -> None:
    parts = bert_params()
    assert parts == {"embeddings": 23_837_184, "per layer": 7_087_872, "all layers": 85_054_464,
                     "pooler": 590_592, "total": 109_482_240}
    assert bert_params(pooler=False)["total"] == 109_482_240 - 590_592
    # BERT-large (Devlin et al.: "340M"): 24 layers, d_model 1024, d_ff 4096
    assert bert_params(d_model=1024, n_layers=24, d_ff=4096)["total"] == 335_141_888


def test_small_bert_formula_matches_a_real_module() -> None:
    config = {"vocab": 100, "d_model": 32, "n_layers": 2, "d_ff": 64, "max_positions": 16, "type_vocab": 2}
    model = BertShaped(n_heads=4, **config)
    # by hand: embeddings 3,200 + 512 + 64 + 64; per layer 4·1,056 + 2,112 + 2,080 + 128; pooler 1,056
    assert bert_params(**config)["total"] == _numel(model) == 3_840 + 2 * 8_544 + 1_056 == 21_984
    assert model(torch.randint(0, 100, (3, 10))).shape == (3, 32)


def test_lab08_cnn_by_formula_matches_each_layer() -> None:
    counts = lab08_cnn_params_by_formula()
    modules = dict(build_cnn().named_modules())
    for name, count in counts.items():
        if name != "total":
            assert _numel(modules[name]) == count, name
    assert counts["total"] == 206_970 == _numel(build_cnn())


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_bert_base_on_meta_has_the_formula_count_and_no_memory() -> None:
    before = _resident_bytes() if os.path.exists("/proc/self/statm") else None
    model = bert_base_on_meta()
    params = list(model.parameters())
    assert sum(p.numel() for p in params) == bert_params()["total"] == 109_482_240
    assert all(p.is_meta for p in params)
    if before is not None:  # real float32 weights would be 438 MB
        assert _resident_bytes() - before < 100 * 2**20
    assert model(torch.zeros(2, 8, dtype=torch.long, device="meta")).shape == (2, 768)  # shapes only


def test_six_n_d_against_gpt3_and_by_hand() -> None:
    assert training_flops(1e9, 1e10) == pytest.approx(6e19)
    assert inference_flops(1e9, 1e10) == pytest.approx(2e19)
    flops = training_flops(GPT3.params, GPT3.tokens)
    assert flops == pytest.approx(3.15e23)
    assert abs(flops / GPT3.reported_flops - 1) < 0.01  # Brown et al. report 3.14e23
    assert BERT_BASE.tokens == 1_000_000 * 128_000 and BERT_BASE.reported_flops is None
    assert "Devlin" in BERT_BASE.source and "Table D.1" in GPT3.source


def test_accelerators_are_datasheet_numbers() -> None:
    assert {k: (a.peak_flops, a.watts) for k, a in ACCELERATORS.items()} == {
        "V100": (125e12, 300), "A100": (312e12, 400), "H100": (989e12, 700)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        ACCELERATORS["A100"].peak_flops = 1.0


def test_estimate_by_hand() -> None:
    # 6e19 FLOPs at 50% of 1e14 FLOP/s = 1.2e6 GPU-seconds = 333.33 GPU-hours
    e = estimate_training(1e9, 1e10, peak_flops=1e14, utilisation=0.5, n_gpus=4, price_per_gpu_hour=2.0, watts=300)
    assert e.flops == pytest.approx(6e19)
    assert e.gpu_hours == pytest.approx(1000 / 3)
    assert e.days == pytest.approx(1000 / 3 / 4 / 24)
    assert e.cost == pytest.approx(2000 / 3)
    assert e.energy_kwh == pytest.approx(100.0)


def test_claim_check_numbers() -> None:
    (claimed_label, claimed), (base_label, base) = claim_check()
    assert "17.5M" in claimed_label and "109,482,240" in base_label
    a100_at_40 = 312e12 * 0.4 * 3600  # FLOPs per GPU-hour
    assert claimed.gpu_hours == pytest.approx(6 * 17.5e6 * 1.28e11 / a100_at_40)  # 29.9
    assert base.gpu_hours == pytest.approx(6 * 109_482_240 * 1.28e11 / a100_at_40)  # 187
    assert 29 < claimed.gpu_hours < 31 and 186 < base.gpu_hours < 188 and base.n_gpus == 1
    assert base.energy_kwh == pytest.approx(base.gpu_hours * 0.4)


def test_summary_and_table_formatting() -> None:
    _, base = claim_check()[1]
    text = estimate_summary(base)
    for piece in ("109M parameters × 128B tokens", "8.41e+19 FLOPs", "187 GPU-hours at 40% of 312 TFLOP/s",
                  "7.8 days on 1 GPU", "$374 at an assumed $2.00 per GPU-hour", "74.9 kWh (GPU boards only)"):
        assert piece in text, piece
    gpt3 = estimate_training(175e9, 300e9, peak_flops=125e12, n_gpus=1024, watts=300)
    table = estimate_table([("GPT-3 on V100s", gpt3)]).splitlines()
    assert table[0].split() == ["run", "params", "N", "tokens", "D", "FLOPs", "GPU-hours", "GPUs", "days",
                                "cost", "(USD)", "energy", "(kWh)"]
    assert table[2].split() == ["GPT-3", "on", "V100s", "175B", "300B", "3.15e+23", "1,750,000", "1,024", "71.2",
                                "3,500,000", "525,000"]


@pytest.mark.parametrize("call, words", [
    (lambda: estimate_training(1e9, 1e10, peak_flops=1e14, utilisation=0), "utilisation must be a positive"),
    (lambda: estimate_training(1e9, 1e10, peak_flops=1e14, utilisation=40), "between 0 and 1"),
    (lambda: estimate_training(1e9, 1e10, peak_flops=1e14, n_gpus=0), "n_gpus must be a whole number of at least 1"),
    (lambda: estimate_training(-1e9, 1e10, peak_flops=1e14), "n_params must be a positive"),
    (lambda: estimate_training(1e9, "many", peak_flops=1e14), "n_tokens must be a positive"),
    (lambda: estimate_training(1e9, 1e10, peak_flops=1e14, price_per_gpu_hour=-1), "price_per_gpu_hour"),
    (lambda: conv2d_params(3, 8, 3.0), "kernel must be"),
    (lambda: linear_params(0, 8), "n_in must be a whole number of at least 1"),
    (lambda: claim_check(accelerator="TPU"), "V100, A100, H100"),
])
def test_bad_input_is_a_sentence(call, words) -> None:
    with pytest.raises(ValueError, match=words):
        call()


def test_bert_base_with_the_papers_mix_of_lengths_is_a_third_of_the_upper_bound() -> None:
    from dlcourse import compute

    tokens = compute.bert_base_tokens()
    assert abs(tokens - 1_000_000 * 256 * (0.9 * 128 + 0.1 * 512)) < 1  # 4.26e10
    assert 0.32 < tokens / (1_000_000 * 256 * 512) < 0.33


def test_chinchilla_memory_serving_and_energy() -> None:
    import pytest

    from dlcourse import compute

    n, d = compute.chinchilla_optimal(6 * 70e9 * 1.4e12)  # Chinchilla's own budget gives back 70B and 1.4T
    assert abs(n - 70e9) / 70e9 < 1e-9 and abs(d - 1.4e12) / 1.4e12 < 1e-9
    assert compute.training_memory_bytes(175e9) == 16 * 175e9
    assert compute.kv_cache_bytes_per_token(96, 12288) == 2 * 96 * 12288 * 2  # GPT-3: 4.7 MB per token
    tokens_per_s, usd = compute.serving_cost_per_million_tokens(1e9, 1e15, 0.5, 3.6)
    assert tokens_per_s == pytest.approx(250_000) and usd == pytest.approx(1e-3 / 250_000 * 1e6)
    assert compute.facility_kwh(400, 8, 10, 1.5) == pytest.approx(48.0)
    assert compute.co2_kg(48.0, 400) == pytest.approx(19.2)
    estimate = compute.estimate_training(110e6, 1.28e11, peak_flops=312e12, pue=1.2, grid_g_per_kwh=400)
    assert estimate.facility_kwh == pytest.approx(estimate.energy_kwh * 1.2)
    assert "kg CO2 at an assumed 400 g per kWh" in compute.estimate_summary(estimate)
    with pytest.raises(ValueError, match="at least 1.0"):
        compute.estimate_training(1e6, 1e6, peak_flops=1e12, pue=0.9)
