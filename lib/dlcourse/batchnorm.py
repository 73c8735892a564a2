"""Batch normalization (Ioffe & Szegedy 2015) in NumPy, computed the way
``keras.layers.BatchNormalization`` computes it, and the Keras layer run on the same numbers
(lab 06). tests/unit/test_batchnorm.py holds the two to float32 precision.

Keras's conventions, which differ from PyTorch's:

* the batch variance is the **biased** one (divide by n), both to normalise and to update the
  running variance (PyTorch updates its running variance with the unbiased, n − 1, estimate);
* ``momentum`` is the weight of the **old** running value: ``new = momentum · old + (1 − momentum) · batch``,
  default 0.99 (PyTorch's ``momentum=0.1`` is the weight of the batch);
* ``epsilon`` (default 1e-3) is added to the variance inside the square root.

Keras is imported inside `keras_batchnorm` only: importing this module stays light.
"""

from __future__ import annotations

import numpy as np

BatchNormResult = tuple[np.ndarray, np.ndarray, np.ndarray]  # (y, running_mean, running_var)


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
                      running_var: np.ndarray, training: bool, momentum: float = 0.99,
                      epsilon: float = 1e-3) -> BatchNormResult:
    """One BatchNormalization call on a batch ``x`` of shape (n, features).

    Training: normalise each feature with the batch's mean and biased variance, and move the
    running statistics towards them. Inference: normalise with the running statistics, which
    come back unchanged. Returns ``(y, running_mean, running_var)`` as new arrays."""
    x = np.asarray(x)
    running_mean, running_var = np.array(running_mean, copy=True), np.array(running_var, copy=True)
    if training:
        mean, var = x.mean(axis=0), x.var(axis=0)  # over the batch axis; var divides by n
        running_mean = momentum * running_mean + (1.0 - momentum) * mean
        running_var = momentum * running_var + (1.0 - momentum) * var
    else:
        mean, var = running_mean, running_var
    y = gamma * (x - mean) / np.sqrt(var + epsilon) + beta
    return y, running_mean, running_var


def keras_batchnorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
                    running_var: np.ndarray, training: bool, momentum: float = 0.99,
                    epsilon: float = 1e-3) -> BatchNormResult:
    """The same call made by a fresh ``keras.layers.BatchNormalization(momentum, epsilon)`` that
    holds the given γ, β and running statistics; returns ``(y, moving_mean, moving_variance)``
    as float32 NumPy arrays."""
    import keras

    x = np.asarray(x, dtype="float32")
    layer = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon)
    layer.build(x.shape)
    layer.set_weights([np.asarray(w, dtype="float32") for w in (gamma, beta, running_mean, running_var)])
    y = np.asarray(layer(x, training=training))
    return y, np.asarray(layer.moving_mean), np.asarray(layer.moving_variance)
