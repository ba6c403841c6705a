"""A run folder at a URL (`gs://`, `hdfs://`, any path `tf.io.gfile` reads).

Object stores have no exclusive file creation, no atomic rename and no hard
link, which the run folder's guarantees rest on (`RunFolder`). A run whose
`output` is a URL therefore runs in a local working copy, with the usual
checks and lock, and `RunMirror` keeps the URL a copy of it: pulled when the
run starts (a run resumes from any machine), pushed after every completed
epoch and at the end, `state.json` after the files it names. What the URL's
lock guarantees is in docs/distributed.md, "Shared storage".

    $KERAS_HOME/keras_alexnet/runs/<sha256 of the URL, 16 digits>/
      run/           the working copy: a run folder like any other
      mirror.json    what was last copied each way (size, modification time)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from typing import Any

import tensorflow as tf

from keras_alexnet.data.storage import is_url
from keras_alexnet.runs.folder_lock import process_alive
from keras_alexnet.runs.run_files import MAX_RUN_FILE_BYTES
from keras_alexnet.runs.run_folder import (
    CHECKPOINT_NAME,
    LOCK,
    RUN_ENTRIES,
    TEMPORARY_NAME,
    RunFolder,
)
from keras_alexnet.weights.download import keras_home, write_atomically

__all__ = ["RunMirror", "local_copy", "open_run_folder", "staging_folder"]

STAGING_SUBDIR = os.path.join("keras_alexnet", "runs")
MANIFEST = "mirror.json"
# A run refreshes the URL's lock this often, from a thread of its own; a lock
# not refreshed for STALE_LOCK_SECONDS belongs to a run that is gone (another
# host's process cannot be asked). Ten beats: a slow store misses a few.
HEARTBEAT_SECONDS = 60.0
STALE_LOCK_SECONDS = 600.0
# Files this small are always copied: state.json may change and keep its size.
ALWAYS_COPIED_BYTES = 1 << 20
# The files of a run that its readers check, whole, against MAX_RUN_FILE_BYTES.
SMALL_RUN_FILES = frozenset(
    {"config.json", "classes.json", "log.csv", "state.json", "metrics.json"}
)
# Pushed last, in this order, as written locally: the state names files
# already pushed, best.keras follows the state (a resume re-links it), and a
# metrics.json matching the state marks the run finished.
PUSHED_LAST = ("state.json", "best.keras", "metrics.json")


def staging_folder(url: str) -> str:
    """The local folder that holds the working copy of the run at `url`."""
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return os.path.join(keras_home(), STAGING_SUBDIR, digest)


def open_run_folder(
    output: str | os.PathLike, *, worker: int | None = None
) -> RunFolder:
    """The `RunFolder` of `output`: a local folder, or a URL's working copy.

    Args:
        output: a folder, or a URL (`gs://bucket/runs/a`).
        worker: the index of a multi-worker run's worker that is not the
            chief: it pulls the URL into a working copy of its own and never
            pushes. `None` for the process that writes the run.
    """
    if not is_url(output):
        return RunFolder(output)
    url = str(os.fspath(output))
    staging = staging_folder(url)
    if worker is not None:
        staging += f"-worker-{worker}"
    mirror = RunMirror(url, staging=staging, writer=worker is None)
    return RunFolder(mirror.local, mirror=mirror)


class RunMirror:
    """Keeps the run folder at `url` a copy of the local working copy.

    Args:
        url: the run folder's URL.
        staging: the local folder of the working copy (`run/`) and of the
            record of what was copied; defaults to `staging_folder(url)`.
        writer: whether this process pushes and holds the URL's lock (the
            chief); other workers only pull.
    """

    def __init__(
        self, url: str, *, staging: str | None = None, writer: bool = True
    ) -> None:
        self.url = url.rstrip("/")
        self.staging = staging or staging_folder(self.url)
        self.local = os.path.join(self.staging, "run")
        self.writer = writer
        self.lock_token: str | None = None
        self._heartbeat: threading.Thread | None = None
        self._stop_heartbeat = threading.Event()
        self.copied: dict[str, dict[str, list[int]]] = {}

    def remote(self, relative: str) -> str:
        return f"{self.url}/{relative.replace(os.sep, '/')}"

    def claim(self) -> None:
        """Checks that the URL holds a run folder or nothing, takes its lock
        (the writer) and pulls it.

        Raises:
            ValueError: the URL holds files no run wrote, is a file, or its
                lock is held by a live run.
        """
        self._refuse_foreign_entries()
        if self.writer:
            self._acquire_lock()
        try:
            if self.writer:
                self._remove_temporaries()
            self.pull()
        except BaseException:
            self.release()
            raise

    def pull(self) -> None:
        """Makes the working copy the URL's run folder: copies the files that
        are new or changed there, removes those it lacks (the local lock stays)."""
        gfile = tf.io.gfile
        os.makedirs(self.local, exist_ok=True)
        self.copied = self._read_manifest()
        remote = self._remote_files()
        local = _local_files(self.local)
        for relative in sorted(set(local) - set(remote)):
            os.remove(os.path.join(self.local, relative))
            self.copied.pop(relative, None)
        for directory, folders, names in os.walk(self.local, topdown=False):
            if directory != self.local and not folders and not names:
                os.rmdir(directory)  # emptied above: a run folder has none
        for relative, remote_stat in sorted(remote.items()):
            if relative in SMALL_RUN_FILES and remote_stat[0] > MAX_RUN_FILE_BYTES:
                # Not downloaded: a run writes no such file (`read_json_object`).
                raise ValueError(
                    f"{self.remote(relative)!r} is damaged: it has "
                    f"{remote_stat[0]:,} bytes, more than a run writes (limit "
                    f"{MAX_RUN_FILE_BYTES:,})."
                )
            record = self.copied.get(relative, {})
            if (
                remote_stat[0] > ALWAYS_COPIED_BYTES
                and record.get("remote") == remote_stat
                and record.get("local") == local.get(relative)
            ):
                continue
            path = os.path.join(self.local, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            gfile.copy(self.remote(relative), path, overwrite=True)
            self.copied[relative] = {"local": _stat(path), "remote": remote_stat}
        self._write_manifest()

    def push(self) -> None:
        """Copies the new or changed files of the working copy to the URL,
        `PUSHED_LAST` last, then removes there the files removed here (pruned
        checkpoints)."""
        local = _local_files(self.local)
        changed = [
            relative
            for relative, stat in local.items()
            if self.copied.get(relative, {}).get("local") != stat
        ]
        changed.sort(
            key=lambda r: (PUSHED_LAST.index(r) if r in PUSHED_LAST else -1, r)
        )
        for relative in changed:
            self._upload(relative)
        gfile = tf.io.gfile
        for relative in sorted(set(self.copied) - set(local)):
            with contextlib.suppress(OSError, tf.errors.NotFoundError):
                gfile.remove(self.remote(relative))
            del self.copied[relative]
        self._write_manifest()

    def release(self) -> None:
        """Removes the URL's lock if this process holds it (else nothing)."""
        if self._heartbeat is not None:
            self._stop_heartbeat.set()
            self._heartbeat.join()  # a beat being written ends first
            self._heartbeat = None
        token, self.lock_token = self.lock_token, None
        if token is None:
            return
        holder = self._read_lock()
        if holder is not None and holder.get("token") == token:
            with contextlib.suppress(OSError, tf.errors.NotFoundError):
                tf.io.gfile.remove(self.remote(LOCK))

    def _upload(self, relative: str) -> None:
        path = os.path.join(self.local, relative)
        stat = _stat(path)
        final = self.remote(relative)
        _replace(final, lambda temporary: tf.io.gfile.copy(path, temporary))
        self.copied[relative] = {"local": stat, "remote": _remote_stat(final)}

    def _remove_temporaries(self) -> None:
        """Removes what killed pushes left at the URL (temporary names)."""
        for directory, _, names in tf.io.gfile.walk(self.url):
            for name in names:
                if TEMPORARY_NAME.fullmatch(name):
                    with contextlib.suppress(OSError, tf.errors.NotFoundError):
                        tf.io.gfile.remove(f"{directory.rstrip('/')}/{name}")

    def _refuse_foreign_entries(self) -> None:
        gfile = tf.io.gfile
        if not gfile.exists(self.url):
            return
        if not gfile.isdir(self.url):
            raise ValueError(
                f"`output` should be a folder. Received: output={self.url!r}, "
                "which is a file"
            )
        entries = sorted(e.rstrip("/") for e in gfile.listdir(self.url))
        allowed = RUN_ENTRIES if "config.json" in entries else {LOCK}
        foreign = [e for e in entries if e not in allowed]
        if "config.json" in entries and "checkpoints" in entries:
            foreign += [
                f"checkpoints/{e}"
                for e in sorted(gfile.listdir(self.remote("checkpoints")))
                if not CHECKPOINT_NAME.fullmatch(e.rstrip("/"))
            ]
        foreign = [e for e in foreign if not TEMPORARY_NAME.fullmatch(e.split("/")[-1])]
        if foreign:
            shown = ", ".join(repr(e) for e in foreign[:3])
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise ValueError(
                "`output` should be a new or empty folder, or a run folder. "
                f"Received: output={self.url!r}, which holds {shown}{more} that "
                "no run wrote; choose another --output."
            )

    def _acquire_lock(self) -> None:
        holder = self._read_lock()
        if holder is not None and _lock_is_live(holder):
            age = time.time() - holder["time"]
            raise ValueError(
                f"The run folder is being written by process {holder['pid']} on "
                f"{holder['host']} (its lock was refreshed {age:.0f} s ago; one "
                f"not refreshed for {STALE_LOCK_SECONDS:.0f} s is taken over): "
                f"wait for it, or remove {self.remote(LOCK)} if that run is "
                f"gone. Received: output={self.url!r}"
            )
        self.lock_token = uuid.uuid4().hex
        self._write_lock()
        # No exclusive creation on an object store: two runs starting in the
        # same instant may both write; the later one's lock is the one read.
        if (self._read_lock() or {}).get("token") != self.lock_token:
            self.lock_token = None
            raise ValueError(
                f"Another run took the lock {self.remote(LOCK)} at the same "
                f"time. Received: output={self.url!r}"
            )
        self._stop_heartbeat.clear()
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"lock of {self.url}", daemon=True
        )
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop_heartbeat.wait(HEARTBEAT_SECONDS):
            # A missed beat is not an error of the run: its next push reports
            # a store that fails, and ten beats must fail to make it stale.
            with contextlib.suppress(Exception):
                self._write_lock()

    def _write_lock(self) -> None:
        holder = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "time": time.time(),
            "token": self.lock_token,
        }

        def write(temporary: str) -> None:
            with tf.io.gfile.GFile(temporary, "w") as f:
                f.write(json.dumps(holder))

        _replace(self.remote(LOCK), write)

    def _read_lock(self) -> dict[str, Any] | None:
        """The lock's holder; `None` without a lock, or a damaged one."""
        try:
            with tf.io.gfile.GFile(self.remote(LOCK), "r") as f:
                holder = json.loads(f.read(4096))
            return {
                **holder,
                "pid": int(holder["pid"]),
                "host": str(holder["host"]),
                "time": float(holder["time"]),
            }
        except (OSError, ValueError, KeyError, TypeError, tf.errors.NotFoundError):
            return None

    def remote_size(self) -> int:
        """The bytes of the run's files at the URL."""
        return sum(size for size, _ in self._remote_files().values())

    def _remote_files(self) -> dict[str, list[int]]:
        """`{relative path: [size, modification time]}` of the run's files."""
        files = {}
        for directory, _, names in tf.io.gfile.walk(self.url):
            inside = directory.rstrip("/")[len(self.url) + 1 :]
            for name in names:
                relative = f"{inside}/{name}" if inside else name
                if name != LOCK and not TEMPORARY_NAME.fullmatch(name):
                    files[relative] = _remote_stat(self.remote(relative))
        return files

    def _read_manifest(self) -> dict[str, dict[str, list[int]]]:
        # Our own cache: a damaged or foreign record only means copying again.
        try:
            with open(os.path.join(self.staging, MANIFEST), encoding="utf-8") as f:
                manifest = json.load(f)
            files = manifest.get("files") if manifest.get("url") == self.url else {}
            return {
                name: record
                for name, record in files.items()
                if isinstance(record, dict)
            }
        except (OSError, ValueError, AttributeError):
            return {}

    def _write_manifest(self) -> None:
        text = json.dumps({"url": self.url, "files": self.copied}, sort_keys=True)

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)

        write_atomically(os.path.join(self.staging, MANIFEST), write)


