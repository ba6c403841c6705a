"""Fit-ready ImageNet pipelines: `imagenet_dataset` and `evaluate_ten_crop`.

The stages, in order (docs/data.md says why): the arguments, checked as one
config per stage (`keras_alexnet.data.options`); the source, as undecoded
records; cache, shuffle, repeat; one parallel map that reads, decodes, crops,
augments and preprocesses each image, keyed by a per-image random draw; batch,
the user's `preprocessing`, prefetch.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet._validation import check_bool, check_int
from keras_alexnet.data import augment as augment_lib
from keras_alexnet.data.folders import (
    check_same_classes,
    list_image_folder,
    split_image_folder,
)
from keras_alexnet.data.options import (
    AugmentConfig,
    BatchConfig,
    DecodeConfig,
    SourceConfig,
    check_crop_fits,
    default_resize_size,
    is_folder_source,
)
from keras_alexnet.data.prepare import prepared_records
from keras_alexnet.data.tfds import tfds_source
from keras_alexnet.weights.registry import imagenet_checkpoint

# `default_resize_size` is still importable from here, as before the options moved.
__all__ = ["default_resize_size", "evaluate_ten_crop", "imagenet_dataset"]

# runs/datasets.py reads this name; `options.is_folder_source` is the one to import.
_is_folder_source = is_folder_source


def imagenet_dataset(
    split: str,
    *,
    source: str | os.PathLike = "imagenet2012",
    data_dir: str | os.PathLike | None = None,
    manual_dir: str | os.PathLike | None = None,
    labels_file: str | os.PathLike | None = None,
    variant: str | None = "original",
    image_size: int | None = None,
    resize_size: int | None = None,
    augment: str | None = "auto",
    flip: bool = True,
    lighting: bool | float = True,
    scale: tuple[float, float] | None = None,
    preprocessing: Callable[[Any], Any] | None = None,
    class_names: Sequence[str] | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    batch_size: int = 128,
    shuffle: bool | None = None,
    shuffle_buffer: int = 10_000,
    seed: int | None = None,
    cache: bool | str = False,
    repeat: bool = False,
    drop_remainder: bool | None = None,
    label_mode: str = "sparse",
    label_smoothing: float = 0.0,
    num_classes: int | None = None,
    on_error: str = "skip",
    check_files: str | None = "header",
    download: bool = True,
    dtype: str | None = None,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Builds a batched, prefetched ImageNet dataset ready for `model.fit`.

    Yields `(images, labels)`: images `(batch, image_size, image_size, 3)`
    (channels first if `keras.config.image_data_format()` says so; `(batch, 10,
    ...)` for `augment="ten_crop"`), and int32 class indices or float32 one-hot
    rows. docs/data.md describes the presets, sources and checks in full.

    Args:
        split: e.g. `"train"`, `"validation"`, or with TFDS slicing
            `"train[:10%]"`. A name starting with "train" makes `augment`,
            `shuffle` and `drop_remainder` default to training's.
        source: a TFDS image-classification dataset name, the path of an image
            folder (a class tree, or a flat folder with `labels_file`), or a
            folder written by `prepare_imagenet`; a folder may be a URL that
            `tf.io.gfile` reads (`gs://bucket/imagenet256/train`).
        data_dir: TFDS's data directory (TFDS sources).
        manual_dir: the folder of manually downloaded archives (TFDS sources).
        labels_file: the labels of a flat folder (folder sources).
        variant: `"original"` or `"torchvision"`, the checkpoint the images are
            cut, resized and preprocessed for; `None` for RGB pixels in [0, 255].
        image_size: the side of the images; defaults to the variant's input size
            (`keras_alexnet.variants.DEFAULT_IMAGE_SIZE`, 224 for `None`).
        resize_size: the shorter side before cropping; defaults to
            `default_resize_size(image_size, variant)`.
        augment: `"paper"`, `"modern"`, `"center_crop"` (or `None`),
            `"ten_crop"`, or `"auto"`: `"paper"` for training splits, else
            `"center_crop"`.
        flip: whether the training presets mirror images at random.
        lighting: PCA lighting of the paper preset: `True` (alpha ~ N(0, 0.1)),
            `False`, or the standard deviation of alpha.
        scale: `(min, max)` area fraction of the modern preset's random crops;
            defaults to `(0.08, 1.0)`.
        preprocessing: a function or Keras layer applied to each batch of images.
        class_names: the classes in label order; defaults to the source's.
        validation_split: with `subset`, the fraction of each class of a folder
            source held out (`split_image_folder`).
        subset: `"training"` or `"validation"`, the part of `validation_split`.
        batch_size: images per batch.
        shuffle: whether to shuffle; defaults to `True` for training splits.
        shuffle_buffer: elements buffered for shuffling (TFDS, or cached folders).
        seed: makes order and augmentation bit-reproducible.
        cache: `True` caches the encoded images in memory, a string in files
            with that path prefix.
        repeat: repeat forever (then pass `steps_per_epoch` to `fit`).
        drop_remainder: drop the last partial batch; defaults to `True` for
            training splits.
        label_mode: `"sparse"` or `"one_hot"`.
        label_smoothing: `eps` in `y * (1 - eps) + eps / num_classes`; needs
            `label_mode="one_hot"`.
        num_classes: the width of one-hot labels; defaults to the number of
            classes.
        on_error: `"skip"` (unreadable images skipped with a warning) or
            `"raise"` (a `ValueError` naming them, before the first epoch).
        check_files: how folder files are checked before training: `"header"`,
            `"decode"` or `None` (see `list_image_folder`).
        download: whether a TFDS source may be downloaded and prepared.
        dtype: `"float32"` (preprocessed) or `"uint8"` (RGB pixels cut for
            `variant`, for `AlexNet(include_preprocessing=True)`); `None`:
            uint8 for `variant=None`, else float32.
        shard: `(num_shards, index)`: this worker's part of the source in a
            multi-worker run, as many images on every worker and none read by
            two, chosen before anything is decoded. Of a folder: every
            `num_shards`-th of the (shuffled) file names from `index`, so that
            the workers' batches together are one process's batches of
            `num_shards` times the size; of prepared shards: every
            `num_shards`-th shard file; of a TFDS split: its `index`-th part
            of `tfds.even_splits`, read from that part's record files only.
            `batch_size` is then this worker's part of the batch.

    Returns:
        A `tf.data.Dataset` of `(images, labels)` batches, with attributes
        `class_names` and `skipped_files` (the `(path, reason)` pairs a folder
        source left out).

    Raises:
        ValueError: an argument out of range or meant for the other kind of
            source, a missing folder, or, with `on_error="raise"`, unreadable
            files.
        TypeError: an argument of the wrong type.

    Example:

        train = imagenet_dataset("train", manual_dir="~/ILSVRC2012")
        model.fit(train, epochs=90)
    """
    # Every argument checked, as one config per stage, before any file is read.
    sourcing = SourceConfig(
        split,
        source=source,
        data_dir=data_dir,
        manual_dir=manual_dir,
        labels_file=labels_file,
        class_names=class_names,
        validation_split=validation_split,
        subset=subset,
        on_error=on_error,
        check_files=check_files,
        download=download,
        shard=shard,
    )
    decoding = DecodeConfig(
        variant=variant,
        image_size=image_size,
        resize_size=resize_size,
        dtype=dtype,
        label_mode=label_mode,
        label_smoothing=label_smoothing,
        num_classes=num_classes,
    )
    augmentation = AugmentConfig(
        augment=augment,
        flip=flip,
        lighting=lighting,
        scale=scale,
        training=sourcing.training,
    )
    check_crop_fits(decoding, augmentation)
    batching = BatchConfig(
        batch_size=batch_size,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        cache=cache,
        repeat=repeat,
        drop_remainder=drop_remainder,
        preprocessing=preprocessing,
        training=sourcing.training,
    )
    return _pipeline(sourcing, decoding, augmentation, batching)


