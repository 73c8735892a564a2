"""Checks for lab 13 (many machines, and what they cost): parameter counts by formula, the 6·N·D compute
estimate, Chinchilla's compute-optimal size, training and serving memory, the cost of generated tokens,
energy at the facility; the data-parallel exercises (13.7-13.10: combining shard gradients, the DDP batch
arithmetic, one rank's loop, a ring all-reduce) are in lab13_parallel.

NumPy only: a light interpreter imports this module (torch is imported inside a check when needed)."""

from __future__ import annotations

import math
from typing import Any

from dlcourse.check import expect, expect_callable, expect_number, exercise
from dlcourse.checks.lab13_parallel import (check_combine_gradients, check_ddp_schedule,  # registers 13.7-13.10
                                            check_ring_all_reduce, check_train_epochs)


# ------------------------------------------------------------------------------------------- 13.1
@exercise("13.1", "Count parameters by formula", wrong_answers={
    "kernel counted once, not k×k": ["return c_in * c_out * kernel + (c_out if bias else 0)", None],
    "one bias for the whole layer": ["return c_in * c_out * kernel * kernel + (1 if bias else 0)", None],
    "Linear without its bias": [None, "return n_in * n_out"],
})
def check_param_formulas(conv2d_params: Any, linear_params: Any) -> str:
    import torch

    from dlcourse.compute import lab08_cnn_params_by_formula

    expect_callable(conv2d_params, name="conv2d_params")
    expect_callable(linear_params, name="linear_params")
    for c_in, c_out, k, bias in [(1, 16, 3, False), (16, 32, 3, False), (3, 64, 7, True), (8, 4, 1, True)]:
        want = sum(p.numel() for p in torch.nn.Conv2d(c_in, c_out, k, bias=bias).parameters())
        expect_number(conv2d_params(c_in, c_out, k, bias), want, integer=True, rtol=0, atol=0,
                      name=f"conv2d_params({c_in}, {c_out}, {k}, bias={bias})",
                      hint="Each of the c_out filters has c_in × k × k weights, plus one bias per filter "
                           "(one per output channel) when bias=True.")
    for n_in, n_out, bias in [(1568, 128, True), (128, 10, True), (768, 3072, False)]:
        want = sum(p.numel() for p in torch.nn.Linear(n_in, n_out, bias=bias).parameters())
        expect_number(linear_params(n_in, n_out, bias), want, integer=True, rtol=0, atol=0,
                      name=f"linear_params({n_in}, {n_out}, bias={bias})",
                      hint="A weight matrix n_in × n_out, plus one bias per output when bias=True.")
    total = lab08_cnn_params_by_formula()["total"]
    return f"Both formulas agree with PyTorch; the lab 08 CNN has {total:,} trainable parameters."


# ------------------------------------------------------------------------------------------- 13.2
@exercise("13.2", "Training compute and GPU-hours", wrong_answers={
    "forward pass only (2·N·D)": ["return 2 * n_params * n_tokens", None],
    "seconds, not hours": [None, "return flops / (peak_flops * utilisation)"],
    "utilisation ignored (peak speed)": [None, "return flops / peak_flops / 3600"],
})
def check_compute_estimate(training_flops: Any, gpu_hours: Any) -> str:
    expect_callable(training_flops, name="training_flops")
    expect_callable(gpu_hours, name="gpu_hours")
    for n, d in [(110e6, 1.28e11), (175e9, 300e9), (17.5e6, 1e9)]:
        expect_number(training_flops(n, d), 6 * n * d, name=f"training_flops({n:.3g}, {d:.3g})", rtol=1e-9,
                      hint="Each token costs about 2·N FLOPs forward (a multiply and an add per weight) and 4·N "
                           "backward (gradients for the activations and for the weights): 6·N·D in all "
                           "(Kaplan et al. 2020).")
    for flops, peak, util in [(8.4e19, 312e12, 0.4), (3.15e23, 125e12, 0.3), (1e18, 989e12, 0.5)]:
        expect_number(gpu_hours(flops, peak, util), flops / (peak * util) / 3600,
                      name=f"gpu_hours({flops:.3g}, {peak:.3g}, {util})", rtol=1e-9,
                      hint="A GPU really delivers utilisation × peak FLOP/s; FLOPs ÷ that rate is seconds, and an hour "
                           "has 3,600 of them.")
    return f"Right: GPT-3 needs {6 * 175e9 * 300e9:.3g} FLOPs by 6·N·D (Brown et al. 2020 report 3.14e23)."




