"""GroupedConv2D, AdaptiveAveragePooling2D and ImagePreprocessing against PyTorch/TF."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch

from keras_alexnet import (
    AdaptiveAveragePooling2D,
    GroupedConv2D,
    ImagePreprocessing,
    LocalResponseNormalization,
)
from tests.backend_utils import to_numpy
from tests.layer_contract import check_layer_contract

# One small configuration of each layer of the package, for the shared contract.
CONTRACT_LAYERS = {
    "lrn_caffe": (
        lambda **kw: LocalResponseNormalization(5, 1.0, 2e-5, 0.75, **kw),
        (2, 5, 5, 16),
        200.0,
    ),
    "grouped_conv2d": (
        lambda **kw: GroupedConv2D(8, 3, groups=2, padding="same", **kw),
        (2, 7, 7, 6),
        1.0,
    ),
    "adaptive_average_pooling2d": (
        lambda **kw: AdaptiveAveragePooling2D((3, 2), **kw),
        (2, 7, 5, 4),
        1.0,
    ),
    "image_preprocessing": (
        lambda **kw: ImagePreprocessing(
            "bgr", 1.0, (104.0, 117.0, 123.0), (1.0, 1.0, 1.0), **kw
        ),
        (2, 4, 4, 3),
        255.0,
    ),
}


@pytest.mark.backend
@pytest.mark.parametrize("name", sorted(CONTRACT_LAYERS))
def test_layer_contract(name, rng, tmp_path):
    make_layer, shape, scale = CONTRACT_LAYERS[name]
    x = (rng.uniform(0.0, 1.0, shape) * scale).astype("float32")
    check_layer_contract(make_layer, x, tmp_path)


@pytest.mark.backend
@pytest.mark.parametrize(
    ("groups", "padding", "strides"), [(2, "same", 1), (2, "valid", 2), (4, "same", 1)]
)
def test_grouped_conv_matches_torch(rng, groups, padding, strides):
    x = rng.standard_normal((2, 9, 11, 8)).astype("float32")
    layer = GroupedConv2D(12, 3, groups=groups, padding=padding, strides=strides)
    outputs = to_numpy(layer(x))
    kernel_hwio, bias = (to_numpy(w) for w in layer.weights)
    assert kernel_hwio.shape == (3, 3, 8 // groups, 12)

    weight_oihw = torch.from_numpy(kernel_hwio.transpose(3, 2, 0, 1).copy())
    expected = torch.nn.functional.conv2d(
        torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
        weight_oihw,
        torch.from_numpy(bias),
        stride=strides,
        padding=1 if padding == "same" else 0,
        groups=groups,
    ).numpy()
    np.testing.assert_allclose(outputs, expected.transpose(0, 2, 3, 1), atol=1e-5)


@pytest.mark.backend
def test_grouped_conv_split_path_matches_native_grouped_conv(rng):
    # The split-and-concatenate path (JAX and TF on CPU) must equal TF's grouped conv.
    x = rng.standard_normal((2, 13, 13, 16)).astype("float32")
    layer = GroupedConv2D(
        8, 3, groups=2, padding="same", use_bias=False, implementation="split"
    )
    layer.build(x.shape)
    kernel = to_numpy(layer.kernel)
    expected = tf.nn.conv2d(x, kernel, strides=1, padding="SAME").numpy()
    np.testing.assert_allclose(to_numpy(layer(x)), expected, atol=1e-5)


def test_grouped_conv_implementation_is_in_its_config():
    layer = GroupedConv2D(8, 3, groups=2, implementation="native")
    config = layer.get_config()
    assert config["implementation"] == "native"
    assert GroupedConv2D.from_config(config).get_config() == config
    with pytest.raises(ValueError, match=r"Received: implementation='fast'"):
        GroupedConv2D(8, 3, groups=2, implementation="fast")


def test_grouped_conv_weights_are_interchangeable_with_keras_conv2d(rng):
    x = rng.standard_normal((1, 7, 7, 6)).astype("float32")
    grouped = GroupedConv2D(4, 3, groups=2)
    plain = keras.layers.Conv2D(4, 3, groups=2)
    grouped.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(grouped.get_weights())
    np.testing.assert_allclose(to_numpy(grouped(x)), to_numpy(plain(x)), atol=1e-6)


@pytest.mark.backend
@pytest.mark.parametrize("size", [(13, 13), (7, 7), (20, 9), (6, 6), (1, 3)])
def test_adaptive_average_pooling_matches_torch(rng, size):
    x = rng.standard_normal((2, *size, 5)).astype("float32")
    outputs = to_numpy(AdaptiveAveragePooling2D(6)(x))
    expected = torch.nn.functional.adaptive_avg_pool2d(
        torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), 6
    ).numpy()
    np.testing.assert_allclose(outputs, expected.transpose(0, 2, 3, 1), atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TF graph only")
def test_adaptive_average_pooling_with_unknown_size_in_a_tf_graph(rng):
    layer = AdaptiveAveragePooling2D((6, 4))
    x = rng.standard_normal((1, 15, 10, 3)).astype("float32")
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 3))])
    expected = torch.nn.functional.adaptive_avg_pool2d(
        torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), (6, 4)
    ).numpy()
    np.testing.assert_allclose(fn(x).numpy(), expected.transpose(0, 2, 3, 1), atol=1e-6)


def test_adaptive_average_pooling_channels_first(rng):
    x = rng.standard_normal((1, 3, 10, 10)).astype("float32")
    outputs = to_numpy(AdaptiveAveragePooling2D(6, data_format="channels_first")(x))
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), 6).numpy()
    np.testing.assert_allclose(outputs, expected, atol=1e-6)


@pytest.mark.parametrize("bad", [0, -1, (6,), (6, 0), "6", 2.5, True])
def test_adaptive_average_pooling_rejects_bad_output_size(bad):
    with pytest.raises(ValueError, match=r"Received: output_size="):
        AdaptiveAveragePooling2D(bad)


@pytest.mark.backend
def test_image_preprocessing_closed_form():
    x = np.array([[[[10.0, 20.0, 30.0]]]], "float32")
    layer = ImagePreprocessing("bgr", 2.0, (1.0, 2.0, 3.0), (2.0, 4.0, 8.0))
    np.testing.assert_allclose(
        to_numpy(layer(x)).ravel(), [(60 - 1) / 2, (40 - 2) / 4, (20 - 3) / 8]
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channel_order": "BGR"}, r"Received: channel_order='BGR'"),
        ({"mean": (1.0, 2.0)}, r"Received: mean=\(1\.0, 2\.0\)"),
        ({"std": (1.0, 0.0, 1.0)}, r"Received: std="),
        ({"scale": 0.0}, r"Received: scale=0\.0"),
        ({"data_format": "NHWC"}, r"Received: data_format='NHWC'"),
    ],
)
def test_image_preprocessing_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImagePreprocessing(**kwargs)
