"""`keras-alexnet classify`: the top classes of images, for any AlexNet.

One path for every model: a pretrained ImageNet checkpoint (its own resize,
crop and normalisation, ImageNet's class names) or a model trained on other
classes (a run's `.keras` file, a checkpoint with another class count, or
`--class-names`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keras_alexnet._terminal import printable
from keras_alexnet.cli.common import add_common_options
from keras_alexnet.cli.types import integer_from
from keras_alexnet.variants import LRN_PRESETS, VARIANTS, Preprocessing
from keras_alexnet.weights import registry

if TYPE_CHECKING:
    import keras

__all__ = ["add_commands"]

# ImageNet's classes: what `decode_predictions` can name.
_IMAGENET_CLASSES = 1000


def add_commands(commands: Any) -> None:
    """Adds `classify` to the subcommands."""
    classify = commands.add_parser(
        "classify",
        help="print the top classes of images",
        description="Classifies JPEG or PNG images with AlexNet: resize the "
        "shorter side, centre crop (227 for the original variant, 224 for "
        "torchvision's), preprocess for the weights, print the top classes. "
        "Without IMAGES, the sample photos shipped with keras-alexnet.",
    )
    classify.add_argument("images", nargs="*", metavar="IMAGES", help="image files")
    classify.add_argument(
        "--variant",
        choices=VARIANTS,
        help="the paper's network with Caffe's bvlc_alexnet weights (original) "
        "or torchvision's (torchvision); default: the variant the weights "
        "hold, else original",
    )
    classify.add_argument(
        "--weights",
        default="imagenet",
        metavar="imagenet|none|NAME|PATH",
        help="'imagenet' (downloaded once into the Keras cache), 'none' (random "
        "weights, to try the command offline), a checkpoint name "
        f"({', '.join(registry.CHECKPOINTS)}) or a .weights.h5, .keras, "
        ".caffemodel or .pth file, trained on ImageNet or on other classes. The "
        "architecture, LRN constants included, comes from the checkpoint or the "
        "file where it says it (a .keras, a converted .weights.h5, a "
        ".caffemodel); see --lrn for other files",
    )
    classify.add_argument(
        "--lrn",
        choices=sorted(LRN_PRESETS),
        help="the LRN constants, for a .weights.h5 that does not record them "
        "(one saved by model.save_weights): default the paper's; refused if the "
        "weights say otherwise",
    )
    classify.add_argument(
        "--top",
        type=integer_from(1, _IMAGENET_CLASSES),
        default=5,
        metavar="K",
        help="how many classes to print per image (default: 5)",
    )
    classify.add_argument(
        "--class-names",
        metavar="FILE",
        help="one class name per line, for a model trained on other classes "
        "(default: a run folder's classes.json beside the .keras file)",
    )
    add_common_options(classify)
    classify.set_defaults(run=run_classify)


@dataclasses.dataclass(frozen=True)
class _Classifier:
    """A model to classify with, and how to read its input and its outputs."""

    header: str  # the first line printed: which weights
    labels: list[str]  # one per output, padded for the table
    preprocessing: Preprocessing
    model: Callable[[], keras.Model]  # built after the images are read


def run_classify(args: argparse.Namespace) -> int:
    """Prints the top `--top` classes of each image; returns 0."""
    import keras
    import numpy as np

    from keras_alexnet.data import load_image

    paths = _image_paths(args.images)
    weights = _weights_argument(args.weights)
    classifier = _trained_classifier(weights, args) or _imagenet_classifier(
        weights, args
    )
    # Every image is read before the model is built: a bad file fails first.
    x = np.stack([load_image(path, classifier.preprocessing) for path in paths])
    print(printable(classifier.header))
    model = classifier.model()
    probabilities = np.asarray(
        keras.ops.convert_to_numpy(model.predict_on_batch(x)), np.float64
    )
    top = min(args.top, len(classifier.labels))
    for path, row in zip(paths, probabilities, strict=True):
        print(printable(path))
        for rank, index in enumerate(np.argsort(-row, kind="stable")[:top], 1):
            print(f"  {rank}. {classifier.labels[index]} {row[index]:.4f}")
    return 0


def _image_paths(images: list[str]) -> list[str]:
    from keras_alexnet.resources import sample_images

    paths = [os.fspath(path) for path in images or sample_images()]
    folders = [path for path in paths if os.path.isdir(path)]
    if folders:
        raise IsADirectoryError(
            f"IMAGES should be image files; {', '.join(folders)} is a folder. Pass "
            "its images instead, e.g. with a shell pattern: folder/*.JPEG"
        )
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(f"No such image file: {', '.join(missing)}")
    return paths


def _weights_argument(text: str) -> str | None:
    from keras_alexnet.data.storage import is_url
    from keras_alexnet.runs.run_mirror import local_copy
    from keras_alexnet.weights.spec import resolve_weights

    if text == "none":
        return None
    if is_url(text):  # a run's .keras at a URL: read from a local copy
        text = local_copy(text)
    resolve_weights(text)  # the one rule for a weights value; raises naming it
    return text


def _imagenet_classifier(weights: str | None, args: argparse.Namespace) -> _Classifier:
    """A pretrained or random AlexNet with ImageNet's 1000 classes."""
    from keras_alexnet import AlexNet, imagenet_class_index
    from keras_alexnet.alexnet import resolve_config

    # The architecture and preprocessing, from the weights: checked before any
    # image is decoded or any model is built.
    config = resolve_config(weights=weights, variant=args.variant, lrn=args.lrn)
    if weights is None:
        header = (
            "Weights: none. The model is RANDOMLY INITIALISED: the classes "
            "below are meaningless."
        )
    else:
        lrn = "" if config.lrn is None else f", LRN {config.lrn.as_dict()}"
        header = f"Weights: {weights} ({config.variant} variant{lrn})"
    return _Classifier(
        header=header,
        labels=[f"{wnid} {name:<30}" for wnid, name in imagenet_class_index()],
        preprocessing=config.preprocessing,
        # A failed download raises DownloadError, which names the mirror setting.
        model=lambda: AlexNet(weights=weights, variant=args.variant, lrn=args.lrn),
    )


