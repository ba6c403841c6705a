"""The Keras layer contract, checked the same way for every layer of the package.

`check_layer_contract` builds a layer from its arguments and checks what every
Keras layer owes its users: its config rebuilds an equal layer computing the
same outputs, a model holding it saves to `.keras` and loads back (without
`custom_objects`: `import keras_alexnet` registers it) computing the same
outputs, under a mixed-precision policy it computes in the low precision,
returns finite values and stays close to float32, it computes integer inputs in
its policy's dtype, and a layer without weights is built when made, as Keras'
stateless layers are. (Every float policy against float64 references:
`test_layers.test_every_dtype_matches_a_float64_reference`.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
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
    """Checks config round trip, `.keras` save and the dtypes of a layer.

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

    # 4. Integer inputs are computed in the policy's dtype, as keras.layers.Dense
    # and Rescaling compute them.
    integers = np.rint(x).astype("int32")
    outputs = layer(integers)
    assert keras.backend.standardize_dtype(outputs.dtype) == layer.compute_dtype
    np.testing.assert_allclose(
        to_numpy(outputs), to_numpy(layer(integers.astype("float32"))), rtol=1e-6
    )

    # 5. A layer without weights is built when made.
    if not layer.weights:
        assert make_layer().built


@contextlib.contextmanager
def dtype_scope(dtype: str) -> Iterator[None]:
    """Lets the backend compute in `dtype`: JAX needs x64 enabled for float64."""
    if dtype != "float64" or keras.backend.backend() != "jax":
        yield
        return
    import jax

    # `jax.enable_x64` from JAX 0.8, `jax.experimental.enable_x64` before.
    enable_x64 = getattr(jax, "enable_x64", None)
    if enable_x64 is None:
        from jax.experimental import enable_x64
    with enable_x64():
        yield
