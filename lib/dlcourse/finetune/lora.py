"""LoRA (Hu et al. 2021): a frozen pre-trained ``nn.Linear`` plus a trainable low-rank update,
W x + b + (α/r)·B A x, with A (r, in) random and B (out, r) zero, so the wrapped model starts exactly as the
pre-trained one. ``add_lora`` wraps the attention's query and value projections (Hu et al.'s choice and peft's
default for BERT), ``set_trainable`` picks what a fine-tuning method trains, ``merge_lora`` folds the update back
into one plain Linear, and ``peft_parity`` shows that Hugging Face's ``peft`` computes the same thing.

Reference answers of lab 15's exercises 15.3 (``LoRALinear``), 15.4 (``set_trainable``) and 15.5 (``merge_lora``).
transformers and peft are imported only inside ``peft_parity``.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import Tensor, nn

METHODS = ("probe", "full", "lora")
TARGETS = ("q_proj", "v_proj")  # the course's names for BERT's "query" and "value"
PEFT_TARGETS = {"q_proj": "query", "v_proj": "value"}


class LoRALinear(nn.Module):
    """``base(x) + (x @ Aᵀ @ Bᵀ)·α/r``: ``base`` frozen, A (r, in) drawn as nn.Linear draws its weights
    (kaiming-uniform, a = √5, as peft does), B (out, r) zero (Hu et al. 2021, §4.1)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, not {type(base).__name__}.")
        if not (isinstance(r, int) and r > 0) or not alpha > 0:
            raise ValueError(f"LoRA needs a positive whole rank r and a positive alpha; got r = {r}, alpha = {alpha}.")
        self.base = base
        self.base.requires_grad_(False)
        self.lora_A = nn.Parameter(base.weight.new_empty(r, base.in_features))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(base.weight.new_zeros(base.out_features, r))
        self.scaling = alpha / r

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def extra_repr(self) -> str:
        return f"r={self.lora_A.shape[0]}, scaling={self.scaling:.4g}"


def is_lora_layer(module: nn.Module) -> bool:
    """Any LoRA layer of the course's layout (the reference's or a student's class): base, lora_A, lora_B."""
    return all(hasattr(module, name) for name in ("base", "lora_A", "lora_B", "scaling"))


def add_lora(module: nn.Module, r: int, alpha: float, targets: Iterable[str] = TARGETS,
             lora_class: Callable[[nn.Linear, int, float], nn.Module] = LoRALinear) -> nn.Module:
    """Wrap every ``nn.Linear`` whose attribute name is in ``targets``, anywhere under ``module``, in
    ``lora_class(linear, r, alpha)`` (in place; A is drawn from torch's global generator: seed first)."""
    targets = tuple(targets)
    found = [(parent, name, child) for parent in module.modules() for name, child in parent.named_children()
             if name in targets and isinstance(child, nn.Linear)]
    if not found:
        raise ValueError(f"No nn.Linear named {' or '.join(targets)} under this module: nothing to wrap with LoRA.")
    for parent, name, child in found:
        setattr(parent, name, lora_class(child, r, alpha))
    return module


def count_trainable(module: nn.Module) -> int:
    """Parameters (scalars) that receive gradients; a tied matrix counts once."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def set_trainable(classifier: nn.Module, method: str) -> int:
    """What a fine-tuning method trains: "probe" the head only, "full" everything, "lora" the head and the
    parameters whose name holds ``lora_``. Sets every flag (both ways); returns ``count_trainable``."""
    if method not in METHODS:
        raise ValueError(f"method should be one of {', '.join(METHODS)}; got {method!r}.")
    if method == "lora" and not any("lora_" in name for name, _ in classifier.named_parameters()):
        raise ValueError("This classifier has no LoRA parameters: call add_lora on its encoder first.")
    head = {id(p) for p in classifier.head.parameters()}
    for name, p in classifier.named_parameters():
        p.requires_grad_(method == "full" or id(p) in head or (method == "lora" and "lora_" in name))
    return count_trainable(classifier)


@torch.no_grad()
def merge_lora(layer: nn.Module) -> nn.Linear:
    """One plain ``nn.Linear`` computing what ``layer`` computes: weight W + (α/r)·B A, the base bias; the LoRA
    layer itself is left unchanged. Inference then costs what the pre-trained model cost."""
    base = layer.base
    merged = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                       device=base.weight.device, dtype=base.weight.dtype)
    merged.weight.copy_(base.weight + layer.scaling * (layer.lora_B @ layer.lora_A))
    if base.bias is not None:
        merged.bias.copy_(base.bias)
    return merged


def merge_all_lora(module: nn.Module, merge: Callable[[nn.Module], nn.Module] = merge_lora) -> nn.Module:
    """Replace every LoRA layer under ``module`` by ``merge(layer)`` (in place); returns ``module``."""
    found = [(parent, name, child) for parent in module.modules() for name, child in parent.named_children()
             if is_lora_layer(child)]
    for parent, name, child in found:
        setattr(parent, name, merge(child))
    return module


# ------------------------------------------------------------------------------------------- peft parity
@dataclass(frozen=True)
class PeftParity:
    """The course's LoRA against peft's on the same model, adapters and input."""

    max_logit_difference: float  # LoRA-wrapped course model vs peft model
    course_trainable: int
    peft_trainable: int
    peft_total: int  # every parameter of the peft model, as print_trainable_parameters counts them
    merged_logit_difference: float  # merge_all_lora(course) vs peft's merge_and_unload()
    merged_weight_difference: float  # the merged query/value weights, course vs peft
    lora_effect: float  # how far the LoRA update moves the logits (so the agreement is not trivial)

    def summary(self) -> str:
        return (f"peft vs the course's LoRA: logits differ by at most {self.max_logit_difference:.2e}; "
                f"trainable parameters {self.course_trainable:,} (course) and {self.peft_trainable:,} (peft) of "
                f"{self.peft_total:,}; after merging, logits differ by {self.merged_logit_difference:.2e} and the "
                f"merged weights by {self.merged_weight_difference:.2e} (the update itself moves the logits by "
                f"{self.lora_effect:.2e}).")


def _peft_modules():
    """(LoraConfig, get_peft_model), imported offline (peft loads transformers, which v5 keeps free of TensorFlow)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from dlcourse.finetune import require

    peft = require("peft")
    return peft.LoraConfig, peft.get_peft_model


