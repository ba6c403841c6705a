"""`prepare.json`: what `prepare_imagenet` wrote, read back checked.

The manifest names the shards, the classes and the settings, and records each
shard's size and SHA-256 as written. Every field is checked for type and range
when it is read, so that a damaged manifest is refused naming the field,
before its numbers reach a reader.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import tensorflow as tf

from keras_alexnet.data import storage

__all__ = [
    "FORMAT",
    "MANIFEST",
    "complete_manifest",
    "read_manifest",
    "shard_counts",
    "write_manifest",
]

MANIFEST = "prepare.json"
FORMAT = "keras_alexnet.prepared_imagenet/1"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def shard_counts(manifest: dict[str, Any]) -> list[int]:
    """The number of records of each shard: `shard_size`, the last one fewer."""
    images, shard_size = manifest["images"], manifest["shard_size"]
    return [
        min(shard_size, images - index * shard_size)
        for index in range(len(manifest["shards"]))
    ]


def complete_manifest(root: str, source: Any) -> dict[str, Any]:
    """The manifest of a folder `prepare_imagenet` finished; else a `ValueError`."""
    manifest = read_manifest(root)
    if manifest is None or not manifest.get("complete"):
        raise ValueError(
            f"{root} was not fully prepared: run prepare_imagenet (or "
            "`keras-alexnet prepare`) again with the same arguments to finish it. "
            f"Received: source={os.fspath(source)!r}"
        )
    return manifest


def read_manifest(root: str, missing_ok: bool = False) -> dict[str, Any] | None:
    """The checked manifest of `root` (`None` if missing and `missing_ok`).

    Raises:
        ValueError: it cannot be read, or a field is damaged; naming the file
            and the field.
    """
    path = storage.join(root, MANIFEST)
    if missing_ok and not storage.exists(path):
        return None
    try:
        with storage.open_read(path, "r") as file:
            manifest = json.load(file)
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read the manifest {path}: {error}") from error
    except tf.errors.OpError as error:  # a URL that cannot be read
        raise ValueError(f"Cannot read the manifest {path}: {error.message}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a keras-alexnet prepare manifest.")
    problem = _manifest_problem(manifest)
    if problem is not None:
        raise ValueError(f"{path} is damaged: {problem}")
    return manifest


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with the fields of a manifest, or `None`."""

    def integer(name: str, low: int, high: int | None = None) -> str | None:
        value = manifest.get(name)
        if type(value) is not int or value < low or (high is not None and value > high):
            expected = f">= {low}" if high is None else f"from {low} to {high}"
            return (
                f"`{name}` should be an integer {expected}. Received: {name}={value!r}"
            )
        return None

    for name, low, high in (
        ("images", 1, None),
        ("shard_size", 1, None),
        # Older versions allowed sizes up to 65536.
        ("resize_size", 1, 1 << 16),
        ("quality", 1, 100),
    ):
        problem = integer(name, low, high)
        if problem is not None:
            return problem
    shards, names = manifest.get("shards"), manifest.get("class_names")
    # Shards are files of this folder: no path may lead out of it.
    if not isinstance(shards, list) or not all(
        isinstance(name, str)
        and name == os.path.basename(name)
        and name not in ("", ".", "..")
        for name in shards
    ):
        return (
            f"`shards` should be a list of file names. Received: shards={shards!r:.200}"
        )
    expected = math.ceil(manifest["images"] / manifest["shard_size"])
    if len(shards) != expected:
        return (
            f"`shards` should name {expected} files for {manifest['images']} images "
            f"of {manifest['shard_size']} a shard. Received: {len(shards)} shards"
        )
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(name, str) for name in names)
        or len(set(names)) != len(names)
    ):
        return (
            "`class_names` should be a list of distinct strings. Received: "
            f"class_names={names!r:.200}"
        )
    complete = manifest.get("complete", False)
    for name, valid in (
        ("shard_bytes", lambda size: type(size) is int and size >= 0),
        (
            "shard_sha256",
            lambda digest: isinstance(digest, str) and _SHA256.fullmatch(digest),
        ),
    ):
        values = manifest.get(name)
        if values is None:
            continue  # older versions
        if (
            not isinstance(values, list)
            or len(values) != len(shards)
            or not all(
                valid(value) or (value is None and not complete) for value in values
            )
        ):
            return (
                f"`{name}` should hold one entry a shard. Received: "
                f"{name}={values!r:.200}"
            )
    skipped = manifest.get("skipped_files", [])
    if not isinstance(skipped, list) or not all(
        isinstance(item, list)
        and len(item) == 2
        and all(isinstance(part, str) for part in item)
        for item in skipped
    ):
        return (
            "`skipped_files` should be a list of [path, reason] pairs. Received: "
            f"skipped_files={skipped!r:.200}"
        )
    return None


def write_manifest(path: str, value: dict[str, Any]) -> None:
    """Writes `value` to `path` atomically (a temporary file renamed into place)."""
    storage.write_text_atomic(path, json.dumps(value, indent=1))
