"""Tests of `keras_alexnet.serving_function`: the compiled serving function gives
the logits of the model's own call and of onnxruntime running the exported file,
compiles LRN by XLA rather than tracing TensorFlow's kernel, and checks its
arguments.

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
    logits = predict(images).numpy()
    assert_logits_close(logits, np.asarray(model(images, training=False)))
    path = export_model(model, str(tmp_path / "model.onnx"), format="onnx")
    assert_logits_close(logits, run_onnx(path, images))
    # The paper's LRN runs compiled by XLA, as in predict_on_batch, where a
    # plain tf.function of the model traces TensorFlow's LRN kernel.
    plain = tf.function(lambda x: model(x, training=False))
    assert "LRN" in graph_op_types(plain.get_concrete_function(images))
    assert "LRN" not in graph_op_types(predict)


@tf_only
def test_signature_and_weight_changes():
    model = torchvision_model()
    images = photos()
    predict = serving_function(model)
    (spec,) = predict.structured_input_signature[0]
    assert spec.shape.as_list() == [1, *images.shape[1:]]
    with pytest.raises((TypeError, ValueError)):
        predict(images)  # 3 images for a function of batch 1
    # It reads the variables at every call.
    kernel = model.get_layer("logits").kernel
    kernel.assign(2.0 * kernel.numpy())
    assert_logits_close(
        predict(images[:1]).numpy(), np.asarray(model(images[:1], training=False))
    )
    any_batch = serving_function(model, batch_size=None)
    assert_logits_close(
        any_batch(images).numpy(), np.asarray(model(images, training=False))
    )


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
