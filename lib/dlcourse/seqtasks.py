"""A synthetic sequence task for lab 10: sort a short list of digits with a tiny Transformer encoder.

Input: digits 0–9 of random length ``min_len…max_len``, right-padded with ``PAD`` to ``max_len``. Target, position
by position: the same digits in ascending order (``PAD`` where the input is padding). An encoder-only model reads the
whole input at once, so output position i can attend to every input digit and work out "the i-th smallest".
Fresh batches come from a seeded generator, so the model never sees the same list twice and overfitting is moot;
held-out accuracy is measured on a fixed seeded batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse.optim import warmup_cosine
from dlcourse.transformer import Encoder, block_parts, post_ln_forward, pre_ln_forward

N_DIGITS = 10  # output classes 0..9
PAD = 10  # the padding token; larger than every digit, so it sorts to the end
VOCAB_SIZE = N_DIGITS + 1


@dataclass
class SortBatch:
    """tokens (B, T) int64 with PAD after each sequence; targets (B, T) sorted digits (PAD on padding); mask (B, T) True = real."""

    tokens: np.ndarray
    targets: np.ndarray
    mask: np.ndarray

    def tensors(self, device: Any = "cpu") -> tuple[Tensor, Tensor, Tensor]:
        return (torch.from_numpy(self.tokens).to(device), torch.from_numpy(self.targets).to(device),
                torch.from_numpy(self.mask).to(device))


def sort_targets(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each row's real digits in ascending order, PAD on the padded positions (the reference for exercise 10.5)."""
    filled = np.where(mask, tokens, PAD)
    return np.sort(filled, axis=1)  # PAD > every digit, so padding stays at the end of each row


def make_sort_batch(batch_size: int, min_len: int, max_len: int, rng: np.random.Generator) -> SortBatch:
    """A batch of random digit lists (lengths uniform in min_len…max_len) with their sorted targets."""
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len} and {max_len}.")
    lengths = rng.integers(min_len, max_len + 1, size=batch_size)
    mask = np.arange(max_len)[None, :] < lengths[:, None]
    tokens = np.where(mask, rng.integers(0, N_DIGITS, size=(batch_size, max_len)), PAD).astype(np.int64)
    return SortBatch(tokens, sort_targets(tokens, mask).astype(np.int64), mask)


def masked_token_accuracy(logits: Tensor, targets: Tensor, mask: Tensor) -> float:
    """Share of real (unpadded) positions whose arg-max prediction equals the target."""
    correct = (logits.argmax(-1) == targets) & mask
    return float(correct.sum()) / float(mask.sum())


def sequence_accuracy(logits: Tensor, targets: Tensor, mask: Tensor) -> float:
    """Share of sequences whose every real position is right (a much stricter measure)."""
    wrong = (logits.argmax(-1) != targets) & mask
    return float((~wrong.any(dim=1)).float().mean())


