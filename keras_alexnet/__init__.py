"""keras-alexnet: AlexNet for Keras 3, faithful to the 2012 paper.

The public API, re-exported explicitly:

- `AlexNet`: the model builder (the `keras.applications` contract).
- `LocalResponseNormalization`, `GroupedConv2D`, `AdaptiveAveragePooling2D`,
  `ImagePreprocessing`: its layers.
- `preprocess_input`, `decode_predictions`, `imagenet_class_index`.
- `CHECKPOINTS`, `convert_checkpoint`, `parity_report`: the pretrained weights.
- `PaperSGD`, `paper_callbacks`: the paper's training recipe.
- `sample_images`: public-domain photos shipped with the package.

The input pipelines are in `keras_alexnet.data`, imported on demand because they
load TensorFlow Datasets.
"""

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING

# The public names, imported on first use (PEP 562), so that `import
# keras_alexnet` (and the command line's launcher) does not import Keras before
# the backend is chosen.
_PUBLIC = {
    "AlexNet": "keras_alexnet.alexnet",
    "convert_checkpoint": "keras_alexnet.conversion",
    "parity_report": "keras_alexnet.conversion",
    "AdaptiveAveragePooling2D": "keras_alexnet.layers",
    "GroupedConv2D": "keras_alexnet.layers",
    "ImagePreprocessing": "keras_alexnet.layers",
    "LocalResponseNormalization": "keras_alexnet.layers",
    "decode_predictions": "keras_alexnet.preprocessing",
    "imagenet_class_index": "keras_alexnet.preprocessing",
    "preprocess_input": "keras_alexnet.preprocessing",
    "sample_images": "keras_alexnet.resources",
    "PaperSGD": "keras_alexnet.training",
    "paper_callbacks": "keras_alexnet.training",
    "CHECKPOINTS": "keras_alexnet.weights.registry",
}

if TYPE_CHECKING:
    from keras_alexnet.alexnet import AlexNet
    from keras_alexnet.conversion import convert_checkpoint, parity_report
    from keras_alexnet.layers import (
        AdaptiveAveragePooling2D,
        GroupedConv2D,
        ImagePreprocessing,
        LocalResponseNormalization,
    )
    from keras_alexnet.preprocessing import (
        decode_predictions,
        imagenet_class_index,
        preprocess_input,
    )
    from keras_alexnet.resources import sample_images
    from keras_alexnet.training import PaperSGD, paper_callbacks
    from keras_alexnet.weights.registry import CHECKPOINTS


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_alexnet' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_PUBLIC])


__all__ = [
    "CHECKPOINTS",
    "AdaptiveAveragePooling2D",
    "AlexNet",
    "GroupedConv2D",
    "ImagePreprocessing",
    "LocalResponseNormalization",
    "PaperSGD",
    "__version__",
    "convert_checkpoint",
    "decode_predictions",
    "imagenet_class_index",
    "paper_callbacks",
    "parity_report",
    "preprocess_input",
    "sample_images",
]
