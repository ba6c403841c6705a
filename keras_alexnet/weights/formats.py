"""Reads a weights file into `{keras_layer_name: [arrays]}`, by its suffix.

No model is built and nothing in a file is executed or imported; see
docs/pretrained.md for what each reader checks.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_alexnet._validation import check_path
from keras_alexnet.weights import name_maps
from keras_alexnet.weights.caffe_checkpoint import read_caffemodel
from keras_alexnet.weights.torch_checkpoint import read_torch_state_dict

__all__ = [
    "MAX_KERAS_CONFIG_BYTES",
    "MAX_KERAS_WEIGHTS_BYTES",
    "SUFFIXES",
    "TOP_LAYERS",
    "WEIGHTS_FORMATS",
    "WeightsByLayer",
    "keras_archive_layers",
    "read_checkpoint",
    "read_h5_layers",
    "read_keras_config",
    "read_keras_weights",
    "weights_format",
]

# The classifier: left out of a model built with `include_top=False`.
TOP_LAYERS = ("fc6", "fc7", "predictions")

WeightsByLayer = Mapping[str, list[np.ndarray]]

# The formats `weights=` accepts, by file name ending: one table for every module.
WEIGHTS_FORMATS = {
    ".weights.h5": "keras_weights",
    ".keras": "keras",
    ".caffemodel": "caffe",
    ".pth": "torch",
    ".pt": "torch",
    ".bin": "torch",
}
SUFFIXES = ", ".join(WEIGHTS_FORMATS)
# A .keras archive's weights are read into memory: AlexNet's take 245 MB, so
# anything past 1 GiB is not an AlexNet and is refused before it is inflated.
MAX_KERAS_WEIGHTS_BYTES = 1 << 30
MAX_KERAS_CONFIG_BYTES = 16 << 20


def weights_format(path: str | os.PathLike) -> str:
    """Returns the format of a weights file from its name (case ignored).

    Returns:
        `"keras_weights"` (`.weights.h5`), `"keras"` (`.keras`), `"caffe"`
        (`.caffemodel`) or `"torch"` (`.pth`, `.pt`, `.bin`): `WEIGHTS_FORMATS`.

    Raises:
        ValueError: the name ends in none of `WEIGHTS_FORMATS`.
        TypeError: `path` is bytes, or a PathLike returning bytes.
    """
    name = check_path("weights", path)
    lower = name.lower()
    for suffix, kind in WEIGHTS_FORMATS.items():
        if lower.endswith(suffix):
            return kind
    raise ValueError(
        f"Unsupported weights file: expected a name ending in {SUFFIXES}. "
        f"Received: weights={os.fspath(path)!r}"
    )


def read_checkpoint(path: str) -> dict[str, list[np.ndarray]]:
    """Reads a weights file other than `.weights.h5` by Keras layer name.

    `.caffemodel` (Caffe's `bvlc_alexnet`) and `.pth`/`.pt`/`.bin` (a torchvision
    AlexNet state dict) are parsed without Caffe or PyTorch; a `.keras` archive
    is read by its layer configs, without building its model. Nothing in the
    file is executed or imported.

    Args:
        path: the file, of one of `WEIGHTS_FORMATS`.

    Returns:
        `{keras_layer_name: [arrays]}`.

    Raises:
        ValueError: an unsupported, damaged or unsafe file, or a `.weights.h5`
            file (its layers are named by the model: `read_keras_weights`).
    """
    kind = weights_format(path)
    if kind == "caffe":
        return name_maps.caffe_to_keras(read_caffemodel(path), source=repr(path))
    if kind == "torch":
        state_dict = read_torch_state_dict(path)
        return name_maps.torchvision_to_keras(state_dict, source=repr(path))
    if kind == "keras":
        config, weights_h5 = _read_keras_archive(path)
        layers = _layer_configs(config, path)
        weights, _ = read_h5_layers(
            weights_h5, [(c["name"], c["class_name"]) for c in layers], path
        )
        return weights
    raise ValueError(
        f"{path!r} is a Keras .weights.h5 file: it is read by read_keras_weights "
        "with the layers of the model it goes into."
    )


def read_keras_weights(
    path: str, layers: Sequence[tuple[str, str]], has_top: bool = True
) -> dict[str, list[np.ndarray]]:
    """Reads a Keras `.weights.h5` file into `{layer_name: [arrays]}`.

    Keras names a layer in the file by its class and rank (`conv2d`,
    `conv2d_1`, ...), so the model's layers give the names.

    Args:
        path: the file.
        layers: `(name, class_name)` of the model's layers, in model order.
        has_top: whether that model has `TOP_LAYERS`; without them, the file's
            three Dense layers are left out.

    Raises:
        ValueError: the file is not HDF5, or holds weights for layers the model
            does not have.
    """
    weights, extra = read_h5_layers(path, layers, path)
    if not has_top and extra == ["dense", "dense_1", "dense_2"]:
        extra = []
    if extra:
        raise ValueError(
            f"{path!r} has weights for layers {extra} (Keras' names in the file) "
            "that the model does not have: it was saved from another "
            "architecture. Check `variant`, `groups`, `normalization` and "
            "`include_top`."
        )
    return weights


def _read_keras_archive(path: str, read_weights: bool = True) -> tuple[dict, Any]:
    """Returns a `.keras` archive's config and, if asked, its weights (HDF5 bytes)."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(
                _read_member(archive, "config.json", MAX_KERAS_CONFIG_BYTES, path)
            )
            weights = None
            if read_weights:
                weights = io.BytesIO(
                    _read_member(
                        archive, "model.weights.h5", MAX_KERAS_WEIGHTS_BYTES, path
                    )
                )
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise ValueError(
            f"{path!r} is not a .keras archive (a zip file): {error}"
        ) from error
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        # RecursionError: JSON nested deeper than Python's parser goes.
        raise ValueError(f"{path!r} has no readable config.json: {error}") from error
    except OSError as error:
        raise ValueError(f"{path!r} cannot be read: {error}") from error
    if not isinstance(config, dict):
        raise ValueError(
            f"{path!r} is not a Keras .keras archive: its config.json holds a JSON "
            f"{_json_type(config)}, not an object."
        )
    return config, weights


