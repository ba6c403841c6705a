"""Fit-ready ImageNet pipelines: `imagenet_dataset` and `evaluate_ten_crop`.

`imagenet_dataset` chains a source (`keras_alexnet.data.sources`), the crops and
augmentation of `keras_alexnet.data.augment` and the preprocessing of the chosen
checkpoint into a batched, prefetched `tf.data.Dataset` for `model.fit`.

Order of the stages, and why (each a helper below):

1. `_resolve_options` checks every argument and resolves the defaults first, so
   that a mistake fails before any file is listed;
2. the source (`_list_source`) yields encoded bytes (TFDS) or file paths
   (folders), never decoded images, so that `cache=True` keeps the compact bytes
   and the training crops can fuse decoding with the crop;
3. cache, then shuffle (a folder without cache shuffles its whole file list, which
   costs only the names), then repeat, so that every epoch is reshuffled;
4. each element is zipped with a draw of `tf.data.Dataset.random`, the per-image
   key of the stateless random ops: with a seed the draws depend only on the seed,
   the element's position and the epoch, so parallel maps stay bit-reproducible;
5. one parallel map reads, decodes, crops or augments, applies the checkpoint's
   preprocessing and encodes the label; with `on_error="skip"`, an image that
   still fails to decode is dropped after it (and a training split refills its
   epoch from a spare pass, so it keeps its length);
6. batching, then the user's `preprocessing` on whole batches, then prefetch.
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

from keras_alexnet.data import augment as augment_lib
from keras_alexnet.data.folders import (
    check_same_classes,
    list_image_folder,
    split_image_folder,
)
from keras_alexnet.data.prepare import is_prepared, prepared_records
from keras_alexnet.data.tfds import tfds_source
from keras_alexnet.variants import check_variant
from keras_alexnet.weights.registry import imagenet_checkpoint

AUGMENT_PRESETS = ("paper", "modern", "center_crop", "ten_crop")
LABEL_MODES = ("sparse", "one_hot")
# The input size of a model built with `variant=None` (no checkpoint).
DEFAULT_IMAGE_SIZE = 224


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
) -> tf.data.Dataset:
    """Builds a batched, prefetched ImageNet dataset ready for `model.fit`.

    Yields `(images, labels)`: float32 images `(batch, image_size, image_size, 3)`
    (channels first if `keras.config.image_data_format()` says so) preprocessed
    for the checkpoint of `variant` (uint8 pixels with `variant=None` or
    `dtype="uint8"`), and int32 class indices (`label_mode="sparse"`)
    or float32 one-hot rows. With `augment="ten_crop"`, images are
    `(batch, 10, image_size, image_size, 3)`, for `evaluate_ten_crop`.

    Augmentation presets:

    - `"paper"`: shorter side to `resize_size` (256), a random `image_size` crop
      of the central square, horizontal flip, PCA lighting (Krizhevsky et al.,
      2012); decoding is fused with the crop (see `keras_alexnet.data.augment`).
    - `"modern"`: random resized crop (`scale`, by default 8 % to 100 % of the
      area, aspect ratio 3/4 to 4/3) and horizontal flip.
    - `"center_crop"` or `None`: shorter side to `resize_size`, centre crop; no
      randomness (the evaluation transform).
    - `"ten_crop"`: the paper's ten test patches of the central square.
    - `"auto"`: `"paper"` for a split whose name starts with "train", else
      `"center_crop"`.

    `flip=False` turns the flips off (digits and text are not mirror-symmetric),
    `lighting=False` (or a standard deviation other than the paper's 0.1) the
    PCA lighting; `preprocessing` is any function or Keras layer applied to each
    batch of images after them (a `keras.layers.RandomRotation`, say).

    Resizing is bilinear, antialiased (like PIL, which made torchvision's
    training images) except for `variant="original"` (like OpenCV, which made
    Caffe's).

    Args:
        split: the split, e.g. `"train"`, `"validation"`, or with TFDS slicing
            `"train[:10%]"`. For a folder source it only chooses the defaults of
            `augment`, `shuffle` and `drop_remainder`.
        source: `"imagenet2012"`, any TFDS image-classification dataset name
            (`"imagenette/320px-v2"`, `"tf_flowers"`), or the path of an
            ImageNet-style folder holding this split (`root/<wnid>/*.JPEG`, or a
            flat folder with `labels_file`; see `list_image_folder`), or a
            folder written by `prepare_imagenet` (images stored at 256 pixels,
            read 1.5 to 2.9 times as fast per core; see docs/data.md).
        data_dir: TFDS's data directory (TFDS sources).
        manual_dir: the folder of manually downloaded archives (TFDS sources;
            `imagenet2012` needs `ILSVRC2012_img_train.tar` and
            `ILSVRC2012_img_val.tar` there to be prepared the first time).
        labels_file: the labels of a flat folder (folder sources).
        variant: `"original"` (Caffe preprocessing, 227 px) or `"torchvision"`
            (224 px), the checkpoint the images are cut, resized and
            preprocessed for; `None` keeps RGB pixels in [0, 255] (224 px,
            resized like PIL), as uint8 unless `dtype` says otherwise: the input
            of `AlexNet(include_preprocessing=True)`.
        image_size: the side of the images; defaults to the variant's input size.
        resize_size: the shorter side images are rescaled to before cropping.
            Defaults to the checkpoint's proportion: 256 for its input size
            (227 or 224), `round(image_size * 256 / 227)` for another
            `image_size` with the original variant (so `image_size=67` crops 67
            of 76 pixels, as 227 of 256, not 67 of 256).
        augment: the preset, see above.
        flip: whether the training presets mirror images at random.
        lighting: PCA lighting of the paper preset: `True` (alpha ~ N(0, 0.1)),
            `False`, or the standard deviation of alpha.
        scale: `(min, max)` fraction of the image area of the modern preset's
            random resized crops; defaults to `(0.08, 1.0)`.
        preprocessing: a function or Keras layer mapping a batch of images
            (after augmentation and the checkpoint's preprocessing) to a batch
            of the same shape, run in the `tf.data` pipeline.
        class_names: the classes in label order (folder sources: every class
            folder must be one of them; TFDS sources: must equal the dataset's
            classes). Defaults to the sorted class folders, or the classes of the
            labels file.
        validation_split: with `subset`, hold out this fraction of each class of
            a folder source (see `keras_alexnet.data.split_image_folder`): as
            `keras.utils.image_dataset_from_directory(validation_split=...)`.
        subset: `"training"` or `"validation"`, the part of `validation_split`.
        batch_size: images per batch.
        shuffle: whether to shuffle; defaults to `True` for training splits.
        shuffle_buffer: elements buffered for shuffling (TFDS sources, and folder
            sources with `cache`).
        seed: makes shuffling and augmentation bit-reproducible; `None` lets
            shuffled data arrive in a non-deterministic order, the fastest.
        cache: `True` caches the encoded images in memory, a string caches them in
            files with that path prefix; augmentation still runs every epoch.
        repeat: repeat forever (then pass `steps_per_epoch` to `fit`).
        drop_remainder: drop the last partial batch; defaults to `True` for
            training splits.
        label_mode: `"sparse"` or `"one_hot"`.
        label_smoothing: `eps` in `y * (1 - eps) + eps / num_classes`; needs
            `label_mode="one_hot"`.
        num_classes: the width of one-hot labels; defaults to the source's number
            of classes.
        on_error: `"skip"` (skip unreadable images, with a warning naming them)
            or `"raise"` (a `ValueError` naming them, before the first epoch).
            With `"skip"`, an image that passed the listing check but fails to
            decode is dropped with a logged warning (a training split takes the
            next image instead and keeps its length; an evaluation split's length
            is then unknown), unless `check_files="decode"` decoded them all.
            A folder of `prepare_imagenet` never skips: its images were all
            decoded once, so a read error there is a damaged shard, and stops.
        check_files: how folder files are checked before training, `"header"`,
            `"decode"` or `None` (see `list_image_folder`).
        download: whether a TFDS source may be downloaded and prepared.
        dtype: `"float32"`, or `"uint8"` for RGB pixels (rounded half to
            even, clipped to [0, 255]) that the model normalises itself: with a
            `variant`, cut and resized as that checkpoint's images (its size,
            resampling and crop rounding), for
            `AlexNet(variant=..., include_preprocessing=True)`. `None`: uint8
            with `variant=None`, float32 (preprocessed) otherwise. A GPU
            receives a quarter of float32's bytes.

    Returns:
        A `tf.data.Dataset` of `(images, labels)` batches. It also carries
        `class_names` (as `keras.utils.image_dataset_from_directory` does) and
        `skipped_files`, the `(path, reason)` pairs a folder source left out.
        Its number of batches is known (`cardinality()`, Keras' progress bar
        total) except for an evaluation split whose images were not all decoded
        up front; in a training split an image that fails to decode is replaced
        by the next one, so that the epoch keeps its length.

    Example (with the ILSVRC-2012 tars in `~/ILSVRC2012`):

        train = imagenet_dataset("train", manual_dir="~/ILSVRC2012")
        model.fit(train, epochs=90)
    """
    # 1. Every argument checked before any file is read.
    options = _resolve_options(
        split,
        source=source,
        data_dir=data_dir,
        manual_dir=manual_dir,
        labels_file=labels_file,
        variant=variant,
        image_size=image_size,
        resize_size=resize_size,
        augment=augment,
        flip=flip,
        lighting=lighting,
        scale=scale,
        preprocessing=preprocessing,
        class_names=class_names,
        validation_split=validation_split,
        subset=subset,
        batch_size=batch_size,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        cache=cache,
        repeat=repeat,
        drop_remainder=drop_remainder,
        label_mode=label_mode,
        label_smoothing=label_smoothing,
        num_classes=num_classes,
        on_error=on_error,
        check_files=check_files,
        download=download,
        dtype=dtype,
    )
    # 2. The source: encoded bytes, or paths still to read.
    listed = _list_source(options)
    num_classes = _num_classes(options, listed.class_names)
    _check_enough_for_a_batch(options, listed)
    # 3. Cache, shuffle, repeat.
    records, unshuffled, needs_read = _cache_and_shuffle(options, listed)
    length = _kept_length(options, listed, records)
    if options.repeat:
        records = records.repeat()
    # 4. to 6. Key each element, decode, augment and preprocess it; batch, prefetch.
    dataset = _map_stages(options, records, unshuffled, needs_read, num_classes, length)
    dataset.class_names = list(listed.class_names)
    dataset.skipped_files = list(listed.skipped)
    return dataset


@dataclasses.dataclass(frozen=True)
class _Options:
    """The checked arguments of `imagenet_dataset`, defaults resolved."""

    split: str
    source: str | os.PathLike
    data_dir: str | os.PathLike | None
    manual_dir: str | os.PathLike | None
    labels_file: str | os.PathLike | None
    variant: str | None
    image_size: int
    resize_size: int
    augment: str
    flip: bool
    lighting_stddev: float
    scale: tuple[float, float] | None
    preprocessing: Callable[[Any], Any] | None
    class_names: Sequence[str] | None
    validation_split: float | None
    subset: str | None
    batch_size: int
    shuffle: bool
    shuffle_buffer: int
    seed: int | None
    cache: bool | str
    repeat: bool
    drop_remainder: bool
    label_mode: str
    label_smoothing: float
    num_classes: int | None
    on_error: str
    check_files: str | None
    download: bool
    dtype: str
    training: bool
    is_folder: bool
    is_prepared: bool

    @property
    def randomized(self) -> bool:
        return self.augment in ("paper", "modern")

    @property
    def deterministic(self) -> bool:
        return self.seed is not None or not self.shuffle

    @property
    def skips_failures(self) -> bool:
        """Whether images that fail to decode in the map are dropped."""
        # Files all decoded by the listing need no such net, nor the images
        # prepare_imagenet encoded itself: there a failure is a damaged shard,
        # which must stop the epoch (skipping would drop the rest of the shard).
        return (
            self.on_error == "skip"
            and not (self.is_folder and self.check_files == "decode")
            and not self.is_prepared
        )


def _resolve_options(
    split: str,
    *,
    source: str | os.PathLike,
    data_dir: str | os.PathLike | None,
    manual_dir: str | os.PathLike | None,
    labels_file: str | os.PathLike | None,
    variant: str | None,
    image_size: int | None,
    resize_size: int | None,
    augment: str | None,
    flip: bool,
    lighting: bool | float,
    scale: tuple[float, float] | None,
    preprocessing: Callable[[Any], Any] | None,
    class_names: Sequence[str] | None,
    validation_split: float | None,
    subset: str | None,
    batch_size: int,
    shuffle: bool | None,
    shuffle_buffer: int,
    seed: int | None,
    cache: bool | str,
    repeat: bool,
    drop_remainder: bool | None,
    label_mode: str,
    label_smoothing: float,
    num_classes: int | None,
    on_error: str,
    check_files: str | None,
    download: bool,
    dtype: str | None,
) -> _Options:
    """Checks the arguments of `imagenet_dataset` and resolves their defaults."""
    training = _is_training_split(split)
    is_folder = _is_folder_source(source)
    check_variant(variant, allow_none=True)
    if image_size is None:
        image_size = _default_image_size(variant)
    _check_int("image_size", image_size)
    if resize_size is None:
        resize_size = default_resize_size(image_size, variant)
    _check_int("resize_size", resize_size)
    if augment == "auto":
        augment = "paper" if training else "center_crop"
    if augment is None:
        augment = "center_crop"
    if augment not in AUGMENT_PRESETS:
        raise ValueError(
            f"`augment` should be one of {AUGMENT_PRESETS}, 'auto' or None. "
            f"Received: augment={augment!r}"
        )
    if augment != "modern" and image_size > resize_size:
        raise ValueError(
            f"`image_size` should be at most `resize_size` ({resize_size}) for "
            f"augment={augment!r}. Received: image_size={image_size}"
        )
    if dtype is None:
        dtype = "uint8" if variant is None else "float32"
    if dtype not in ("uint8", "float32"):
        raise ValueError(
            f"`dtype` should be None, 'float32' or 'uint8'. Received: dtype={dtype!r}"
        )
    _check_int("batch_size", batch_size)
    _check_int("shuffle_buffer", shuffle_buffer)
    if seed is not None:
        _check_int("seed", seed, minimum=0)
    for name, value in (("shuffle", shuffle), ("drop_remainder", drop_remainder)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(
                f"`{name}` should be True, False or None. Received: {name}={value!r}"
            )
    if not isinstance(repeat, bool):
        raise TypeError(
            f"`repeat` should be True or False. Received: repeat={repeat!r}"
        )
    if not isinstance(download, bool):
        raise TypeError(
            f"`download` should be True or False. Received: download={download!r}"
        )
    if not isinstance(cache, (bool, str)):
        raise TypeError(
            "`cache` should be True, False or a file path prefix. Received: "
            f"cache={cache!r}"
        )
    if label_mode not in LABEL_MODES:
        raise ValueError(
            f"`label_mode` should be one of {LABEL_MODES}. Received: "
            f"label_mode={label_mode!r}"
        )
    if (
        isinstance(label_smoothing, bool)
        or not isinstance(label_smoothing, (int, float))
        or not 0 <= label_smoothing < 1
    ):
        raise ValueError(
            "`label_smoothing` should be a number in [0, 1). Received: "
            f"label_smoothing={label_smoothing!r}"
        )
    if label_smoothing and label_mode != "one_hot":
        raise ValueError(
            "`label_smoothing` needs label_mode='one_hot'. Received: "
            f"label_smoothing={label_smoothing}, label_mode={label_mode!r}"
        )
    if num_classes is not None:
        _check_int("num_classes", num_classes)
    if check_files not in ("header", "decode", None):
        raise ValueError(
            "`check_files` should be 'header', 'decode' or None. Received: "
            f"check_files={check_files!r}"
        )
    if on_error not in ("skip", "raise"):
        raise ValueError(
            f"`on_error` should be 'skip' or 'raise'. Received: on_error={on_error!r}"
        )
    if is_folder and (manual_dir is not None or data_dir is not None):
        raise ValueError(
            "`manual_dir` and `data_dir` are for TFDS sources, but `source` is a "
            f"folder. Received: source={os.fspath(source)!r}, "
            f"manual_dir={manual_dir!r}, data_dir={data_dir!r}"
        )
    if not is_folder and labels_file is not None:
        raise ValueError(
            "`labels_file` is for folder sources, but `source` names a TFDS "
            f"dataset. Received: source={source!r}, labels_file={labels_file!r}"
        )
    if not isinstance(flip, bool):
        raise TypeError(f"`flip` should be True or False. Received: flip={flip!r}")
    if lighting is True:
        lighting_stddev = augment_lib.PCA_LIGHTING_STDDEV
    elif lighting is False:
        lighting_stddev = 0.0
    elif isinstance(lighting, (int, float)) and lighting >= 0:
        lighting_stddev = float(lighting)
    else:
        raise ValueError(
            "`lighting` should be True, False or a standard deviation >= 0. "
            f"Received: lighting={lighting!r}"
        )
    if scale is not None:
        if augment != "modern":
            raise ValueError(
                "`scale` is the area range of augment='modern'. Received: "
                f"scale={scale!r}, augment={augment!r}"
            )
        if (
            not isinstance(scale, (tuple, list))
            or len(scale) != 2
            or not all(isinstance(v, (int, float)) for v in scale)
            or not 0 < scale[0] <= scale[1] <= 1
        ):
            raise ValueError(
                "`scale` should be (min, max) with 0 < min <= max <= 1. "
                f"Received: scale={scale!r}"
            )
    if preprocessing is not None and not callable(preprocessing):
        raise TypeError(
            "`preprocessing` should be a function or a Keras layer. Received: "
            f"preprocessing={preprocessing!r}"
        )
    if (validation_split is None) != (subset is None):
        raise ValueError(
            "`validation_split` and `subset` go together. Received: "
            f"validation_split={validation_split!r}, subset={subset!r}"
        )
    if validation_split is not None and not is_folder:
        raise ValueError(
            "`validation_split` is for folder sources; a TFDS source slices its "
            f"split instead (split='train[:90%]'). Received: source={source!r}"
        )
    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder
    return _Options(
        split=split,
        source=source,
        data_dir=data_dir,
        manual_dir=manual_dir,
        labels_file=labels_file,
        variant=variant,
        image_size=image_size,
        resize_size=resize_size,
        augment=augment,
        flip=flip,
        lighting_stddev=lighting_stddev,
        scale=scale,
        preprocessing=preprocessing,
        class_names=class_names,
        validation_split=validation_split,
        subset=subset,
        batch_size=batch_size,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        cache=cache,
        repeat=repeat,
        drop_remainder=drop_remainder,
        label_mode=label_mode,
        label_smoothing=label_smoothing,
        num_classes=num_classes,
        on_error=on_error,
        check_files=check_files,
        download=download,
        dtype=dtype,
        training=training,
        is_folder=is_folder,
        is_prepared=is_folder and is_prepared(source),
    )


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


def _list_source(options: _Options) -> _Listed:
    """Lists a folder source, or opens a TFDS one, as undecoded records."""
    source, split, class_names = options.source, options.split, options.class_names
    if options.is_prepared:
        # Shards written by prepare_imagenet: JPEG bytes at 256 pixels.
        if options.validation_split is not None:
            raise ValueError(
                f"{os.fspath(source)!r} was written by prepare_imagenet, whose "
                "shards cannot hold out a `validation_split`: prepare the training "
                "and the validation images into two folders. Received: "
                f"validation_split={options.validation_split!r}"
            )
        if options.labels_file is not None:
            raise ValueError(
                f"{os.fspath(source)!r} was written by prepare_imagenet, whose "
                "shards hold their labels: `labels_file` has nothing to label. "
                f"Received: labels_file={os.fspath(options.labels_file)!r}"
            )
        records, prepared_class_names, skipped = prepared_records(
            source, options.shuffle, options.seed, class_names
        )
        count = int(records.cardinality())
        return _Listed(records, prepared_class_names, skipped, count, False)
    if options.is_folder:
        folder = list_image_folder(
            source,
            labels_file=options.labels_file,
            class_names=class_names,
            on_error=options.on_error,
            check_files=options.check_files,
        )
        if options.validation_split is not None and options.subset is not None:
            folder = split_image_folder(
                folder, options.validation_split, options.subset, seed=options.seed
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
        data_dir=options.data_dir,
        manual_dir=options.manual_dir,
        download=options.download,
        shuffle_files=options.shuffle,
        seed=options.seed,
    )
    if class_names is not None:
        check_same_classes(
            class_names, tfds_split.class_names, where=f"{source!r} ({split})"
        )
    return _Listed(tfds_split.dataset, tfds_split.class_names, (), 0, False)


def _check_enough_for_a_batch(options: _Options, listed: _Listed) -> None:
    # With drop_remainder, fewer images than a batch make an empty epoch: `fit`
    # would "train" without a single step and only warn that the data ran out.
    if options.drop_remainder and 0 < listed.file_count < options.batch_size:
        raise ValueError(
            f"`batch_size` ({options.batch_size}) is larger than the "
            f"{listed.file_count} images of {options.source!r} ({options.split}), "
            "and incomplete batches are dropped (`drop_remainder`): an epoch "
            "would have no batch. Pass a smaller batch size. Received: "
            f"batch_size={options.batch_size}"
        )


def _num_classes(options: _Options, class_names: Sequence[str]) -> int:
    num_classes = options.num_classes
    if num_classes is None:
        num_classes = len(class_names)
    elif num_classes < len(class_names):
        raise ValueError(
            f"`num_classes` should be at least the {len(class_names)} classes of the "
            f"source. Received: num_classes={num_classes}"
        )
    return num_classes


def _cache_and_shuffle(
    options: _Options, listed: _Listed
) -> tuple[tf.data.Dataset, tf.data.Dataset, bool]:
    """Caches and shuffles the records: `(records, unshuffled, needs_read)`."""
    records, needs_read = listed.records, listed.needs_read
    if options.cache is not False:
        if needs_read:
            records = records.map(
                lambda path, label: (tf.io.read_file(path), label),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
            needs_read = False
        records = records.cache("" if options.cache is True else options.cache)
    unshuffled = records
    if options.shuffle:
        # Without a cache a folder yields file names: shuffling all of them is cheap.
        buffer = listed.file_count if needs_read else options.shuffle_buffer
        records = records.shuffle(
            buffer, seed=options.seed, reshuffle_each_iteration=True
        )
    return records, unshuffled, needs_read


def _kept_length(options: _Options, listed: _Listed, records: tf.data.Dataset) -> int:
    """The length a training split keeps when images fail to decode, else 0."""
    # A training split keeps its length when an image fails to decode: a spare
    # pass over the records, in file order, follows the epoch's, and the epoch
    # takes its count of good images, so a dropped image is replaced by one
    # from the spare pass (the logged warning names the dropped one). The spare
    # pass is never read when nothing is dropped.
    length = listed.file_count if options.is_folder else int(records.cardinality())
    keep_length = (
        options.skips_failures
        and options.training
        and not options.repeat
        and length > 0
    )
    return length if keep_length else 0


def _map_stages(
    options: _Options,
    records: tf.data.Dataset,
    unshuffled: tf.data.Dataset,
    needs_read: bool,
    num_classes: int,
    length: int,
) -> tf.data.Dataset:
    """Decodes, augments, preprocesses, batches and prefetches the records.

    `length`, when not 0, is the number of images an epoch keeps by replacing
    the ones that fail to decode from a spare pass over `unshuffled`.
    """
    element = _element_stage(options, needs_read, num_classes)
    dataset = _decode_stage(options, element, records)
    if options.skips_failures:
        # The last resort for files that passed the listing check (or TFDS records)
        # but still fail to decode: drop them rather than stop the epoch.
        dataset = dataset.ignore_errors(log_warning=True)
        if length:
            spare = _decode_stage(options, element, unshuffled)
            spare = spare.ignore_errors(log_warning=True)
            dataset = dataset.concatenate(spare).take(length)
            # At most `length` good images in two passes; fewer only when more
            # than half the files fail, and then the epoch ends with an error.
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(length))
    return _batch_stage(options, dataset)


def _element_stage(
    options: _Options, needs_read: bool, num_classes: int
) -> Callable[..., tuple[tf.Tensor, tf.Tensor]]:
    """The per-element map: read, decode and crop or augment, label encoding."""
    transform = _transform(
        options.augment,
        options.image_size,
        options.resize_size,
        options.variant,
        options.flip,
        options.lighting_stddev,
        options.scale,
        options.dtype,
    )
    randomized, augment = options.randomized, options.augment
    label_mode, label_smoothing = options.label_mode, options.label_smoothing
    channels_first = keras.config.image_data_format() == "channels_first"
    global_seed = tf.constant(options.seed or 0, tf.int64)

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
    options: _Options,
    element: Callable[..., tuple[tf.Tensor, tf.Tensor]],
    records: tf.data.Dataset,
) -> tf.data.Dataset:
    """Maps `element` over the records, keyed by random draws when augmenting."""
    if not options.randomized:
        return records.map(
            element,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=options.deterministic,
        )
    keyed = tf.data.Dataset.zip(
        records,
        tf.data.Dataset.random(seed=options.seed, rerandomize_each_iteration=True),
    )
    return keyed.map(
        lambda record, key: element(record[0], record[1], key),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=options.deterministic,
    )


def _batch_stage(options: _Options, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Batches, applies the user's `preprocessing` to batches, prefetches."""
    deterministic, preprocessing = options.deterministic, options.preprocessing
    dataset = dataset.batch(
        options.batch_size,
        drop_remainder=options.drop_remainder,
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


def default_resize_size(image_size: int, variant: str | None = "original") -> int:
    """The shorter side to resize to before cropping `image_size` pixels.

    The checkpoint's own proportion of crop to resize (its registry entry):
    227/256 for the original variant (the paper's), 224/256 for torchvision's
    and for `None`.

    Example:

    >>> default_resize_size(227), default_resize_size(67)
    (256, 76)
    """
    if variant is None:
        ratio = augment_lib.RESIZE_SIZE / DEFAULT_IMAGE_SIZE
    else:
        constants = _preprocessing(variant)
        ratio = constants.resize_size / constants.crop_size
    return max(image_size, round(image_size * ratio))


def _default_image_size(variant: str | None) -> int:
    if variant is None:
        return DEFAULT_IMAGE_SIZE
    return imagenet_checkpoint(variant).input_size


def _transform(
    augment: str,
    image_size: int,
    resize_size: int,
    variant: str | None,
    flip: bool = True,
    lighting_stddev: float = augment_lib.PCA_LIGHTING_STDDEV,
    scale: tuple[float, float] | None = None,
    dtype: str = "float32",
) -> Callable[..., tf.Tensor]:
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
    if augment == "paper":
        return lambda contents, seed: augment_lib.paper_augment(
            contents,
            seed,
            image_size=image_size,
            resize_size=resize_size,
            lighting_stddev=lighting_stddev,
            flip=flip,
            **options,
        )
    if augment == "modern":
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


def _is_training_split(split: Any) -> bool:
    if not isinstance(split, str) or not split.strip():
        raise ValueError(
            "`split` should be a split name such as 'train' or 'validation'. "
            f"Received: split={split!r}"
        )
    return split.strip().startswith("train")


def _is_folder_source(source: Any) -> bool:
    if isinstance(source, os.PathLike):
        return True
    if not isinstance(source, str) or not source:
        raise TypeError(
            "`source` should be a TFDS dataset name or a folder path. Received: "
            f"source={source!r}"
        )
    # TFDS names may contain "/" ("imagenette/320px-v2"), paths may not exist yet:
    # an existing folder or anything written like a path is a folder ("no such
    # folder" then), as is a name whose first part is an existing folder
    # ("data/digits_pngx" beside data/).
    path = os.path.expanduser(source)
    first = path.replace("\\", "/").split("/")[0]
    return (
        os.path.isdir(path)
        or source.startswith(("/", ".", "~", "\\"))
        or ("/" in path and os.path.isdir(first))
    )


def _check_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` should be an int. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(f"`{name}` should be >= {minimum}. Received: {name}={value}")


def evaluate_ten_crop(
    model: keras.Model,
    dataset: Iterable,
    *,
    from_logits: bool = False,
    verbose: int = 1,
) -> dict[str, float]:
    """Top-1 and top-5 accuracy from the average of ten crops' softmax outputs.

    The paper's test protocol (Krizhevsky et al., 2012, section 4.1): average the
    predictions of the ten patches of each image, then rank the classes.

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

    Example (with ImageNet prepared by TFDS):

        val = imagenet_dataset("validation", augment="ten_crop")
        scores = evaluate_ten_crop(AlexNet(weights="imagenet"), val)
        print(scores["top1"], scores["top5"], scores["count"])
    """
    if not hasattr(model, "predict_on_batch"):
        raise TypeError(
            f"`model` should be a Keras model. Received: model={type(model).__name__}"
        )
    if not isinstance(from_logits, bool):
        raise TypeError(
            "`from_logits` should be True or False. Received: "
            f"from_logits={from_logits!r}"
        )
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(
            f"`verbose` should be 0, 1 or 2. Received: verbose={verbose!r}"
        )
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
