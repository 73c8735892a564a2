"""Lab 13's compute and cost: parameters by formula, training FLOPs (6·N·D), and what a run costs.

The counts are exact for PyTorch's layers (a test compares them with ``sum(p.numel())``); the FLOPs
are the standard estimate of Kaplan et al. (2020), "Scaling Laws for Neural Language Models";
GPU-hours, cost and energy follow from an accelerator's datasheet peak, an assumed utilisation and
an assumed rental price. Published figures carry their sources so every number can be traced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dlcourse.errors import whole_number
from dlcourse.tables import format_table

# --------------------------------------------------------------------------------------------
# Parameters by formula


def linear_params(n_in: int, n_out: int, bias: bool = True) -> int:
    """nn.Linear: an (n_out, n_in) weight matrix plus one bias per output."""
    n_in, n_out = whole_number("n_in", n_in), whole_number("n_out", n_out)
    return n_in * n_out + (n_out if bias else 0)


def conv2d_params(c_in: int, c_out: int, kernel: int | tuple[int, int], bias: bool = True) -> int:
    """nn.Conv2d: each of c_out filters has c_in·kh·kw weights (and one bias); the image size does not matter."""
    if isinstance(kernel, (tuple, list)) and len(kernel) == 2:
        kh, kw = kernel
    elif isinstance(kernel, int) and not isinstance(kernel, bool):
        kh = kw = kernel
    else:
        raise ValueError(f"kernel must be a size such as 3 or a pair (kh, kw) such as (3, 5), not {kernel!r}.")
    kh, kw = whole_number("kernel height", kh), whole_number("kernel width", kw)
    c_in, c_out = whole_number("c_in", c_in), whole_number("c_out", c_out)
    return c_out * c_in * kh * kw + (c_out if bias else 0)


def batchnorm_params(channels: int) -> int:
    """BatchNorm: a scale γ and shift β per channel. The running mean and variance are buffers, not trained."""
    return 2 * whole_number("channels", channels)


def layernorm_params(d: int) -> int:
    """LayerNorm over d features: a scale γ and shift β per feature."""
    return 2 * whole_number("d", d)


def embedding_params(vocab: int, d: int) -> int:
    """nn.Embedding: one d-dimensional row per token id (a lookup table, no bias)."""
    return whole_number("vocab", vocab) * whole_number("d", d)


def encoder_layer_params(d_model: int, d_ff: int) -> int:
    """One BERT / nn.TransformerEncoderLayer layer: Q, K, V and output projections (d×d + bias each),
    the feed-forward d→d_ff→d (with biases) and two LayerNorms. The number of heads does not matter:
    the heads split d_model, they do not add weights."""
    attention = 4 * linear_params(d_model, d_model)
    feed_forward = linear_params(d_model, d_ff) + linear_params(d_ff, d_model)
    return attention + feed_forward + 2 * layernorm_params(d_model)


def bert_params(vocab: int = 30522, d_model: int = 768, n_layers: int = 12, d_ff: int = 3072,
                max_positions: int = 512, type_vocab: int = 2, pooler: bool = True) -> dict[str, int]:
    """BERT's parameters by part (Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional
    Transformers"). The defaults are BERT-base: 109,482,240 with the pooler, the "110M" of the paper.

    Embeddings are token + position + segment (token type) tables and one LayerNorm; the pooler is a
    d×d dense layer on the [CLS] vector. The MLM head is not counted: its output matrix is tied to the
    token embedding (Hugging Face's BertModel, which this matches, has no head either).
    """
    embeddings = (embedding_params(vocab, d_model) + embedding_params(max_positions, d_model)
                  + embedding_params(type_vocab, d_model) + layernorm_params(d_model))
    per_layer = encoder_layer_params(d_model, d_ff)
    all_layers = whole_number("n_layers", n_layers) * per_layer
    pooler_params = linear_params(d_model, d_model) if pooler else 0
    return {"embeddings": embeddings, "per layer": per_layer, "all layers": all_layers,
            "pooler": pooler_params, "total": embeddings + all_layers + pooler_params}


def lab08_cnn_params_by_formula() -> dict[str, int]:
    """Lab 08's CNN (``dlcourse.cnn_torch.build_cnn``) layer by layer, keyed by the module names that
    ``model.named_modules()`` gives, so the notebook can print formula and numel() side by side.
    The convolutions have no bias (BatchNorm's β replaces it); layers without weights are left out."""
    layers = {
        "features.0": conv2d_params(1, 16, 3, bias=False),  # Conv2d 1→16, 3×3
        "features.1": batchnorm_params(16),
        "features.4": conv2d_params(16, 32, 3, bias=False),  # Conv2d 16→32, 3×3
        "features.5": batchnorm_params(32),
        "classifier.1": linear_params(32 * 7 * 7, 128),  # two 2×2 poolings: 28 → 14 → 7
        "classifier.4": linear_params(128, 10),
    }
    return {**layers, "total": sum(layers.values())}


class BertShaped(nn.Module):
    """BERT-base's shapes from stock torch layers (three embeddings, LayerNorm, encoder layers, tanh pooler).

    Not Hugging Face's module tree, but the same parameter count, which is what lab 13 compares.
    """

    def __init__(self, vocab: int = 30522, d_model: int = 768, n_layers: int = 12, n_heads: int = 12,
                 d_ff: int = 3072, max_positions: int = 512, type_vocab: int = 2) -> None:
        super().__init__()
        self.word = nn.Embedding(vocab, d_model)
        self.position = nn.Embedding(max_positions, d_model)
        self.token_type = nn.Embedding(type_vocab, d_model)
        self.norm = nn.LayerNorm(d_model, eps=1e-12)  # BERT's epsilon
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, n_heads, d_ff, activation="gelu", batch_first=True,
                                       layer_norm_eps=1e-12) for _ in range(n_layers))
        self.pooler = nn.Linear(d_model, d_model)

    def forward(self, ids: Tensor) -> Tensor:
        """(batch, T) token ids → (batch, d_model) pooled [CLS] vector (all segments type 0)."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.word(ids) + self.position(positions) + self.token_type(torch.zeros_like(ids)))
        for layer in self.layers:
            x = layer(x)
        return torch.tanh(self.pooler(x[:, 0]))


def bert_base_on_meta() -> nn.Module:
    """BERT-base built on PyTorch's "meta" device: every parameter has its shape and dtype but no
    storage, so nothing is allocated or initialised (the real model would take 438 MB of float32).

    That is how large models are inspected (``sum(p.numel() for p in model.parameters())``, a forward
    pass that only propagates shapes) before one decides where to put them; ``model.to_empty(device=...)``
    would allocate real, uninitialised memory later.
    """
    with torch.device("meta"):  # factory functions inside (the layers' torch.empty) create meta tensors
        return BertShaped()


# --------------------------------------------------------------------------------------------
# FLOPs and published runs


def _positive(name: str, value: object, *, zero_ok: bool = False) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name} must be a {'non-negative' if zero_ok else 'positive'} number, not {value!r}.")
    return float(value)


def training_flops(n_params: float, n_tokens: float) -> float:
    """C ≈ 6·N·D floating-point operations to train N parameters on D tokens (Kaplan et al. 2020,
    "Scaling Laws for Neural Language Models", §2.1): each parameter costs one multiply and one add
    per token forward (2·N·D) and twice that backward (4·N·D, gradients for activations and weights).
    Kaplan et al. leave embeddings out of N and the attention scores' own cost aside (small when
    d_model is large compared with the sequence length), so this is an estimate, not a count."""
    return 6.0 * _positive("n_params", n_params) * _positive("n_tokens", n_tokens)


def inference_flops(n_params: float, n_tokens: float) -> float:
    """C ≈ 2·N·D: the forward pass alone (one multiply-add per parameter per token)."""
    return 2.0 * _positive("n_params", n_params) * _positive("n_tokens", n_tokens)


@dataclass(frozen=True)
class PublishedRun:
    """A training run as its authors reported it; reported_flops is None when the paper gives none."""

    name: str
    params: float
    tokens: float
    reported_flops: float | None
    hardware: str
    source: str


BERT_BASE = PublishedRun(
    "BERT-base", params=110e6, tokens=1.28e11, reported_flops=None,
    hardware="4 Cloud TPUs in Pod configuration (16 TPU chips total), 4 days",
    source="Devlin et al. 2019, BERT, §3.1 and §A.2: 110M parameters; 1,000,000 steps of "
           "'256 sequences * 512 tokens = 128,000 tokens/batch' (the paper's rounding of 131,072). "
           "An upper bound: 90% of the steps used sequences of length 128.")
GPT3 = PublishedRun(
    "GPT-3 175B", params=175e9, tokens=300e9, reported_flops=3.14e23,
    hardware="V100 GPUs on a high-bandwidth cluster provided by Microsoft",
    source="Brown et al. 2020, Language Models are Few-Shot Learners, §2.3 and Table D.1")
PUBLISHED_RUNS: dict[str, PublishedRun] = {run.name: run for run in (BERT_BASE, GPT3)}


@dataclass(frozen=True)
class Accelerator:
    """An accelerator's dense bf16/fp16 tensor-core peak (no 2:4 sparsity) and board power, from its datasheet."""

    name: str
    peak_flops: float
    watts: float
    source: str


