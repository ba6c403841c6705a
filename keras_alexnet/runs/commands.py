"""The `keras-alexnet` commands for whole runs: train, finetune, evaluate,
quickstart, and classify's extras (any trained model, its class names).

`keras_alexnet.cli` registers them with `add_commands`; the `keras-alexnet`
script (`keras_alexnet_launcher`) applies `--backend` and hides TensorFlow's
start-up logging before Keras is imported.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

BACKENDS = ("tensorflow", "jax", "torch")


def _reported_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ValueError, TypeError, OSError, ImportError]
    try:
        import tensorflow as tf

        # A file that passed every check but fails inside tf.data, say.
        errors.append(tf.errors.OpError)
    except ImportError:
        pass
    return tuple(errors)


# Errors of the caller or the environment: one line and status 1 (`--debug`
# shows the traceback). Anything else is a bug, and keeps its traceback.
REPORTED_ERRORS = _reported_errors()


def one_line(error: BaseException) -> str:
    """The first line of an error's message (TensorFlow's run to pages)."""
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    # TensorFlow wraps its op errors in "{{function_node ...}}" and "[Op:...]".
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)
    message = re.sub(r"\s*\[Op:[^\]]*\].*", "", message, flags=re.S)
    return message.strip().splitlines()[0]


def check_backend(args: argparse.Namespace) -> None:
    """`--backend` must name the backend Keras was imported with."""
    import keras

    wanted = getattr(args, "backend", None)
    if wanted and wanted != keras.backend.backend():
        raise ValueError(
            f"--backend {wanted}: Keras was already imported with the "
            f"{keras.backend.backend()} backend; run the `keras-alexnet` script, or "
            "set KERAS_BACKEND, to choose it."
        )


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """`--backend`, `--debug` and `--quiet`, read again by the launcher."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="the Keras backend (set before Keras is imported; default: "
        "KERAS_BACKEND or tensorflow)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and TensorFlow's logs"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"should be an integer >= 1. Received: {text!r}"
        )
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"should be in (0, 1). Received: {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"should be a number > 0. Received: {text!r}")
    return value


def _run_options(parser: argparse.ArgumentParser, output: str) -> None:
    parser.add_argument(
        "data",
        metavar="DATA",
        help="a folder with train/ and val/ (or validation/) class folders, a "
        "single class-folder tree with --validation-split, or a TFDS name",
    )
    parser.add_argument(
        "--output",
        default=output,
        metavar="DIR",
        help=f"the run folder; rerun the same command to resume (default: {output})",
    )
    parser.add_argument(
        "--variant", choices=("original", "torchvision"), default="original"
    )
    parser.add_argument("--image-size", type=_positive_int, metavar="PIXELS")
    parser.add_argument("--batch-size", type=_positive_int)
    parser.add_argument("--epochs", type=_positive_int)
    parser.add_argument("--validation-split", type=_fraction, metavar="FRACTION")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--mixed-precision", action="store_true", help="float16 on GPU, bfloat16 on CPU"
    )
    parser.add_argument(
        "--distribute",
        nargs="?",
        const="data-parallel",
        choices=("data-parallel", "model-parallel"),
        help="data-parallel (the default of a bare --distribute): over all local "
        "devices (TensorFlow: MirroredStrategy; JAX: "
        "keras.distribution.DataParallel); model-parallel: the paper's split of "
        "every layer over two devices (JAX: keras.distribution.ModelParallel)",
    )
    add_common_options(parser)


