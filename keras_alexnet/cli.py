"""The `keras-alexnet` command line: classify images, convert checkpoints, list weights.

Usage:

    keras-alexnet classify [IMAGES ...] [--variant original|torchvision]
                           [--weights imagenet|none|NAME|PATH] [--lrn paper|caffe]
                           [--top K]
    keras-alexnet convert SOURCE DEST [--variant ...] [--no-parity]
    keras-alexnet info
    keras-alexnet export MODEL DEST [--format saved_model|onnx|tflite]

The Keras backend is chosen as usual by the `KERAS_BACKEND` environment variable
(`KERAS_BACKEND=jax keras-alexnet classify`): it must be set before Keras is
imported, which happens before the arguments are read. Mistakes in the arguments
print a message and exit with status 2, failures while running with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

import keras
import numpy as np

from keras_alexnet import conversion, parity
from keras_alexnet.alexnet import AlexNet, resolve_config
from keras_alexnet.export import FORMATS, check_destination, export_model
from keras_alexnet.preprocessing import decode_predictions
from keras_alexnet.resources import sample_images
from keras_alexnet.runs import commands as run_commands
from keras_alexnet.variants import LRN_PRESETS, VARIANTS
from keras_alexnet.weights import architecture, download, registry

PROG = "keras-alexnet"
# Errors of the caller or the environment, reported as a message and status 1.
# Anything else is a bug, and keeps its traceback.
_REPORTED_ERRORS = (ValueError, TypeError, OSError, ImportError)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `keras-alexnet` command line.

    Args:
        argv: the arguments, without the program name; `None` reads `sys.argv`.

    Returns:
        The exit status: 0 on success, 1 when the command failed (the message is
        printed to stderr), 2 for invalid arguments.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits after --help and on bad arguments
        return int(exit_.code or 0)
    try:
        run_commands.check_backend(args)
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(warnings.showwarning)
            return args.command(args)
    except run_commands.REPORTED_ERRORS as error:
        if getattr(args, "debug", False):
            raise
        print(f"{PROG}: error: {run_commands.one_line(error)}", file=sys.stderr)
        return 1


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _one_line_warning(default: Any) -> Any:
    """`warnings.showwarning` printing keras-alexnet's own warnings on one line.

    Python shows a warning with its file, line and source line, which tells a
    command-line user nothing; other libraries' warnings keep that form.
    """

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if os.path.abspath(filename).startswith(_PACKAGE + os.sep):
            text = " ".join(str(message).split())
            print(f"{PROG}: warning: {text}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    # Subcommand parsers take the class of their parent.
    parser = _OneLineParser(
        prog=PROG,
        description="AlexNet for Keras 3: classify images, convert Caffe and "
        "torchvision checkpoints, list the pretrained weights.",
        epilog="The Keras backend is set with the KERAS_BACKEND environment "
        f"variable (backend in use: {keras.backend.backend()}).",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    commands.required = True

    classify = commands.add_parser(
        "classify",
        help="print the top ImageNet classes of images",
        description="Classifies JPEG or PNG images with AlexNet: resize the "
        "shorter side to 256, centre crop (227 for the original variant, 224 "
        "for torchvision's), preprocess for the checkpoint, print the top "
        "classes. Without IMAGES, the sample photos shipped with keras-alexnet.",
    )
    classify.add_argument("images", nargs="*", metavar="IMAGES", help="image files")
    classify.add_argument(
        "--variant",
        choices=VARIANTS,
        default=None,
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
        ".caffemodel or .pth file. The architecture, LRN constants included, "
        "comes from the checkpoint or the file where it says it (a .keras, a "
        "converted .weights.h5, a .caffemodel); see --lrn for other files",
    )
    classify.add_argument(
        "--lrn",
        choices=sorted(LRN_PRESETS),
        default=None,
        help="the LRN constants, for a .weights.h5 that does not record them "
        "(one saved by model.save_weights): default the paper's; refused if the "
        "weights say otherwise",
    )
    classify.add_argument(
        "--top",
        type=_top_count,
        default=5,
        metavar="K",
        help="how many classes to print per image (default: 5)",
    )
    run_commands.add_classify_options(classify)
    classify.set_defaults(command=_classify)

    convert = commands.add_parser(
        "convert",
        help="convert a .caffemodel or torchvision .pth to Keras",
        description="Converts a Caffe bvlc_alexnet .caffemodel (the original "
        "variant) or a torchvision AlexNet .pth (the torchvision variant) to a "
        "Keras .weights.h5 or .keras file, then compares the Keras model with "
        "the checkpoint run by its own framework (PyTorch or OpenCV). Nothing is "
        "written when the comparison fails.",
    )
    convert.add_argument("source", metavar="SOURCE", help="the checkpoint")
    convert.add_argument(
        "dest", metavar="DEST", help="the output, ending in .weights.h5 or .keras"
    )
    convert.add_argument(
        "--variant",
        choices=VARIANTS,
        default=None,
        help="the variant the checkpoint holds (default: from the extension)",
    )
    convert.add_argument(
        "--no-parity",
        dest="parity",
        action="store_false",
        help="skip the comparison with PyTorch or OpenCV",
    )
    run_commands.add_common_options(convert)
    convert.set_defaults(command=_convert)

    info = commands.add_parser(
        "info",
        help="list the pretrained checkpoints and the cache",
        description="Lists the pretrained checkpoints keras-alexnet knows, "
        "with their source, license, size, reported accuracy and whether they "
        "are in the Keras cache.",
    )
    info.set_defaults(command=_info)

    prepare = commands.add_parser(
        "prepare",
        help="store an image folder at 256 pixels in TFRecord shards, once",
        description="Rescales every image of SOURCE so that its shorter side is "
        "256 pixels, as the paper did, and writes them with their labels into "
        "TFRecord shards in OUTPUT, which imagenet_dataset(source=OUTPUT) reads "
        "with the same augmentation, faster. Rerun to resume.",
    )
    prepare.add_argument("source", help="ImageNet-style folder (root/<wnid>/*)")
    prepare.add_argument("output", help="folder for the shards")
    prepare.add_argument("--labels-file", help="labels of a flat folder")
    prepare.add_argument("--resize-size", type=int, default=256)
    prepare.add_argument("--shard-size", type=int, default=1024)
    prepare.add_argument(
        "--quality",
        type=int,
        default=90,
        help="JPEG quality of the stored images, 1 to 100 (default: 90)",
    )
    prepare.set_defaults(command=_prepare)
    _add_export_parser(commands)
    run_commands.add_commands(commands)
    return parser


def _prepare(args: argparse.Namespace) -> int:
    # Imported here: `import keras_alexnet` does not load TensorFlow.
    from keras_alexnet.data.prepare import prepare_imagenet

    manifest = prepare_imagenet(
        args.source,
        args.output,
        labels_file=args.labels_file,
        resize_size=args.resize_size,
        shard_size=args.shard_size,
        quality=args.quality,
    )
    print(
        f"{manifest['images']} images of {len(manifest['class_names'])} classes in "
        f"{len(manifest['shards'])} shards in {args.output}; "
        f"{len(manifest['skipped_files'])} skipped"
    )
    return 0


def _top_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(
            f"should be an integer from 1 to 1000. Received: {text!r}"
        )
    return value


# -- classify ------------------------------------------------------------------


def _classify(args: argparse.Namespace) -> int:
    # A model trained on other classes (a .keras run, --class-names).
    status = run_commands.classify_trained(args)
    if status is not None:
        return status
    paths = [os.fspath(path) for path in args.images] or [
        os.fspath(path) for path in sample_images()
    ]
    folders = [path for path in paths if os.path.isdir(path)]
    if folders:
        raise IsADirectoryError(
            f"IMAGES should be image files; {', '.join(folders)} is a folder. Pass "
            "its images instead, e.g. with a shell pattern: folder/*.JPEG"
        )
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(f"No such image file: {', '.join(missing)}")
    weights = _weights_argument(args.weights)
    # The architecture and preprocessing, from the weights: checked before any
    # image is decoded or any model is built.
    config = resolve_config(weights=weights, variant=args.variant, lrn=args.lrn)
    # Imported here: `import keras_alexnet` does not load TensorFlow.
    from keras_alexnet.data import load_image

    # Prepared as the checkpoint's authors evaluated it (its registry entry's
    # resize, crop and normalisation), first, so that a bad file fails before
    # the model is built.
    x = np.stack([load_image(path, config.preprocessing) for path in paths])

    if weights is None:
        print(
            "Weights: none. The model is RANDOMLY INITIALISED: the classes "
            "below are meaningless."
        )
    else:
        lrn = "" if config.lrn is None else f", LRN {config.lrn.as_dict()}"
        print(f"Weights: {weights} ({config.variant} variant{lrn})")
    # A failed download raises download.DownloadError, which names the mirror setting.
    model = AlexNet(weights=weights, variant=args.variant, lrn=args.lrn)
    probabilities = keras.ops.convert_to_numpy(model.predict_on_batch(x))
    for path, top in zip(
        paths, decode_predictions(probabilities, top=args.top), strict=True
    ):
        print(path)
        for rank, (wnid, name, score) in enumerate(top, start=1):
            print(f"  {rank}. {wnid} {name:<30} {score:.4f}")
    return 0


def _weights_argument(text: str) -> str | None:
    if text == "none":
        return None
    if text == "imagenet" or registry.find_checkpoint(text) is not None:
        return text
    if not os.path.isfile(text):
        raise FileNotFoundError(
            "--weights should be 'imagenet', 'none', a checkpoint name "
            f"({', '.join(registry.CHECKPOINTS)}) or the path of a weights "
            f"file. Received: --weights {text!r}, which is not a file"
        )
    return text


# -- convert -------------------------------------------------------------------


def _convert(args: argparse.Namespace) -> int:
    # Checked first: the conversion takes a while, and nothing is saved until
    # the parity check has passed.
    # Mistakes in DEST are usage errors (status 2), like argparse's own.
    folder = os.path.dirname(os.path.abspath(args.dest))
    if not args.dest.lower().endswith(conversion.DEST_SUFFIXES):
        problem = (
            "DEST should end in .weights.h5 (weights only) or .keras (the whole "
            f"model). Received: {args.dest!r}"
        )
    elif not os.path.isdir(folder):
        problem = (
            f"the folder of DEST does not exist (it is not created, in case of a "
            f"typo): {folder!r}. Received: {args.dest!r}"
        )
    else:
        problem = None
    if problem:
        print(f"{PROG} convert: error: {problem}", file=sys.stderr)
        return 2
    model = conversion.convert_checkpoint(
        args.source, variant=args.variant, verbose=0 if args.quiet else 1
    )
    variant = architecture.file_architecture(args.source)["variant"]
    print(f"Read {args.source} ({variant} variant, {model.count_params():,} params)")
    if args.parity:
        report = parity.parity_report(args.source, model)
        print(report)
        if not report.modelling_ok():
            print(
                f"{PROG}: error: the converted model does not reproduce the "
                f"checkpoint; {args.dest} was not written.",
                file=sys.stderr,
            )
            return 1
    conversion.save_model_atomically(model, args.dest)
    print(f"Saved {args.dest}")
    print(f'Load it with AlexNet(weights="{args.dest}").')
    return 0


# -- info ----------------------------------------------------------------------


def _info(args: argparse.Namespace) -> int:
    del args
    mirror = os.environ.get(download.MIRROR_ENV, "").strip()
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}")
    print(f"Cache: {download.cache_dir()}")
    print(f"{download.MIRROR_ENV}: {mirror or '(not set: downloads from the URLs)'}")
    for checkpoint in registry.CHECKPOINTS.values():
        print()
        print(checkpoint.name)
        rows = (
            ("variant", checkpoint.variant),
            ("source", f"{checkpoint.source}: {checkpoint.url}"),
            ("hash", f"{checkpoint.hash_algorithm} {checkpoint.file_hash}"),
            ("license", checkpoint.license),
            ("params", f"{checkpoint.num_params:,}"),
            ("top-1 / top-5", f"{checkpoint.top1} % / {checkpoint.top5} %"),
            ("input size", f"{checkpoint.input_size}x{checkpoint.input_size}"),
            ("cached", _cache_state(checkpoint)),
        )
        for key, value in rows:
            print(f"  {key:<14} {value}")
    return 0


def _cache_state(checkpoint: registry.Checkpoint) -> str:
    converted = download.converted_weights_path(checkpoint)
    if os.path.isfile(converted):
        return f"yes, converted: {converted}"
    source = os.path.join(download.cache_dir(), checkpoint.file_name)
    if os.path.isfile(source):
        return f"downloaded, not yet converted: {source}"
    return "no (downloaded on first use)"


# -- export --------------------------------------------------------------------


def _add_export_parser(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="export a model for serving (SavedModel, ONNX, TFLite)",
        description="Exports AlexNet for serving: a TensorFlow SavedModel "
        "directory, an .onnx file or a .tflite (LiteRT) file. MODEL is a .keras "
        "file, or the weights of an AlexNet to build: 'imagenet' (the pretrained "
        "weights of --variant) or a .weights.h5, .caffemodel or .pth file. "
        'ONNX needs the export extra: pip install "keras-alexnet[export]".',
    )
    export.add_argument(
        "model", metavar="MODEL", help="a .keras file, 'imagenet' or a weights file"
    )
    export.add_argument(
        "dest", metavar="DEST", help="a directory (saved_model), .onnx or .tflite"
    )
    export.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="default: from DEST's extension (.onnx, .tflite; else saved_model)",
    )
    export.add_argument(
        "--variant",
        choices=VARIANTS,
        default=None,
        help="the AlexNet to build when MODEL is weights; default: the variant "
        "the weights hold, else original",
    )
    export.add_argument(
        "--include-preprocessing",
        action="store_true",
        help="when MODEL is weights: the exported model takes RGB pixels in "
        "[0, 255] instead of preprocess_input's output",
    )
    export.add_argument(
        "--overwrite", action="store_true", help="replace DEST if it exists"
    )
    export.set_defaults(command=_export)


def _export(args: argparse.Namespace) -> int:
    format = args.format or _format_from_extension(args.dest)
    # Checked first: building the model may download the pretrained weights.
    check_destination(args.dest, format, overwrite=args.overwrite)
    model: keras.Model | str
    if args.model.lower().endswith(".keras"):
        if args.include_preprocessing:
            raise ValueError(
                "--include-preprocessing applies when MODEL is weights; a .keras "
                f"file keeps its own layers. Received: MODEL {args.model!r}"
            )
        model = args.model
    else:
        if args.model != "imagenet" and not os.path.isfile(args.model):
            raise FileNotFoundError(
                "MODEL should be a .keras file, 'imagenet' or a weights file. "
                f"Received: {args.model!r}, which is not a file"
            )
        # The architecture, LRN constants included, comes from the weights.
        model = AlexNet(
            weights=args.model,
            variant=args.variant,
            include_preprocessing=args.include_preprocessing,
        )
    dest = export_model(model, args.dest, format=format, overwrite=args.overwrite)
    print(f"Saved {dest} ({format})")
    return 0


def _format_from_extension(dest: str) -> str:
    extension = os.path.splitext(dest)[1].lower()
    return {".onnx": "onnx", ".tflite": "tflite"}.get(extension, "saved_model")


if __name__ == "__main__":
    sys.exit(main())
