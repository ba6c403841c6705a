"""`keras-alexnet convert`, `info` and `export`: checkpoints in and out."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from keras_alexnet._choices import EXPORT_FORMATS, EXPORT_SUFFIXES
from keras_alexnet.cli.common import UsageError, add_common_options
from keras_alexnet.variants import VARIANTS

if TYPE_CHECKING:
    import keras

    from keras_alexnet.weights import registry

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """Adds `convert`, `info` and `export` to the subcommands."""
    for add in (_convert, _info, _export):
        add(commands)


def _convert(commands: Any) -> None:
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
        help="the variant the checkpoint holds (default: from the extension)",
    )
    convert.add_argument(
        "--no-parity",
        dest="parity",
        action="store_false",
        help="skip the comparison with PyTorch or OpenCV",
    )
    add_common_options(convert)
    convert.set_defaults(run=run_convert)


def _info(commands: Any) -> None:
    info = commands.add_parser(
        "info",
        help="list the pretrained checkpoints and the cache",
        description="Lists the pretrained checkpoints keras-alexnet knows, "
        "with their source, license, size, reported accuracy and whether they "
        "are in the Keras cache.",
    )
    info.set_defaults(run=run_info)


def _export(commands: Any) -> None:
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
        choices=EXPORT_FORMATS,
        help="default: from DEST's extension (.onnx, .tflite; else saved_model)",
    )
    export.add_argument(
        "--variant",
        choices=VARIANTS,
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
    export.set_defaults(run=run_export)


def run_convert(args: argparse.Namespace) -> int:
    """Converts SOURCE, checks it against its framework, saves DEST; returns 0."""
    from keras_alexnet import conversion, parity
    from keras_alexnet.weights import architecture

    # Checked first: the conversion takes a while, and nothing is saved until
    # the parity check has passed.
    folder = os.path.dirname(os.path.abspath(args.dest))
    if not args.dest.lower().endswith(conversion.DEST_SUFFIXES):
        raise UsageError(
            "DEST should end in .weights.h5 (weights only) or .keras (the whole "
            f"model). Received: {args.dest!r}"
        )
    if not os.path.isdir(folder):
        raise UsageError(
            f"the folder of DEST does not exist (it is not created, in case of a "
            f"typo): {folder!r}. Received: {args.dest!r}"
        )
    model = conversion.convert_checkpoint(
        args.source, variant=args.variant, verbose=0 if args.quiet else 1
    )
    variant = architecture.file_architecture(args.source)["variant"]
    print(f"Read {args.source} ({variant} variant, {model.count_params():,} params)")
    if args.parity:
        report = parity.parity_report(args.source, model)
        print(report)
        if not report.modelling_ok():
            raise ValueError(
                "the converted model does not reproduce the checkpoint; "
                f"{args.dest} was not written."
            )
    conversion.save_model_atomically(model, args.dest)
    print(f"Saved {args.dest}")
    print(f'Load it with AlexNet(weights="{args.dest}").')
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Prints Keras' backend, the cache and every registry entry; returns 0."""
    import keras

    from keras_alexnet.weights import download, registry

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
    from keras_alexnet.weights import download

    converted = download.converted_weights_path(checkpoint)
    if os.path.isfile(converted):
        return f"yes, converted: {converted}"
    source = os.path.join(download.cache_dir(), checkpoint.file_name)
    if os.path.isfile(source):
        return f"downloaded, not yet converted: {source}"
    return "no (downloaded on first use)"


def run_export(args: argparse.Namespace) -> int:
    """Exports MODEL to DEST in `--format`; returns 0."""
    from keras_alexnet import AlexNet
    from keras_alexnet.export import check_destination, export_model

    format = args.format or _format_of(args.dest)
    suffix = EXPORT_SUFFIXES.get(format)
    if suffix is not None and not args.dest.lower().endswith(suffix):
        raise UsageError(
            f"DEST should end in {suffix} for --format {format}. "
            f"Received: {args.dest!r}"
        )
    # Checked first: building the model may download the pretrained weights.
    check_destination(args.dest, format, overwrite=args.overwrite)
    model: keras.Model | str
    if args.model.lower().endswith(".keras"):
        if args.include_preprocessing:
            raise UsageError(
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


def _format_of(dest: str) -> str:
    """The format whose suffix `dest` ends in, else `"saved_model"` (a folder)."""
    for format, suffix in EXPORT_SUFFIXES.items():
        if dest.lower().endswith(suffix):
            return format
    return "saved_model"
