"""Lab 11's tiny BERT: ``dlcourse.transformer.Encoder`` + an MLM head, its training step and loop, held-out
evaluation, fill-in-the-blank, and save/load in one file. Data side (tokeniser, masking, baselines): ``dlcourse.mlm``.

The loop, the evaluation, fill-in, attention maps and save/load take any model that maps (B, T) ids to (B, T, V)
logits and carries a ``config`` (``BertConfig``); the lab trains the student's own ``MaskedLM`` with them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

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
    # lab 11 trains pre-LN; True/False below is BERT's own layout (post-LN, LayerNorm on the embeddings), which
    # lab 15's shipped model uses so that transformers.BertForMaskedLM computes the same function
    norm_first: bool = True
    embedding_norm: bool = False


class TinyBert(nn.Module):
    """Encoder (learned positions, GELU; pre-LN, or BERT's post-LN via the config) + BERT's MLM head: dense → GELU
    → LayerNorm → decoder whose weight is TIED to the token embedding (Devlin et al. 2019; Press & Wolf 2017),
    plus an output bias."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config.vocab_size, config.max_len, config.d_model, config.n_heads, config.n_layers,
                               config.d_ff, config.dropout, positions="learned", norm_first=config.norm_first,
                               activation="gelu", embedding_norm=config.embedding_norm)
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


def selected_logits(model: nn.Module, inputs: Tensor, selected: Tensor) -> Tensor:
    """Logits at the selected positions only: TinyBert runs its head there alone, any other model runs whole."""
    if isinstance(model, TinyBert):
        return model.head(model.encoder(inputs)[selected])
    return model(inputs)[selected]


@torch.no_grad()
def evaluate_mlm(model: nn.Module, masked: MaskedSet, batch_size: int = 256) -> tuple[float, float]:
    """(mean masked-character loss in nats, accuracy) on a fixed masked set; eval mode, mode restored."""
    was = model.training
    model.eval()
    total, correct, n = 0.0, 0, 0
    try:
        for start in range(0, len(masked.inputs), batch_size):
            inputs, labels = masked.inputs[start:start + batch_size], masked.labels[start:start + batch_size]
            selected = labels != IGNORE
            logits = selected_logits(model, inputs, selected)
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


StepFn = Callable[[nn.Module, torch.optim.Optimizer, Tensor, Tensor], float]
MaskFn = Callable[..., tuple[Tensor, Tensor]]
EvalFn = Callable[[nn.Module, MaskedSet], tuple[float, float]]


def _update(model: nn.Module, optimizer: torch.optim.Optimizer, loss: Tensor, max_norm: float) -> float:
    """Backward, clip the gradient norm to ``max_norm``, step; the loss as a number."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return loss.item()


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: Tensor, labels: Tensor,
               max_norm: float = 1.0) -> float:
    """One update: clear the gradients, masked-LM loss, backward, clip the gradient norm to ``max_norm``, step."""
    optimizer.zero_grad(set_to_none=True)
    return _update(model, optimizer, masked_lm_loss(model(inputs), labels), max_norm)


def _tiny_bert_step(model: TinyBert, optimizer: torch.optim.Optimizer, inputs: Tensor, labels: Tensor) -> float:
    """``train_step`` for TinyBert, with the head run at the selected positions only (same maths, less work)."""
    optimizer.zero_grad(set_to_none=True)
    return _update(model, optimizer, model.loss(inputs, labels), 1.0)


def train_mlm(model: nn.Module, train_ids: Tensor, tokenizer: CharTokenizer, config: TrainConfig,
              val_set: MaskedSet | None = None, progress: bool = True, *, step: StepFn | None = None,
              mask: MaskFn = bert_mask, evaluate: EvalFn = evaluate_mlm) -> History:
    """AdamW (Loshchilov & Hutter 2019) on freshly masked random windows, a fixed number of steps (seeded).

    ``step(model, optimizer, inputs, labels) -> loss`` makes one update (default: ``train_step``, or TinyBert's
    cheaper equivalent); ``mask`` corrupts each batch (``bert_mask``'s signature); ``evaluate(model, val_set)``
    scores the curve's held-out points (``evaluate_mlm``'s signature; it must leave the model in training mode)."""
    if step is None:
        step = _tiny_bert_step if isinstance(model, TinyBert) else train_step
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
    for index in range(config.steps):
        start = time.perf_counter()
        windows = random_windows(train_ids, config.batch_size, seq_len, generator)
        inputs, labels = mask(windows, generator, mask_id=tokenizer.mask_id, n_special=tokenizer.n_special,
                              vocab_size=tokenizer.vocab_size)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(index, config)
        loss = float(step(model, optimizer, inputs, labels))
        history.train_seconds += time.perf_counter() - start
        history.tokens_seen += windows.numel()
        running, count = running + loss, count + 1
        last = index == config.steps - 1
        if val_set is not None and ((index + 1) % config.eval_every == 0 or last):
            val_loss, val_acc = (float(v) for v in evaluate(model, val_set))
            history.step.append(index + 1)
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
def fill_mask(model: nn.Module, tokenizer: CharTokenizer, text: str, k: int = 5,
              top_k: Callable = top_k_fill) -> list[tuple[str, float]]:
    """Top-k (character, probability) for the FIRST [MASK] in ``text`` (the window's last max_len tokens);
    ``top_k(logits, position, k, n_special)`` picks them (default ``mlm.top_k_fill``)."""
    ids = tokenizer.encode(text)[-model.config.max_len:]
    if tokenizer.mask_id not in ids:
        raise ValueError(f"No mask token found in the input: put {tokenizer.mask_token} where a character is missing.")
    position = ids.index(tokenizer.mask_id)
    was = model.training
    model.eval()
    logits = model(torch.tensor([ids]))[0].numpy()
    model.train(was)
    top, probs = top_k(logits, position, k, tokenizer.n_special)
    return [(tokenizer.itos[int(i)], float(p)) for i, p in zip(top, probs)]


def save_mlm(path, model: nn.Module, tokenizer: CharTokenizer) -> None:
    """One file: weights, model config and vocabulary (plain types only, so weights_only loading works)."""
    torch.save({"state_dict": model.state_dict(), "config": asdict(model.config), "chars": tokenizer.chars}, path)


def load_mlm(path, model_class: Callable[[BertConfig], nn.Module] = TinyBert) -> tuple[nn.Module, CharTokenizer]:
    """Rebuild the model (``model_class(config)``) and tokeniser saved by ``save_mlm``
    (``torch.load(weights_only=True)``: no pickled code)."""
    bundle = torch.load(path, weights_only=True)
    model = model_class(BertConfig(**bundle["config"]))
    model.load_state_dict(bundle["state_dict"])
    model.eval()
    return model, CharTokenizer(bundle["chars"])


@torch.no_grad()
def attention_of(model: nn.Module, tokenizer: CharTokenizer, text: str) -> np.ndarray:
    """Attention weights for one line: (layers, heads, T, T) NumPy array. The model (TinyBert's ``encoder``, or the
    model itself) needs ``embed(tokens)`` and ``blocks`` of ``dlcourse.transformer.EncoderBlock``."""
    tokens = torch.tensor([tokenizer.encode(text)[: model.config.max_len]])
    body = getattr(model, "encoder", model)
    was = body.training
    body.eval()
    try:
        x, maps = body.embed(tokens), []
        for block in body.blocks:
            x, weights = block.forward_with_attention(x)
            maps.append(weights[0])
    finally:
        body.train(was)
    return torch.stack(maps).numpy()
