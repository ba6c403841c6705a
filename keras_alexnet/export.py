"""Export an AlexNet (or any Keras model) for serving: SavedModel, ONNX or TFLite.

`export_model` wraps Keras' `Model.export`: it runs the model once (Keras' ONNX
export refuses a model never called), checks the destination before the slow
conversion, names the pip extra of a missing converter, and writes the output
atomically. It runs under the TensorFlow backend; the exported files need
neither Keras nor a backend. docs/export.md says what runs each format.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_alexnet._choices import EXPORT_FORMATS as FORMATS
from keras_alexnet._choices import EXPORT_SUFFIXES

# Keras' names for the formats.
_KERAS_FORMATS = {"saved_model": "tf_saved_model", "onnx": "onnx", "tflite": "litert"}
# An undefined height or width is given this size for the one run before export;
# 227 suits both variants, with or without the top.
_PROBE_SIZE = 227
_EXTRA_HINT = 'pip install "keras-alexnet[export]"'

__all__ = ["FORMATS", "check_destination", "export_model"]


def export_model(
    model_or_path: keras.Model | str | os.PathLike[str],
    dest: str | os.PathLike[str],
    format: str = "saved_model",
    *,
    overwrite: bool = False,
    verbose: bool = False,
) -> str:
    """Exports a Keras model for serving, after running it once.

    Args:
        model_or_path: a `keras.Model` (for example `AlexNet(...)`) or the path
            of a `.keras` file saved by Keras.
        dest: where to write: a directory for `"saved_model"`, a file ending in
            `.onnx` or `.tflite` for the other formats.
        format: `"saved_model"`, `"onnx"` or `"tflite"`.
        overwrite: whether to replace an existing `dest`; if `False` an existing
            `dest` is an error, checked before anything is converted.
        verbose: whether Keras prints what it exports.

    Returns:
        The path written, `dest` as a string.

    Raises:
        ValueError: a bad `format`, a `dest` with the wrong extension, that
            exists or whose folder does not exist, a backend other than
            TensorFlow.
        TypeError: `model_or_path` is neither a model nor a path.
        ImportError: the converter for `format` is not installed (the message
            names the pip extra).

    Example:

    ```python
    from keras_alexnet import AlexNet
    from keras_alexnet.export import export_model

    model = AlexNet(weights="imagenet", include_preprocessing=True)
    export_model(model, "alexnet.onnx", format="onnx")
    ```
    """
    dest = check_destination(dest, format, overwrite=overwrite)
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "Export runs under the TensorFlow backend (set KERAS_BACKEND=tensorflow "
            "before importing Keras); the exported model runs without it. "
            f"Received: backend {keras.backend.backend()!r}"
        )
    _check_converter(format)
    model = _load(model_or_path)
    _run_once(model)
    _write_atomically(
        dest,
        lambda tmp: model.export(tmp, format=_KERAS_FORMATS[format], verbose=verbose),
        is_directory=format == "saved_model",
    )
    return dest


def check_destination(
    dest: str | os.PathLike[str], format: str, *, overwrite: bool = False
) -> str:
    """Checks `format` and `dest` as `export_model` does, before any slow work.

    Args:
        dest: the directory (`"saved_model"`) or file (`.onnx`, `.tflite`) to write.
        format: `"saved_model"`, `"onnx"` or `"tflite"`.
        overwrite: whether an existing `dest` may be replaced.

    Returns:
        `dest` as a string.

    Raises:
        ValueError: a bad format or extension, an existing `dest`, or a `dest`
            whose folder does not exist.
        TypeError: `dest` is not a path.
    """
    if format not in FORMATS:
        raise ValueError(f"`format` should be one of {FORMATS}. Received: {format=}")
    if isinstance(dest, bool) or not isinstance(dest, (str, os.PathLike)):
        raise TypeError(f"`dest` should be a path. Received: dest={dest!r}")
    dest = os.fspath(dest)
    suffix = EXPORT_SUFFIXES.get(format)
    if suffix is not None and not dest.lower().endswith(suffix):
        raise ValueError(
            f"`dest` should end in {suffix} for format={format!r}. Received: {dest=}"
        )
    if suffix is None and dest.lower().endswith((".onnx", ".tflite", ".keras")):
        raise ValueError(
            "`dest` should be a directory for format='saved_model'; use "
            f"format='onnx' or 'tflite' for a single file. Received: {dest=}"
        )
    folder = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(folder):
        # As `keras-alexnet convert`: a typo in a folder name is not a request
        # to create it.
        raise ValueError(
            f"The folder of `dest` does not exist: {folder!r}. Received: {dest=}"
        )
    if os.path.lexists(dest) and not overwrite:
        raise ValueError(
            f"`dest` already exists; remove it or pass overwrite=True. "
            f"Received: {dest=}"
        )
    return dest


def _check_converter(format: str) -> None:
    if format != "onnx":
        return  # SavedModel and TFLite are written by TensorFlow itself.
    for module in ("onnx", "tf2onnx"):
        try:
            __import__(module)
        except ImportError as error:
            raise ImportError(
                f"Exporting to ONNX needs the `{module}` package: {_EXTRA_HINT}"
            ) from error


def _load(model_or_path: Any) -> keras.Model:
    if isinstance(model_or_path, keras.Model):
        return model_or_path
    if isinstance(model_or_path, bool) or not isinstance(
        model_or_path, (str, os.PathLike)
    ):
        raise TypeError(
            "`model_or_path` should be a keras.Model or the path of a .keras file. "
            f"Received: model_or_path={model_or_path!r}"
        )
    path = os.fspath(model_or_path)
    if not path.lower().endswith(".keras"):
        raise ValueError(
            "`model_or_path` should be a keras.Model or the path of a .keras file "
            "(a .weights.h5 file holds no architecture: build the model with "
            f"AlexNet(weights=...) and pass it). Received: {path!r}"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such model file: {path!r}")
    from keras_alexnet.weights.keras_file import load_keras_file

    return load_keras_file(path, argument="model_or_path", compile=False)


def _run_once(model: keras.Model) -> None:
    """Calls the model on zeros, so that every layer is built and traced."""
    inputs = []
    for shape, dtype in zip(_input_shapes(model), _input_dtypes(model), strict=True):
        concrete = [1] + [_PROBE_SIZE if size is None else size for size in shape[1:]]
        inputs.append(np.zeros(concrete, dtype=dtype or "float32"))
    model(inputs[0] if len(inputs) == 1 else inputs, training=False)


def _input_shapes(model: keras.Model) -> list[tuple[int | None, ...]]:
    return [tuple(tensor.shape) for tensor in model.inputs]


def _input_dtypes(model: keras.Model) -> list[str | None]:
    return [getattr(tensor, "dtype", None) for tensor in model.inputs]


def _write_atomically(
    dest: str, write: Callable[[str], None], *, is_directory: bool
) -> None:
    directory = os.path.dirname(os.path.abspath(dest))
    # A fresh temporary directory beside dest: the final rename stays on one
    # file system, and a failed export leaves nothing at dest.
    workdir = tempfile.mkdtemp(prefix=".tmp-export-", dir=directory)
    try:
        tmp = os.path.join(workdir, os.path.basename(dest.rstrip(os.sep)) or "model")
        write(tmp)
        if is_directory and os.path.lexists(dest):
            # A directory cannot be swapped in one rename: the old one goes first.
            if os.path.isdir(dest):
                shutil.rmtree(dest)
            else:
                os.remove(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
