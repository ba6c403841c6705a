"""Image folders with hostile or damaged files: FIFOs, device links, loops, names
that are not UTF-8, decompression bombs, damaged JPEG data, and damaged files
that a header check must catch so that nothing is dropped later unnamed.

Every file is made here, small on disk. The references are independent of the
code under test: PIL's decompression-bomb limit, TensorFlow's own decoder (a
file the listing keeps must decode), and the original pixels of a damaged JPEG.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import struct
import warnings
import zlib

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from keras_alexnet.data import (
    imagenet_dataset,
    list_image_folder,
    load_image,
    prepare_imagenet,
)
from keras_alexnet.data.image_checks import (
    DEFAULT_MAX_PIXELS,
    check_image_file,
    first_frame,
    guarded_image_bytes,
)
from keras_alexnet.weights.spec import resolve_weights
from tests.data_fixtures import TREE_CLASSES, encode, natural_image, write

CLASS = TREE_CLASSES[0]


def _list(root, **kwargs):
    """Lists `root` in a thread, so that a listing that blocks fails the test."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(_list_quietly, root, **kwargs)
        return future.result(timeout=60)


def _list_quietly(root, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list_image_folder(root, **kwargs)


def _skipped(folder):
    return {os.path.basename(path): why for path, why in folder.skipped}


def _good_jpeg(seed=0, size=32):
    return encode(natural_image(size, size, seed))


def test_only_regular_files_are_read(tmp_path):
    root = tmp_path / "root"
    folder = root / CLASS
    write(str(folder / "good.JPEG"), _good_jpeg())
    os.mkfifo(folder / "fifo.JPEG")  # opening it for reading would block
    os.symlink("/dev/zero", folder / "zero.JPEG")  # reading it never ends
    os.symlink("loop.JPEG", folder / "loop.JPEG")  # points at itself
    os.symlink("absent.JPEG", folder / "broken.JPEG")
    os.symlink(folder / "good.JPEG", folder / "link.JPEG")  # followed
    (tmp_path / "elsewhere").mkdir()
    write(str(tmp_path / "elsewhere" / "deep.JPEG"), _good_jpeg(1))
    os.symlink(tmp_path / "elsewhere", folder / "linked_folder")
    for check_files in ("header", "decode", None):
        listed = _list(root, check_files=check_files)
        names = [os.path.basename(path) for path in listed.files]
        assert names == ["good.JPEG", "link.JPEG"], check_files
        skipped = _skipped(listed)
        assert set(skipped) == {
            "fifo.JPEG",
            "zero.JPEG",
            "loop.JPEG",
            "broken.JPEG",
            "linked_folder",
        }
        assert "not a regular file" in skipped["fifo.JPEG"]
        assert "not a regular file" in skipped["zero.JPEG"]
        assert "looping link" in skipped["loop.JPEG"]
        assert "a link to a folder" in skipped["linked_folder"]


def test_a_flat_folder_skips_what_is_not_a_regular_file(tmp_path):
    images = tmp_path / "images"
    write(str(images / "ILSVRC2012_val_00000001.JPEG"), _good_jpeg())
    os.mkfifo(images / "ILSVRC2012_val_00000002.JPEG")
    labels = tmp_path / "labels.txt"
    labels.write_text(f"{CLASS}\n{CLASS}\n")
    listed = _list(images, labels_file=labels, check_files=None)
    assert len(listed.files) == 1
    assert "not a regular file" in _skipped(listed)["ILSVRC2012_val_00000002.JPEG"]


def test_a_root_that_is_a_looping_link_is_reported(tmp_path):
    root = tmp_path / "root"
    os.symlink(root, root)
    with pytest.raises(ValueError, match="symbolic link that loops"):
        list_image_folder(root)
    dangling = tmp_path / "dangling"
    os.symlink(tmp_path / "nowhere", dangling)
    with pytest.raises(ValueError, match="link to something that does not exist"):
        list_image_folder(dangling)


def test_names_that_are_not_utf8_are_skipped_with_a_readable_message(tmp_path):
    folder = os.fsencode(tmp_path / CLASS)
    os.makedirs(folder)
    with open(os.path.join(folder, b"good.JPEG"), "wb") as f:
        f.write(_good_jpeg())
    with open(os.path.join(folder, b"caf\xe9.JPEG"), "wb") as f:
        f.write(_good_jpeg(1))
    with pytest.warns(UserWarning, match=r"caf\\xe9.JPEG: its name is not valid UTF-8"):
        listed = list_image_folder(tmp_path)
    assert [os.path.basename(p) for p in listed.files] == ["good.JPEG"]
    # The pipeline reads the folder without a deep TensorFlow error.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = imagenet_dataset(
            "validation",
            source=str(tmp_path),
            variant=None,
            image_size=16,
            resize_size=16,
            batch_size=4,
        )
    images, labels = next(iter(dataset))
    assert images.shape == (1, 16, 16, 3) and labels.numpy().tolist() == [0]
    with pytest.raises(ValueError, match="not valid UTF-8"):
        list_image_folder(
            os.path.join(os.fsencode(tmp_path), b"\xff").decode(
                "utf-8", "surrogateescape"
            )
        )


