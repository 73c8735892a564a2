"""Checks for lab 12 (scaling up on one machine): FLOPs counted from a layer's shape, a mixed-precision
training step (autocast + GradScaler), symmetric int8 quantization, and a checkpoint that resumes a run
bit for bit.

NumPy at import: torch is imported inside the checks that need it."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from dlcourse.check import expect, expect_array, expect_callable, expect_number, exercise


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


@exercise("12.2", "A mixed-precision training step", wrong_answers={
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


# ------------------------------------------------------------------------------------------- 12.4
_SAVE = ('return {"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),\n'
         '        "scheduler": state.scheduler.state_dict(), "step": state.step,\n'
         '        "rng": {"torch": torch.get_rng_state(), "shuffle": state.generator.get_state()},\n'
         '        "data": {"order": state.order, "position": state.position}}')
_LOAD = ('state.model.load_state_dict(payload["model"])\n'
         'state.optimizer.load_state_dict(payload["optimizer"])\n'
         'state.scheduler.load_state_dict(payload["scheduler"])\n'
         'state.step = payload["step"]\n'
         'torch.set_rng_state(payload["rng"]["torch"])\n'
         'state.generator.set_state(payload["rng"]["shuffle"])\n'
         'state.order, state.position = payload["data"]["order"], payload["data"]["position"]')


def _without(line_start: str) -> str:
    return "\n".join(line for line in _LOAD.splitlines() if not line.startswith(line_start)) + "\n"


@exercise("12.4", "A checkpoint that resumes exactly", wrong_answers={
    "optimizer state not restored (fresh momentum)": [None, _without("state.optimizer")],
    "scheduler not restored (the warm-up restarts)": [None, _without("state.scheduler")],
    "torch's RNG not restored (other dropout masks)": [None, _without("torch.set_rng_state")],
    "the data position not restored (the epoch starts over)": [None, _without("state.order")],
    "the shuffle generator not restored (the next epoch's order differs)": [None, _without("state.generator")],
}, accepted_answers={
    "a flat payload, copies of the state dicts": [
        'import copy\n'
        'return {"model": copy.deepcopy(state.model.state_dict()), "opt": copy.deepcopy(state.optimizer.state_dict()),\n'
        '        "sched": state.scheduler.state_dict(), "step": state.step, "torch_rng": torch.random.get_rng_state(),\n'
        '        "shuffle": state.generator.get_state(), "order": state.order, "position": state.position}',
        'state.model.load_state_dict(payload["model"])\n'
        'state.optimizer.load_state_dict(payload["opt"])\n'
        'state.scheduler.load_state_dict(payload["sched"])\n'
        'state.step = payload["step"]\n'
        'torch.random.set_rng_state(payload["torch_rng"])\n'
        'state.generator.set_state(payload["shuffle"])\n'
        'state.order = payload["order"]\n'
        'state.position = payload["position"]'],
})
def check_checkpoint(checkpoint_payload: Any, restore_state: Any) -> str:
    import torch

    from dlcourse import checkpoint as ck

    expect_callable(checkpoint_payload, name="checkpoint_payload")
    expect_callable(restore_state, name="restore_state")
    gen = torch.Generator().manual_seed(31)
    x, y = torch.rand(40, 1, 28, 28, generator=gen), torch.randint(0, 10, (40,), generator=gen)
    seed, total, before, after, batch = 3, 9, 3, 5, 12  # 40 = 3 batches of 12 + 4: the resume is mid-epoch

    state = ck.new_state(seed, total, lr=0.07)
    ck.train_steps(state, x, y, before, batch)
    buffer = io.BytesIO()
    payload = checkpoint_payload(state)
    expect(isinstance(payload, dict), f"`checkpoint_payload` should return a dict, not {type(payload).__name__}.")
    torch.save(payload, buffer)
    reference_payload = ck.checkpoint_payload(state)
    saved_rng = torch.get_rng_state()
    uninterrupted = ck.train_steps(state, x, y, after, batch)
    final = {k: v.clone() for k, v in state.model.state_dict().items()}

    buffer.seek(0)
    try:
        loaded = torch.load(buffer, weights_only=True)
    except Exception as err:
        raise _unloadable(err) from None
    fresh = ck.new_state(seed, total, lr=0.07)  # the "crash": a new process builds the same structure
    torch.manual_seed(seed + 1000)  # and its RNG has moved on
    restore_state(fresh, loaded)
    opt_state = fresh.optimizer.state_dict()["state"]
    expect(len(opt_state) == len(reference_payload["optimizer"]["state"]),
           "After restore_state the optimizer holds no momentum buffers: the optimizer state was not restored.",
           "Save state.optimizer.state_dict() and load it back with state.optimizer.load_state_dict(...).")
    expect(fresh.scheduler.last_epoch == reference_payload["scheduler"]["last_epoch"],
           f"After restore_state the scheduler is at step {fresh.scheduler.last_epoch}, not "
           f"{reference_payload['scheduler']['last_epoch']}: its position in the schedule was not restored.",
           "Save state.scheduler.state_dict() and load it back with state.scheduler.load_state_dict(...).")
    expect(torch.equal(torch.get_rng_state(), saved_rng),
           "After restore_state torch's global random generator is not where it was at the save, so dropout "
           "draws other masks.", "Save torch.get_rng_state() and restore it with torch.set_rng_state(...).")
    expect(torch.equal(fresh.generator.get_state(), reference_payload["rng"]["shuffle"]),
           "After restore_state the shuffle generator is not where it was at the save, so the next epoch's "
           "order differs.", "Save state.generator.get_state() and restore it with state.generator.set_state(...).")
    expect(fresh.order is not None and torch.equal(fresh.order, reference_payload["data"]["order"])
           and fresh.position == reference_payload["data"]["position"],
           "After restore_state the run does not continue in the same shuffled epoch at the same position "
           f"(sample {reference_payload['data']['position']} of {len(x)}).",
           "Save state.order and state.position, and set both back.")
    resumed = ck.train_steps(fresh, x, y, after, batch)
    expect(torch.equal(torch.tensor(resumed), torch.tensor(uninterrupted))
           and all(torch.equal(final[k], v) for k, v in fresh.model.state_dict().items()),
           "The resumed run is not bit-for-bit the uninterrupted one: losses "
           f"{[round(v, 6) for v in resumed]} against {[round(v, 6) for v in uninterrupted]}.",
           "Every piece goes in: weights, optimizer, scheduler, step, torch's RNG, the shuffle generator and the "
           "position in the epoch.")
    return (f"Right: resumed after {before} steps (mid-epoch), the next {after} losses and every weight are the "
            "uninterrupted run's, bit for bit.")


def _unloadable(err: Exception) -> Exception:
    from dlcourse.check import Mismatch

    return Mismatch(f"The payload could not be read back with torch.load(weights_only=True) "
                    f"({type(err).__name__}): it holds something other than tensors, dicts, lists, numbers and "
                    "strings.", "Save state dicts and tensors, not the model, optimizer or generator objects "
                                "themselves.")
# ------------------------------------------------------------------------------------------- 12.3
def _quantize(w: np.ndarray) -> tuple[np.ndarray, float]:
    scale = float(np.abs(w).max()) / 127
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale


@exercise("12.3", "Symmetric int8 quantization", wrong_answers={
    "scale from the unsigned range (255)": "scale = float(np.abs(w).max()) / 255\n"
                                           "q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)",
    "truncation instead of rounding": "scale = float(np.abs(w).max()) / 127\n"
                                      "q = (w / scale).astype(np.int8)",
    "scale from the largest value, not the largest magnitude": "scale = float(w.max()) / 127\n"
                                                               "q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)",
})
def check_quantize_int8(quantize_int8: Any) -> str:
    expect_callable(quantize_int8, name="quantize_int8")
    rng = np.random.default_rng(5)
    for w in [rng.normal(0, 0.05, size=(128, 64)).astype(np.float32),
              np.array([[-1.0, 0.2, 0.5], [0.25, -0.01, 0.3]], dtype=np.float32)]:
        got = quantize_int8(w.copy())
        expect(isinstance(got, tuple) and len(got) == 2,
               "`quantize_int8` should return a pair (q, scale): the int8 array and the float scale.")
        q, scale = got
        want_q, want_scale = _quantize(w)
        expect_number(scale, want_scale, name="scale", rtol=1e-6,
                      hint="The exercise asks for the scale that maps the largest MAGNITUDE max|w| to 127, so "
                           "scale = max|w| / 127 (int8 runs from −128 to 127; −128 stays unused to keep the range "
                           "symmetric). A smaller scale that clips a few outliers can have a lower mean squared "
                           "error, but it is another scheme than the one asked for here.")
        q = np.asarray(q)
        expect(q.dtype == np.int8, f"q should have dtype int8, not {q.dtype}.", "Finish with .astype(np.int8).")
        expect_array(q, want_q, name="q", rtol=0, atol=0,
                     hint="Round to the NEAREST integer (np.round) before the cast: .astype(np.int8) alone truncates "
                          "toward zero and doubles the worst-case error.")
    return f"Right: w ≈ q·scale, and rounding moves no weight by more than scale/2 ({want_scale / 2:.4f} here)."
