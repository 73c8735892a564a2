"""Lab 15's sentence classifier and the four ways to train it: from scratch, a frozen probe, full fine-tuning and
LoRA (Hu et al. 2021), at several label budgets, with what each costs (trainable parameters, seconds) and what it
forgets (the masked-LM loss of the fine-tuned encoder put back under the pre-trained MLM head).

Every method gets the same budget of optimizer steps, batches drawn seeded and cycling through its labelled
examples; validation accuracy is measured every ``eval_every`` steps and the best-validation weights are restored
at the end (early stopping on validation, never on test); the test set is scored once, at the end.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse.finetune.task import Example, padded_batch
from dlcourse.mlm import CharTokenizer, MaskedSet
from dlcourse.mlm_model import BertConfig, TinyBert, evaluate_mlm
from dlcourse.optim import warmup_cosine

Pool = Callable[[Tensor, Tensor], Tensor]


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """(B, T, d) hidden states, (B, T) bool mask (True = real token) → (B, d): the mean over the real tokens only
    (the reference of exercise 15.2; padding must not count, or a short sentence's vector depends on its batch)."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def _seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` under its own seed, leaving the global generator as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class SentenceClassifier(nn.Module):
    """An encoder, a pooling function over its real tokens, and a linear head: (ids, mask) → (B, n_classes) logits."""

    def __init__(self, encoder: nn.Module, n_classes: int = 2, pool: Pool = mean_pool) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.d_model, n_classes)
        self.pool = pool

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        return self.head(self.pool(self.encoder(ids, mask), mask))

    @classmethod
    def from_pretrained(cls, tinybert: TinyBert, pool: Pool = mean_pool, seed: int = 0) -> "SentenceClassifier":
        """A deep copy of the pre-trained encoder (the shipped model is never changed) and a fresh, seeded head."""
        encoder = copy.deepcopy(tinybert.encoder)
        return _seeded(seed, lambda: cls(encoder, pool=pool))

    @classmethod
    def from_scratch(cls, config: BertConfig, seed: int = 0, pool: Pool = mean_pool) -> "SentenceClassifier":
        """The same architecture with random (seeded) weights: what the labels alone can teach."""
        return _seeded(seed, lambda: cls(TinyBert(config).encoder, pool=pool))


# ------------------------------------------------------------------------------------------- fine-tuning
@dataclass
class FinetuneConfig:
    steps: int = 300  # the budget: the same number of updates for every method and label count
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 30  # linear warm-up, then cosine decay to 0 (post-LN blocks like a warm-up)
    weight_decay: float = 0.01
    eval_every: int = 50
    eval_batch_size: int = 256
    max_len: int = 64
    seed: int = 0


@dataclass
class FinetuneHistory:
    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # mean over the steps since the last evaluation
    val_accuracy: list[float] = field(default_factory=list)
    best_step: int = 0
    best_val_accuracy: float = 0.0
    train_seconds: float = 0.0  # updates only, evaluation excluded


@torch.no_grad()
def accuracy(classifier: nn.Module, examples: Sequence[Example], tokenizer: CharTokenizer,
             batch_size: int = 256, max_len: int = 64) -> float:
    """The share of ``examples`` whose argmax logit is the label; evaluation mode, the model's mode restored.
    Scored in order of length, so a batch holds little padding (what a sentence is batched with cannot change its
    prediction: the pooling ignores padding)."""
    was = classifier.training
    classifier.eval()
    correct = 0
    by_length = sorted(examples, key=lambda e: len(e[0]))
    try:
        for start in range(0, len(by_length), batch_size):
            chunk = by_length[start:start + batch_size]
            ids, mask = padded_batch([s for s, _ in chunk], tokenizer, max_len)
            labels = torch.tensor([y for _, y in chunk])
            correct += int((classifier(ids, mask).argmax(dim=-1) == labels).sum())
    finally:
        classifier.train(was)
    return correct / max(1, len(examples))


def batch_order(n: int, steps: int, batch_size: int, seed: int) -> list[list[int]]:
    """Indices of each step's batch: seeded permutations of range(n), one after another (every example once per
    pass); a batch never holds the same example twice, so it is at most n long."""
    generator = torch.Generator().manual_seed(seed)
    size, pool, batches = min(batch_size, n), [], []
    for _ in range(steps):
        if len(pool) < size:
            pool += torch.randperm(n, generator=generator).tolist()
        batches.append(pool[:size])
        pool = pool[size:]
    return batches


