"""Fast paths for Keras' `Conv2D` and `MaxPooling2D`, chosen when called.

`with_fast_path` sets one Keras layer to take them, and the layer stays Keras'
own class: a saved model loads in plain Keras, and a `.weights.h5` file's
groups keep Keras' names. Under PyTorch channels-last inputs run as views,
under JAX on GPUs conv1 runs by space-to-depth; elsewhere Keras' computation
runs. docs/architecture.md says why and what was measured.
"""

from __future__ import annotations

import types
from typing import Any

import keras

from keras_alexnet.layers._stateless import cast_integers


def with_fast_path(layer: Any) -> Any:
    """Returns `layer`, set to run by a fast path where one applies when called.

    `layer` stays Keras' own `Conv2D` or `MaxPooling2D`, with Keras' config, so a
    model saved with it loads in plain Keras (where it runs Keras' way). Each
    call takes the fast path that applies to it (`fast_convolution`,
    `torch_max_pool2d`), else Keras' own computation.

    Args:
        layer: a `keras.layers.Conv2D` or `keras.layers.MaxPooling2D` (not a
            subclass: those choose their own computation).

    Returns:
        The same layer.

    Raises:
        TypeError: `layer` is of another class.

    Example:

    >>> import keras, numpy as np
    >>> conv = with_fast_path(keras.layers.Conv2D(8, 3, padding="same"))
    >>> conv(np.zeros((1, 5, 5, 3), "float32")).shape
    (1, 5, 5, 8)
    """
    # An attribute of this one instance, not a subclass: the saved class stays
    # Keras' (and so do the group names of a .weights.h5 file, `conv2d`).
    if type(layer) is keras.layers.Conv2D:
        layer.convolution_op = types.MethodType(_convolution_op, layer)
    elif type(layer) is keras.layers.MaxPooling2D:
        layer.call = types.MethodType(_max_pooling_call, layer)
    else:
        raise TypeError(
            "`layer` should be a keras.layers.Conv2D or keras.layers.MaxPooling2D. "
            f"Received: layer={layer!r}"
        )
    return layer


def fast_convolution(layer: Any, inputs: Any, kernel: Any) -> Any:
    """`layer.convolution_op(inputs, kernel)` by a fast path, or None if none applies.

    Under JAX on GPUs a "valid" convolution of stride > 1 over one group
    (AlexNet's conv1) runs by space-to-depth (`space_to_depth_conv2d`); under
    PyTorch, channels-last inputs go to cuDNN (or oneDNN) as channels-last
    views (`torch_conv2d`). Both compute the same sums of products.
    """
    if _by_space_to_depth(layer, inputs, kernel):
        return space_to_depth_conv2d(inputs, kernel, layer.strides[0])
    return torch_conv2d(
        inputs,
        kernel,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
        data_format=layer.data_format,
    )


def _convolution_op(layer: Any, inputs: Any, kernel: Any) -> Any:
    inputs = cast_integers(layer, inputs)
    outputs = fast_convolution(layer, inputs, kernel)
    if outputs is None:
        return type(layer).convolution_op(layer, inputs, kernel)
    return outputs


def _max_pooling_call(layer: Any, inputs: Any) -> Any:
    outputs = torch_max_pool2d(
        inputs,
        pool_size=layer.pool_size,
        strides=layer.strides,
        padding=layer.padding,
        data_format=layer.data_format,
    )
    if outputs is None:
        return type(layer).call(layer, inputs)
    return outputs


def _by_space_to_depth(layer: Any, inputs: Any, kernel: Any) -> bool:
    strides = tuple(layer.strides)
    return (
        use_space_to_depth()
        and layer.data_format == "channels_last"
        and layer.padding == "valid"
        and strides[0] == strides[1] > 1
        and tuple(layer.dilation_rate) == (1, 1)
        and kernel.shape[0] == kernel.shape[1] >= strides[0]
        and len(inputs.shape) == 4
        and None not in tuple(inputs.shape[1:])
        and inputs.shape[-1] == kernel.shape[2]  # one group
    )


# Legacy: keras-alexnet 0.1 saved these layers as look-alike subclasses registered
# as "keras_alexnet>Conv2D" and "keras_alexnet>MaxPooling2D", with Keras' configs.
# Their files still load (with keras_alexnet imported), as Keras' own layers.
LEGACY_CLASS_NAMES = {
    "keras_alexnet>Conv2D": keras.layers.Conv2D,
    "keras_alexnet>MaxPooling2D": keras.layers.MaxPooling2D,
}
keras.saving.get_custom_objects().update(LEGACY_CLASS_NAMES)


def use_space_to_depth() -> bool:
    """Whether strided convolutions (AlexNet's conv1) run as space-to-depth.

    Yes under JAX on GPUs only, where it was measured faster
    (docs/architecture.md).
    """
    if keras.backend.backend() != "jax":
        return False
    import jax

    return bool(jax.default_backend() == "gpu")


