"""A layer that does a checkpoint's input preprocessing inside the model."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from keras_alexnet._data_format import standardize_data_format
from keras_alexnet._validation import check_choice, check_float
from keras_alexnet.layers._stateless import build_at_instantiation

# The channel orders a model's first layer may expect.
CHANNEL_ORDERS = ("rgb", "bgr")


@keras.saving.register_keras_serializable(package="keras_alexnet")
class ImagePreprocessing(keras.layers.Layer):
    """Maps RGB pixels in [0, 255] to a checkpoint's input: `(x' * scale - mean) / std`.

    `x'` is `x` with its channels reversed when `channel_order="bgr"` (Caffe
    models). `AlexNet(include_preprocessing=True)` puts this layer first, with the
    constants of the chosen checkpoint, so the model takes raw images. It
    computes in float32 (float64 under a float64 policy) whatever the input's
    dtype (uint8 images included) and returns the policy's compute dtype.

    Args:
        channel_order: `"rgb"` or `"bgr"`, the order the model's first layer expects.
        scale: multiplies the pixel values first (1/255 for torchvision).
        mean: three numbers subtracted after scaling, in the model's channel order.
        std: three positive numbers dividing the result, in the model's order.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Example:

    >>> import numpy as np
    >>> layer = ImagePreprocessing("rgb", 1 / 255, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    >>> np.asarray(layer(np.full((1, 1, 1, 3), 255.0, "float32"))).ravel()
    array([1., 1., 1.], dtype=float32)
    """

    def __init__(
        self,
        channel_order: str = "rgb",
        scale: float = 1.0,
        mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
        std: tuple[float, float, float] = (1.0, 1.0, 1.0),
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_choice("channel_order", channel_order, CHANNEL_ORDERS)
        for name, value in (("mean", mean), ("std", std)):
            if np.shape(value) != (3,) or not np.all(np.isfinite(value)):
                raise ValueError(
                    f"`{name}` should be three finite numbers. "
                    f"Received: {name}={value!r}"
                )
        if np.any(np.asarray(std) <= 0):
            raise ValueError(f"`std` should be positive. Received: std={std!r}")
        self.channel_order = channel_order
        self.scale = check_float("scale", scale, minimum=0.0, exclusive_minimum=True)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.data_format = standardize_data_format(data_format)
        build_at_instantiation(self)

    def call(self, inputs):
        # Only Python numbers meet the tensor here: a NumPy constant cannot be
        # mixed with a CUDA tensor under the PyTorch backend, and a tensor made
        # per call would be a host-to-device copy. Each channel is one
        # multiply-add, `x * (scale / std) - mean / std`, in float32 (uint8
        # images and float16 policies alike) or float64 under a float64
        # policy; the split also reverses the channels for `bgr` at no cost.
        channel_axis = -1 if self.data_format == "channels_last" else -3
        work_dtype = "float64" if self.compute_dtype == "float64" else "float32"
        x = ops.cast(inputs, work_dtype)
        channels = ops.split(x, 3, axis=channel_axis)
        if self.channel_order == "bgr":
            channels = channels[::-1]
        outputs = [
            channel * (self.scale / std) - mean / std
            for channel, mean, std in zip(channels, self.mean, self.std, strict=True)
        ]
        return ops.cast(ops.concatenate(outputs, axis=channel_axis), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "channel_order": self.channel_order,
                "scale": self.scale,
                "mean": self.mean,
                "std": self.std,
                "data_format": self.data_format,
            }
        )
        return config
