"""Checks for lab 15's LoRA exercises: the LoRA layer (15.3), what each fine-tuning method trains (15.4) and
merging the update back into one Linear (15.5). Re-exported by ``dlcourse.checks.lab15``.

``CELL_IMPORTS`` are the imports the notebook's set-up cell must hold for the cells below; ``SOLUTION_CELLS``
holds the exact source of each exercise cell (signature + solution regions) that the registered wrong and
accepted answers replace. torch is imported inside the checks."""

from __future__ import annotations

import copy
from typing import Any

from dlcourse.check import Mismatch, expect, expect_array, expect_callable, expect_number, exercise
from dlcourse.checks.lab14_support import randomise, torch_modules

CELL_IMPORTS = "import copy\nimport math\n\nimport torch\nimport torch.nn.functional as F\nfrom torch import Tensor, nn\n"

SOLUTION_CELLS = {
    "15.3": '''class LoRALinear(nn.Module):
    """A frozen pre-trained nn.Linear plus a trainable low-rank update: base(x) + (alpha / r) · B A x."""

    def __init__(self, base: nn.Linear, r: int, alpha: float) -> None:
        super().__init__()
        ### BEGIN SOLUTION
        self.base = base
        self.base.requires_grad_(False)
        self.lora_A = nn.Parameter(base.weight.new_empty(r, base.in_features))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(base.weight.new_zeros(base.out_features, r))
        self.scaling = alpha / r
        ### END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        ### BEGIN SOLUTION
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling
        ### END SOLUTION''',
    "15.4": '''def set_trainable(classifier: nn.Module, method: str) -> int:
    """Set requires_grad for a fine-tuning method ("probe", "full" or "lora"); return how many numbers train."""
    ### BEGIN SOLUTION
    for name, p in classifier.named_parameters():
        if method == "full":
            p.requires_grad = True
        elif method == "probe":
            p.requires_grad = name.startswith("head.")
        else:  # "lora"
            p.requires_grad = name.startswith("head.") or "lora_" in name
    return sum(p.numel() for p in classifier.parameters() if p.requires_grad)
    ### END SOLUTION''',
    "15.5": '''def merge_lora(layer: LoRALinear) -> nn.Linear:
    """One plain nn.Linear that computes what the LoRA layer computes: W + (alpha / r) · B A, the same bias."""
    ### BEGIN SOLUTION
    merged = nn.Linear(layer.base.in_features, layer.base.out_features)
    with torch.no_grad():
        merged.weight.copy_(layer.base.weight + layer.scaling * layer.lora_B @ layer.lora_A)
        merged.bias.copy_(layer.base.bias)
    return merged
    ### END SOLUTION''',
}


# ------------------------------------------------------------------------------------------- 15.3
_BASE = "self.base = base\nself.base.requires_grad_(False)\n"
_A = "self.lora_A = nn.Parameter(base.weight.new_empty(r, base.in_features))\n" \
     "nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))\n"
_B = "self.lora_B = nn.Parameter(base.weight.new_zeros(base.out_features, r))\n"
_SCALE = "self.scaling = alpha / r"


