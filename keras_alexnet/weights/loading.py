"""Resolves `weights=...`: downloads, verifies, converts once, caches and loads.

`weights="imagenet"` fetches the variant's source checkpoint (see `registry`),
checks its hash, converts it to a Keras `.weights.h5` in the Keras cache
(`$KERAS_HOME/models/keras_alexnet/`, by default `~/.keras/models/keras_alexnet/`)
and from then on reads only that file. Every file lands under its final name by
an atomic rename, so an interrupted or concurrent load never leaves a partial
file behind, and a file that fails its hash check is deleted.

Set `KERAS_ALEXNET_WEIGHTS_MIRROR` to a URL prefix or a local folder holding the
source checkpoints under their original file names (`bvlc_alexnet.caffemodel`,
`alexnet-owt-7be5be79.pth`) to load them from there instead of their origin, for
air-gapped machines.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping

import keras
import numpy as np

from keras_alexnet.weights import name_maps
from keras_alexnet.weights.caffe_checkpoint import read_caffemodel
from keras_alexnet.weights.registry import Checkpoint
from keras_alexnet.weights.torch_checkpoint import read_torch_state_dict

MIRROR_ENV = "KERAS_ALEXNET_WEIGHTS_MIRROR"
CACHE_SUBDIR = os.path.join("models", "keras_alexnet")
TOP_LAYERS = ("fc6", "fc7", "predictions")

WeightsByLayer = Mapping[str, list[np.ndarray]]


class ChecksumError(ValueError):
    """A downloaded or mirrored checkpoint does not have the registry's hash."""


class DownloadError(OSError):
    """A checkpoint could not be downloaded (network error or truncated file)."""


def cache_dir() -> str:
    """Returns the folder where checkpoints and their conversions are cached."""
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras"
    )
    return os.path.join(keras_home, CACHE_SUBDIR)


def file_hash_matches(path: str, checkpoint: Checkpoint) -> bool:
    """Whether the file at `path` has the hash the registry gives `checkpoint`."""
    algorithm = checkpoint.hash_algorithm.removesuffix("-prefix")
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    actual = digest.hexdigest()
    if checkpoint.hash_algorithm.endswith("-prefix"):
        return actual.startswith(checkpoint.file_hash)
    return actual == checkpoint.file_hash


def fetch_checkpoint(checkpoint: Checkpoint) -> str:
    """Returns the local path of `checkpoint`'s source file, downloading it if needed.

    The file comes from `KERAS_ALEXNET_WEIGHTS_MIRROR` when set, else from the
    registry's URL, through `keras.utils.get_file` (with its progress bar). It is
    downloaded into a private temporary folder, verified, and only then renamed
    into the cache.

    Raises:
        ChecksumError: the file does not have the registry's hash; nothing is kept.
    """
    directory = cache_dir()
    os.makedirs(directory, exist_ok=True)
    final_path = os.path.join(directory, checkpoint.file_name)
    if os.path.exists(final_path):
        if file_hash_matches(final_path, checkpoint):
            return final_path
        os.remove(final_path)

    mirror = os.environ.get(MIRROR_ENV, "").strip()
    with tempfile.TemporaryDirectory(prefix=".download-", dir=directory) as tmp:
        if mirror and os.path.isdir(mirror):
            source = os.path.join(mirror, checkpoint.file_name)
            if not os.path.isfile(source):
                raise FileNotFoundError(
                    f"{MIRROR_ENV} names the folder {mirror!r}, which has no "
                    f"{checkpoint.file_name!r}."
                )
            downloaded = os.path.join(tmp, checkpoint.file_name)
            shutil.copyfile(source, downloaded)
        else:
            origin = checkpoint.url
            if mirror:
                origin = mirror.rstrip("/") + "/" + checkpoint.file_name
            try:
                downloaded = keras.utils.get_file(
                    fname=checkpoint.file_name,
                    origin=origin,
                    cache_dir=tmp,
                    cache_subdir=".",
                )
            except Exception as error:
                # get_file raises a bare Exception for HTTP and URL errors.
                raise DownloadError(
                    f"Downloading {checkpoint.name!r} from {origin} failed: {error}. "
                    f"Nothing was kept. Set {MIRROR_ENV} to a folder or URL holding "
                    f"{checkpoint.file_name!r} to load it from elsewhere."
                ) from error
        if not file_hash_matches(downloaded, checkpoint):
            raise ChecksumError(
                f"The file downloaded for {checkpoint.name!r} does not have the "
                f"expected {checkpoint.hash_algorithm} hash {checkpoint.file_hash!r}: "
                "it is truncated, corrupted or not the published checkpoint. It was "
                "deleted; loading again downloads it anew."
            )
        os.replace(downloaded, final_path)
    return final_path


def converted_weights_path(checkpoint: Checkpoint) -> str:
    """Returns where the Keras conversion of `checkpoint` is cached."""
    return os.path.join(
        cache_dir(), f"{checkpoint.name}-{checkpoint.file_hash[:8]}.weights.h5"
    )


