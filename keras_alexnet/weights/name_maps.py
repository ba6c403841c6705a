"""Source checkpoint names -> keras-alexnet layer names, with the transposes.

Two sources, read by `torch_checkpoint.py` and `caffe_checkpoint.py`:

- torchvision `alexnet` state dicts (`torchvision/models/alexnet.py`, BSD-3):
  convolution weights OIHW, linear weights `(out, in)`.
- Caffe `bvlc_alexnet` blobs (`BVLC/caffe`, `models/bvlc_alexnet`): the same
  layouts, and in legacy V1 files inner products shaped `(1, 1, out, in)` with
  biases `(1, 1, 1, out)`.

Keras wants Conv2D kernels as HWIO `(kh, kw, in // groups, out)` whatever the
`data_format`, Dense kernels as `(in, out)`, and biases as `(out,)`. One layer
needs more than a transpose: fc6 reads pool5 flattened. Both sources flatten
pool5 as C, H, W. `keras.layers.Flatten` flattens H, W, C, whatever its
`data_format` (with "channels_first" it moves the channels last before
flattening), so fc6's input columns are permuted to match
(`chw_flattened_to_keras_dense_kernel`). Only a model that reshapes an NCHW
pool5 directly, without `Flatten`, needs the C, H, W order (`flatten_order="chw"`).
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "CAFFE_NAME_MAP",
    "POOL5_SHAPE_CHW",
    "TORCHVISION_NAME_MAP",
    "caffe_to_keras",
    "chw_flattened_to_keras_dense_kernel",
    "torch_to_keras_conv_kernel",
    "torch_to_keras_dense_kernel",
    "torchvision_to_keras",
]

# Shape of pool5, the input of fc6, in both sources (channels, height, width).
POOL5_SHAPE_CHW = (256, 6, 6)

TORCHVISION_NAME_MAP: Mapping[str, str] = types.MappingProxyType(
    {
        "features.0": "conv1",
        "features.3": "conv2",
        "features.6": "conv3",
        "features.8": "conv4",
        "features.10": "conv5",
        "classifier.1": "fc6",
        "classifier.4": "fc7",
        "classifier.6": "predictions",
    }
)

CAFFE_NAME_MAP: Mapping[str, str] = types.MappingProxyType(
    {
        "conv1": "conv1",
        "conv2": "conv2",
        "conv3": "conv3",
        "conv4": "conv4",
        "conv5": "conv5",
        "fc6": "fc6",
        "fc7": "fc7",
        "fc8": "predictions",
    }
)

# The weight shape each source layer must have; None accepts any size there
# (the number of classes of a fine-tuned classifier).
_TORCHVISION_WEIGHT_SHAPES: Mapping[str, tuple[int | None, ...]] = (
    types.MappingProxyType(
        {
            "features.0": (64, 3, 11, 11),
            "features.3": (192, 64, 5, 5),
            "features.6": (384, 192, 3, 3),
            "features.8": (256, 384, 3, 3),
            "features.10": (256, 256, 3, 3),
            "classifier.1": (4096, 9216),
            "classifier.4": (4096, 4096),
            "classifier.6": (None, 4096),
        }
    )
)

# conv2, conv4 and conv5 have two groups: each filter sees half the channels.
_CAFFE_WEIGHT_SHAPES: Mapping[str, tuple[int | None, ...]] = types.MappingProxyType(
    {
        "conv1": (96, 3, 11, 11),
        "conv2": (256, 48, 5, 5),
        "conv3": (384, 256, 3, 3),
        "conv4": (384, 192, 3, 3),
        "conv5": (256, 192, 3, 3),
        "fc6": (4096, 9216),
        "fc7": (4096, 4096),
        "fc8": (None, 4096),
    }
)

_FLATTEN_ORDERS = ("hwc", "chw")


def torch_to_keras_conv_kernel(kernel_oihw: np.ndarray) -> np.ndarray:
    """Converts a PyTorch or Caffe convolution weight to a Keras Conv2D kernel.

    A grouped weight needs nothing more: PyTorch and Caffe stack the groups'
    filters along the output axis, `(out, in // groups, kh, kw)`, which after the
    transpose is exactly Keras' grouped layout `(kh, kw, in // groups, out)`.

    Args:
        kernel_oihw: Weight of shape `(out, in // groups, kh, kw)`.

    Returns:
        The HWIO kernel `(kh, kw, in // groups, out)`, C-contiguous float32.
    """
    kernel_oihw = np.asarray(kernel_oihw)
    if kernel_oihw.ndim != 4:
        raise ValueError(
            "Expected a 4-D convolution weight (out, in, kh, kw). "
            f"Received: shape={kernel_oihw.shape}"
        )
    return np.ascontiguousarray(kernel_oihw.transpose(2, 3, 1, 0), dtype=np.float32)


def torch_to_keras_dense_kernel(weight_out_in: np.ndarray) -> np.ndarray:
    """Converts a PyTorch `nn.Linear` or Caffe InnerProduct weight to a Dense kernel.

    Args:
        weight_out_in: Weight of shape `(out, in)`.

    Returns:
        The kernel `(in, out)`, C-contiguous float32.
    """
    weight_out_in = np.asarray(weight_out_in)
    if weight_out_in.ndim != 2:
        raise ValueError(
            f"Expected a 2-D linear weight (out, in). Received: shape="
            f"{weight_out_in.shape}"
        )
    return np.ascontiguousarray(weight_out_in.T, dtype=np.float32)


def chw_flattened_to_keras_dense_kernel(
    weight_out_chw: np.ndarray,
    feature_shape_chw: Sequence[int] = POOL5_SHAPE_CHW,
    flatten_order: str = "hwc",
) -> np.ndarray:
    """Converts the weight of a linear layer that reads a C, H, W flattened map.

    PyTorch and Caffe flatten a `(C, H, W)` feature map in C, H, W order;
    `keras.layers.Flatten` flattens in H, W, C order under either data format.
    The input rows of the kernel are reordered so that the Dense layer computes
    the same function.

    Args:
        weight_out_chw: Weight of shape `(out, C * H * W)`.
        feature_shape_chw: `(C, H, W)` of the flattened feature map (pool5:
            `(256, 6, 6)`).
        flatten_order: How the Keras model flattens the map: "hwc" for
            `keras.layers.Flatten` (either data format) or a reshape of an NHWC
            tensor; "chw" for a reshape of an NCHW tensor, which needs only the
            transpose.

    Returns:
        The kernel `(H * W * C, out)` ("hwc") or `(C * H * W, out)` ("chw"),
        C-contiguous float32.
    """
    _check_flatten_order(flatten_order)
    weight_out_chw = np.asarray(weight_out_chw)
    channels, height, width = feature_shape_chw
    if weight_out_chw.ndim != 2 or weight_out_chw.shape[1] != (
        channels * height * width
    ):
        raise ValueError(
            f"Expected a weight of shape (out, {channels * height * width}) reading a "
            f"flattened {tuple(feature_shape_chw)} (C, H, W) map. Received: "
            f"shape={weight_out_chw.shape}"
        )
    if flatten_order == "chw":
        return torch_to_keras_dense_kernel(weight_out_chw)
    out = weight_out_chw.shape[0]
    kernel = weight_out_chw.reshape(out, channels, height, width).transpose(2, 3, 1, 0)
    return np.ascontiguousarray(
        kernel.reshape(height * width * channels, out), dtype=np.float32
    )


def torchvision_to_keras(
    state_dict: Mapping[str, np.ndarray],
    flatten_order: str = "hwc",
    *,
    source: str = "the torchvision state dict",
) -> dict[str, list[np.ndarray]]:
    """Converts a torchvision AlexNet state dict to keras-alexnet layer weights.

    Args:
        state_dict: `{key: array}` as read by `read_torch_state_dict`, holding
            exactly `<module>.weight` and `<module>.bias` for every module in
            `TORCHVISION_NAME_MAP`.
        flatten_order: How the Keras model flattens pool5 before fc6: "hwc" for
            `keras.layers.Flatten` under either data format, "chw" for a plain
            reshape of an NCHW tensor (see `chw_flattened_to_keras_dense_kernel`).
        source: how error messages name the state dict (its file).

    Returns:
        `{keras_layer_name: [kernel, bias]}` in network order, float32.

    Raises:
        ValueError: If a key is missing or unexpected, or an array has an
            unexpected shape or a non-float dtype; the message names the key.
    """
    _check_flatten_order(flatten_order)
    expected_keys = [
        f"{module}.{param}"
        for module in TORCHVISION_NAME_MAP
        for param in ("weight", "bias")
    ]
    _check_keys(state_dict, expected_keys, source)
    weights = {}
    for module, layer in TORCHVISION_NAME_MAP.items():
        weight = _checked(
            state_dict[f"{module}.weight"],
            _TORCHVISION_WEIGHT_SHAPES[module],
            f"{module}.weight",
            source,
        )
        bias = _checked(
            state_dict[f"{module}.bias"], (weight.shape[0],), f"{module}.bias", source
        )
        kernel = _keras_kernel(weight, module == "classifier.1", flatten_order)
        weights[layer] = [kernel, bias.astype(np.float32)]
    return weights


def caffe_to_keras(
    blobs: Mapping[str, Sequence[np.ndarray]],
    flatten_order: str = "hwc",
    *,
    source: str = "the Caffe model",
) -> dict[str, list[np.ndarray]]:
    """Converts Caffe bvlc_alexnet blobs to keras-alexnet layer weights.

    Args:
        blobs: `{layer_name: [weights, bias]}` as read by `read_caffemodel`,
            holding exactly the layers in `CAFFE_NAME_MAP`. Legacy V1 shapes with
            leading ones, such as `(1, 1, out, in)` for an inner product and
            `(1, 1, 1, out)` for a bias, are accepted.
        flatten_order: How the Keras model flattens pool5 before fc6: "hwc" for
            `keras.layers.Flatten` under either data format, "chw" for a plain
            reshape of an NCHW tensor (see `chw_flattened_to_keras_dense_kernel`).
        source: how error messages name the blobs (their file).

    Returns:
        `{keras_layer_name: [kernel, bias]}` in network order, float32.

    Raises:
        ValueError: If a layer is missing or unexpected, does not have exactly
            two blobs, or a blob has an unexpected shape; the message names the
            Caffe layer.
    """
    _check_flatten_order(flatten_order)
    _check_keys(blobs, list(CAFFE_NAME_MAP), source)
    weights = {}
    for caffe_layer, layer in CAFFE_NAME_MAP.items():
        layer_blobs = blobs[caffe_layer]
        if len(layer_blobs) != 2:
            raise ValueError(
                f"Expected 2 blobs (weights, bias) for layer `{caffe_layer}` in "
                f"{source}. Received: {len(layer_blobs)} blobs"
            )
        expected_shape = _CAFFE_WEIGHT_SHAPES[caffe_layer]
        weight = _checked(
            _squeeze_leading_ones(layer_blobs[0], len(expected_shape)),
            expected_shape,
            f"{caffe_layer} weights (blob 0)",
            source,
        )
        bias = _checked(
            _squeeze_leading_ones(layer_blobs[1], 1),
            (weight.shape[0],),
            f"{caffe_layer} bias (blob 1)",
            source,
        )
        kernel = _keras_kernel(weight, caffe_layer == "fc6", flatten_order)
        weights[layer] = [kernel, bias.astype(np.float32)]
    return weights


def _keras_kernel(
    weight: np.ndarray, reads_pool5: bool, flatten_order: str
) -> np.ndarray:
    if weight.ndim == 4:
        return torch_to_keras_conv_kernel(weight)
    if reads_pool5:
        return chw_flattened_to_keras_dense_kernel(
            weight, POOL5_SHAPE_CHW, flatten_order
        )
    return torch_to_keras_dense_kernel(weight)


def _squeeze_leading_ones(blob: np.ndarray, ndim: int) -> np.ndarray:
    """Drops the leading unit axes Caffe's legacy 4-D blob shapes add."""
    blob = np.asarray(blob)
    extra = blob.ndim - ndim
    if extra > 0 and all(d == 1 for d in blob.shape[:extra]):
        return blob.reshape(blob.shape[extra:])
    return blob


