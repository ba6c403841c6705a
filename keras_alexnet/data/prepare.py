"""ImageNet stored once at 256 pixels, as the paper did, in TFRecord shards.

`prepare_imagenet` writes the shards (resumably: each is renamed into place
when complete, and `prepare.json` records what is done); `imagenet_dataset`
reads them back through `prepared_records`. docs/data.md says what it saves.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet._bounds import MAX_RESIZE_SIZE, MAX_SHARD_SIZE
from keras_alexnet._validation import check_int, check_path
from keras_alexnet.data import storage
from keras_alexnet.data.folders import checked_class_names, list_image_folder
from keras_alexnet.data.image_checks import guarded_image_bytes
from keras_alexnet.data.prepared_manifest import (
    FORMAT,
    MANIFEST,
    complete_manifest,
    read_manifest,
    shard_counts,
    write_manifest,
)

__all__ = [
    "MANIFEST",
    "is_prepared",
    "prepare_imagenet",
    "prepared_class_names",
    "prepared_records",
    "verify_prepared",
]

# Shards are hashed in blocks of this many bytes.
_HASH_BLOCK = 1 << 20
_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def prepare_imagenet(
    source: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    labels_file: str | os.PathLike | None = None,
    resize_size: int = 256,
    shard_size: int = 1024,
    quality: int = 90,
    seed: int = 0,
    check_files: str | None = "header",
    verbose: int = 1,
) -> dict[str, Any]:
    """Rescales an image folder to `resize_size` pixels once, into TFRecord shards.

    Every image's shorter side becomes `resize_size` (bilinear, aspect ratio
    kept; smaller images are enlarged, as the paper's were), it is re-encoded as
    a JPEG of `quality`, and written with its label into
    `output_dir/shard-XXXXX-of-YYYYY.tfrecord`, `shard_size` images per shard,
    in an order shuffled once with `seed` so that every shard mixes the classes.
    Unreadable images are left out and listed in the manifest.

    Args:
        source: an ImageNet-style folder (`root/<wnid>/*.JPEG`, or a flat folder
            with `labels_file`), as for `imagenet_dataset`; a path or a URL.
        output_dir: the folder for the shards and `prepare.json` (a path, or a
            URL `tf.io.gfile` writes, such as `gs://bucket/imagenet256`), outside
            `source`: a new or empty folder (created if missing), or one this
            function started. Rerunning with the same arguments resumes,
            and checks the shards already written against their recorded
            size and SHA-256, writing a damaged one again (with a warning).
        labels_file: the labels of a flat folder.
        resize_size: the shorter side of the stored images.
        shard_size: images per shard.
        quality: the JPEG quality of the stored images, 1 to 100 (see
            docs/performance.md for 90 against 95).
        seed: the seed of the order of the images in the shards.
        check_files: how files are checked before the work starts,
            `"header"`, `"decode"` or `None` (see `list_image_folder`).
        verbose: 1 shows a progress bar, 0 nothing.

    Returns:
        The manifest written to `output_dir/prepare.json`: the shard names, the
        class names, the image count, the settings and the skipped files.

    Raises:
        ValueError: an argument out of range, an output folder inside `source`
            or holding other files or settings, no readable image, or (with
            `check_files=None`) an image that cannot be decoded or declares
            more than `DEFAULT_MAX_PIXELS` pixels, named.
        TypeError: `source` or `output_dir` is not a path of text.

    Example:

        prepare_imagenet("~/ILSVRC2012/train", "~/imagenet256/train")
        train = imagenet_dataset("train", source="~/imagenet256/train")
    """
    for name, value, low, high in (
        ("resize_size", resize_size, 1, MAX_RESIZE_SIZE),
        ("shard_size", shard_size, 1, MAX_SHARD_SIZE),
        ("quality", quality, 1, 100),
        ("seed", seed, 0, 1 << 62),
    ):
        check_int(name, value, minimum=low, maximum=high)
    check_int("verbose", verbose, minimum=0, maximum=1)
    output_dir = storage.expand(check_path("output_dir", output_dir))
    _check_output_dir(storage.expand(check_path("source", source)), output_dir)
    folder = list_image_folder(
        source, labels_file=labels_file, on_error="skip", check_files=check_files
    )
    if not folder.files:
        raise ValueError(
            f"No readable images in the folder. Received: source={source!r}"
        )
    order = np.random.default_rng(seed).permutation(len(folder.files))
    files = [folder.files[i] for i in order]
    labels = [int(folder.labels[i]) for i in order]
    shard_count = -(-len(files) // shard_size)
    shards = [
        f"shard-{index:05d}-of-{shard_count:05d}.tfrecord"
        for index in range(shard_count)
    ]
    plan = hashlib.sha256(
        json.dumps(
            [files, labels, resize_size, shard_size, quality], ensure_ascii=False
        ).encode()
    ).hexdigest()
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "plan": plan,
        "resize_size": resize_size,
        "quality": quality,
        "shard_size": shard_size,
        "images": len(files),
        "class_names": list(folder.class_names),
        "shards": shards,
        "skipped_files": [list(item) for item in folder.skipped],
    }
    storage.makedirs(output_dir)
    existing = read_manifest(output_dir, missing_ok=True)
    if existing is not None and existing.get("plan") != plan:
        changed = [
            f"{name}={existing[name]!r} there, {manifest[name]!r} here"
            for name in ("resize_size", "quality", "shard_size", "images")
            if name in existing and existing[name] != manifest[name]
        ]
        raise ValueError(
            f"{output_dir} holds shards prepared from other files or settings"
            f"{' (' + '; '.join(changed) + ')' if changed else ''}; "
            "pass an empty folder, or the same arguments to resume. "
            f"Received: output_dir={output_dir!r}"
        )
    # Each shard's size and SHA-256 as written: a rerun checks the shards
    # against them (and rewrites a damaged one), readers check the sizes.
    # Shards written by an older version, without a digest, are checked by
    # reading every record (TFRecord's own CRCs) and counting them.
    known = _written_shards(existing, shards)
    manifest["shard_bytes"] = [known.get(shard, (None, None))[0] for shard in shards]
    manifest["shard_sha256"] = [known.get(shard, (None, None))[1] for shard in shards]
    manifest_path = storage.join(output_dir, MANIFEST)
    # The manifest first: a resumed run checks its plan against it.
    write_manifest(manifest_path, {**manifest, "complete": False})

    progress = keras.utils.Progbar(len(files), unit_name="image") if verbose else None
    for index, shard in enumerate(shards):
        start, stop = index * shard_size, min((index + 1) * shard_size, len(files))
        path = storage.join(output_dir, shard)
        if storage.exists(path):
            size, digest = known.get(shard, (None, None))
            problem = _shard_problem(path, stop - start, size, digest)
            if problem is None:
                # Intact: an older version's shard gets its digest now.
                manifest["shard_bytes"][index] = storage.getsize(path)
                manifest["shard_sha256"][index] = digest or _sha256(path)
            else:
                warnings.warn(
                    f"The prepared shard {path} is damaged ({problem}): "
                    "it is written again.",
                    stacklevel=2,
                )
                storage.remove(path)
        if not storage.exists(path):
            _write_shard(
                path, files[start:stop], labels[start:stop], resize_size, quality
            )
            manifest["shard_bytes"][index] = storage.getsize(path)
            manifest["shard_sha256"][index] = _sha256(path)
            write_manifest(manifest_path, {**manifest, "complete": False})
        if progress is not None:
            progress.update(stop)
    write_manifest(manifest_path, {**manifest, "complete": True})
    return manifest


def verify_prepared(source: str | os.PathLike) -> None:
    """Checks every shard of a prepared folder against its recorded digest.

    Reading a prepared folder checks only the shards' sizes; this reads them
    whole (as a rerun of `prepare_imagenet` does, which also rewrites the
    damaged ones). Shards recorded without a digest (by an older version) are
    checked by reading every record and counting them.

    Args:
        source: a folder written by `prepare_imagenet` (a path or a URL).

    Raises:
        ValueError: the folder is not fully prepared, its `prepare.json` is
            damaged, or a shard is damaged; the message names the file.
        FileNotFoundError: a shard is missing.
    """
    root = storage.expand(source)
    manifest = complete_manifest(root, source)
    counts = shard_counts(manifest)
    sizes = manifest.get("shard_bytes") or [None] * len(counts)
    digests = manifest.get("shard_sha256") or [None] * len(counts)
    for shard, count, size, digest in zip(
        manifest["shards"], counts, sizes, digests, strict=True
    ):
        path = storage.join(root, shard)
        if not storage.isfile(path):
            raise FileNotFoundError(f"Prepared shard missing: {path}")
        problem = _shard_problem(path, count, size, digest)
        if problem is not None:
            raise ValueError(
                f"The prepared shard {path} is damaged ({problem}). Run "
                "prepare_imagenet (or `keras-alexnet prepare`) again with the same "
                "arguments to rewrite it."
            )


def _written_shards(
    existing: dict[str, Any] | None, shards: list[str]
) -> dict[str, tuple[int | None, str | None]]:
    """`{shard: (bytes, sha256)}` recorded by an earlier run of the same plan."""
    if existing is None:
        return {}
    sizes = existing.get("shard_bytes") or []
    digests = existing.get("shard_sha256") or []
    known = {}
    for index, shard in enumerate(existing["shards"]):
        size = sizes[index] if index < len(sizes) else None
        digest = digests[index] if index < len(digests) else None
        if shard in shards:
            known[shard] = (size, digest)
    return known


def _shard_problem(
    path: str, count: int, size: int | None, digest: str | None
) -> str | None:
    """What is wrong with a written shard, or `None`."""
    actual = storage.getsize(path)
    if size is not None and actual != size:
        return f"{actual} bytes where {size} were written"
    if digest is not None:
        if _sha256(path) != digest:
            return "its SHA-256 differs from the one recorded in prepare.json"
        return None
    # No digest recorded: TFRecord's CRCs, and the number of records.
    read = 0
    try:
        for _ in tf.data.TFRecordDataset(path):
            read += 1
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as error:
        return f"record {read} does not read back ({error.message.strip()})"
    if read != count:
        return f"{read} records where {count} were written"
    return None


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with storage.open_read(path) as file:
        for block in iter(lambda: file.read(_HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_output_dir(source: str, output_dir: str) -> None:
    """Refuses an `output_dir` that would mix shards with other files.

    A folder holding `prepare.json` is read as prepared, so shards written
    into the images' folder (or into another image folder) would silently
    change what that folder means to `imagenet_dataset`.
    """
    if storage.exists(output_dir) and not storage.isdir(output_dir):
        raise NotADirectoryError(
            f"`output_dir` should be a folder. Received: output_dir={output_dir!r}"
        )
    if _is_inside(output_dir, source):
        raise ValueError(
            "`output_dir` should be outside `source`: the shards would be written "
            f"among the images. Received: source={source!r}, output_dir={output_dir!r}"
        )
    if storage.isdir(output_dir) and not storage.isfile(
        storage.join(output_dir, MANIFEST)
    ):
        name = _first_name(output_dir)
        if name is not None:
            raise ValueError(
                "`output_dir` should be a new or empty folder, or one that "
                f"prepare_imagenet started (to resume it); {output_dir} holds "
                f"other files ({name!r}). Received: output_dir={output_dir!r}"
            )


def _is_inside(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or below it (links resolved on a local disk)."""
    if storage.is_url(path) or storage.is_url(folder):
        # Different schemes never overlap; a URL has no links to resolve.
        path, folder = path.rstrip("/"), folder.rstrip("/")
        return path == folder or path.startswith(folder + "/")
    real_folder, real_path = os.path.realpath(folder), os.path.realpath(path)
    return os.path.commonpath([real_folder, real_path]) == real_folder


