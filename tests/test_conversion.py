"""Tests of checkpoint conversion against PyTorch and OpenCV, run independently.

Two full-size random checkpoints are made here: a torchvision state dict saved
by `torch.save`, and a `.caffemodel` written by `tests/caffe_writer.py`. Their
weights are He-scaled so that activations keep their size through the network
and the logits tell images apart. The converted models are checked twice: by
`parity_report`, and by references written in this file (PyTorch's functional
ops on the state dict; OpenCV on the test suite's own prototxt), so that the
report's own references are checked too.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

import cv2
import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from keras_alexnet import AlexNet, preprocess_input
from keras_alexnet.conversion import convert_checkpoint, save_model_atomically
from keras_alexnet.parity import ParityReport, parity_report
from keras_alexnet.resources import sample_images
from keras_alexnet.weights.caffe_prototxt import alexnet_deploy_prototxt
from tests import caffe_writer
from tests.backend_utils import to_numpy
from tests.reference_models import BVLC_ALEXNET_WEIGHT_SHAPES, TORCHVISION_WEIGHT_SHAPES

TORCHVISION_SHAPES = TORCHVISION_WEIGHT_SHAPES
CAFFE_SHAPES = BVLC_ALEXNET_WEIGHT_SHAPES
# float32 through eight layers: about 1e-6 of the logits' scale in practice.
RTOL = 1e-4


def he_weights(shapes, seed):
    """`{name: (weight, bias)}` with weights from N(0, 2 / fan_in)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        fan_in = int(np.prod(shape[1:]))
        weight = rng.standard_normal(shape, dtype=np.float32) * np.sqrt(2.0 / fan_in)
        bias = rng.standard_normal(shape[0], dtype=np.float32) * 0.1
        out[name] = (weight.astype(np.float32), bias.astype(np.float32))
    return out


def write_torchvision_checkpoint(path, seed=0):
    """A random full-size torchvision AlexNet state dict, saved by torch.save."""
    state_dict = {}
    for name, (weight, bias) in he_weights(TORCHVISION_SHAPES, seed).items():
        state_dict[f"{name}.weight"] = torch.from_numpy(weight)
        state_dict[f"{name}.bias"] = torch.from_numpy(bias)
    torch.save(state_dict, path)
    return os.fspath(path)


def write_caffe_checkpoint(path, seed=1):
    """A random full-size bvlc_alexnet .caffemodel."""
    layers = [
        (name, "Convolution" if weight.ndim == 4 else "InnerProduct", [weight, bias])
        for name, (weight, bias) in he_weights(CAFFE_SHAPES, seed).items()
    ]
    caffe_writer.write_caffemodel(path, layers)
    return os.fspath(path)


def torch_functional_alexnet(state_dict, x_nchw):
    """torchvision's AlexNet forward pass as functional ops on the state dict."""
    w = {key: torch.as_tensor(value) for key, value in state_dict.items()}
    x = torch.from_numpy(x_nchw)

    def conv(x, index, **options):
        weight, bias = w[f"features.{index}.weight"], w[f"features.{index}.bias"]
        return F.relu(F.conv2d(x, weight, bias, **options))

    x = F.max_pool2d(conv(x, 0, stride=4, padding=2), 3, 2)
    x = F.max_pool2d(conv(x, 3, padding=2), 3, 2)
    x = conv(x, 6, padding=1)
    x = conv(x, 8, padding=1)
    x = conv(x, 10, padding=1)
    x = F.adaptive_avg_pool2d(F.max_pool2d(x, 3, 2), 6).flatten(1)
    x = F.relu(F.linear(x, w["classifier.1.weight"], w["classifier.1.bias"]))
    x = F.relu(F.linear(x, w["classifier.4.weight"], w["classifier.4.bias"]))
    return F.linear(x, w["classifier.6.weight"], w["classifier.6.bias"]).numpy()


