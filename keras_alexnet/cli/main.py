"""The entry point of `keras-alexnet`: the parser, the backend, the error report.

The arguments are read before Keras is imported, so that `--help` and a
mistake in them answer at once, and `--backend` can still choose the backend
(Keras reads `KERAS_BACKEND` once, when it is imported). TensorFlow is then
imported with the process's stderr pointed at /dev/null (unless `--debug`):
it writes its start-up notes (CUDA probes, CPU features) from C++, before
Python's logging can filter them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn, TextIO

from keras_alexnet._choices import BACKENDS
from keras_alexnet._terminal import printable
from keras_alexnet.cli import checkpoints, classify, runs
from keras_alexnet.cli.common import UsageError

__all__ = ["PROG", "build_parser", "main"]

PROG = "keras-alexnet"
# Errors of the caller or the environment: one line and status 1 (`--debug`
# shows the traceback). Anything else is a bug, and keeps its traceback.
_REPORTED_ERRORS = (ValueError, TypeError, OSError, ImportError)
# The folder of the package, whose warnings are shown on one line.
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `keras-alexnet` command line.

    Args:
        argv: the arguments, without the program name; `None` reads `sys.argv`.

    Returns:
        The exit status: 0 on success (and `--help`), 1 when the command failed
        (one line on stderr), 2 for a mistake in the arguments.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse exits after --help and on bad arguments
        return int(exit_.code or 0)
    try:
        _start_backend(args)
        _check_backend(args)
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(warnings.showwarning)
            return int(args.run(args))
    except UsageError as error:
        print(f"{PROG} {args.command}: error: {printable(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        if getattr(args, "debug", False) or not _is_reported(error):
            raise
        # Escaped: a file name or class name in it cannot forge a line.
        message = printable(in_flags(one_line(error), args.flags))
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; it imports neither Keras nor a backend."""
    # Subcommand parsers take the class of their parent.
    parser = _OneLineParser(
        prog=PROG,
        description="AlexNet for Keras 3: classify images; convert, list and "
        "export checkpoints; prepare data; train, fine-tune and evaluate.",
        epilog="The Keras backend is KERAS_BACKEND's (default: tensorflow), or "
        "--backend's for the commands that take it. Exit status: 0 done, 1 the "
        "command failed (one line on stderr; --debug shows the traceback), 2 a "
        "mistake in the arguments.",
    )
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND"
    )
    commands.required = True
    classify.add_commands(commands)
    checkpoints.add_commands(commands)
    runs.add_commands(commands)
    for command in commands.choices.values():
        command.set_defaults(flags=_flags(command))
    return parser


# -- the one-line error report -------------------------------------------------


def _is_reported(error: BaseException) -> bool:
    if isinstance(error, _REPORTED_ERRORS):
        return True
    # A file that passed every check but fails inside tf.data, say. TensorFlow
    # is not imported for it: if it is not loaded, none of its errors occurred.
    tf = sys.modules.get("tensorflow")
    op_error = getattr(getattr(tf, "errors", None), "OpError", None)
    return op_error is not None and isinstance(error, op_error)


def one_line(error: BaseException) -> str:
    """The first line of an error's message (TensorFlow's run to pages)."""
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    # TensorFlow wraps its op errors in "{{function_node ...}}" and "[Op:...]".
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)
    message = re.sub(r"\s*\[Op:[^\]]*\].*", "", message, flags=re.S)
    return message.strip().splitlines()[0]


def _flags(parser: argparse.ArgumentParser) -> dict[str, tuple[str, Any]]:
    """`{parameter: (flag, value it sets, or None if it takes one)}` of a command."""
    flags = {}
    for action in parser._actions:
        if action.dest == "help":
            continue
        long = [option for option in action.option_strings if option.startswith("--")]
        if long:
            # A switch (`--overwrite`) sets one value; other options take one.
            switch = action.nargs == 0 and isinstance(action.const, bool)
            flags[action.dest] = (long[0], action.const if switch else None)
        elif not action.option_strings:  # a positional argument, by its metavar
            flags[action.dest] = (str(action.metavar or action.dest), None)
    return flags


def in_flags(message: str, flags: dict[str, tuple[str, Any]]) -> str:
    """`message` with the library's argument names written as the command's flags.

    `overwrite=True` becomes `--overwrite`, `learning_rate=inf` becomes
    `--learning-rate inf`, `` `class_names` `` becomes `` `--class-names` ``.
    """
    for name, (flag, switch_value) in flags.items():
        message = message.replace(f"`{name}`", f"`{flag}`")
        if switch_value is None:
            message = re.sub(rf"\b{re.escape(name)}=", f"{flag} ", message)
        else:
            message = re.sub(rf"\b{re.escape(name)}={switch_value}\b", flag, message)
    return message


# -- the backend, warnings -----------------------------------------------------


def _start_backend(args: argparse.Namespace) -> None:
    """Sets `KERAS_BACKEND` from `--backend`, then imports TensorFlow quietly."""
    backend = getattr(args, "backend", None)
    if backend is not None and "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend
    if getattr(args, "debug", False) or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_to_devnull():
        try:
            import tensorflow as tf
        except ImportError:
            return  # reported when a command needs it
        except ValueError as error:  # Keras, which TensorFlow imports, refused it
            raise UsageError(
                f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND')!r}: {error}; "
                f"choose one of {', '.join(BACKENDS)}"
            ) from None
        if getattr(args, "distribute", None) == "multi-worker":
            # MultiWorkerMirroredStrategy configures the runtime before its
            # first op.
            return
        # The device set-up logs again on the first op.
        tf.constant(0.0) + 1.0  # noqa: B018


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
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


def _check_backend(args: argparse.Namespace) -> None:
    """`--backend` must name the backend Keras runs on."""
    wanted = getattr(args, "backend", None)
    if wanted is None:
        return
    import keras

    if wanted != keras.backend.backend():
        raise ValueError(
            f"--backend {wanted}: Keras was already imported with the "
            f"{keras.backend.backend()} backend; set KERAS_BACKEND before "
            "importing Keras to choose it."
        )


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
