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
- `export_model`: SavedModel, ONNX or TFLite for serving.
- `sample_images`: public-domain photos shipped with the package.

The input pipelines are in `keras_alexnet.data`, imported on demand because they
load TensorFlow Datasets.
"""

__version__ = "0.1.0"

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
from keras_alexnet.training import PaperSGD, paper_callbacks
from keras_alexnet.weights.download import ChecksumError, DownloadError
from keras_alexnet.weights.registry import CHECKPOINTS
from keras_alexnet.weights.torch_checkpoint import UnsafeCheckpointError

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
]
