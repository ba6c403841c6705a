"""Writes `.caffemodel` files, for tests only.

The encoder follows the protobuf wire format
(https://protobuf.dev/programming-guides/encoding/) and the field numbers of
Caffe's `src/caffe/proto/caffe.proto`; it is written independently of
`keras_alexnet.weights.caffe_checkpoint` and checked in the tests against
OpenCV's Caffe importer, so the reader is never tested only against itself.

The deploy.prototxt that OpenCV runs is the package's own
`keras_alexnet.weights.caffe_prototxt.alexnet_deploy_prototxt`, re-exported
here: it is BVLC's file as text, checked in test_caffe_checkpoint.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from keras_alexnet.weights.caffe_prototxt import alexnet_deploy_prototxt

__all__ = ["V1_LAYER_TYPES", "alexnet_deploy_prototxt", "write_caffemodel"]

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