def keras_logits(model, x_nhwc):
    """The logits of a model converted with classifier_activation=None."""
    return to_numpy(model(x_nhwc, training=False))


def max_relative(actual, expected):
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


@pytest.fixture(scope="module")
def torchvision_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torchvision")
    source = write_torchvision_checkpoint(folder / "alexnet-random.pth")
    dest = os.fspath(folder / "converted.weights.h5")
    # What the conversion prints, for the progress bar's test.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        model = convert_checkpoint(source, dest, classifier_activation=None)
    return source, dest, model, printed.getvalue()


@pytest.fixture(scope="module")
def caffe_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("caffe")
    source = write_caffe_checkpoint(folder / "alexnet-random.caffemodel")
    dest = os.fspath(folder / "converted.keras")
    model = convert_checkpoint(source, dest)  # softmax, like weights="imagenet"
    return source, dest, model


@pytest.mark.slow
def test_torchvision_conversion_matches_pytorch(torchvision_files, rng):
    source, dest, model, _ = torchvision_files
    assert model.count_params() == 61_100_840

    # An independent reference: functional PyTorch on the state dict torch reads.
    x = rng.uniform(-2, 2, (2, 224, 224, 3)).astype(np.float32)
    expected = torch_functional_alexnet(
        torch.load(source, weights_only=True), x.transpose(0, 3, 1, 2).copy()
    )
    assert max_relative(keras_logits(model, x), expected) < RTOL

    report = parity_report(source, model)
    assert isinstance(report, ParityReport)
    assert report.images == tuple(path.name for path in sample_images())
    assert report.reference.startswith("PyTorch")
    assert report.modelling.max_rel < RTOL
    assert report.modelling.top1_matches == report.modelling.count == 3
    assert report.modelling_ok()
    # Both pipelines crop the same region of the same photos: close, not equal.
    assert 0 < report.pixels_mean_abs < 10
    assert "Modelling parity: OK" in str(report)

    # The saved weights load back into the builder; with the preprocessing inside
    # the model, raw pixels give the logits of preprocessed ones.
    reloaded = AlexNet(
        weights=dest,
        variant="torchvision",
        include_preprocessing=True,
        classifier_activation=None,
    )
    pixels = rng.uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    np.testing.assert_allclose(
        keras_logits(reloaded, pixels),
        keras_logits(model, preprocess_input(pixels, "torchvision")),
        rtol=1e-5,
        atol=1e-4,
    )
    report = parity_report(source, reloaded, images=sample_images()[:1])
    assert report.images == ("chelsea.jpg",)
    assert report.modelling.max_rel < RTOL


@pytest.mark.slow
def test_caffe_conversion_matches_opencv(caffe_files, rng, tmp_path):
    source, dest, model = caffe_files
    assert model.count_params() == 60_965_224
    assert model.get_layer("norm1").bias == 1.0  # Caffe's LRN, not the paper's
    logits_model = keras.Model(model.input, model.get_layer("predictions").input)
    kernel, bias = model.get_layer("predictions").get_weights()

    # An independent reference: OpenCV with the test suite's own prototxt.
    prototxt = tmp_path / "deploy.prototxt"
    prototxt.write_text(caffe_writer.alexnet_deploy_prototxt(2, softmax=False))
    net = cv2.dnn.readNetFromCaffe(os.fspath(prototxt), source)
    x = rng.uniform(-120, 120, (2, 227, 227, 3)).astype(np.float32)
    net.setInput(x.transpose(0, 3, 1, 2).copy())
    expected = net.forward("fc8").reshape(2, -1)
    actual = to_numpy(logits_model(x)) @ kernel + bias
    assert max_relative(actual, expected) < RTOL

    report = parity_report(source, model)
    assert report.reference.startswith("OpenCV")
    assert report.modelling.max_rel < RTOL
    assert report.modelling.top1_matches == report.modelling.count == 3
    assert report.modelling_ok()
    assert 0 < report.pixels_mean_abs < 10

    # The .keras archive holds the whole model, LRN constants included.
    reloaded = keras.saving.load_model(dest)
    np.testing.assert_array_equal(to_numpy(reloaded(x)), to_numpy(model(x)))


