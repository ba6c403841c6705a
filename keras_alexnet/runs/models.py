"""The networks a run trains: `AlexNet` for any image size and class count, and a
pretrained base with a new head.

Why runs default to He's initialisation (`init="he"`), not the paper's:
docs/training.md and docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras

from keras_alexnet._choices import INITIALIZATIONS
from keras_alexnet.alexnet import FC_UNITS, AlexNet
from keras_alexnet.variants import DEFAULT_IMAGE_SIZE, check_variant

__all__ = [
    "FC_UNITS",
    "INITIALIZATIONS",
    "build_classifier",
    "build_finetune_model",
    "default_image_size",
    "describe_model",
]


def default_image_size(variant: str) -> int:
    """The checkpoint's input size: 227 (original) or 224 (torchvision)."""
    return DEFAULT_IMAGE_SIZE[check_variant(variant)]


def build_classifier(
    classes: int,
    *,
    variant: str = "original",
    image_size: int | None = None,
    normalization: str | None = None,
    groups: int | None = None,
    dropout: float = 0.5,
    init: str = "paper",
    seed: int | None = None,
    fc_units: int = FC_UNITS,
) -> keras.Model:
    """AlexNet from scratch for `classes` classes on square `image_size` images.

    `AlexNet(weights=None, ...)` with a softmax top, nothing more: the
    Python API builds the same model from the same arguments.

    Args:
        classes: the number of classes.
        variant: `"original"` or `"torchvision"`.
        image_size: the side of the input; defaults to the variant's.
        normalization: `"lrn"`, `"batchnorm"` or `"none"`; `None` for the
            variant's.
        groups: 1 or 2; `None` for the variant's.
        dropout: the dropout rate of fc6 and fc7.
        init: `AlexNet`'s `initialization`: `"paper"` or `"he"`.
        seed: the seed of the initial weights.
        fc_units: the width of fc6 and fc7.

    Returns:
        A `keras.Model` with a softmax output.

    Raises:
        ValueError: as `AlexNet`.
    """
    size = image_size or default_image_size(variant)
    return AlexNet(
        weights=None,
        input_shape=(size, size, 3),
        classes=classes,
        variant=variant,
        normalization=normalization,
        groups=groups,
        dropout=dropout,
        fc_units=fc_units,
        initialization=init,
        seed=seed,
    )


def build_finetune_model(
    classes: int,
    *,
    weights: str | None,
    variant: str = "original",
    image_size: int | None = None,
    dropout: float = 0.5,
) -> tuple[keras.Model, keras.Model]:
    """A pretrained convolutional base with a new classifier, for fine-tuning.

    `AlexNet(include_top=False, pooling="avg")` (any size from 67 pixels), then
    dropout and a new softmax `predictions` layer.

    Args:
        classes: the number of classes of the new head.
        weights: `"imagenet"`, a weights file, or `None` (random base).
        variant: `"original"` or `"torchvision"`.
        image_size: the side of the input; defaults to the variant's.
        dropout: the dropout rate before the new head.

    Returns:
        `(model, base)`: the whole model, and its base (to freeze and unfreeze).
    """
    size = image_size or default_image_size(variant)
    # The builder takes the LRN constants from the weights.
    base = AlexNet(
        include_top=False,
        weights=weights,
        variant=variant,
        pooling="avg",
        input_shape=(size, size, 3),
        name="base",
    )
    inputs = keras.Input((size, size, 3), name="image")
    x = base(inputs, training=False)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="alexnet_finetuned"), base


def describe_model(model: keras.Model) -> dict[str, Any]:
    """What a saved model is: its input size, class count and layers of note."""
    shape = model.input_shape
    names = {layer.name for layer in _all_layers(model)}
    return {
        "image_size": shape[1]
        if keras.config.image_data_format() == "channels_last"
        else shape[2],
        "classes": int(model.output_shape[-1]),
        "normalization": "batchnorm"
        if "bn1" in names
        else ("lrn" if "norm1" in names else "none"),
    }


def _all_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