def add_commands(commands: Any) -> None:
    """Adds train, finetune, evaluate and quickstart to the subparsers."""
    train = commands.add_parser(
        "train",
        help="train AlexNet from scratch on a dataset",
        description="Trains AlexNet from scratch with the paper's recipe or the "
        "modern one, writing a run folder (config.json, checkpoints, log.csv, "
        "TensorBoard logs, curves.png, conv1_filters.png, metrics.json). Rerun "
        "the same command to resume after an interruption.",
    )
    _run_options(train, "runs/train")
    train.add_argument("--recipe", choices=("paper", "modern"), default="paper")
    train.add_argument("--normalization", choices=("lrn", "batchnorm", "none"))
    train.add_argument(
        "--init",
        choices=("paper", "he"),
        help="paper: N(0, 0.01), biases 1 (the recipe 'paper''s); he: He normal, "
        "biases 0 (learns on small datasets, see docs/training.md)",
    )
    train.add_argument(
        "--fc-units",
        type=_positive_int,
        default=4096,
        help="the width of fc6 and fc7 (default: 4096, the paper's)",
    )
    train.add_argument("--learning-rate", type=_positive_float)
    train.add_argument(
        "--no-flip",
        dest="flip",
        action="store_false",
        default=None,
        help="no random mirroring (digits, text)",
    )
    train.add_argument(
        "--no-lighting",
        dest="lighting",
        action="store_false",
        default=None,
        help="no PCA lighting",
    )
    train.add_argument(
        "--center-crop-test",
        dest="ten_crop",
        action="store_false",
        default=None,
        help="final test on centre crops only",
    )
    train.set_defaults(command=_train)

    finetune = commands.add_parser(
        "finetune",
        help="fine-tune a pretrained AlexNet with a new head",
        description="Fine-tunes AlexNet on a dataset: a new classifier on the "
        "frozen pretrained base (include_top=False), then the whole network at "
        "a lower learning rate. Writes a run folder like train.",
    )
    _run_options(finetune, "runs/finetune")
    finetune.add_argument(
        "--weights",
        default="imagenet",
        metavar="imagenet|PATH|none",
        help="the base's weights (default: imagenet, downloaded once)",
    )
    finetune.add_argument(
        "--head-epochs",
        type=int,
        default=None,
        help="epochs with the base frozen (default: half)",
    )
    finetune.add_argument("--learning-rate", type=_positive_float, default=1e-3)
    finetune.add_argument(
        "--finetune-learning-rate", type=_positive_float, default=1e-4
    )
    finetune.add_argument("--no-flip", dest="flip", action="store_false", default=True)
    finetune.set_defaults(command=_finetune)

    evaluate = commands.add_parser(
        "evaluate",
        help="top-1 / top-5, per class and a confusion matrix",
        description="Evaluates a model on the validation images of DATA: top-1 "
        "and top-5 accuracy (centre or ten crops), per_class.csv and "
        "confusion_matrix.png in --output.",
    )
    evaluate.add_argument("data", metavar="DATA")
    evaluate.add_argument(
        "--weights",
        required=True,
        metavar="PATH|imagenet",
        help="a .keras run checkpoint, .caffemodel, .pth or imagenet",
    )
    evaluate.add_argument("--output", default="runs/evaluate", metavar="DIR")
    evaluate.add_argument("--variant", choices=("original", "torchvision"))
    evaluate.add_argument("--image-size", type=_positive_int, metavar="PIXELS")
    evaluate.add_argument("--batch-size", type=_positive_int, default=64)
    evaluate.add_argument(
        "--ten-crop", action="store_true", help="average the paper's ten crops"
    )
    evaluate.add_argument("--validation-split", type=_fraction, metavar="FRACTION")
    evaluate.add_argument("--seed", type=int, default=0)
    add_common_options(evaluate)
    evaluate.set_defaults(command=_evaluate)

    quickstart = commands.add_parser(
        "quickstart",
        help="offline: train on the shipped digits, evaluate, classify, compare "
        "LRN with BatchNorm",
        description="Trains AlexNet from scratch on scikit-learn's handwritten "
        "digits (shipped with the package, no network), evaluates it, saves and "
        "reloads the .keras file, classifies a few images, and trains the same "
        "network with BatchNorm instead of LRN for a comparison plot. A few "
        "minutes on 2 CPU cores.",
    )
    quickstart.add_argument("--output", default="runs/quickstart", metavar="DIR")
    quickstart.add_argument("--epochs", type=_positive_int, default=None)
    quickstart.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds: 10 images a class, 1 epoch (for CI)",
    )
    quickstart.add_argument("--seed", type=int, default=0)
    add_common_options(quickstart)
    quickstart.set_defaults(command=_quickstart)


def add_classify_options(classify: argparse.ArgumentParser) -> None:
    """classify's extras: `--class-names FILE`, and the common options."""
    classify.add_argument(
        "--class-names",
        metavar="FILE",
        help="one class name per line, for a model trained on other classes "
        "(default: a run folder's classes.json beside the .keras file)",
    )
    add_common_options(classify)


def _verbose(args: argparse.Namespace) -> int:
    return 0 if args.quiet else 1