def read_keras_config(path: str) -> dict[str, Any]:
    """The `config.json` of a `.keras` archive (a JSON object); no array is read.

    Raises:
        ValueError: not a zip, no `config.json`, or one that is not a JSON
            object, naming `path`.
    """
    config, _ = _read_keras_archive(path, read_weights=False)
    return config


def _json_type(value: Any) -> str:
    names = {list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _read_member(archive: zipfile.ZipFile, name: str, limit: int, path: str) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ValueError(
            f"{path!r} is not a Keras .keras archive: it has no {name}."
        ) from None
    if info.file_size > limit:
        raise ValueError(
            f"{path!r}: {name} declares {info.file_size:,} bytes, more than an "
            f"AlexNet needs (limit {limit:,}); refused."
        )
    with archive.open(info) as member:
        # Read at most one byte past the limit: a member that inflates past
        # its declared size is refused without filling memory.
        data = member.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path!r}: {name} inflates past {limit:,} bytes; refused.")
    return data


def _layer_configs(config: Any, path: str) -> list[dict[str, Any]]:
    """The `{"name", "class_name", "config"}` of a `.keras` model's layers.

    Nothing named in the file is imported: a layer of a class other than Keras'
    or keras-alexnet's is refused by name.
    """
    problem = None
    layers = None
    if not isinstance(config, dict) or config.get("class_name") != "Functional":
        problem = "its config is not a Keras functional model"
    elif config.get("module") not in ("keras", "keras.src.models.functional", None):
        problem = f"its config names the module {config.get('module')!r}"
    else:
        layers = (config.get("config") or {}).get("layers")
        if not isinstance(layers, list):
            problem = "its config has no list of layers"
    if problem is None and isinstance(layers, list):  # a list when problem is None
        result = []
        for layer in layers:
            if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
                problem = "a layer of its config is not a dict"
                break
            module = str(layer.get("module") or "")
            class_name = layer.get("class_name")
            if not (module.startswith("keras") or module == "") or not (
                isinstance(class_name, str) and class_name.isidentifier()
            ):
                problem = (
                    f"a layer has the class {class_name!r} of module {module!r}, "
                    "neither Keras' nor keras-alexnet's"
                )
                break
            name = layer["config"].get("name", layer.get("name"))
            result.append(
                {"name": name, "class_name": class_name, "config": layer["config"]}
            )
    if problem is not None:
        raise ValueError(f"{path!r} is not a keras-alexnet .keras file: {problem}.")
    return result


def keras_archive_layers(path: str) -> list[dict[str, Any]]:
    """The `{"name", "class_name", "config"}` of each layer of a `.keras` archive.

    Read from its `config.json` only; no array is read and no class imported.

    Raises:
        ValueError: not a `.keras` archive of Keras' and keras-alexnet's layers.
    """
    config, _ = _read_keras_archive(path, read_weights=False)
    return _layer_configs(config, path)


def _snake_case(class_name: str) -> str:
    # keras.src.utils.naming.to_snake_case, which names the groups of a weights file.
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def read_h5_layers(
    source: Any, layers: Sequence[tuple[str, str]], path: str
) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    """Reads the arrays of a Keras HDF5 weights file, naming its layers.

    Args:
        source: the file's path, or an open binary file (a `.keras` member).
        layers: `(name, class_name)` of the model's layers, in model order.
        path: how messages name the file.

    Returns:
        `({layer_name: [arrays]}, the file's layer groups no layer claims)`.
    """
    import h5py

    paths: dict[str, str] = {}
    used: dict[str, int] = {}
    for name, class_name in layers:
        key = _snake_case(class_name)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        paths[key] = name
    try:
        with h5py.File(source, "r") as f:
            group = f.get("layers")
            if not isinstance(group, h5py.Group):
                raise ValueError(f"{path!r} holds no Keras layer weights.")
            weights, extra = {}, []
            for key in group:
                variables = group[key].get("vars")
                if not isinstance(variables, h5py.Group) or not len(variables):
                    continue
                arrays = [np.asarray(variables[str(i)]) for i in range(len(variables))]
                if key in paths:
                    weights[paths[key]] = arrays
                else:
                    extra.append(key)
    except (OSError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path!r} is not a readable Keras weights (HDF5) file: {error}"
        ) from error
    return weights, sorted(extra)
