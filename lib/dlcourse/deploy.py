"""Lab 12, deployment basics for the lab 08 CNN: int8 quantization and export → reload.

Int8 by hand (symmetric weights, affine activations, a Linear layer computed in integers) and
PyTorch's dynamic quantization: how much smaller and faster int8 makes the model and what it costs
in accuracy; and a `.pt2` program that runs without the training code. Checkpoint → resume is in
`dlcourse.checkpoint`.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from dlcourse.cnn_torch import _as_images, _as_labels, batches, count_params, evaluate
from dlcourse.errors import DlcourseError, whole_number
from dlcourse.tables import format_table
from dlcourse.throughput import Timer, inference_throughput


# ------------------------------------------------------------------------ 1. int8 by hand

def quantize_int8(w: Any) -> tuple[Any, float]:
    """Symmetric int8 quantization of a NumPy array: ``(q, scale)`` with scale = max|w| / 127 and q the
    nearest integers of w / scale, so that q · scale ≈ w. The reference for lab 12's exercise 12.4."""
    import numpy as np

    scale = float(np.abs(w).max()) / 127
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale


def with_quantized_linear_weights(model: nn.Module, quantize: Callable[[Any], tuple[Any, float]]) -> nn.Module:
    """A copy of ``model`` whose every Linear weight is ``q * scale`` from ``quantize(w)`` (a NumPy
    float32 copy in, ``(int8 array, scale)`` out): the accuracy int8 weights give, computed in float32."""
    import numpy as np

    quantized = copy.deepcopy(model)
    for module in quantized.modules():
        if isinstance(module, nn.Linear):
            w = module.weight.detach().cpu().numpy().copy()
            q, scale = quantize(w)
            module.weight.data = torch.as_tensor(np.asarray(q, dtype=np.float32) * float(scale),
                                                 device=module.weight.device)
    return quantized


def quantize_activations(x: Tensor) -> tuple[Tensor, float, int]:
    """Affine uint8 quantization of a float tensor, its range stretched to include 0: ``(q, scale,
    zero_point)`` with x ≈ scale · (q − zero_point). The reference for lab 12's exercise 12.5."""
    lo, hi = min(x.min().item(), 0.0), max(x.max().item(), 0.0)
    scale = (hi - lo) / 255 or 1.0  # an all-zero x: any scale represents it
    zero_point = round(-lo / scale)
    q = torch.clamp(torch.round(x / scale) + zero_point, 0, 255).to(torch.uint8)
    return q, scale, zero_point


def int8_linear(q_x: Tensor, x_scale: float, x_zero: int, q_weight: Tensor, w_scale: float,
                bias: Tensor | None) -> Tensor:
    """A Linear layer computed in integers: uint8 activations (scale, zero point) times int8 weights
    (out × in, one scale), summed in int32, rescaled to float32 once, then the float bias. The zero
    point is taken out with the weights' row sums. The reference for lab 12's exercise 12.5."""
    w = q_weight.to(torch.int32)
    acc = q_x.to(torch.int32) @ w.T - x_zero * w.sum(dim=1)
    y = acc.to(torch.float32) * (x_scale * w_scale)
    return y if bias is None else y + bias


class Int8Linear(nn.Module):
    """An nn.Linear replaced by int8 weights and one scale; the forward pass quantizes each batch's
    activations with ``quantize_x`` and computes the layer with ``linear`` (lab 12's exercise 12.5)."""

    def __init__(self, layer: nn.Linear, quantize: Callable[[Any], tuple[Any, float]],
                 quantize_x: Callable[[Tensor], tuple[Tensor, float, int]], linear: Callable[..., Tensor]):
        import numpy as np

        super().__init__()
        q, scale = quantize(layer.weight.detach().cpu().numpy().copy())
        self.register_buffer("q_weight", torch.as_tensor(np.asarray(q, dtype=np.int8)))
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().cpu().clone())
        self.w_scale, self.quantize_x, self.linear = float(scale), quantize_x, linear

    def forward(self, x: Tensor) -> Tensor:
        q_x, x_scale, x_zero = self.quantize_x(x.clone())
        bias = None if self.bias is None else self.bias.clone()
        return self.linear(q_x, x_scale, x_zero, self.q_weight.clone(), self.w_scale, bias)


