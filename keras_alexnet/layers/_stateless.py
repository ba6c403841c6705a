"""What the package's layers share: stateless ones built when made, integers cast."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def build_at_instantiation(layer: keras.layers.Layer) -> None:
    """Marks a stateless `layer` built, as Keras' own stateless layers are.

    A subclass that defines its own `build` is left unbuilt, to build on its
    first call (Keras' rule, checked by `run_layer_test`).
    """
    build_at_init = getattr(layer, "_build_at_init", None)
    if build_at_init is not None:
        build_at_init()  # what Keras' own stateless layers call
    elif type(layer).build is keras.layers.Layer.build:
        layer.built = True


def cast_integers(layer: keras.layers.Layer, inputs: Any) -> Any:
    """Returns `inputs` cast to `layer.compute_dtype` if they are not floats.

    Keras' autocast casts float inputs only; like `keras.layers.Dense` and
    `Rescaling`, the layers compute integer (and boolean) inputs in the policy's
    dtype instead of failing or returning float32 on some backends.
    """
    if keras.backend.is_float_dtype(keras.backend.standardize_dtype(inputs.dtype)):
        return inputs
    return ops.cast(inputs, layer.compute_dtype)