ACCELERATORS: dict[str, Accelerator] = {
    "V100": Accelerator("NVIDIA V100 SXM2", 125e12, 300, "NVIDIA Tesla V100 datasheet (tensor performance, fp16)"),
    "A100": Accelerator("NVIDIA A100 SXM", 312e12, 400, "NVIDIA A100 Tensor Core GPU datasheet (bf16/fp16 dense)"),
    "H100": Accelerator("NVIDIA H100 SXM", 989e12, 700,
                        "NVIDIA H100 Tensor Core GPU datasheet (bf16/fp16: 1,979 TFLOPS with sparsity, 989 dense)"),
}

# --------------------------------------------------------------------------------------------
# Time, cost and energy


@dataclass(frozen=True)
class Estimate:
    """What training N parameters on D tokens takes, with the assumptions it rests on."""

    flops: float
    gpu_hours: float
    days: float  # wall-clock, with the work spread perfectly over n_gpus
    cost: float  # USD, at the assumed rental price
    energy_kwh: float  # GPU boards only: no CPUs, network, cooling
    n_params: float
    n_tokens: float
    n_gpus: int
    peak_flops: float
    utilisation: float
    price_per_gpu_hour: float
    pue: float = 1.0  # facility energy ÷ IT energy (cooling, power conversion, the rest of the building)
    grid_g_per_kwh: float = 0.0  # grams of CO2 per kWh of the grid that feeds the facility (an assumption)

    @property
    def facility_kwh(self) -> float:
        return self.energy_kwh * self.pue

    @property
    def co2_kg(self) -> float:
        return self.facility_kwh * self.grid_g_per_kwh / 1000


