"""Tests of the name maps and transposes against PyTorch and OpenCV (Caffe)."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from keras_alexnet.weights.name_maps import (
    CAFFE_NAME_MAP,
    POOL5_SHAPE_CHW,
    TORCHVISION_NAME_MAP,
    caffe_to_keras,
    chw_flattened_to_keras_dense_kernel,
    torch_to_keras_conv_kernel,
    torch_to_keras_dense_kernel,
    torchvision_to_keras,
)
from tests.backend_utils import to_numpy
from tests.caffe_writer import write_caffemodel
from tests.reference_models import (
    BVLC_ALEXNET_WEIGHT_SHAPES,
    TORCHVISION_WEIGHT_SHAPES,
    torchvision_alexnet,
    torchvision_forward,
)

KERAS_LAYERS = [
    "conv1",
    "conv2",
    "conv3",
    "conv4",
    "conv5",
    "fc6",
    "fc7",
    "predictions",
]


def _random(rng, shape):
    return rng.standard_normal(shape, dtype=np.float32)


def _conv(kernel, bias, x_nhwc, strides=1, padding="valid", groups=1):
    layer = keras.layers.Conv2D(
        kernel.shape[-1], kernel.shape[:2], strides, padding, groups=groups
    )
    layer.build(x_nhwc.shape)
    layer.set_weights([kernel, bias])
    return to_numpy(layer(x_nhwc))


def _nchw_to_nhwc(x):
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


@pytest.mark.backend
@pytest.mark.parametrize("groups", [1, 2])
def test_conv_kernel_matches_torch_conv2d(groups):
    rng = np.random.default_rng(0)
    # Non-square everything, so a swapped axis cannot go unnoticed.
    x = _random(rng, (2, 4, 9, 11))
    weight = _random(rng, (6, 4 // groups, 3, 5))
    bias = _random(rng, (6,))
    expected = F.conv2d(
        torch.from_numpy(x),
        torch.from_numpy(weight),
        torch.from_numpy(bias),
        stride=2,
        groups=groups,
    ).numpy()

    kernel = torch_to_keras_conv_kernel(weight)
    assert kernel.shape == (3, 5, 4 // groups, 6) and kernel.flags.c_contiguous
    got = _conv(kernel, bias, _nchw_to_nhwc(x), strides=2, groups=groups)
    np.testing.assert_allclose(got, _nchw_to_nhwc(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.backend
def test_dense_kernel_matches_torch_linear():
    rng = np.random.default_rng(1)
    x, weight, bias = _random(rng, (3, 7)), _random(rng, (5, 7)), _random(rng, (5,))
    expected = F.linear(*map(torch.from_numpy, (x, weight, bias))).numpy()
    layer = keras.layers.Dense(5)
    layer.build(x.shape)
    layer.set_weights([torch_to_keras_dense_kernel(weight), bias])
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-5)


def _flatten_dense(feature_map, kernel, bias, flatten):
    dense = keras.layers.Dense(kernel.shape[1])
    dense.build((None, kernel.shape[0]))
    dense.set_weights([kernel, bias])
    return to_numpy(dense(flatten(feature_map)))


@pytest.mark.backend
@pytest.mark.parametrize("feature_shape_chw", [(5, 2, 3), POOL5_SHAPE_CHW])
def test_flattened_kernel_matches_torch_flatten_then_linear(feature_shape_chw):
    rng = np.random.default_rng(2)
    pool5_nchw = _random(rng, (2, *feature_shape_chw))
    weight = _random(rng, (8, int(np.prod(feature_shape_chw))))
    bias = _random(rng, (8,))
    expected = F.linear(
        torch.flatten(torch.from_numpy(pool5_nchw), 1),
        torch.from_numpy(weight),
        torch.from_numpy(bias),
    ).numpy()

    hwc = chw_flattened_to_keras_dense_kernel(weight, feature_shape_chw)
    chw = chw_flattened_to_keras_dense_kernel(weight, feature_shape_chw, "chw")
    channels_last = keras.layers.Flatten(data_format="channels_last")
    # keras.layers.Flatten moves channels last before flattening, so a
    # channels_first model that uses it needs the "hwc" kernel too.
    channels_first = keras.layers.Flatten(data_format="channels_first")
    reshape = keras.layers.Reshape((-1,))
    cases = [
        (_nchw_to_nhwc(pool5_nchw), hwc, channels_last),
        (pool5_nchw, hwc, channels_first),
        (pool5_nchw, chw, reshape),
    ]
    for feature_map, kernel, flatten in cases:
        got = _flatten_dense(feature_map, kernel, bias, flatten)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # The permutation matters: without it the result is wrong.
    wrong = _flatten_dense(_nchw_to_nhwc(pool5_nchw), chw, bias, channels_last)
    assert not np.allclose(wrong, expected, rtol=1e-2, atol=1e-2)


def _keras_torchvision_alexnet():
    """The same network as a Keras graph, with keras-alexnet's layer names."""
    layers = keras.layers
    inputs = keras.Input((224, 224, 3))
    x = layers.ZeroPadding2D(2)(inputs)
    x = layers.Conv2D(64, 11, 4, activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(3, 2)(x)
    x = layers.Conv2D(192, 5, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(3, 2)(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="conv4")(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="conv5")(x)
    x = layers.MaxPooling2D(3, 2)(x)  # 6x6 at 224: adaptive pooling is identity
    x = layers.Flatten()(x)
    x = layers.Dense(4096, activation="relu", name="fc6")(x)
    x = layers.Dense(4096, activation="relu", name="fc7")(x)
    return keras.Model(inputs, layers.Dense(1000, name="predictions")(x))


@pytest.mark.backend
@pytest.mark.slow
def test_torchvision_to_keras_reproduces_torchvision_alexnet():
    torch.manual_seed(0)
    model = torchvision_alexnet()
    state_dict = {k: v.numpy() for k, v in model.state_dict().items()}
    x = np.random.default_rng(3).random((2, 3, 224, 224), dtype=np.float32)
    expected = torchvision_forward(model, x)

    weights = torchvision_to_keras(state_dict)
    assert list(weights) == KERAS_LAYERS == list(TORCHVISION_NAME_MAP.values())
    keras_model = _keras_torchvision_alexnet()
    for name, arrays in weights.items():
        keras_model.get_layer(name).set_weights(arrays)
    got = to_numpy(keras_model(_nchw_to_nhwc(x), training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


_CAFFE_SHAPES = BVLC_ALEXNET_WEIGHT_SHAPES


def _caffe_blobs(rng=None, random_layers=("conv2", "fc6")):
    """bvlc_alexnet-shaped blobs: random in `random_layers`, zeros elsewhere."""
    blobs = {}
    for name, shape in _CAFFE_SHAPES.items():
        if rng is not None and name in random_layers:
            blobs[name] = [_random(rng, shape), _random(rng, (shape[0],))]
        else:
            blobs[name] = [np.zeros(shape, np.float32), np.zeros(shape[0], np.float32)]
    return blobs


def _as_legacy_v1(blobs):
    """The blobs shaped as V1 files store them: 4-D, padded with leading ones."""
    return {
        name: [b.reshape((1,) * (4 - b.ndim) + b.shape) for b in layer_blobs]
        for name, layer_blobs in blobs.items()
    }


def _opencv_forward(tmp_path, prototxt, layer, x_nchw):
    (tmp_path / "net.prototxt").write_text(prototxt)
    write_caffemodel(tmp_path / "net.caffemodel", [layer], layout="v1")
    net = cv2.dnn.readNetFromCaffe(
        str(tmp_path / "net.prototxt"), str(tmp_path / "net.caffemodel")
    )
    net.setInput(x_nchw)
    return net.forward()


@pytest.mark.backend
@pytest.mark.slow
def test_caffe_to_keras_matches_opencv_grouped_conv2_and_fc6(tmp_path):
    rng = np.random.default_rng(4)
    blobs = _as_legacy_v1(_caffe_blobs(rng))
    weights = caffe_to_keras(blobs)
    assert list(weights) == KERAS_LAYERS == list(CAFFE_NAME_MAP.values())
    assert weights["conv2"][0].shape == (5, 5, 48, 256)
    assert weights["fc6"][0].shape == (9216, 4096)

    # conv2: two groups. Caffe stacks the groups along the output axis, which
    # is Keras' grouped layout after the transpose.
    pool1 = _random(rng, (1, 96, 27, 27))
    conv2_prototxt = """layer { name: "data" type: "Input" top: "data"
      input_param { shape: { dim: 1 dim: 96 dim: 27 dim: 27 } } }
    layer { name: "conv2" type: "Convolution" bottom: "data" top: "conv2"
      convolution_param { num_output: 256 pad: 2 kernel_size: 5 group: 2 } }"""
    expected = _opencv_forward(
        tmp_path, conv2_prototxt, ("conv2", "Convolution", blobs["conv2"]), pool1
    )
    got = _conv(*weights["conv2"], _nchw_to_nhwc(pool1), padding="same", groups=2)
    np.testing.assert_allclose(got, _nchw_to_nhwc(expected), rtol=1e-4, atol=1e-4)

    # fc6 reads pool5 flattened C, H, W in Caffe, H, W, C through keras Flatten.
    pool5 = _random(rng, (1, *POOL5_SHAPE_CHW))
    fc6_prototxt = """layer { name: "data" type: "Input" top: "data"
      input_param { shape: { dim: 1 dim: 256 dim: 6 dim: 6 } } }
    layer { name: "fc6" type: "InnerProduct" bottom: "data" top: "fc6"
      inner_product_param { num_output: 4096 } }"""
    expected = _opencv_forward(
        tmp_path, fc6_prototxt, ("fc6", "InnerProduct", blobs["fc6"]), pool5
    )
    got = _flatten_dense(_nchw_to_nhwc(pool5), *weights["fc6"], keras.layers.Flatten())
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


def test_caffe_to_keras_normalises_legacy_shapes():
    blobs = _caffe_blobs(np.random.default_rng(5), random_layers=("conv1", "fc8"))
    current = caffe_to_keras(blobs)
    legacy = caffe_to_keras(_as_legacy_v1(blobs))
    assert _as_legacy_v1(blobs)["fc8"][0].shape == (1, 1, 1000, 4096)
    for name in KERAS_LAYERS:
        for a, b in zip(current[name], legacy[name], strict=True):
            assert a.dtype == b.dtype == np.float32
            np.testing.assert_array_equal(a, b)
    assert legacy["predictions"][1].shape == (1000,)


def _torchvision_state_dict():
    shapes = TORCHVISION_WEIGHT_SHAPES
    state_dict = {}
    for module, shape in shapes.items():
        state_dict[f"{module}.weight"] = np.zeros(shape, np.float32)
        state_dict[f"{module}.bias"] = np.zeros(shape[0], np.float32)
    return state_dict


def test_torchvision_to_keras_errors_name_the_key():
    state_dict = _torchvision_state_dict()
    del state_dict["features.3.bias"]
    state_dict["features.1.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"features\.3\.bias.*features\.1\.weight"):
        torchvision_to_keras(state_dict)

    state_dict = _torchvision_state_dict()
    state_dict["features.8.weight"] = np.zeros((256, 384, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"features\.8\.weight.*\(256, 384, 3, 4\)"):
        torchvision_to_keras(state_dict)

    state_dict = _torchvision_state_dict()
    state_dict["classifier.4.bias"] = np.zeros(4095, np.float32)
    with pytest.raises(ValueError, match=r"classifier\.4\.bias"):
        torchvision_to_keras(state_dict)

    state_dict = _torchvision_state_dict()
    state_dict["features.0.weight"] = state_dict["features.0.weight"].astype(np.int64)
    with pytest.raises(ValueError, match=r"features\.0\.weight.*int64"):
        torchvision_to_keras(state_dict)

    with pytest.raises(ValueError, match="flatten_order='nchw'"):
        torchvision_to_keras(_torchvision_state_dict(), flatten_order="nchw")


def test_torchvision_to_keras_accepts_other_class_counts():
    state_dict = _torchvision_state_dict()
    state_dict["classifier.6.weight"] = np.zeros((10, 4096), np.float32)
    state_dict["classifier.6.bias"] = np.zeros(10, np.float32)
    assert torchvision_to_keras(state_dict)["predictions"][0].shape == (4096, 10)


def test_caffe_to_keras_errors_name_the_layer():
    blobs = _caffe_blobs()
    blobs["conv3"] = blobs["conv3"][:1]
    with pytest.raises(ValueError, match="conv3.*1 blobs"):
        caffe_to_keras(blobs)

    blobs = _caffe_blobs()
    blobs["conv2"][0] = np.zeros((256, 96, 5, 5), np.float32)  # ungrouped
    with pytest.raises(ValueError, match=r"conv2 weights.*\(256, 96, 5, 5\)"):
        caffe_to_keras(blobs)

    blobs = _caffe_blobs()
    blobs["fc6"][0] = blobs["fc6"][0].reshape(2, 1, 4096, 9216 // 2)
    with pytest.raises(ValueError, match="fc6 weights"):
        caffe_to_keras(blobs)

    blobs = _caffe_blobs()
    blobs["norm1"] = []
    del blobs["fc8"]
    with pytest.raises(ValueError, match=r"missing \['fc8'\], unexpected \['norm1'\]"):
        caffe_to_keras(blobs)


def test_helpers_reject_wrong_ranks():
    with pytest.raises(ValueError, match=r"4-D.*\(3, 3\)"):
        torch_to_keras_conv_kernel(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"2-D.*\(3,\)"):
        torch_to_keras_dense_kernel(np.zeros(3))
    with pytest.raises(ValueError, match=r"\(out, 9216\).*\(4, 9215\)"):
        chw_flattened_to_keras_dense_kernel(np.zeros((4, 9215)))