def _first_name(folder: str) -> str | None:
    """The name of one entry of `folder`, or `None` if it is empty."""
    if storage.is_url(folder):
        names = tf.io.gfile.listdir(folder)
        return names[0] if names else None
    with os.scandir(folder) as entries:  # one entry, however many
        entry = next(entries, None)
    return None if entry is None else entry.name


def _write_shard(
    path: str, files: list[str], labels: list[int], resize_size: int, quality: int
) -> None:
    def resized(file, label):
        # The pixel limit and the first frame only, as for every image read.
        contents = guarded_image_bytes(tf.io.read_file(file))
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = resize_size / tf.reduce_min(shape)
        size = tf.cast(tf.round(shape * scale), tf.int32)
        image = tf.image.resize(image, tf.maximum(size, 1), antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        return tf.io.encode_jpeg(image, quality=quality), label

    dataset = tf.data.Dataset.from_tensor_slices((files, np.asarray(labels, np.int64)))
    # In order (the default): a failure belongs to the file at its position.
    dataset = dataset.map(resized, num_parallel_calls=tf.data.AUTOTUNE)
    temporary = path + ".tmp"
    written = 0
    try:
        with tf.io.TFRecordWriter(temporary) as writer:
            for encoded, label in dataset:
                example = tf.train.Example(
                    features=tf.train.Features(
                        feature={
                            "image": tf.train.Feature(
                                bytes_list=tf.train.BytesList(value=[encoded.numpy()])
                            ),
                            "label": tf.train.Feature(
                                int64_list=tf.train.Int64List(value=[int(label)])
                            ),
                        }
                    )
                )
                writer.write(example.SerializeToString())
                written += 1
    except tf.errors.OpError as error:
        storage.remove(temporary)
        raise ValueError(
            f"Cannot prepare {files[written]!r}: {_reason(error)}"
        ) from None
    storage.replace(temporary, path)


def _reason(error: tf.errors.OpError) -> str:
    """The reason of a TensorFlow op error, without its graph's frames."""
    message = error.message.split("[Op:")[0]
    if "assertion failed: [" in message:  # a guard's own message
        return message.split("assertion failed: [", 1)[1].split("]", 1)[0]
    return message.split("}}")[-1].strip().splitlines()[0]


def is_prepared(source: Any) -> bool:
    """Whether `source` is a folder written by `prepare_imagenet`."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    return storage.isfile(storage.join(storage.expand(source), MANIFEST))


def prepared_class_names(source: str | os.PathLike) -> tuple[str, ...]:
    """The classes of a folder written by `prepare_imagenet`, in label order."""
    manifest = read_manifest(storage.expand(source))
    assert manifest is not None  # _read_manifest raises when it is missing
    return tuple(manifest["class_names"])


def prepared_records(
    source: str | os.PathLike,
    shuffle_files: bool,
    seed: int | None,
    class_names: Sequence[str] | None = None,
    shard: tuple[int, int] | None = None,
) -> tuple[tf.data.Dataset, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Returns `(dataset of (jpeg_bytes, label), class_names, skipped)`.

    With `class_names`, labels are indices into it, as for a folder source:
    every prepared class must be one of them (a validation folder may lack
    some), and the stored labels are mapped to their positions. With `shard`
    `(num_shards, index)`, a worker of a multi-worker run reads every
    `num_shards`-th shard file from `index` (in the epoch's file order), and
    as many images on every worker (`shard_images`).
    """
    root = storage.expand(source)
    manifest = complete_manifest(root, source)
    paths = [storage.join(root, shard) for shard in manifest["shards"]]
    missing = [path for path in paths if not storage.isfile(path)]
    if missing:
        raise FileNotFoundError(f"Prepared shard missing: {missing[0]}")
    # The sizes only: the digests cost a read of every shard (verify_prepared).
    for path, expected in zip(paths, manifest.get("shard_bytes") or [], strict=False):
        size = storage.getsize(path)
        if size != expected:
            raise ValueError(
                f"The prepared shard {path} is damaged: {size} bytes where "
                f"prepare_imagenet wrote {expected}. Run prepare_imagenet (or "
                "`keras-alexnet prepare`) again with the same arguments to rewrite it."
            )
    files = tf.data.Dataset.from_tensor_slices(
        (paths, np.asarray(shard_counts(manifest), np.int64))
    )
    if shuffle_files:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    count = int(manifest["images"])
    if shard is not None:
        files = files.shard(*shard)
        count = shard_images(manifest, shard[0], root)
    records = files.interleave(
        _shard_records,
        cycle_length=min(len(paths), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=seed is not None or not shuffle_files,
    )

    stored = tuple(manifest["class_names"])
    names = stored if class_names is None else checked_class_names(class_names)
    unknown = [name for name in stored if name not in names]
    if unknown:
        raise ValueError(
            f"The classes {unknown[:5]} of the prepared folder {root!r} are not "
            f"in `class_names`. Received: class_names={list(names)[:5]}..."
        )
    positions = [names.index(name) for name in stored]
    remap = None
    if positions != list(range(len(stored))):
        remap = tf.constant(positions, tf.int64)

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, _FEATURES)
        label = example["label"]
        return example["image"], label if remap is None else tf.gather(remap, label)

    records = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if shard is not None:
        records = records.take(count)
    # The manifest's count: `fit` and the learning-rate schedules need the
    # epoch's length, and a truncated shard then fails instead of shortening it.
    records = records.apply(tf.data.experimental.assert_cardinality(count))
    skipped = tuple(
        (str(path), str(reason)) for path, reason in manifest.get("skipped_files", [])
    )
    return records, names, skipped


def shard_images(manifest: dict[str, Any], num_shards: int, root: str) -> int:
    """The images every one of `num_shards` workers reads in an epoch.

    Each reads `files // num_shards` or one more shard file, one of them
    perhaps the short last one: the smallest such share.

    Raises:
        ValueError: fewer shard files than workers.
    """
    files, size = len(manifest["shards"]), int(manifest["shard_size"])
    if files < num_shards:
        raise ValueError(
            f"{root} holds {files} shard files for {num_shards} workers: prepare it "
            "again with a smaller `shard_size`, so that every worker reads at least "
            f"one. Received: shard=({num_shards}, ...)"
        )
    last = int(manifest["images"]) - (files - 1) * size
    return (files // num_shards) * size - (size - last)


def _shard_records(path: tf.Tensor, count: tf.Tensor) -> tf.data.Dataset:
    """The records of one shard; an error naming it and the record if damaged.

    TFRecord's CRCs find a damaged record, but its error names no file: the
    damage ends the shard's records here instead (`ignore_errors`), and a mark
    after the last record compares their number with what was written.
    """
    records = tf.data.TFRecordDataset(path).ignore_errors()
    marked = records.map(lambda record: (record, False)).concatenate(
        tf.data.Dataset.from_tensors((tf.constant(b""), True))
    )

    def check(index, item):
        record, is_mark = item
        complete = tf.logical_or(tf.logical_not(is_mark), tf.equal(index, count))
        message = tf.strings.join(
            [
                "The prepared shard ",
                path,
                " is damaged at record ",
                tf.strings.as_string(index),
                " of ",
                tf.strings.as_string(count),
                ": run prepare_imagenet (or `keras-alexnet prepare`) again with "
                "the same arguments to rewrite it",
            ]
        )
        with tf.control_dependencies([tf.debugging.Assert(complete, [message])]):
            return tf.identity(record), is_mark

    return (
        marked.enumerate()
        .map(check)
        .filter(lambda record, is_mark: tf.logical_not(is_mark))
        .map(lambda record, is_mark: record)
    )