def estimate_training(n_params: float, n_tokens: float, *, peak_flops: float, utilisation: float = 0.4,
                      n_gpus: int = 8, price_per_gpu_hour: float = 2.0, watts: float = 400, pue: float = 1.0,
                      grid_g_per_kwh: float = 0.0) -> Estimate:
    """Training time, cost and energy from C = 6·N·D and the sustained speed peak_flops × utilisation.

    utilisation is the fraction of the datasheet peak a real run sustains (model FLOPs utilisation;
    30-50% is typical of well-tuned large runs, far less for small models). price_per_gpu_hour is an
    ASSUMED cloud rental price in USD, not a quote. Energy counts the GPU boards at full ``watts``;
    ``pue`` (power usage effectiveness) scales that to the whole facility and ``grid_g_per_kwh`` turns
    the facility's kWh into CO2 (both assumptions the caller states).
    """
    pue = _positive("pue", pue)
    if pue < 1:
        raise ValueError(f"pue is facility energy ÷ IT energy, at least 1.0, not {pue}.")
    grid_g_per_kwh = _positive("grid_g_per_kwh", grid_g_per_kwh, zero_ok=True)
    utilisation = _positive("utilisation", utilisation)
    if utilisation > 1:
        raise ValueError(f"utilisation is a fraction of the peak, between 0 and 1 (0.4 is 40%), not {utilisation}.")
    n_gpus = whole_number("n_gpus", n_gpus)
    price_per_gpu_hour = _positive("price_per_gpu_hour (USD)", price_per_gpu_hour, zero_ok=True)
    flops = training_flops(n_params, n_tokens)
    gpu_hours = flops / (_positive("peak_flops", peak_flops) * utilisation) / 3600
    return Estimate(flops=flops, gpu_hours=gpu_hours, days=gpu_hours / n_gpus / 24,
                    cost=gpu_hours * price_per_gpu_hour, energy_kwh=gpu_hours * _positive("watts", watts) / 1000,
                    n_params=float(n_params), n_tokens=float(n_tokens), n_gpus=n_gpus,
                    peak_flops=float(peak_flops), utilisation=utilisation,
                    price_per_gpu_hour=float(price_per_gpu_hour), pue=pue, grid_g_per_kwh=grid_g_per_kwh)


