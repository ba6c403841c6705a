"""`load_keras_file`: the one way keras-alexnet opens a whole-model `.keras` file.

Resuming a run, `evaluate`, `classify` and `export` all load through it, with
the checks and wording of `AlexNet(weights=...)`: the file is named, the reason
stated, and nothing named in the file is imported or run.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from keras_alexnet.weights.formats import (
    MAX_KERAS_CONFIG_BYTES,
    MAX_KERAS_WEIGHTS_BYTES,
    read_keras_config,
)

if TYPE_CHECKING:
    import keras

__all__ = ["check_keras_file", "load_keras_file"]

# The weights member Keras needs besides config.json (HDF5, or NumPy's .npz
# in some Keras versions).
WEIGHTS_MEMBERS = ("model.weights.h5", "model.weights.npz")
# All members together: the weights, the config and a little metadata.
MAX_KERAS_BYTES = MAX_KERAS_WEIGHTS_BYTES + 2 * MAX_KERAS_CONFIG_BYTES
# Keras stores its members uncompressed, and trained weights barely compress:
# a member that inflates past both limits is built to fill memory.
MAX_INFLATED_BYTES = 64 << 20
MAX_INFLATION = 20
# Keras' marker of a Python function saved as bytecode (a Lambda layer's).
_LAMBDA = "__lambda__"
# Keras' built-in functions (activations...) are saved under this module.
_BUILTINS = "builtins"


def check_keras_file(
    path: str | os.PathLike, *, argument: str = "weights", full: bool = False
) -> str:
    """Checks a `.keras` file without loading it: a zip with Keras' members
    whose config names only Keras' classes and registered ones
    (keras-alexnet's, or those of a package the caller imported).

    Only the zip's directory and `config.json` are read unless `full`.

    Args:
        path: the file.
        argument: the name messages give `path` (`"weights"`, `"model_or_path"`).
        full: also read every member through, checking its CRC (a bit flip
            anywhere is found; takes the time of reading the file).

    Returns:
        `path` as a `str`, `~` expanded.

    Raises:
        ValueError: a missing file, a folder, another suffix, a file that is not
            a zip, lacks `config.json` or `model.weights.h5`, has a
            `config.json` that is not a JSON object, or names Python code or a
            class neither Keras' nor registered; the message names the file.
        TypeError: `path` is not a path.
    """
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(text, str):  # a PathLike may give bytes
        raise TypeError(
            f"`{argument}` should be the path of a .keras file. "
            f"Received: {argument}={path!r}"
        )
    path = os.path.expanduser(text)
    if not path.lower().endswith(".keras"):
        raise ValueError(
            f"`{argument}` should be the path of a .keras file (a whole model). "
            f"Received: {argument}={path!r}"
        )
    # resolve_weights' wording, for whichever argument names the file.
    if os.path.isdir(path):
        raise ValueError(
            f"`{argument}` is a folder, not a .keras file. "
            f"Received: {argument}={path!r}"
        )
    if not os.path.isfile(path):
        raise ValueError(
            f"`{argument}` names a file that does not exist. "
            f"Received: {argument}={path!r}"
        )
    config = read_keras_config(path)  # names the file: not a zip, no config.json...
    _check_members(path, full)
    _check_classes(config, path)
    return path


def load_keras_file(
    path: str | os.PathLike, *, argument: str = "weights", compile: bool = True
) -> keras.Model:
    """Loads the model of a `.keras` file after `check_keras_file`.

    Keras loads it in safe mode (no Python code is deserialized); a failure
    inside Keras (a damaged `model.weights.h5`, weights that do not fit the
    config) is reported naming the file, never as Keras' generic message.

    Args:
        path: the file.
        argument: the name messages give `path`.
        compile: restore the optimizer and loss too (a run's checkpoint).

    Returns:
        The model.

    Raises:
        ValueError: as `check_keras_file`, or the file does not load.
        TypeError: `path` is not a path.

    Example:

    >>> model = load_keras_file("runs/digits/best.keras")  # doctest: +SKIP
    """
    import keras

    path = check_keras_file(path, argument=argument)
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as error:  # Keras raises anything; the file is the cause
        lines = str(error).strip().splitlines() or [type(error).__name__]
        raise ValueError(
            f"{path!r} is not a loadable Keras model (damaged, or saved from "
            f"another model): {lines[0][:300]}"
        ) from error


def _check_members(path: str, full: bool) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            names = {info.filename for info in members}
            if not names & set(WEIGHTS_MEMBERS):
                raise ValueError(
                    f"{path!r} is not a Keras .keras archive: it has no "
                    f"{WEIGHTS_MEMBERS[0]}."
                )
            declared = sum(info.file_size for info in members)
            if declared > MAX_KERAS_BYTES:
                raise ValueError(
                    f"{path!r}: its members declare {declared:,} bytes, more than "
                    f"an AlexNet needs (limit {MAX_KERAS_BYTES:,}); refused."
                )
            for info in members:
                if (
                    info.file_size > MAX_INFLATED_BYTES
                    and info.file_size > MAX_INFLATION * info.compress_size
                ):
                    raise ValueError(
                        f"{path!r}: its {info.filename} inflates "
                        f"{info.compress_size:,} bytes to {info.file_size:,}, as "
                        "no Keras file does (a zip bomb); refused."
                    )
            for info in members if full else ():
                with archive.open(info) as member:
                    # zipfile checks the CRC at the member's end; a member
                    # stops at its declared size.
                    while member.read(1 << 20):
                        pass
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as error:
        raise ValueError(
            f"{path!r} is a damaged .keras archive (zip file): {error}"
        ) from error


def _check_classes(config: dict[str, Any], path: str) -> None:
    """Refuses a config naming Python code, or a class neither Keras' nor
    registered (`keras.saving.register_keras_serializable`) by keras-alexnet or
    a package the caller imported, before Keras reads it."""
    import keras

    _register_package_classes()
    for item in _serialized_objects(config):
        class_name = item.get("class_name")
        module = item.get("module") or ""
        registered = item.get("registered_name")
        if not isinstance(class_name, str) or not isinstance(module, str):
            problem = f"an object with class {class_name!r} of module {module!r}"
        elif class_name == _LAMBDA:
            problem = "Python code (a Lambda layer's function), which is never run"
        elif isinstance(registered, str) and ">" in registered:
            # keras-alexnet's classes, or those of a package the caller imported.
            if keras.saving.get_registered_object(registered) is not None:
                continue
            problem = f"the class {registered!r}, which no imported package registered"
        elif module in ("", _BUILTINS) or module.split(".")[0] == "keras":
            continue
        else:
            problem = (
                f"the class {class_name!r} of module {module!r}, neither Keras' nor "
                "a registered one (nothing of it was imported)"
            )
        raise ValueError(
            f"{path!r} is not a keras-alexnet .keras file: it names {problem}."
        )


def _register_package_classes() -> None:
    """Registers keras-alexnet's saveable classes with Keras: its layers, and
    the loss and optimizer a run's checkpoint is compiled with."""
    import keras_alexnet.layers  # noqa: F401
    import keras_alexnet.training  # noqa: F401


def _serialized_objects(config: Any) -> Iterator[dict[str, Any]]:
    """Every dict with a `class_name` in `config`, depth first, without recursion
    (a config nested thousands deep is walked like a flat one)."""
    stack = [config]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if "class_name" in value:
                yield value
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
