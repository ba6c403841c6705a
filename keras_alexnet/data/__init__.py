"""Fit-ready ImageNet input pipelines (`tf.data`), from TFDS or folders.

Example (with the ILSVRC-2012 tars in `~/ILSVRC2012`):

    from keras_alexnet.data import imagenet_dataset

    model.fit(imagenet_dataset("train", manual_dir="~/ILSVRC2012"), epochs=90)
"""

from keras_alexnet.data.augment import PCA_EIGENVALUES as PCA_EIGENVALUES
from keras_alexnet.data.augment import PCA_EIGENVECTORS as PCA_EIGENVECTORS
from keras_alexnet.data.augment import pca_lighting as pca_lighting
from keras_alexnet.data.augment import ten_crop as ten_crop
from keras_alexnet.data.folders import ImageFolder as ImageFolder
from keras_alexnet.data.folders import check_same_classes as check_same_classes
from keras_alexnet.data.folders import list_image_folder as list_image_folder
from keras_alexnet.data.folders import split_image_folder as split_image_folder
from keras_alexnet.data.image_checks import DEFAULT_MAX_PIXELS as DEFAULT_MAX_PIXELS
from keras_alexnet.data.image_checks import check_image_file as check_image_file
from keras_alexnet.data.imagenet import evaluate_ten_crop as evaluate_ten_crop
from keras_alexnet.data.imagenet import imagenet_dataset as imagenet_dataset
from keras_alexnet.data.images import load_image as load_image
from keras_alexnet.data.options import default_resize_size as default_resize_size
from keras_alexnet.data.prepare import prepare_imagenet as prepare_imagenet
from keras_alexnet.data.prepare import verify_prepared as verify_prepared

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "PCA_EIGENVALUES",
    "PCA_EIGENVECTORS",
    "ImageFolder",
    "check_image_file",
    "check_same_classes",
    "default_resize_size",
    "evaluate_ten_crop",
    "imagenet_dataset",
    "list_image_folder",
    "prepare_imagenet",
    "load_image",
    "pca_lighting",
    "split_image_folder",
    "ten_crop",
    "verify_prepared",
]