def imagenet_weights(
    checkpoint: Checkpoint, build_full_model: Callable[[], keras.Model]
) -> str:
    """Returns the path of `checkpoint`'s Keras weights, converting them once.

    Args:
        checkpoint: the registry entry.
        build_full_model: returns a model, with its top and 1000 classes, of the
            architecture the checkpoint needs; used only to write the conversion.
    """
    path = converted_weights_path(checkpoint)
    if os.path.exists(path):
        return path
    source_path = fetch_checkpoint(checkpoint)
    model = build_full_model()
    assign_weights(model, read_checkpoint(source_path), source=source_path)
    save_weights_atomically(model, path)
    return path


def save_weights_atomically(model: keras.Model, path: str) -> None:
    """Writes `model.save_weights(path)` through a temporary file and a rename."""
    write_atomically(path, lambda tmp: model.save_weights(tmp, overwrite=True))


def write_atomically(path: str, write: Callable[[str], None]) -> None:
    """Calls `write(tmp)` on a temporary file beside `path`, then renames it.

    Readers see either the old file or the complete new one, never a partial
    file; the temporary file is removed if `write` fails. Its name ends like
    `path` (`.weights.h5`, `.keras`), as Keras checks the extension.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    suffix = (
        ".weights.h5" if path.endswith(".weights.h5") else os.path.splitext(path)[1]
    )
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_checkpoint(path: str) -> dict[str, list[np.ndarray]]:
    """Reads a foreign or `.keras` weights file into `{keras_layer_name: [arrays]}`.

    `.caffemodel` (Caffe `bvlc_alexnet` layout) and `.pth`/`.pt`/`.bin` (a
    torchvision AlexNet state dict) are parsed without Caffe or PyTorch and
    without executing any code from the file; `.keras` archives are loaded with
    Keras' safe mode on. `.weights.h5` files are addressed by Keras' object paths,
    not layer names, so they are loaded by `model.load_weights` instead.
    """
    lower = os.fspath(path).lower()
    if lower.endswith(".caffemodel"):
        return name_maps.caffe_to_keras(read_caffemodel(path))
    if lower.endswith((".pth", ".pt", ".bin")):
        return name_maps.torchvision_to_keras(read_torch_state_dict(path))
    if lower.endswith(".keras"):
        try:
            source = keras.saving.load_model(path, compile=False, safe_mode=True)
        except (ValueError, OSError, KeyError) as error:
            raise ValueError(
                f"{path!r} is not a loadable .keras file: {error}"
            ) from error
        return layer_weights(source)
    raise ValueError(
        "Unsupported weights file: expected a .weights.h5, .keras, .caffemodel, "
        f".pth or .pt file. Received: weights={os.fspath(path)!r}"
    )


def layer_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """Returns `{layer_name: layer.get_weights()}` for the layers with weights."""
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def load_weights(
    model: keras.Model,
    weights: str,
    checkpoint: Checkpoint | None,
    build_full_model: Callable[[], keras.Model],
) -> None:
    """Loads `weights` (`"imagenet"` or a path) into `model` by layer name.

    Args:
        model: the model to fill.
        weights: `"imagenet"` or the path of a weights file.
        checkpoint: the registry entry `"imagenet"` stands for.
        build_full_model: returns a model with the top of `model`'s architecture;
            it reads the cached conversion of the ImageNet weights.
    """
    if weights == "imagenet":
        path = imagenet_weights(checkpoint, build_full_model)
        full_model = build_full_model()
        try:
            full_model.load_weights(path)
        except (OSError, ValueError, KeyError) as error:
            # Only this library writes there, atomically: a damaged file was
            # damaged afterwards. Removing it lets the next load convert anew.
            os.remove(path)
            raise ValueError(
                f"The cached conversion {path!r} of {checkpoint.name!r} is damaged "
                f"({error}); it was deleted. Load again to convert the checkpoint "
                "anew."
            ) from error
        assign_weights(model, layer_weights(full_model), source=path)
    elif os.fspath(weights).lower().endswith(".weights.h5"):
        model.load_weights(weights)
    else:
        assign_weights(model, read_checkpoint(weights), source=repr(weights))


def assign_weights(
    model: keras.Model, weights: WeightsByLayer, source: str = "the checkpoint"
) -> None:
    """Sets each layer of `model` that has weights from `weights[layer.name]`.

    Layers of the top (fc6, fc7, predictions) absent from the model are ignored, so
    a full checkpoint loads into `include_top=False`. Any other disagreement, a
    layer missing on either side or a shape that differs, raises a `ValueError`
    naming the layer and both shapes.
    """
    model_layers = {layer.name: layer for layer in model.layers if layer.weights}
    missing = sorted(set(model_layers) - set(weights))
    if missing:
        raise ValueError(
            f"{source} has no weights for the layers {missing} of model "
            f"{model.name!r}; it has weights for {sorted(weights)}."
        )
    unused = sorted(set(weights) - set(model_layers) - set(TOP_LAYERS))
    if unused:
        raise ValueError(
            f"{source} has weights for layers {unused} that model {model.name!r} "
            "does not have: it was made for another architecture."
        )
    for name, layer in model_layers.items():
        expected = [tuple(w.shape) for w in layer.weights]
        received = [tuple(np.shape(w)) for w in weights[name]]
        if expected != received:
            raise ValueError(
                f"Layer {name!r} of model {model.name!r} has weights of shapes "
                f"{expected}, but {source} has shapes {received} for it. Check "
                "`variant`, `groups`, `normalization`, `classes` and `input_shape`."
            )
    for name, layer in model_layers.items():
        layer.set_weights(weights[name])
