"""What the lab 05 checks share: a tiny seeded network, private copies, float32-aware tolerances,
and the sentences for a result of the wrong form."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlcourse import mlp as ref
from dlcourse.check import Mismatch, expect

GRADIENT_TOLERANCE = 1e-5  # a right backward pass gives ~1e-7; the typical mistakes give 1e-2 to 1


def _tiny_network(n_in: int = 12, n_hidden: int = 8, n_out: int = 10, n: int = 6, seed: int = 5):
    """Float64 parameters with non-zero biases (so a forgotten bias shows), inputs and labels."""
    rng = np.random.default_rng(seed)
    params = ref.init_params(n_in, n_hidden, n_out, seed=seed, dtype=np.float64)
    params["b1"] = 0.1 * rng.standard_normal(n_hidden)
    params["b2"] = 0.1 * rng.standard_normal(n_out)
    return params, rng.standard_normal((n, n_in)), rng.integers(0, n_out, size=n)


def _copies(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in params.items()}


def _tolerance(*values: Any) -> dict[str, float]:
    """rtol and atol for comparing an answer computed from (or returned as) `values`: float32 (or
    less) keeps about 7 digits, float64 about 16, so any float32 among them gets float32's tolerance."""
    def low(value: Any) -> bool:
        dtype = getattr(value, "dtype", None)
        return dtype is not None and np.dtype(dtype).kind == "f" and np.dtype(dtype).itemsize <= 4

    return {"rtol": 1e-4, "atol": 1e-6} if any(low(v) for v in values) else {"rtol": 1e-6, "atol": 1e-9}


def _pair(result: Any, name: str, what: str) -> tuple[Any, Any]:
    """The two values a function must return, with a sentence when it returned something else."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        got = f"{len(result)} values" if isinstance(result, (tuple, list)) else f"a {type(result).__name__}"
        raise Mismatch(f"`{name}` should return two values, {what}, but it returned {got}.",
                       f"End your function with `return {what.strip('()')}`.")
    return result[0], result[1]


def _expect_param_dict(value: Any, name: str, like: dict[str, np.ndarray]) -> None:
    """A dict with the keys W1, b1, W2, b2, each array shaped like its parameter."""
    if not isinstance(value, dict):
        raise Mismatch(f"`{name}` should be a dict with keys {', '.join(ref.PARAM_NAMES)}, but it is a {type(value).__name__}.",
                       'Build it as {"W1": ..., "b1": ..., "W2": ..., "b2": ...}.')
    missing = [k for k in ref.PARAM_NAMES if k not in value]
    expect(not missing, f"`{name}` has no entry for {', '.join(missing)}.",
           "It needs one entry per parameter: W1, b1, W2 and b2.")
    for key in ref.PARAM_NAMES:
        shape = np.shape(value[key])
        expect(shape == like[key].shape, f"`{name}['{key}']` has shape {shape}, but {key} has shape {like[key].shape}.",
               "A gradient (or velocity) always has its parameter's shape. A transposed shape means the factors "
               "of a matrix product are in the wrong order; a missing axis means you summed over the wrong one.")
