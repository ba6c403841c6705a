"""What several commands share: `--backend`, `--debug`, `--quiet`; usage errors."""

from __future__ import annotations

import argparse

from keras_alexnet._choices import BACKENDS

__all__ = ["UsageError", "add_common_options", "verbose"]


class UsageError(Exception):
    """A mistake in the arguments found by a command: reported with status 2."""


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Adds `--backend`, `--debug` and `--quiet` to a command's parser."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="the Keras backend (default: KERAS_BACKEND, else tensorflow)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and TensorFlow's logs"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def verbose(args: argparse.Namespace) -> int:
    """Keras' `verbose`: 0 with `--quiet`, else 1."""
    return 0 if args.quiet else 1
