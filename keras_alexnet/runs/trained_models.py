"""What classifying with a model trained by a run needs: its class names and input.

A run folder (see `keras_alexnet.runs.train`) holds `classes.json`, the class
names in the order of the model's outputs, beside its `.keras` checkpoints
(`best.keras`) or one level up (`checkpoints/epoch-0001.keras`).
"""

from __future__ import annotations

import dataclasses
import os

from keras_alexnet.data.imagenet import default_resize_size
from keras_alexnet.preprocessing import preprocessing_for
from keras_alexnet.runs.run_files import MAX_RUN_FILE_BYTES, read_classes
from keras_alexnet.variants import Preprocessing

__all__ = [
    "eval_preprocessing",
    "read_class_names",
    "read_run_classes",
    "run_classes_file",
]

RUN_CLASSES_FILE = "classes.json"


def run_classes_file(weights: str | os.PathLike) -> str | None:
    """The `classes.json` of the run folder a `.keras` checkpoint is in.

    Returns:
        Its path, or `None` for another kind of file or one outside a run folder.
    """
    weights = os.fspath(weights)
    if not weights.lower().endswith(".keras"):
        return None
    folder = os.path.dirname(os.path.abspath(weights))
    for candidate in (folder, os.path.dirname(folder)):
        path = os.path.join(candidate, RUN_CLASSES_FILE)
        if os.path.isfile(path):
            return path
    return None


def read_run_classes(path: str | os.PathLike) -> list[str]:
    """The class names of a run's `classes.json`, checked (`read_classes`)."""
    return read_classes(os.fspath(path))


def read_class_names(path: str | os.PathLike) -> list[str]:
    """The class names of a text file: one a line, blank lines skipped.

    Raises:
        FileNotFoundError: `path` is not a file.
        ValueError: larger than 16 MB, or not UTF-8.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such class-names file: {os.fspath(path)}")
    size = os.path.getsize(path)
    if size > MAX_RUN_FILE_BYTES:
        raise ValueError(
            f"{os.fspath(path)!r} has {size:,} bytes, more than a list of class "
            f"names needs (limit {MAX_RUN_FILE_BYTES:,})."
        )
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{os.fspath(path)!r} is not UTF-8 text ({error.reason})."
        ) from None


def eval_preprocessing(variant: str, image_size: int) -> Preprocessing:
    """The evaluation input of a model a run trained at `image_size` pixels.

    The ImageNet checkpoint of `variant` sets the normalisation and the ratio
    of crop to resize; the crop offsets are rounded down and the resize is
    antialiased except for the original variant (OpenCV's, as Caffe's).
    """
    return dataclasses.replace(
        preprocessing_for(variant),
        crop_size=image_size,
        resize_size=default_resize_size(image_size, variant),
        antialias=variant != "original",
        crop_rounding="floor",
    )
