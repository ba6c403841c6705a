"""Writes `.caffemodel` files and the bvlc_alexnet deploy.prototxt, for tests only.

The encoder follows the protobuf wire format
(https://protobuf.dev/programming-guides/encoding/) and the field numbers of
Caffe's `src/caffe/proto/caffe.proto`; it is written independently of
`keras_alexnet.weights.caffe_checkpoint` and checked in the tests against
OpenCV's Caffe importer, so the reader is never tested only against itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

# V1LayerParameter.LayerType values (caffe.proto).
V1_LAYER_TYPES = {
    "Convolution": 4,
    "Data": 5,
    "Dropout": 6,
    "InnerProduct": 14,
    "LRN": 15,
    "Pooling": 17,
    "ReLU": 18,
    "Softmax": 20,
}


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 two's complement, as protobuf encodes it
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def _varint_field(number: int, value: int) -> bytes:
    return _key(number, 0) + _varint(value)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


def _blob(array: np.ndarray, shape_style: str, float_encoding: str) -> bytes:
    array = np.asarray(array)
    out = b""
    if shape_style == "shape":
        dims = b"".join(_varint(d) for d in array.shape)
        out += _bytes_field(7, _bytes_field(1, dims))  # BlobShape.dim, packed
    elif shape_style == "shape_unpacked":
        dims = b"".join(_varint_field(1, d) for d in array.shape)
        out += _bytes_field(7, dims)
    elif shape_style == "legacy":
        if array.ndim > 4:
            raise ValueError(f"legacy blobs are at most 4-D, got {array.shape}")
        legacy = (1,) * (4 - array.ndim) + array.shape
        for number, dim in zip((1, 2, 3, 4), legacy, strict=True):
            out += _varint_field(number, dim)
    else:
        raise ValueError(f"unknown shape_style {shape_style!r}")
    flat = array.reshape(-1)
    if float_encoding == "packed":
        out += _bytes_field(5, flat.astype("<f4").tobytes())
    elif float_encoding == "unpacked":
        records = np.empty(flat.size, dtype=[("tag", "u1"), ("value", "<f4")])
        records["tag"] = (5 << 3) | 5
        records["value"] = flat
        out += records.tobytes()
    elif float_encoding == "double":
        out += _bytes_field(8, flat.astype("<f8").tobytes())
    else:
        raise ValueError(f"unknown float_encoding {float_encoding!r}")
    return out


def write_caffemodel(
    path: str | os.PathLike[str],
    layers: Sequence[tuple[str, str, Sequence[np.ndarray]]],
    layout: str = "layer",
    shape_style: str | None = None,
    float_encoding: str = "packed",
) -> None:
    """Writes a NetParameter with the given layers and blobs.

    Args:
        path: Where to write.
        layers: `(name, type, blobs)` per layer; `type` as in a current prototxt
            ("Convolution", "InnerProduct", ...).
        layout: "layer" writes `NetParameter.layer` (field 100) with string types;
            "v1" writes `NetParameter.layers` (field 2) with enum types.
        shape_style: "shape" (BlobShape, packed dims), "shape_unpacked", or
            "legacy" (num, channels, height, width, left-padded with ones, as
            Caffe's V1 files store inner products). Defaults to "shape" for the
            "layer" layout and "legacy" for "v1".
        float_encoding: "packed" floats (what Caffe writes), "unpacked" fixed32
            values, or "double" (`double_data`).
    """
    if shape_style is None:
        shape_style = "shape" if layout == "layer" else "legacy"
    parts = [_bytes_field(1, b"test_net")]  # NetParameter.name
    for name, layer_type, blobs in layers:
        encoded_blobs = [_blob(b, shape_style, float_encoding) for b in blobs]
        if layout == "layer":
            message = _bytes_field(1, name.encode()) + _bytes_field(
                2, layer_type.encode()
            )
            message += b"".join(_bytes_field(7, blob) for blob in encoded_blobs)
            parts.append(_bytes_field(100, message))
        elif layout == "v1":
            message = _bytes_field(4, name.encode()) + _varint_field(
                5, V1_LAYER_TYPES[layer_type]
            )
            message += b"".join(_bytes_field(6, blob) for blob in encoded_blobs)
            parts.append(_bytes_field(2, message))
        else:
            raise ValueError(f"unknown layout {layout!r}")
    with open(path, "wb") as file:
        file.writelines(parts)


_LEARNED_PARAMS = """  param {
    lr_mult: 1
    decay_mult: 1
  }
  param {
    lr_mult: 2
    decay_mult: 0
  }
"""


def _layer(
    name: str, layer_type: str, bottom: str, top: str, body: str = "", learned=False
) -> str:
    text = f'layer {{\n  name: "{name}"\n  type: "{layer_type}"\n'
    text += f'  bottom: "{bottom}"\n  top: "{top}"\n'
    if learned:
        text += _LEARNED_PARAMS
    return text + body + "}\n"


def _conv(name: str, bottom: str, num_output: int, kernel: int, **options) -> str:
    lines = [f"    num_output: {num_output}"]
    if "pad" in options:
        lines.append(f"    pad: {options['pad']}")
    lines.append(f"    kernel_size: {kernel}")
    if "stride" in options:
        lines.append(f"    stride: {options['stride']}")
    if "group" in options:
        lines.append(f"    group: {options['group']}")
    body = "  convolution_param {\n" + "\n".join(lines) + "\n  }\n"
    return _layer(name, "Convolution", bottom, name, body, learned=True)


def _relu(name: str, blob: str) -> str:
    return _layer(name, "ReLU", blob, blob)


def _lrn(name: str, bottom: str) -> str:
    body = "  lrn_param {\n    local_size: 5\n    alpha: 0.0001\n    beta: 0.75\n  }\n"
    return _layer(name, "LRN", bottom, name, body)


def _max_pool(name: str, bottom: str) -> str:
    body = "  pooling_param {\n    pool: MAX\n    kernel_size: 3\n    stride: 2\n  }\n"
    return _layer(name, "Pooling", bottom, name, body)


def _inner_product(name: str, bottom: str, num_output: int) -> str:
    body = f"  inner_product_param {{\n    num_output: {num_output}\n  }}\n"
    return _layer(name, "InnerProduct", bottom, name, body, learned=True)


def _dropout(name: str, blob: str) -> str:
    body = "  dropout_param {\n    dropout_ratio: 0.5\n  }\n"
    return _layer(name, "Dropout", blob, blob, body)


def alexnet_deploy_prototxt(batch_size: int = 10, softmax: bool = True) -> str:
    """Returns BVLC's `models/bvlc_alexnet/deploy.prototxt`.

    With the defaults the text is the file in the BVLC/caffe repository (current
    `layer` syntax, input 10x3x227x227, groups 2 in conv2, conv4 and conv5).

    Args:
        batch_size: First dimension of the input shape.
        softmax: Whether to end with the "prob" Softmax layer; `False` ends at
            the fc8 logits.
    """
    text = 'name: "AlexNet"\nlayer {\n  name: "data"\n  type: "Input"\n'
    text += '  top: "data"\n'
    text += (
        f"  input_param {{ shape: {{ dim: {batch_size} dim: 3 dim: 227 dim: 227 }} }}\n"
    )
    text += "}\n"
    text += _conv("conv1", "data", 96, 11, stride=4)
    text += _relu("relu1", "conv1") + _lrn("norm1", "conv1")
    text += _max_pool("pool1", "norm1")
    text += _conv("conv2", "pool1", 256, 5, pad=2, group=2)
    text += _relu("relu2", "conv2") + _lrn("norm2", "conv2")
    text += _max_pool("pool2", "norm2")
    text += _conv("conv3", "pool2", 384, 3, pad=1) + _relu("relu3", "conv3")
    text += _conv("conv4", "conv3", 384, 3, pad=1, group=2) + _relu("relu4", "conv4")
    text += _conv("conv5", "conv4", 256, 3, pad=1, group=2) + _relu("relu5", "conv5")
    text += _max_pool("pool5", "conv5")
    text += _inner_product("fc6", "pool5", 4096)
    text += _relu("relu6", "fc6") + _dropout("drop6", "fc6")
    text += _inner_product("fc7", "fc6", 4096)
    text += _relu("relu7", "fc7") + _dropout("drop7", "fc7")
    text += _inner_product("fc8", "fc7", 1000)
    if softmax:
        text += 'layer {\n  name: "prob"\n  type: "Softmax"\n'
        text += '  bottom: "fc8"\n  top: "prob"\n}\n'
    return text