def with_int8_linear_layers(model: nn.Module, quantize: Callable[[Any], tuple[Any, float]],
                            quantize_x: Callable[[Tensor], tuple[Tensor, float, int]] = quantize_activations,
                            linear: Callable[..., Tensor] = int8_linear) -> nn.Module:
    """A CPU, eval-mode copy of ``model`` whose every nn.Linear is an `Int8Linear`: int8 weights from
    ``quantize``, activations quantized batch by batch, products summed in integers."""
    copied = copy.deepcopy(model).cpu().to(memory_format=torch.contiguous_format).eval()
    for parent in list(copied.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                setattr(parent, name, Int8Linear(child, quantize, quantize_x, linear))
    return copied


# ------------------------------------------------------------------------ 2. PyTorch's int8 dynamic quantization

def quantize_linear_int8(model: nn.Module) -> nn.Module:
    """An int8 copy of ``model`` (on the CPU, eval mode) whose nn.Linear layers use dynamic quantization.

    Weights are stored as int8 (one scale per tensor); activations are quantized on the fly, with a
    scale taken from each batch, so no calibration data is needed. It targets Linear (and LSTM)
    layers because there the weights dominate: each weight is read from memory once per matrix
    product, so reading 1 byte instead of 4 is the saving, and quantizing the small activation
    matrix costs little. Convolutions reuse few weights over large activations, so they stay float32
    (they need static quantization with calibrated activations); biases stay float32 too. The
    original ``model`` is never changed. Dynamic quantization runs on the CPU only.

    torch.ao.quantization is deprecated in favour of the separate ``torchao`` package, whose
    ``torchao.quantization.quantize_`` is the successor API; torch 2.13 still ships the old one, so
    its two deprecation warnings (and nothing else) are silenced here.
    """
    if not isinstance(model, nn.Module):
        raise DlcourseError(f"quantize_linear_int8 needs a torch nn.Module, not {type(model).__name__}.")
    float_copy = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor.* are deprecated", category=UserWarning)
        return torch.ao.quantization.quantize_dynamic(float_copy, {nn.Linear}, dtype=torch.qint8)


def linear_weight_count(model: nn.Module) -> int:
    """Weights of the nn.Linear layers (no biases): the numbers int8 dynamic quantization stores as int8."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def saved_size_bytes(model: nn.Module) -> int:
    """Bytes that ``torch.save(model.state_dict())`` writes (into memory, not onto disk)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def latency_ms(model: nn.Module, x: Tensor, *, repeats: int = 10, rounds: int = 5,
               timer: Timer | None = None) -> float:
    """Milliseconds per call of ``model(x)`` in eval mode under torch.inference_mode.

    The best of ``rounds`` rounds of ``repeats`` calls, each after a warm-up call (a busy machine only
    ever adds time), timed by ``timer`` (lab 12's exercise 12.2; None: `dlcourse.throughput`'s
    `images_per_second`) on copies, so the model's mode is left as it was. Threads are left as they are.
    """
    whole_number("repeats", repeats, 1)
    whole_number("rounds", rounds, 1)
    if not isinstance(model, nn.Module):
        raise DlcourseError(f"latency_ms times a torch nn.Module, not {type(model).__name__}.")
    return 1000.0 * len(x) / inference_throughput(model, x, iterations=repeats, rounds=rounds, timer=timer)


def max_logit_change(model: nn.Module, qmodel: nn.Module, x: Any, *, batch_size: int = 1000) -> float:
    """Largest |logit(model) − logit(qmodel)| over the images ``x``, both on the CPU in eval mode.

    Dynamic quantization scales each batch's activations by that batch's range, so the int8 logits
    of an image depend a little on its batch-mates: ``batch_size`` is part of the measurement.
    """
    x = _as_images(x).cpu()
    reference = copy.deepcopy(model).cpu().eval()
    qmodel.eval()
    worst = 0.0
    with torch.inference_mode():
        for xb, _ in batches(x, x, batch_size, shuffle=False):
            worst = max(worst, (reference(xb) - qmodel(xb)).abs().max().item())
    return worst


def quantization_report(model: nn.Module, x_test: Any, y_test: Any, *, latency_batch: int = 256,
                        repeats: int = 10, rounds: int = 5, timer: Timer | None = None) -> list[dict[str, Any]]:
    """Rows "float32" and "int8 dynamic (Linear)": saved size, CPU latency, test accuracy, int8 share.

    Both models run on the CPU (where dynamic quantization runs), timed by ``timer`` (see `latency_ms`)
    on the first ``latency_batch`` test images. ``int8_params`` counts the weights stored as int8.
    """
    x, y = _as_images(x_test).cpu(), _as_labels(y_test).cpu()
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x_test and y_test must be non-empty and the same length, not {len(x)} and {len(y)}.")
    float_model = copy.deepcopy(model).cpu().eval()
    models = {"float32": (float_model, 0), "int8 dynamic (Linear)": (quantize_linear_int8(model),
                                                                     linear_weight_count(model))}
    total = count_params(float_model)
    rows = []
    for name, (m, int8_params) in models.items():
        rows.append({"model": name, "size_kb": saved_size_bytes(m) / 1000,
                     "latency_ms": latency_ms(m, x[:latency_batch], repeats=repeats, rounds=rounds, timer=timer),
                     "latency_batch": min(latency_batch, len(x)),
                     "accuracy": evaluate(m, x, y, device="cpu"), "int8_params": int8_params, "params": total})
    return rows


def quantization_table(rows: Sequence[dict[str, Any]]) -> str:
    """The report as an aligned table, with the int8 row's size and latency relative to float32."""
    base = rows[0]
    header = ["model", "size (kB)", f"ms / batch of {base['latency_batch']}", "test accuracy", "int8 weights"]
    cells = []
    for r in rows:
        size = f"{r['size_kb']:.1f} ({r['size_kb'] / base['size_kb']:.2f}×)"
        speed = f"{r['latency_ms']:.2f} ({r['latency_ms'] / base['latency_ms']:.2f}×)"
        share = f"{r['int8_params']:,} / {r['params']:,} ({r['int8_params'] / r['params']:.1%})"
        cells.append([r["model"], size, speed, f"{r['accuracy']:.4f}", share])
    return format_table(header, cells)


# ------------------------------------------------------------------------ 3. export and reload

@dataclass
class ExportResult:
    """Where the exported program was written, how, how faithfully it reloads, and how big it is."""

    path: Path
    method: str  # "torch.export" or "TorchScript (torch.jit.trace)"
    max_abs_diff: float  # largest |original − reloaded| output on the check batch
    size_bytes: int


_JIT_DEPRECATED = r"`torch\.jit\.\w+` is deprecated"  # torch 2.13 deprecates TorchScript: only the fallback uses it


def _export(model: nn.Module, example_input: Tensor, path: Path, method: str) -> tuple[Path, str]:
    if method not in ("auto", "export", "torchscript"):
        raise ValueError(f"method must be 'auto', 'export' or 'torchscript', not {method!r}.")
    # A CPU, contiguous-format, eval-mode copy: the file then loads anywhere, BatchNorm uses its running
    # statistics, Dropout is off, and the model being trained is left as it was.
    frozen = copy.deepcopy(model).cpu().to(memory_format=torch.contiguous_format).eval()
    example = _as_images(example_input).cpu().clone()  # the .pt2 stores the example: not a view of a big tensor
    path.parent.mkdir(parents=True, exist_ok=True)
    why = ""
    if method in ("auto", "export"):
        try:
            batch = torch.export.Dim("batch", min=1)  # any batch size, not just the example's
            program = torch.export.export(frozen, (example,), dynamic_shapes=({0: batch},))
            torch.export.save(program, path)
            return path, "torch.export"
        except Exception as err:  # torch.export cannot trace every model: say so, and fall back
            if method == "export":
                raise
            why = f"; torch.export failed: {type(err).__name__}"
    ts_path = path.with_suffix(".torchscript")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATED, category=DeprecationWarning)
        torch.jit.save(torch.jit.trace(frozen, example), ts_path)
    return ts_path, f"TorchScript (torch.jit.trace{why})"