def _readable(x: float) -> str:
    """1,234 for large numbers, three significant figures (12.3, 0.525) for small ones."""
    return f"{x:,.0f}" if x >= 999.5 else f"{x:.3g}"


def _dollars(x: float, sign: str = "$") -> str:
    return f"{sign}{x:,.0f}" if x >= 99.5 else f"{sign}{x:,.2f}"


def _si(x: float) -> str:
    """17.5M, 110M, 175B, 1.28T: how parameter and token counts are usually written."""
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if x >= factor:
            return f"{x / factor:.3g}{suffix}"
    return f"{x:.3g}"


def estimate_summary(estimate: Estimate) -> str:
    """A few plain-text lines: FLOPs, GPU-hours, wall-clock days, cost and energy, with the assumptions."""
    e = estimate
    gpus = f"{e.n_gpus:,} GPU" + ("s" if e.n_gpus > 1 else "")
    return (f"{_si(e.n_params)} parameters × {_si(e.n_tokens)} tokens: {e.flops:.3g} FLOPs (6·N·D)\n"
            f"{_readable(e.gpu_hours)} GPU-hours at {e.utilisation:.0%} of {e.peak_flops / 1e12:,.0f} TFLOP/s "
            f"= {_readable(e.days)} days on {gpus}\n"
            f"{_dollars(e.cost)} at an assumed {_dollars(e.price_per_gpu_hour)} per GPU-hour; "
            f"{_readable(e.energy_kwh)} kWh (GPU boards only)"
            + (f"\n{_readable(e.facility_kwh)} kWh at the facility (PUE {e.pue:.2f}); "
               f"{_readable(e.co2_kg)} kg CO2 at an assumed {e.grid_g_per_kwh:,.0f} g per kWh"
               if e.pue != 1.0 or e.grid_g_per_kwh else ""))


def estimate_table(runs: list[tuple[str, Estimate]]) -> str:
    """One row per (label, Estimate), aligned by dlcourse.tables.format_table."""
    header = ["run", "params N", "tokens D", "FLOPs", "GPU-hours", "GPUs", "days", "cost (USD)", "energy (kWh)"]
    rows = [[label, _si(e.n_params), _si(e.n_tokens), f"{e.flops:.3g}", _readable(e.gpu_hours), f"{e.n_gpus:,}",
             _readable(e.days), _dollars(e.cost, sign=""), _readable(e.energy_kwh)] for label, e in runs]
    return format_table(header, rows)


def claim_check(params: float = 17.5e6, tokens: float = 1.28e11, accelerator: str = "A100",
                utilisation: float = 0.4) -> list[tuple[str, Estimate]]:
    """The circulating claim, "a 17.5M-parameter BERT that needs thousands of GPU hours", next to
    BERT-base (bert_params()["total"] parameters), both on BERT-base's token budget and one GPU.

    BERT-base has about 110M parameters, not 17.5M, and at 40% of an A100 it takes about 187
    GPU-hours (7.8 days on one GPU), not thousands; a 17.5M model would need about 30.
    """
    if accelerator not in ACCELERATORS:
        raise ValueError(f"accelerator must be one of {', '.join(ACCELERATORS)}, not {accelerator!r}.")
    chip = ACCELERATORS[accelerator]

    def on_one_gpu(n: float) -> Estimate:
        return estimate_training(n, tokens, peak_flops=chip.peak_flops, utilisation=utilisation, n_gpus=1,
                                 watts=chip.watts)

    bert_base = bert_params()["total"]
    return [(f"claimed {_si(params)}-parameter BERT", on_one_gpu(params)),
            (f"BERT-base ({bert_base:,} parameters)", on_one_gpu(bert_base))]


# --------------------------------------------------------------------------------------------
# BERT-base's real token count, Chinchilla, memory, serving


def bert_base_tokens(*, steps: int = 1_000_000, batch: int = 256, short: int = 128, long: int = 512,
                     short_share: float = 0.9) -> float:
    """Tokens BERT-base trained on: Devlin et al. 2019 (§A.2) ran 90% of the 1M steps at length 128
    and the last 10% at 512, 256 sequences per step. (The 1.28e11 of BERT_BASE counts every step at 512.)"""
    return steps * batch * (short_share * short + (1 - short_share) * long)