# -- decompression bombs -------------------------------------------------------


def _png(width, height, rows=1, idat=None):
    """A grayscale PNG declaring width x height, with `rows` rows of data."""

    def chunk(kind, data):
        crc = zlib.crc32(data, zlib.crc32(kind))
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    if idat is None:
        idat = zlib.compress(b"\x00" * (rows * (width + 1)), 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def _with_jpeg_size(data, width, height):
    """A JPEG whose frame header declares another size."""
    at = data.index(b"\xff\xc0") + 5
    return data[:at] + struct.pack(">HH", height, width) + data[at + 4 :]


def _bombs():
    small = encode(natural_image(16, 16, 0), "PNG")
    gif = encode(natural_image(16, 16, 0), "GIF")
    bmp = encode(natural_image(16, 16, 0), "BMP")
    webp = encode(natural_image(16, 16, 0), "WEBP", lossless=True)
    side = 23_000
    return {
        "png.JPEG": _png(side, side, rows=1),
        "jpeg.JPEG": _with_jpeg_size(_good_jpeg(), side, side),
        "gif.JPEG": gif[:6] + struct.pack("<HH", 65535, 65535) + gif[10:],
        "bmp.JPEG": bmp[:18] + struct.pack("<ii", side, side) + bmp[26:],
        # VP8L stores 14-bit sizes: 16384 at most.
        "webp.JPEG": webp[:21] + struct.pack("<I", 16383 | 16383 << 14) + webp[25:],
        "small.JPEG": small,
    }


def test_decompression_bombs_are_refused_from_their_header(tmp_path):
    # The reference: PIL's own limit, and PIL's verdict on the same files.
    assert PIL.Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS
    for name, data in _bombs().items():
        write(str(tmp_path / CLASS / name), data)
        assert len(data) < 70_000
    for check_files in ("header", "decode"):
        listed = _list(tmp_path, check_files=check_files)
        assert [os.path.basename(p) for p in listed.files] == ["small.JPEG"]
        skipped = _skipped(listed)
        assert len(skipped) == 5
        for name, why in skipped.items():
            assert "more than max_pixels=89478485" in why, (name, why)
    # PIL refuses the PNG bomb too (above twice its limit it raises).
    with pytest.raises(PIL.Image.DecompressionBombError):
        PIL.Image.open(tmp_path / CLASS / "png.JPEG")


def test_max_pixels_is_configurable(tmp_path):
    write(str(tmp_path / CLASS / "a.JPEG"), _good_jpeg(size=32))
    write(str(tmp_path / CLASS / "b.JPEG"), _good_jpeg(size=16))
    assert len(_list(tmp_path, max_pixels=32 * 32).files) == 2
    listed = _list(tmp_path, max_pixels=32 * 32 - 1)
    assert len(listed.files) == 1
    assert "declares 32x32 pixels, more than max_pixels=1023" in listed.skipped[0][1]
    for bad in (0, -5):
        with pytest.raises(ValueError, match=f"Received: max_pixels={bad}"):
            list_image_folder(tmp_path, max_pixels=bad)
    with pytest.raises(TypeError, match="Received: max_pixels=1.5"):
        list_image_folder(tmp_path, max_pixels=1.5)


# -- damaged files: caught while listing, never dropped later unnamed ----------


def _damaged_jpeg_data():
    """A JPEG whose entropy-coded data is damaged, and the original pixels."""
    image = natural_image(64, 64, 3)
    data = encode(image, quality=90)
    scan = data.index(b"\xff\xda") + 200
    return data[:scan] + b"\x00" * 300 + data[scan + 300 :], image


def test_damaged_jpeg_data_is_caught_by_decode_check(tmp_path):
    damaged, image = _damaged_jpeg_data()
    # TensorFlow decodes it without an error, into something far from the image
    # (the undamaged file decodes close to it: JPEG's loss only).
    garbage = tf.io.decode_jpeg(damaged).numpy().astype(float)
    clean = tf.io.decode_jpeg(encode(image, quality=90)).numpy().astype(float)
    assert np.abs(garbage - image).mean() > 5 * np.abs(clean - image).mean()
    write(str(tmp_path / CLASS / "damaged.JPEG"), damaged)
    write(str(tmp_path / CLASS / "good.JPEG"), _good_jpeg())
    listed = _list(tmp_path, check_files="decode")
    assert [os.path.basename(p) for p in listed.files] == ["good.JPEG"]
    assert "Corrupt JPEG data" in _skipped(listed)["damaged.JPEG"]


def _damaged_files():
    jpeg = _good_jpeg()
    png = encode(natural_image(16, 16, 0), "PNG")
    gif = encode(natural_image(16, 16, 0), "GIF")
    bmp = encode(natural_image(16, 16, 0), "BMP")
    webp = encode(natural_image(16, 16, 0), "WEBP", lossless=True)
    idat = png.index(b"IDAT")
    sof = jpeg.index(b"\xff\xc0")
    dht = jpeg.index(b"\xff\xc4")
    bad_stream = zlib.compress(b"\x00" * 17 * 16)[:-6] + b"\x00\x00\x00\x00\x00\x00"
    return {
        # Cut short, each with what the tail check of the old header check
        # looked for appended (an end-of-image marker, an IEND chunk).
        "jpeg_cut.JPEG": jpeg[: len(jpeg) // 2] + b"\xff\xd9",
        "jpeg_without_frame.JPEG": jpeg[:sof] + jpeg[sof + 19 :],
        # The first code-length count of a Huffman table says 255 codes of one
        # bit: more than 256 symbols in all (libjpeg: "Bogus Huffman table").
        "jpeg_bogus_huffman.JPEG": jpeg[: dht + 5] + b"\xff" + jpeg[dht + 6 :],
        "png_bad_crc.JPEG": png[: idat + 10]
        + bytes([png[idat + 10] ^ 1])
        + png[idat + 11 :],
        "png_bad_stream.JPEG": _png(16, 16, idat=bad_stream),
        "png_cut.JPEG": png[: len(png) // 2] + png[-12:],
        "gif_cut.JPEG": gif[: len(gif) // 2],
        "bmp_cut.JPEG": bmp[: len(bmp) // 2],
        "webp_cut.JPEG": webp[: len(webp) // 2],
    }


def test_header_check_keeps_only_files_that_decode(tmp_path):
    for name, data in _damaged_files().items():
        write(str(tmp_path / CLASS / name), data)
    write(str(tmp_path / CLASS / "good.JPEG"), _good_jpeg())
    write(str(tmp_path / CLASS / "good_png.JPEG"), _png(16, 16, rows=16))
    listed = _list(tmp_path, check_files="header")
    # The reference: TensorFlow's decoder, which the pipeline uses later.
    for path in listed.files:
        tf.io.decode_image(tf.io.read_file(path), channels=3)
    for name in _damaged_files():
        with pytest.raises(tf.errors.InvalidArgumentError):
            data = (tmp_path / CLASS / name).read_bytes()
            tf.io.decode_image(data, channels=3, expand_animations=False)
    assert sorted(_skipped(listed)) == sorted(_damaged_files())
    assert [os.path.basename(p) for p in listed.files] == ["good.JPEG", "good_png.JPEG"]


def test_on_error_raise_raises_a_value_error_before_training(tmp_path):
    # Passes every header check, fails to decode: raise must find it up front.
    write(str(tmp_path / CLASS / "good.JPEG"), _good_jpeg())
    write(str(tmp_path / CLASS / "late.JPEG"), _damaged_jpeg_data()[0])
    with pytest.raises(ValueError, match="late.JPEG"):
        imagenet_dataset(
            "train",
            source=str(tmp_path),
            variant=None,
            image_size=16,
            resize_size=16,
            batch_size=2,
            on_error="raise",
        )


def test_files_cut_within_their_first_bytes_are_skipped_not_crashed_on(tmp_path):
    # A 7-byte GIF made the header check raise struct.error out of the listing.
    image = natural_image(16, 16, 0)
    sources = {
        "jpeg": _good_jpeg(),
        "png": encode(image, "PNG"),
        "gif": encode(image, "GIF"),
        "bmp": encode(image, "BMP"),
        "webp": encode(image, "WEBP", lossless=True),
    }
    for kind, data in sources.items():
        for length in range(1, 40):
            write(str(tmp_path / CLASS / f"{kind}{length:02d}.JPEG"), data[:length])
    write(str(tmp_path / CLASS / "whole.JPEG"), _good_jpeg())
    for check_files in ("header", "decode"):
        listed = _list(tmp_path, check_files=check_files)
        assert [os.path.basename(p) for p in listed.files] == ["whole.JPEG"]
        assert len(listed.skipped) == 5 * 39


def _animated_gif(frames=400, side=64):
    """A GIF of `frames` frames, each one colour of its own palette index."""
    palette = [value for index in range(256) for value in (index, 255 - index, 7)]
    images = []
    for index in range(frames):
        image = PIL.Image.new("P", (side, side), index % 200)
        image.putpalette(palette)
        images.append(image)
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def test_of_a_gif_only_the_first_frame_is_decoded(tmp_path):
    data = _animated_gif()
    assert PIL.Image.open(io.BytesIO(data)).n_frames == 400 and len(data) < 100_000
    first = first_frame(data)
    # The reference: PIL reads one frame from it, with the pixels of the
    # original's first frame.
    image = PIL.Image.open(io.BytesIO(first))
    assert image.n_frames == 1
    original = PIL.Image.open(io.BytesIO(data))
    np.testing.assert_array_equal(
        np.asarray(image.convert("RGB")), np.asarray(original.convert("RGB"))
    )
    assert len(tf.io.decode_gif(first)) == 1
    # Every decoding path decodes that frame only: the check, load_image
    # (classify), the pipeline (train, evaluate) and prepare share the guard.
    path = write(str(tmp_path / CLASS / "anim.gif"), data)
    assert check_image_file(path, decode=True) is None
    decoded = guarded_image_bytes(tf.constant(data)).numpy()
    assert decoded == first
    assert first_frame(b"\xff\xd8\xff" + data) == b"\xff\xd8\xff" + data


def test_an_oversized_image_is_refused_with_its_size_on_every_path(tmp_path):
    # A JPEG declaring 20000x20000 (TensorFlow alone says "Invalid JPEG data"
    # past 2**29 bytes), a PNG declaring 16000x16000: tiny files.
    jpeg = _with_jpeg_size(_good_jpeg(), 20_000, 20_000)
    png = _png(16_000, 16_000)
    for data, size in ((jpeg, "20000x20000"), (png, "16000x16000")):
        # Eagerly a PNG's guard runs in Python; in a graph both are op errors.
        errors = (ValueError, tf.errors.InvalidArgumentError)
        with pytest.raises(errors, match=f"declares {size} p"):
            guarded_image_bytes(tf.constant(data)).numpy()
        dataset = tf.data.Dataset.from_tensors(data).map(guarded_image_bytes)
        with pytest.raises(tf.errors.OpError, match=f"declares {size} p"):
            list(dataset)
    # Unchecked folders reach the guard in the pipeline: prepare names the file.
    write(str(tmp_path / "source" / CLASS / "big.JPEG"), jpeg)
    with pytest.raises(ValueError, match=r"big.JPEG': an image declares 20000x2000"):
        prepare_imagenet(
            str(tmp_path / "source"), str(tmp_path / "out"), check_files=None, verbose=0
        )


def test_a_looping_link_inside_the_root_is_skipped_not_fatal(tmp_path):
    write(str(tmp_path / CLASS / "a.JPEG"), _good_jpeg())
    os.symlink(tmp_path / "self", tmp_path / "self")
    listed = _list(tmp_path)
    assert [os.path.basename(path) for path in listed.files] == ["a.JPEG"]
    assert "a broken or looping link" in _skipped(listed)["self"]
    assert os.path.islink(tmp_path / "self")  # left as it was


class _BytesPath:
    def __fspath__(self):
        return b"/tmp"


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda path: list_image_folder(path), "root"),
        (lambda path: imagenet_dataset("train", source=path), "source"),
        (lambda path: load_image(path), "path"),
        (lambda path: prepare_imagenet(path, "/nonexistent/out"), "source"),
        (lambda path: prepare_imagenet("/nonexistent/in", path), "output_dir"),
        (lambda path: resolve_weights(path), "weights"),
    ],
)
def test_a_path_of_bytes_is_a_type_error_naming_the_argument(call, name):
    with pytest.raises(TypeError, match=rf"`{name}` should be a path: a str or an "):
        call(_BytesPath())