def _pipeline(
    sourcing: SourceConfig,
    decoding: DecodeConfig,
    augmentation: AugmentConfig,
    batching: BatchConfig,
) -> tf.data.Dataset:
    """Chains the stages of `imagenet_dataset` from its checked configs."""
    # The source: encoded bytes, or paths still to read.
    listed = _list_source(sourcing, batching)
    num_classes = _num_classes(decoding, listed.class_names)
    _check_enough_for_a_batch(sourcing, batching, listed)
    # Cache, shuffle, repeat.
    shard = None if listed.sharded else sourcing.shard
    records, unshuffled, needs_read = _cache_and_shuffle(batching, listed, shard)
    length = _kept_length(sourcing, batching, listed, records)
    if batching.repeat:
        records = records.repeat()
    # Key each element, decode, augment and preprocess it; batch, prefetch.
    element = _element_stage(decoding, augmentation, batching, needs_read, num_classes)
    dataset = _decode_stage(augmentation, batching, element, records, sourcing.shard)
    if sourcing.skips_failures:
        # The last resort for files that passed the listing check (or TFDS records)
        # but still fail to decode: drop them rather than stop the epoch.
        dataset = dataset.ignore_errors(log_warning=True)
        if length:
            spare = _decode_stage(
                augmentation, batching, element, unshuffled, sourcing.shard
            )
            spare = spare.ignore_errors(log_warning=True)
            dataset = dataset.concatenate(spare).take(length)
            # At most `length` good images in two passes; fewer only when more
            # than half the files fail, and then the epoch ends with an error.
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(length))
    dataset = _batch_stage(batching, dataset)
    dataset.class_names = list(listed.class_names)
    dataset.skipped_files = list(listed.skipped)
    return dataset


