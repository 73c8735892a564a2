"""The lab 07/08 MNIST CNN in PyTorch: architecture, in-memory batching, evaluation, a fast recipe.

Used by lab 08 and by ``benchmarks/mnist.py``; ``dlcourse.cnn_keras`` is the same network in Keras.
The whole dataset lives in one tensor on the training device, so a batch is one index-and-slice:
no per-sample Python (``Dataset.__getitem__`` + collate), which dominates when the model is this small.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from dlcourse.data import ImageData
from dlcourse.training import Stopwatch, TrainResult

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # pixel statistics of the MNIST training set (scaled to [0, 1])

# The tuned recipe, in one place; `python benchmarks/mnist.py --seeds 3` measures its time and spread on your machine.
RECIPE: dict[str, Any] = {
    "epochs": 1.5,
    "batch_size": 64,
    "peak_lr": 0.05,  # OneCycleLR: warm up for pct_start of the steps, then anneal (cosine) to ~0
    "pct_start": 0.25,
    "momentum": 0.9,  # SGD's argument, but OneCycleLR overrides it: see `recipe_schedule`
    "nesterov": True,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "eval_batch_size": 2000,
    "checkpoints_per_epoch": 4,  # test-accuracy checkpoints in the final epoch, for time-to-target
}


class MnistCNN(nn.Module):
    """Normalise → [conv3×3 → BN → ReLU → maxpool] × 2 (16, 32 filters) → dense 128 → dropout → 10 logits."""

    def __init__(self, dropout: float = 0.25) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False),  # no bias: BatchNorm's shift replaces it
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 28 → 14
            nn.Conv2d(16, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 14 → 7
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # 32·7·7 = 1568, in NCHW order (Keras flattens NHWC)
            nn.Linear(32 * 7 * 7, 128),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(128, 10),  # logits: CrossEntropyLoss applies log-softmax itself
        )

    def forward(self, x: Tensor) -> Tensor:
        x = (x - MNIST_MEAN) / MNIST_STD  # inside the model, like Keras' Rescaling layer
        return self.classifier(self.features(x))


def recipe_loss() -> nn.Module:
    """RECIPE's loss: cross-entropy on logits with label smoothing."""
    return nn.CrossEntropyLoss(label_smoothing=RECIPE["label_smoothing"])


def recipe_optimizer(params: Any, *, peak_lr: float, total_steps: int
                     ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """RECIPE's SGD (Nesterov momentum, weight decay) and its OneCycleLR schedule over ``total_steps``:
    shared by `train_cnn`, the lab 13 DDP script and the lab 12 resume demo."""
    optimizer = torch.optim.SGD(params, lr=peak_lr, momentum=RECIPE["momentum"], nesterov=RECIPE["nesterov"],
                                weight_decay=RECIPE["weight_decay"])
    pct_start = RECIPE["pct_start"]
    if pct_start * total_steps == 1:  # OneCycleLR divides by pct_start·total_steps − 1 (4 steps would crash)
        pct_start = 2 / total_steps
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peak_lr, total_steps=total_steps,
                                                    pct_start=pct_start)
    return optimizer, scheduler


def recipe_schedule(total_steps: int, peak_lr: float | None = None) -> dict[str, list[float]]:
    """The learning rate and momentum `recipe_optimizer` actually uses at each of ``total_steps`` steps.

    OneCycleLR (defaults div_factor=25, final_div_factor=1e4, cycle_momentum=True) starts at
    peak_lr / 25, ends at peak_lr / 25 / 1e4, and cycles SGD's momentum 0.95 → 0.85 → 0.95, replacing
    RECIPE["momentum"]. Computed on one dummy parameter: no model, no data."""
    weight = nn.Parameter(torch.zeros(1))
    optimizer, scheduler = recipe_optimizer([weight], peak_lr=float(RECIPE["peak_lr"] if peak_lr is None else peak_lr),
                                            total_steps=total_steps)
    trace: dict[str, list[float]] = {"lr": [], "momentum": []}
    for _ in range(total_steps):
        trace["lr"].append(optimizer.param_groups[0]["lr"])
        trace["momentum"].append(optimizer.param_groups[0]["momentum"])
        optimizer.step()
        scheduler.step()
    return trace


