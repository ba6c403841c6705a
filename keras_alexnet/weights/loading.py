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
air-gapped machines. A download that gets no answer, or no data, for
`KERAS_ALEXNET_DOWNLOAD_TIMEOUT` seconds (default 60) fails with a message.

The cache heals itself: each conversion is stored with its own SHA-256 beside
it (`<name>.weights.h5.sha256`) and checked on every load, so a conversion that
was damaged or replaced afterwards is made again from the source checkpoint;
temporary files and folders left by a killed process are removed once they
have been idle for an hour.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Mapping

import keras
import numpy as np

from keras_alexnet.weights import name_maps
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
    """Returns where the Keras conversion of `checkpoint` is cached."""
    return os.path.join(
        cache_dir(), f"{checkpoint.name}-{checkpoint.file_hash[:8]}.weights.h5"
    )


def imagenet_weights(
    checkpoint: Checkpoint, build_full_model: Callable[[], keras.Model]
) -> str:
    """Returns the path of `checkpoint`'s Keras weights, converting them once.

    The conversion's own SHA-256 is written beside it and checked here on every
    load: a conversion damaged or replaced since (an all-zero file is a valid
    `.weights.h5`) is made again from the source checkpoint.

    Args:
        checkpoint: the registry entry.
        build_full_model: returns a model, with its top and 1000 classes, of the
            architecture the checkpoint needs; used only to write the conversion.
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
    model = build_full_model()
    assign_weights(model, read_checkpoint(source_path), source=source_path)
    digest = []

    def save(tmp: str) -> None:
        model.save_weights(tmp, overwrite=True)
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


def save_weights_atomically(model: keras.Model, path: str) -> None:
    """Writes `model.save_weights(path)` through a temporary file and a rename."""
    write_atomically(path, lambda tmp: model.save_weights(tmp, overwrite=True))


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
        if checkpoint is None:
            raise ValueError("weights='imagenet' needs its registry `checkpoint`.")
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