def _optimizer(classifier: nn.Module, config: FinetuneConfig) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter 2019) on the parameters that require gradients only; no decay on biases/norms."""
    named = [(n, p) for n, p in classifier.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("This classifier has no trainable parameter (every requires_grad is False): nothing "
                         "would learn. Check set_trainable.")
    decay = [p for n, p in named if p.ndim >= 2 and "position" not in n]
    no_decay = [p for n, p in named if p.ndim < 2 or "position" in n]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)


def _progress_bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False)


def finetune(classifier: nn.Module, train: Sequence[Example], val: Sequence[Example], tokenizer: CharTokenizer,
             config: FinetuneConfig, *, progress: bool = True, desc: str = "fine-tuning") -> FinetuneHistory:
    """``config.steps`` AdamW updates of cross-entropy on seeded batches of ``train``; validation accuracy every
    ``eval_every`` steps (and at the end); the best-validation weights are loaded back at the end."""
    if not train:
        raise ValueError("There are no labelled training examples to fine-tune on.")
    optimizer = _optimizer(classifier, config)
    history, running, count = FinetuneHistory(), 0.0, 0
    best_state = copy.deepcopy(classifier.state_dict())
    bar = _progress_bar(config.steps, desc, progress)
    classifier.train()
    for index, rows in enumerate(batch_order(len(train), config.steps, config.batch_size, config.seed)):
        start = time.perf_counter()
        ids, mask = padded_batch([train[i][0] for i in rows], tokenizer, config.max_len)
        labels = torch.tensor([train[i][1] for i in rows])
        for group in optimizer.param_groups:
            group["lr"] = config.lr * warmup_cosine(index, config.steps, config.warmup)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(classifier(ids, mask), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in classifier.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        history.train_seconds += time.perf_counter() - start
        running, count = running + loss.item(), count + 1
        if (index + 1) % config.eval_every == 0 or index + 1 == config.steps:
            val_acc = accuracy(classifier, val, tokenizer, config.eval_batch_size, config.max_len)
            history.step.append(index + 1)
            history.train_loss.append(running / count)
            history.val_accuracy.append(val_acc)
            running, count = 0.0, 0
            if val_acc > history.best_val_accuracy or not history.best_step:
                history.best_step, history.best_val_accuracy = index + 1, val_acc
                best_state = copy.deepcopy(classifier.state_dict())
            if bar is not None:
                bar.set_postfix(val_acc=f"{val_acc:.3f}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    classifier.load_state_dict(best_state)
    return history


# ------------------------------------------------------------------------------------------- forgetting
def under_pretrained_head(encoder: nn.Module, pretrained: TinyBert) -> TinyBert:
    """A TinyBert whose encoder is (a copy of) ``encoder`` and whose MLM head is the pre-trained one (its decoder is
    tied to the encoder's token embedding, as in pre-training). LoRA layers stay in place: they compute W + BA."""
    model = copy.deepcopy(pretrained)
    model.encoder = copy.deepcopy(encoder)
    return model.eval()


def forgetting_loss(classifier: SentenceClassifier, pretrained: TinyBert, masked_set: MaskedSet) -> float:
    """Held-out masked-LM loss (nats) of the classifier's fine-tuned encoder under the pre-trained MLM head: the
    pre-trained model's own loss means nothing was forgotten; more means fine-tuning overwrote what it knew."""
    return evaluate_mlm(under_pretrained_head(classifier.encoder, pretrained), masked_set)[0]


# ------------------------------------------------------------------------------------------- methods
Builder = Callable[[TinyBert], SentenceClassifier]


def _lora():
    from dlcourse.finetune import lora  # written beside this module; imported when a method needs it

    return lora


def scratch_method(pool: Pool = mean_pool, seed: int = 0) -> Builder:
    """A fresh TinyBert encoder of the pre-trained model's config, every parameter trainable."""
    return lambda pretrained: SentenceClassifier.from_scratch(pretrained.config, seed, pool)


def pretrained_method(method: str, pool: Pool = mean_pool, set_trainable: Callable | None = None,
                      seed: int = 0) -> Builder:
    """The pre-trained encoder and a new head, trained as ``set_trainable(classifier, method)`` says ("probe": the
    head only; "full": everything)."""
    def build(pretrained: TinyBert) -> SentenceClassifier:
        classifier = SentenceClassifier.from_pretrained(pretrained, pool, seed)
        (set_trainable or _lora().set_trainable)(classifier, method)
        return classifier

    return build


def lora_method(pool: Pool = mean_pool, set_trainable: Callable | None = None, add_lora: Callable | None = None,
                lora_class: type | None = None, r: int = 8, alpha: float = 16.0,
                targets: tuple[str, ...] = ("q_proj", "v_proj"), seed: int = 0) -> Builder:
    """The pre-trained encoder with LoRA layers of rank ``r`` on ``targets``, trained with the head only."""
    def build(pretrained: TinyBert) -> SentenceClassifier:
        lora = _lora()
        classifier = SentenceClassifier.from_pretrained(pretrained, pool, seed)
        _seeded(seed + 1, lambda: (add_lora or lora.add_lora)(classifier.encoder, r, alpha, targets,
                                                               lora_class=lora_class or lora.LoRALinear))
        (set_trainable or lora.set_trainable)(classifier, "lora")
        return classifier

    return build


def standard_methods(pool: Pool = mean_pool, set_trainable: Callable | None = None, add_lora: Callable | None = None,
                     lora_class: type | None = None, r: int = 8, alpha: float = 16.0) -> dict[str, Builder]:
    """The lab's four methods, built from the student's functions (the library's where None)."""
    return {"scratch": scratch_method(pool),
            "probe": pretrained_method("probe", pool, set_trainable),
            "full": pretrained_method("full", pool, set_trainable),
            "lora": lora_method(pool, set_trainable, add_lora, lora_class, r, alpha)}


# ------------------------------------------------------------------------------------------- comparison
@dataclass
class MethodResult:
    method: str
    n_labelled: int
    test_accuracy: float
    best_val_accuracy: float
    best_step: int
    trainable: int
    forgetting: float | None  # masked-LM loss under the pre-trained head; None for "scratch"
    seconds: float
    history: FinetuneHistory = field(repr=False, default_factory=FinetuneHistory)


def nested_subsets(train: Sequence[Example], budgets: Sequence[int | None], seed: int = 0) -> list[list[Example]]:
    """One seeded shuffle of ``train``; each budget takes its first n (None = all), so 100 ⊂ 1,000 ⊂ all."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    shuffled = [train[i] for i in order]
    subsets = []
    for n in budgets:
        if n is not None and not 0 < n <= len(train):
            raise ValueError(f"A label budget of {n} is not between 1 and the {len(train)} training examples.")
        subsets.append(shuffled if n is None else shuffled[:n])
    return subsets


def compare_methods(pretrained: TinyBert, splits: tuple[Sequence[Example], Sequence[Example], Sequence[Example]],
                    budgets: Sequence[int | None], methods: Mapping[str, Builder], config: FinetuneConfig,
                    masked_set: MaskedSet, *, tokenizer: CharTokenizer, lrs: Mapping[str, float] | None = None,
                    subset_seed: int = 0, progress: bool = True) -> list[MethodResult]:
    """Every method at every label budget: fine-tune (``lrs[method]`` or ``config.lr``), then test accuracy ONCE,
    trainable parameters and the forgetting loss (None for "scratch", whose encoder never learnt the MLM task)."""
    train, val, test = splits
    results = []
    for subset in nested_subsets(train, budgets, subset_seed):
        for name, build in methods.items():
            classifier = build(pretrained)
            run = replace(config, lr=(lrs or {}).get(name, config.lr))
            history = finetune(classifier, subset, val, tokenizer, run, progress=progress,
                               desc=f"{name}, {len(subset):,} labels")
            results.append(MethodResult(
                name, len(subset), accuracy(classifier, test, tokenizer, config.eval_batch_size, config.max_len),
                history.best_val_accuracy, history.best_step, _lora().count_trainable(classifier),
                None if name == "scratch" else forgetting_loss(classifier, pretrained, masked_set),
                history.train_seconds, history))
    return results


RESULT_HEADER = ("method", "labelled", "test acc", "best val acc", "trainable params", "MLM loss after", "seconds")


def result_rows(results: Sequence[MethodResult]) -> list[list[str]]:
    """Rows for ``dlcourse.tables.format_table(RESULT_HEADER, ...)``."""
    return [[r.method, f"{r.n_labelled:,}", f"{r.test_accuracy:.3f}", f"{r.best_val_accuracy:.3f}",
             f"{r.trainable:,}", "n/a" if r.forgetting is None else f"{r.forgetting:.3f}", f"{r.seconds:.1f}"]
            for r in results]


def plot_comparison(results: Sequence[MethodResult], majority: float, bag_of_characters: float, ax=None):
    """Test accuracy against labelled examples (log x), one line per method, the two baselines (both trained on
    every labelled example) as horizontal lines."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    for method in dict.fromkeys(r.method for r in results):
        points = sorted((r.n_labelled, r.test_accuracy) for r in results if r.method == method)
        ax.plot(*zip(*points), marker="o", label=method)
    ax.axhline(majority, color="grey", linestyle=":", label="majority class")
    ax.axhline(bag_of_characters, color="black", linestyle="--", label="bag of characters (all labels)")
    low = min([majority, bag_of_characters] + [r.test_accuracy for r in results])
    high = max([majority, bag_of_characters] + [r.test_accuracy for r in results])
    ax.set_ylim(low - 0.02, high + 0.02)  # axhline alone does not widen the axis: keep both baselines in view
    ax.set_xscale("log")
    ax.set_xlabel("labelled training examples")
    ax.set_ylabel("test accuracy")
    ax.set_title("Is it a question? Test accuracy by method and label budget")
    ax.legend(loc="best", fontsize="small")
    return ax