def keras_weights(model: nn.Module) -> dict[str, list[np.ndarray]]:
    """The weights of a trained shared CNN, laid out for ``dlcourse.cnn_keras.build_cnn``'s layers.

    Taken in registration order (conv, BN, conv, BN, Linear, Linear), so any module that creates its
    layers in that order works. Conv kernels go from (out, in, h, w) to Keras' (h, w, in, out), Linear
    weights are transposed, and the first Linear layer's inputs are permuted from PyTorch's
    channel-height-width flattening to Keras' height-width-channel order."""
    params = [p.detach().cpu().float() for p in model.parameters()]
    stats = [b.detach().cpu().float() for b in model.buffers() if b.dtype.is_floating_point]
    if [tuple(p.shape) for p in params] != [tuple(p.shape) for p in MnistCNN().parameters()] or len(stats) != 4:
        raise ValueError("keras_weights needs the shared CNN: conv, BatchNorm, conv, BatchNorm, Linear, Linear.")
    conv1, g1, b1, conv2, g2, b2, dense, dense_bias, logits, logits_bias = params
    hidden = dense.shape[0]
    dense_hwc = dense.reshape(hidden, 32, 7, 7).permute(0, 2, 3, 1).reshape(hidden, -1)
    as_numpy = lambda tensors: [t.contiguous().numpy() for t in tensors]  # noqa: E731
    return {
        "conv1": as_numpy([conv1.permute(2, 3, 1, 0)]),
        "bn1": as_numpy([g1, b1, stats[0], stats[1]]),
        "conv2": as_numpy([conv2.permute(2, 3, 1, 0)]),
        "bn2": as_numpy([g2, b2, stats[2], stats[3]]),
        "dense": as_numpy([dense_hwc.T, dense_bias]),
        "logits": as_numpy([logits.T, logits_bias]),
    }


def build_cnn() -> nn.Module:
    """The shared architecture (206,970 trainable parameters), freshly initialised."""
    return MnistCNN()


