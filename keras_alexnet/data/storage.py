"""File access for data paths: the OS for local paths, `tf.io.gfile` for URLs.

Failures of either are `OSError`s (a URL's name the path); a file opened with
`open_read` may still raise TensorFlow's errors while it is read.

A URL (`gs://bucket/imagenet`, `hdfs://...`, `s3://...` with a TensorFlow
file-system plugin, or TensorFlow's in-memory `ram://`) is read through
`tf.io.gfile`; a local path through the OS exactly as before, so that its
symbolic-link and FIFO rules and its messages stay the same. Object stores
have no links, FIFOs or devices: what they list is a folder or a file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from typing import IO, Any

import tensorflow as tf

__all__ = [
    "UrlEntry",
    "absolute",
    "exists",
    "expand",
    "getsize",
    "is_url",
    "isdir",
    "isfile",
    "join",
    "makedirs",
    "open_read",
    "remove",
    "replace",
    "scandir",
    "walk",
    "write_text_atomic",
]

# `scheme://`, as RFC 3986 spells a scheme; a Windows drive (`C:\`) is not one.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


@contextlib.contextmanager
def _os_errors(path: str) -> Iterator[None]:
    """Raises TensorFlow's file errors as `OSError`s naming `path`, as the OS's are."""
    try:
        yield
    except tf.errors.NotFoundError as error:
        # Some file systems (ram://) leave the message empty.
        message = error.message or "No such file or directory"
        raise FileNotFoundError(_naming(message, path)) from None
    except tf.errors.OpError as error:
        raise OSError(_naming(error.message, path)) from None


def _naming(message: str, path: str) -> str:
    return message if path in message else f"{message}: {path}"


def is_url(path: Any) -> bool:
    """Whether `path` is a URL (`gs://...`), read through `tf.io.gfile`."""
    if not isinstance(path, (str, os.PathLike)):
        return False
    return _URL.match(str(os.fspath(path))) is not None


def expand(path: str | os.PathLike) -> str:
    """`path` as text with `~` expanded; a URL as it is."""
    path = os.fspath(path)
    return path if is_url(path) else os.path.expanduser(path)


def absolute(path: str) -> str:
    """`path` with `~` expanded and made absolute; a URL as it is."""
    if is_url(path):
        return path
    return os.path.abspath(os.path.expanduser(path))


def join(path: str, *names: str) -> str:
    """Joins names to a folder path (with `/` for a URL)."""
    if is_url(path):
        return posixpath.join(path, *names)
    return os.path.join(path, *names)


def exists(path: str) -> bool:
    """Whether `path` exists (a local link is followed)."""
    if is_url(path):
        with _os_errors(path):
            return tf.io.gfile.exists(path)
    return os.path.exists(path)


def isdir(path: str) -> bool:
    """Whether `path` is a folder (a local link to one counts)."""
    if is_url(path):
        with _os_errors(path):
            # `exists` raises for an unknown scheme or missing credentials,
            # where `isdir` would answer False.
            return tf.io.gfile.exists(path) and tf.io.gfile.isdir(path)
    return os.path.isdir(path)


def isfile(path: str) -> bool:
    """Whether `path` is a file (a local link to one counts)."""
    if is_url(path):
        with _os_errors(path):
            return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)
    return os.path.isfile(path)


def getsize(path: str) -> int:
    """The size of a file in bytes."""
    if is_url(path):
        with _os_errors(path):
            return tf.io.gfile.stat(path).length
    return os.path.getsize(path)


def open_read(path: str, mode: str = "rb") -> IO[Any]:
    """Opens a file for reading (`"rb"` or `"r"`, UTF-8)."""
    if is_url(path):
        return tf.io.gfile.GFile(path, mode)
    if "b" in mode:
        return open(path, mode)
    return open(path, mode, encoding="utf-8")


def makedirs(path: str) -> None:
    """Creates a folder and its parents; an existing folder is fine."""
    if is_url(path):
        with _os_errors(path):
            tf.io.gfile.makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def remove(path: str) -> None:
    """Deletes a file."""
    if is_url(path):
        with _os_errors(path):
            tf.io.gfile.remove(path)
    else:
        os.remove(path)


def replace(source: str, target: str) -> None:
    """Renames `source` to `target`, replacing it (atomic on a local disk)."""
    if is_url(target):
        with _os_errors(target):
            tf.io.gfile.rename(source, target, overwrite=True)
    else:
        os.replace(source, target)


def write_text_atomic(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file renamed into place."""
    temporary = path + ".tmp"
    if is_url(path):
        with _os_errors(path), tf.io.gfile.GFile(temporary, "w") as file:
            file.write(text)
    else:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
    replace(temporary, path)


@dataclasses.dataclass(frozen=True)
class _UrlStat:
    st_mode: int


@dataclasses.dataclass(frozen=True)
class UrlEntry:
    """A listed name of a URL folder, shaped like `os.DirEntry` (no links)."""

    name: str
    path: str
    folder: bool

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        del follow_symlinks  # nothing to follow
        return self.folder

    def is_symlink(self) -> bool:
        return False

    def stat(self, *, follow_symlinks: bool = True) -> _UrlStat:
        del follow_symlinks
        return _UrlStat(stat.S_IFDIR if self.folder else stat.S_IFREG)


def scandir(path: str) -> list[Any]:
    """The entries of a folder, unsorted: `os.DirEntry`s, or `UrlEntry`s for a URL.

    Raises:
        OSError: the folder cannot be listed.
    """
    if not is_url(path):
        with os.scandir(path) as scan:
            return list(scan)
    entries: list[Any] = []
    with _os_errors(path):
        for name in tf.io.gfile.listdir(path):
            # Object stores mark folders ("prefixes") with a trailing slash.
            folder = name.endswith("/")
            name = name.rstrip("/")
            child = posixpath.join(path, name)
            entries.append(UrlEntry(name, child, folder or tf.io.gfile.isdir(child)))
    return entries


def walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """`os.walk(top)` for a local path (links to folders not followed), else
    `tf.io.gfile.walk(top)`."""
    if is_url(top):
        with _os_errors(top):
            for folder, subfolders, files in tf.io.gfile.walk(top):
                yield folder, [name.rstrip("/") for name in subfolders], list(files)
    else:
        yield from os.walk(top)