class SortModel(nn.Module):
    """Encoder (pre-LN, learned positions) + a linear layer that reads each position's vector as 10 digit logits."""

    def __init__(self, max_len: int, d_model: int = 64, n_heads: int = 4, n_layers: int = 2,
                 d_ff: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = Encoder(VOCAB_SIZE, max_len, d_model, n_heads, n_layers, d_ff, dropout)
        self.head = nn.Linear(d_model, N_DIGITS)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, T) tokens, (B, T) True = real → (B, T, 10) logits; padded keys are hidden from every query."""
        return self.head(self.encoder(tokens, key_padding=mask))


class SortTransformer(nn.Module):
    """Lab 10's sorter written from parts (the reference for exercise 10.7): token embedding + learned positions
    (``position_embedding``, (max_len, d)), ``n_layers`` blocks of ``block_parts`` run post-LN or pre-LN, a final
    LayerNorm when pre-LN (``nn.Identity`` when post-LN), and a linear ``head`` to ``n_classes`` scores."""

    def __init__(self, vocab_size: int, max_len: int, d_model: int, n_heads: int, n_layers: int, d_ff: int,
                 n_classes: int, dropout: float = 0.0, norm_first: bool = True) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        self.blocks = nn.ModuleList(block_parts(d_model, n_heads, d_ff, dropout, activation="gelu")
                                    for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """(B, T) token ids, (B, T) True = real → (B, T, n_classes) scores; padded keys hidden from every query."""
        x = self.token_embedding(tokens) + self.position_embedding[: tokens.shape[1]]
        block = pre_ln_forward if self.norm_first else post_ln_forward
        for parts in self.blocks:
            x = block(x, parts, mask[:, None, None, :])
        return self.head(self.final_norm(x))


def sort_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, tokens: Tensor,
                    targets: Tensor, mask: Tensor) -> float:
    """One training step (the reference for exercise 10.8): cross-entropy on the real positions, backward, step."""
    logits = model(tokens, mask)
    loss = F.cross_entropy(logits[mask], targets[mask])  # padded positions carry no loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.item()


@torch.no_grad()
def evaluate(model: nn.Module, batch: SortBatch, accuracy: Callable[[Tensor, Tensor, Tensor], float] | None = None,
             batch_size: int | None = None) -> tuple[float, float]:
    """(token accuracy, sequence accuracy) on a fixed batch, ``batch_size`` lists per forward pass (all at once when
    None), in eval mode (mode restored): the reference for exercise 10.10. A chunk's token accuracy is weighted by its
    real positions and its sequence accuracy by its lists, so a smaller last chunk counts for what it holds.
    ``accuracy`` replaces ``masked_token_accuracy`` (lab 10 passes the student's)."""
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    accuracy = accuracy or masked_token_accuracy
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    tokens, targets, mask = batch.tensors(device)
    step = batch_size or len(tokens)
    token_hits = list_hits = 0.0
    for start in range(0, len(tokens), step):
        part = slice(start, start + step)
        logits = model(tokens[part], mask[part])
        token_hits += float(accuracy(logits, targets[part], mask[part])) * int(mask[part].sum())
        list_hits += sequence_accuracy(logits, targets[part], mask[part]) * len(logits)
    model.train(was_training)
    return token_hits / int(mask.sum()), list_hits / len(tokens)


def train_sort_model(model: nn.Module, *, steps: int, batch_size: int = 64, min_len: int = 4, max_len: int = 12,
                     lr: float = 3e-3, warmup: int = 100, weight_decay: float = 0.01, seed: int = 0,
                     val_batch: SortBatch | None = None, eval_every: int = 100, progress: bool = True,
                     step: Callable[..., float] | None = None,
                     accuracy: Callable[[Tensor, Tensor, Tensor], float] | None = None,
                     lr_factor: Callable[[int, int, int], float] | None = None,
                     evaluator: Callable[..., tuple[float, float]] | None = None,
                     eval_batch_size: int = 256) -> dict[str, list[float]]:
    """AdamW with warm-up and cosine decay on fresh seeded batches; returns a history dict.

    ``step(model, optimizer, scheduler, tokens, targets, mask) -> loss`` replaces the built-in training step and
    ``accuracy`` the held-out token accuracy, ``lr_factor(step, total, warmup)`` the schedule, and
    ``evaluator(model, val_batch, accuracy, eval_batch_size) -> (token, sequence accuracy)`` the held-out evaluation
    (lab 10 passes the student's); ``warmup=0`` trains without warm-up.

    history: "step", "loss" (mean training loss since the previous evaluation), "val_accuracy" (token accuracy on
    val_batch), "val_sequence_accuracy", "seconds" (training time so far, evaluation excluded).
    """
    from tqdm.auto import tqdm

    from dlcourse.training import Stopwatch

    rng = np.random.default_rng(seed)
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    factor = lr_factor or warmup_cosine
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: factor(s, steps, warmup))
    history: dict[str, list[float]] = {"step": [], "loss": [], "val_accuracy": [], "val_sequence_accuracy": [], "seconds": []}
    watch, losses = Stopwatch(), []
    model.train()
    bar = tqdm(range(steps), desc="training", disable=not progress)
    train_step = step or sort_train_step
    for i in bar:
        watch.start()
        tokens, targets, mask = make_sort_batch(batch_size, min_len, max_len, rng).tensors(device)
        loss = float(train_step(model, optimizer, schedule, tokens, targets, mask))
        watch.stop()
        losses.append(loss)
        if val_batch is not None and ((i + 1) % eval_every == 0 or i + 1 == steps):
            token_acc, seq_acc = (evaluator or evaluate)(model, val_batch, accuracy or masked_token_accuracy,
                                                         eval_batch_size)
            for key, value in (("step", i + 1), ("loss", float(np.mean(losses))), ("val_accuracy", token_acc),
                               ("val_sequence_accuracy", seq_acc), ("seconds", watch.seconds)):
                history[key].append(value)
            losses = []
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", acc=f"{token_acc:.3f}")
    return history


@torch.no_grad()
def attention_maps(model: nn.Module, tokens: Tensor, mask: Tensor) -> tuple[Tensor, list[Tensor]]:
    """(scores, [per-block attention weights (B, H, T, T), …]) from one eval-mode forward pass of a model whose blocks
    call ``parts.self_attn`` (lab 10's SortTransformer, the student's or the reference): hooks ask each attention
    module for its weights, so the student's forward pass runs unchanged (mode restored, hooks removed)."""
    from dlcourse.attention import MultiHeadAttention

    maps: list[Tensor] = []
    handles = []
    for module in model.modules():
        if isinstance(module, MultiHeadAttention):
            handles.append(module.register_forward_pre_hook(
                lambda m, args, kwargs: (args, {**kwargs, "need_weights": True}), with_kwargs=True))
            handles.append(module.register_forward_hook(lambda m, args, out: maps.append(out[1])))
    was_training = model.training
    model.eval()
    try:
        scores = model(tokens, mask)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return scores, maps
