"""The package's layers against PyTorch/TF: values, every dtype, Keras' layer tests."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch
from keras.src import testing

from keras_alexnet import (
    AdaptiveAveragePooling2D,
    GroupedConv2D,
    ImagePreprocessing,
    LocalResponseNormalization,
)
from keras_alexnet.layers import with_fast_path
from tests.backend_utils import input_gradient, to_numpy
from tests.layer_contract import check_layer_contract, dtype_scope

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


# Every float dtype and integer inputs, on every backend, against references that
# PyTorch computes in float64 on the same (rounded) inputs and weights.
def _torch_nchw(fn):
    # Runs a PyTorch NCHW function on an NHWC float64 tensor.
    return lambda x, layer: fn(x.permute(0, 3, 1, 2), layer).permute(0, 2, 3, 1)


def _torch_conv(groups):
    def reference(x, layer):
        kernel, bias = (
            torch.from_numpy(np.asarray(to_numpy(w.value), "float64"))
            for w in layer.weights
        )
        weight = kernel.permute(3, 2, 0, 1)
        return torch.nn.functional.conv2d(x, weight, bias, padding=1, groups=groups)

    return _torch_nchw(reference)


def _bgr_closed_form(x, layer):
    mean = torch.tensor(layer.mean, dtype=torch.float64)
    std = torch.tensor(layer.std, dtype=torch.float64)
    return (x.flip(-1) * layer.scale - mean) / std


DTYPE_LAYERS = {
    # name: (make the layer, input shape, input scale, float64 reference)
    "lrn": (
        lambda **kw: LocalResponseNormalization(5, 2.0, 1e-4, 0.75, **kw),
        (2, 4, 5, 16),
        30.0,
        _torch_nchw(
            lambda x, _: torch.nn.functional.local_response_norm(x, 5, 5e-4, 0.75, 2.0)
        ),
    ),
    "grouped_conv2d_native": (
        lambda **kw: GroupedConv2D(
            8, 3, groups=2, padding="same", implementation="native", **kw
        ),
        (2, 5, 5, 6),
        2.0,
        _torch_conv(2),
    ),
    "grouped_conv2d_split": (
        lambda **kw: GroupedConv2D(
            8, 3, groups=2, padding="same", implementation="split", **kw
        ),
        (2, 5, 5, 6),
        2.0,
        _torch_conv(2),
    ),
    "adaptive_average_pooling2d": (
        lambda **kw: AdaptiveAveragePooling2D((3, 2), **kw),
        (2, 7, 5, 4),
        2.0,
        _torch_nchw(lambda x, _: torch.nn.functional.adaptive_avg_pool2d(x, (3, 2))),
    ),
    "image_preprocessing": (
        lambda **kw: ImagePreprocessing(
            "bgr", 1 / 255, (0.4, 0.45, 0.5), (0.2, 0.25, 0.3), **kw
        ),
        (2, 3, 3, 3),
        255.0,
        _bgr_closed_form,
    ),
    "conv2d_with_fast_path": (
        lambda **kw: with_fast_path(keras.layers.Conv2D(8, 3, padding="same", **kw)),
        (2, 5, 5, 3),
        2.0,
        _torch_conv(1),
    ),
    "max_pooling2d_with_fast_path": (
        lambda **kw: with_fast_path(keras.layers.MaxPooling2D(2, **kw)),
        (2, 6, 6, 3),
        2.0,
        _torch_nchw(lambda x, _: torch.nn.functional.max_pool2d(x, 2)),
    ),
}
# Relative to the largest reference value; float64 is exact to its rounding.
DTYPE_TOLERANCES = {
    "float16": 4e-3,
    "bfloat16": 3e-2,
    "float32": 2e-6,
    "float64": 1e-13,
    "uint8": 2e-6,
}


def _dtype_cases():
    # Under JAX the convolutions in float16 and bfloat16 are JAX's own (no fast
    # path applies), run by the contract (mixed_bfloat16) and Keras' layer test
    # (mixed_float16) already; each new dtype costs seconds of XLA compilation.
    return [
        (name, dtype)
        for name in sorted(DTYPE_LAYERS)
        for dtype in sorted(DTYPE_TOLERANCES)
        if not (
            keras.backend.backend() == "jax"
            and "conv2d" in name
            and dtype in ("float16", "bfloat16")
        )
    ]


@pytest.mark.backend
@pytest.mark.parametrize(("name", "dtype"), _dtype_cases())
def test_every_dtype_matches_a_float64_reference(name, dtype, rng):
    # uint8 images under the default float32 policy are computed in float32
    # (max pooling keeps them, as Keras' does); float64 forward and gradient
    # (LRN: of its training way) are exact to float64 rounding.
    make_layer, shape, scale, reference = DTYPE_LAYERS[name]
    pooling = name.startswith("max_pooling")
    if dtype == "uint8":
        x = rng.integers(0, 256, shape).astype("uint8")
        layer = make_layer()
        expected_dtype = "uint8" if pooling else "float32"
    else:
        x = (np.maximum(rng.standard_normal(shape), 0) * scale).astype(dtype)
        if dtype not in ("float32", "float64"):
            x = x.astype("float32")  # NumPy has no bfloat16: the layer casts
        layer = make_layer(dtype=dtype)
        expected_dtype = dtype
    with dtype_scope(dtype):
        x_in = keras.ops.cast(x, expected_dtype) if dtype != "uint8" else x
        outputs = layer(x_in)
        assert keras.backend.standardize_dtype(outputs.dtype) == expected_dtype
        x64 = torch.from_numpy(np.asarray(to_numpy(x_in), "float64"))
        expected = reference(x64, layer).numpy()
        tolerance = DTYPE_TOLERANCES[dtype] * np.max(np.abs(expected))
        np.testing.assert_allclose(
            to_numpy(keras.ops.cast(outputs, "float64")), expected, atol=tolerance
        )
        if name == "lrn":
            outputs = layer(x_in, training=True)
            assert keras.backend.standardize_dtype(outputs.dtype) == expected_dtype
            np.testing.assert_allclose(
                to_numpy(keras.ops.cast(outputs, "float64")), expected, atol=tolerance
            )
        if dtype != "float64":
            return
        upstream = rng.standard_normal(expected.shape)
        gradient = input_gradient(lambda v: layer(v, training=True), x, upstream)
    x64.requires_grad_(True)
    torch.sum(reference(x64, layer) * torch.from_numpy(upstream)).backward()
    expected_gradient = x64.grad.numpy()
    np.testing.assert_allclose(
        gradient, expected_gradient, atol=1e-13 * np.max(np.abs(expected_gradient))
    )


@pytest.mark.backend
class KerasLayerTest(testing.TestCase):
    """Keras' own layer test: serialization, shapes, dtypes, a training step,
    mixed precision and, for the stateless layers, built at instantiation."""

    def test_local_response_normalization(self):
        self.run_layer_test(
            LocalResponseNormalization,
            {"size": 5, "bias": 1.0, "alpha": 2e-5, "beta": 0.75},
            input_shape=(2, 3, 3, 8),
            expected_output_shape=(2, 3, 3, 8),
            expected_output_dtype="float32",
            expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=0,
            supports_masking=True,
            assert_built_after_instantiation=True,
        )

    def test_adaptive_average_pooling2d(self):
        self.run_layer_test(
            AdaptiveAveragePooling2D,
            {"output_size": (3, 2)},
            input_shape=(2, 7, 5, 4),
            input_dtype="uint8",
            expected_output_shape=(2, 3, 2, 4),
            expected_output_dtype="float32",
            expected_num_trainable_weights=0,
            assert_built_after_instantiation=True,
        )

    def test_image_preprocessing(self):
        self.run_layer_test(
            ImagePreprocessing,
            {"channel_order": "bgr", "scale": 1 / 255, "mean": (0.5, 0.4, 0.3)},
            input_shape=(2, 4, 4, 3),
            input_dtype="uint8",
            expected_output_shape=(2, 4, 4, 3),
            expected_output_dtype="float32",
            expected_num_trainable_weights=0,
            assert_built_after_instantiation=True,
        )

    def test_grouped_conv2d(self):
        self.run_layer_test(
            GroupedConv2D,
            {"filters": 8, "kernel_size": 3, "groups": 2, "padding": "same"},
            input_shape=(2, 5, 5, 6),
            expected_output_shape=(2, 5, 5, 8),
            expected_output_dtype="float32",
            expected_num_trainable_weights=2,
        )
