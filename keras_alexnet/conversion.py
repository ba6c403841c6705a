"""Converts Caffe and torchvision AlexNet checkpoints to Keras.

`convert_checkpoint` runs the conversion tables of `keras_alexnet.weights`
(`name_maps`, read by the safe readers `caffe_checkpoint` and `torch_checkpoint`)
on one file and saves the result; `keras_alexnet.parity` then checks it against
the checkpoint's own framework.

References:
    - torchvision `models/alexnet.py` (BSD-3-Clause).
    - BVLC/caffe `models/bvlc_alexnet/deploy.prototxt` (BSD-2-Clause).
    - keras-hub `tools/checkpoint_conversion/` (Apache-2.0): the table of names.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import keras
import numpy as np

from keras_alexnet import variants
from keras_alexnet._validation import check_int
from keras_alexnet.alexnet import AlexNet
from keras_alexnet.weights.architecture import file_architecture, stamp_architecture
from keras_alexnet.weights.assignment import assign_weights
from keras_alexnet.weights.download import write_atomically
from keras_alexnet.weights.formats import read_checkpoint, weights_format

__all__ = ["convert_checkpoint", "save_model_atomically"]

# What convert_checkpoint and save_model_atomically can write.
DEST_SUFFIXES = (".weights.h5", ".keras")


def convert_checkpoint(
    source: str | os.PathLike,
    dest: str | os.PathLike | None = None,
    variant: str | None = None,
    *,
    classifier_activation: str | None = "softmax",
    verbose: int = 1,
) -> keras.Model:
    """Converts a Caffe `.caffemodel` or a torchvision `.pth` to a Keras model.

    The file is read without Caffe or PyTorch and without running its code. A
    `.caffemodel` gives the `"original"` variant with Caffe's LRN constants; a
    torchvision `.pth`/`.pt` state dict the `"torchvision"` variant. The class
    count comes from the checkpoint's last layer (fine-tuned checkpoints too).

    Args:
        source: the path of the checkpoint.
        dest: where to save the model: a `.weights.h5` file (the weights, with
            the architecture stamped in, so `AlexNet(weights=dest)` rebuilds it,
            Caffe's LRN included) or a `.keras` archive (the whole model). The file
            is written under a temporary name and renamed, so it is never seen
            half-written. `None` saves nothing.
        variant: `"original"` or `"torchvision"`; `None` infers it from the
            extension of `source`. It must agree with the file.
        classifier_activation: the activation of the `predictions` layer,
            `"softmax"` (as `AlexNet(weights="imagenet")`) or `None` for logits.
        verbose: 1 shows a progress bar (`keras.utils.Progbar`) with a total:
            its steps are reading the file, building the model, setting its
            weights and saving. 0 shows nothing.

    Returns:
        The Keras model, with the checkpoint's weights.

    Raises:
        ValueError: if an argument is invalid, or the file does not hold an
            AlexNet of the expected layout (the message names the layer).

    Example:

    >>> model = convert_checkpoint(  # doctest: +SKIP
    ...     "alexnet-owt-7be5be79.pth", "alexnet_torchvision.weights.h5"
    ... )
    """
    source = check_source(source)
    variant = check_variant(variant, source)
    if dest is not None:
        dest = _check_dest(dest)
    if classifier_activation not in (None, "softmax"):
        raise ValueError(
            "`classifier_activation` should be None or 'softmax'. "
            f"Received: classifier_activation={classifier_activation!r}"
        )
    verbose = check_int("verbose", verbose, minimum=0, maximum=2)
    # Read the file, build the model, set its weights, save.
    steps = 3 + (dest is not None)
    progress = None
    if verbose:
        # Redrawn in place on a terminal; one line at the end in a log.
        progress = keras.utils.Progbar(
            steps, unit_name="step", verbose=verbose if sys.stdout.isatty() else 2
        )
    weights = read_checkpoint(source)
    _advance(progress)
    classes = int(np.shape(weights["predictions"][1])[0])
    # The architecture the file's format implies (Caffe's LRN for a .caffemodel).
    architecture = file_architecture(source)
    model = AlexNet(
        weights=None,
        variant=variant,
        groups=architecture.get("groups"),
        normalization=architecture.get("normalization"),
        lrn=architecture.get("lrn"),
        classes=classes,
        classifier_activation=classifier_activation,
    )
    _advance(progress)
    assign_weights(model, weights, source=repr(source))
    _advance(progress)
    if dest is not None:
        save_model_atomically(model, dest)
        _advance(progress)
    return model


def _advance(progress: keras.utils.Progbar | None) -> None:
    if progress is not None:
        progress.add(1)


def save_model_atomically(model: keras.Model, path: str | os.PathLike) -> None:
    """Saves `model` to a `.weights.h5` or `.keras` file through a temporary file.

    Readers see the old file or the complete new one. A `.weights.h5` gets the
    model's architecture stamped in (`stamp_architecture`), so that
    `AlexNet(weights=path)` rebuilds it, LRN constants included.

    Args:
        model: the model to save.
        path: a path ending in `.weights.h5` (weights only) or `.keras`.
    """
    path = _check_dest(path)
    if weights_format(path) == "keras_weights":

        def write(tmp: str) -> None:
            model.save_weights(tmp, overwrite=True)
            stamp_architecture(tmp, model)

        write_atomically(path, write)
    else:
        write_atomically(path, lambda tmp: model.save(tmp, overwrite=True))


# -- Arguments ---------------------------------------------------------------


def check_source(source: Any) -> str:
    """Returns `source` if it is an existing `.caffemodel` or `.pth`/`.pt` file."""
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"`source` should be a path. Received: source={source!r} of type "
            f"{type(source).__name__}"
        )
    path = os.fspath(source)
    kind = None
    with contextlib.suppress(ValueError):
        kind = weights_format(path)
    if kind not in ("caffe", "torch"):
        raise ValueError(
            "`source` should be a Caffe .caffemodel or a torchvision .pth/.pt "
            f"checkpoint. Received: source={path!r}"
        )
    if not os.path.isfile(path):
        raise ValueError(f"`source` is not a file. Received: source={path!r}")
    return path


def check_variant(variant: Any, source: str) -> str:
    """Returns the variant `source` holds, refusing a `variant` that differs."""
    expected = file_architecture(source)["variant"]
    if variant is None:
        return expected
    variants.check_variant(variant, allow_none=True)
    if variant != expected:
        kind = "Caffe .caffemodel" if expected == "original" else "torchvision .pth"
        raise ValueError(
            f"A {kind} checkpoint holds the {expected!r} variant. "
            f"Received: variant={variant!r}, source={source!r}"
        )
    return variant


def _check_dest(dest: Any) -> str:
    if not isinstance(dest, (str, os.PathLike)):
        raise TypeError(
            f"`dest` should be a path. Received: dest={dest!r} of type "
            f"{type(dest).__name__}"
        )
    path = os.fspath(dest)
    if not path.lower().endswith(DEST_SUFFIXES):
        raise ValueError(
            "`dest` should end in .weights.h5 (weights only) or .keras (the whole "
            f"model). Received: dest={path!r}"
        )
    if os.path.isdir(path):
        raise ValueError(f"`dest` is a folder. Received: dest={path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        # Checked before converting, and never created: more often a typo.
        raise ValueError(
            f"The folder of `dest` does not exist: {folder!r}. Received: dest={path!r}"
        )
    return path
