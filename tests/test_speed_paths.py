"""The fast paths keep their results: LRN in bfloat16, prefetching to the device."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from keras_alexnet import LocalResponseNormalization
from keras_alexnet.prefetch import prefetch_to_device
from tests.backend_utils import to_numpy

# Caffe's bvlc_alexnet constants: local_size 5, alpha 1e-4 / 5, k 1.
CAFFE = {"size": 5, "bias": 1.0, "alpha": 2e-5, "beta": 0.75}


def _lrn_float64(x: np.ndarray, size, bias, alpha, beta) -> np.ndarray:
    """The paper's formula, channels last, in float64."""
    radius = size // 2
    padded = np.pad(x**2, [(0, 0)] * (x.ndim - 1) + [(radius, radius)])
    channels = x.shape[-1]
    window = sum(padded[..., i : i + channels] for i in range(size))
    return x / (bias + alpha * window) ** beta


@pytest.mark.backend
@pytest.mark.parametrize("implementation", ["matmul", "slices"])
def test_lrn_in_bfloat16_stays_within_two_roundings(rng, implementation):
    # Conv1 activations on Caffe-preprocessed input reach the thousands.
    x = rng.uniform(0, 3000, (2, 7, 5, 96)).astype("float32")
    layer = LocalResponseNormalization(
        **CAFFE, implementation=implementation, dtype="mixed_bfloat16"
    )
    inputs = keras.ops.cast(x, "bfloat16")
    outputs = to_numpy(keras.ops.cast(layer(inputs), "float32")).astype("float64")
    # The reference sees the same bfloat16 inputs, exactly, and rounds nothing.
    exact = _lrn_float64(
        to_numpy(keras.ops.cast(inputs, "float32")).astype("float64"), **CAFFE
    )
    assert np.all(np.isfinite(outputs))
    relative = np.abs(outputs - exact) / np.maximum(np.abs(exact), 1e-3)
    # bfloat16 keeps 8 significant bits: rounding the output alone costs up to
    # 2 ** -9 = 0.2 %; the matmul path also rounds the squares and their sum.
    assert relative.max() < 1e-2, relative.max()
    assert relative.mean() < 3e-3, relative.mean()


@pytest.mark.backend
def test_lrn_in_float16_computes_the_sum_in_float32(rng):
    # For GPUs without bfloat16: squares of 3000 (9e6) overflow float16's 65504,
    # so every way sums in float32 and only the output is rounded to float16.
    x = rng.uniform(0, 3000, (2, 7, 5, 96)).astype("float32")
    for implementation in ("matmul", "slices"):
        layer = LocalResponseNormalization(
            **CAFFE, implementation=implementation, dtype="mixed_float16"
        )
        inputs = keras.ops.cast(x, "float16")
        outputs = to_numpy(keras.ops.cast(layer(inputs), "float32")).astype("float64")
        exact = _lrn_float64(
            to_numpy(keras.ops.cast(inputs, "float32")).astype("float64"), **CAFFE
        )
        assert np.all(np.isfinite(outputs)), implementation
        # float16 keeps 11 significant bits: 2 ** -11 = 0.05 % per rounding.
        np.testing.assert_allclose(outputs, exact, rtol=2e-3, atol=1e-3)