def local_copy(path: str | os.PathLike) -> str:
    """A local copy of a run's `.keras` file at a URL, with its `classes.json`.

    The file is copied into `$KERAS_HOME/keras_alexnet/runs/read-<sha256>/`
    with the run folder's `classes.json` where `run_classes_file` looks for
    it (beside the file, or one level up for `checkpoints/`). A local path is
    returned as it is.
    """
    if not is_url(path):
        return os.fspath(path)
    gfile = tf.io.gfile
    url = str(os.fspath(path))
    if not gfile.exists(url) or gfile.isdir(url):
        raise ValueError(f"`weights` should be a file. Received: weights={url!r}")
    parent, name = url.rsplit("/", 1)
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    folder = os.path.join(os.path.dirname(staging_folder(url)), f"read-{digest}")
    target = os.path.join(folder, name)
    classes = f"{parent}/classes.json"
    if not gfile.exists(classes) and "/" in parent.split("://", 1)[1]:
        grandparent, directory = parent.rsplit("/", 1)
        classes = f"{grandparent}/classes.json"
        target = os.path.join(folder, directory, name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    _download(url, target)
    local_classes = os.path.join(folder, "classes.json")
    if gfile.exists(classes):
        _download(classes, local_classes)
    elif os.path.exists(local_classes):
        os.remove(local_classes)  # an earlier read's: not this file's names
    return target


def _download(url: str, path: str) -> None:
    """Copies `url` to the local `path` atomically: another process reading
    the same URL never sees half a file."""
    write_atomically(path, lambda tmp: tf.io.gfile.copy(url, tmp, overwrite=True))


def _replace(url: str, write: Any) -> None:
    """Calls `write(temporary)` on a new temporary name beside `url`, then
    renames it over `url`: some file systems append to a file opened again
    for writing (TensorFlow's `ram://`), and a reader never sees half a file."""
    gfile = tf.io.gfile
    directory, name = url.rsplit("/", 1)
    gfile.makedirs(directory)
    # A temporary name a run folder tolerates (`TEMPORARY_NAME`).
    temporary = f"{directory}/.tmp-{uuid.uuid4().hex[:8]}-{name}"
    try:
        write(temporary)
        gfile.rename(temporary, url, overwrite=True)
    except BaseException:
        with contextlib.suppress(Exception):
            gfile.remove(temporary)
        raise


def _lock_is_live(holder: dict[str, Any]) -> bool:
    if holder["host"] == socket.gethostname():
        return process_alive(holder)
    return time.time() - holder["time"] < STALE_LOCK_SECONDS


def _local_files(root: str) -> dict[str, list[int]]:
    """`{relative path: [size, modification time]}` of the working copy,
    without its lock and temporary files."""
    files = {}
    for directory, _, names in os.walk(root):
        for name in names:
            if name == LOCK or TEMPORARY_NAME.fullmatch(name):
                continue
            path = os.path.join(directory, name)
            files[os.path.relpath(path, root).replace(os.sep, "/")] = _stat(path)
    return files


def _stat(path: str) -> list[int]:
    info = os.stat(path)
    return [info.st_size, info.st_mtime_ns]


def _remote_stat(url: str) -> list[int]:
    info = tf.io.gfile.stat(url)
    return [int(info.length), int(info.mtime_nsec)]
