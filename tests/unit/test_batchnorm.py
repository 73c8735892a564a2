"""The NumPy BatchNormalization reference matches keras.layers.BatchNormalization to float32
precision, in training and inference mode, with non-default momentum and epsilon."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dlcourse.batchnorm import batchnorm_forward, keras_batchnorm  # noqa: E402


def _case(n: int, features: int, seed: int):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, features)) * rng.uniform(0.5, 3.0, features) + rng.uniform(-4, 4, features)).astype("float32")
    gamma = rng.uniform(0.5, 2.0, features).astype("float32")
    beta = rng.normal(size=features).astype("float32")
    return x, gamma, beta, rng.normal(size=features).astype("float32"), rng.uniform(0.5, 2.0, features).astype("float32")


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("n, features, momentum, epsilon", [(7, 5, 0.8, 0.01), (11, 3, 0.99, 1e-3)])
def test_numpy_reference_matches_keras(training, n, features, momentum, epsilon) -> None:
    pytest.importorskip("keras")
    case = _case(n, features, seed=n)
    ours = batchnorm_forward(*case, training=training, momentum=momentum, epsilon=epsilon)
    theirs = keras_batchnorm(*case, training=training, momentum=momentum, epsilon=epsilon)
    for got, want in zip(ours, theirs):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_training_normalises_each_feature_and_inference_keeps_the_statistics() -> None:
    x, gamma, beta, mean, var = _case(9, 4, seed=1)
    y, new_mean, new_var = batchnorm_forward(x, gamma, beta, mean, var, training=True, momentum=0.7, epsilon=0.0)
    np.testing.assert_allclose(y.mean(axis=0), beta, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=0), np.abs(gamma), rtol=1e-4)
    np.testing.assert_allclose(new_var, 0.7 * var + 0.3 * x.var(axis=0), rtol=1e-6)  # biased variance
    _, same_mean, same_var = batchnorm_forward(x, gamma, beta, mean, var, training=False)
    assert np.array_equal(same_mean, mean) and np.array_equal(same_var, var)
