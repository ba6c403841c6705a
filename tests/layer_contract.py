"""The Keras layer contract, checked the same way for every layer of the package.

`check_layer_contract` builds a layer from its arguments and checks what every
Keras layer owes its users: its config rebuilds an equal layer computing the
same outputs, a model holding it saves to `.keras` and loads back (without
`custom_objects`: `import keras_alexnet` registers it) computing the same
outputs, and under a mixed-precision policy it computes in the low precision,
returns finite values and stays close to float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from tests.backend_utils import to_numpy


def check_layer_contract(
    make_layer: Callable[..., keras.layers.Layer],
    x: np.ndarray,
    tmp_path: Any,
    mixed_rtol: float = 2e-2,
) -> None:
    """Checks config round trip, `.keras` save and mixed precision of a layer.

    Args:
        make_layer: returns a new layer; keyword arguments (`dtype`) pass through.
        x: a float32 input batch.
        tmp_path: a folder for the `.keras` file.
        mixed_rtol: how far the mixed_bfloat16 outputs may be from float32's,
            relative to the largest float32 output.
    """
    layer = make_layer()
    expected = to_numpy(layer(x))

    # 1. The config rebuilds the layer: same config, same outputs.
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_numpy(clone(x)), expected, rtol=1e-6, atol=1e-6)

    # 2. A .keras archive holding it loads back with no custom_objects.
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, make_layer()(inputs))
    model.layers[-1].set_weights(layer.get_weights())
    path = f"{tmp_path}/contract.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.layers[-1]) is type(layer)
    assert loaded.layers[-1].get_config() == model.layers[-1].get_config()
    np.testing.assert_allclose(to_numpy(loaded(x)), expected, rtol=1e-6, atol=1e-6)

    # 3. Mixed precision: computes in bfloat16, finite, close to float32.
    mixed = make_layer(dtype=keras.DTypePolicy("mixed_bfloat16"))
    mixed.build(x.shape)
    mixed.set_weights(layer.get_weights())
    outputs = mixed(keras.ops.cast(x, "bfloat16"))
    assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
    outputs = to_numpy(keras.ops.cast(outputs, "float32"))
    assert np.all(np.isfinite(outputs))
    scale = max(float(np.max(np.abs(expected))), 1e-6)
    assert np.max(np.abs(outputs - expected)) <= mixed_rtol * scale