@exercise("15.3", "The LoRA layer", wrong_answers={
    "B random like A (the model changes before any training)": [
        _BASE + _A + "self.lora_B = nn.Parameter(base.weight.new_empty(base.out_features, r))\n"
        "nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))\n" + _SCALE, None],
    "A and B both zero (no gradient ever reaches them)": [
        _BASE + "self.lora_A = nn.Parameter(base.weight.new_zeros(r, base.in_features))\n" + _B + _SCALE, None],
    "A one constant (all r directions the same)": [
        _BASE + "self.lora_A = nn.Parameter(torch.full((r, base.in_features), 0.1))\n" + _B + _SCALE, None],
    "scaling by r": [_BASE + _A + _B + "self.scaling = r", None],
    "scaling by 1/r (alpha left out)": [_BASE + _A + _B + "self.scaling = 1 / r", None],
    "scaling r / alpha (upside down)": [_BASE + _A + _B + "self.scaling = r / alpha", None],
    "scaling alpha (not divided by r)": [_BASE + _A + _B + "self.scaling = alpha", None],
    "base weights left trainable": ["self.base = base\n" + _A + _B + _SCALE, None],
    "a fresh nn.Linear instead of the pre-trained layer": [
        "self.base = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)\n"
        "self.base.requires_grad_(False)\n" + _A + _B + _SCALE, None],
    "A and B plain tensors (not registered: the optimizer never sees them)": [
        _BASE + "self.lora_A = (torch.rand(r, base.in_features) * 2 - 1) / math.sqrt(base.in_features)\n"
        "self.lora_A.requires_grad_()\nself.lora_B = torch.zeros(base.out_features, r, requires_grad=True)\n" + _SCALE,
        None],
    "A and B stored transposed, (in, r) and (r, out)": [
        _BASE + "self.lora_A = nn.Parameter(torch.empty(base.in_features, r))\n"
        "nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))\n"
        "self.lora_B = nn.Parameter(torch.zeros(r, base.out_features))\n" + _SCALE,
        "return self.base(x) + (x @ self.lora_A @ self.lora_B) * self.scaling"],
    "A and B as nn.Linear layers (peft's layout, not this lab's)": [
        _BASE + "self.lora_A = nn.Linear(base.in_features, r, bias=False)\n"
        "self.lora_B = nn.Linear(r, base.out_features, bias=False)\nnn.init.zeros_(self.lora_B.weight)\n" + _SCALE,
        "return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling"],
    "the scaling applied to the pre-trained output too": [
        None, "return (self.base(x) + x @ self.lora_A.T @ self.lora_B.T) * self.scaling"],
    "only the update (the pre-trained layer dropped)": [None, "return (x @ self.lora_A.T @ self.lora_B.T) * self.scaling"],
}, accepted_answers={
    "F.linear": [None, "return F.linear(x, self.base.weight, self.base.bias) + "
                       "F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling"],
    "einsum": [None, "return self.base(x) + self.scaling * torch.einsum('...i,ri,or->...o', x, self.lora_A, self.lora_B)"],
    "the product B A formed first": [None, "return self.base(x) + x @ (self.scaling * self.lora_B @ self.lora_A).T"],
    "Gaussian A (Hu et al.), frozen with a loop": [
        "self.base = base\nfor p in self.base.parameters():\n    p.requires_grad = False\n"
        "self.lora_A = nn.Parameter(torch.randn(r, base.in_features) / r)\n"
        "self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))\nself.scaling = alpha / r", None],
})
def check_lora_linear(LoRALinear: Any) -> str:
    torch, _, nn = torch_modules()
    expect_callable(LoRALinear, name="LoRALinear")
    # in, out and r differ and are not multiples; the second base has no bias
    for seed, (n_in, n_out, r, alpha, bias) in enumerate([(13, 7, 3, 5.0, True), (9, 11, 2, 7, False)]):
        base = nn.Linear(n_in, n_out, bias=bias)
        randomise(base, seed=20 + seed, std=0.4)
        layer = LoRALinear(copy.deepcopy(base), r, alpha)
        expect(isinstance(layer, nn.Module), "`LoRALinear(base, r, alpha)` should build an nn.Module.")
        _check_pieces(layer, base, r, alpha)
        x = torch.randn(2, 5, n_in, generator=torch.Generator().manual_seed(30 + seed))
        _check_outputs(layer, base, x, alpha / r)
        _check_gradients(LoRALinear(copy.deepcopy(base), r, alpha), x, alpha / r)
    n_in, n_out, r = 13, 7, 3
    return (f"Starts equal to the pre-trained layer, adds (α/r)·B A x and trains only A and B: at r = {r} the update "
            f"has {r * (n_in + n_out)} numbers where the {n_out}×{n_in} weight has {n_in * n_out}.")