@dataclasses.dataclass(frozen=True)
class _Listed:
    """What a source holds: records, classes, and what the listing left out."""

    records: tf.data.Dataset
    class_names: Sequence[str]
    skipped: Sequence[tuple[str, str]]
    # The number of files of a folder source (0 for TFDS).
    file_count: int
    # Whether the records are `(path, label)` (folders) rather than encoded bytes.
    needs_read: bool
    # Whether the records are already this worker's shard of the source.
    sharded: bool = False


def _list_source(sourcing: SourceConfig, batching: BatchConfig) -> _Listed:
    """Lists a folder source, or opens a TFDS one, as undecoded records."""
    source, split, class_names = sourcing.source, sourcing.split, sourcing.class_names
    if sourcing.is_prepared:
        # Shards written by prepare_imagenet: JPEG bytes at 256 pixels.
        if sourcing.validation_split is not None:
            raise ValueError(
                f"{os.fspath(source)!r} was written by prepare_imagenet, whose "
                "shards cannot hold out a `validation_split`: prepare the training "
                "and the validation images into two folders. Received: "
                f"validation_split={sourcing.validation_split!r}"
            )
        if sourcing.labels_file is not None:
            raise ValueError(
                f"{os.fspath(source)!r} was written by prepare_imagenet, whose "
                "shards hold their labels: `labels_file` has nothing to label. "
                f"Received: labels_file={os.fspath(sourcing.labels_file)!r}"
            )
        # Sharded by file: a worker reads only its own shard files.
        records, prepared_class_names, skipped = prepared_records(
            source, bool(batching.shuffle), batching.seed, class_names, sourcing.shard
        )
        count = int(records.cardinality())
        return _Listed(records, prepared_class_names, skipped, count, False, True)
    if sourcing.is_folder:
        folder = list_image_folder(
            source,
            labels_file=sourcing.labels_file,
            class_names=class_names,
            on_error=sourcing.on_error,
            check_files=sourcing.check_files,
        )
        if sourcing.validation_split is not None and sourcing.subset is not None:
            folder = split_image_folder(
                folder, sourcing.validation_split, sourcing.subset, seed=batching.seed
            )
        records = tf.data.Dataset.from_tensor_slices(
            (list(folder.files), np.asarray(folder.labels, np.int64))
        )
        return _Listed(
            records, folder.class_names, folder.skipped, len(folder.files), True
        )
    tfds_split = tfds_source(
        os.fspath(source),
        split,
        data_dir=sourcing.data_dir,
        manual_dir=sourcing.manual_dir,
        download=sourcing.download,
        shuffle_files=bool(batching.shuffle),
        seed=batching.seed,
        shard=sourcing.shard,
    )
    if class_names is not None:
        check_same_classes(
            class_names, tfds_split.class_names, where=f"{source!r} ({split})"
        )
    # Sharded by TFDS: a worker reads only the record files of its part.
    return _Listed(
        tfds_split.dataset,
        tfds_split.class_names,
        (),
        0,
        False,
        sharded=sourcing.shard is not None,
    )


