"""Checks for lab 12's deployment exercises: symmetric int8 weights (12.4), affine activations and a
Linear layer computed in integers (12.5), and a checkpoint that resumes a run bit for bit (12.6).
`dlcourse.checks.lab12` re-exports them.

NumPy at import: torch is imported inside the checks that need it."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from dlcourse.check import Mismatch, expect, expect_array, expect_callable, expect_number, exercise


# ------------------------------------------------------------------------------------------- 12.4
@exercise("12.4", "Symmetric int8 quantization", wrong_answers={
    "scale from the unsigned range (255)": "scale = float(np.abs(w).max()) / 255\n"
                                           "q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)",
    "truncation instead of rounding": "scale = float(np.abs(w).max()) / 127\n"
                                      "q = (w / scale).astype(np.int8)",
    "scale from the largest value, not the largest magnitude": "scale = float(w.max()) / 127\n"
                                                               "q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)",
})
def check_quantize_int8(quantize_int8: Any) -> str:
    from dlcourse.deploy import quantize_int8 as reference

    expect_callable(quantize_int8, name="quantize_int8")
    rng = np.random.default_rng(5)
    for w in [rng.normal(0, 0.05, size=(128, 64)).astype(np.float32),
              np.array([[-1.0, 0.2, 0.5], [0.25, -0.01, 0.3]], dtype=np.float32)]:
        got = quantize_int8(w.copy())
        expect(isinstance(got, tuple) and len(got) == 2,
               "`quantize_int8` should return a pair (q, scale): the int8 array and the float scale.")
        q, scale = got
        want_q, want_scale = reference(w)
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


# ------------------------------------------------------------------------------------------- 12.5
_ACTIVATIONS = ("lo, hi = min(x.min().item(), 0.0), max(x.max().item(), 0.0)\n"
                "scale = (hi - lo) / 255 or 1.0\n"
                "zero_point = round(-lo / scale)\n"
                "q = torch.clamp(torch.round(x / scale) + zero_point, 0, 255).to(torch.uint8)")
_INT_LINEAR = ("w = q_weight.to(torch.int32)\n"
               "acc = q_x.to(torch.int32) @ w.T - x_zero * w.sum(dim=1)\n"
               "y = acc.to(torch.float32) * (x_scale * w_scale)\n"
               "if bias is not None:\n"
               "    y = y + bias\n"
               "return y")


def _activation_cases() -> list[Any]:
    """Signed, all-positive and all-negative activations of sizes that differ on every axis, each value
    at least 0.15 of a level away from a rounding tie, so that every correct formula rounds alike."""
    import torch

    rng = np.random.default_rng(125)
    cases = []
    # (shape, data min, data max, lowest and highest level used inside)
    for shape, low, high, levels in [((6, 11), -1.25, 2.0, (1, 254)), ((9, 13), 0.4, 3.0, (35, 254)),
                                     ((4, 7), -2.5, -0.3, (1, 223))]:
        lo, hi = min(low, 0.0), max(high, 0.0)
        scale, zero = (hi - lo) / 255, round(-lo / (hi - lo) * 255)
        k = rng.integers(levels[0], levels[1] + 1, size=shape)
        x = (k - zero + rng.uniform(-0.35, 0.35, size=shape)) * scale
        x.flat[0], x.flat[-1] = low, high  # the data's own extremes
        cases.append(torch.tensor(x, dtype=torch.float32))
    return cases


def _linear_variants(q_x: Any, x_scale: float, x_zero: int, q_w: Any, w_scale: float, bias: Any) -> dict[str, Any]:
    """What the typical slips compute, to name the one a wrong answer made."""
    import torch

    w, xi = q_w.to(torch.int32), q_x.to(torch.int32)
    b = 0 if bias is None else bias
    with_zero = (xi @ w.T - x_zero * w.sum(dim=1)).to(torch.float32)
    return {
        "Subtract the zero point's share, x_zero · (the row sums of the weights): the uint8 levels stand for "
        "q_x − x_zero, not q_x.": (xi @ w.T).to(torch.float32) * (x_scale * w_scale) + b,
        "Rescale by both scales, x_scale · w_scale: each integer product stands for (x_scale·level) × "
        "(w_scale·level).": with_zero * w_scale + b,
        "Add the bias after rescaling: it is a float32 number in the output's units, not an integer sum.":
            (with_zero + b) * (x_scale * w_scale),
        "Sum in int32 (q_weight.to(torch.int32)): a sum of many products of up to 255 × 127 overflows 8 or 16 "
        "bits.": (xi.to(torch.int16) @ w.to(torch.int16).T).to(torch.int32).to(torch.float32) * (x_scale * w_scale)
        - x_zero * w.sum(dim=1) * (x_scale * w_scale) + b,
    }


def _which_slip(got: Any, variants: dict[str, Any], tolerance: dict[str, float]) -> str:
    """The hint of the variant ``got`` matches, or the formula when it matches none."""
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):  # not an array of numbers: no slip of ours
        got = None
    for hint, variant in variants.items():
        if got is not None and got.shape == tuple(variant.shape) and np.allclose(got, variant.double().numpy(),
                                                                                 **tolerance):
            return hint
    return ("y = x_scale · w_scale · (q_x @ q_weightᵀ − x_zero · the row sums of q_weight), summed in int32, "
            "then + bias.")


@exercise("12.5", "An int8 Linear layer in integers", wrong_answers={
    "the range not stretched to include 0": [_ACTIVATIONS.replace("min(x.min().item(), 0.0), max(x.max().item(), 0.0)",
                                                                  "x.min().item(), x.max().item()"), None],
    "truncation instead of rounding": [_ACTIVATIONS.replace("torch.round(x / scale) + zero_point",
                                                            "x / scale + zero_point"), None],
    "the symmetric weight scheme (max|x| / 127, zero point 0)": [
        "scale = x.abs().max().item() / 127\n"
        "zero_point = 0\n"
        "q = torch.clamp(torch.round(x / scale), 0, 255).to(torch.uint8)", None],
    "the zero point not rounded": [_ACTIVATIONS.replace("round(-lo / scale)", "-lo / scale"), None],
    "the zero point left out of the product": [None, _INT_LINEAR.replace(" - x_zero * w.sum(dim=1)", "")],
    "only the weights' scale": [None, _INT_LINEAR.replace("(x_scale * w_scale)", "w_scale")],
    "the bias added before the rescale": [None, "w = q_weight.to(torch.int32)\n"
                                                "acc = q_x.to(torch.int32) @ w.T - x_zero * w.sum(dim=1)\n"
                                                "y = acc.to(torch.float32)\n"
                                                "if bias is not None:\n"
                                                "    y = y + bias\n"
                                                "return y * (x_scale * w_scale)"],
    "16-bit sums (overflow)": [None, _INT_LINEAR.replace("q_weight.to(torch.int32)", "q_weight.to(torch.int16)")
                                                 .replace("q_x.to(torch.int32)", "q_x.to(torch.int16)")],
}, accepted_answers={
    "aminmax, clamp after the shift": [
        "lo, hi = (float(v) for v in torch.aminmax(x))\n"
        "lo, hi = min(lo, 0.0), max(hi, 0.0)\n"
        "scale = (hi - lo) / 255\n"
        "zero_point = int(round(-lo / scale))\n"
        "q = (x / scale).round().add(zero_point).clamp(0, 255).to(torch.uint8)", None],
    "dequantize both, then a float32 product": [None, "x = (q_x.float() - x_zero) * x_scale\n"
                                                      "w = q_weight.float() * w_scale\n"
                                                      "y = x @ w.T\n"
                                                      "return y if bias is None else y + bias"],
    "zero point subtracted first, int64 einsum": [None, "acc = torch.einsum('bk,jk->bj', q_x.long() - x_zero, "
                                                        "q_weight.long())\n"
                                                        "y = acc.float() * x_scale * w_scale\n"
                                                        "if bias is not None:\n"
                                                        "    y += bias\n"
                                                        "return y"],
})
def check_int8_linear(quantize_activations: Any, int8_linear: Any) -> str:
    import torch

    from dlcourse import deploy

    expect_callable(quantize_activations, name="quantize_activations")
    expect_callable(int8_linear, name="int8_linear")
    cases = _activation_cases()
    for x in cases:
        got = quantize_activations(x.clone())
        expect(isinstance(got, tuple) and len(got) == 3,
               "`quantize_activations` should return three values: (q, scale, zero_point).")
        q, scale, zero = got
        want_q, want_scale, want_zero = deploy.quantize_activations(x)
        what = f"for an x from {x.min().item():.2f} to {x.max().item():.2f}"
        expect_number(scale, want_scale, name=f"scale {what}", rtol=1e-6,
                      hint="scale = (hi − lo) / 255 with lo = min(x.min(), 0) and hi = max(x.max(), 0): 256 levels "
                           "spread over the range, 0 included. max|x| / 127 with zero point 0 is the symmetric "
                           "weight scheme of exercise 12.4, which wastes half the levels on ReLU outputs.")
        expect_number(zero, want_zero, name=f"zero_point {what}", integer=True, atol=0,
                      hint="zero_point = round(−lo / scale), a whole number: the level that stands for 0.0 "
                           "exactly, so zeros (ReLU outputs, padding) are stored without error.")
        expect(isinstance(q, torch.Tensor) and q.dtype == torch.uint8,
               f"q should be a torch.uint8 tensor, not {getattr(q, 'dtype', type(q).__name__)}.",
               "Finish with .to(torch.uint8): levels 0…255.")
        expect(tuple(q.shape) == tuple(x.shape), f"q has shape {tuple(q.shape)}, but x has shape {tuple(x.shape)}.")
        wrong = int((q.to(torch.int32) != want_q.to(torch.int32)).sum())
        expect(wrong == 0, f"q differs from the expected levels in {wrong} of {q.numel()} entries {what}.",
               "q = round(x / scale) + zero_point, clamped to 0…255: round to the NEAREST level (torch.round) "
               "before the cast, since .to(torch.uint8) alone cuts off the fraction.")

    gen = torch.Generator().manual_seed(1205)
    for x, out, with_bias in zip(cases, (5, 4, 9), (True, False, True)):
        q_w, w_scale = deploy.quantize_int8((torch.randn(out, x.shape[1], generator=gen) * 0.2).numpy())
        q_w = torch.as_tensor(q_w)
        bias = torch.randn(out, generator=gen) if with_bias else None
        q_x, x_scale, x_zero = deploy.quantize_activations(x)
        want = deploy.int8_linear(q_x, x_scale, x_zero, q_w, w_scale, bias)
        got = int8_linear(q_x.clone(), x_scale, x_zero, q_w.clone(), w_scale, None if bias is None else bias.clone())
        name = (f"int8_linear for {x.shape[0]} × {x.shape[1]} activations and {out} × {x.shape[1]} weights "
                f"({'with' if with_bias else 'without'} a bias)")
        tolerance = dict(rtol=1e-5, atol=1e-5 * float(want.abs().max()))
        try:
            expect_array(got, want, name=name, **tolerance)
        except Mismatch as mismatch:
            variants = _linear_variants(q_x, x_scale, x_zero, q_w, w_scale, bias)
            raise Mismatch(mismatch.reason, _which_slip(got, variants, tolerance)) from None
    return ("Right: 0 is one of the 256 levels, every activation lands on its nearest level, and the integer "
            "sums give the Linear layer's output after one rescale.")


# ------------------------------------------------------------------------------------------- 12.6
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


@exercise("12.6", "A checkpoint that resumes exactly", wrong_answers={
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
    return Mismatch(f"The payload could not be read back with torch.load(weights_only=True) "
                    f"({type(err).__name__}): it holds something other than tensors, dicts, lists, numbers and "
                    "strings.", "Save state dicts and tensors, not the model, optimizer or generator objects "
                                "themselves.")
