"""A reader for Caffe `.caffemodel` files that needs neither Caffe nor protobuf.

A `.caffemodel` is a binary protocol buffer of the `NetParameter` message in
Caffe's `src/caffe/proto/caffe.proto`; the wire format is specified at
https://protobuf.dev/programming-guides/encoding/. This module decodes only the
fields that carry weights and skips everything else:

    NetParameter      layer = 100 (LayerParameter), layers = 2 (V1LayerParameter)
    LayerParameter    name = 1 (string), blobs = 7 (BlobProto)
    V1LayerParameter  name = 4 (string), blobs = 6 (BlobProto)
    BlobProto         shape = 7 (BlobShape), data = 5 (packed float),
                      double_data = 8 (packed double), and the legacy 4-D shape
                      num = 1, channels = 2, height = 3, width = 4
    BlobShape         dim = 1 (packed int64)

Float arrays are decoded with `np.frombuffer` on slices of one memoryview, so a
233 MB file reads in about the time it takes to copy it.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

__all__ = ["read_caffemodel"]

# Wire types (protobuf encoding guide).
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5

# NetParameter fields holding layers, and the name and blobs fields of each kind
# of layer message.
_NET_LAYER, _NET_LAYERS_V1 = 100, 2
_LAYER_FIELDS = {_NET_LAYER: (1, 7), _NET_LAYERS_V1: (4, 6)}

# BlobProto and BlobShape fields.
_BLOB_LEGACY_DIMS = (1, 2, 3, 4)  # num, channels, height, width
_BLOB_DATA, _BLOB_SHAPE, _BLOB_DOUBLE_DATA = 5, 7, 8
_SHAPE_DIM = 1
# Caffe's `kMaxBlobAxes` (blob.hpp): no blob has more axes.
_MAX_BLOB_AXES = 32
# A dimension NumPy can hold; a blob's size is bounded by the file anyway.
_MAX_DIM = 2**62
# Fields decoded one at a time cost about a microsecond each in Python; a
# caffemodel has a few per layer and blob (runs of floats are read at once), so
# a file needing more is refused rather than read for seconds.
_MAX_FIELDS = 1_000_000


class _Decoder:
    """Decodes protobuf fields out of one memoryview; its errors name the file."""

    def __init__(self, buffer: memoryview, path: str) -> None:
        self.buffer = buffer
        self.path = path
        self.fields_left = _MAX_FIELDS

    def error(self, message: str) -> ValueError:
        return ValueError(
            f"{self.path!r} is not a valid .caffemodel (a binary NetParameter "
            f"protocol buffer): {message}."
        )

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        """Decodes the varint at `pos`; returns its value and the next position."""
        buffer = self.buffer
        result = shift = 0
        while pos < end:
            byte = buffer[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result, pos
            shift += 7
            if shift >= 70:
                raise self.error(f"a varint longer than 10 bytes ends at byte {pos}")
        raise self.error(f"a varint runs past the end of its message at byte {pos}")

    def field(self, pos: int, end: int) -> tuple[int, int, Any, int]:
        """Decodes the field at `pos` of a message that ends at `end`.

        Returns:
            `(field_number, wire_type, value, next_pos)`, where `value` is an int
            for a varint and the `(start, stop)` byte range of the payload for
            every other wire type.
        """
        self.fields_left -= 1
        if self.fields_left < 0:
            raise self.error(
                f"it holds more than {_MAX_FIELDS} fields, far more than a "
                "network's weights need"
            )
        key, pos = self.varint(pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise self.error(f"field number 0 before byte {pos}")
        if wire_type == _VARINT:
            value, pos = self.varint(pos, end)
            return number, wire_type, value, pos
        if wire_type == _LENGTH_DELIMITED:
            size, pos = self.varint(pos, end)
        elif wire_type == _FIXED32:
            size = 4
        elif wire_type == _FIXED64:
            size = 8
        else:
            raise self.error(
                f"field {number} before byte {pos} has wire type {wire_type}, which "
                "caffe.proto never uses"
            )
        if pos + size > end:
            raise self.error(
                f"field {number} at byte {pos} is {size} bytes long, past the end "
                f"of its message at byte {end} (truncated file?)"
            )
        return number, wire_type, (pos, pos + size), pos + size

    def packed_varints(self, start: int, end: int, limit: int) -> list[int]:
        values: list[int] = []
        while start < end and len(values) <= limit:
            value, start = self.varint(start, end)
            values.append(value)
        return values

    def floats(self, start: int, end: int, dtype: np.dtype, layer: str) -> np.ndarray:
        if (end - start) % dtype.itemsize:
            raise self.error(
                f"the packed data of a blob of layer {layer!r} is not a whole "
                f"number of {dtype.itemsize}-byte values"
            )
        return np.frombuffer(self.buffer[start:end], dtype=dtype)

    def unpacked_run(
        self, pos: int, end: int, tag: int, dtype: np.dtype
    ) -> tuple[np.ndarray, int]:
        """Decodes a run of unpacked values of one field, starting at its tag.

        An unpacked repeated float is a sequence of one-byte tags each followed
        by 4 value bytes; reading the run as a NumPy record array avoids a
        Python loop per value. The run's end is searched in windows that double
        in size, so the cost follows the run's length, not the rest of the
        message's (short runs between other fields would make it quadratic).
        Returns the values and the position after them.
        """
        record = np.dtype([("tag", "u1"), ("value", dtype)])
        available = (end - pos) // record.itemsize
        count, window = 0, 64
        while count < available:
            size = min(window, available - count)
            start = pos + count * record.itemsize
            tags = np.frombuffer(self.buffer[start:end], dtype=record, count=size)
            stops = np.flatnonzero(tags["tag"] != tag)
            if stops.size:
                count += int(stops[0])
                break
            count += size
            window *= 2
        run = np.frombuffer(self.buffer[pos:end], dtype=record, count=count)
        return run["value"], pos + count * record.itemsize

    def blob(self, start: int, end: int, layer: str) -> np.ndarray:
        """Decodes one BlobProto into a float32 array of its declared shape."""
        shape: list[int] | None = None
        legacy_dims = dict.fromkeys(_BLOB_LEGACY_DIMS, 0)
        # Each part is an array, or the (start, stop) bytes of one lone value.
        floats: dict[int, list] = {_BLOB_DATA: [], _BLOB_DOUBLE_DATA: []}
        pos = start
        while pos < end:
            number, wire_type, value, pos = self.field(pos, end)
            if number == _BLOB_SHAPE and wire_type == _LENGTH_DELIMITED:
                shape = self.blob_shape(value[0], value[1], layer)
            elif number in _BLOB_LEGACY_DIMS and wire_type == _VARINT:
                legacy_dims[number] = value
            elif number in floats:
                dtype = np.dtype("<f4" if number == _BLOB_DATA else "<f8")
                if wire_type == _LENGTH_DELIMITED:
                    floats[number].append(self.floats(value[0], value[1], dtype, layer))
                elif dtype.itemsize == {_FIXED32: 4, _FIXED64: 8}.get(wire_type):
                    tag = (number << 3) | wire_type  # one byte for fields < 16
                    # Short runs between other fields are kept as the byte spans
                    # of their values, without a NumPy call each; long runs
                    # are read as one record array.
                    floats[number].append(value)
                    record_size = 1 + dtype.itemsize
                    short = 1
                    while short < 8 and pos < end and self.buffer[pos] == tag:
                        floats[number].append((pos + 1, pos + record_size))
                        pos += record_size
                        short += 1
                    if short == 8 and pos < end and self.buffer[pos] == tag:
                        values, pos = self.unpacked_run(pos, end, tag, dtype)
                        floats[number].append(values)
                else:
                    raise self.error(
                        f"a blob of layer {layer!r} stores field {number} with wire "
                        f"type {wire_type}"
                    )
        # Caffe's Blob::FromProto prefers double_data when it is present.
        if floats[_BLOB_DOUBLE_DATA]:
            data = self.join(floats[_BLOB_DOUBLE_DATA], np.dtype("<f8"))
        else:
            data = self.join(floats[_BLOB_DATA], np.dtype("<f4"))
        if shape is None:
            shape = [legacy_dims[number] for number in _BLOB_LEGACY_DIMS]
        if any(dim >= _MAX_DIM for dim in shape):
            # protobuf stores a negative int64 as a huge unsigned varint; NumPy
            # refuses such a dimension even when another one is 0.
            raise self.error(
                f"a blob of layer {layer!r} has shape {tuple(shape)}, with a "
                "dimension beyond 2**62 (negative, or damaged)"
            )
        if math.prod(shape) != data.size:
            raise self.error(
                f"a blob of layer {layer!r} has shape {tuple(shape)} but "
                f"{data.size} values"
            )
        return data.astype(np.float32).reshape(shape)

    def join(self, parts: list, dtype: np.dtype) -> np.ndarray:
        """Concatenates arrays and the byte spans of lone values, in order."""
        if len(parts) == 1 and isinstance(parts[0], np.ndarray):
            return parts[0]
        arrays, lone = [], []
        for part in [*parts, None]:
            if isinstance(part, tuple):
                lone.append(self.buffer[part[0] : part[1]])
                continue
            if lone:
                arrays.append(np.frombuffer(b"".join(lone), dtype=dtype))
                lone = []
            if part is not None:
                arrays.append(part)
        return np.concatenate(arrays) if arrays else np.zeros(0, np.float32)

    def blob_shape(self, start: int, end: int, layer: str) -> list[int]:
        dims: list[int] = []
        pos = start
        while pos < end:
            number, wire_type, value, pos = self.field(pos, end)
            if number != _SHAPE_DIM:
                continue
            if wire_type == _VARINT:
                dims.append(value)
            elif wire_type == _LENGTH_DELIMITED:
                dims.extend(
                    self.packed_varints(value[0], value[1], limit=_MAX_BLOB_AXES)
                )
            if len(dims) > _MAX_BLOB_AXES:
                # Caffe refuses them too; and the product and the message of a
                # 100,000-axis shape cost quadratic time and megabytes.
                raise self.error(
                    f"a blob of layer {layer!r} has more than {_MAX_BLOB_AXES} axes"
                )
        return dims

    def layer(
        self, start: int, end: int, name_field: int, blobs_field: int
    ) -> tuple[str | None, list[tuple[int, int]]]:
        """Decodes a LayerParameter or V1LayerParameter into (name, blob ranges)."""
        name = None
        blob_spans = []
        pos = start
        while pos < end:
            number, wire_type, value, pos = self.field(pos, end)
            if wire_type != _LENGTH_DELIMITED:
                continue
            if number == name_field:
                try:
                    name = bytes(self.buffer[value[0] : value[1]]).decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise self.error(f"a layer name is not UTF-8 ({exc})") from None
            elif number == blobs_field:
                blob_spans.append(value)
        return name, blob_spans


def read_caffemodel(path: str | os.PathLike[str]) -> dict[str, list[np.ndarray]]:
    """Reads the weights of every layer of a Caffe `.caffemodel`.

    Accepts the current layout (`NetParameter.layer`, Caffe since 2015) and the
    legacy V1 layout (`NetParameter.layers`), which is what older model-zoo
    files such as `bvlc_alexnet.caffemodel` may use. Nothing but NumPy is
    needed; no Caffe, no protobuf.

    Args:
        path: The `.caffemodel` file.

    Returns:
        `{layer_name: [blob, ...]}` in file order, for the layers that have
        blobs; each layer's blobs in file order (for convolutions and inner
        products: weights, then bias), as float32 arrays of the shape the file
        declares. A blob with a `shape` gets exactly that shape; a blob with
        only the legacy `num, channels, height, width` gets that 4-D shape
        unchanged, so a V1 inner product's weights come back as
        `(1, 1, out, in)` and its bias as `(1, 1, 1, out)`; the name map
        squeezes them.

    Raises:
        ValueError: If the file is not a well-formed NetParameter (a varint or
            a length runs past the end, an unknown wire type, a blob whose
            shape does not match its data), holds no layer with blobs, or
            names two layers with blobs alike. Protocol buffers have no end
            marker, so a file cut exactly between two layers reads as a valid
            net with fewer layers; `name_maps.caffe_to_keras` then reports the
            missing layers.
        FileNotFoundError: If `path` does not exist.
        IsADirectoryError: If `path` is a folder.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a folder, not a .caffemodel file.")
    with open(path, "rb") as file:
        contents = file.read()
    decoder = _Decoder(memoryview(contents), path)
    layers: dict[str, list[np.ndarray]] = {}
    pos, end = 0, len(contents)
    while pos < end:
        number, wire_type, value, pos = decoder.field(pos, end)
        if number not in _LAYER_FIELDS or wire_type != _LENGTH_DELIMITED:
            continue
        name, blob_spans = decoder.layer(value[0], value[1], *_LAYER_FIELDS[number])
        if not blob_spans:
            continue
        if name is None:
            raise decoder.error("a layer with blobs has no name")
        if name in layers:
            raise decoder.error(f"two layers with blobs are named {name[:100]!r}")
        shown = name if len(name) <= 100 else name[:100] + "..."
        layers[name] = [decoder.blob(*span, shown) for span in blob_spans]
    if not layers:
        raise ValueError(
            f"{path!r} holds no layer with weights: it is empty, not a "
            ".caffemodel (a deploy.prototxt is text, not weights), or uses the "
            "pre-2014 V0 layout, which is not supported."
        )
    return layers