# ------------------------------------------------------------------------------------------- 13.3
@exercise("13.3", "Chinchilla's compute-optimal model size", wrong_answers={
    "no square root": "n_params = compute_flops / (6 * tokens_per_param)\nn_tokens = tokens_per_param * n_params",
    "2·N·D instead of 6·N·D": "n_params = math.sqrt(compute_flops / (2 * tokens_per_param))\n"
                              "n_tokens = tokens_per_param * n_params",
    "tokens per parameter ignored (20 typed in)": "n_params = math.sqrt(compute_flops / 120)\nn_tokens = 20 * n_params",
}, accepted_answers={
    "tokens first": "n_tokens = math.sqrt(compute_flops * tokens_per_param / 6)\nn_params = n_tokens / tokens_per_param",
})
def check_chinchilla(chinchilla_optimal: Any) -> str:
    from dlcourse.compute import chinchilla_optimal as reference

    expect_callable(chinchilla_optimal, name="chinchilla_optimal")
    for c, r in [(3.14e23, 20), (5.76e23, 20), (1e21, 11.5), (8.4e19, 37)]:
        got = chinchilla_optimal(c, r)
        expect(isinstance(got, tuple) and len(got) == 2,
               "`chinchilla_optimal` should return a pair (n_params, n_tokens).")
        want = reference(c, r)
        for name, g, w in zip(("n_params", "n_tokens"), got, want):
            expect_number(g, w, name=f"{name} for compute_flops={c:.3g}, tokens_per_param={r}", rtol=1e-9,
                          hint="Spend C = 6·N·D with D = r·N: then C = 6·r·N², so N = sqrt(C / (6·r)) and D = r·N.")
    n, d = reference(3.14e23, 20)
    return (f"Right: GPT-3's compute (3.14e23 FLOPs) would be spent best on about {n / 1e9:.0f}B parameters and "
            f"{d / 1e12:.1f}T tokens, not 175B and 0.3T.")


# ------------------------------------------------------------------------------------------- 13.4
@exercise("13.4", "Training and serving memory", wrong_answers={
    "one optimizer state, not the number asked": [
        "per_param = weight_bytes + grad_bytes + master_bytes + state_bytes\nreturn n_params * per_param", None],
    "master weights left out": [
        "per_param = weight_bytes + grad_bytes + optimizer_states * state_bytes\nreturn n_params * per_param", None],
    "keys only, no values": [None, "return n_layers * d_model * bytes_per_number"],
    "16 bytes per parameter typed in": ["return 16 * n_params", None],
})
def check_memory(training_memory_bytes: Any, kv_cache_bytes_per_token: Any) -> str:
    from dlcourse import compute

    expect_callable(training_memory_bytes, name="training_memory_bytes")
    expect_callable(kv_cache_bytes_per_token, name="kv_cache_bytes_per_token")
    for n, kw in [(110e6, {}), (7e9, dict(weight_bytes=4, grad_bytes=4, master_bytes=0, optimizer_states=2,
                                          state_bytes=4)),
                  (1.5e9, dict(weight_bytes=2, grad_bytes=2, master_bytes=4, optimizer_states=1, state_bytes=2)),
                  (3e8, dict(weight_bytes=1, grad_bytes=2, master_bytes=4, optimizer_states=3, state_bytes=4))]:
        expect_number(training_memory_bytes(n, **kw), compute.training_memory_bytes(n, **kw),
                      name=f"training_memory_bytes({n:.3g}{''.join(f', {k}={v}' for k, v in kw.items())})", rtol=1e-9,
                      hint="Per parameter: its 16-bit weight, its gradient, the float32 master copy and each of the "
                           "optimizer's states (Adam keeps two: m and v), each at the bytes given.")
    for layers, d, b in [(12, 768, 2), (96, 12288, 2), (40, 5140, 1), (7, 300, 4)]:
        expect_number(kv_cache_bytes_per_token(layers, d, b), compute.kv_cache_bytes_per_token(layers, d, b),
                      name=f"kv_cache_bytes_per_token({layers}, {d}, {b})", rtol=1e-12,
                      hint="Every layer caches one key AND one value vector of d_model numbers per token: "
                           "2 · layers · d_model · bytes per number.")
    gpt3 = compute.kv_cache_bytes_per_token(96, 12288, 2)
    return (f"Right: 16 bytes per parameter to train in mixed precision, and GPT-3 caches {gpt3 / 1e6:.2f} MB "
            "per token it has seen.")