@pytest.mark.backend
def test_fit_under_mixed_float16_stays_finite(rng):
    from keras_alexnet import AlexNet

    keras.config.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(4)
        base = AlexNet(
            weights=None,
            include_top=False,
            pooling="avg",
            input_shape=(67, 67, 3),
            include_preprocessing=True,
        )
        outputs = keras.layers.Dense(3, dtype="float32")(base.output)
        model = keras.Model(base.input, outputs)
    finally:
        keras.config.set_dtype_policy("float32")
    assert base.get_layer("norm1").compute_dtype == "float16"
    model.compile(
        optimizer=keras.optimizers.SGD(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    # Keras wraps the optimizer in dynamic loss scaling for float16.
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    x = rng.integers(0, 256, (4, 67, 67, 3), dtype="uint8")
    history = model.fit(x, np.arange(4) % 3, batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.backend
def test_prefetch_to_device_keeps_values_and_structure(rng):
    arrays = [rng.integers(0, 256, (2, 3), dtype="uint8") for _ in range(4)]
    batches = ((a, {"label": np.arange(2) + i}) for i, a in enumerate(arrays))
    received = list(prefetch_to_device(batches, size=2))
    assert len(received) == 4
    for i, (x, y) in enumerate(received):
        assert keras.backend.standardize_dtype(x.dtype) == "uint8"
        np.testing.assert_array_equal(to_numpy(x), arrays[i])
        np.testing.assert_array_equal(to_numpy(y["label"]), np.arange(2) + i)


@pytest.mark.backend
def test_prefetch_to_device_feeds_fit(rng):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = rng.standard_normal((32, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")

    def batches():  # endless, as the docstring's dataset.repeat()
        while True:
            for start in range(0, 32, 8):
                yield x[start : start + 8], y[start : start + 8]

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*ran out of data")
        losses = model.fit(
            prefetch_to_device(batches()),
            epochs=5,
            steps_per_epoch=4,
            verbose=0,
            shuffle=False,
        ).history["loss"]
    assert len(losses) == 5
    assert losses[-1] < losses[0] / 4, losses


def test_prefetch_to_device_raises_the_sources_error():
    def broken():
        yield np.zeros(2)
        raise OSError("disk gone")

    iterator = prefetch_to_device(broken())
    next(iterator)
    with pytest.raises(OSError, match="disk gone"):
        next(iterator)


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_prefetch_to_device_rejects_a_bad_size(size):
    with pytest.raises(ValueError, match=r"Received: size="):
        prefetch_to_device([], size=size)


def test_prefetch_to_device_rejects_a_non_iterable():
    with pytest.raises(TypeError, match=r"Received: batches=int"):
        prefetch_to_device(3)


def _alexnet_lrn_model():
    inputs = keras.Input((9, 9, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = LocalResponseNormalization(**CAFFE, name="norm")(x)
    outputs = keras.layers.Dense(4)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    return model


def _count_xla_calls(monkeypatch):
    from keras_alexnet.layers import local_response_normalization as module

    calls = []
    original = module._XlaFunction.__call__

    def counted(self, inputs):
        calls.append(inputs)
        return original(self, inputs)

    monkeypatch.setattr(module._XlaFunction, "__call__", counted)
    return calls


def test_tensorflow_cpu_compiles_lrn_in_predict_and_evaluate_only(rng, monkeypatch):
    # TensorFlow on CPU: Keras compiles nothing, the layer compiles its
    # inference itself (4.5-6.4x TensorFlow's own LRN kernel,
    # docs/performance.md). Only in Keras' own steps: a graph traced for
    # export must stay convertible. Training gained nothing compiled.
    import tensorflow as tf

    assert keras.backend.backend() == "tensorflow"
    calls = _count_xla_calls(monkeypatch)
    model = _alexnet_lrn_model()
    x = rng.uniform(0, 255, (4, 9, 9, 3)).astype("float32")
    y = np.zeros((4, 4), "float32")
    model.fit(x, y, epochs=1, verbose=0)
    assert not calls  # the training step
    logits = model.predict(x, verbose=0)
    assert len(calls) == 1
    model.evaluate(x, y, verbose=0)
    assert len(calls) == 2
    calls.clear()
    traced = tf.function(lambda v: model(v, training=False))
    np.testing.assert_allclose(traced(x).numpy(), logits, rtol=1e-5, atol=1e-5)
    assert calls == []  # a user's tf.function: plain operations


def test_tensorflow_cpu_does_not_compile_lrn_for_images_of_any_size(rng, monkeypatch):
    # With free spatial dimensions every new image size would cost an XLA
    # compilation (about 0.1 s, more than the layer's work): plain operations.
    import tensorflow as tf

    calls = _count_xla_calls(monkeypatch)
    inputs = keras.Input((None, None, 16))
    model = keras.Model(inputs, LocalResponseNormalization(**CAFFE)(inputs))
    for size in (5, 7):
        x = rng.uniform(0, 3000, (2, size, size + 1, 16)).astype("float32")
        expected = tf.nn.local_response_normalization(
            x, depth_radius=2, bias=1.0, alpha=2e-5, beta=0.75
        ).numpy()
        np.testing.assert_allclose(
            model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6
        )
    assert calls == []


def test_model_export_to_onnx_after_predict_runs_in_onnxruntime(rng, tmp_path):
    # `predict` has compiled the layer with XLA; Keras' own export must still
    # give a graph that tf2onnx converts and onnxruntime runs (an XLA function
    # in it would be an unknown `PartitionedCall` node).
    import onnxruntime

    model = _alexnet_lrn_model()
    x = rng.uniform(0, 255, (4, 9, 9, 3)).astype("float32")
    logits = model.predict(x, verbose=0)
    path = str(tmp_path / "model.onnx")
    model.export(path, format="onnx", verbose=False)
    session = onnxruntime.InferenceSession(path)
    (exported,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(exported, logits, rtol=1e-5, atol=1e-4)


@pytest.mark.backend
def test_lrn_without_gradient_leaves_its_input_and_matches_the_formula(rng):
    # Under PyTorch without a gradient tape the layer works in place on its
    # own buffers; neither the input nor a gradient-recording call may change.
    x = rng.uniform(0, 3000, (2, 5, 4, 32)).astype("float32")
    expected = _lrn_float64(x.astype("float64"), **CAFFE)
    layer = LocalResponseNormalization(**CAFFE)
    tensor = keras.ops.convert_to_tensor(x)
    if keras.backend.backend() == "torch":
        import torch

        with torch.no_grad():
            outputs = to_numpy(layer(tensor))
        graded = torch.tensor(x, requires_grad=True)
        recorded = layer(graded)
        recorded.sum().backward()  # would fail had it been overwritten in place
        np.testing.assert_allclose(to_numpy(recorded.detach()), expected, rtol=1e-5)
    else:
        outputs = to_numpy(layer(tensor))
    np.testing.assert_array_equal(to_numpy(tensor), x)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5)


_NO_SCALAR_COPIES = r"""
import collections, os, sys, traceback
import keras, numpy as np, torch
from keras_alexnet import AlexNet

copies = collections.Counter()
tracing = []
for name in ("as_tensor", "tensor"):
    original = getattr(torch, name)

    def traced(data, *args, _original=original, **kwargs):
        if tracing and isinstance(data, (int, float, list, tuple)):
            frames = traceback.extract_stack()[:-1]
            package = os.sep + "keras_alexnet" + os.sep
            ours = [f for f in frames if package in f.filename]
            if ours:
                copies[f"{ours[-1].filename}:{ours[-1].lineno}"] += 1
        return _original(data, *args, **kwargs)

    setattr(torch, name, traced)

for policy in ("float32", "mixed_bfloat16"):
    keras.config.set_dtype_policy(policy)
    for lrn in ("paper", {"size": 5, "bias": 1.0, "alpha": 1e-4, "beta": 0.6}):
        model = AlexNet(weights=None, variant="original", input_shape=(67, 67, 3),
                        include_top=False, pooling="avg", include_preprocessing=True,
                        lrn=lrn)
        x = torch.tensor(np.random.default_rng(0).uniform(0, 255, (2, 67, 67, 3)),
                         dtype=torch.float32)
        for _ in range(2):  # the first call builds what is built once
            tracing[:] = [_ > 0]
            model(x, training=True).float().sum().backward()
            with torch.no_grad():
                model(x, training=False)
            tracing.clear()
print(dict(copies))
sys.exit(1 if copies else 0)
"""


def test_pytorch_layers_copy_no_python_numbers_to_the_device():
    # Under PyTorch a Python number made a tensor on a GPU is a copy from the
    # host after which the CPU waits for the GPU to finish all queued work:
    # the LRN band matrix did that twice a step, stalling the queue. On CPU
    # the same call is what gives it away: keras-alexnet's layers, forward and
    # backward, in float32 and bfloat16, must make none.
    import os
    import subprocess
    import sys

    env = dict(os.environ, KERAS_BACKEND="torch")
    result = subprocess.run(
        [sys.executable, "-c", _NO_SCALAR_COPIES],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
