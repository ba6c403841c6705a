"""The `keras-alexnet` entry point: `--backend` and quiet start-up, then the CLI.

Keras reads its backend once, when it is imported, and TensorFlow writes its
start-up notes (CUDA probes, CPU features) to the process's stderr from C++
while it is imported and first used, before Python's logging can filter them.
So this module, which sits outside the `keras_alexnet` package (importing the
package imports Keras), sets `KERAS_BACKEND` from `--backend` and imports
TensorFlow with stderr pointed at /dev/null (unless `--debug`), then runs
`keras_alexnet.cli.main`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    backend = _option_value(argv, "--backend")
    if backend is not None and "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend
    if "--debug" not in argv:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with _stderr_to_devnull():
            _start_tensorflow()
    from keras_alexnet import cli

    return cli.main(argv)


def _option_value(argv: list[str], name: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _start_tensorflow() -> None:
    try:
        import tensorflow as tf
    except ImportError:
        return  # cli reports it when a command needs it
    # The device set-up logs again on the first op.
    tf.constant(0.0) + 1.0  # noqa: B018


@contextlib.contextmanager
def _stderr_to_devnull():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