def _num_classes(decoding: DecodeConfig, class_names: Sequence[str]) -> int:
    num_classes = decoding.num_classes
    if num_classes is None:
        num_classes = len(class_names)
    elif num_classes < len(class_names):
        raise ValueError(
            f"`num_classes` should be at least the {len(class_names)} classes of the "
            f"source. Received: num_classes={num_classes}"
        )
    return num_classes


def _check_enough_for_a_batch(
    sourcing: SourceConfig, batching: BatchConfig, listed: _Listed
) -> None:
    # With drop_remainder, fewer images than a batch make an empty epoch: `fit`
    # would "train" without a single step and only warn that the data ran out.
    shard = None if listed.sharded else sourcing.shard
    count = listed.file_count // (shard or (1, 0))[0]
    if batching.drop_remainder and 0 < count < batching.batch_size:
        raise ValueError(
            f"`batch_size` ({batching.batch_size}) is larger than the "
            f"{count} images of {sourcing.source!r} ({sourcing.split}), "
            "and incomplete batches are dropped (`drop_remainder`): an epoch "
            "would have no batch. Pass a smaller batch size. Received: "
            f"batch_size={batching.batch_size}"
        )


def _cache_and_shuffle(
    batching: BatchConfig, listed: _Listed, shard: tuple[int, int] | None
) -> tuple[tf.data.Dataset, tf.data.Dataset, bool]:
    """Caches, shuffles and shards the records: `(records, unshuffled, needs_read)`.

    A shard is taken after the shuffle (every worker shuffles all names the
    same way, so that an epoch's global batches are one process's), or before
    a cache (a worker caches only its own images).
    """
    records, needs_read = listed.records, listed.needs_read
    total = listed.file_count if needs_read else int(records.cardinality())
    if batching.cache is not False:
        records = _take_shard(records, shard, total)
        shard = None
        if needs_read:
            records = records.map(
                lambda path, label: (tf.io.read_file(path), label),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
            needs_read = False
        records = records.cache("" if batching.cache is True else batching.cache)
    unshuffled = _take_shard(records, shard, total)
    if batching.shuffle:
        # Without a cache a folder yields file names: shuffling all of them is cheap.
        buffer = listed.file_count if needs_read else batching.shuffle_buffer
        records = records.shuffle(
            buffer, seed=batching.seed, reshuffle_each_iteration=True
        )
    return _take_shard(records, shard, total), unshuffled, needs_read


def _take_shard(
    records: tf.data.Dataset, shard: tuple[int, int] | None, total: int
) -> tf.data.Dataset:
    """Every `num_shards`-th record from `index`, as many on every worker."""
    if shard is None:
        return records
    num_shards, index = shard
    records = records.shard(num_shards, index)
    # Equal counts: workers that took different numbers of steps would wait
    # for each other's gradients forever.
    return records.take(total // num_shards) if total >= 0 else records


def _kept_length(
    sourcing: SourceConfig,
    batching: BatchConfig,
    listed: _Listed,
    records: tf.data.Dataset,
) -> int:
    """The length a training split keeps when images fail to decode, else 0."""
    # A training split keeps its length when an image fails to decode: a spare
    # pass over the records, in file order, follows the epoch's, and the epoch
    # takes its count of good images, so a dropped image is replaced by one
    # from the spare pass (the logged warning names the dropped one). The spare
    # pass is never read when nothing is dropped.
    if sourcing.shard is not None or not sourcing.is_folder:
        length = int(records.cardinality())
    else:
        length = listed.file_count
    keep_length = (
        sourcing.skips_failures
        and sourcing.training
        and not batching.repeat
        and length > 0
    )
    return length if keep_length else 0


def _element_stage(
    decoding: DecodeConfig,
    augmentation: AugmentConfig,
    batching: BatchConfig,
    needs_read: bool,
    num_classes: int,
) -> Callable[..., tuple[tf.Tensor, tf.Tensor]]:
    """The per-element map: read, decode and crop or augment, label encoding."""
    transform = _transform(decoding, augmentation)
    randomized, augment = augmentation.randomized, augmentation.augment
    label_mode, label_smoothing = decoding.label_mode, decoding.label_smoothing
    channels_first = keras.config.image_data_format() == "channels_first"
    global_seed = tf.constant(batching.seed or 0, tf.int64)

    def element(
        x: tf.Tensor, label: tf.Tensor, key: tf.Tensor | None = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        contents = tf.io.read_file(x) if needs_read else x
        if randomized:
            image = transform(contents, tf.stack([global_seed, key]))
        else:
            image = transform(contents)
        if channels_first:
            perm = [2, 0, 1] if augment != "ten_crop" else [0, 3, 1, 2]
            image = tf.transpose(image, perm)
        label = tf.cast(label, tf.int32)
        if label_mode == "one_hot":
            label = tf.one_hot(label, num_classes) * (1.0 - label_smoothing)
            label += label_smoothing / num_classes
        return image, label

    return element


def _decode_stage(
    augmentation: AugmentConfig,
    batching: BatchConfig,
    element: Callable[..., tuple[tf.Tensor, tf.Tensor]],
    records: tf.data.Dataset,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Maps `element` over the records, keyed by random draws when augmenting.

    A shard's records take the draws of their places in the whole epoch.
    """
    if not augmentation.randomized:
        return records.map(
            element,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=batching.deterministic,
        )
    keys = tf.data.Dataset.random(seed=batching.seed, rerandomize_each_iteration=True)
    if shard is not None:
        keys = keys.shard(*shard)
    keyed = tf.data.Dataset.zip(records, keys)
    return keyed.map(
        lambda record, key: element(record[0], record[1], key),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=batching.deterministic,
    )


def _batch_stage(batching: BatchConfig, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Batches, applies the user's `preprocessing` to batches, prefetches."""
    deterministic, preprocessing = batching.deterministic, batching.preprocessing
    dataset = dataset.batch(
        batching.batch_size,
        drop_remainder=batching.drop_remainder,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if preprocessing is not None:
        dataset = dataset.map(
            lambda images, labels: (preprocessing(images), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    data_options = tf.data.Options()
    data_options.deterministic = deterministic
    return dataset.with_options(data_options)


def _transform(
    decoding: DecodeConfig, augmentation: AugmentConfig
) -> Callable[..., tf.Tensor]:
    """The per-image function of the preset: `(contents[, seed]) -> image`."""
    variant, dtype = decoding.variant, decoding.dtype
    image_size, resize_size = decoding.sizes
    # Resized as the checkpoint's images were (its registry entry: Caffe's by
    # OpenCV, which does not antialias; torchvision's by PIL, which does).
    antialias = True if variant is None else _preprocessing(variant).antialias
    options: dict[str, Any] = {
        # uint8 pixels are cut and resized for `variant`'s checkpoint, but left
        # for the model to normalise (`include_preprocessing=True`).
        "variant": None if dtype == "uint8" else variant,
        "antialias": antialias,
        "dtype": dtype,
    }
    augment, flip = augmentation.augment, augmentation.flip
    if augment == "paper":
        return lambda contents, seed: augment_lib.paper_augment(
            contents,
            seed,
            image_size=image_size,
            resize_size=resize_size,
            lighting_stddev=augmentation.lighting_stddev,
            flip=flip,
            **options,
        )
    if augment == "modern":
        scale = augmentation.scale
        area: dict[str, Any] = {} if scale is None else {"area_range": tuple(scale)}
        return lambda contents, seed: augment_lib.modern_augment(
            contents, seed, image_size=image_size, flip=flip, **area, **options
        )
    if augment == "ten_crop":
        return lambda contents: augment_lib.eval_ten_crop(
            contents, image_size=image_size, resize_size=resize_size, **options
        )
    rounding = "floor" if variant is None else _preprocessing(variant).crop_rounding
    return lambda contents: augment_lib.eval_center_crop(
        contents,
        image_size=image_size,
        resize_size=resize_size,
        crop_rounding=rounding,
        **options,
    )


def _preprocessing(variant: str) -> Any:
    return imagenet_checkpoint(variant).preprocessing


def evaluate_ten_crop(
    model: keras.Model,
    dataset: Iterable,
    *,
    from_logits: bool = False,
    verbose: int = 1,
) -> dict[str, float]:
    """Top-1 and top-5 accuracy from the average of ten crops' softmax outputs.

    The paper's test protocol (Krizhevsky et al., 2012, section 4.1).

    Args:
        model: a Keras model mapping a batch of crops to class scores.
        dataset: batches `(crops, labels)` with crops
            `(batch, 10, height, width, channels)` and sparse or one-hot labels,
            such as `imagenet_dataset(..., augment="ten_crop")`.
        from_logits: whether the model outputs logits (a softmax is applied
            before averaging) rather than probabilities.
        verbose: 1 shows a progress bar (`keras.utils.Progbar`) of batches,
            with their total when the dataset knows it (`len()`, or a
            `tf.data.Dataset`'s cardinality); 0 shows nothing.

    Returns:
        `{"top1": accuracy, "top5": accuracy, "count": number of images}`.

    Raises:
        TypeError: `model` is not a Keras model, or `from_logits` not a bool.
        ValueError: `verbose` out of range, or `dataset` yields no images or
            elements of the wrong shape.

    Example (with ImageNet prepared by TFDS):

        val = imagenet_dataset("validation", augment="ten_crop")
        scores = evaluate_ten_crop(AlexNet(weights="imagenet"), val)
        print(scores["top1"], scores["top5"], scores["count"])
    """
    if not hasattr(model, "predict_on_batch"):
        raise TypeError(
            f"`model` should be a Keras model. Received: model={type(model).__name__}"
        )
    check_bool("from_logits", from_logits)
    check_int("verbose", verbose, minimum=0, maximum=2)
    progress = None
    if verbose:
        # Redrawn in place on a terminal; one line at the end in a log.
        progress = keras.utils.Progbar(
            _batch_count(dataset),
            unit_name="batch",
            verbose=verbose if sys.stdout.isatty() else 2,
        )
    top1 = top5 = count = 0
    for batch in dataset:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError(
                "`dataset` should yield (crops, labels) pairs. Received an element "
                f"of type {type(batch).__name__}"
            )
        crops, labels = np.asarray(batch[0]), np.asarray(batch[1])
        if crops.ndim != 5:
            raise ValueError(
                "`dataset` should yield crops of shape (batch, crops, height, width, "
                "channels), as imagenet_dataset(augment='ten_crop') does. Received: "
                f"crops.shape={crops.shape}"
            )
        n, k = crops.shape[:2]
        scores = model.predict_on_batch(crops.reshape((n * k, *crops.shape[2:])))
        scores = np.asarray(keras.ops.convert_to_numpy(scores), np.float64)
        if from_logits:
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
        probabilities = scores.reshape(n, k, -1).mean(axis=1)
        if labels.ndim == 2:
            labels = labels.argmax(axis=-1)
        ranked = np.argsort(-probabilities, axis=-1, kind="stable")
        top1 += int(np.sum(ranked[:, 0] == labels))
        top5 += int(np.sum(np.any(ranked[:, :5] == labels[:, None], axis=-1)))
        count += n
        if progress is not None:
            progress.add(1)
    if count == 0:
        raise ValueError("`dataset` yielded no images.")
    return {"top1": top1 / count, "top5": top5 / count, "count": count}


def _batch_count(dataset: Iterable) -> int | None:
    """The number of batches of `dataset` if it knows it, else `None`."""
    if isinstance(dataset, tf.data.Dataset):
        cardinality = int(dataset.cardinality())
        return cardinality if cardinality >= 0 else None
    try:
        return len(dataset)  # type: ignore[arg-type]
    except TypeError:
        return None
