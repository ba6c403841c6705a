"""The networks a run trains: AlexNet for any image size and class count, with
the paper's or He's initialisation, and a pretrained base with a new head.

Why two initialisations. The paper draws every weight from N(0, 0.01) and sets
the biases of conv2, conv4, conv5, fc6 and fc7 to 1. A layer with `n` inputs
then multiplies the spread of its input by about `0.01 * sqrt(n / 2)` (0.24 for
conv2, 0.34 for conv3, 0.29 for conv4), while the biases add the same 1 to every
input: the part of each activation that depends on the image shrinks layer
after layer under a constant. Measured on 40 digits at 227 pixels (see
docs/training.md), the spread across images is 22 % of the activations' size
at conv3, 2.6 % at conv5 and 0.9 % at fc7, where any two images' features have
a cosine similarity of 0.9999: every input gets nearly the same fc7 vector, the
gradients reaching the convolutions are as small, and a short run learns only
the class frequencies. He's initialisation (N(0, 2 / n), biases 0) keeps the
spread at about 18 % to 30 % in every layer; the quickstart and `--init he` use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from keras_alexnet._choices import INITIALIZATIONS
from keras_alexnet.alexnet import VARIANTS, AlexNet, pool5_size
from keras_alexnet.weights import registry

FC_UNITS = 4096


def default_image_size(variant: str) -> int:
    """The checkpoint's input size: 227 (original) or 224 (torchvision)."""
    return registry.imagenet_checkpoint(variant).input_size


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
    """AlexNet from scratch for `classes` classes on `image_size` pixel images.

    The paper's network whenever its top fits the size (227 to 258 pixels for
    the original variant, any size from 63 for torchvision's). Below 227 the
    original variant's pool5 is smaller than 6x6, and the same convolutions are
    followed by fc6 and fc7 on the smaller pool5 (with `image_size=67`, 256
    inputs to fc6 instead of 9216); layer names are the same.

    Args:
        classes: the number of classes.
        variant: `"original"` or `"torchvision"`.
        image_size: the side of the input; defaults to the variant's.
        normalization: `"lrn"`, `"batchnorm"` or `"none"`; `None` for the
            variant's.
        groups: 1 or 2; `None` for the variant's.
        dropout: the dropout rate of fc6 and fc7.
        init: `"paper"` (N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6, fc7)
            or `"he"` (He normal, biases 0; see the module docstring for why).
        seed: the seed of the `"he"` initialisation.
        fc_units: the width of fc6 and fc7 (4096 in the paper).

    Returns:
        A `keras.Model` with a softmax output.
    """
    if variant not in VARIANTS:
        raise ValueError(
            f"`variant` should be one of {VARIANTS}. Received: variant={variant!r}"
        )
    if init not in INITIALIZATIONS:
        raise ValueError(
            f"`init` should be one of {INITIALIZATIONS}. Received: init={init!r}"
        )
    size = image_size or default_image_size(variant)
    options: dict[str, Any] = {
        "weights": None,
        "variant": variant,
        "normalization": normalization,
        "groups": groups,
        "dropout": dropout,
    }
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    if init == "he":
        # SGD steps on conv1 grow with the square of the input's scale: inputs
        # of spread 58 (Caffe's preprocessing) make lr 0.01 diverge in a few
        # steps. The model scales them to unit spread itself, so that it still
        # takes the checkpoint's preprocessing.
        x = keras.layers.Rescaling(1.0 / input_std(variant), name="input_scale")(x)
    top_fits = variant == "torchvision" or pool5_size(size, variant) == 6
    if top_fits and fc_units == FC_UNITS:
        model = AlexNet(classes=classes, input_tensor=x, **options)
    else:
        base = AlexNet(include_top=False, input_tensor=x, **options)
        x = keras.layers.Flatten(name="flatten")(base.output)
        for index in ("6", "7"):
            x = keras.layers.Dense(
                fc_units,
                activation="relu",
                name=f"fc{index}",
                kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01),
                bias_initializer="ones",
            )(x)
            x = keras.layers.Dropout(dropout, name=f"drop{index}")(x)
        x = keras.layers.Dense(
            classes,
            activation="softmax",
            name="predictions",
            kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01),
        )(x)
        model = keras.Model(inputs, x, name="alexnet")
    if init == "he":
        he_initialize(model, seed=seed)
    return model


def input_std(variant: str) -> float:
    """The spread of preprocessed ImageNet pixels for `variant`'s checkpoint.

    ImageNet's RGB values have a standard deviation of about 0.226 on [0, 1]
    (torchvision's `std`), 57.6 on [0, 255]: Caffe's preprocessing keeps that
    scale, torchvision's divides it away.
    """
    constants = registry.imagenet_checkpoint(variant).preprocessing
    return float(255.0 * 0.226 * constants.scale / np.mean(constants.std))


def he_initialize(model: keras.Model, *, seed: int | None = None) -> None:
    """Redraws every convolution and dense kernel from He's normal, biases 0.

    He's normal, N(0, 2 / fan_in), keeps the size of activations from layer to
    layer for inputs of unit spread. The classifier (`predictions`) gets
    Glorot's uniform, the usual choice for a softmax layer. Batch normalization
    keeps its own initial values.

    Args:
        model: the model, changed in place.
        seed: the seed of the draws.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        # By attribute, not by name: a distribution strategy renames variables.
        kernel = getattr(layer, "kernel", None)
        bias = getattr(layer, "bias", None)
        if kernel is None:
            continue
        shape = tuple(kernel.shape)
        fan_in = int(np.prod(shape[:-1]))
        if layer.name == "predictions":
            limit = np.sqrt(6.0 / (fan_in + shape[-1]))
            value = rng.uniform(-limit, limit, shape)
        else:
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        kernel.assign(value.astype(kernel.dtype))
        if bias is not None:
            bias.assign(np.zeros(tuple(bias.shape), bias.dtype))


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
