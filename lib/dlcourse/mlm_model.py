"""Lab 11's tiny BERT: ``dlcourse.transformer.Encoder`` + an MLM head, its training loop, held-out evaluation,
fill-in-the-blank, and save/load in one file. Data side (tokeniser, masking, baselines): ``dlcourse.mlm``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse.mlm import IGNORE, CharTokenizer, MaskedSet, bert_mask, random_windows, top_k_fill
from dlcourse.optim import warmup_cosine
from dlcourse.transformer import Encoder


@dataclass
class BertConfig:
    vocab_size: int
    max_len: int = 64
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 3
    d_ff: int = 512
    dropout: float = 0.0


class TinyBert(nn.Module):
    """Encoder (learned positions, pre-LN, GELU) + BERT's MLM head: dense → GELU → LayerNorm → decoder whose
    weight is TIED to the token embedding (Devlin et al. 2019; Press & Wolf 2017), plus an output bias."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config.vocab_size, config.max_len, config.d_model, config.n_heads, config.n_layers,
                               config.d_ff, config.dropout, positions="learned", norm_first=True, activation="gelu")
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.norm = nn.LayerNorm(config.d_model)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        with torch.no_grad():
            self.encoder.token_embedding.weight.normal_(0.0, 0.02)

    def head(self, hidden: Tensor) -> Tensor:
        """(…, d) hidden states → (…, V) logits."""
        x = self.norm(F.gelu(self.dense(hidden)))
        return x @ self.encoder.token_embedding.weight.T + self.bias

    def forward(self, tokens: Tensor) -> Tensor:
        """(B, T) ids → (B, T, V) logits at every position."""
        return self.head(self.encoder(tokens))

    def loss(self, inputs: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy over the selected positions only; the head runs only there (≈15% of the cost)."""
        hidden = self.encoder(inputs)
        selected = labels != IGNORE
        return F.cross_entropy(self.head(hidden[selected]), labels[selected])


def masked_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy over positions whose label is not IGNORE: (B, T, V) logits, (B, T) labels."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)


@torch.no_grad()
def evaluate_mlm(model: TinyBert, masked: MaskedSet, batch_size: int = 256) -> tuple[float, float]:
    """(mean masked-character loss in nats, accuracy) on a fixed masked set; eval mode, mode restored."""
    was = model.training
    model.eval()
    total, correct, n = 0.0, 0, 0
    try:
        for start in range(0, len(masked.inputs), batch_size):
            inputs, labels = masked.inputs[start:start + batch_size], masked.labels[start:start + batch_size]
            selected = labels != IGNORE
            logits = model.head(model.encoder(inputs)[selected])
            targets = labels[selected]
            total += F.cross_entropy(logits, targets, reduction="sum").item()
            correct += int((logits.argmax(-1) == targets).sum())
            n += len(targets)
    finally:
        model.train(was)
    return total / n, correct / n


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-3
    warmup: int = 50
    weight_decay: float = 0.01
    eval_every: int = 100
    seed: int = 0


@dataclass
class History:
    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # mean over the steps since the last evaluation
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    train_seconds: float = 0.0  # training only, evaluation excluded
    tokens_seen: int = 0


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up to ``lr`` then cosine decay to 0 (step counts from 0)."""
    return config.lr * warmup_cosine(step, config.steps, config.warmup)


def train_mlm(model: TinyBert, train_ids: Tensor, tokenizer: CharTokenizer, config: TrainConfig,
              val_set: MaskedSet | None = None, progress: bool = True) -> History:
    """AdamW (Loshchilov & Hutter 2019) on freshly masked random windows, a fixed number of steps (seeded)."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "position" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "position" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.98))
    generator = torch.Generator().manual_seed(config.seed)
    history, running, count = History(), 0.0, 0
    seq_len = model.config.max_len
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, desc="training", unit="step")
    model.train()
    for step in range(config.steps):
        start = time.perf_counter()
        windows = random_windows(train_ids, config.batch_size, seq_len, generator)
        inputs, labels = bert_mask(windows, generator, mask_id=tokenizer.mask_id, n_special=tokenizer.n_special,
                                   vocab_size=tokenizer.vocab_size)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        loss = model.loss(inputs, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        history.train_seconds += time.perf_counter() - start
        history.tokens_seen += windows.numel()
        running, count = running + loss.item(), count + 1
        last = step == config.steps - 1
        if val_set is not None and ((step + 1) % config.eval_every == 0 or last):
            val_loss, val_acc = evaluate_mlm(model, val_set)
            history.step.append(step + 1)
            history.train_loss.append(running / count)
            history.val_loss.append(val_loss)
            history.val_accuracy.append(val_acc)
            running, count = 0.0, 0
            if bar is not None:
                bar.set_postfix(val_loss=f"{val_loss:.3f}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return history


@torch.no_grad()
def fill_mask(model: TinyBert, tokenizer: CharTokenizer, text: str, k: int = 5) -> list[tuple[str, float]]:
    """Top-k (character, probability) for the FIRST [MASK] in ``text`` (the window's last max_len tokens)."""
    ids = tokenizer.encode(text)[-model.config.max_len:]
    if tokenizer.mask_id not in ids:
        raise ValueError(f"No mask token found in the input: put {tokenizer.mask_token} where a character is missing.")
    position = ids.index(tokenizer.mask_id)
    was = model.training
    model.eval()
    logits = model(torch.tensor([ids]))[0].numpy()
    model.train(was)
    top, probs = top_k_fill(logits, position, k, tokenizer.n_special)
    return [(tokenizer.itos[int(i)], float(p)) for i, p in zip(top, probs)]


def save_mlm(path, model: TinyBert, tokenizer: CharTokenizer) -> None:
    """One file: weights, model config and vocabulary (plain types only, so weights_only loading works)."""
    torch.save({"state_dict": model.state_dict(), "config": asdict(model.config), "chars": tokenizer.chars}, path)


def load_mlm(path) -> tuple[TinyBert, CharTokenizer]:
    """Rebuild the model and tokeniser saved by ``save_mlm`` (``torch.load(weights_only=True)``: no pickled code)."""
    bundle = torch.load(path, weights_only=True)
    model = TinyBert(BertConfig(**bundle["config"]))
    model.load_state_dict(bundle["state_dict"])
    model.eval()
    return model, CharTokenizer(bundle["chars"])


def attention_of(model: TinyBert, tokenizer: CharTokenizer, text: str) -> np.ndarray:
    """Attention weights for one line: (layers, heads, T, T) NumPy array."""
    tokens = torch.tensor([tokenizer.encode(text)[: model.config.max_len]])
    return torch.stack([m[0] for m in model.encoder.attention_maps(tokens)]).numpy()