def _check_pieces(layer: Any, base: Any, r: int, alpha: float) -> None:
    torch, _, nn = torch_modules()
    n_out, n_in = base.weight.shape
    for name, shape in (("lora_A", (r, n_in)), ("lora_B", (n_out, r))):
        value = getattr(layer, name, None)
        expect(not isinstance(value, nn.Module), f"`self.{name}` is an nn.{type(value).__name__} layer (peft's layout); "
               f"this lab keeps A and B as matrices.", f"self.{name} = nn.Parameter(...) of shape {shape}: "
               "merge_lora and the parameter counts read the matrix itself.")
        expect(isinstance(value, torch.Tensor), f"The layer has no tensor `self.{name}`.",
               "Keep the names of the exercise: self.base, self.lora_A, self.lora_B and self.scaling.")
        expect(any(value is p for p in layer.parameters()),
               f"`self.{name}` is a plain tensor, not a registered parameter: the optimizer would never see it.",
               f"Wrap it: self.{name} = nn.Parameter(...).")
        expect(tuple(value.shape) == shape,
               f"`self.{name}` has shape {tuple(value.shape)}; for in_features = {n_in}, out_features = {n_out} and "
               f"r = {r} it should be {shape}.", "A is (r, in) and B is (out, r), like nn.Linear weights (and peft's).")
    held = getattr(layer, "base", None)
    expect(isinstance(held, nn.Linear), "The layer should keep the pre-trained nn.Linear it was given as `self.base`.")
    expect(held.weight.shape == base.weight.shape and bool(torch.equal(held.weight, base.weight)),
           "`self.base` does not hold the pre-trained weights it was given.",
           "Keep the layer you were given (self.base = base): a new nn.Linear starts from random weights.")
    trainable = [n for n, p in held.named_parameters() if p.requires_grad]
    expect(not trainable, f"The pre-trained `base.{trainable[0] if trainable else ''}` still has requires_grad = True.",
           "Freeze the base layer (base.requires_grad_(False)): LoRA trains only A and B.")
    expect(layer.lora_A.requires_grad and layer.lora_B.requires_grad, "A and B should be trainable (requires_grad).")
    A, B = layer.lora_A.detach().double(), layer.lora_B.detach()
    expect(bool(torch.all(B == 0)), "`self.lora_B` does not start at zero, so the wrapped model differs from the "
           "pre-trained one before any training.", "B = 0 at the start makes B A = 0: fine-tuning starts exactly "
           "from the pre-trained model (Hu et al. 2021, §4.1).")
    draw = "Draw A at random (nn.init.kaiming_uniform_(A, a=math.sqrt(5)) as nn.Linear and peft do, or Gaussian)."
    expect(bool((A != 0).any()), "`self.lora_A` is all zeros: with B = 0 too, no gradient ever reaches either and "
           "nothing trains.", draw)
    expect(bool(torch.isfinite(A).all()) and 1e-4 < float(A.std()) and float(A.abs().max()) < 100,
           "`self.lora_A` does not hold random values of a usual size (NaN, huge or tiny entries).",
           "torch.empty only reserves memory without filling it. " + draw)
    expect(int(torch.linalg.matrix_rank(A)) == r,
           f"`self.lora_A` has rank {int(torch.linalg.matrix_rank(A))}, not r = {r}: its rows are not independent.",
           "Draw A at random: rows that start equal get equal gradients and stay equal, so the update never uses "
           "its r directions.")
    expect(isinstance(getattr(layer, "scaling", None), (int, float)),
           "The layer should store its scaling factor as a number, `self.scaling = alpha / r`.")
    expect_number(layer.scaling, alpha / r, name="self.scaling", rtol=1e-6,
                  hint=f"scaling = alpha / r ({alpha} / {r} here): the update's size then barely depends on r, so "
                       "one learning rate serves every rank.")


def _check_outputs(layer: Any, base: Any, x: Any, scaling: float) -> None:
    torch, F, _ = torch_modules()
    with torch.no_grad():
        expect_array(layer(x.clone()), base(x), name="the output at the start (B = 0)", rtol=1e-5, atol=1e-6,
                     hint="Return base(x) + the update, with the scaling on the update only: with B = 0 the layer "
                          "must compute exactly what the pre-trained layer computes.")
        g = torch.Generator().manual_seed(40)
        A, B = torch.randn(layer.lora_A.shape, generator=g), torch.randn(layer.lora_B.shape, generator=g)
        layer.lora_A.copy_(A)
        layer.lora_B.copy_(B)
        want = base(x) + scaling * F.linear(F.linear(x, A), B)
        expect_array(layer(x.clone()), want, name="the output with non-zero A and B", rtol=1e-4, atol=1e-5,
                     hint="forward(x) = base(x) + (x @ A.T @ B.T) * scaling, for inputs of any batch shape.")


def _check_gradients(layer: Any, x: Any, scaling: float) -> None:
    torch, F, _ = torch_modules()
    g = torch.randn(*x.shape[:-1], layer.lora_B.shape[0], generator=torch.Generator().manual_seed(41))
    (layer(x) * g).sum().backward()
    expect(all(p.grad is None for p in layer.base.parameters()), "The pre-trained weights received a gradient.")
    expect(layer.lora_A.grad is not None and layer.lora_B.grad is not None,
           "A or B received no gradient: are they part of the output?")
    expect(float(layer.lora_A.grad.abs().max()) == 0.0, "At the start A already receives a gradient.",
           "With B = 0, dA = (α/r)·Bᵀ g xᵀ is zero: only B moves in the first step.")
    want_B = scaling * torch.einsum("...o,...r->or", g, F.linear(x, layer.lora_A.detach()))
    expect_array(layer.lora_B.grad, want_B, name="B's gradient at the start", rtol=1e-4, atol=1e-5,
                 hint="dB = (α/r)·g (A x)ᵀ: non-zero because A is random, scaled like the update.")