def export_model(model: nn.Module, example_input: Tensor, path: str | os.PathLike, *, method: str = "auto") -> Path:
    """Write ``model`` as a standalone program; returns the file written.

    ``torch.export`` traces the eval-mode model into a graph with a dynamic batch dimension and
    ``torch.export.save`` writes it (``.pt2``); loading it needs no model class. If torch.export
    fails (or ``method="torchscript"``), TorchScript's trace is written to the same name with the
    suffix ``.torchscript`` instead.
    """
    return _export(model, example_input, Path(path), method)[0]


def load_exported(path: str | os.PathLike) -> Callable[[Tensor], Tensor]:
    """The program written by `export_model`, as a callable from images to logits (on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise DlcourseError(f"There is no exported model at {path}: write one with export_model(model, x, path).")
    try:
        if path.suffix == ".torchscript":
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_JIT_DEPRECATED, category=DeprecationWarning)
                return torch.jit.load(path)
        return torch.export.load(path).module()
    except Exception as err:
        raise DlcourseError(f"{path} could not be loaded as an exported model ({type(err).__name__}): "
                            "write it again with export_model(model, x, path).") from None


def export_roundtrip(model: nn.Module, x: Any, path: str | os.PathLike, *, method: str = "auto") -> ExportResult:
    """Export ``model`` (example: ``x``), reload it, and compare both outputs on ``x``."""
    x = _as_images(x).cpu()
    written, used = _export(model, x, Path(path), method)
    program = load_exported(written)
    reference = copy.deepcopy(model).cpu().eval()
    with torch.inference_mode():
        diff = (reference(x) - program(x)).abs().max().item()
    return ExportResult(path=written, method=used, max_abs_diff=diff, size_bytes=written.stat().st_size)