def space_to_depth_conv2d(inputs: Any, kernel: Any, stride: int) -> Any:
    """A "valid" convolution of stride `s` as a stride-1 one on s x s blocks.

    Each s x s block of pixels becomes one pixel of s*s*C channels, and the
    kernel, zero-padded to a multiple of s, is rearranged alike: the same sums
    of products (plus zeros), as one convolution of stride 1 over 16 times the
    channels for AlexNet's conv1, which GPUs' tensor cores take better than
    3 channels at stride 4.
    """
    x = keras.ops.convert_to_tensor(inputs)
    kernel = keras.ops.convert_to_tensor(kernel)
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 2:
        raise ValueError(f"`stride` should be an integer >= 2. Received: {stride!r}")
    if len(kernel.shape) != 4 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(
            "`kernel` should be square, (size, size, channels, filters). "
            f"Received shape: {tuple(kernel.shape)}"
        )
    if (
        len(x.shape) != 4
        or None in tuple(x.shape[1:])
        or x.shape[-1] != kernel.shape[2]
    ):
        raise ValueError(
            "`inputs` should be (batch, height, width, channels) of a known "
            f"size with the kernel's {kernel.shape[2]} channels. Received shape: "
            f"{tuple(x.shape)}"
        )
    _, height, width, channels = x.shape
    size, filters = kernel.shape[0], kernel.shape[-1]
    if min(height, width) < size:
        raise ValueError(
            f"`inputs` ({height}x{width}) should be at least as large as the "
            f"kernel ({size}x{size})."
        )
    blocks = -(-size // stride)  # the kernel's extent in blocks
    out_height = (height - size) // stride + 1
    out_width = (width - size) // stride + 1
    # The rows and columns the outputs read, whole blocks (padded with zeros
    # that meet only the kernel's zero padding).
    rows, cols = (out_height - 1 + blocks) * stride, (out_width - 1 + blocks) * stride
    x = x[:, : min(height, rows), : min(width, cols)]
    if x.shape[1] < rows or x.shape[2] < cols:
        x = keras.ops.pad(
            x, [(0, 0), (0, rows - x.shape[1]), (0, cols - x.shape[2]), (0, 0)]
        )
    x = keras.ops.reshape(
        x, (-1, rows // stride, stride, cols // stride, stride, channels)
    )
    x = keras.ops.transpose(x, (0, 1, 3, 2, 4, 5))
    x = keras.ops.reshape(
        x, (-1, rows // stride, cols // stride, stride * stride * channels)
    )
    extra = blocks * stride - size
    kernel = keras.ops.pad(kernel, [(0, extra), (0, extra), (0, 0), (0, 0)])
    kernel = keras.ops.reshape(
        kernel, (blocks, stride, blocks, stride, channels, filters)
    )
    kernel = keras.ops.transpose(kernel, (0, 2, 1, 3, 4, 5))
    kernel = keras.ops.reshape(
        kernel, (blocks, blocks, stride * stride * channels, filters)
    )
    outputs = torch_conv2d(x, kernel, (1, 1), "valid", (1, 1), "channels_last")
    if outputs is None:
        outputs = keras.ops.conv(x, kernel, strides=1, padding="valid")
    return outputs


def torch_conv2d(
    inputs: Any,
    kernel: Any,
    strides: tuple[int, int],
    padding: str,
    dilation_rate: tuple[int, int],
    data_format: str,
) -> Any:
    """A channels-last 2-D convolution on views, or None where not covered.

    `kernel` is Keras' `(kh, kw, in // groups, out)`; the groups follow from the
    input's channels, as in Keras.
    """
    if keras.backend.backend() != "torch" or data_format != "channels_last":
        return None
    import torch.nn.functional as F

    kernel_size = tuple(kernel.shape[:2])
    pad = _symmetric_padding(padding, kernel_size, strides, dilation_rate)
    if pad is None:
        return None
    x = keras.ops.convert_to_tensor(inputs)
    weight = keras.ops.convert_to_tensor(kernel)  # a variable, autocast
    if x.ndim != 4:
        return None
    x = x.permute(0, 3, 1, 2)  # NCHW shape, channels-last memory: no copy
    weight = weight.permute(3, 2, 0, 1)  # OIHW
    groups = x.shape[1] // weight.shape[1]
    outputs = F.conv2d(
        x, weight, None, tuple(strides), pad, tuple(dilation_rate), groups
    )
    return outputs.permute(0, 2, 3, 1)


def torch_max_pool2d(
    inputs: Any,
    pool_size: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
    data_format: str,
) -> Any:
    """A channels-last 2-D max pooling on views, or None where not covered."""
    if (
        keras.backend.backend() != "torch"
        or data_format != "channels_last"
        or padding != "valid"
    ):
        return None
    import torch.nn.functional as F

    x = keras.ops.convert_to_tensor(inputs)
    if x.ndim != 4:
        return None
    outputs = F.max_pool2d(x.permute(0, 3, 1, 2), tuple(pool_size), tuple(strides))
    return outputs.permute(0, 2, 3, 1)


def _symmetric_padding(
    padding: str,
    kernel_size: tuple[int, int],
    strides: tuple[int, int],
    dilation_rate: tuple[int, int],
) -> int | tuple[int, ...] | None:
    """PyTorch's padding for Keras' `padding`, or None if it is asymmetric."""
    if padding == "valid":
        return 0
    # "same" pads (dilated kernel - 1) in all, split evenly where that is
    # even: always so at stride 1 with odd kernels, the case of AlexNet.
    if all(s == 1 for s in strides) and all(k % 2 == 1 for k in kernel_size):
        return tuple(
            d * (k - 1) // 2 for k, d in zip(kernel_size, dilation_rate, strict=True)
        )
    return None