# ------------------------------------------------------------------------------------------- 15.4
_RULES = {"probe": (lambda name: name.startswith("head."),
                    "A linear probe trains the head alone: every encoder parameter gets requires_grad = False "
                    "(model.eval() freezes nothing, it only switches dropout off)."),
          "full": (lambda name: True, "Full fine-tuning trains every parameter, the LoRA layers' base included."),
          "lora": (lambda name: name.startswith("head.") or "lora_" in name,
                   "LoRA trains the head and the parameters named lora_…; every other encoder weight, the wrapped "
                   "base layers included, stays frozen.")}
_COUNT = "return sum(p.numel() for p in classifier.parameters() if p.requires_grad)"
_HEAD, _LORA = "name.startswith('head.')", "name.startswith('head.') or 'lora_' in name"


def _per_parameter(probe: str = f"p.requires_grad = {_HEAD}", full: str = "p.requires_grad = True",
                   lora: str = f"p.requires_grad = {_LORA}", count: str = _COUNT) -> str:
    """The solution's loop with one method's statement (or the count) replaced; an empty statement: no branch."""
    branches = [(m, stmt) for m, stmt in (("probe", probe), ("full", full), ("lora", lora)) if stmt]
    lines = ["for name, p in classifier.named_parameters():"]
    for i, (method, stmt) in enumerate(branches):
        lines += [f"    {'if' if i == 0 else 'elif'} method == {method!r}:", "        " + stmt.replace("\n", "\n        ")]
    return "\n".join(lines + [count])


@exercise("15.4", "What each method trains", wrong_answers={
    "probe: the encoder put in eval mode, not frozen": (
        "classifier.train()\nif method == 'probe':\n    classifier.encoder.eval()\n"
        + _per_parameter(probe="p.requires_grad = True")),
    "probe: the head switched on, the encoder never frozen": _per_parameter(
        probe=f"if {_HEAD}:\n    p.requires_grad = True"),
    "lora: the head frozen": _per_parameter(lora="p.requires_grad = 'lora_' in name"),
    "lora: the rest of the encoder left trainable": _per_parameter(lora=f"if {_LORA}:\n    p.requires_grad = True"),
    "lora: the wrapped layers trained whole (their base too)": _per_parameter(
        lora=f"p.requires_grad = {_HEAD} or 'q_proj' in name or 'v_proj' in name"),
    "full: flags left as they were (assumes all start trainable)": _per_parameter(full=""),
    "counting all parameters": _per_parameter(count="return sum(p.numel() for p in classifier.parameters())"),
    "counting tensors, not numbers": _per_parameter(
        count="return sum(1 for p in classifier.parameters() if p.requires_grad)"),
}, accepted_answers={
    "requires_grad_ on whole modules": (
        "classifier.requires_grad_(method == 'full')\nclassifier.head.requires_grad_(True)\nif method == 'lora':\n"
        "    for name, p in classifier.named_parameters():\n        if 'lora_' in name:\n"
        "            p.requires_grad_(True)\n" + _COUNT),
})
def check_set_trainable(set_trainable: Any) -> str:
    torch, _, _ = torch_modules()
    expect_callable(set_trainable, name="set_trainable")
    plain, with_lora = _stand_in(lora=False), _stand_in(lora=True)
    counts = {}
    for method, model in (("probe", plain), ("full", plain), ("lora", with_lora)):
        counts[method] = _check_method(set_trainable, copy.deepcopy(model), method, "")
    scrambled = copy.deepcopy(with_lora)
    flags = torch.rand(len(list(scrambled.parameters())), generator=torch.Generator().manual_seed(52)) < 0.5
    for p, flag in zip(scrambled.parameters(), flags.tolist()):
        p.requires_grad_(flag)
    for method in ("full", "probe", "lora"):
        _check_method(set_trainable, copy.deepcopy(scrambled), method,
                      "On a classifier where some parameters were already frozen and others not, ")
    return (f"Right flags and counts for every method: the probe trains {counts['probe']:,} numbers, LoRA "
            f"{counts['lora']:,}, full fine-tuning {counts['full']:,}.")


