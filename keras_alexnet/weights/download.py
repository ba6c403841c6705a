"""Downloads checkpoints, checks their hashes and caches their conversions.

Every file lands under its final name by an atomic rename; what a killed
process left behind is removed after `STALE_AFTER_S`. A cache that already
holds what is asked for is only read, so a read-only one works. The mirror, the
timeout, the cache and what its hashes protect against are described in
docs/pretrained.md.
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
import zipfile
from collections.abc import Callable

import keras
import numpy as np

from keras_alexnet.weights.formats import WeightsByLayer, read_checkpoint
from keras_alexnet.weights.registry import Checkpoint

__all__ = [
    "CACHE_SUBDIR",
    "DEFAULT_TIMEOUT_S",
    "MIRROR_ENV",
    "STALE_AFTER_S",
    "TIMEOUT_ENV",
    "VERIFY_ENV",
    "ChecksumError",
    "DownloadError",
    "cache_dir",
    "converted_weights_path",
    "download_hint",
    "download_timeout",
    "fetch_checkpoint",
    "file_hash_matches",
    "imagenet_layer_weights",
    "imagenet_weights",
    "load_layer_weights",
    "make_cache_dir",
    "save_layer_weights",
    "verify_conversion",
    "write_atomically",
]

MIRROR_ENV = "KERAS_ALEXNET_WEIGHTS_MIRROR"
TIMEOUT_ENV = "KERAS_ALEXNET_DOWNLOAD_TIMEOUT"
# Set (to anything but "" or "0"), a cached conversion is checked against the
# source checkpoint on every load when that file is in the cache too.
VERIFY_ENV = "KERAS_ALEXNET_VERIFY_CACHE"
DEFAULT_TIMEOUT_S = 60.0
# Temporary files and folders of the cache untouched this long belong to a
# process that died (an active download writes at least once per timeout).
STALE_AFTER_S = 3600.0
_TEMPORARY_PREFIXES = (".download-", ".tmp-")
CACHE_SUBDIR = os.path.join("models", "keras_alexnet")


class ChecksumError(ValueError):
    """A downloaded or mirrored checkpoint does not have the registry's hash."""


class DownloadError(OSError):
    """A checkpoint could not be downloaded (network error or truncated file)."""


def keras_home() -> str:
    """Keras' own folder: `KERAS_HOME`, or `~/.keras` where it is not set."""
    return os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras"
    )


def cache_dir() -> str:
    """Returns the folder where checkpoints and their conversions are cached."""
    return os.path.join(keras_home(), CACHE_SUBDIR)


