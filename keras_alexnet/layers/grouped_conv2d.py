"""A grouped `Conv2D` that runs each group as its own convolution where faster."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_alexnet._validation import check_choice
from keras_alexnet.layers._stateless import cast_integers
from keras_alexnet.layers.channels_last import fast_convolution

IMPLEMENTATIONS = ("auto", "native", "split")


@keras.saving.register_keras_serializable(package="keras_alexnet")
class GroupedConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` with `groups > 1`, fast on every backend.

    Computes what `keras.layers.Conv2D(groups=groups)` computes, with its
    arguments and kernel layout `(kernel_h, kernel_w, in_channels // groups,
    filters)`, so weights move between the two unchanged: the paper's two-GPU
    split of conv2, conv4 and conv5. Where the native grouped convolution or its
    gradient is slow (JAX, TensorFlow on CPU) each group is convolved on its own
    and the results concatenated; docs/architecture.md has the measurements.

    Args:
        filters: the number of output channels, a multiple of `groups`.
        kernel_size: an integer or a pair of integers.
        groups: the number of channel groups, >= 1, dividing the input and output
            channels.
        implementation: `"auto"` (the faster way measured for the backend and
            device), `"native"` (Keras' grouped convolution) or `"split"` (one
            convolution per group, concatenated). Saved in the config.
        **kwargs: every other `keras.layers.Conv2D` argument.

    Example:

    >>> import numpy as np
    >>> layer = GroupedConv2D(256, 5, groups=2, padding="same")
    >>> layer(np.zeros((1, 27, 27, 96), "float32")).shape
    (1, 27, 27, 256)
    >>> layer.kernel.shape
    (5, 5, 48, 256)
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        *args: Any,
        groups: int = 1,
        implementation: str = "auto",
        **kwargs: Any,
    ) -> None:
        # `groups` is named, not left in **kwargs, so that the signature (and the
        # API reference generated from it) shows the layer's main argument.
        super().__init__(filters, kernel_size, *args, groups=groups, **kwargs)
        self.implementation = check_choice(
            "implementation", implementation, IMPLEMENTATIONS
        )

    def build(self, input_shape):
        super().build(input_shape)
        if self.implementation == "auto":
            self._split = self.groups > 1 and default_implementation() == "split"
        else:
            self._split = self.groups > 1 and self.implementation == "split"

    def convolution_op(self, inputs, kernel):
        inputs = cast_integers(self, inputs)
        if not self._split:
            outputs = fast_convolution(self, inputs, kernel)
            if outputs is None:
                return super().convolution_op(inputs, kernel)
            return outputs
        channel_axis = -1 if self.data_format == "channels_last" else 1
        input_groups = ops.split(inputs, self.groups, axis=channel_axis)
        kernel_groups = ops.split(kernel, self.groups, axis=-1)
        outputs = [
            ops.conv(
                x,
                k,
                strides=list(self.strides),
                padding=self.padding,
                dilation_rate=self.dilation_rate,
                data_format=self.data_format,
            )
            for x, k in zip(input_groups, kernel_groups, strict=True)
        ]
        return ops.concatenate(outputs, axis=channel_axis)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["implementation"] = self.implementation
        return config


def default_implementation() -> str:
    """Returns what `implementation="auto"` runs here: `"native"` or `"split"`."""
    # Measured in benchmarks/grouped_conv.py (CPU) and benchmarks/gpu.py (an
    # H100); see docs/performance.md. XLA splits faster on CPU and GPU alike:
    # the paper's network ran 1.2 (training) to 1.6 (bfloat16 inference) times
    # as fast split on the H100. TensorFlow on GPUs was not measured.
    backend = keras.backend.backend()
    if backend == "jax":
        return "split"
    if backend == "tensorflow":
        import tensorflow as tf

        return "native" if tf.config.list_logical_devices("GPU") else "split"
    return "native"
