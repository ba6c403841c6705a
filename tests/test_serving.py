"""Tests of `keras_alexnet.serving_function`: the frozen serving function gives
the logits of the model's own call and of onnxruntime running the exported file,
compiles LRN by XLA rather than tracing TensorFlow's kernel, holds its weights
as constants (a snapshot), answers threads at once, and checks its arguments.

The models are tests/test_export.py's: AlexNet's real convolutional stack at a
small input size with a small head.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_alexnet import serving_function
from tests.test_export import (
    assert_logits_close,
    original_model,
    photos,
    run_onnx,
    tf_only,
    torchvision_model,
)

BACKEND = keras.backend.backend()


def graph_op_types(function) -> set[str]:
    """The op types of a concrete function's graph and of the functions it calls."""
    graph = function.graph.as_graph_def()
    types = {node.op for node in graph.node}
    for library_function in graph.library.function:
        types.update(node.op for node in library_function.node_def)
    return types


@tf_only
def test_equals_the_model_and_onnxruntime(tmp_path):
    import tensorflow as tf

    from keras_alexnet import export_model

    model = original_model()
    images = photos()
    predict = serving_function(model, batch_size=len(images))
    logits = predict(images)
    assert isinstance(logits, np.ndarray)
    assert_logits_close(logits, np.asarray(model(images, training=False)))
    path = export_model(model, str(tmp_path / "model.onnx"), format="onnx")
    assert_logits_close(logits, run_onnx(path, images))
    # The paper's LRN runs compiled by XLA, as in predict_on_batch, where a
    # plain tf.function of the model traces TensorFlow's LRN kernel.
    plain = tf.function(lambda x: model(x, training=False))
    assert "LRN" in graph_op_types(plain.get_concrete_function(images))
    assert "LRN" not in graph_op_types(predict)


@tf_only
def test_input_shape_and_frozen_weights():
    model = torchvision_model()
    images = photos()
    predict = serving_function(model)
    assert predict.input_shape == (1, *images.shape[1:])
    with pytest.raises(ValueError, match=r"images.shape=\(3, "):
        predict(images)  # 3 images for a function of batch 1
    with pytest.raises(ValueError, match=r"images='not an image'"):
        predict("not an image")
    # The weights are constants of the graph: no variable is read...
    op_types = graph_op_types(predict)
    assert not op_types & {"VarHandleOp", "ReadVariableOp", "VariableV2"}
    before = np.asarray(model(images[:1], training=False))
    kernel = model.get_layer("logits").kernel
    kernel.assign(2.0 * kernel.numpy())
    after = np.asarray(model(images[:1], training=False))
    assert np.abs(after - before).max() > 1e-3
    # ...so it keeps the weights it was made with; a new one has the new.
    assert_logits_close(predict(images[:1]), before)
    any_batch = serving_function(model, batch_size=None)
    assert any_batch.input_shape == (None, *images.shape[1:])
    assert_logits_close(any_batch(images), np.asarray(model(images, training=False)))
    assert_logits_close(any_batch(images[:1]), after)


@tf_only
def test_threads_call_it_at_once():
    from concurrent.futures import ThreadPoolExecutor

    model = original_model()
    images = photos()
    predict = serving_function(model)
    expected = [np.asarray(model(images[i : i + 1], training=False)) for i in range(3)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda i: predict(images[i : i + 1]), [0, 1, 2] * 3))
    for index, result in enumerate(results):
        assert_logits_close(result, expected[index % 3])


@pytest.mark.parametrize(
    "model, batch_size, error, message",
    [
        ("not a model", 1, TypeError, "model='not a model'"),
        (None, 0, ValueError, "batch_size=0"),
        (None, 1.5, ValueError, "batch_size=1.5"),
    ],
)
def test_argument_errors(model, batch_size, error, message):
    model = (
        keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        if (model is None)
        else model
    )
    with pytest.raises(error, match=message):
        serving_function(model, batch_size=batch_size)


def test_backend_and_inputs():
    two = keras.Input((2,)), keras.Input((2,))
    model = keras.Model(two, keras.layers.Add()(list(two)))
    if BACKEND != "tensorflow":
        with pytest.raises(ValueError, match="KERAS_BACKEND=tensorflow"):
            serving_function(model)
    else:
        with pytest.raises(ValueError, match="one defined input"):
            serving_function(model)