def _freeze_all_but_lora(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)


def _adapter_names(n_layers: int) -> dict[str, str]:
    """{peft's module name: the course's}, e.g. "bert.encoder.layer.0.attention.self.query" →
    "encoder.blocks.0.self_attn.q_proj"."""
    return {f"bert.encoder.layer.{i}.attention.self.{theirs}": f"encoder.blocks.{i}.self_attn.{ours}"
            for i in range(n_layers) for ours, theirs in PEFT_TARGETS.items()}


@torch.no_grad()
def _copy_adapters(course: nn.Module, peft_model: nn.Module, adapter: str = "default") -> None:
    """The course's A and B into peft's lora_A / lora_B (nn.Linear layers whose weights have the same shapes)."""
    ours, theirs = dict(course.named_modules()), dict(peft_model.base_model.model.named_modules())
    for peft_name, course_name in _adapter_names(course.config.n_layers).items():
        theirs[peft_name].lora_A[adapter].weight.copy_(ours[course_name].lora_A)
        theirs[peft_name].lora_B[adapter].weight.copy_(ours[course_name].lora_B)


def _max_difference(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


@torch.no_grad()
def peft_parity(course_model: nn.Module, r: int = 8, alpha: float = 16, lora_class: Callable = LoRALinear,
                merge: Callable[[nn.Module], nn.Module] = merge_lora, seed: int = 0) -> PeftParity:
    """Wrap a copy of ``course_model`` (a post-LN ``TinyBert``) with ``lora_class`` and its ``hf.to_hf``
    conversion with peft (``LoraConfig(r, lora_alpha=alpha, target_modules=["query", "value"])``), give both the
    same non-zero adapters (seeded; B is drawn too, or both would equal the base model), and compare logits,
    trainable-parameter counts and the merged models. ``course_model`` itself is not changed."""
    import importlib

    hf = importlib.import_module("dlcourse.finetune.hf")
    LoraConfig, get_peft_model = _peft_modules()
    pretrained = copy.deepcopy(course_model).eval()
    torch.manual_seed(seed)
    course = add_lora(copy.deepcopy(pretrained), r, alpha, TARGETS, lora_class)
    _freeze_all_but_lora(course)
    generator = torch.Generator().manual_seed(seed + 1)
    for layer in filter(is_lora_layer, course.modules()):
        layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * 0.1)
    with warnings.catch_warnings():  # transformers 5 warns about a name peft still calls
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        peft_model = get_peft_model(hf.to_hf(pretrained), LoraConfig(
            r=r, lora_alpha=alpha, target_modules=list(PEFT_TARGETS.values()), lora_dropout=0.0))
    peft_model.eval()
    _copy_adapters(course, peft_model)
    ids = torch.randint(0, course.config.vocab_size, (3, course.config.max_len), generator=generator)
    real = torch.ones_like(ids, dtype=torch.bool)
    real[1, course.config.max_len // 2:] = False  # one padded sentence: the attention mask travels too
    peft_trainable, peft_total = peft_model.get_nb_trainable_parameters()
    course_trainable = count_trainable(course)
    with_lora = hf.course_logits(course, ids, real)
    logit_gap = hf.logit_gap(course, peft_model, ids, real)
    merged_course, merged_peft = merge_all_lora(course, merge), peft_model.merge_and_unload()
    ours, theirs = dict(merged_course.named_modules()), dict(merged_peft.named_modules())
    weight_gap = max(_max_difference(ours[c].weight, theirs[p].weight)
                     for p, c in _adapter_names(course.config.n_layers).items())
    return PeftParity(
        max_logit_difference=logit_gap, course_trainable=course_trainable, peft_trainable=int(peft_trainable),
        peft_total=int(peft_total), merged_logit_difference=hf.logit_gap(merged_course, merged_peft, ids, real),
        merged_weight_difference=weight_gap,
        lora_effect=_max_difference(with_lora[real], hf.course_logits(pretrained, ids, real)[real]))
