"""ImageNet preprocessing for the pretrained checkpoints, and decoding of predictions.

`preprocess_input` turns RGB pixels in [0, 255] into what a checkpoint was trained
on (the constants live in `keras_alexnet.weights.registry`). It accepts NumPy
arrays, TensorFlow tensors (so it runs inside `tf.data` whatever the Keras
backend) and tensors of the active Keras backend.

`decode_predictions` reads the ImageNet class index shipped inside the package,
so it never needs the network.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from typing import Any

import numpy as np

from keras_alexnet._data_format import standardize_data_format
from keras_alexnet.variants import Preprocessing, check_variant
from keras_alexnet.weights.registry import imagenet_checkpoint

NUM_CLASSES = 1000


def preprocessing_for(variant: str) -> Preprocessing:
    """Returns the preprocessing constants of the ImageNet checkpoint of `variant`."""
    return imagenet_checkpoint(variant).preprocessing


def preprocess_input(
    x: Any, variant: str = "original", data_format: str | None = None
) -> Any:
    """Preprocesses RGB images in [0, 255] for an AlexNet ImageNet checkpoint.

    - `variant="original"` (Caffe `bvlc_alexnet`): RGB to BGR, then subtract the
      ILSVRC-2012 channel means (B 104.007, G 116.669, R 122.679); no scaling.
    - `variant="torchvision"`: scale to [0, 1], subtract (0.485, 0.456, 0.406) and
      divide by (0.229, 0.224, 0.225), in RGB order.

    Args:
        x: a float or integer array of one image `(H, W, 3)` or a batch
            `(N, H, W, 3)` (channels first with `data_format="channels_first"`):
            a NumPy array, a `tf.Tensor`, or a tensor of the Keras backend.
        variant: `"original"` or `"torchvision"`, the variant whose ImageNet
            checkpoint the images are for.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.

    Returns:
        A float32 array or tensor of the same kind and shape as `x`.

    Example:

    >>> import numpy as np
    >>> preprocess_input(np.full((1, 2, 2, 3), 255.0))[0, 0, 0].round(3)
    array([150.993, 138.331, 132.321], dtype=float32)
    """
    return apply_preprocessing(
        x, preprocessing_for(check_variant(variant)), data_format
    )


def apply_preprocessing(
    x: Any, constants: Preprocessing, data_format: str | None = None
) -> Any:
    """Applies a checkpoint's `Preprocessing` constants to RGB images in [0, 255].

    `preprocess_input` for any registry entry: `(x[..., order] * scale - mean) /
    std`, on NumPy arrays, `tf.Tensor`s or tensors of the Keras backend.

    Args:
        x: an image `(H, W, 3)` or a batch `(N, H, W, 3)` (channels first with
            `data_format="channels_first"`).
        constants: `checkpoint.preprocessing` of a registry entry.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.

    Returns:
        A float32 array or tensor of the same kind and shape as `x`.
    """
    data_format = standardize_data_format(data_format)
    channel_axis = -1 if data_format == "channels_last" else -3
    rank = len(x.shape) if hasattr(x, "shape") else np.ndim(x)
    if rank not in (3, 4) or x.shape[channel_axis] != 3:
        raise ValueError(
            "`x` should be an image (H, W, 3) or a batch (N, H, W, 3) in "
            f"{data_format} layout. Received: x.shape={tuple(np.shape(x))}"
        )
    shape = [1, 1, 1] if data_format == "channels_last" else [3, 1, 1]
    shape[channel_axis] = 3
    mean = np.reshape(np.asarray(constants.mean, "float32"), shape)
    inv_std = np.reshape(1.0 / np.asarray(constants.std, "float32"), shape)
    reverse = constants.channel_order == "bgr"

    if _is_tf_tensor(x):
        import tensorflow as tf

        x = tf.cast(x, tf.float32)
        if reverse:
            x = tf.reverse(x, axis=[channel_axis])
    elif isinstance(x, (np.ndarray, list, tuple, int, float)) or np.isscalar(x):
        x = np.asarray(x, dtype="float32")
        if reverse:
            x = np.flip(x, axis=channel_axis)
    else:
        from keras import ops

        x = ops.cast(x, "float32")
        if reverse:
            x = ops.flip(x, axis=channel_axis)
    return (x * constants.scale - mean) * inv_std


def _is_tf_tensor(x: Any) -> bool:
    # Checks the type's module so NumPy-only callers never import TensorFlow.
    module = type(x).__module__
    if not module.startswith("tensorflow"):
        return False
    import tensorflow as tf

    return tf.is_tensor(x)


@functools.cache
def imagenet_class_index() -> tuple[tuple[str, str], ...]:
    """Returns the 1000 ImageNet classes as `(wnid, name)` pairs, in label order.

    The order is the sorted-wnid order shared by Keras, Caffe, TFDS and
    torchvision; the file ships inside the package.
    """
    resource = importlib.resources.files("keras_alexnet") / "resources"
    with (resource / "imagenet_class_index.json").open(encoding="utf-8") as f:
        raw = json.load(f)
    return tuple(tuple(raw[str(i)]) for i in range(len(raw)))


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """Decodes ImageNet predictions into `(wnid, name, score)` tuples.

    Args:
        preds: an array of shape `(N, 1000)`, probabilities or logits.
        top: how many classes to return for each sample, best first.

    Returns:
        One list per sample of `top` tuples `(wnid, class_name, score)`.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != NUM_CLASSES:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions of shape "
            f"(samples, {NUM_CLASSES}). Received: preds.shape={preds.shape}"
        )
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= NUM_CLASSES:
        raise ValueError(
            f"`top` should be an integer from 1 to {NUM_CLASSES}. Received: top={top!r}"
        )
    classes = imagenet_class_index()
    results = []
    for row in preds:
        best = np.argsort(row, kind="stable")[::-1][:top]
        results.append([(*classes[i], float(row[i])) for i in best])
    return results
