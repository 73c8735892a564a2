"""Lab 12, deployment basics for the lab 08 CNN: int8 dynamic quantization and export → reload.

How much smaller and faster int8 makes the model and what it costs in accuracy, and a `.pt2`
program that runs without the training code. Checkpoint → resume is in `dlcourse.checkpoint`.
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
from dlcourse.throughput import best_seconds


# ------------------------------------------------------------------------ 1. int8 dynamic quantization

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


def linear_weight_count(model: nn.Module) -> int:
    """Weights of the nn.Linear layers (no biases): the numbers int8 dynamic quantization stores as int8."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def saved_size_bytes(model: nn.Module) -> int:
    """Bytes that ``torch.save(model.state_dict())`` writes (into memory, not onto disk)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def latency_ms(model: nn.Module | Callable[[Tensor], Tensor], x: Tensor, *, repeats: int = 10,
               rounds: int = 5) -> float:
    """Milliseconds per call of ``model(x)`` under torch.inference_mode, after a warm-up call.

    The best of ``rounds`` rounds of ``repeats`` calls (a busy machine only ever adds time), timed by
    `dlcourse.throughput`'s helper. An nn.Module runs in eval mode; its previous mode is restored.
    Threads are left as they are.
    """
    whole_number("repeats", repeats, 1)
    whole_number("rounds", rounds, 1)
    was_training = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.eval()
    try:
        with torch.inference_mode():
            return best_seconds(lambda: model(x), repeats, rounds) * 1000.0
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)


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
                        repeats: int = 10, rounds: int = 5) -> list[dict[str, Any]]:
    """Rows "float32" and "int8 dynamic (Linear)": saved size, CPU latency, test accuracy, int8 share.

    Both models run on the CPU (where dynamic quantization runs), timed on the first
    ``latency_batch`` test images. ``int8_params`` counts the weights stored as int8.
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
                     "latency_ms": latency_ms(m, x[:latency_batch], repeats=repeats, rounds=rounds),
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


# ------------------------------------------------------------------------ 2. export and reload

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
