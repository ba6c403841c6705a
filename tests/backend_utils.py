"""Helpers that reach past `keras.ops` into the active backend, for tests only."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np


def to_numpy(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def input_gradient(fn: Callable, x: np.ndarray, upstream: np.ndarray) -> np.ndarray:
    """Returns d(sum(fn(x) * upstream))/dx, computed by the backend's autodiff."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(fn(xt) * upstream)
        return tape.gradient(loss, xt).numpy()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        return np.asarray(jax.grad(lambda v: jnp.sum(fn(v) * upstream))(jnp.asarray(x)))
    if backend == "torch":
        import torch

        xt = torch.tensor(x, requires_grad=True)
        loss = torch.sum(fn(xt) * torch.tensor(upstream))
        loss.backward()
        return xt.grad.numpy()
    raise NotImplementedError(backend)
