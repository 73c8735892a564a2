"""Checks for lab 12 (scaling up on one machine): FLOPs counted from a layer's shape (12.1), images per
second timed right (12.2) and a mixed-precision training step with autocast + GradScaler (12.3). The
deployment exercises (int8 weights and an integer Linear layer, a checkpoint that resumes a run bit for
bit: 12.4 to 12.6) are checked in `dlcourse.checks.lab12_deploy`, re-exported here.

NumPy at import: torch is imported inside the checks that need it."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlcourse.check import expect, expect_array, expect_callable, expect_number, exercise
from dlcourse.checks.lab12_deploy import check_checkpoint, check_int8_linear, check_quantize_int8  # 12.4 to 12.6

__all__ = ["check_layer_flops", "check_images_per_second", "check_amp_train_step", "check_quantize_int8",
           "check_int8_linear", "check_checkpoint"]


# ------------------------------------------------------------------------------------------- 12.1
_COUNT = ("outputs = math.prod(out_shape)\n"
          "if isinstance(layer, nn.Conv2d):\n"
          "    kh, kw = layer.kernel_size\n"
          "    return {conv}\n"
          "if isinstance(layer, nn.Linear):\n"
          "    return {linear}")
_CONV = "2.0 * outputs * (layer.in_channels // layer.groups) * kh * kw"
_LINEAR = "2.0 * outputs * layer.in_features"


def _count(conv: str = _CONV, linear: str = _LINEAR) -> str:
    return _COUNT.format(conv=conv, linear=linear)


def _flop_cases() -> list[tuple[Any, tuple[int, ...]]]:
    """(layer, input shape): sizes that differ on every axis, a non-square kernel, stride, groups, a 3-D input."""
    from torch import nn

    return [(nn.Conv2d(3, 8, kernel_size=(3, 5), stride=2, padding=1), (2, 3, 13, 9)),
            (nn.Conv2d(6, 4, kernel_size=3, groups=2, bias=False), (5, 6, 11, 7)),
            (nn.Linear(7, 5), (3, 11, 7)),
            (nn.Linear(9, 2, bias=False), (4, 9))]


@exercise("12.1", "FLOPs from a layer's shape", wrong_answers={
    "multiply-adds, not FLOPs (no factor 2)": _count("outputs * (layer.in_channels // layer.groups) * kh * kw",
                                                     "outputs * layer.in_features"),
    "groups ignored": _count("2.0 * outputs * layer.in_channels * kh * kw"),
    "a square kernel assumed": _count("2.0 * outputs * (layer.in_channels // layer.groups) * kh * kh"),
    "Linear counted with out_features": _count(linear="2.0 * outputs * layer.out_features"),
    "per sample, not for the whole batch": _count("2.0 * outputs / out_shape[0] * (layer.in_channels // layer.groups)"
                                                  " * kh * kw", "2.0 * outputs / out_shape[0] * layer.in_features"),
}, accepted_answers={
    "from the weight's shape": "outputs = math.prod(out_shape)\n"
                               "if isinstance(layer, nn.Conv2d):\n"
                               "    return 2 * outputs * layer.weight[0].numel()  # (in/groups) x kh x kw\n"
                               "if isinstance(layer, nn.Linear):\n"
                               "    return 2 * outputs * layer.weight.shape[1]",
    "NumPy's prod": _count().replace("math.prod(out_shape)", "int(np.prod(out_shape))"),
})
def check_layer_flops(layer_flops: Any) -> str:
    import copy

    import torch

    from dlcourse.throughput import layer_flops as reference

    expect_callable(layer_flops, name="layer_flops")
    torch.manual_seed(12)
    for layer, in_shape in _flop_cases():
        out_shape = tuple(layer(torch.rand(in_shape)).shape)
        want = reference(layer, out_shape)
        what = (f"{type(layer).__name__}({layer.extra_repr()}) with output shape {out_shape}")
        expect_number(layer_flops(copy.deepcopy(layer), out_shape), want, name=f"layer_flops for {what}", rtol=1e-9,
                      hint="Every output value is one dot product: a multiply and an add (2 FLOPs) per term. A "
                           "convolution's terms are in_channels / groups channels × kernel height × kernel width "
                           "(layer.kernel_size is a pair); a Linear layer's are its in_features. Multiply by the "
                           "number of output values, the whole batch included.")
    return ("Right: 2 FLOPs per multiply-add, per output value, for convolutions (groups and non-square kernels "
            "included) and Linear layers on inputs with extra leading dimensions.")


# ------------------------------------------------------------------------------------------- 12.2
_TIMER = ("was_training = model.training\n"
          "model.eval()\n"
          "try:\n"
          "    with torch.inference_mode():\n"
          "        for _ in range(warmup):\n"
          "            model(x)\n"
          "        synchronize()\n"
          "        start = time.perf_counter()\n"
          "        for _ in range(iterations):\n"
          "            model(x)\n"
          "        synchronize()\n"
          "        seconds = time.perf_counter() - start\n"
          "finally:\n"
          "    model.train(was_training)\n"
          "return len(x) * iterations / seconds")
_WARMUP = ("        for _ in range(warmup):\n"
           "            model(x)\n"
           "        synchronize()\n")
_START = "        start = time.perf_counter()\n"
_TIMED_BODY = ("for _ in range(warmup):\n"
               "    model(x)\n"
               "synchronize()\n"
               "start = time.perf_counter()\n"
               "for _ in range(iterations):\n"
               "    model(x)\n"
               "synchronize()\n"
               "seconds = time.perf_counter() - start\n")


def _clocked_model(warmup: int, slow: float, fast: float, queued: bool) -> Any:
    """A stand-in model whose cost is known: its first ``warmup`` calls take ``slow`` seconds (first calls
    allocate and pick kernels), every later one ``fast``. ``queued`` makes it behave like a GPU: a call only
    queues its work, and ``wait()`` (the synchronize handed to the timer) sleeps until the queue is done.
    What it sees lives on the class, so a timer that times a deep copy is seen too."""
    import time

    import torch

    class ClockedModel(torch.nn.Module):
        calls: list[tuple[bool, bool, int]] = []  # (training, grad enabled, images) of every call
        queue = {"pending": 0.0, "nominal": 0.0, "slept": 0.0}

        def forward(self, x: Any) -> Any:
            ClockedModel.calls.append((self.training, torch.is_grad_enabled(), len(x)))
            cost = slow if len(ClockedModel.calls) <= warmup else fast
            if queued:
                ClockedModel.queue["pending"] += cost
            else:
                ClockedModel._sleep(cost)
            return x.reshape(len(x), -1).sum(dim=1)

        @staticmethod
        def _sleep(seconds: float) -> None:
            start = time.perf_counter()
            time.sleep(seconds)
            ClockedModel.queue["nominal"] += seconds
            ClockedModel.queue["slept"] += time.perf_counter() - start

        @staticmethod
        def wait() -> None:
            ClockedModel._sleep(ClockedModel.queue["pending"])
            ClockedModel.queue["pending"] = 0.0

    return ClockedModel().train()


def _positive_rate(rate: Any) -> float:
    expect(isinstance(rate, (int, float, np.number)) and not isinstance(rate, bool) and np.isfinite(rate) and rate > 0,
           f"`images_per_second` should return a positive number of images per second, not {rate!r}.",
           "Return len(x) * iterations / seconds, a Python float.")
    return float(rate)


@exercise("12.2", "Images per second, timed right", wrong_answers={
    "the warm-up calls timed too": _TIMER.replace(_WARMUP + _START, _START + _WARMUP),
    "no warm-up": _TIMER.replace(_WARMUP, "        synchronize()\n"),
    "iterations per second, not images": _TIMER.replace("return len(x) * iterations / seconds",
                                                        "return iterations / seconds"),
    "every number counted, not every image (x.numel())": _TIMER.replace("len(x)", "x.numel()"),
    "the clock stopped before the device finished": _TIMER.replace(
        "        synchronize()\n        seconds", "        seconds"),
    "no synchronize after the warm-up": _TIMER.replace(_WARMUP, _WARMUP.replace("        synchronize()\n", "")),
    "timed in train mode": _TIMER.replace("model.eval()\n", ""),
    "gradients recorded (no inference_mode)": "was_training = model.training\nmodel.eval()\n" + _TIMED_BODY
                                              + "model.train(was_training)\nreturn len(x) * iterations / seconds",
    "the model left in eval mode": "model.eval()\nwith torch.inference_mode():\n"
                                   + "".join("    " + line + "\n" for line in _TIMED_BODY.splitlines())
                                   + "return len(x) * iterations / seconds",
}, accepted_answers={
    "torch.no_grad, perf_counter_ns, x.shape[0]": (
        "was_training = model.training\n"
        "model.eval()\n"
        "with torch.no_grad():\n"
        "    for _ in range(warmup):\n"
        "        model(x)\n"
        "    synchronize()\n"
        "    t0 = time.perf_counter_ns()\n"
        "    for _ in range(iterations):\n"
        "        model(x)\n"
        "    synchronize()\n"
        "    t1 = time.perf_counter_ns()\n"
        "model.train(was_training)\n"
        "return x.shape[0] * iterations / ((t1 - t0) / 1e9)"),
    "each call timed alone and the times summed": (
        "import copy\n"
        "timed = copy.deepcopy(model).eval()  # a copy: the model's own mode is never touched\n"
        "total = 0.0\n"
        "with torch.inference_mode():\n"
        "    for _ in range(warmup):\n"
        "        timed(x)\n"
        "    synchronize()\n"
        "    for _ in range(iterations):\n"
        "        start = time.monotonic()\n"
        "        timed(x)\n"
        "        synchronize()\n"
        "        total += time.monotonic() - start\n"
        "return iterations * len(x) / total"),
})
def check_images_per_second(images_per_second: Any) -> str:
    import torch

    expect_callable(images_per_second, name="images_per_second")
    gen = torch.Generator().manual_seed(122)
    # (images, x's shape, warm-up calls, timed calls, seconds per warm-up call, per timed call, GPU-like)
    for batch, shape, warmup, iterations, slow, fast, queued in [(13, (13, 4, 6), 3, 6, 0.03, 0.004, False),
                                                                (7, (7, 5), 2, 5, 0.04, 0.005, True)]:
        model = _clocked_model(warmup, slow, fast, queued)
        x = torch.rand(shape, generator=gen)
        where = "on a GPU-like model (calls queue their work)" if queued else "on a CPU-like model"
        opening = where[0].upper() + where[1:]
        rate = _positive_rate(images_per_second(model, x.clone(), warmup=warmup, iterations=iterations,
                                                synchronize=type(model).wait))
        calls, queue = type(model).calls, type(model).queue
        expect(len(calls) >= warmup + iterations,
               f"Your timer called the model {len(calls)} times {where}; with warmup={warmup} and "
               f"iterations={iterations} it should call it at least {warmup + iterations} times.",
               "Call model(x) `warmup` times before the clock starts and `iterations` times while it runs.")
        expect(all(images == batch for _, _, images in calls),
               f"Your timer ran the model on batches other than x (x has {batch} images).", "Call model(x).")
        expect(not any(training for training, _, _ in calls),
               "Your timer ran the model in training mode: Dropout drops and BatchNorm updates its statistics, "
               "which is not the model that is served.", "Call model.eval() before the first call.")
        expect(not any(grad for _, grad, _ in calls),
               "Your timer ran the model with gradients enabled, so every call also records the graph for a "
               "backward pass that never comes.", "Run the calls under `with torch.inference_mode():`.")
        expect(model.training,
               "After your timer the model is in eval mode, though it came in training mode: timing should leave "
               "the model as it found it.", "Remember model.training first and call model.train(was_training) "
                                            "at the end.")
        expect(queue["pending"] == 0,
               f"{opening}, your clock stopped while the model's work was still queued, so it timed "
               "the queueing, not the work.", "Call synchronize() after the timed calls, before reading the clock.")
        slowdown = max(1.0, queue["slept"] / (queue["nominal"] or 1.0))  # a busy machine sleeps longer than asked
        true_rate = batch / (fast * slowdown)
        expect(rate <= 1.3 * true_rate,
               f"{opening}, your timer says {rate:,.0f} images/s, {rate / true_rate:.1f} times what it "
               f"ran at ({true_rate:,.0f} images/s: {fast * 1e3:.0f} ms per call of {batch} images).",
               "Count images, len(x) per call (x.numel() counts every number in the batch), and stop the clock "
               "only after synchronize() has waited for the queued work.")
        expect(rate >= 0.45 * true_rate,
               f"{opening}, your timer says {rate:,.0f} images/s, only {rate / true_rate:.2f} of what "
               f"it ran at ({true_rate:,.0f} images/s: {fast * 1e3:.0f} ms per call of {batch} images, after "
               f"{warmup} slow first calls).",
               "Return images per second, len(x) × iterations ÷ seconds, and start the clock only after the "
               "`warmup` calls and the synchronize() that follows them: the first calls are slow, and on a GPU "
               "their work may still be queued.")
    return ("Right: the warm-up is left out, the clock waits for queued work, and the count is images, in eval "
            "mode without gradients.")


# ------------------------------------------------------------------------------------------- 12.3
_STEP = ("optimizer.zero_grad(set_to_none=True)\n"
         "with torch.autocast(x.device.type, dtype=dtype):\n"
         "    loss = loss_fn(model(x), y)\n"
         "{backward}\n"
         "{step}\n"
         "{update}"
         "return loss.item()")


def _step_code(backward: str = "scaler.scale(loss).backward()", step: str = "scaler.step(optimizer)",
               update: str = "scaler.update()\n", zero: bool = True, autocast: bool = True) -> str:
    code = _STEP.format(backward=backward, step=step, update=update)
    if not zero:
        code = code.replace("optimizer.zero_grad(set_to_none=True)\n", "")
    if not autocast:
        code = code.replace("with torch.autocast(x.device.type, dtype=dtype):\n    ", "")
    return code


def _tiny_model(seed: int) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3))


def _params(model: Any) -> list[Any]:
    return [p.detach().clone() for p in model.parameters()]


def _run_step(step: Any, *args: Any) -> Any:
    """The student's step; GradScaler's own complaints become a sentence with the fix."""
    from dlcourse.check import Mismatch

    try:
        return step(*args)
    except (AssertionError, RuntimeError) as err:
        text = str(err)
        if "scale" in text or "update()" in text:
            raise Mismatch(f"The GradScaler refused your step: {text.split('.')[0]}.",
                           "Each step goes scaler.scale(loss).backward(), then scaler.step(optimizer), then "
                           "scaler.update(): the scaler must see the scaled loss, make the step, and update its "
                           "scale before the next one.") from None
        raise


@exercise("12.3", "A mixed-precision training step", wrong_answers={
    "forward pass outside autocast": _step_code(autocast=False),
    "loss not scaled before backward": _step_code(backward="loss.backward()"),
    "optimizer.step() instead of scaler.step(optimizer)": _step_code(step="scaler.unscale_(optimizer)\n"
                                                                             "optimizer.step()"),
    "scaler.update() left out": _step_code(update=""),
    "gradients never zeroed": _step_code(zero=False),
}, accepted_answers={
    "zero_grad() with zeros, torch.amp.autocast": "optimizer.zero_grad()\n"
                                                  "with torch.amp.autocast(device_type=x.device.type, dtype=dtype):\n"
                                                  "    logits = model(x)\n"
                                                  "    loss = loss_fn(logits, y)\n"
                                                  "scaler.scale(loss).backward()\n"
                                                  "scaler.step(optimizer)\n"
                                                  "scaler.update()\n"
                                                  "return float(loss.detach())",
})
def check_amp_train_step(amp_train_step: Any) -> str:
    import torch
    from torch import nn

    from dlcourse.mixed_precision import amp_train_step as reference

    expect_callable(amp_train_step, name="amp_train_step")
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(12)
    batches = [(torch.randn(11, 7, generator=gen), torch.randint(0, 3, (11,), generator=gen)) for _ in range(3)]

    # bfloat16 with an enabled scaler (scale 2^8), three steps against the reference
    yours, ref = _tiny_model(4), _tiny_model(4)
    seen: list[Any] = []
    yours[0].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    opt_y = torch.optim.SGD(yours.parameters(), lr=0.05, momentum=0.9)
    opt_r = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    scaler_y = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8, growth_interval=2)
    scaler_r = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8, growth_interval=2)
    for k, (x, y) in enumerate(batches, start=1):
        got = _run_step(amp_train_step, yours, opt_y, scaler_y, x.clone(), y.clone(), loss_fn, torch.bfloat16)
        want = reference(ref, opt_r, scaler_r, x.clone(), y.clone(), loss_fn, torch.bfloat16)
        expect(bool(seen) and seen[-1] == torch.bfloat16,
               f"In step {k} the model's first Linear layer computed in {seen[-1] if seen else 'nothing'}, not "
               "bfloat16: the forward pass did not run under autocast.",
               "Run the forward pass and the loss inside `with torch.autocast(x.device.type, dtype=dtype):`.")
        expect_number(got, want, name=f"the loss returned by step {k}", rtol=1e-4, atol=1e-6,
                      hint="Return the loss of this batch as a Python float (loss.item()), computed under autocast.")
        for i, (p, q) in enumerate(zip(yours.parameters(), ref.parameters())):
            expect_array(p.detach(), q.detach(), name=f"parameter {i} after step {k} (bfloat16, GradScaler at 2^8)",
                         rtol=1e-4, atol=1e-6,
                         hint="Clear the old gradients first (optimizer.zero_grad()), then "
                              "scaler.scale(loss).backward() and scaler.step(optimizer): the scaler multiplies the "
                              "loss by its scale and divides the gradients by it again before the update, so "
                              "skipping one half makes every update 2^8 times too small or too large.")
    expect_number(scaler_y.get_scale(), scaler_r.get_scale(), name="the scaler's scale after three good steps",
                  hint="Call scaler.update() after scaler.step(optimizer): it grows the scale after a run of good "
                       "steps and halves it after a skipped one.")

    # float16 with a scale so large that the float16 backward overflows: the step must be skipped
    model = _tiny_model(5)
    before = _params(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 30)
    x, y = torch.randn(13, 7, generator=gen) * 100, torch.randint(0, 3, (13,), generator=gen)
    _run_step(amp_train_step, model, opt, scaler, x, y, loss_fn, torch.float16)
    expect(all(torch.equal(a, b) for a, b in zip(before, model.parameters())),
           "With float16 and a scale of 2^30 the gradients overflow to inf, yet your step changed the weights "
           "(to NaN or inf): the step should have been skipped.",
           "Let the scaler make the step: scaler.step(optimizer) checks the unscaled gradients for inf/NaN and "
           "skips optimizer.step() when it finds one.")
    expect_number(scaler.get_scale(), 2.0 ** 29, name="the scale after the overflowing step",
                  hint="After a skipped step scaler.update() halves the scale (2^30 → 2^29), so the next step is "
                       "less likely to overflow.")
    return ("Right: the forward pass ran in bfloat16, the update matches the reference, and the overflowing "
            "float16 step was skipped with the scale halved.")