def count_params(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm's running mean/variance are buffers, not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def batches(x: Tensor, y: Tensor, batch_size: int, *, shuffle: bool,
            generator: torch.Generator | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of (x, y) mini-batches from in-memory tensors: one randperm, then slicing.

    Every sample appears exactly once; the last batch is smaller when ``len(x)`` is not a multiple
    of ``batch_size``. ``generator`` (a CPU torch.Generator) makes the shuffle reproducible.
    """
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x and y must have the same length, not {n} and {len(y)}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}.")
    order = torch.randperm(n, generator=generator).to(x.device) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            yield x[start:start + batch_size], y[start:start + batch_size]
        else:
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _to_memory_format(x: Tensor, channels_last: bool) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _loss_and_accuracy(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int, device: torch.device,
                       channels_last: bool, loss_fn: nn.Module | None = None) -> tuple[float, float]:
    """Mean loss and accuracy in eval mode under inference_mode; the model's mode is restored."""
    was_training = model.training
    model.eval()  # BatchNorm uses its running statistics, Dropout is off
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    try:
        with torch.inference_mode():  # no autograd graph: less memory and time than no_grad
            for xb, yb in batches(x, y, batch_size, shuffle=False):
                xb = _to_memory_format(xb.to(device, non_blocking=True), channels_last)
                yb = yb.to(device, non_blocking=True)
                logits = model(xb)
                if loss_fn is not None:
                    loss_sum += loss_fn(logits, yb) * len(yb)
                correct += (logits.argmax(dim=1) == yb).sum()
    finally:
        model.train(was_training)
    n = max(len(y), 1)
    return loss_sum.item() / n, correct.item() / n


def evaluate(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 2000, device: Any = None,
             channels_last: bool = False) -> float:
    """Accuracy of ``model`` on (x, y), with model.eval() and torch.inference_mode().

    The previous train/eval mode is restored. ``device`` defaults to where the model's parameters are.
    """
    device = _model_device(model) if device is None else torch.device(device)
    return _loss_and_accuracy(model, _as_images(x), _as_labels(y), batch_size=batch_size, device=device,
                              channels_last=channels_last)[1]


def _as_images(x: Any) -> Tensor:
    """(n, 1, 28, 28) float32 tensor from NumPy or torch; (n, 28, 28) and (n, 28, 28, 1) are converted."""
    x = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[1] != 1 and x.shape[-1] == 1:
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"images must have shape (n, 1, 28, 28) (load_mnist(channels='first')), not {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise ValueError("images must be floats in [0, 1]: load them with load_mnist(scale=True).")
    return x.float().contiguous()


def _as_labels(y: Any) -> Tensor:
    y = torch.from_numpy(np.asarray(y)) if isinstance(y, np.ndarray) else y
    return y.long()


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so the stopwatch measures work done, not work queued."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def _checkpoints(total_steps: int, steps_per_epoch: int, per_epoch: int) -> tuple[set[int], set[int]]:
    """Steps after which to evaluate: every epoch end, plus `per_epoch` evenly spaced ones in the final epoch."""
    epoch_ends = set(range(steps_per_epoch, total_steps + 1, steps_per_epoch)) | {total_steps}
    first = total_steps - steps_per_epoch
    extra = {round(first + k * steps_per_epoch / per_epoch) for k in range(1, per_epoch)} if per_epoch > 1 else set()
    return epoch_ends, {s for s in extra if 0 < s < total_steps} - epoch_ends


def train_cnn(data: ImageData, *, epochs: float | None = None, batch_size: int | None = None,
              peak_lr: float | None = None, seed: int = 0, device: Any = None, channels_last: bool | None = None,
              target: float = 0.99, progress: bool = True, amp_dtype: torch.dtype | None = None,
              build: Callable[[], nn.Module] | None = None, make_batches: Callable[..., Any] | None = None,
              train_step: Callable[..., float] | None = None, accuracy: Callable[..., float] | None = None,
              recipe: str = "lab 08 CNN") -> tuple[nn.Module, TrainResult]:
    """Train the shared CNN with the tuned recipe (SGD + Nesterov, OneCycleLR, label smoothing).

    ``data`` comes from ``load_mnist(scale=True, channels="first")`` (or Fashion-MNIST). None means
    RECIPE's value; the device is ``pick_device("torch")``; channels_last is on by default on the CPU,
    the layout oneDNN's convolutions compute in. Test accuracy is evaluated at checkpoints (each epoch
    end and quarter epochs of the final epoch) with the stopwatch paused, so ``train_seconds`` and
    ``seconds_to_target`` count training only. Returns the trained model (in eval mode) and a TrainResult.
    ``amp_dtype`` (torch.bfloat16 or torch.float16) trains with mixed precision (lab 12): the forward pass
    and the loss run under torch.autocast, and float16 adds a GradScaler (loss scaling); the weights, the
    optimizer and the evaluation stay float32.

    Lab 08 trains with the student's pieces: ``build()`` makes the network (default `build_cnn`; only
    parameters with ``requires_grad`` are optimised), ``make_batches(x, y, batch_size, generator)``
    yields one shuffled epoch, ``train_step(model, x, y, optimizer, loss_fn) -> float`` does one update
    (the scheduler steps after it) and ``accuracy(model, x, y, batch_size=...)`` scores each checkpoint
    (the checkpoint loss still comes from the library). ``data.test`` is what the checkpoints measure:
    lab 08 passes its validation split there. With ``train_step`` the history has no training accuracy.
    """
    from dlcourse.env import pick_device

    epochs = float(RECIPE["epochs"] if epochs is None else epochs)
    batch_size = int(RECIPE["batch_size"] if batch_size is None else batch_size)
    peak_lr = float(RECIPE["peak_lr"] if peak_lr is None else peak_lr)
    device = pick_device("torch") if device is None else torch.device(device)
    channels_last = device.type == "cpu" if channels_last is None else bool(channels_last)
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, not {epochs}.")

    x_train, y_train = _as_images(data.train.x).to(device), _as_labels(data.train.y).to(device)
    x_test, y_test = _as_images(data.test.x).to(device), _as_labels(data.test.y).to(device)

    torch.manual_seed(seed)  # initial weights and dropout masks
    shuffler = torch.Generator().manual_seed(seed)
    model = (build_cnn if build is None else build)().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    total_steps = max(1, round(epochs * steps_per_epoch))
    loss_fn = recipe_loss()
    trained = [p for p in model.parameters() if p.requires_grad]  # all of them unless some are frozen
    optimizer, scheduler = recipe_optimizer(trained, peak_lr=peak_lr, total_steps=total_steps)
    if make_batches is None:
        def make_batches(x: Tensor, y: Tensor, size: int, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
            return batches(x, y, size, shuffle=True, generator=generator)
    epoch_ends, extra_checks = _checkpoints(total_steps, steps_per_epoch, RECIPE["checkpoints_per_epoch"])
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    seconds_to_target: float | None = None
    test_accuracy = float("nan")

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, desc=f"PyTorch CNN ({device.type})", unit="step")
    previous_cudnn = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed shapes: let cuDNN pick the fastest kernels
    watch = Stopwatch()
    step = 0
    try:
        model.train()
        watch.start()
        while step < total_steps:
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.long, device=device)
            seen = 0
            for xb, yb in make_batches(x_train, y_train, batch_size, shuffler):
                xb = _to_memory_format(xb, channels_last)
                if train_step is not None:  # the student's step (lab 08): one update, the loss as a number
                    loss_sum += float(train_step(model, xb, yb, optimizer, loss_fn)) * len(yb)
                else:
                    optimizer.zero_grad(set_to_none=True)
                    with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                        logits = model(xb)
                        loss = loss_fn(logits, yb)
                    scaler.scale(loss).backward()  # with loss scaling off, this is loss.backward()
                    scaler.step(optimizer)
                    scaler.update()
                    loss_sum += loss.detach() * len(yb)  # stays on the device: no sync per step
                    correct += (logits.detach().argmax(dim=1) == yb).sum()
                scheduler.step()
                step += 1
                seen += len(yb)
                if bar is not None:
                    bar.update(1)
                is_end = step in epoch_ends
                if is_end or (step in extra_checks and seconds_to_target is None):
                    _sync(device)
                    watch.stop()
                    val_loss, val_acc = _loss_and_accuracy(model, x_test, y_test, batch_size=RECIPE["eval_batch_size"],
                                                           device=device, channels_last=channels_last, loss_fn=loss_fn)
                    if accuracy is not None:
                        val_acc = float(accuracy(model, x_test, y_test, batch_size=RECIPE["eval_batch_size"]))
                    if seconds_to_target is None and val_acc >= target:
                        seconds_to_target = watch.seconds
                    if is_end:
                        test_accuracy = val_acc
                        history["loss"].append(loss_sum.item() / seen)
                        if train_step is None:
                            history["accuracy"].append(correct.item() / seen)
                        history["val_loss"].append(val_loss)
                        history["val_accuracy"].append(val_acc)
                        if bar is not None:
                            bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", test_acc=f"{val_acc:.4f}")
                    watch.start()
                if step >= total_steps or is_end:
                    break
        _sync(device)
        watch.stop()
    finally:
        torch.backends.cudnn.benchmark = previous_cudnn
        if bar is not None:
            bar.close()
    model.eval()
    if not history["accuracy"]:
        del history["accuracy"]
    result = TrainResult(framework=f"PyTorch {torch.__version__.split('+')[0]}", recipe=recipe + (f", autocast {str(amp_dtype)[6:]}" if amp_dtype else ""),
                         params=count_params(model), epochs=epochs, train_seconds=watch.seconds,
                         test_accuracy=test_accuracy, seconds_to_target=seconds_to_target, target=target,
                         history=history, device=device_name(device))
    return model, result
