"""Adaptive average pooling, as `torch.nn.AdaptiveAvgPool2d`."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_alexnet._data_format import standardize_data_format
from keras_alexnet._validation import is_integer
from keras_alexnet.layers._stateless import build_at_instantiation, cast_integers


@keras.saving.register_keras_serializable(package="keras_alexnet")
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """Averages a feature map down to a fixed `output_size`, whatever its size.

    Output cell `i` along an axis of length `L` averages the input cells
    `floor(i * L / out)` to `ceil((i + 1) * L / out) - 1`, the bins of
    `torch.nn.AdaptiveAvgPool2d`, so torchvision's AlexNet classifier sees the same
    6x6 map from any input of at least 63x63 pixels. Inputs that already have the
    output size pass through unchanged. Integer inputs are averaged in the
    policy's dtype; the layer has no weights and is built when made.

    Args:
        output_size: an integer or a pair `(height, width)` of positive integers.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Example:

    >>> import numpy as np
    >>> AdaptiveAveragePooling2D(6)(np.ones((2, 13, 13, 4), "float32")).shape
    (2, 6, 6, 4)
    """

    def __init__(
        self,
        output_size: int | tuple[int, int],
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        size: Any = output_size
        if is_integer(size):
            size = (size, size)
        if (
            not isinstance(size, (tuple, list))
            or len(size) != 2
            or not all(is_integer(s) and s > 0 for s in size)
        ):
            raise ValueError(
                "`output_size` should be a positive integer or a pair of them. "
                f"Received: output_size={size!r}"
            )
        self.output_size = (int(size[0]), int(size[1]))
        self.data_format = standardize_data_format(data_format)
        build_at_instantiation(self)

    def call(self, inputs):
        height_axis = 1 if self.data_format == "channels_last" else 2
        x = _pool_axis(cast_integers(self, inputs), height_axis, self.output_size[0])
        return _pool_axis(x, height_axis + 1, self.output_size[1])

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        height_axis = 1 if self.data_format == "channels_last" else 2
        shape[height_axis : height_axis + 2] = self.output_size
        return tuple(shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {"output_size": self.output_size, "data_format": self.data_format}
        )
        return config


def _pool_axis(x: Any, axis: int, output_size: int) -> Any:
    length = x.shape[axis]
    if length == output_size:
        return x
    if length is None:
        length = ops.shape(x)[axis]
    bins = []
    for i in range(output_size):
        start = (i * length) // output_size
        end = -((-(i + 1) * length) // output_size)  # ceil division
        window = ops.take(x, ops.arange(start, end), axis=axis)
        # A sum over the count, not `ops.mean`: Keras' PyTorch and JAX means
        # compute float64 in float32. The count stays a Python number (no copy
        # to the device) unless the size is known only when run.
        count = end - start
        if not isinstance(count, int):
            count = ops.cast(count, x.dtype)
        bins.append(ops.sum(window, axis=axis, keepdims=True) / count)
    return ops.concatenate(bins, axis=axis)