def _trained_classifier(
    weights: str | None, args: argparse.Namespace
) -> _Classifier | None:
    """A model trained on other classes; `None` for ImageNet's 1000 unnamed.

    A `.keras` file holds its model; a `.caffemodel`/`.pth` gives its variant
    (by format) and class count (by its last layer). The class names come from
    `--class-names`, else the run folder's `classes.json`, else the indices.
    """
    if weights is None or not os.path.isfile(weights):
        return None  # 'imagenet' or a checkpoint name
    from keras_alexnet.runs import models, trained_models
    from keras_alexnet.runs.evaluate import load_any_model
    from keras_alexnet.weights import architecture

    stored = architecture.file_classes_and_variant(weights)
    classes_file = trained_models.run_classes_file(weights)
    if not (args.class_names or classes_file) and stored["classes"] in (
        None,
        _IMAGENET_CLASSES,
    ):
        return None
    model, variant = load_any_model(
        weights, variant=args.variant or stored["variant"], classes=stored["classes"]
    )
    classes = int(model.output_shape[-1])
    if args.class_names:
        names = trained_models.read_class_names(args.class_names)
        source = f"--class-names {args.class_names}"
    elif classes_file:
        names = trained_models.read_run_classes(classes_file)
        source = classes_file
    else:
        names, source = [str(index) for index in range(classes)], ""
    if len(names) != classes:
        hint = "" if args.class_names else "; pass --class-names FILE"
        raise ValueError(
            f"{source} names {len(names)} classes, but the model has {classes} "
            f"outputs{hint}"
        )
    image_size = models.describe_model(model)["image_size"]
    return _Classifier(
        header=f"Weights: {args.weights} ({variant} variant, {classes} classes)",
        # Names from a file: escaped, so that none can forge an output line.
        labels=[f"{printable(name):<30}" for name in names],
        preprocessing=trained_models.eval_preprocessing(
            variant, image_size or models.default_image_size(variant)
        ),
        model=lambda: model,
    )