@pytest.mark.slow
def test_parity_report_detects_a_wrong_conversion(torchvision_files):
    source, _, model, _ = torchvision_files
    fc6 = model.get_layer("fc6")
    kernel, bias = fc6.get_weights()
    # What forgetting the C, H, W -> H, W, C permutation of fc6 would do.
    permuted = kernel.reshape(256, 6, 6, -1).transpose(1, 2, 0, 3).reshape(9216, -1)
    fc6.set_weights([permuted, bias])
    try:
        report = parity_report(source, model, images=sample_images()[:1])
    finally:
        fc6.set_weights([kernel, bias])
    assert report.modelling.max_rel > 1e-2
    assert not report.modelling_ok()
    assert "Modelling parity: FAILED" in str(report)


def test_prototxt_takes_the_number_of_classes():
    assert "num_output: 7\n" in alexnet_deploy_prototxt(num_classes=7)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"source": 3}, TypeError, "Received: source=3"),
        ({"source": "model.onnx"}, ValueError, "Received: source='model.onnx'"),
        ({"source": "missing.pth"}, ValueError, "not a file"),
        ({"variant": "alexnet"}, ValueError, "Received: variant='alexnet'"),
        ({"variant": "original"}, ValueError, "holds the 'torchvision' variant"),
        ({"dest": "out.h5"}, ValueError, "Received: dest='out.h5'"),
        (
            {"classifier_activation": "relu"},
            ValueError,
            "Received: classifier_activation='relu'",
        ),
    ],
)
def test_convert_checkpoint_rejects_bad_arguments(tmp_path, kwargs, error, match):
    # The arguments are checked before the file is read: an empty .pth suffices.
    source = tmp_path / "empty.pth"
    source.write_bytes(b"")
    arguments = {"source": source, **kwargs}
    if arguments["source"] == "missing.pth":
        arguments["source"] = tmp_path / "missing.pth"
    with pytest.raises(error, match=match):
        convert_checkpoint(**arguments)


def test_parity_report_rejects_a_model_of_the_other_variant(tmp_path):
    source = tmp_path / "empty.caffemodel"
    source.write_bytes(b"")
    torchvision = AlexNet(weights=None, variant="torchvision")
    with pytest.raises(ValueError, match="conv1 has 96 filters"):
        parity_report(source, torchvision)
    headless = AlexNet(weights=None, include_top=False)
    with pytest.raises(ValueError, match="include_top=True"):
        parity_report(source, headless)
    with pytest.raises(TypeError, match="Received: model=str"):
        parity_report(source, "model")


def test_save_model_atomically_leaves_no_temporary_file(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    # A missing folder is a typo more often than a wish: it is not created.
    with pytest.raises(ValueError, match="folder of `dest` does not exist"):
        save_model_atomically(model, tmp_path / "out" / "tiny.keras")
    (tmp_path / "out").mkdir()
    for name in ("tiny.keras", "tiny.weights.h5"):
        save_model_atomically(model, tmp_path / "out" / name)
    assert sorted(os.listdir(tmp_path / "out")) == ["tiny.keras", "tiny.weights.h5"]
    with pytest.raises(ValueError, match="Received: dest="):
        save_model_atomically(model, tmp_path / "tiny.h5")


def test_conversion_shows_a_progress_bar_with_its_total(torchvision_files):
    # Read, build, set the weights, save: four steps, shown as "4/4" when done
    # (one line, as in a log: stdout is not a terminal here).
    source, *_, printed = torchvision_files
    assert re.fullmatch(r"4/4 - \d+s - .*/step\n", printed), printed
    with pytest.raises(ValueError, match="Received: verbose=3"):
        convert_checkpoint(source, verbose=3)
