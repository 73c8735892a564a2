"""Checks for lab 05 exercises 05.6 (inverted dropout) and 05.7 (weight decay);
`dlcourse.checks.lab05` imports them, which registers them with the lab's other checks."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlcourse import mlp as ref
from dlcourse.check import expect, expect_array, expect_callable, exercise
from dlcourse.checks.lab05_support import _copies, _expect_param_dict, _pair, _tiny_network, _tolerance


# ------------------------------------------------------------------------------ 05.6

_DROPOUT_HINT = ("In training: mask = (rng.random(h.shape) >= rate) / (1 - rate), then return h * mask, mask. At "
                 "evaluation (training=False): return h and a mask of ones. Dividing by 1 − rate keeps every unit's "
                 "expected value, so evaluation needs no rescaling.")


@exercise("05.6", "Inverted dropout", wrong_answers={
    "not rescaled by 1/(1 - rate)": '''if not training:
    return h, np.ones_like(h)
mask = (rng.random(h.shape) >= rate).astype(h.dtype)
return h * mask, mask''',
    "dropout active at evaluation": '''mask = (rng.random(h.shape) >= rate).astype(h.dtype) / (1 - rate)
return h * mask, mask''',
    "took rate as the probability to keep": '''if not training:
    return h, np.ones_like(h)
mask = (rng.random(h.shape) < rate).astype(h.dtype) / rate
return h * mask, mask''',
    "multiplied by 1 - rate instead of dividing": '''if not training:
    return h, np.ones_like(h)
mask = (rng.random(h.shape) >= rate).astype(h.dtype) * (1 - rate)
return h * mask, mask''',
    "hard-coded the rate 0.2": '''if not training:
    return h, np.ones_like(h)
mask = (rng.random(h.shape) >= 0.2).astype(h.dtype) / 0.8
return h * mask, mask''',
    "one mask for the whole batch": '''if not training:
    return h, np.ones_like(h)
mask = (rng.random(h.shape[1:]) >= rate).astype(h.dtype) / (1 - rate) * np.ones_like(h)
return h * mask, mask''',
}, accepted_answers={
    "a binomial mask": '''if not training:
    return h, np.ones(h.shape)
mask = rng.binomial(1, 1 - rate, size=h.shape) / (1 - rate)
return h * mask, mask''',
    "float32 uniforms, keep where above the rate": '''if training:
    keep = rng.random(h.shape, dtype=np.float32) > rate
    mask = keep.astype(np.float32) / np.float32(1 - rate)
else:
    mask = np.ones_like(h)
return h * mask, mask''',
})
def check_dropout(dropout: Any) -> str:
    expect_callable(dropout, name="dropout")
    h = np.random.default_rng(7).random((301, 173)) + 0.5  # positive, so a dropped entry is exactly 0
    for rate in (0.3, 0.65):
        result = dropout(h.copy(), rate, np.random.default_rng(17), True)
        out, mask = _pair(result, "dropout", "(output, mask)")
        out, mask = np.asarray(out, dtype=float), np.asarray(mask, dtype=float)
        expect(out.shape == h.shape and mask.shape == h.shape,
               f"For h of shape {h.shape}, `dropout` returned an output of shape {out.shape} and a mask of shape "
               f"{mask.shape}; both should have h's shape.", "One independent keep-or-drop per entry: rng.random(h.shape).")
        expect(np.allclose(out, h * mask, rtol=1e-5), "The output is not h * mask.",
               "Return the mask you multiplied h by, so the backward pass can multiply the gradient by the same mask.")
        dropped = float((mask == 0).mean())
        expect(abs(dropped - rate) < 0.02, f"With rate={rate} your dropout zeroed {dropped:.1%} of the entries; "
               f"expected about {rate:.0%}.", "`rate` is the probability of dropping an entry, and use the rate you "
               "are given: keep an entry where rng.random(h.shape) >= rate.")
        kept = mask[mask != 0]
        expect(np.allclose(kept, 1 / (1 - rate), rtol=1e-5),
               f"With rate={rate} the kept entries are multiplied by {float(kept.mean()):.4g}; inverted dropout "
               f"multiplies them by 1/(1 - rate) = {1 / (1 - rate):.4g}.", _DROPOUT_HINT)
        per_unit = (mask == 0).mean(axis=0)
        expect(per_unit.std() < 0.2, "Your mask drops the same units for every example of the batch.",
               "Draw a mask of h's full shape, one keep-or-drop per example and unit: rng.random(h.shape).")
        again, _ = _pair(dropout(h.copy(), rate, np.random.default_rng(17), True), "dropout", "(output, mask)")
        expect(np.array_equal(np.asarray(again, dtype=float), out),
               "Two calls with equally seeded generators gave different masks.",
               "Draw the mask from the `rng` argument (rng.random), not from np.random, so a seed repeats a run.")
        out, mask = _pair(dropout(h.copy(), rate, np.random.default_rng(17), False), "dropout", "(output, mask)")
        expect(np.shape(out) == h.shape and np.allclose(np.asarray(out, dtype=float), h),
               f"At evaluation (training=False, rate={rate}) your dropout changed h.",
               "At evaluation every unit is kept and nothing is rescaled: return h and np.ones_like(h). The 1/(1 − rate) "
               "in training is what makes this right.")
    return "Dropout zeroes the right share of entries, rescales the rest by 1/(1 − rate), and is off at evaluation (rates 0.3 and 0.65)."


# ------------------------------------------------------------------------------ 05.7

@exercise("05.7", "Weight decay", wrong_answers={
    "decayed the biases too": "return {k: grads[k] + weight_decay * params[k] for k in grads}",
    "subtracted the decay": '''return {k: grads[k] - weight_decay * params[k] if k.startswith("W") else grads[k] for k in grads}''',
    "the gradient of λ‖W‖², not (λ/2)‖W‖²": '''return {k: grads[k] + 2 * weight_decay * params[k] if k.startswith("W") else grads[k] for k in grads}''',
    "hard-coded the decay 5e-4": '''return {k: grads[k] + 5e-4 * params[k] if k.startswith("W") else grads[k] for k in grads}''',
    "returned only the weights": '''return {k: grads[k] + weight_decay * params[k] for k in ("W1", "W2")}''',
}, accepted_answers={
    "named the keys": '''new = dict(grads)
for k in ("W1", "W2"):
    new[k] = grads[k] + weight_decay * params[k]
return new''',
    "in place, in float32": '''for k in ("W1", "W2"):
    grads[k] = (grads[k] + weight_decay * params[k]).astype(np.float32)
return grads''',
})
def check_weight_decay(add_weight_decay: Any) -> str:
    expect_callable(add_weight_decay, name="add_weight_decay")
    params, _, _ = _tiny_network(n_in=7, n_hidden=5, n_out=3)  # non-zero biases, so decaying them shows
    rng = np.random.default_rng(23)
    grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    for decay in (0.013, 0.21):
        got = add_weight_decay(_copies(grads), _copies(params), decay)
        want = ref.add_weight_decay(grads, params, decay)
        _expect_param_dict(got, f"add_weight_decay(grads, params, {decay})", params)
        for key in ref.PARAM_NAMES:
            if key.startswith("b"):
                hint = ("Biases are not decayed: return their gradients unchanged. A bias only shifts a unit; "
                        "penalising it does not make the network simpler.")
            else:
                hint = (f"The penalty (λ/2)·‖{key}‖² has the gradient λ·{key}: add weight_decay * params['{key}'] "
                        "to the gradient, with the weight_decay you are given.")
            expect_array(got[key], want[key], name=f"the {key} gradient with weight_decay={decay}", hint=hint,
                         **_tolerance(got[key]))
    return "λ·W is added to both weight gradients and the biases are left alone (λ = 0.013 and 0.21)."


__all__ = ["check_prepare_images", "check_forward", "check_softmax_cross_entropy", "check_backward",
           "check_momentum_step", "check_dropout", "check_weight_decay", "GRADIENT_TOLERANCE"]
