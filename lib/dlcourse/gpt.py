"""Lab 14's GPT: causal multi-head self-attention, the pre-LN decoder block, the model (token + position
embeddings, blocks, final LayerNorm, output layer tied to the token embedding), the next-token training step
and loop, held-out loss per character, and incremental decoding with a key/value cache.

These are the course's reference versions: the lab's checks compare the student's code with them, and the
lab trains the student's classes with `train_gpt`. Masks follow ``dlcourse.attention`` (True = may attend).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse.attention import causal_mask, merge_heads, split_heads
from dlcourse.optim import warmup_cosine


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t attends to positions 0..t only (Radford et al. 2018).

    One packed projection ``qkv`` (d → 3d: [W_q; W_k; W_v]) and an output projection ``proj`` (d → d)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model = {d_model} is not divisible by n_heads = {n_heads}.")
        self.d_model, self.n_heads = d_model, n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x).split(self.d_model, dim=-1)
        q, k, v = (split_heads(t, self.n_heads) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        mask = torch.from_numpy(causal_mask(x.shape[1])).to(x.device)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        return self.proj(merge_heads(weights @ v))


class DecoderBlock(nn.Module):
    """Pre-LN decoder block: x + attn(LN₁(x)), then + FFN(LN₂(x)) — lab 10's pre-LN block with a causal mask."""

    def __init__(self, d_model: int, n_heads: int, attention: type[nn.Module] = CausalSelfAttention) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = attention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Token + learned position embeddings → blocks → final LayerNorm → output layer whose weight IS the token
    embedding matrix (weight tying, Press & Wolf 2017). (B, T) ids → (B, T, V) next-token logits."""

    def __init__(self, vocab_size: int, block_size: int, d_model: int, n_heads: int, n_layers: int,
                 block: type[nn.Module] = DecoderBlock) -> None:
        super().__init__()
        self.block_size = block_size
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(block_size, d_model)
        self.blocks = nn.ModuleList(block(d_model, n_heads) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight
        init_weights(self)

    def forward(self, idx: Tensor) -> Tensor:
        positions = torch.arange(idx.shape[1], device=idx.device)
        x = self.token_embedding(idx) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_norm(x))


def init_weights(model: nn.Module, std: float = 0.02) -> None:
    """GPT-2's initialisation: N(0, 0.02) for linear and embedding weights, zero biases (Radford et al. 2019)."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    """Distinct parameters (a tied matrix counts once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


# --------------------------------------------------------------------------------------------- training
def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, chunk: Tensor) -> float:
    """One step on (B, T+1) windows: inputs chunk[:, :-1], targets chunk[:, 1:] (the NEXT token)."""
    inputs, targets = chunk[:, :-1], chunk[:, 1:]
    logits = model(inputs)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def random_chunks(ids: Tensor, batch_size: int, length: int, generator: torch.Generator) -> Tensor:
    """(batch_size, length) windows of the 1-D id tensor at random start positions."""
    starts = torch.randint(0, len(ids) - length + 1, (batch_size,), generator=generator)
    return ids[starts[:, None] + torch.arange(length)]


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.1
    eval_every: int = 100
    eval_chunks: int = 64  # held-out windows per curve point
    seed: int = 0