def _stand_in(lora: bool) -> Any:
    """A small classifier as lab 15 builds one: ``encoder`` (a post-LN ``Encoder``) and ``head``; LoRA on the
    query and value projections with non-zero B, so that A too moves in an optimizer step."""
    torch, _, nn = torch_modules()
    from dlcourse.finetune.lora import add_lora
    from dlcourse.transformer import Encoder

    torch.manual_seed(50)
    encoder = Encoder(23, 9, 20, 4, 2, 36, 0.0, norm_first=False, activation="gelu", embedding_norm=True)
    model = nn.ModuleDict({"encoder": encoder, "head": nn.Linear(20, 2)})
    randomise(model, seed=51, std=0.3)
    if lora:
        add_lora(encoder, 3, 5.0)
        randomise(model, seed=53, std=0.3)
    return model


def _check_method(set_trainable: Any, model: Any, method: str, prefix: str) -> int:
    torch, F, _ = torch_modules()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    count = set_trainable(model, method)
    rule, hint = _RULES[method]
    if prefix:
        hint += " Set every parameter's flag, True or False: do not assume they all start trainable."
    for name, p in model.named_parameters():
        expect(bool(torch.equal(p.detach(), before[name])), f"`set_trainable` changed the values of `{name}`.",
               "Only switch requires_grad flags: the weights are the pre-trained ones.")
        state = "still trains" if p.requires_grad else "is frozen"
        reason = f"{prefix}with method={method!r}, `{name}` {state}."
        expect(p.requires_grad == rule(name), reason[0].upper() + reason[1:], hint)
    want = sum(p.numel() for n, p in model.named_parameters() if rule(n))
    expect(isinstance(count, int) or getattr(count, "ndim", 1) == 0, f"`set_trainable` should return a whole number, "
           f"not {type(count).__name__}.")
    expect_number(count, want, name=f"the count returned for {method!r}", integer=True,
                  hint="Add up p.numel() over the parameters with requires_grad: numbers, not tensors, and only those "
                       "that train.")
    if not prefix:  # the step follows from the flags; once per method is enough
        _check_step(model, method)
    return want


def _check_step(model: Any, method: str) -> None:
    """One SGD step over every parameter moves exactly the trainable ones (the key biases get no gradient at all:
    softmax ignores a shift shared by every key)."""
    torch, F, _ = torch_modules()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(54)
    ids, mask = torch.randint(0, 23, (4, 9), generator=g), torch.ones(4, 9, dtype=torch.bool)
    mask[1, 6:] = False
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    F.cross_entropy(model.head(model.encoder(ids, mask)[:, 0]), torch.tensor([0, 1, 1, 0])).backward()
    optimizer.step()
    for name, p in model.named_parameters():
        moved = not torch.equal(p.detach(), before[name])
        expect(moved == p.requires_grad or (not moved and "k_proj" in name and name.endswith("bias")),
               f"With method={method!r}, an optimizer step {'moved' if moved else 'did not move'} `{name}`.")


# ------------------------------------------------------------------------------------------- 15.5
_NEW = "merged = nn.Linear(layer.base.in_features, layer.base.out_features)\nwith torch.no_grad():\n"


