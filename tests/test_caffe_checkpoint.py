"""Tests of the protobuf-free .caffemodel reader against OpenCV's Caffe importer."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from keras_alexnet.weights import caffe_checkpoint
from keras_alexnet.weights.caffe_checkpoint import read_caffemodel
from tests import caffe_writer
from tests.bounded import run_reader
from tests.caffe_writer import alexnet_deploy_prototxt, write_caffemodel
from tests.reference_models import BVLC_ALEXNET_WEIGHT_SHAPES

# A small net with a grouped convolution and an inner product reading a
# (C, H, W) map, enough to exercise every kind of blob AlexNet has.
TINY_PROTOTXT = """name: "tiny"
layer { name: "data" type: "Input" top: "data"
  input_param { shape: { dim: 1 dim: 4 dim: 7 dim: 7 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 6 kernel_size: 3 stride: 2 group: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc"
  inner_product_param { num_output: 5 } }
"""


def _tiny_layers(seed=0):
    rng = np.random.default_rng(seed)
    return [
        (
            "conv1",
            "Convolution",
            [
                rng.standard_normal((6, 2, 3, 3), dtype=np.float32),
                rng.standard_normal(6, dtype=np.float32),
            ],
        ),
        ("relu1", "ReLU", []),
        (
            "fc",
            "InnerProduct",
            [
                rng.standard_normal((5, 6 * 3 * 3), dtype=np.float32),
                rng.standard_normal(5, dtype=np.float32),
            ],
        ),
    ]


def _opencv_blobs(prototxt_path, caffemodel_path, names):
    net = cv2.dnn.readNetFromCaffe(str(prototxt_path), str(caffemodel_path))
    blobs = {}
    for name in names:
        layer = net.getLayer(name)
        blobs[name] = [np.asarray(b) for b in layer.blobs]
    return blobs


def _declared_shape(array, layout, shape_style):
    if shape_style == "legacy" or (shape_style is None and layout == "v1"):
        return (1,) * (4 - array.ndim) + array.shape
    return array.shape


@pytest.mark.parametrize("layout", ["layer", "v1"])
@pytest.mark.parametrize("float_encoding", ["packed", "unpacked"])
@pytest.mark.parametrize("shape_style", [None, "shape_unpacked", "legacy"])
def test_tiny_net_matches_opencv(tmp_path, layout, float_encoding, shape_style):
    prototxt = tmp_path / "tiny.prototxt"
    prototxt.write_text(TINY_PROTOTXT)
    caffemodel = tmp_path / "tiny.caffemodel"
    layers = _tiny_layers()
    write_caffemodel(caffemodel, layers, layout, shape_style, float_encoding)

    got = read_caffemodel(caffemodel)
    expected = _opencv_blobs(prototxt, caffemodel, ["conv1", "fc"])

    assert list(got) == ["conv1", "fc"]  # relu1 has no blobs
    for (name, _, written), opencv_blobs in zip(
        [layers[0], layers[2]], expected.values(), strict=True
    ):
        assert len(got[name]) == len(opencv_blobs) == 2
        for blob, opencv_blob, array in zip(
            got[name], opencv_blobs, written, strict=True
        ):
            assert blob.dtype == np.float32
            assert blob.shape == _declared_shape(array, layout, shape_style)
            # OpenCV keeps convolution weights as OIHW and reshapes the rest
            # (biases to (n, 1), inner products to (out, in)): compare in order.
            assert blob.size == opencv_blob.size
            np.testing.assert_array_equal(blob.reshape(-1), opencv_blob.reshape(-1))
    np.testing.assert_array_equal(got["conv1"][0], expected["conv1"][0])


@pytest.mark.parametrize("layout", ["layer", "v1"])
def test_double_data_is_read_as_float32(tmp_path, layout):
    # OpenCV cannot read double_data; the reference is the written float64.
    layers = _tiny_layers(seed=1)
    path = tmp_path / "double.caffemodel"
    write_caffemodel(path, layers, layout, "shape", float_encoding="double")
    got = read_caffemodel(path)
    for name, _, written in (layers[0], layers[2]):
        for blob, array in zip(got[name], written, strict=True):
            assert blob.dtype == np.float32
            np.testing.assert_array_equal(blob, array)


@pytest.mark.slow
def test_full_size_bvlc_alexnet_v1_matches_opencv(tmp_path):
    shapes = BVLC_ALEXNET_WEIGHT_SHAPES
    rng = np.random.default_rng(0)
    layers = [
        (
            name,
            "Convolution" if name.startswith("conv") else "InnerProduct",
            [
                rng.random(shape, dtype=np.float32),
                rng.random(shape[0], dtype=np.float32),
            ],
        )
        for name, shape in shapes.items()
    ]
    caffemodel = tmp_path / "bvlc_alexnet.caffemodel"
    write_caffemodel(caffemodel, layers, layout="v1")  # legacy 4-D blob shapes
    prototxt = tmp_path / "deploy.prototxt"
    prototxt.write_text(alexnet_deploy_prototxt(batch_size=1))

    got = read_caffemodel(caffemodel)
    expected = _opencv_blobs(prototxt, caffemodel, shapes)
    del layers

    assert list(got) == list(shapes)
    for name, shape in shapes.items():
        weights, bias = got[name]
        assert weights.shape == (1,) * (4 - len(shape)) + shape
        assert bias.shape == (1, 1, 1, shape[0])
        for blob, opencv_blob in zip(got[name], expected[name], strict=True):
            np.testing.assert_array_equal(blob.reshape(-1), opencv_blob.reshape(-1))


def test_deploy_prototxt_describes_bvlc_alexnet(tmp_path):
    # OpenCV parses both variants into the paper's layer sequence.
    for softmax, last in ((True, "prob"), (False, "fc8")):
        path = tmp_path / f"deploy_{softmax}.prototxt"
        path.write_text(alexnet_deploy_prototxt(softmax=softmax))
        net = cv2.dnn.readNetFromCaffe(str(path))
        names = list(net.getLayerNames())
        assert names[0] == "conv1" and names[-1] == last
        assert ("prob" in names) == softmax
    text = alexnet_deploy_prototxt()
    assert text.count("group: 2") == 3
    assert "dim: 10 dim: 3 dim: 227 dim: 227" in text
    assert text.count("local_size: 5") == 2


@pytest.mark.parametrize("cut", [1, 12, -1, -5, -300])
def test_truncated_file_raises_value_error_naming_path(tmp_path, cut):
    source = tmp_path / "full.caffemodel"
    write_caffemodel(source, _tiny_layers())
    data = source.read_bytes()
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match="cut.caffemodel"):
        read_caffemodel(path)


def _field(number, payload):
    return caffe_writer._bytes_field(number, payload)


def _legacy_dims(*dims):
    return b"".join(
        caffe_writer._varint_field(number, dim) for number, dim in enumerate(dims, 1)
    )


_MALFORMED = {
    "empty": (b"", "no layer with weights"),
    "varint_cut": (b"\x80", "varint runs past the end"),
    "varint_too_long": (b"\xff" * 11, "longer than 10 bytes"),
    "length_past_end": (b"\xa2\x06\xe8\x07abc", "past the end"),  # 1000 bytes
    "group": (b"\x0b", "wire type 3"),
    "field_zero": (b"\x00", "field number 0"),
    "prototxt_text": (alexnet_deploy_prototxt().encode(), "wire type"),
    "partial_float": (
        _field(100, _field(1, b"ip") + _field(7, _field(5, b"\x00" * 6))),
        "whole number",
    ),
    "shape_without_data": (
        _field(100, _field(1, b"ip") + _field(7, _legacy_dims(3, 1, 1, 1))),
        r"shape \(3, 1, 1, 1\) but 0 values",
    ),
    "name_not_utf8": (_field(100, _field(1, b"\xff\xfe") + _field(7, b"")), "UTF-8"),
    "no_name": (_field(100, _field(7, b"")), "has no name"),
    "duplicate_name": (
        _field(100, _field(1, b"a") + _field(7, b""))
        + _field(2, _field(4, b"a") + _field(6, b"")),
        "two layers with blobs are named 'a'",
    ),
}


@pytest.mark.parametrize(("contents", "message"), _MALFORMED.values(), ids=_MALFORMED)
def test_malformed_file_raises_value_error_naming_path(tmp_path, contents, message):
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(contents)
    with pytest.raises(ValueError, match="bad.caffemodel") as info:
        read_caffemodel(path)
    assert info.match(message)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_caffemodel(tmp_path / "absent.caffemodel")


def _interleaved_blob(values, encoding):
    """A blob whose floats alternate with another field: channels = 1 each time.

    Legal protobuf (fields may come in any order, repeated scalars unpacked), and
    the worst case for finding where each run of floats ends.
    """
    other = caffe_writer._varint_field(2, 1)
    tagged = [b"\x2d" + np.float32(v).tobytes() for v in values]
    run = 2 if encoding == "pairs" else 1
    out = [b"".join(tagged[i : i + run]) + other for i in range(0, len(values), run)]
    return b"".join(out) + _legacy_dims(len(values), 1, 1, 1)


def test_unpacked_floats_between_other_fields_read_in_linear_time(tmp_path):
    # Each run of floats was found by comparing every tag to the end of the
    # blob: quadratic in the number of runs (a minute for this 700 kB file).
    values = np.arange(100_000, dtype=np.float32) / 7
    paths = []
    for encoding in ("singles", "pairs"):
        path = tmp_path / f"{encoding}.caffemodel"
        blob = _interleaved_blob(values, encoding)
        path.write_bytes(_field(100, _field(1, b"ip") + _field(7, blob)))
        paths.append(path)
        assert path.stat().st_size < 3 << 20
    outcomes = run_reader(
        "weights/caffe_checkpoint", "read_caffemodel", paths, timeout=20
    )
    for outcome in outcomes:
        assert outcome["error"] is None, outcome
    # The values themselves, read in process.
    (blob,) = read_caffemodel(paths[0])["ip"]
    np.testing.assert_array_equal(blob.reshape(-1), values)


def test_shape_with_100k_axes_is_refused_briefly(tmp_path):
    packed = _field(1, b"\x01" * 100_000)
    unpacked = caffe_writer._varint_field(1, 1) * 100_000
    paths = []
    for name, shape in {"packed": packed, "unpacked": unpacked}.items():
        path = tmp_path / f"{name}.caffemodel"
        path.write_bytes(_field(100, _field(1, b"ip") + _field(7, _field(7, shape))))
        paths.append(path)
    for path, outcome in zip(
        paths,
        run_reader("weights/caffe_checkpoint", "read_caffemodel", paths),
        strict=True,
    ):
        assert outcome["error"] == "ValueError", outcome
        assert path.name in outcome["message"]
        assert "more than 32 axes" in outcome["message"]
        assert outcome["message_length"] < 500


def test_files_of_countless_small_fields_are_refused(tmp_path, monkeypatch):
    # Each field costs Python work; 10 MB of two-byte fields took seconds.
    monkeypatch.setattr(caffe_checkpoint, "_MAX_FIELDS", 1000)
    path = tmp_path / "chaff.caffemodel"
    blob = caffe_writer._varint_field(1, 1) * 1000
    path.write_bytes(_field(100, _field(1, b"ip") + _field(7, blob)))
    with pytest.raises(ValueError, match="chaff.caffemodel.*more than 1000 fields"):
        read_caffemodel(path)


def test_a_huge_dimension_or_a_folder_names_the_file(tmp_path):
    # int64 -1 reads as 2**64 - 1: NumPy refused the shape with its own bare
    # message, even beside a zero dimension (0 values, as declared).
    shapes = {"minus_one": (2**64 - 1,), "minus_one_by_zero": (2**64 - 1, 0)}
    paths = []
    for name, shape in shapes.items():
        dims = b"".join(caffe_writer._varint(d) for d in shape)
        blob = _field(7, _field(1, dims))
        path = tmp_path / f"{name}.caffemodel"
        path.write_bytes(_field(100, _field(1, b"conv1") + _field(7, blob)))
        paths.append(path)
    folder = tmp_path / "folder.caffemodel"
    folder.mkdir()
    outcomes = run_reader(
        "weights/caffe_checkpoint", "read_caffemodel", [*paths, folder]
    )
    for path, outcome in zip(paths, outcomes[:-1], strict=True):
        assert outcome["error"] == "ValueError", outcome
        assert repr(str(path)) in outcome["message"], outcome
        assert "layer 'conv1'" in outcome["message"], outcome
        assert "18446744073709551615" in outcome["message"], outcome
        assert "beyond 2**62" in outcome["message"], outcome
    assert outcomes[-1]["error"] == "IsADirectoryError", outcomes[-1]
    assert outcomes[-1]["message"].startswith(f"{str(folder)!r} is a folder")
