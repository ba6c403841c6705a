"""`keras-alexnet train`, `finetune`, `evaluate`, `quickstart` and `prepare`.

Each command calls one function of the library with the options named like its
parameters (`--learning-rate` is `learning_rate=`); an option left out takes
the function's own default. A new parameter of `keras_alexnet.runs.train`, say,
needs one `add_argument` line here.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any

from keras_alexnet._bounds import (
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_FC_UNITS,
    MAX_IMAGE_SIZE,
    MAX_RESIZE_SIZE,
    MAX_SEED,
    MAX_SHARD_SIZE,
)
from keras_alexnet._choices import DISTRIBUTE_MODES, INITIALIZATIONS, RECIPE_NAMES
from keras_alexnet._validation import is_integer
from keras_alexnet.cli.common import UsageError, add_common_options, verbose
from keras_alexnet.cli.types import fraction, integer_from, learning_rate
from keras_alexnet.variants import NORMALIZATIONS, VARIANTS

# The types of the numeric options, bounded by keras_alexnet._bounds.
_IMAGE_SIZE = integer_from(1, MAX_IMAGE_SIZE)
_BATCH_SIZE = integer_from(1, MAX_BATCH_SIZE)
_EPOCHS = integer_from(1, MAX_EPOCHS)
_SEED = integer_from(0, MAX_SEED)

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """Adds `prepare`, `train`, `finetune`, `evaluate` and `quickstart`."""
    for add in (_prepare, _train, _finetune, _evaluate, _quickstart):
        add(commands)


def _train(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train AlexNet from scratch on a dataset",
        description="Trains AlexNet from scratch with the paper's recipe or the "
        "modern one, writing a run folder (config.json, checkpoints, log.csv, "
        "TensorBoard logs, curves.png, conv1_filters.png, metrics.json). Rerun "
        "the same command to resume after an interruption.",
    )
    _run_options(train, "runs/train")
    train.add_argument(
        "--recipe",
        choices=RECIPE_NAMES,
        help="default: auto (settings fitted to DATA, printed in one line)",
    )
    train.add_argument("--normalization", choices=NORMALIZATIONS)
    train.add_argument(
        "--init",
        choices=INITIALIZATIONS,
        help="paper: N(0, 0.01), biases 1 (the recipe 'paper''s); he: He normal, "
        "biases 0 (learns on small datasets, see docs/training.md)",
    )
    train.add_argument(
        "--fc-units",
        type=integer_from(1, MAX_FC_UNITS),
        help="the width of fc6 and fc7 (default: the paper's 4096)",
    )
    train.add_argument("--learning-rate", type=learning_rate)
    train.add_argument(
        "--no-flip", dest="flip", action="store_false", default=None,
        help="no random mirroring (digits, text)",
    )  # fmt: skip
    train.add_argument(
        "--no-lighting", dest="lighting", action="store_false", default=None,
        help="no PCA lighting",
    )  # fmt: skip
    train.add_argument(
        "--center-crop-test", dest="ten_crop", action="store_false", default=None,
        help="final test on centre crops only",
    )  # fmt: skip
    train.set_defaults(run=_run_train)


def _finetune(commands: Any) -> None:
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
        metavar="imagenet|PATH|none",
        help="the base's weights (default: imagenet, downloaded once)",
    )
    finetune.add_argument(
        "--head-epochs",
        type=integer_from(0, MAX_EPOCHS),
        help="epochs with the base frozen (default: half)",
    )
    finetune.add_argument(
        "--learning-rate", type=learning_rate, help="of the head (default: 1e-3)"
    )
    finetune.add_argument(
        "--finetune-learning-rate",
        type=learning_rate,
        help="of the whole network (default: 1e-4)",
    )
    finetune.add_argument("--no-flip", dest="flip", action="store_false", default=None)
    finetune.set_defaults(run=_run_finetune)


def _evaluate(commands: Any) -> None:
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
    evaluate.add_argument("--variant", choices=VARIANTS)
    evaluate.add_argument("--image-size", type=_IMAGE_SIZE, metavar="PIXELS")
    evaluate.add_argument("--batch-size", type=_BATCH_SIZE, help="default: 64")
    evaluate.add_argument(
        "--ten-crop", action="store_true", help="average the paper's ten crops"
    )
    evaluate.add_argument("--validation-split", type=fraction, metavar="FRACTION")
    evaluate.add_argument("--seed", type=_SEED)
    evaluate.add_argument(
        "--allow-small-classes",
        action="store_true",
        default=None,
        help="keep class folders with no validation image (refused by default)",
    )
    add_common_options(evaluate)
    evaluate.set_defaults(run=_run_evaluate)


def _quickstart(commands: Any) -> None:
    quickstart = commands.add_parser(
        "quickstart",
        help="offline tour: train, evaluate, classify on the shipped digits",
        description="Trains AlexNet from scratch on scikit-learn's handwritten "
        "digits (shipped with the package, no network), evaluates it, saves and "
        "reloads the .keras file, classifies a few images, and trains the same "
        "network with BatchNorm instead of LRN for a comparison plot. A few "
        "minutes on 2 CPU cores.",
    )
    quickstart.add_argument("--output", default="runs/quickstart", metavar="DIR")
    quickstart.add_argument("--epochs", type=_EPOCHS)
    quickstart.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds: 10 images a class, 1 epoch (for CI)",
    )
    quickstart.add_argument("--seed", type=_SEED)
    add_common_options(quickstart)
    quickstart.set_defaults(run=_run_quickstart)


def _prepare(commands: Any) -> None:
    prepare = commands.add_parser(
        "prepare",
        help="store an image folder at 256 pixels in TFRecord shards, once",
        description="Rescales every image of SOURCE so that its shorter side is "
        "256 pixels, as the paper did, and writes them with their labels into "
        "TFRecord shards in OUTPUT, which imagenet_dataset(source=OUTPUT) reads "
        "with the same augmentation, faster. Rerun to resume.",
    )
    prepare.add_argument("source", help="ImageNet-style folder (root/<wnid>/*)")
    prepare.add_argument("output_dir", metavar="output", help="folder for the shards")
    prepare.add_argument("--labels-file", help="labels of a flat folder")
    prepare.add_argument(
        "--resize-size", type=integer_from(1, MAX_RESIZE_SIZE), help="default: 256"
    )
    prepare.add_argument(
        "--shard-size",
        type=integer_from(1, MAX_SHARD_SIZE),
        help="images a shard (default: 1024)",
    )
    prepare.add_argument(
        "--quality",
        type=integer_from(1, 100),
        help="JPEG quality of the stored images, 1 to 100 (default: 90)",
    )
    prepare.set_defaults(run=_run_prepare)


def _run_options(parser: argparse.ArgumentParser, output: str) -> None:
    """The options `train` and `finetune` share."""
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
        help=(
            "the run folder, a local path or a URL such as gs://bucket/run; rerun "
            f"the same command to resume (default: {output})"
        ),
    )
    parser.add_argument("--variant", choices=VARIANTS, help="default: original")
    parser.add_argument("--image-size", type=_IMAGE_SIZE, metavar="PIXELS")
    parser.add_argument("--batch-size", type=_BATCH_SIZE)
    parser.add_argument("--epochs", type=_EPOCHS)
    parser.add_argument("--validation-split", type=fraction, metavar="FRACTION")
    parser.add_argument("--seed", type=_SEED)
    parser.add_argument(
        "--keep-checkpoints",
        type=integer_from(1, MAX_EPOCHS),
        metavar="N",
        help="keep the last N epochs' checkpoints besides best.keras (default: 1)",
    )
    parser.add_argument(
        "--allow-small-classes",
        action="store_true",
        default=None,
        help="keep class folders with fewer than 2 training images or no "
        "validation image (refused by default)",
    )
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        default=None,
        help="float16 on GPU, bfloat16 on CPU",
    )
    parser.add_argument(
        "--distribute",
        nargs="?",
        const=DISTRIBUTE_MODES[0],
        choices=DISTRIBUTE_MODES,
        help="data-parallel (the default of a bare --distribute): over all local "
        "devices (TensorFlow: MirroredStrategy; JAX: "
        "keras.distribution.DataParallel); model-parallel: the paper's split of "
        "every layer over two devices (JAX: keras.distribution.ModelParallel); "
        "multi-worker: data-parallel over several machines, the same command on "
        "each, the cluster from TF_CONFIG or KERAS_DISTRIBUTION_* (see "
        "docs/distributed.md)",
    )
    add_common_options(parser)


def call(function: Callable[..., Any], args: argparse.Namespace, **values: Any) -> Any:
    """Calls `function` with the options of `args` named like its parameters.

    Options that are `None` (not given) are left out, so that the function's
    defaults apply; `values` are passed as they are, and `verbose` follows
    `--quiet` where the command has it.
    """
    parameters = inspect.signature(function).parameters
    options = {
        name: value
        for name, value in vars(args).items()
        if name in parameters and value is not None
    }
    if "verbose" in parameters and "quiet" in vars(args):
        options["verbose"] = verbose(args)
    return function(**{**options, **values})


def _check_image_size(args: argparse.Namespace, variants: tuple[str, ...]) -> None:
    """`--image-size` below what the network takes is a usage error (status 2)."""
    from keras_alexnet.alexnet import minimum_input_size

    minimum = min(minimum_input_size(variant) for variant in variants)
    if args.image_size is not None and args.image_size < minimum:
        raise UsageError(
            f"argument --image-size: should be at least {minimum} for "
            f"{' or '.join(variants)} AlexNet. Received: {args.image_size}"
        )


def _run_train(args: argparse.Namespace) -> int:
    from keras_alexnet.runs.train import train

    _check_image_size(args, (args.variant or VARIANTS[0],))
    call(train, args)
    return 0


def _run_finetune(args: argparse.Namespace) -> int:
    from keras_alexnet.runs.train import finetune

    _check_image_size(args, (args.variant or VARIANTS[0],))
    epochs = args.epochs or inspect.signature(finetune).parameters["epochs"].default
    if (
        args.head_epochs is not None
        and is_integer(epochs)
        and args.head_epochs > epochs
    ):
        raise UsageError(
            f"argument --head-epochs: should be at most --epochs ({epochs}). "
            f"Received: {args.head_epochs}"
        )
    values: dict[str, Any] = {}
    if args.weights == "none":
        values["weights"] = None  # random weights
    if args.head_epochs is None and args.epochs is not None:
        values["head_epochs"] = args.epochs // 2
    call(finetune, args, **values)
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from keras_alexnet.runs.evaluate import evaluate

    # The variant may come from the weights: the smallest of any.
    _check_image_size(args, (args.variant,) if args.variant else VARIANTS)
    call(evaluate, args)
    return 0


def _run_quickstart(args: argparse.Namespace) -> int:
    from keras_alexnet.runs.quickstart import quickstart

    call(quickstart, args)
    return 0


def _run_prepare(args: argparse.Namespace) -> int:
    from keras_alexnet.data.prepare import prepare_imagenet

    manifest = call(prepare_imagenet, args)
    print(
        f"{manifest['images']} images of {len(manifest['class_names'])} classes in "
        f"{len(manifest['shards'])} shards in {args.output_dir}; "
        f"{len(manifest['skipped_files'])} skipped"
    )
    return 0