@exercise("15.5", "Merge the update into one Linear", wrong_answers={
    "no scaling": _NEW + "    merged.weight.copy_(layer.base.weight + layer.lora_B @ layer.lora_A)\n"
                         "    merged.bias.copy_(layer.base.bias)\nreturn merged",
    "A and B multiplied the wrong way round (the update transposed)": (
        _NEW + "    merged.weight.copy_(layer.base.weight + layer.scaling * layer.lora_A.T @ layer.lora_B.T)\n"
               "    merged.bias.copy_(layer.base.bias)\nreturn merged"),
    "W replaced by the update, not added to": (
        _NEW + "    merged.weight.copy_(layer.scaling * layer.lora_B @ layer.lora_A)\n"
               "    merged.bias.copy_(layer.base.bias)\nreturn merged"),
    "bias dropped": ("merged = nn.Linear(layer.base.in_features, layer.base.out_features, bias=False)\n"
                     "with torch.no_grad():\n"
                     "    merged.weight.copy_(layer.base.weight + layer.scaling * layer.lora_B @ layer.lora_A)\n"
                     "return merged"),
    "the LoRA layer's own base changed in place": (
        "with torch.no_grad():\n    layer.base.weight += layer.scaling * layer.lora_B @ layer.lora_A\n"
        "return layer.base"),
}, accepted_answers={
    "torch.addmm": _NEW + "    merged.weight.copy_(torch.addmm(layer.base.weight, layer.lora_B, layer.lora_A, "
                          "alpha=layer.scaling))\n    merged.bias.copy_(layer.base.bias)\nreturn merged",
    "a deep copy of the base": ("merged = copy.deepcopy(layer.base)\n"
                                "merged.weight.data += layer.scaling * (layer.lora_B @ layer.lora_A).detach()\n"
                                "return merged"),
    "new nn.Parameters": ("merged = nn.Linear(layer.base.in_features, layer.base.out_features)\n"
                          "merged.weight = nn.Parameter((layer.base.weight + layer.scaling * layer.lora_B @ "
                          "layer.lora_A).detach())\nmerged.bias = nn.Parameter(layer.base.bias.detach().clone())\n"
                          "return merged"),
})
def check_merge_lora(merge_lora: Any) -> str:
    torch, _, nn = torch_modules()
    from dlcourse.finetune.lora import LoRALinear, is_lora_layer

    expect_callable(merge_lora, name="merge_lora")
    # a square layer first (a transposed update then has the right shape but wrong values), then in ≠ out ≠ r
    for seed, (n_in, n_out, r, alpha) in enumerate([(10, 10, 4, 6.0), (13, 7, 3, 5.0)]):
        base = nn.Linear(n_in, n_out)
        randomise(base, seed=60 + seed, std=0.4)
        torch.manual_seed(62 + seed)
        layer = LoRALinear(base, r, alpha)
        with torch.no_grad():
            layer.lora_B.normal_(0.0, 0.5)  # an update as large as W, so no part of it hides in the tolerance
        x = torch.randn(3, 4, n_in, generator=torch.Generator().manual_seed(64 + seed))
        with torch.no_grad():
            want = layer(x)
        given = copy.deepcopy(layer)
        merged = merge_lora(given)
        expect(isinstance(merged, nn.Linear) and not is_lora_layer(merged),
               f"`merge_lora` should return one plain nn.Linear, not {type(merged).__name__}.")
        with torch.no_grad():
            expect(bool(torch.equal(given(x), want)),
                   "`merge_lora` changed the LoRA layer it was given: its base now holds the update, so that layer "
                   "adds it twice.", "Build a new nn.Linear (or a copy of the base) and leave the LoRA layer alone.")
            _expect_merged_weight(merged.weight, layer)
            expect(merged.bias is not None, "The merged layer has no bias: the base layer's bias is part of the "
                   "function.", "Create the Linear with a bias and copy base.bias into it.")
            expect_array(merged.bias, base.bias, name="the merged bias", rtol=0, atol=0,
                         hint="The bias is the base layer's: LoRA does not touch it.")
            expect_array(merged(x), want, name="the merged layer's output", rtol=1e-4, atol=1e-5)
    return "One Linear with W + (α/r)·B A computes what the LoRA layer computes: no extra cost at inference."


def _expect_merged_weight(weight: Any, layer: Any) -> None:
    """Compare the merged weight with W + s·B A; name the typical mistake it matches instead."""
    torch, _, _ = torch_modules()
    W, s = layer.base.weight.detach(), layer.scaling
    BA = layer.lora_B.detach() @ layer.lora_A.detach()
    expect(tuple(weight.shape) == tuple(W.shape), f"The merged weight has shape {tuple(weight.shape)}; the base's "
           f"is {tuple(W.shape)} (out_features, in_features).")
    mistakes = {"the update is missing its scaling α/r": W + BA,
                "the pre-trained W is gone: merging ADDS the update": s * BA}
    if W.shape[0] == W.shape[1]:
        mistakes["the update is transposed: it is B @ A, (out, r) times (r, in)"] = W + s * BA.T
    got = weight.detach()
    for hint, value in mistakes.items():
        if bool(torch.allclose(got, value, rtol=1e-4, atol=1e-5)):
            raise Mismatch("The merged weight is not W + (α/r)·B A.", hint[0].upper() + hint[1:] + ".")
    expect_array(got, W + s * BA, name="the merged weight", rtol=1e-4, atol=1e-5,
                 hint="weight = base.weight + scaling · (lora_B @ lora_A).")
