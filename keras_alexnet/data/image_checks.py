"""Checks that an image file can be read, before training meets it.

JPEG and PNG headers are parsed here (ITU T.81; the PNG specification), other
formats are decoded, and an image declaring more than `max_pixels` pixels is
refused before decoding. docs/data.md explains what each check catches.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import os
import stat
import struct
import sys
import zlib
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from keras_alexnet.data import storage

__all__ = [
    "CHECK_MODES",
    "DEFAULT_MAX_PIXELS",
    "check_image_file",
    "check_image_files",
    "first_frame",
    "guarded_image_bytes",
    "image_format",
]

# Formats `tf.io.decode_image` reads, by their leading bytes.
_IMAGE_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"\xff\x0a", "jpeg xl"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jpeg xl"),
)
_HEAD_BYTES = 32
# A complete JPEG ends with its end-of-image marker, a PNG with its IEND chunk;
# some writers pad or append a little after them, hence a window, not the last bytes.
_TAIL_BYTES = 1024
# The values of `check_files`: parse headers, decode everything, or check nothing.
CHECK_MODES = ("header", "decode", None)

# Listings of at least this many files show a progress bar while checked.
_PROGRESS_MIN_FILES = 5000
# Images declaring more pixels are refused before decoding: PIL's default
# `Image.MAX_IMAGE_PIXELS` (a 64 kB PNG can declare 23000x23000 pixels, which
# decode to 1.5 GB).
DEFAULT_MAX_PIXELS = 89_478_485


def image_format(head: bytes) -> str | None:
    """Returns the format of an encoded image from its first bytes, or `None`."""
    for signature, name in _IMAGE_SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


class _Damaged(Exception):
    """An image file whose structure is wrong; the message says how."""


@dataclasses.dataclass(frozen=True)
class _Header:
    kind: str
    width: int
    height: int
    # False when the structure looks cut short or unusual: decoding decides.
    complete: bool


def check_image_file(
    path: str | os.PathLike,
    *,
    decode: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> str | None:
    """Checks one image file as `list_image_folder` does; returns the problem.

    Args:
        path: the file.
        decode: decode it (`check_files="decode"`) rather than check its headers.
        max_pixels: the most pixels (width times height) it may declare.

    Returns:
        `None` if the file is a readable image, else why not, e.g. `"not a
        regular file (a FIFO, socket or device)"`.
    """
    check = _decode_problem if decode else _header_problem
    return check(os.fspath(path), max_pixels)


def check_image_files(
    files: Sequence[str], mode: str, max_pixels: int = DEFAULT_MAX_PIXELS
) -> list[str | None]:
    """Checks many files with `check_image_file`, in threads.

    Args:
        files: the paths.
        mode: `"header"` or `"decode"`.
        max_pixels: the most pixels (width times height) a file may declare.

    Returns:
        The problem of each file, in order: `None` for a readable image.
    """
    # Opening files is I/O bound and the decoders release the GIL, so threads
    # overlap both.
    workers = min(32, 4 * (os.cpu_count() or 1))
    check = _decode_problem if mode == "decode" else _header_problem
    # A folder of ImageNet's size takes minutes to check: show a progress bar.
    progress = None
    if len(files) >= _PROGRESS_MIN_FILES:
        import keras

        print(f"Checking {len(files)} files ({mode})")
        progress = keras.utils.Progbar(
            len(files), unit_name="file", verbose=1 if sys.stdout.isatty() else 2
        )
    problems: list[str | None] = []
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for problem in pool.map(
            lambda path: check(path, max_pixels), files, chunksize=64
        ):
            problems.append(problem)
            if progress is not None and len(problems) % 1000 == 0:
                progress.update(len(problems))
    if progress is not None:
        progress.update(len(problems), finalize=True)
    return problems


def _open_regular(path: str) -> tuple[Any, int]:
    """Opens `path` for reading, refusing anything but a regular file.

    Returns `(file, size in bytes)`. Opened without blocking, then checked on
    the open descriptor: a FIFO named like an image would block `open` forever,
    and a link to `/dev/zero` would read forever; a file swapped for one after
    the listing is still refused. A URL is opened with `tf.io.gfile` (object
    stores hold files and folders only).
    """
    if storage.is_url(path):
        size = storage.getsize(path)
        # A folder only when empty: asking every file is a request more each.
        if size == 0 and storage.isdir(path):
            raise _Damaged("not a regular file (a folder)")
        return tf.io.gfile.GFile(path, "rb"), size
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Damaged("not a regular file (a FIFO, socket or device)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _header_problem(path: str, max_pixels: int) -> str | None:
    try:
        f, size = _open_regular(path)
        with f:
            header = _read_header(f, size, max_pixels)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    except tf.errors.OpError as error:  # a URL's read failing midway
        return f"cannot be read ({error.message})"
    except _Damaged as error:
        return str(error)
    problem = _size_problem(header, max_pixels)
    if problem is None and not header.complete:
        # Cut short, or followed by a long trailer: only decoding can tell.
        return _decode_problem(path, max_pixels)
    return problem


def _decode_problem(path: str, max_pixels: int) -> str | None:
    try:
        f, size = _open_regular(path)
        with f:
            header = _read_header(f, size, max_pixels)
            problem = _size_problem(header, max_pixels)
            if problem is not None:
                return problem  # before decoding it: a bomb decodes to gigabytes
            f.seek(0)
            contents = f.read()
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    except tf.errors.OpError as error:  # a URL's read failing midway
        return f"cannot be read ({error.message})"
    except _Damaged as error:
        return str(error)
    contents = first_frame(contents)
    if header.kind == "jpeg":
        # Stricter than TensorFlow's decoder: of 3,000 damaged JPEGs (baseline,
        # progressive, CMYK, grayscale), none passed it that TensorFlow refused.
        return _strict_jpeg_problem(contents)
    try:
        tf.io.decode_image(contents, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        reason = error.message.split("[Op:")[0].strip().split("}}")[-1].strip()
        return f"cannot be decoded ({reason})"
    return None


def guarded_image_bytes(
    contents: tf.Tensor, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tf.Tensor:
    """An encoded image made safe to decode, inside a TensorFlow graph.

    The guard every decoding path shares (classify, evaluate, training and
    `prepare_imagenet`): the size an image declares is read from its header
    and an image of more than `max_pixels` pixels fails with its size, before
    it is decoded; of an animated GIF only the first frame is kept, which is
    all `decode_image(expand_animations=False)` returns but not all it decodes.

    Args:
        contents: a scalar string tensor, the encoded image.
        max_pixels: the most pixels (width times height) it may declare.

    Returns:
        The bytes to decode: `contents`, or a GIF's first frame.

    Raises:
        tf.errors.InvalidArgumentError: when run, for an image over the limit;
            the message gives its size.
    """
    is_jpeg = tf.equal(tf.strings.substr(contents, 0, 3), b"\xff\xd8\xff")

    def jpeg() -> tf.Tensor:
        # TensorFlow reads a JPEG's size from its header (and refuses
        # images over 2**29 bytes only as "Invalid JPEG data").
        shape = tf.cast(tf.image.extract_jpeg_shape(contents), tf.int64)
        message = tf.strings.join(
            [
                "an image declares ",
                tf.strings.as_string(shape[1]),
                "x",
                tf.strings.as_string(shape[0]),
                f" pixels, more than max_pixels={max_pixels} (a decompression bomb?)",
            ]
        )
        within = shape[0] * shape[1] <= max_pixels
        with tf.control_dependencies([tf.debugging.Assert(within, [message])]):
            return tf.identity(contents)

    def other() -> tf.Tensor:
        guarded = tf.numpy_function(
            lambda data: _guarded_bytes(_as_bytes(data), max_pixels),
            [contents],
            tf.string,
            stateful=False,
        )
        return tf.reshape(guarded, [])

    return tf.cond(is_jpeg, jpeg, other)


def _as_bytes(data: Any) -> bytes:
    # A scalar string reaches a NumPy function as bytes in a graph, as a 0-d
    # array of bytes when run eagerly.
    return data if isinstance(data, bytes) else data.item()


def _guarded_bytes(contents: bytes, max_pixels: int) -> bytes:
    """`contents` (a GIF's first frame), or a `ValueError` if over the limit."""
    try:
        header = _read_size(contents)
    except _Damaged:
        return contents  # the decoder reports it
    if header is not None:
        problem = _size_problem(header, max_pixels)
        if problem is not None:
            raise ValueError(f"an image {problem}")
    return first_frame(contents)


def _read_size(contents: bytes) -> _Header | None:
    """The size an image declares, from its header; `None` if it cannot tell."""
    head = contents[:_HEAD_BYTES]
    kind = image_format(head)
    f = io.BytesIO(contents)
    if kind == "png" and len(contents) >= 24:
        width, height = struct.unpack(">II", contents[16:24])
        return _Header(kind, width, height, complete=False)
    if kind == "gif":
        return _gif_size(contents)
    if kind in ("bmp", "webp", "jpeg"):
        return _read_header(f, len(contents), DEFAULT_MAX_PIXELS)
    return None


def _gif_size(contents: bytes) -> _Header:
    """A GIF's size: the larger of its screen and its first frame."""
    width, height = struct.unpack("<HH", contents[6:10])
    frame = _gif_first_image(contents)
    if frame is not None:
        width, height = max(width, frame[1]), max(height, frame[2])
    return _Header("gif", width, height, complete=False)


def first_frame(contents: bytes) -> bytes:
    """The first frame of an animated GIF as a GIF of its own; others as they are.

    TensorFlow decodes every frame of a GIF even when asked for the first (a
    GIF of 400 frames takes seconds and hundreds of megabytes); the first
    frame alone decodes to the same pixels.

    Args:
        contents: an encoded image.

    Returns:
        The GIF's header, colour table and extensions up to the end of its
        first image, then its trailer; `contents` itself for other formats or
        a GIF whose structure cannot be followed (the decoder reports it).
    """
    if image_format(contents[:_HEAD_BYTES]) != "gif":
        return contents
    frame = _gif_first_image(contents)
    if frame is None or frame[0] >= len(contents) - 1:
        return contents
    return contents[: frame[0]] + b"\x3b"


def _gif_first_image(contents: bytes) -> tuple[int, int, int] | None:
    """`(end of the first image's data, width, height)`, or `None` if damaged.

    GIF89a: the screen descriptor and global colour table, then extension
    blocks (0x21) and images (0x2C), each image's data in sub-blocks.
    """
    if len(contents) < 13:
        return None
    flags = contents[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    try:
        while pos < len(contents):
            block = contents[pos]
            if block == 0x21:  # extension: label, sub-blocks
                pos = _gif_skip_sub_blocks(contents, pos + 2)
            elif block == 0x2C:  # image: descriptor, colour table, LZW size, data
                width, height, flags = struct.unpack(
                    "<HHB", contents[pos + 5 : pos + 10]
                )
                pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
                return _gif_skip_sub_blocks(contents, pos + 1), width, height
            else:
                return None
    except (IndexError, struct.error):
        return None
    return None


def _gif_skip_sub_blocks(contents: bytes, pos: int) -> int:
    """The position after the sub-blocks starting at `pos` and their terminator."""
    while contents[pos] != 0:
        pos += 1 + contents[pos]
    return pos + 1


def _strict_jpeg_problem(contents: bytes) -> str | None:
    # TensorFlow decodes a JPEG whose entropy-coded data is damaged without an
    # error, into garbage: libjpeg only warns ("Corrupt JPEG data: premature
    # end of data segment"). simplejpeg's strict mode turns those warnings into
    # errors; decoding at 1/8 scale still reads every coefficient.
    simplejpeg = _simplejpeg()
    try:
        colorspace = simplejpeg.decode_jpeg_header(contents)[2]
        simplejpeg.decode_jpeg(
            contents,
            colorspace="CMYK" if colorspace == "CMYK" else "RGB",
            min_factor=8,
            strict=True,
        )
    except ValueError as error:
        return f"cannot be decoded ({error})"
    return None


def _simplejpeg() -> Any:
    try:
        import simplejpeg
    except ImportError as error:
        raise ImportError(
            "Checking JPEG files needs simplejpeg, a dependency of keras-alexnet: "
            "`pip install simplejpeg`."
        ) from error
    return simplejpeg


def _size_problem(header: _Header, max_pixels: int) -> str | None:
    if header.width <= 0 or header.height <= 0:
        return f"declares an empty {header.width}x{header.height} image"
    if header.width * header.height > max_pixels:
        return (
            f"declares {header.width}x{header.height} pixels, more than "
            f"max_pixels={max_pixels} (a decompression bomb?)"
        )
    return None


def _read_header(f: Any, size: int, max_pixels: int) -> _Header:
    """Reads an image's size and checks its structure, reading little of it."""
    if size == 0:
        raise _Damaged("empty file")
    head = f.read(_HEAD_BYTES)
    kind = image_format(head)
    if kind is None:
        raise _Damaged(
            "not an image (no JPEG, PNG, GIF, BMP, WebP or JPEG XL signature)"
        )
    if kind == "jpeg":
        return _jpeg_header(f, size)
    if kind == "png":
        return _png_header(f, size, max_pixels)
    # GIF, BMP and WebP are rare in image datasets and their damage hides in
    # the compressed data: after the pixel cap, decoding decides.
    if kind == "gif" and len(head) >= 10:
        f.seek(0)
        return _gif_size(f.read())
    if kind == "bmp" and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return _Header(kind, abs(width), abs(height), complete=False)
    if kind == "webp":
        return _webp_header(f, head)
    return _Header(kind, 1, 1, complete=False)  # JPEG XL: decoding decides


# JPEG start-of-frame markers (ITU T.81, table B.1): SOF0-SOF15 but DHT (C4),
# JPG (C8) and DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Progressive and hierarchical frames, whose later scans follow the first.
_JPEG_MULTI_SCAN_SOF = frozenset({0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xCA, 0xCB, 0xCD})
_JPEG_MAX_SEGMENTS = 1000


def _parse_jpeg_headers(headers: bytes) -> None:
    """Has libjpeg-turbo (through simplejpeg) parse a JPEG's headers."""
    simplejpeg = _simplejpeg()
    try:
        simplejpeg.decode_jpeg_header(headers)
    except ValueError as error:
        raise _Damaged(f"damaged JPEG: {error}") from None


def _jpeg_header(f: Any, size: int) -> _Header:
    """Walks the marker segments of a JPEG to its first scan (ITU T.81, B.1)."""
    pos, frame, tables = 2, None, set()
    for _ in range(_JPEG_MAX_SEGMENTS):
        f.seek(pos)
        marker = f.read(4)
        if len(marker) < 4 or marker[0] != 0xFF:
            raise _Damaged(f"damaged JPEG: no marker at byte {pos}")
        if marker[1] == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", marker[2:])
        if length < 2 or pos + 2 + length > size:
            raise _Damaged(f"damaged JPEG: a segment at byte {pos} runs past the end")
        if marker[1] == 0xDB:  # quantization tables: (precision, id), values
            segment, at = f.read(length - 2), 0
            while at < len(segment):
                tables.add(segment[at] & 0x0F)
                at += 1 + (128 if segment[at] >> 4 else 64)
        elif marker[1] in _JPEG_SOF:
            progressive = marker[1] in _JPEG_MULTI_SCAN_SOF
            frame = f.read(length - 2)
            if len(frame) < 6 or len(frame) < 6 + 3 * frame[5]:
                raise _Damaged("damaged JPEG: its frame header is cut short")
        elif marker[1] == 0xDA:  # start of scan: the entropy-coded data follows
            if frame is None:
                raise _Damaged("damaged JPEG: a scan before any frame header")
            precision, height, width, count = struct.unpack(">BHHB", frame[:6])
            used = {frame[6 + 3 * i + 2] for i in range(count)}
            # libjpeg's own reading of the headers (Huffman tables, scan
            # parameters), without decoding the image: what it refuses here,
            # TensorFlow would refuse later.
            f.seek(0)
            _parse_jpeg_headers(f.read(pos + 2 + length))
            if progressive or precision != 8 or count not in (1, 3, 4):
                # More scans with their own tables, 12-bit samples, or two
                # components: decoding decides.
                return _Header("jpeg", width, height, complete=False)
            if not used <= tables:
                raise _Damaged("damaged JPEG: a quantization table is not defined")
            f.seek(max(0, size - _TAIL_BYTES))
            complete = b"\xff\xd9" in f.read()
            return _Header("jpeg", width, height, complete)
        pos += 2 + length
    raise _Damaged(f"damaged JPEG: no scan in its first {_JPEG_MAX_SEGMENTS} segments")


def _png_header(f: Any, size: int, max_pixels: int) -> _Header:
    """Walks a PNG's chunks, checking each CRC and inflating the image data.

    Inflating (without unfiltering) costs a fraction of decoding and finds the
    damage a CRC cannot: a stream written wrong. Its output is bounded by the
    size the header declares. (PNG specification, sections 5 and 10.)
    """
    pos, width, height, seen_data = 8, 0, 0, False
    inflater, inflated = zlib.decompressobj(), 0
    raw_size: int | None = 0
    while pos + 12 <= size:
        f.seek(pos)
        length, kind = struct.unpack(">I4s", f.read(8))
        if pos + 12 + length > size:
            break  # cut short
        data = f.read(length)
        (crc,) = struct.unpack(">I", f.read(4))
        if zlib.crc32(data, zlib.crc32(kind)) != crc:
            raise _Damaged(
                f"damaged PNG: chunk {kind.decode('latin-1')!r} at byte {pos} "
                "fails its CRC"
            )
        if pos == 8:
            if kind != b"IHDR" or length != 13:
                raise _Damaged("damaged PNG: it does not start with its IHDR chunk")
            width, height, depth, color, _, _, interlace = struct.unpack(
                ">IIBBBBB", data
            )
            channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color, 4)
            problem = _size_problem(_Header("png", width, height, True), max_pixels)
            if problem is not None:
                raise _Damaged(problem)  # before inflating gigabytes
            raw_size = height * (1 + (width * channels * depth + 7) // 8)
            if interlace:
                raw_size = None  # Adam7 passes: only the end of the stream counts
        if kind == b"IDAT":
            seen_data = True
            inflated += _inflate(inflater, data, raw_size, inflated)
        if kind == b"IEND":
            if not seen_data or not inflater.eof:
                raise _Damaged("damaged PNG: its image data ends early")
            if raw_size is not None and inflated != raw_size:
                raise _Damaged(
                    f"damaged PNG: its image data holds {inflated} bytes, its "
                    f"header needs {raw_size}"
                )
            return _Header("png", width, height, complete=True)
        pos += 12 + length
    if pos == 8:
        raise _Damaged("damaged PNG: it ends before its IHDR chunk")
    return _Header("png", width, height, complete=False)


def _inflate(inflater: Any, data: bytes, raw_size: int | None, done: int) -> int:
    """Inflates `data` in bounded steps; returns the bytes it produced."""
    produced = 0
    try:
        while data and not inflater.eof:
            out = inflater.decompress(data, 1 << 20)
            produced += len(out)
            if raw_size is not None and done + produced > raw_size:
                raise _Damaged("damaged PNG: its image data inflates past its size")
            data = inflater.unconsumed_tail
    except zlib.error as error:
        raise _Damaged(
            f"damaged PNG: its image data does not inflate ({error})"
        ) from None
    return produced


def _webp_header(f: Any, head: bytes) -> _Header:
    """Reads a WebP's size from its first chunk (RFC 9649)."""
    chunk = head[12:16]
    f.seek(20)
    data = f.read(10)
    if chunk == b"VP8X" and len(data) >= 10:
        width = 1 + int.from_bytes(data[4:7], "little")
        height = 1 + int.from_bytes(data[7:10], "little")
    elif chunk == b"VP8L" and len(data) >= 5:
        bits = int.from_bytes(data[1:5], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    elif chunk == b"VP8 " and len(data) >= 10:
        width = int.from_bytes(data[6:8], "little") & 0x3FFF
        height = int.from_bytes(data[8:10], "little") & 0x3FFF
    else:
        width = height = 1  # unknown: decoding decides
    return _Header("webp", width, height, complete=False)
