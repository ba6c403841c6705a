"""Layers of AlexNet that Keras does not provide."""

from keras_alexnet.layers.adaptive_average_pooling2d import AdaptiveAveragePooling2D
from keras_alexnet.layers.channels_last import with_fast_path
from keras_alexnet.layers.grouped_conv2d import GroupedConv2D
from keras_alexnet.layers.image_preprocessing import ImagePreprocessing
from keras_alexnet.layers.local_response_normalization import (
    LocalResponseNormalization,
)

__all__ = [
    "AdaptiveAveragePooling2D",
    "GroupedConv2D",
    "ImagePreprocessing",
    "LocalResponseNormalization",
    "with_fast_path",
]