CHINCHILLA_TOKENS_PER_PARAM = 20  # Hoffmann et al. 2022: about 20 tokens per parameter is compute-optimal


def chinchilla_optimal(compute_flops: float, tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM
                       ) -> tuple[float, float]:
    """(N, D) that spend ``compute_flops`` = 6·N·D with D = tokens_per_param·N: N = sqrt(C / (6·r))."""
    c, r = _positive("compute_flops", compute_flops), _positive("tokens_per_param", tokens_per_param)
    n = math.sqrt(c / (6 * r))
    return n, r * n


def training_memory_bytes(n_params: float, *, weight_bytes: float = 2, grad_bytes: float = 2,
                          master_bytes: float = 4, optimizer_states: int = 2, state_bytes: float = 4) -> float:
    """Weights, gradients, float32 master weights and the optimizer's states (Adam keeps 2 per parameter):
    2 + 2 + 4 + 2·4 = 16 bytes per parameter in mixed precision, before any activations."""
    per_param = weight_bytes + grad_bytes + master_bytes + optimizer_states * state_bytes
    return _positive("n_params", n_params) * per_param


def kv_cache_bytes_per_token(n_layers: int, d_model: int, bytes_per_number: float = 2) -> float:
    """A decoder keeps one key and one value vector of d_model numbers per layer for every token it has
    seen: 2 · layers · d_model · bytes per number (full multi-head attention; grouped-query attention
    shares keys and values between heads and stores fewer)."""
    return 2 * whole_number("n_layers", n_layers, 1) * whole_number("d_model", d_model, 1) * bytes_per_number


def serving_cost_per_million_tokens(n_params: float, peak_flops: float, utilisation: float,
                                    price_per_gpu_hour: float) -> tuple[float, float]:
    """(tokens per second, USD per million generated tokens) on one GPU at ``utilisation`` of its peak:
    a generated token costs about 2·N FLOPs (the forward pass alone)."""
    tokens_per_s = _positive("peak_flops", peak_flops) * _positive("utilisation", utilisation) / inference_flops(
        n_params, 1)
    return tokens_per_s, _positive("price_per_gpu_hour", price_per_gpu_hour, zero_ok=True) / 3600 / tokens_per_s * 1e6


def facility_kwh(board_watts: float, n_gpus: int, hours: float, pue: float) -> float:
    """Energy at the facility's meter: board watts × GPUs × hours × PUE, in kWh."""
    return _positive("board_watts", board_watts) * whole_number("n_gpus", n_gpus, 1) * _positive(
        "hours", hours, zero_ok=True) * _positive("pue", pue) / 1000


def co2_kg(kwh: float, grid_g_per_kwh: float) -> float:
    """Kilograms of CO2 for ``kwh`` from a grid emitting ``grid_g_per_kwh`` grams per kWh."""
    return _positive("kwh", kwh, zero_ok=True) * _positive("grid_g_per_kwh", grid_g_per_kwh, zero_ok=True) / 1000


@dataclass(frozen=True)
class ModelShape:
    """A published Transformer's size: parameters, layers and width, with the paper it comes from."""

    name: str
    params: float
    n_layers: int
    d_model: int
    source: str


MODEL_SHAPES: dict[str, ModelShape] = {m.name: m for m in (
    ModelShape("BERT-base", 110e6, 12, 768, "Devlin et al. 2019"),
    ModelShape("GPT-2 XL", 1.5e9, 48, 1600, "Radford et al. 2019"),
    ModelShape("GPT-3 13B", 13e9, 40, 5140, "Brown et al. 2020, Table 2.1"),
    ModelShape("GPT-3 175B", 175e9, 96, 12288, "Brown et al. 2020, Table 2.1"),
)}

# Two runs of about the same compute (Hoffmann et al. 2022, Table 1 and §4.1): Gopher followed the
# earlier practice (few tokens per parameter), Chinchilla the compute-optimal ≈20 tokens per parameter.
SCALING_RUNS: dict[str, PublishedRun] = {run.name: run for run in (
    GPT3,
    PublishedRun("Gopher 280B", params=280e9, tokens=300e9, reported_flops=None, hardware="TPUv3",
                 source="Rae et al. 2021; Hoffmann et al. 2022, Table 1"),
    PublishedRun("Chinchilla 70B", params=70e9, tokens=1.4e12, reported_flops=None, hardware="TPUv3/TPUv4",
                 source="Hoffmann et al. 2022, Training Compute-Optimal Large Language Models"),
)}