# ------------------------------------------------------------------------------------------- 13.5
@exercise("13.5", "Tokens per second and the price of a million tokens", wrong_answers={
    "6·N FLOPs per token (training, not generating)":
        "tokens_per_s = peak_flops * utilisation / (6 * n_params)\n"
        "cost = price_per_gpu_hour / 3600 / tokens_per_s * 1e6",
    "cost per token, not per million": "tokens_per_s = peak_flops * utilisation / (2 * n_params)\n"
                                       "cost = price_per_gpu_hour / 3600 / tokens_per_s",
    "hours, not seconds": "tokens_per_s = peak_flops * utilisation / (2 * n_params)\n"
                          "cost = price_per_gpu_hour / tokens_per_s * 1e6",
})
def check_serving_cost(serving_cost: Any) -> str:
    from dlcourse.compute import serving_cost_per_million_tokens as reference

    expect_callable(serving_cost, name="serving_cost")
    for n, peak, util, price in [(7e9, 989e12, 0.3, 3.0), (175e9, 312e12, 0.45, 2.2), (1.5e9, 125e12, 0.1, 0.9)]:
        got = serving_cost(n, peak, util, price)
        expect(isinstance(got, tuple) and len(got) == 2,
               "`serving_cost` should return a pair (tokens_per_s, usd_per_million_tokens).")
        want = reference(n, peak_flops=peak, utilisation=util, price_per_gpu_hour=price)
        for name, g, w in zip(("tokens_per_s", "usd_per_million_tokens"), got, want):
            expect_number(g, w, name=f"{name} for N={n:.3g}, peak {peak:.3g}, utilisation {util}, ${price}/h",
                          rtol=1e-9,
                          hint="A generated token is one forward pass: about 2·N FLOPs. The GPU sustains "
                               "utilisation × peak FLOP/s, and a GPU-hour has 3,600 seconds; a million tokens take "
                               "1e6 / tokens_per_s of them.")
    return "Right: a generated token costs one forward pass, 2·N FLOPs, a third of a training token."


# ------------------------------------------------------------------------------------------- 13.6
@exercise("13.6", "Energy at the facility, and its CO2", wrong_answers={
    "PUE left out (GPU boards only)": ["return board_watts * n_gpus * hours / 1000", None],
    "watt-hours, not kWh": ["return board_watts * n_gpus * hours * pue", None],
    "kg from grams forgotten": [None, "return kwh * grid_g_per_kwh"],
}, accepted_answers={
    "kW first": ["kw = board_watts / 1000 * n_gpus\nreturn kw * pue * hours", None],
})
def check_energy(facility_kwh: Any, co2_kg: Any) -> str:
    expect_callable(facility_kwh, name="facility_kwh")
    expect_callable(co2_kg, name="co2_kg")
    for w, n, h, pue in [(700, 8, 24.5, 1.2), (400, 1, 187, 1.58), (300, 1024, 355, 1.1)]:
        expect_number(facility_kwh(w, n, h, pue), w * n * h * pue / 1000,
                      name=f"facility_kwh({w}, {n}, {h}, {pue})", rtol=1e-9,
                      hint="The boards draw watts × GPUs for the hours (watt-hours; ÷ 1000 for kWh), and the "
                           "facility draws PUE times what its IT equipment does.")
    for kwh, g in [(226.0, 400), (5e6, 35), (1.0, 820)]:
        expect_number(co2_kg(kwh, g), kwh * g / 1000, name=f"co2_kg({kwh}, {g})", rtol=1e-9,
                      hint="kWh × grams of CO2 per kWh gives grams; ÷ 1000 for kilograms.")
    return "Right: the facility's meter, not the GPU's, is what the grid and the climate see."