def make_cache_dir(purpose: str | None = None) -> str:
    """Creates the cache folder, for writing; an unusable one names `KERAS_HOME`.

    Only called when something must be written: reading a cache needs no write
    access.

    Args:
        purpose: what is to be written, for the message (`"download x.pth"`).

    Raises:
        OSError: the folder cannot be created or written; the message names it,
            `purpose` and `KERAS_HOME`.
    """
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
        needed = f" to {purpose}" if purpose else ""
        raise OSError(
            f"Cannot use the weights cache {directory!r}{needed} ({error}). It "
            f"lies in {where}: set KERAS_HOME to a writable folder."
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

    From `MIRROR_ENV` (a folder or URL prefix) when set, else the registry's
    URL; verified before it is renamed into the cache.

    Raises:
        ChecksumError: the file does not have the registry's hash; nothing is kept.
        DownloadError: the download failed or timed out; nothing is kept.
    """
    final_path = os.path.join(cache_dir(), checkpoint.file_name)
    _refuse_directory(final_path, f"the downloaded checkpoint {checkpoint.name!r}")
    if os.path.exists(final_path):
        if file_hash_matches(final_path, checkpoint):
            return final_path  # read only: a read-only cache is fine
        directory = make_cache_dir(f"replace the damaged {checkpoint.file_name!r}")
        os.remove(final_path)
    else:
        directory = make_cache_dir(f"download {checkpoint.file_name!r}")

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

    Returns:
        `None` when its conversion or source file is cached or `MIRROR_ENV` is
        set; else one sentence naming the file, its size, URL and the cache,
        and how to load it offline (the examples print it).
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
    """Returns the path of `checkpoint`'s cached conversion, converting it once.

    The conversion is a `.npz` of arrays by Keras layer name; its SHA-256,
    written beside it, is checked on every call and a mismatch converts again
    (an all-zero file may still parse). With `VERIFY_ENV` set, it is also
    compared with a fresh conversion of the source checkpoint when that is in
    the cache (`verify_conversion`). A cache holding a good conversion is only
    read.

    Raises:
        ChecksumError, DownloadError: as `fetch_checkpoint`.
        OSError: the conversion must be written and the cache is read-only.
    """
    path = converted_weights_path(checkpoint)
    digest_path = path + ".sha256"
    _refuse_directory(path, f"the conversion of {checkpoint.name!r}")
    _refuse_directory(digest_path, f"the hash of the conversion of {checkpoint.name!r}")
    if os.path.exists(path):
        problem = _conversion_problem(path, digest_path, checkpoint)
        if problem is None:
            return path
        warnings.warn(
            f"The cached conversion {path!r} of {checkpoint.name!r} {problem}. "
            "Converting the checkpoint again.",
            stacklevel=3,
        )
        make_cache_dir(f"replace the conversion {os.path.basename(path)!r}")
        os.remove(path)
    source_path = fetch_checkpoint(checkpoint)
    make_cache_dir(f"save the conversion of {checkpoint.name!r}")
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


def _conversion_problem(
    path: str, digest_path: str, checkpoint: Checkpoint
) -> str | None:
    """What is wrong with a cached conversion, as a phrase; `None` if nothing."""
    if _recorded_digest(digest_path) != _sha256(path):
        return (
            f"does not have the SHA-256 recorded in {digest_path!r} when it was "
            "written: it was damaged or replaced since"
        )
    verify = os.environ.get(VERIFY_ENV, "").strip() not in ("", "0")
    if verify and not verify_conversion(checkpoint):
        return (
            "differs from the conversion of the source checkpoint beside it, "
            "whose hash is the registry's: it was replaced, together with its "
            "SHA-256"
        )
    return None


def verify_conversion(checkpoint: Checkpoint) -> bool:
    """Whether the cached conversion equals a fresh one of the cached source.

    The registry pins the source checkpoint's hash; the conversion's SHA-256
    lives beside it and cannot tell a deliberate replacement from the real
    one. This converts the source again (about 3 s for AlexNet, see
    docs/pretrained.md) and compares every array.

    Returns:
        `True` when they are equal, or when there is nothing to compare with:
        no conversion, or no source in the cache with the registry's hash.
    """
    path = converted_weights_path(checkpoint)
    source_path = os.path.join(cache_dir(), checkpoint.file_name)
    if not (os.path.isfile(path) and os.path.isfile(source_path)):
        return True
    if not file_hash_matches(source_path, checkpoint):
        return True  # a damaged source proves nothing; fetch_checkpoint replaces it
    fresh = read_checkpoint(source_path)
    try:
        cached = load_layer_weights(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return False
    return set(cached) == set(fresh) and all(
        len(cached[name]) == len(fresh[name])
        and all(
            a.dtype == np.asarray(b).dtype and np.array_equal(a, b)
            for a, b in zip(cached[name], fresh[name], strict=True)
        )
        for name in fresh
    )


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
        try:
            os.remove(path)
            outcome = "it was deleted. Load again to convert the checkpoint anew."
        except OSError as removal:
            outcome = (
                f"it could not be deleted ({removal.strerror or removal}): delete "
                "it, or set KERAS_HOME to a writable folder."
            )
        raise ValueError(
            f"The cached conversion {path!r} of {checkpoint.name!r} is damaged "
            f"({error}); {outcome}"
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

    Readers see the old file or the complete new one, never a partial one. The
    file gets the umask's permissions (a shared cache stays shared).

    Args:
        path: the file to write.
        write: writes the temporary file whose path it is given.
        before_rename: called after `write` succeeded, before the rename.

    Raises:
        FileNotFoundError: the folder does not exist (it is not created).
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"Cannot write {path!r}: the folder {directory!r} does not exist."
        )
    _refuse_directory(path, "this file")
    # The temporary name ends like `path`: Keras checks the extension.
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
