"""`load_image`: an image file prepared as a checkpoint's authors evaluated it.

The equivalent of torchvision's `AlexNet_Weights.IMAGENET1K_V1.transforms()`,
driven by the checkpoint's registry entry (`checkpoint.preprocessing`): decode,
resize the shorter side to `resize_size` (bilinear, antialiased like PIL or not
like OpenCV), cut the centre `crop_size` square with the checkpoint's offset
rounding, then the checkpoint's channel order, scale, mean and std. The command
line, the parity check and the examples all prepare images through it.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import tensorflow as tf

from keras_alexnet._data_format import standardize_data_format
from keras_alexnet._validation import check_path
from keras_alexnet.data import storage
from keras_alexnet.data.augment import eval_center_crop
from keras_alexnet.data.image_checks import check_image_file
from keras_alexnet.preprocessing import apply_preprocessing
from keras_alexnet.variants import VARIANTS, Preprocessing
from keras_alexnet.weights import registry
from keras_alexnet.weights.registry import Checkpoint
from keras_alexnet.weights.spec import CHECKPOINT_VALUES, resolve_weights


def load_image(
    path: str | os.PathLike,
    weights: str | Checkpoint | Preprocessing = "bvlc_alexnet",
    *,
    preprocess: bool = True,
    data_format: str | None = None,
) -> np.ndarray:
    """Loads an image file as the input of a pretrained AlexNet.

    Args:
        path: a JPEG, PNG, GIF, BMP or WebP file (a local path or a URL
            `tf.io.gfile` reads).
        weights: whose evaluation transform to apply: a checkpoint name
            (`"bvlc_alexnet"`, `"torchvision_imagenet1k_v1"`, `"IMAGENET1K_V1"`),
            a variant (`"original"`, `"torchvision"`: its ImageNet checkpoint),
            a registry entry, or a `Preprocessing`.
        preprocess: `True` returns the model's input; `False` the RGB crop in
            [0, 255] (for a model with `include_preprocessing=True`).
        data_format: of the result, `"channels_last"` or `"channels_first"`;
            defaults to `keras.config.image_data_format()` (with `preprocess`).

    Returns:
        A float32 array `(crop_size, crop_size, 3)` (or channels first); stack
        several for a batch.

    Raises:
        ValueError: the file is missing, a folder, not an image, declares more
            pixels than `keras_alexnet.data.DEFAULT_MAX_PIXELS`, or does not
            decode; the message names it.

    Example:

    >>> x = load_image(sample_images()[0], "bvlc_alexnet")  # doctest: +SKIP
    >>> x.shape  # doctest: +SKIP
    (227, 227, 3)
    """
    constants = preprocessing_of(weights)
    path = check_path("path", path)
    if not storage.isfile(path):
        what = "a folder" if storage.isdir(path) else "not a file"
        raise ValueError(f"Cannot load the image {path!r}: it is {what}.")
    # Headers first: a decompression bomb would decode to gigabytes.
    problem = check_image_file(path)
    if problem is not None:
        raise ValueError(f"Cannot read {path!r}: {problem}.")
    try:
        crop = eval_center_crop(
            tf.io.read_file(path),
            image_size=constants.crop_size,
            resize_size=constants.resize_size,
            antialias=constants.antialias,
            crop_rounding=constants.crop_rounding,
        )
    except tf.errors.InvalidArgumentError as error:
        raise ValueError(
            f"Cannot decode {path!r} as an image: {error.message}"
        ) from error
    rgb = np.asarray(crop, np.float32)
    if not preprocess:
        return rgb
    return np.asarray(
        apply_preprocessing(rgb, constants, "channels_last").transpose(
            _transpose(data_format)
        ),
        np.float32,
    )


def preprocessing_of(weights: Any) -> Preprocessing:
    """The `Preprocessing` of a checkpoint (`resolve_weights`), a variant or itself."""
    if isinstance(weights, Preprocessing):
        return weights
    if isinstance(weights, str) and weights in VARIANTS:
        return registry.imagenet_checkpoint(weights).preprocessing
    with contextlib.suppress(ValueError):
        _, checkpoint = resolve_weights(weights, files=False)
        if isinstance(checkpoint, Checkpoint):
            return checkpoint.preprocessing
    raise ValueError(
        f"`weights` should be a Preprocessing, a variant {VARIANTS}, "
        f"{CHECKPOINT_VALUES}. Received: weights={weights!r}"
    )


def _transpose(data_format: str | None) -> tuple[int, int, int]:
    if standardize_data_format(data_format) == "channels_first":
        return (2, 0, 1)
    return (0, 1, 2)