@dataclass
class History:
    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # mean over the steps since the last evaluation (nats/token)
    val_loss: list[float] = field(default_factory=list)  # nats per token on a fixed held-out sample
    train_seconds: float = 0.0  # training only, evaluation excluded
    cpu_seconds: float = 0.0  # process CPU time of training (the load of other processes does not count)
    tokens_seen: int = 0


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter 2019); no weight decay on biases, LayerNorm and position vectors."""
    params = {id(p): (n, p) for n, p in model.named_parameters()}.values()
    decay = [p for n, p in params if p.ndim >= 2 and "position" not in n]
    no_decay = [p for n, p in params if p.ndim < 2 or "position" in n]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.99))


def train_gpt(model: nn.Module, train_ids: Tensor, val_ids: Tensor, config: TrainConfig,
              step: Callable[[nn.Module, torch.optim.Optimizer, Tensor], float] = train_step,
              progress: bool = True) -> History:
    """A fixed number of ``step`` calls on random windows (seeded), warm-up then cosine learning rate, with the
    held-out loss on fixed windows every ``eval_every`` steps."""
    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(config.seed)
    curve = fixed_chunks(val_ids, model.block_size + 1, config.eval_chunks)
    history, running, count = History(), 0.0, 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, desc="training", unit="step")
    model.train()
    for i in range(config.steps):
        start, cpu = time.perf_counter(), time.process_time()
        chunk = random_chunks(train_ids, config.batch_size, model.block_size + 1, generator)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * warmup_cosine(i, config.steps, config.warmup)
        loss = float(step(model, optimizer, chunk))
        history.train_seconds += time.perf_counter() - start
        history.cpu_seconds += time.process_time() - cpu
        history.tokens_seen += chunk[:, 1:].numel()
        running, count = running + loss, count + 1
        if (i + 1) % config.eval_every == 0 or i == config.steps - 1:
            history.step.append(i + 1)
            history.train_loss.append(running / count)
            history.val_loss.append(loss_per_token(model, curve))
            running, count = 0.0, 0
            if bar is not None:
                bar.set_postfix(val_loss=f"{history.val_loss[-1]:.3f}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    model.eval()
    return history


def fixed_chunks(ids: Tensor, length: int, n: int | None = None) -> Tensor:
    """Non-overlapping (n, length) windows from the start of ``ids`` (all that fit when n is None)."""
    count = len(ids) // length if n is None else min(n, len(ids) // length)
    return ids[: count * length].reshape(count, length)


@torch.no_grad()
def loss_per_token(model: nn.Module, chunks: Tensor, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy (nats per token) over (N, T+1) windows; eval mode, mode restored."""
    was = model.training
    model.eval()
    total, n = 0.0, 0
    try:
        for start in range(0, len(chunks), batch_size):
            batch = chunks[start:start + batch_size]
            logits = model(batch[:, :-1])
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                                     reduction="sum").item()
            n += batch[:, 1:].numel()
    finally:
        model.train(was)
    return total / n


@torch.no_grad()
def heldout_nats_per_char(model: nn.Module, ids: Tensor, token_lengths: Tensor) -> float:
    """Total next-token loss over every held-out window, divided by the characters the scored tokens spell.

    ``ids`` encodes the held-out text; ``token_lengths[i]`` is how many characters token i spells (1 for a
    character tokeniser). Windows of block_size + 1 tokens do not overlap; every token but the first of each
    window is scored. Per character, not per token, so tokenisers with different token lengths compare fairly."""
    chunks = fixed_chunks(ids, model.block_size + 1)
    scored = chunks[:, 1:]
    total = loss_per_token(model, chunks) * scored.numel()
    return total / float(token_lengths[scored].sum())


# --------------------------------------------------------------------------------------- KV-cache decoding
def cached_attention(attn: nn.Module, x: Tensor, cache: dict[str, Tensor]) -> Tensor:
    """Attention for the NEW positions ``x`` (B, T_new, d) given the keys/values of earlier ones in ``cache``
    ({"k", "v"}: (B, H, T_past, d_head); empty at first). Appends the new keys/values, then attends."""
    q, k, v = attn.qkv(x).split(attn.d_model, dim=-1)
    q, k, v = (split_heads(t, attn.n_heads) for t in (q, k, v))
    if "k" in cache:
        k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
    cache["k"], cache["v"] = k, v
    t_new, t_all = q.shape[2], k.shape[2]
    mask = torch.from_numpy(causal_mask(t_all)[t_all - t_new:]).to(x.device)  # new rows of the causal mask
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return attn.proj(merge_heads(out))


AttendFn = Callable[[nn.Module, Tensor, dict], Tensor]


@torch.no_grad()
def forward_cached(model: nn.Module, idx: Tensor, caches: list[dict], attend: AttendFn = cached_attention) -> Tensor:
    """Logits (B, T_new, V) for the new tokens ``idx`` at positions after those already in ``caches``."""
    start = caches[0]["k"].shape[2] if "k" in caches[0] else 0
    positions = torch.arange(start, start + idx.shape[1], device=idx.device)
    x = model.token_embedding(idx) + model.position_embedding(positions)
    for block, cache in zip(model.blocks, caches):
        x = x + attend(block.attn, block.ln1(x), cache)
        x = x + block.mlp(block.ln2(x))
    return model.head(model.final_norm(x))


def kv_cache_bytes_per_token(n_layers: int, d_model: int, bytes_per_number: int) -> int:
    """2 (a key and a value) · layers · d_model · bytes per number."""
    return 2 * n_layers * d_model * bytes_per_number
