"""LocalResponseNormalization against TF's and PyTorch's own LRN, and closed forms."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch

from keras_alexnet import LocalResponseNormalization
from tests.backend_utils import input_gradient, to_numpy
from tests.layer_contract import dtype_scope

# (size, bias, alpha on the raw sum, beta): the paper's and Caffe bvlc_alexnet's.
PAPER = (5, 2.0, 1e-4, 0.75)
CAFFE = (5, 1.0, 1e-4 / 5, 0.75)
CONVENTIONS = [
    PAPER,
    CAFFE,
    (3, 1.5, 1e-3, 0.5),
    (7, 1.0, 5e-4, 1.0),
    (1, 2.0, 1e-2, 0.6),
]


def tf_reference(x, size, bias, alpha, beta):
    return tf.nn.local_response_normalization(
        x, depth_radius=size // 2, bias=bias, alpha=alpha, beta=beta
    )


def torch_reference(x_nhwc, size, bias, alpha, beta):
    # PyTorch divides alpha by size and normalizes over dim 1 (NCHW).
    x = x_nhwc.permute(0, 3, 1, 2)
    y = torch.nn.functional.local_response_norm(x, size, alpha * size, beta, bias)
    return y.permute(0, 2, 3, 1)


def alexnet_like_activations(rng, shape=(2, 7, 9, 96), scale=30.0):
    # ReLU outputs: non-negative, many zeros, a heavy tail as in conv1.
    return np.maximum(rng.standard_normal(shape) * scale, 0).astype("float32")


@pytest.mark.backend
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_values_match_tensorflow_and_pytorch(rng, convention):
    x = alexnet_like_activations(rng)
    outputs = to_numpy(LocalResponseNormalization(*convention)(x))
    expected_tf = tf_reference(x, *convention).numpy()
    # PyTorch's reference in float64: once, under load in CI, its float32 result
    # differed from TensorFlow's by 3e-4 relative while ours matched TensorFlow's.
    x64 = torch.from_numpy(x.astype("float64"))
    expected_torch = torch_reference(x64, *convention).numpy()
    np.testing.assert_allclose(outputs, expected_tf, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs, expected_torch, rtol=1e-5, atol=1e-6)


@pytest.mark.backend
@pytest.mark.parametrize("convention", [PAPER, CAFFE, (3, 1.5, 1e-3, 0.5)])
def test_gradients_match_tensorflow_and_pytorch(rng, convention):
    x = alexnet_like_activations(rng, shape=(2, 5, 6, 16))
    upstream = rng.standard_normal(x.shape).astype("float32")
    layer = LocalResponseNormalization(*convention)
    gradient = input_gradient(layer, x, upstream)

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(tf_reference(xt, *convention) * upstream)
    expected_tf = tape.gradient(loss, xt).numpy()

    x_torch = torch.tensor(x, requires_grad=True)
    torch.sum(
        torch_reference(x_torch, *convention) * torch.from_numpy(upstream)
    ).backward()
    np.testing.assert_allclose(gradient, expected_tf, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gradient, x_torch.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.backend
def test_channels_first_axis_matches_channels_last(rng):
    x = alexnet_like_activations(rng)
    layer = LocalResponseNormalization(*PAPER, axis=1)
    outputs = to_numpy(layer(np.transpose(x, (0, 3, 1, 2))))
    expected = tf_reference(x, *PAPER).numpy()
    np.testing.assert_allclose(np.transpose(outputs, (0, 2, 3, 1)), expected, rtol=1e-5)


@pytest.mark.backend
def test_shifted_slice_sum_used_on_gpus_matches_tensorflow(rng):
    # Accelerators sum by shifted slices (exact even where matmuls run in TF32);
    # this machine has none, so the path is forced to test it on every backend.
    x = alexnet_like_activations(rng)
    layer = LocalResponseNormalization(*CAFFE, implementation="slices")
    np.testing.assert_allclose(
        to_numpy(layer(x)), tf_reference(x, *CAFFE).numpy(), rtol=1e-5, atol=1e-6
    )


def test_closed_form_for_constant_input():
    # With every activation equal to a, channel c sums a^2 over the channels of
    # its window that exist: 3 at the two edge channels, 4 next to them, else 5.
    a, channels = 3.0, 8
    size, bias, alpha, beta = PAPER
    outputs = to_numpy(
        LocalResponseNormalization(size, bias, alpha, beta)(
            np.full((1, 1, 1, channels), a, "float32")
        )
    )[0, 0, 0]
    counts = np.array([3, 4, 5, 5, 5, 5, 4, 3])
    expected = a / (bias + alpha * counts * a**2) ** beta
    np.testing.assert_allclose(outputs, expected, rtol=1e-6)


@pytest.mark.backend
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_never_overflows(rng, dtype):
    # Activations in the thousands, as conv1 makes from Caffe-preprocessed input:
    # their squares (~1e7) overflow float16, so the sum must run in float32.
    x = alexnet_like_activations(rng, scale=2000.0)
    layer = LocalResponseNormalization(
        *CAFFE, dtype=keras.DTypePolicy(f"mixed_{dtype}")
    )
    outputs = layer(keras.ops.cast(x, dtype))
    assert keras.backend.standardize_dtype(outputs.dtype) == dtype
    outputs = to_numpy(keras.ops.cast(outputs, "float32"))
    assert np.all(np.isfinite(outputs))
    x_rounded = to_numpy(keras.ops.cast(keras.ops.cast(x, dtype), "float32"))
    expected = tf_reference(x_rounded.astype("float64"), *CAFFE).numpy()
    tolerance = 1e-2 if dtype == "bfloat16" else 2e-3
    np.testing.assert_allclose(outputs, expected, rtol=tolerance, atol=tolerance)


def test_config_round_trip_and_output_shape():
    layer = LocalResponseNormalization(
        7, 1.5, 3e-4, 0.5, axis=1, implementation="pool", name="norm"
    )
    config = layer.get_config()
    keys = ("size", "bias", "alpha", "beta", "axis", "implementation")
    assert {k: config[k] for k in keys} == {
        "size": 7,
        "bias": 1.5,
        "alpha": 3e-4,
        "beta": 0.5,
        "axis": 1,
        "implementation": "pool",
    }
    clone = LocalResponseNormalization.from_config(config)
    assert clone.get_config() == config
    assert layer.compute_output_shape((None, 96, 55, 55)) == (None, 96, 55, 55)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"size": 4},
            ValueError,
            r"`size` should be an odd integer >= 1\. Received: size=4",
        ),
        ({"size": 0}, ValueError, r"Received: size=0"),
        ({"size": 5.0}, TypeError, r"Received: size=5\.0"),
        ({"bias": 0.0}, ValueError, r"Received: bias=0\.0"),
        ({"bias": "1"}, TypeError, r"Received: bias='1'"),
        ({"alpha": -1e-4}, ValueError, r"Received: alpha=-0\.0001"),
        ({"beta": float("nan")}, ValueError, r"Received: beta=nan"),
        ({"axis": "last"}, TypeError, r"Received: axis='last'"),
        (
            {"implementation": "fast"},
            ValueError,
            r"`implementation` should be one of .*Received: implementation='fast'",
        ),
    ],
)
def test_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        LocalResponseNormalization(**kwargs)


def test_rejects_axis_out_of_range():
    with pytest.raises(ValueError, match=r"Received: axis=4"):
        LocalResponseNormalization(axis=4)(np.ones((1, 2, 2, 3), "float32"))


@pytest.mark.backend
def test_native_implementation_needs_tensorflow_and_4d_inputs():
    layer = LocalResponseNormalization(implementation="native")
    if keras.backend.backend() != "tensorflow":
        with pytest.raises(ValueError, match=r"Received: backend="):
            layer(np.ones((1, 2, 2, 3), "float32"))
    with pytest.raises(ValueError, match=r"input_shape=\(1, 2, 3\)"):
        LocalResponseNormalization(implementation="native")(np.ones((1, 2, 3)))


def _implementations():
    from keras_alexnet.layers import local_response_normalization as module

    names = [n for n in module.IMPLEMENTATIONS if n not in ("auto", "native")]
    if keras.backend.backend() == "tensorflow":
        names.append("native")
    return names


@pytest.mark.backend
@pytest.mark.parametrize("implementation", _implementations())
@pytest.mark.parametrize("convention", [PAPER, CAFFE])
def test_every_implementation_matches_tensorflow(rng, implementation, convention):
    # The layer picks one way to sum the window for inference and one for
    # training per backend (benchmarks/lrn.py); each must be the same function.
    x = alexnet_like_activations(rng, shape=(2, 5, 6, 16))
    upstream = rng.standard_normal(x.shape).astype("float32")
    layer = LocalResponseNormalization(*convention, implementation=implementation)
    np.testing.assert_allclose(
        to_numpy(layer(x)), tf_reference(x, *convention).numpy(), rtol=1e-5, atol=1e-6
    )
    gradient = input_gradient(lambda v: layer(v, training=True), x, upstream)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(tf_reference(xt, *convention) * upstream)
    np.testing.assert_allclose(
        gradient, tape.gradient(loss, xt).numpy(), rtol=1e-4, atol=1e-6
    )


@pytest.mark.backend
@pytest.mark.parametrize("implementation", ["auto", *_implementations()])
def test_float64_is_exact_for_every_implementation(rng, implementation):
    # Every way of summing the window (TensorFlow's kernel has no float64, and
    # `ops.matmul` computes float64 in float32 under JAX and PyTorch): values and
    # gradients exact to float64 rounding against PyTorch's LRN in float64.
    x = alexnet_like_activations(rng, shape=(2, 3, 4, 16)).astype("float64")
    upstream = rng.standard_normal(x.shape)
    layer = LocalResponseNormalization(
        *CAFFE, implementation=implementation, dtype="float64"
    )
    x_torch = torch.tensor(x, requires_grad=True)
    expected = torch_reference(x_torch, *CAFFE)
    torch.sum(expected * torch.from_numpy(upstream)).backward()
    expected = expected.detach().numpy()
    with dtype_scope("float64"):
        for training in (False, True):
            outputs = layer(x, training=training)
            assert keras.backend.standardize_dtype(outputs.dtype) == "float64"
            np.testing.assert_allclose(to_numpy(outputs), expected, rtol=1e-14)
        gradient = input_gradient(lambda v: layer(v, training=True), x, upstream)
    np.testing.assert_allclose(gradient, x_torch.grad.numpy(), rtol=1e-13, atol=1e-16)
