"""Sets weights, read by Keras layer name, on a model the caller built."""

from __future__ import annotations

import keras
import numpy as np

from keras_alexnet.weights.download import (
    converted_weights_path,
    imagenet_layer_weights,
)
from keras_alexnet.weights.formats import (
    TOP_LAYERS,
    WeightsByLayer,
    read_checkpoint,
    read_keras_weights,
    weights_format,
)
from keras_alexnet.weights.registry import Checkpoint

__all__ = ["assign_weights", "layer_weights", "load_weights"]


def load_weights(
    model: keras.Model, weights: str | Checkpoint, source_name: str | None = None
) -> None:
    """Loads a registry entry or a weights file into `model` by layer name.

    Args:
        model: the model to fill, built by the caller.
        weights: a `Checkpoint` (its cached conversion) or the path of a weights
            file of one of `WEIGHTS_FORMATS`.
        source_name: how error messages name the weights.

    Raises:
        ValueError: the weights do not fit `model` (see `assign_weights`).
    """
    if isinstance(weights, Checkpoint):
        arrays = imagenet_layer_weights(weights)
        source = source_name or converted_weights_path(weights)
    elif weights_format(weights) == "keras_weights":
        arrays = read_keras_weights(
            weights,
            [(layer.name, type(layer).__name__) for layer in model.layers],
            has_top=any(layer.name in TOP_LAYERS for layer in model.layers),
        )
        source = repr(weights)
    else:
        arrays = read_checkpoint(weights)
        source = repr(weights)
    assign_weights(model, arrays, source=source)


def layer_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """Returns `{layer_name: layer.get_weights()}` for the layers with weights."""
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def assign_weights(
    model: keras.Model, weights: WeightsByLayer, source: str = "the checkpoint"
) -> None:
    """Sets each layer of `model` that has weights from `weights[layer.name]`.

    `TOP_LAYERS` absent from the model are ignored, so a full checkpoint loads
    into `include_top=False`.

    Args:
        model: the model to fill.
        weights: `{layer_name: [arrays]}`.
        source: how error messages name the weights.

    Raises:
        ValueError: a layer missing on either side, or a shape that differs,
            naming the layer and both shapes. No layer is set then.
    """
    model_layers = {layer.name: layer for layer in model.layers if layer.weights}
    missing = sorted(set(model_layers) - set(weights))
    if missing:
        raise ValueError(
            f"{source} has no weights for the layers {missing} of model "
            f"{model.name!r}; it has weights for {sorted(weights)}."
        )
    unused = sorted(set(weights) - set(model_layers) - set(TOP_LAYERS))
    if unused:
        raise ValueError(
            f"{source} has weights for layers {unused} that model {model.name!r} "
            "does not have: it was made for another architecture."
        )
    for name, layer in model_layers.items():
        expected = [tuple(w.shape) for w in layer.weights]
        received = [tuple(np.shape(w)) for w in weights[name]]
        if expected != received:
            raise ValueError(
                f"Layer {name!r} of model {model.name!r} has weights of shapes "
                f"{expected}, but {source} has shapes {received} for it. Check "
                "`variant`, `groups`, `normalization`, `classes` and `input_shape`."
            )
    for name, layer in model_layers.items():
        layer.set_weights(weights[name])