def _train(args: argparse.Namespace) -> int:
    from keras_alexnet.runs.train import train

    train(
        args.data,
        args.output,
        recipe=args.recipe,
        variant=args.variant,
        normalization=args.normalization,
        init=args.init,
        fc_units=args.fc_units,
        image_size=args.image_size,
        batch_size=args.batch_size,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        flip=args.flip,
        lighting=args.lighting,
        validation_split=args.validation_split,
        ten_crop=args.ten_crop,
        seed=args.seed,
        mixed_precision=args.mixed_precision,
        distribute=args.distribute or False,
        verbose=_verbose(args),
    )
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from keras_alexnet.runs.train import finetune

    epochs = args.epochs or 10
    head = epochs // 2 if args.head_epochs is None else args.head_epochs
    finetune(
        args.data,
        args.output,
        weights=None if args.weights == "none" else args.weights,
        variant=args.variant,
        image_size=args.image_size,
        batch_size=args.batch_size or 32,
        head_epochs=head,
        epochs=epochs,
        learning_rate=args.learning_rate,
        finetune_learning_rate=args.finetune_learning_rate,
        flip=args.flip,
        validation_split=args.validation_split,
        seed=args.seed,
        mixed_precision=args.mixed_precision,
        distribute=args.distribute or False,
        verbose=_verbose(args),
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from keras_alexnet.runs.evaluate import evaluate

    evaluate(
        args.data,
        args.weights,
        output=args.output,
        variant=args.variant,
        image_size=args.image_size,
        batch_size=args.batch_size,
        ten_crop=args.ten_crop,
        validation_split=args.validation_split,
        seed=args.seed,
        verbose=_verbose(args),
    )
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from keras_alexnet.runs.quickstart import quickstart

    quickstart(
        args.output,
        epochs=args.epochs,
        smoke=args.smoke,
        seed=args.seed,
        verbose=_verbose(args),
    )
    return 0


def classify_trained(args: argparse.Namespace) -> int | None:
    """classify with a model trained on other classes; `None` for ImageNet's.

    A `.keras` file holds its model; a `.caffemodel`/`.pth` gives its variant
    (by format) and class count (by its last layer). Class names come from
    `--class-names`, or a run folder's `classes.json`; ImageNet's 1000 classes
    are left to the plain classify.
    """
    weights = args.weights
    if not os.path.isfile(weights):
        return None  # a name ('imagenet', 'none'), or a problem classify names
    import keras
    import numpy as np

    from keras_alexnet.preprocessing import preprocess_input
    from keras_alexnet.resources import sample_images
    from keras_alexnet.runs import models
    from keras_alexnet.runs.evaluate import load_any_model
    from keras_alexnet.weights import architecture

    # The class count (and variant) from the file's own arrays; ImageNet's 1000
    # classes without other names are left to the plain classify.
    stored = architecture.file_classes_and_variant(weights)
    named = args.class_names or _run_classes_file(weights)
    if not named and stored["classes"] in (None, 1000):
        return None

    paths = [os.fspath(p) for p in args.images] or [
        os.fspath(p) for p in sample_images()
    ]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"No such image file: {', '.join(missing)}")
    model, variant = load_any_model(
        weights,
        variant=args.variant or stored["variant"],
        classes=stored["classes"],
    )
    classes = int(model.output_shape[-1])
    # Without names: the class indices.
    names = _class_names(args.class_names, weights, classes) or [
        str(index) for index in range(classes)
    ]
    size = models.describe_model(model)["image_size"] or models.default_image_size(
        variant
    )
    images = np.stack([_decode_crop(p, size, variant) for p in paths])
    x = preprocess_input(images, variant, data_format="channels_last")
    probabilities = np.asarray(
        keras.ops.convert_to_numpy(model.predict_on_batch(x)), np.float64
    )
    print(f"Weights: {weights} ({variant} variant, {classes} classes)")
    top = min(args.top, classes)
    for path, row in zip(paths, probabilities, strict=True):
        print(path)
        for rank, index in enumerate(np.argsort(-row, kind="stable")[:top], 1):
            print(f"  {rank}. {names[index]:<30} {row[index]:.4f}")
    return 0


def _run_classes_file(weights: str) -> str | None:
    """The `classes.json` of the run folder a `.keras` checkpoint is in."""
    if not weights.lower().endswith(".keras"):
        return None
    folder = os.path.dirname(os.path.abspath(weights))
    for candidate in (folder, os.path.dirname(folder)):
        path = os.path.join(candidate, "classes.json")
        if os.path.isfile(path):
            return path
    return None


def _class_names(path: str | None, weights: str, classes: int) -> list[str] | None:
    import json

    if path is None:
        classes_file = _run_classes_file(weights)
        if classes_file is None:
            return None
        with open(classes_file, encoding="utf-8") as f:
            names = [str(name) for name in json.load(f)]
        if len(names) != classes:
            raise ValueError(
                f"{_run_classes_file(weights)} names {len(names)} classes, but the "
                f"model has {classes} outputs; pass --class-names FILE"
            )
        return names
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such class-names file: {path}")
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) != classes:
        raise ValueError(
            f"--class-names {path} names {len(names)} classes, but the model has "
            f"{classes} outputs"
        )
    return names


def _decode_crop(path: str, image_size: int, variant: str) -> Any:
    import numpy as np
    import tensorflow as tf

    from keras_alexnet.data import augment
    from keras_alexnet.data.image_checks import image_format
    from keras_alexnet.data.imagenet import default_resize_size

    with open(path, "rb") as f:
        head = f.read(32)
    if image_format(head) is None:
        raise ValueError(
            f"{path} is not an image (no JPEG, PNG, GIF, BMP, WebP or JPEG XL "
            "signature)"
        )
    try:
        crop = augment.eval_center_crop(
            tf.io.read_file(path),
            image_size=image_size,
            resize_size=default_resize_size(image_size, variant),
            antialias=variant != "original",
        )
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        raise ValueError(
            f"Cannot decode {path}: {error.message.splitlines()[0]}"
        ) from None
    return np.asarray(crop, np.float32)
