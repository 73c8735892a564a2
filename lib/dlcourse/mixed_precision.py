"""Lab 12: mixed precision — number formats, why float16 needs loss scaling, and the same CNN trained
in float32 and in mixed precision with PyTorch (torch.autocast) and Keras (a dtype policy).

Mixed precision (Micikevicius et al. 2018, "Mixed Precision Training") runs the matrix products in a
16-bit format and keeps a float32 master copy of the weights for the update. float16 has a small
exponent range, so small gradients underflow to zero: multiplying the loss by a large factor S before
backward() (and the gradients by 1/S before the step) keeps them representable. bfloat16 has float32's
exponent range and needs no scaling: it is Google Brain's format, built into TPUs; Kalamkar et al.
(2019) studied training with it.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from dlcourse.data import ImageData
from dlcourse.training import Stopwatch, TrainResult

FORMATS = (torch.float32, torch.bfloat16, torch.float16)


def format_rows(dtypes: Sequence[torch.dtype] = FORMATS) -> list[list[str]]:
    """bits, exponent and mantissa bits, largest value, smallest normal value, machine epsilon."""
    rows = []
    for dtype in dtypes:
        info = torch.finfo(dtype)
        mantissa = round(-torch.log2(torch.tensor(info.eps, dtype=torch.float64)).item())
        rows.append([str(dtype).replace("torch.", ""), str(info.bits), str(info.bits - 1 - mantissa), str(mantissa),
                     f"{info.max:.3g}", f"{info.tiny:.3g}", f"{info.eps:.3g}"])
    return rows


def underflow_rows(values: Sequence[float] = (1e-3, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9),
                   scale: float = 2.0 ** 16) -> list[list[str]]:
    """What a gradient value becomes in float16 and bfloat16, and in float16 after loss scaling.

    The scaled column multiplies by ``scale`` in float32, rounds to float16 (where the backward pass
    would hold it), then divides by ``scale`` in float32 again, as GradScaler does before the step.
    """
    rows = []
    for v in values:
        x = torch.tensor(v, dtype=torch.float32)
        scaled = ((x * scale).to(torch.float16).float() / scale).item()
        rows.append([f"{v:.0e}", f"{x.to(torch.float16).item():.3e}", f"{x.to(torch.bfloat16).item():.3e}",
                     f"{scaled:.3e}"])
    return rows


def autocast_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on CPUs (CPU autocast accepts float16 too since torch 2.2, but bfloat16 needs no loss
    scaling); float16 on CUDA, with a GradScaler."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def train_torch_precisions(data: ImageData, *, epochs: float, seed: int = 0, device: Any = None,
                           progress: bool = True) -> list[TrainResult]:
    """The lab 08 CNN trained twice from the same seed and batch order: float32, then mixed precision."""
    from dlcourse.cnn_torch import train_cnn
    from dlcourse.env import pick_device

    device = pick_device("torch") if device is None else torch.device(device)
    results = []
    for amp in (None, autocast_dtype(device)):
        _, result = train_cnn(data, epochs=epochs, seed=seed, device=device, amp_dtype=amp, progress=progress)
        results.append(result)
    return results


def keras_mixed_policy() -> str:
    """'mixed_float16' on a GPU (Keras adds a LossScaleOptimizer itself), else 'mixed_bfloat16'."""
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"


def train_keras_precisions(data: ImageData, *, epochs: float, seed: int = 0) -> list[TrainResult]:
    """The lab 07 CNN trained with the float32 policy and with the mixed policy; the policy is restored."""
    import keras

    from dlcourse.cnn_keras import train_cnn

    previous = keras.config.dtype_policy().name
    results = []
    try:
        for policy in ("float32", keras_mixed_policy()):
            keras.config.set_dtype_policy(policy)  # layers created from now on compute in this type
            _, result = train_cnn(data, epochs=epochs, seed=seed)
            result.recipe += f", policy {policy}"
            results.append(result)
    finally:
        keras.config.set_dtype_policy(previous)
    return results


def native_bf16_cpu() -> bool | None:
    """Whether this CPU has bfloat16 arithmetic instructions (AVX512-BF16 or AMX); None if unknown.

    Without them, bfloat16 kernels convert to float32 and back around every operation, so autocast on
    the CPU saves memory but costs time.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return None
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def amp_train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   x: torch.Tensor, y: torch.Tensor, loss_fn: Any, dtype: torch.dtype) -> float:
    """One mixed-precision step (the reference for exercise 12.3): forward and loss under autocast,
    the scaled loss backward, ``scaler.step`` (unscales; skips the step if a gradient is inf/NaN),
    ``scaler.update`` (halves the scale after a skip, grows it after a run of good steps)."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=dtype):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.item()


def float32_train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: Any,
                       x: torch.Tensor, y: torch.Tensor, loss_fn: Any, dtype: Any = None) -> float:
    """The float32 baseline, with the same signature as `amp_train_step` (scaler and dtype unused)."""
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def train_with_step(data: ImageData, step: Any, *, dtype: torch.dtype | None, epochs: float, seed: int = 0,
                    device: Any = None, recipe: str = "lab 08 CNN", progress: bool = True
                    ) -> tuple[torch.nn.Module, TrainResult]:
    """The lab 08 CNN and recipe trained with ``step(model, optimizer, scaler, x, y, loss_fn, dtype)``
    once per batch; the model (eval mode) and a TrainResult. The same seed gives the same initial weights
    and batch order for every step function, so two runs differ only by what their steps compute.
    ``dtype`` None is float32; float16 gets an enabled GradScaler, bfloat16 a disabled one (a pass-through)."""
    import math

    from dlcourse.cnn_torch import (_as_images, _as_labels, _to_memory_format, batches, build_cnn, count_params,
                                    evaluate, recipe_loss, recipe_optimizer, RECIPE)
    from dlcourse.env import pick_device

    device = pick_device("torch") if device is None else torch.device(device)
    channels_last = device.type == "cpu"
    x, y = _as_images(data.train.x).to(device), _as_labels(data.train.y).to(device)
    batch_size = RECIPE["batch_size"]
    total_steps = max(1, round(epochs * math.ceil(len(x) / batch_size)))
    torch.manual_seed(seed)
    shuffler = torch.Generator().manual_seed(seed)
    model = build_cnn().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = recipe_optimizer(model.parameters(), peak_lr=RECIPE["peak_lr"], total_steps=total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    loss_fn = recipe_loss()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, desc=f"{recipe} ({device.type})", unit="step")
    watch, done = Stopwatch(), 0
    model.train()
    watch.start()
    while done < total_steps:
        for xb, yb in batches(x, y, batch_size, shuffle=True, generator=shuffler):
            step(model, optimizer, scaler, _to_memory_format(xb, channels_last), yb, loss_fn, dtype)
            scheduler.step()
            done += 1
            if bar is not None:
                bar.update(1)
            if done >= total_steps:
                break
    watch.stop()
    if bar is not None:
        bar.close()
    accuracy = evaluate(model, data.test.x, data.test.y)
    label = recipe if dtype is None else f"{recipe}, autocast {str(dtype).replace('torch.', '')}"
    return model, TrainResult(framework=f"PyTorch {torch.__version__.split('+')[0]}", recipe=label,
                              params=count_params(model), epochs=total_steps / math.ceil(len(x) / batch_size),
                              train_seconds=watch.seconds, test_accuracy=accuracy, device=device.type)
