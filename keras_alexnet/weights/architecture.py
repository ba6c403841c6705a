"""What a weights file or a model says about the AlexNet it holds.

An architecture is the dict `{"variant", "groups", "normalization", "lrn"}`
(`lrn`: `LRNConstants` or `None`), each key present only where the source
states it. keras-alexnet stamps it into the `.weights.h5` files it writes, as
the LRN constants have no weights to carry them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from keras_alexnet.variants import Architecture, LRNConstants, check_variant
from keras_alexnet.weights import registry
from keras_alexnet.weights.formats import (
    TOP_LAYERS,
    keras_archive_layers,
    read_checkpoint,
    read_h5_layers,
    weights_format,
)

__all__ = [
    "ARCHITECTURE_ATTRIBUTE",
    "architecture_dict",
    "architecture_of_layers",
    "file_architecture",
    "file_classes_and_variant",
    "layer_configs",
    "stamp_architecture",
]

# The HDF5 attribute of the stamp in the .weights.h5 files keras-alexnet writes.
ARCHITECTURE_ATTRIBUTE = "keras_alexnet_architecture"


def file_architecture(path: str) -> dict[str, Any]:
    """Returns what the file at `path` states about the network it needs.

    A `.keras` archive states every key (its layer configs); a `.weights.h5`
    written by keras-alexnet too (its stamp), any other none; a `.caffemodel`
    is `bvlc_alexnet`'s architecture; a `.pth` the torchvision variant.

    Returns:
        The architecture dict, with the keys the file states.

    Raises:
        ValueError: an unsupported or unreadable file, or a damaged stamp.
    """
    kind = weights_format(path)
    if kind == "caffe":
        return architecture_dict(registry.BVLC_ALEXNET.architecture)
    if kind == "torch":
        return {"variant": "torchvision"}
    if kind == "keras":
        return architecture_of_layers(keras_archive_layers(path))
    try:
        import h5py

        with h5py.File(path, "r") as f:
            stamp = f.attrs.get(ARCHITECTURE_ATTRIBUTE)
    except OSError as error:
        raise ValueError(
            f"{path!r} is not a readable .weights.h5 (HDF5) file: {error}"
        ) from error
    if stamp is None:
        return {}
    return _architecture_from_json(stamp, path)


# conv1's filter count tells the variants apart in a file that does not say.
_CONV1_FILTERS_VARIANT = {96: "original", 64: "torchvision"}


def file_classes_and_variant(path: str) -> dict[str, Any]:
    """The class count and variant of the network stored at `path`.

    Read from the file without building a model, so that a model with the
    right number of classes can then be built.

    Returns:
        `{"classes": int | None, "variant": str | None}`: `classes` is the
        output count of `predictions` (`None` without a top); `variant` is
        what `file_architecture` says, else what conv1's filter count implies.
    """
    kind = weights_format(path)
    if kind == "keras":
        # The whole model is in the archive: its config says it all, so no
        # array is read.
        top = [
            layer["config"].get("units")
            for layer in keras_archive_layers(path)
            if layer["name"] == "predictions"
        ]
        return {
            "classes": int(top[0]) if top and isinstance(top[0], int) else None,
            "variant": file_architecture(path).get("variant"),
        }
    if kind == "keras_weights":
        # Keras addresses layers by class and rank: conv1 is the first Conv2D,
        # and AlexNet's top the only three Dense layers, predictions last.
        arrays, _ = read_h5_layers(
            path,
            [("conv1", "Conv2D")] + [(name, "Dense") for name in TOP_LAYERS],
            path,
        )
    else:
        arrays = read_checkpoint(path)
    head = arrays.get("predictions")
    conv1 = arrays.get("conv1")
    variant = file_architecture(path).get("variant")
    if variant is None and conv1:
        variant = _CONV1_FILTERS_VARIANT.get(int(np.shape(conv1[0])[-1]))
    return {
        "classes": int(np.shape(head[-1])[0]) if head else None,  # the bias
        "variant": variant,
    }


def architecture_dict(architecture: Architecture) -> dict[str, Any]:
    """`Architecture` as the dict `file_architecture` returns."""
    return {
        "variant": architecture.variant,
        "groups": architecture.groups,
        "normalization": architecture.normalization,
        "lrn": architecture.lrn,
    }


def architecture_of_layers(layers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Reads the architecture of an AlexNet from its layers' configs.

    Args:
        layers: `{"name", "class_name", "config"}` per layer (a `.keras`
            archive's, or `layer_configs(model)`).

    Returns:
        The architecture dict, every key present.

    Raises:
        ValueError: no conv1 and conv2 layers, or norm1 without LRN constants.
    """
    by_name = {layer["name"]: layer for layer in layers}
    if "conv1" not in by_name or "conv2" not in by_name:
        raise ValueError(
            "The model is not a keras-alexnet AlexNet: it has no conv1 and conv2 "
            f"layers. Its layers: {sorted(by_name)[:20]}"
        )
    norm1 = by_name.get("norm1")
    lrn = None
    normalization = "none"
    if norm1 is not None:
        normalization = "lrn"
        config = norm1["config"]
        try:
            lrn = LRNConstants(
                size=int(config["size"]),
                bias=float(config["bias"]),
                alpha=float(config["alpha"]),
                beta=float(config["beta"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"Layer norm1 has no valid LRN constants: {error}"
            ) from error
    elif "bn1" in by_name:
        normalization = "batchnorm"
    groups = by_name["conv2"]["config"].get("groups", 1)
    return {
        "variant": "torchvision" if "conv1_pad" in by_name else "original",
        "groups": int(groups) if isinstance(groups, int) else groups,
        "normalization": normalization,
        "lrn": lrn,
    }


def layer_configs(model: keras.Model) -> list[dict[str, Any]]:
    """`{"name", "class_name", "config"}` of each layer of `model`, in order."""
    return [
        {
            "name": layer.name,
            "class_name": type(layer).__name__,
            "config": layer.get_config(),
        }
        for layer in model.layers
    ]


def stamp_architecture(path: str, model: keras.Model) -> None:
    """Records `model`'s architecture in the `.weights.h5` file at `path`.

    `AlexNet(weights=path)` then rebuilds it (LRN constants included) without
    being told. A model that is not an AlexNet gets no stamp.
    """
    import h5py

    try:
        architecture = architecture_of_layers(layer_configs(model))
    except ValueError:
        return
    lrn = architecture["lrn"]
    architecture["lrn"] = None if lrn is None else lrn.as_dict()
    with h5py.File(path, "a") as f:
        f.attrs[ARCHITECTURE_ATTRIBUTE] = json.dumps(architecture)


def _architecture_from_json(text: Any, path: str) -> dict[str, Any]:
    try:
        raw = json.loads(text)
        lrn = raw.get("lrn")
        return {
            "variant": check_variant(raw["variant"]),
            "groups": int(raw["groups"]),
            "normalization": str(raw["normalization"]),
            "lrn": None if lrn is None else LRNConstants(**lrn),
        }
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise ValueError(
            f"{path!r} has a damaged {ARCHITECTURE_ATTRIBUTE} attribute: {error}"
        ) from error
