"""keras-alexnet: AlexNet for Keras 3, faithful to the 2012 paper.

The public API, re-exported explicitly:

- `AlexNet`: the model builder (the `keras.applications` contract).
- `LocalResponseNormalization`, `GroupedConv2D`, `AdaptiveAveragePooling2D`,
  `ImagePreprocessing`: its layers.
- `preprocess_input`, `decode_predictions`, `imagenet_class_index`.
- `CHECKPOINTS`, `convert_checkpoint`: the pretrained weights.
"""

__version__ = "0.1.0"

from keras_alexnet.alexnet import AlexNet
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
from keras_alexnet.weights.registry import CHECKPOINTS

__all__ = [
    "CHECKPOINTS",
    "AdaptiveAveragePooling2D",
    "AlexNet",
    "GroupedConv2D",
    "ImagePreprocessing",
    "LocalResponseNormalization",
    "__version__",
    "decode_predictions",
    "imagenet_class_index",
    "preprocess_input",
]
