"""keras-alexnet: AlexNet for Keras 3, faithful to the 2012 paper.

The public API, re-exported explicitly:

- `AlexNet`: the model builder (the `keras.applications` contract).
- `LocalResponseNormalization`, `GroupedConv2D`, `AdaptiveAveragePooling2D`,
  `ImagePreprocessing`: its layers.
- `preprocess_input`, `decode_predictions`, `imagenet_class_index`.
- `CHECKPOINTS`, `convert_checkpoint`, `parity_report`: the pretrained weights;
  `DownloadError`, `ChecksumError`, `UnsafeCheckpointError`: the errors loading
  them can raise.
- `PaperSGD`, `paper_callbacks`: the paper's training recipe.
- `export_model`: SavedModel, ONNX or TFLite for serving; `serving_function`:
  a compiled function for low-latency serving in a Python process.
- `sample_images`: public-domain photos shipped with the package.

The input pipelines are in `keras_alexnet.data`, imported on demand because they
load TensorFlow Datasets.
"""

# Each name is imported on first use (PEP 562), so that importing a light module
# of the package (`keras_alexnet.variants`, the command line's parser) does not
# import Keras and its backend, which takes seconds.
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from keras_alexnet.alexnet import AlexNet
    from keras_alexnet.conversion import convert_checkpoint
    from keras_alexnet.export import export_model
    from keras_alexnet.layers import (
        AdaptiveAveragePooling2D,
        GroupedConv2D,
        ImagePreprocessing,
        LocalResponseNormalization,
    )
    from keras_alexnet.parity import parity_report
    from keras_alexnet.preprocessing import (
        decode_predictions,
        imagenet_class_index,
        preprocess_input,
    )
    from keras_alexnet.resources import sample_images
    from keras_alexnet.serving import serving_function
    from keras_alexnet.training import PaperSGD, paper_callbacks
    from keras_alexnet.weights.download import ChecksumError, DownloadError
    from keras_alexnet.weights.registry import CHECKPOINTS
    from keras_alexnet.weights.torch_checkpoint import UnsafeCheckpointError

# Public name -> the module that defines it.
_MODULES = {
    "AlexNet": "keras_alexnet.alexnet",
    "convert_checkpoint": "keras_alexnet.conversion",
    "export_model": "keras_alexnet.export",
    "AdaptiveAveragePooling2D": "keras_alexnet.layers",
    "GroupedConv2D": "keras_alexnet.layers",
    "ImagePreprocessing": "keras_alexnet.layers",
    "LocalResponseNormalization": "keras_alexnet.layers",
    "parity_report": "keras_alexnet.parity",
    "decode_predictions": "keras_alexnet.preprocessing",
    "imagenet_class_index": "keras_alexnet.preprocessing",
    "preprocess_input": "keras_alexnet.preprocessing",
    "sample_images": "keras_alexnet.resources",
    "serving_function": "keras_alexnet.serving",
    "PaperSGD": "keras_alexnet.training",
    "paper_callbacks": "keras_alexnet.training",
    "ChecksumError": "keras_alexnet.weights.download",
    "DownloadError": "keras_alexnet.weights.download",
    "CHECKPOINTS": "keras_alexnet.weights.registry",
    "UnsafeCheckpointError": "keras_alexnet.weights.torch_checkpoint",
}

__all__ = [
    "CHECKPOINTS",
    "ChecksumError",
    "DownloadError",
    "UnsafeCheckpointError",
    "AdaptiveAveragePooling2D",
    "AlexNet",
    "GroupedConv2D",
    "ImagePreprocessing",
    "LocalResponseNormalization",
    "PaperSGD",
    "__version__",
    "convert_checkpoint",
    "decode_predictions",
    "export_model",
    "imagenet_class_index",
    "paper_callbacks",
    "parity_report",
    "preprocess_input",
    "sample_images",
    "serving_function",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_alexnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


# `import keras_alexnet` registers the package's layers, optimizer and loss
# with Keras, so that `keras.models.load_model` reads a saved AlexNet and a
# run's compiled `best.keras`: at once if Keras is loaded, else right after
# Keras is imported, without importing it here.
_REGISTERING = ("keras_alexnet.layers", "keras_alexnet.training")


def _register() -> None:
    for module in _REGISTERING:
        importlib.import_module(module)


class _RegisterLayersAfterKeras(importlib.abc.MetaPathFinder):
    """Imports the registering modules as soon as `keras` has been imported."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)  # once; and find Keras' own spec below
        spec = importlib.util.find_spec(fullname)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_keras = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            exec_keras(module)
            _register()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if "keras" in sys.modules:
    _register()
elif not any(isinstance(f, _RegisterLayersAfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterLayersAfterKeras())
