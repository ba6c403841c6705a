"""A frozen inference function for serving a model from a Python process.

`serving_function` traces the model once, for one input shape, with the forms
of its layers that TensorFlow runs fastest on a CPU and its weights as
constants, and runs the graph in a TensorFlow session: with constant weights
oneDNN keeps them in its blocked layouts between calls (convolutions and the
fully connected layers by its inference kernels), and the call skips
`predict_on_batch`'s per-call work (input conversion and checks, the
distribution strategy). docs/serving.md has the measurements behind each
choice.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from keras_alexnet._validation import check_int

__all__ = ["ServingFunction", "serving_function"]


class ServingFunction:
    """A model's inference, frozen into a TensorFlow graph; call it with images.

    Made by `serving_function`. Calls are thread-safe; each returns a NumPy
    array. The weights are the model's when the function was made.

    Attributes:
        input_shape: the shape it accepts (`None` for any batch size).
        graph: the frozen `tf.Graph` it runs, weights as constants.
    """

    def __init__(self, graph: Any, input_name: str, output_name: str, shape: tuple):
        import tensorflow as tf

        self.graph = graph
        self.input_shape = shape
        self._input = graph.get_tensor_by_name(input_name)
        self._output = graph.get_tensor_by_name(output_name)
        self._session = tf.compat.v1.Session(graph=graph)

    def __call__(self, images: Any) -> np.ndarray:
        """Runs the model on `images` (float32 or castable, of `input_shape`).

        Raises:
            ValueError: `images` is not numeric or does not have `input_shape`.
        """
        try:
            images = np.asarray(images, dtype="float32")
        except (TypeError, ValueError):
            raise ValueError(
                "`images` should be an array of numbers. Received: "
                f"images={images!r:.100}"
            ) from None
        expected = self.input_shape
        if images.ndim != len(expected) or any(
            want is not None and got != want
            for got, want in zip(images.shape, expected, strict=True)
        ):
            raise ValueError(
                f"`images` should have shape {expected} (None: any size). "
                f"Received: images.shape={images.shape}"
            )
        return self._session.run(self._output, {self._input: images})

    def __repr__(self) -> str:
        return f"ServingFunction(input_shape={self.input_shape})"


def serving_function(model: keras.Model, batch_size: int | None = 1) -> ServingFunction:
    """Returns a frozen inference function of `model`, fast on CPU.

    The model is traced once, for inputs of shape `(batch_size,
    *model.input_shape[1:])` and float32, with `training=False` and its
    weights copied into the graph as constants: each
    `LocalResponseNormalization` runs compiled by XLA, as in
    `predict_on_batch` (a plain `tf.function` of the model would trace
    TensorFlow's slower LRN kernel); the rest runs TensorFlow's oneDNN
    kernels, which keep constant weights in their fastest layouts between
    calls. Its outputs equal `model(images, training=False)` to float32
    rounding.

    The function holds a copy of the weights taken when it is made (as much
    memory again as the model's, 233 MB for ImageNet AlexNet): later changes
    to the model's weights are not seen; make a new function after training.

    Args:
        model: a Keras model with one input (for example `AlexNet(...)`),
            under the TensorFlow backend.
        batch_size: the batch size the function accepts, >= 1; `None` for any
            (XLA then compiles LRN once per new batch size).

    Returns:
        A `ServingFunction`: call it with an array of the traced shape
        (float32, or any dtype NumPy casts to it); it returns a NumPy array.

    Raises:
        ValueError: a backend other than TensorFlow, a model with several
            inputs, or a bad `batch_size`.
        TypeError: `model` is not a `keras.Model`.

    Example:

    ```python
    import numpy as np
    from keras_alexnet import AlexNet, serving_function

    model = AlexNet(weights="imagenet", include_preprocessing=True)
    predict = serving_function(model, batch_size=1)
    probabilities = predict(np.zeros((1, 227, 227, 3), "float32"))
    ```
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` should be a keras.Model. Received: model={model!r}")
    batch_size = check_int("batch_size", batch_size, minimum=1, allow_none=True)
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "serving_function compiles with TensorFlow: set "
            "KERAS_BACKEND=tensorflow before importing Keras. Received: backend "
            f"{keras.backend.backend()!r}"
        )
    try:
        inputs = list(model.inputs or ())
    except AttributeError:  # a subclassed model never called
        inputs = []
    if len(inputs) != 1:
        raise ValueError(
            "`model` should have one defined input (a functional or Sequential "
            f"model). Received: a model with {len(inputs)} known inputs"
        )
    import tensorflow as tf

    shape = (batch_size, *tuple(inputs[0].shape)[1:])
    trainable = [np.asarray(v) for v in model.trainable_variables]
    non_trainable = [np.asarray(v) for v in model.non_trainable_variables]

    def infer(images: Any) -> Any:
        # Made inside the trace, the weights are Const nodes of the graph
        # (captured tensors would be fed at every call, as variables are).
        outputs, _ = model.stateless_call(
            [tf.constant(value) for value in trainable],
            [tf.constant(value) for value in non_trainable],
            images,
            training=False,
        )
        return tf.identity(outputs, name="outputs")

    traced = tf.function(
        infer,
        input_signature=[tf.TensorSpec(shape, tf.float32, name="images")],
        autograph=False,
    )
    with _serving_forms(model):
        concrete = traced.get_concrete_function()
    # A session runs the frozen graph 6 to 10 % faster than calling the
    # concrete function (docs/serving.md): import it into a graph of its own.
    graph_def = concrete.graph.as_graph_def()
    del concrete, traced
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    return ServingFunction(graph, "images:0", "outputs:0", shape)


@contextlib.contextmanager
def _serving_forms(model: keras.Model) -> Iterator[None]:
    """Traces the model's layers in their fastest serving forms; restores them."""
    from keras_alexnet.layers import LocalResponseNormalization

    patched: list[tuple[Any, str]] = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if (
            isinstance(layer, LocalResponseNormalization)
            and getattr(layer, "_xla", None) is not None
        ):
            # The XLA function that `predict_on_batch` calls; a user's graph
            # gets TensorFlow's LRN kernel, 4.5 to 6.4 times as slow.
            layer.call = types.MethodType(_lrn_by_xla, layer)  # type: ignore[method-assign]
            patched.append((layer, "call"))
    try:
        yield
    finally:
        for layer, name in patched:
            delattr(layer, name)  # the class's method again


def _lrn_by_xla(layer: Any, inputs: Any, training: Any = None) -> Any:
    if layer._any_image_size or keras.backend.standardize_dtype(inputs.dtype) not in (
        "float32",
        "float16",
        "bfloat16",
    ):
        # A model for any image size would compile once per image; float64
        # and integers take the layer's own exact path.
        return type(layer).call(layer, inputs, training=training)
    return layer._xla(inputs)
