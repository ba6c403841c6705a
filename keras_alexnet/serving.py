"""A compiled inference function for serving a model from a Python process.

`serving_function` traces the model once, for one input shape, with the forms
of its layers that TensorFlow runs fastest on a CPU; the function it returns
answers without Keras' per-call work (`predict_on_batch` converts and checks
its inputs, and runs through a distribution strategy).
docs/serving.md has the measurements behind each choice.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import keras

from keras_alexnet._validation import check_int

__all__ = ["serving_function"]


def serving_function(model: keras.Model, batch_size: int | None = 1) -> Any:
    """Returns a compiled function that runs `model` for inference, fast on CPU.

    The function is traced once, for inputs of shape `(batch_size,
    *model.input_shape[1:])` and float32, with `training=False`: each
    `LocalResponseNormalization` runs compiled by XLA, as in
    `predict_on_batch` (a plain `tf.function` of the model would trace
    TensorFlow's slower LRN kernel); the rest runs TensorFlow's own kernels,
    without `predict_on_batch`'s per-call work. Its outputs equal
    `model(images, training=False)` to float32 rounding. It reads the model's
    variables at every call, so it follows later weight changes.

    Args:
        model: a Keras model with one input (for example `AlexNet(...)`),
            under the TensorFlow backend.
        batch_size: the batch size the function accepts, >= 1; `None` for any
            (XLA then compiles LRN once per new batch size).

    Returns:
        A `tf.types.experimental.ConcreteFunction`: call it with one float32
        array or tensor of the traced shape; it returns a `tf.Tensor`
        (`.numpy()` for an array).

    Raises:
        ValueError: a backend other than TensorFlow, a model with several
            inputs, or a bad `batch_size`.
        TypeError: `model` is not a `keras.Model`.

    Example:

    ```python
    import numpy as np
    from keras_alexnet import AlexNet, serving_function

    model = AlexNet(weights="imagenet", include_preprocessing=True)
    predict = serving_function(model, batch_size=1)
    probabilities = predict(np.zeros((1, 227, 227, 3), "float32")).numpy()
    ```
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` should be a keras.Model. Received: model={model!r}")
    batch_size = check_int("batch_size", batch_size, minimum=1, allow_none=True)
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "serving_function compiles with TensorFlow: set "
            "KERAS_BACKEND=tensorflow before importing Keras. Received: backend "
            f"{keras.backend.backend()!r}"
        )
    try:
        inputs = list(model.inputs or ())
    except AttributeError:  # a subclassed model never called
        inputs = []
    if len(inputs) != 1:
        raise ValueError(
            "`model` should have one defined input (a functional or Sequential "
            f"model). Received: a model with {len(inputs)} known inputs"
        )
    import tensorflow as tf

    shape = (batch_size, *tuple(inputs[0].shape)[1:])
    function = tf.function(
        lambda images: model(images, training=False),
        input_signature=[tf.TensorSpec(shape, tf.float32, name="images")],
        autograph=False,
    )
    with _serving_forms(model):
        return function.get_concrete_function()


@contextlib.contextmanager
def _serving_forms(model: keras.Model) -> Iterator[None]:
    """Traces the model's layers in their fastest serving forms; restores them."""
    from keras_alexnet.layers import LocalResponseNormalization

    patched: list[tuple[Any, str]] = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if (
            isinstance(layer, LocalResponseNormalization)
            and getattr(layer, "_xla", None) is not None
        ):
            # The XLA function that `predict_on_batch` calls; a user's graph
            # gets TensorFlow's LRN kernel, 4.5 to 6.4 times as slow.
            layer.call = types.MethodType(_lrn_by_xla, layer)  # type: ignore[method-assign]
            patched.append((layer, "call"))
    try:
        yield
    finally:
        for layer, name in patched:
            delattr(layer, name)  # the class's method again


def _lrn_by_xla(layer: Any, inputs: Any, training: Any = None) -> Any:
    if layer._any_image_size or keras.backend.standardize_dtype(inputs.dtype) not in (
        "float32",
        "float16",
        "bfloat16",
    ):
        # A model for any image size would compile once per image; float64
        # and integers take the layer's own exact path.
        return type(layer).call(layer, inputs, training=training)
    return layer._xla(inputs)