def _checked(
    array: np.ndarray, expected: Sequence[int | None], key: str, source: str
) -> np.ndarray:
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"Expected floating-point values for `{key}` in {source}. Received: "
            f"dtype={array.dtype}"
        )
    if len(expected) != array.ndim or any(
        e is not None and e != d for e, d in zip(expected, array.shape, strict=False)
    ):
        shown = tuple("any" if e is None else e for e in expected)
        raise ValueError(
            f"Unexpected shape for `{key}` in {source}: expected {shown}. "
            f"Received: shape={array.shape}"
        )
    return array


def _check_keys(
    mapping: Mapping[str, object], expected: Sequence[str], source: str
) -> None:
    missing = [key for key in expected if key not in mapping]
    unexpected = [key for key in mapping if key not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{source[0].upper()}{source[1:]} does not match AlexNet: missing "
            f"{missing}, unexpected {unexpected}. Expected exactly {list(expected)}."
        )


def _check_flatten_order(flatten_order: str) -> None:
    if flatten_order not in _FLATTEN_ORDERS:
        raise ValueError(
            "The `flatten_order` argument should be 'hwc' (keras.layers.Flatten) "
            f"or 'chw' (a reshape of an NCHW tensor). Received: "
            f"flatten_order={flatten_order!r}"
        )
