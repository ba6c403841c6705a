"""Resolves `weights=...`: downloads, verifies, converts once, caches and loads.

`weights="imagenet"` fetches the variant's source checkpoint (see `registry`),
checks its hash, converts it once to arrays by Keras layer name (a `.npz` in the
Keras cache, `$KERAS_HOME/models/keras_alexnet/`, by default
`~/.keras/models/keras_alexnet/`) and from then on reads only that file.

Loading never builds a model: every format is read into
`{keras_layer_name: [arrays]}` and `assign_weights` sets them on the model the
caller built. `weights_format` is the one place that says which format a file
is; `file_architecture` reads what a file says about the network it needs (a
`.keras` archive's layer configs, the architecture stamped into the
`.weights.h5` files keras-alexnet writes, Caffe's LRN for a `.caffemodel`).

Every file lands under its final name by an atomic rename, so an interrupted or
concurrent load never leaves a partial file behind, and a file that fails its
hash check is deleted.

Set `KERAS_ALEXNET_WEIGHTS_MIRROR` to a URL prefix or a local folder holding the
source checkpoints under their original file names (`bvlc_alexnet.caffemodel`,
`alexnet-owt-7be5be79.pth`) to load them from there instead of their origin, for
air-gapped machines. A download that gets no answer, or no data, for
`KERAS_ALEXNET_DOWNLOAD_TIMEOUT` seconds (default 60) fails with a message.

The cache heals itself: each conversion is stored with its own SHA-256 beside
it (`<name>.npz.sha256`) and checked on every load, so a conversion that
was damaged or replaced afterwards is made again from the source checkpoint;
temporary files and folders left by a killed process are removed once they
have been idle for an hour.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from keras_alexnet.variants import Architecture, LRNConstants, check_variant
from keras_alexnet.weights import name_maps, registry
from keras_alexnet.weights.caffe_checkpoint import read_caffemodel
from keras_alexnet.weights.registry import Checkpoint
from keras_alexnet.weights.torch_checkpoint import read_torch_state_dict

MIRROR_ENV = "KERAS_ALEXNET_WEIGHTS_MIRROR"
TIMEOUT_ENV = "KERAS_ALEXNET_DOWNLOAD_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0
# Temporary files and folders of the cache untouched this long belong to a
# process that died (an active download writes at least once per timeout).
STALE_AFTER_S = 3600.0
_TEMPORARY_PREFIXES = (".download-", ".tmp-")
CACHE_SUBDIR = os.path.join("models", "keras_alexnet")
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
# The architecture keras-alexnet stamps into the .weights.h5 files it writes.
ARCHITECTURE_ATTRIBUTE = "keras_alexnet_architecture"
# A .keras archive's weights are read into memory: AlexNet's take 245 MB, so
# anything past 1 GiB is not an AlexNet and is refused before it is inflated.
MAX_KERAS_WEIGHTS_BYTES = 1 << 30
MAX_KERAS_CONFIG_BYTES = 16 << 20


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


def make_cache_dir() -> str:
    """Creates the cache folder if needed; an unusable one names `KERAS_HOME`."""
    directory = cache_dir()
    try:
        os.makedirs(directory, exist_ok=True)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write to {directory!r}")
    except OSError as error:
        keras_home = os.environ.get("KERAS_HOME")
        where = (
            f"KERAS_HOME={keras_home!r}"
            if keras_home
            else "~/.keras (KERAS_HOME is not set)"
        )
        raise OSError(
            f"Cannot use the weights cache {directory!r} ({error}). It lies in "
            f"{where}: set KERAS_HOME to a writable folder."
        ) from None
    _remove_stale_temporaries(directory)
    return directory


def _remove_stale_temporaries(directory: str) -> None:
    """Removes what killed downloads and conversions left in the cache."""
    now = time.time()
    for entry in os.scandir(directory):
        if not entry.name.startswith(_TEMPORARY_PREFIXES):
            continue
        try:
            last_change = entry.stat(follow_symlinks=False).st_mtime
            if entry.is_dir(follow_symlinks=False):
                with os.scandir(entry.path) as inside:
                    for child in inside:
                        mtime = child.stat(follow_symlinks=False).st_mtime
                        last_change = max(last_change, mtime)
            if now - last_change < STALE_AFTER_S:
                continue  # perhaps another process's download, still running
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.remove(entry.path)
        except OSError:
            pass  # removed meanwhile by another process, or not ours to remove


def _refuse_directory(path: str, what: str) -> None:
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"{path!r} is a folder, where keras-alexnet keeps {what}. Remove or "
            "rename it."
        )


def download_timeout() -> float:
    """The seconds a download may wait for a connection or for data."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ValueError(
            f"{TIMEOUT_ENV} should be a positive number of seconds. Received: "
            f"{TIMEOUT_ENV}={text!r}"
        )
    return value


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
    registry's URL, with a progress bar. It is downloaded into a private
    temporary folder, verified, and only then renamed into the cache.

    Raises:
        ChecksumError: the file does not have the registry's hash; nothing is kept.
        DownloadError: the download failed or timed out; nothing is kept.
    """
    directory = make_cache_dir()
    final_path = os.path.join(directory, checkpoint.file_name)
    _refuse_directory(final_path, f"the downloaded checkpoint {checkpoint.name!r}")
    if os.path.exists(final_path):
        if file_hash_matches(final_path, checkpoint):
            return final_path
        os.remove(final_path)

    mirror = os.environ.get(MIRROR_ENV, "").strip()
    timeout = download_timeout()
    with tempfile.TemporaryDirectory(prefix=".download-", dir=directory) as tmp:
        downloaded = os.path.join(tmp, checkpoint.file_name)
        if mirror and os.path.isdir(mirror):
            source = os.path.join(mirror, checkpoint.file_name)
            if not os.path.isfile(source):
                raise FileNotFoundError(
                    f"{MIRROR_ENV} names the folder {mirror!r}, which has no "
                    f"{checkpoint.file_name!r}."
                )
            shutil.copyfile(source, downloaded)
            if not file_hash_matches(downloaded, checkpoint):
                raise ChecksumError(
                    f"{source!r}, in the folder {MIRROR_ENV} names, does not have "
                    f"the expected {checkpoint.hash_algorithm} hash "
                    f"{checkpoint.file_hash!r} of {checkpoint.name!r}: it is "
                    "truncated, corrupted or not the published checkpoint. Nothing "
                    f"was copied to the cache. Replace it with the file published "
                    f"at {checkpoint.url}."
                )
        else:
            origin = checkpoint.url
            if mirror:
                origin = mirror.rstrip("/") + "/" + checkpoint.file_name
            _download(origin, downloaded, checkpoint, timeout)
            if not file_hash_matches(downloaded, checkpoint):
                raise ChecksumError(
                    f"The file downloaded for {checkpoint.name!r} from {origin} "
                    f"does not have the expected {checkpoint.hash_algorithm} hash "
                    f"{checkpoint.file_hash!r}: it is truncated, corrupted or not "
                    "the published checkpoint. It was deleted; loading again "
                    "downloads it anew."
                )
        _set_default_permissions(downloaded)
        os.replace(downloaded, final_path)
    return final_path


def _download(origin: str, path: str, checkpoint: Checkpoint, timeout: float) -> None:
    """Writes the file at URL `origin` to `path`, with a progress bar.

    `timeout` bounds the wait for the connection and for each block of data
    (`keras.utils.get_file` waits forever on a server that stalls).
    """
    advice = (
        f"Nothing was kept. Set {MIRROR_ENV} to a folder or URL holding "
        f"{checkpoint.file_name!r} to load it from elsewhere."
    )
    try:
        with urllib.request.urlopen(origin, timeout=timeout) as response:
            expected = int(response.headers.get("Content-Length") or 0) or None
            progress = keras.utils.Progbar(expected, unit_name="byte")
            received = 0
            with open(path, "wb") as file:
                while block := response.read(1 << 20):
                    file.write(block)
                    received += len(block)
                    progress.update(received)
    except TimeoutError as error:
        raise DownloadError(
            f"Downloading {checkpoint.name!r} from {origin} timed out: no answer "
            f"or no data for {timeout:g} s ({TIMEOUT_ENV} sets the limit). "
            f"{advice}"
        ) from error
    except (OSError, http.client.HTTPException, ValueError) as error:
        if isinstance(getattr(error, "reason", None), TimeoutError):
            raise DownloadError(
                f"Downloading {checkpoint.name!r} from {origin} timed out: no "
                f"connection within {timeout:g} s ({TIMEOUT_ENV} sets the limit). "
                f"{advice}"
            ) from error
        raise DownloadError(
            f"Downloading {checkpoint.name!r} from {origin} failed: {error}. {advice}"
        ) from error
    if expected is not None and received != expected:
        raise DownloadError(
            f"Downloading {checkpoint.name!r} from {origin} failed: the server "
            f"announced {expected} bytes and sent {received}. {advice}"
        )


def converted_weights_path(checkpoint: Checkpoint) -> str:
    """Returns where the conversion of `checkpoint` (arrays by layer name) is cached."""
    return os.path.join(
        cache_dir(), f"{checkpoint.name}-{checkpoint.file_hash[:8]}.npz"
    )


def download_hint(checkpoint: Checkpoint) -> str | None:
    """What loading `checkpoint` would download, or `None` if it needs no network.

    `None` when its conversion or source file is in the cache, or a mirror is set
    (`KERAS_ALEXNET_WEIGHTS_MIRROR`). Otherwise one sentence naming the file, its
    size and URL, the cache folder, and how to load it without network. The
    examples print it instead of reaching for the network unasked.
    """
    if (
        os.path.isfile(converted_weights_path(checkpoint))
        or os.path.isfile(os.path.join(cache_dir(), checkpoint.file_name))
        or os.environ.get(MIRROR_ENV)
    ):
        return None
    return (
        f"This needs the {checkpoint.name} weights: pass --weights imagenet to "
        f"download {checkpoint.file_name} (about 233 MB) from {checkpoint.url} "
        f"into {cache_dir()}; or, without network, put that file in a folder and "
        f"set {MIRROR_ENV} to it; or try --weights none (random weights, offline)."
    )


def imagenet_weights(checkpoint: Checkpoint) -> str:
    """Returns the path of `checkpoint`'s converted weights, converting them once.

    The conversion is the source checkpoint read into arrays by Keras layer name,
    saved with `numpy.savez` (read back without pickle); no model is built. Its
    own SHA-256 is written beside it and checked here on every load: a
    conversion damaged or replaced since (an all-zero file may still parse) is
    made again from the source checkpoint.
    """
    path = converted_weights_path(checkpoint)
    digest_path = path + ".sha256"
    make_cache_dir()
    _refuse_directory(path, f"the conversion of {checkpoint.name!r}")
    _refuse_directory(digest_path, f"the hash of the conversion of {checkpoint.name!r}")
    if os.path.exists(path):
        if _recorded_digest(digest_path) == _sha256(path):
            return path
        warnings.warn(
            f"The cached conversion {path!r} of {checkpoint.name!r} does not have "
            f"the SHA-256 recorded in {digest_path!r} when it was written: it was "
            "damaged or replaced since. Converting the checkpoint again.",
            stacklevel=3,
        )
        os.remove(path)
    source_path = fetch_checkpoint(checkpoint)
    weights = read_checkpoint(source_path)
    digest = []

    def save(tmp: str) -> None:
        save_layer_weights(tmp, weights)
        digest.append(_sha256(tmp))

    # The hash goes first: a conversion in place always has its hash beside it
    # (a concurrent process may replace both; a mismatch then costs one
    # conversion more, never a wrong load).
    write_atomically(
        path,
        save,
        before_rename=lambda: _write_text_atomically(digest_path, digest[0] + "\n"),
    )
    return path


def save_layer_weights(path: str, weights: WeightsByLayer) -> None:
    """Saves `{layer_name: [arrays]}` to a `.npz` file, as `layer_name/index`."""
    arrays = {
        f"{name}/{index}": np.asarray(array)
        for name, layer_arrays in weights.items()
        for index, array in enumerate(layer_arrays)
    }
    with open(path, "wb") as f:
        # numpy's stubs read **arrays as its allow_pickle keyword.
        np.savez(f, **arrays)  # type: ignore[arg-type]


def load_layer_weights(path: str) -> dict[str, list[np.ndarray]]:
    """Reads a file written by `save_layer_weights` (without pickle)."""
    with np.load(path, allow_pickle=False) as data:
        flat = {key: data[key] for key in data.files}
    weights: dict[str, dict[int, np.ndarray]] = {}
    for key, array in flat.items():
        name, _, index = key.rpartition("/")
        weights.setdefault(name, {})[int(index)] = array
    return {
        name: [arrays[i] for i in sorted(arrays)] for name, arrays in weights.items()
    }


def imagenet_layer_weights(checkpoint: Checkpoint) -> dict[str, list[np.ndarray]]:
    """Returns `checkpoint`'s weights by layer name, from the cached conversion."""
    path = imagenet_weights(checkpoint)
    try:
        return load_layer_weights(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        # Only this library writes there, atomically: a damaged file was
        # damaged afterwards. Removing it lets the next load convert anew.
        os.remove(path)
        raise ValueError(
            f"The cached conversion {path!r} of {checkpoint.name!r} is damaged "
            f"({error}); it was deleted. Load again to convert the checkpoint "
            "anew."
        ) from error


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _recorded_digest(digest_path: str) -> str | None:
    try:
        with open(digest_path, encoding="ascii") as f:
            return f.read(100).strip()
    except (OSError, UnicodeDecodeError):
        return None


def _write_text_atomically(path: str, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="ascii") as f:
            f.write(text)

    write_atomically(path, write)


def write_atomically(
    path: str,
    write: Callable[[str], None],
    before_rename: Callable[[], None] | None = None,
) -> None:
    """Calls `write(tmp)` on a temporary file beside `path`, then renames it.

    Readers see either the old file or the complete new one, never a partial
    file; the temporary file is removed if `write` fails. Its name ends like
    `path` (`.weights.h5`, `.keras`), as Keras checks the extension. The file
    gets the permissions the umask gives a new file (not the temporary file's
    owner-only 0600), so a cache filled by one user can be shared. The folder
    must exist: a mistyped destination is not created.

    Args:
        path: the file to write.
        write: writes the temporary file whose path it is given.
        before_rename: called after `write` succeeded, before the rename.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"Cannot write {path!r}: the folder {directory!r} does not exist."
        )
    _refuse_directory(path, "this file")
    suffix = (
        ".weights.h5" if path.endswith(".weights.h5") else os.path.splitext(path)[1]
    )
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        write(tmp)
        _set_default_permissions(tmp)
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    # Read without changing it where Linux shows it; os.umask can only be read
    # by setting it, which races with other threads creating files.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _set_default_permissions(path: str) -> None:
    """Gives `path` the mode a plain `open(path, "w")` would have given it."""
    os.chmod(path, 0o666 & ~_umask())


def weights_format(path: str | os.PathLike) -> str:
    """Returns the format of a weights file from its name: one of `WEIGHTS_FORMATS`.

    `"keras_weights"` (`.weights.h5`), `"keras"` (`.keras`), `"caffe"`
    (`.caffemodel`) or `"torch"` (`.pth`, `.pt`, `.bin`); case is ignored.

    Raises:
        ValueError: for any other name.
    """
    lower = os.fspath(path).lower()
    for suffix, kind in WEIGHTS_FORMATS.items():
        if lower.endswith(suffix):
            return kind
    raise ValueError(
        "Unsupported weights file: expected a .weights.h5, .keras, .caffemodel, "
        f".pth or .pt file. Received: weights={os.fspath(path)!r}"
    )


def check_weights_file(path: Any) -> str:
    """Returns `path` as a string if it names an existing regular file.

    Raises:
        ValueError: a folder, a missing file or an unsupported extension, with
            the path in the message (checked before any model is built).
    """
    path = os.fspath(path)
    weights_format(path)
    if os.path.isdir(path):
        raise ValueError(
            f"The weights file is a folder, not a file. Received: weights={path!r}"
        )
    if not os.path.isfile(path):
        raise ValueError(f"The weights file does not exist. Received: weights={path!r}")
    return path


def read_checkpoint(path: str) -> dict[str, list[np.ndarray]]:
    """Reads a foreign or `.keras` weights file into `{keras_layer_name: [arrays]}`.

    `.caffemodel` (Caffe `bvlc_alexnet` layout) and `.pth`/`.pt`/`.bin` (a
    torchvision AlexNet state dict) are parsed without Caffe or PyTorch and
    without executing any code from the file. A `.keras` archive is read without
    building its model: its layer configs say which layer each array belongs to
    (nothing in them is imported or called). `.weights.h5` files are addressed by
    the class of each layer, not its name, so they need the layers of the model
    they go into: see `read_keras_weights`.
    """
    kind = weights_format(path)
    if kind == "caffe":
        return name_maps.caffe_to_keras(read_caffemodel(path))
    if kind == "torch":
        return name_maps.torchvision_to_keras(read_torch_state_dict(path))
    if kind == "keras":
        config, weights_h5 = _read_keras_archive(path)
        layers = _layer_configs(config, path)
        weights, _ = _read_h5_by_layer(
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

    Keras files address each layer by its class name and rank among the layers of
    that class (`conv2d`, `conv2d_1`, ...), so the layers of the model the
    weights go into, `(name, class_name)` in model order, name them.

    Args:
        path: the file.
        layers: `(name, class_name)` of the model's layers, in model order.
        has_top: whether that model has fc6, fc7 and predictions; without them,
            the file's three Dense layers (its top) are left out.

    Raises:
        ValueError: the file is not HDF5, or holds weights for layers the model
            does not have.
    """
    weights, extra = _read_h5_by_layer(path, layers, path)
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


def file_architecture(path: str) -> dict[str, Any]:
    """Returns what the file at `path` says about the network its weights need.

    The keys present are those the file states: `variant`, `groups`,
    `normalization`, `lrn` (`LRNConstants` or `None`). A `.keras` archive states
    them all (from its layer configs); a `.weights.h5` written by keras-alexnet
    (`convert_checkpoint`, `save_model_atomically`) too, others nothing; a
    `.caffemodel` holds `bvlc_alexnet`'s layout, trained with Caffe's LRN; a
    torchvision `.pth` holds the torchvision layout.
    """
    kind = weights_format(path)
    if kind == "caffe":
        return architecture_dict(registry.BVLC_ALEXNET.architecture)
    if kind == "torch":
        return {"variant": "torchvision"}
    if kind == "keras":
        config, _ = _read_keras_archive(path, read_weights=False)
        return architecture_of_layers(_layer_configs(config, path))
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
    """The class count and variant of the network stored at `path`, from its arrays.

    Returns `{"classes": int | None, "variant": str | None}`: `classes` is the
    output count of the `predictions` layer (`None` for a file without a top);
    `variant` is what `file_architecture` says, else what conv1's filter count
    (96 or 64) implies. Read with this module's readers, without building a
    model, so that a model with the right number of classes can then be built.
    """
    kind = weights_format(path)
    if kind == "keras":
        # The whole model is in the archive: its config says it all, so no
        # array is read.
        config, _ = _read_keras_archive(path, read_weights=False)
        top = [
            layer["config"].get("units")
            for layer in _layer_configs(config, path)
            if layer["name"] == "predictions"
        ]
        return {
            "classes": int(top[0]) if top and isinstance(top[0], int) else None,
            "variant": file_architecture(path).get("variant"),
        }
    if kind == "keras_weights":
        # Keras addresses layers by class and rank: conv1 is the first Conv2D,
        # and AlexNet's top the only three Dense layers, predictions last.
        arrays, _ = _read_h5_by_layer(
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

    `AlexNet(weights=path)` then rebuilds that architecture (LRN constants
    included, which have no weights to carry them) without being told. A model
    that is not an AlexNet (no conv1 and conv2) gets no stamp.
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
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path!r} has no readable config.json: {error}") from error
    except OSError as error:
        raise ValueError(f"{path!r} cannot be read: {error}") from error
    return config, weights


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


def _snake_case(class_name: str) -> str:
    # keras.src.utils.naming.to_snake_case, which names the groups of a weights file.
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _read_h5_by_layer(
    source: Any, layers: Sequence[tuple[str, str]], path: str
) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    """Reads `layers/<class path>/vars/<i>` of a Keras HDF5 weights file by name.

    Returns the arrays by layer name and the file's paths no layer names.
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


def load_weights(
    model: keras.Model, weights: str | Checkpoint, source_name: str | None = None
) -> None:
    """Loads a registry entry or a weights file into `model` by layer name.

    Args:
        model: the model to fill, built by the caller.
        weights: a `Checkpoint` (its cached conversion) or the path of a weights
            file of one of `WEIGHTS_FORMATS`.
        source_name: how error messages name the weights.
    """
    if isinstance(weights, Checkpoint):
        arrays = imagenet_layer_weights(weights)
        source = source_name or converted_weights_path(weights)
    elif weights_format(weights) == "keras_weights":
        arrays = read_keras_weights(
            weights,
            [(layer.name, type(layer).__name__) for layer in model.layers],
            has_top=any(layer.name in TOP_LAYERS for layer in model.layers),
        )
        source = repr(weights)
    else:
        arrays = read_checkpoint(weights)
        source = repr(weights)
    assign_weights(model, arrays, source=source)


def layer_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """Returns `{layer_name: layer.get_weights()}` for the layers with weights."""
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


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
