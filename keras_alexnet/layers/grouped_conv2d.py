"""A grouped `Conv2D` that runs each group as its own convolution where faster."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_alexnet.layers.channels_last import Conv2D

IMPLEMENTATIONS = ("auto", "native", "split")


@keras.saving.register_keras_serializable(package="keras_alexnet")
class GroupedConv2D(Conv2D):
    """`keras.layers.Conv2D` with `groups > 1`, fast on every backend.

    The paper split conv2, conv4 and conv5 over two GPUs, each half seeing only
    the channels on its own GPU. Keras' `Conv2D(groups=2)` computes exactly that,
    and this layer keeps its arguments and its kernel layout
    `(kernel_h, kernel_w, in_channels // groups, filters)`, so weights move between
    the two and between backends unchanged. What differs is how it runs. On CPU,
    XLA (JAX) runs a grouped convolution (`feature_group_count`) two to five
    times as slowly as an ungrouped one of twice the work, and TensorFlow, fast
    forward, takes 1.4 to 6 times as long for its gradients; so under JAX and
    TensorFlow on CPU the inputs and the kernel are split into groups, convolved
    one by one and concatenated, which makes two groups cost about half of one
    (`benchmarks/grouped_conv.py`, `docs/performance.md`). JAX splits on GPUs
    too: on an H100, XLA's grouped convolution made AlexNet's inference 1.3 to
    1.6 times slower than the split (`benchmarks/gpu.py`). PyTorch (CPU and
    GPU) and TensorFlow on GPUs run the native grouped convolution, under
    PyTorch on channels-last views without Keras' layout copies (it is
    keras-alexnet's `Conv2D`).
    `implementation` pins either way; it is saved in the layer's config.

    Args:
        filters: the number of output channels, a multiple of `groups`.
        kernel_size: an integer or a pair of integers.
        groups: the number of channel groups, >= 1, dividing the input and output
            channels.
        implementation: `"auto"` (the faster way measured for this backend and
            device, chosen when the layer is built), `"native"` (Keras'
            `Conv2D` grouped convolution) or `"split"` (one convolution per
            group, concatenated).
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
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"`implementation` should be one of {IMPLEMENTATIONS}. "
                f"Received: implementation={implementation!r}"
            )
        self.implementation = implementation

    def build(self, input_shape):
        super().build(input_shape)
        if self.implementation == "auto":
            self._split = self.groups > 1 and default_implementation() == "split"
        else:
            self._split = self.groups > 1 and self.implementation == "split"

    def convolution_op(self, inputs, kernel):
        if not self._split:
            return super().convolution_op(inputs, kernel)
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
