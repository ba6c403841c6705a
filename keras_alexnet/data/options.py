"""The arguments of `imagenet_dataset`, grouped by the stage that uses them.

Each group is a small frozen dataclass whose defaults are `imagenet_dataset`'s
and whose `__post_init__` checks it, so that a mistake fails before any file is
listed and names the argument the caller passed. The attributes mean what the
`imagenet_dataset` arguments of the same names mean; defaults left `None` there
are resolved here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

from keras_alexnet._bounds import MAX_BATCH_SIZE, MAX_IMAGE_SIZE, MAX_RESIZE_SIZE
from keras_alexnet._validation import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_path,
    is_integer,
    is_number,
)
from keras_alexnet.data import augment as augment_lib
from keras_alexnet.data import storage
from keras_alexnet.data.folders import ON_ERROR_MODES, SUBSETS
from keras_alexnet.data.image_checks import CHECK_MODES
from keras_alexnet.data.prepare import is_prepared
from keras_alexnet.variants import DEFAULT_IMAGE_SIZE, check_variant
from keras_alexnet.weights.registry import imagenet_checkpoint

__all__ = [
    "AUGMENT_PRESETS",
    "IMAGE_SIZE_WITHOUT_VARIANT",
    "LABEL_MODES",
    "AugmentConfig",
    "BatchConfig",
    "DecodeConfig",
    "SourceConfig",
    "check_crop_fits",
    "check_shard",
    "default_image_size",
    "default_resize_size",
    "is_folder_source",
]

AUGMENT_PRESETS = ("paper", "modern", "center_crop", "ten_crop")
LABEL_MODES = ("sparse", "one_hot")
# `variant=None` matches no checkpoint: torchvision's 224, the common ImageNet side.
IMAGE_SIZE_WITHOUT_VARIANT = 224


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    """Where the records come from: a TFDS split, an image folder, or shards.

    `training`, `is_folder` and `is_prepared` are derived from `split` and
    `source`.

    Raises:
        ValueError, TypeError: an argument out of range or of the wrong type,
            or one meant for the other kind of source.
    """

    split: str
    source: str | os.PathLike = "imagenet2012"
    data_dir: str | os.PathLike | None = None
    manual_dir: str | os.PathLike | None = None
    labels_file: str | os.PathLike | None = None
    class_names: Sequence[str] | None = None
    validation_split: float | None = None
    subset: str | None = None
    on_error: str = "skip"
    check_files: str | None = "header"
    download: bool = True
    shard: tuple[int, int] | None = None
    training: bool = dataclasses.field(init=False)
    is_folder: bool = dataclasses.field(init=False)
    is_prepared: bool = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.split, str) or not self.split.strip():
            raise ValueError(
                "`split` should be a split name such as 'train' or 'validation'. "
                f"Received: split={self.split!r}"
            )
        is_folder = is_folder_source(self.source)
        check_choice("check_files", self.check_files, CHECK_MODES)
        check_choice("on_error", self.on_error, ON_ERROR_MODES)
        check_bool("download", self.download)
        if is_folder and (self.manual_dir is not None or self.data_dir is not None):
            raise ValueError(
                "`manual_dir` and `data_dir` are for TFDS sources, but `source` is "
                f"a folder. Received: source={os.fspath(self.source)!r}, "
                f"manual_dir={self.manual_dir!r}, data_dir={self.data_dir!r}"
            )
        if not is_folder and self.labels_file is not None:
            raise ValueError(
                "`labels_file` is for folder sources, but `source` names a TFDS "
                f"dataset. Received: source={self.source!r}, "
                f"labels_file={self.labels_file!r}"
            )
        if (self.validation_split is None) != (self.subset is None):
            raise ValueError(
                "`validation_split` and `subset` go together. Received: "
                f"validation_split={self.validation_split!r}, subset={self.subset!r}"
            )
        if self.validation_split is not None:
            check_float(
                "validation_split",
                self.validation_split,
                minimum=0,
                maximum=1,
                exclusive_minimum=True,
                exclusive_maximum=True,
            )
            check_choice("subset", self.subset, SUBSETS)
        if self.validation_split is not None and not is_folder:
            raise ValueError(
                "`validation_split` is for folder sources; a TFDS source slices its "
                f"split instead (split='train[:90%]'). Received: source={self.source!r}"
            )
        if self.shard is not None:
            check_shard(self.shard)
        # Frozen: the derived fields are set once, here.
        object.__setattr__(self, "training", self.split.strip().startswith("train"))
        object.__setattr__(self, "is_folder", is_folder)
        object.__setattr__(self, "is_prepared", is_folder and is_prepared(self.source))

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


def check_shard(shard: Any) -> tuple[int, int]:
    """Checks `shard`, a worker's part of a source: `(num_shards, index)`."""
    if (
        not isinstance(shard, (tuple, list))
        or len(shard) != 2
        or not all(is_integer(x) for x in shard)
        or not 0 <= shard[1] < shard[0]
    ):
        raise ValueError(
            "`shard` should be (num_shards, index) with 0 <= index < num_shards. "
            f"Received: shard={shard!r}"
        )
    return int(shard[0]), int(shard[1])


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    """How each record becomes an `(image, label)` pair: size, checkpoint, labels.

    `image_size`, `resize_size` and `dtype` left `None` are resolved from
    `variant`.

    Raises:
        ValueError, TypeError: an argument out of range or of the wrong type.
    """

    variant: str | None = "original"
    image_size: int | None = None
    resize_size: int | None = None
    dtype: str | None = None
    label_mode: str = "sparse"
    label_smoothing: float = 0.0
    num_classes: int | None = None

    def __post_init__(self) -> None:
        check_variant(self.variant, allow_none=True)
        image_size = self.image_size
        if image_size is None:
            image_size = default_image_size(self.variant)
        image_size = _check_count("image_size", image_size, maximum=MAX_IMAGE_SIZE)
        resize_size = self.resize_size
        if resize_size is None:
            resize_size = default_resize_size(image_size, self.variant)
        resize_size = _check_count("resize_size", resize_size, maximum=MAX_RESIZE_SIZE)
        check_choice("dtype", self.dtype, augment_lib.DTYPES, allow_none=True)
        dtype = self.dtype or ("uint8" if self.variant is None else "float32")
        check_choice("label_mode", self.label_mode, LABEL_MODES)
        check_float(
            "label_smoothing",
            self.label_smoothing,
            minimum=0,
            maximum=1,
            exclusive_maximum=True,
        )
        if self.label_smoothing and self.label_mode != "one_hot":
            raise ValueError(
                "`label_smoothing` needs label_mode='one_hot'. Received: "
                f"label_smoothing={self.label_smoothing}, "
                f"label_mode={self.label_mode!r}"
            )
        if self.num_classes is not None:
            _check_count("num_classes", self.num_classes)
        object.__setattr__(self, "image_size", image_size)
        object.__setattr__(self, "resize_size", resize_size)
        object.__setattr__(self, "dtype", dtype)

    @property
    def sizes(self) -> tuple[int, int]:
        """`(image_size, resize_size)`, as resolved by `__post_init__`."""
        assert self.image_size is not None and self.resize_size is not None
        return self.image_size, self.resize_size


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """The crop of each image and its random changes.

    `augment="auto"` (or `None`) is resolved with `training`; `lighting_stddev`
    is derived from `lighting`.

    Raises:
        ValueError, TypeError: an argument out of range or of the wrong type.
    """

    augment: str | None = "auto"
    flip: bool = True
    lighting: bool | float = True
    scale: tuple[float, float] | None = None
    training: dataclasses.InitVar[bool] = False
    lighting_stddev: float = dataclasses.field(init=False)

    def __post_init__(self, training: bool) -> None:
        check_choice(
            "augment", self.augment, ("auto", *AUGMENT_PRESETS), allow_none=True
        )
        augment = self.augment
        if augment == "auto":
            augment = "paper" if training else "center_crop"
        augment = augment or "center_crop"
        check_bool("flip", self.flip)
        if self.lighting is True or self.lighting is False:
            stddev = augment_lib.PCA_LIGHTING_STDDEV if self.lighting else 0.0
        elif is_number(self.lighting) and self.lighting >= 0:
            stddev = float(self.lighting)
        else:
            raise ValueError(
                "`lighting` should be True, False or a standard deviation >= 0. "
                f"Received: lighting={self.lighting!r}"
            )
        if self.scale is not None:
            if augment != "modern":
                raise ValueError(
                    "`scale` is the area range of augment='modern'. Received: "
                    f"scale={self.scale!r}, augment={augment!r}"
                )
            if (
                not isinstance(self.scale, (tuple, list))
                or len(self.scale) != 2
                or not all(is_number(v) for v in self.scale)
                or not 0 < self.scale[0] <= self.scale[1] <= 1
            ):
                raise ValueError(
                    "`scale` should be (min, max) with 0 < min <= max <= 1. "
                    f"Received: scale={self.scale!r}"
                )
        object.__setattr__(self, "augment", augment)
        object.__setattr__(self, "lighting_stddev", stddev)

    @property
    def randomized(self) -> bool:
        """Whether each image gets a random crop (and so a random key)."""
        return self.augment in ("paper", "modern")


@dataclasses.dataclass(frozen=True)
class BatchConfig:
    """The order and grouping of the elements: cache, shuffle, repeat, batch.

    `shuffle` and `drop_remainder` left `None` default to `training`.

    Raises:
        ValueError, TypeError: an argument out of range or of the wrong type.
    """

    batch_size: int = 128
    shuffle: bool | None = None
    shuffle_buffer: int = 10_000
    seed: int | None = None
    cache: bool | str = False
    repeat: bool = False
    drop_remainder: bool | None = None
    preprocessing: Callable[[Any], Any] | None = None
    training: dataclasses.InitVar[bool] = False

    def __post_init__(self, training: bool) -> None:
        _check_count("batch_size", self.batch_size, maximum=MAX_BATCH_SIZE)
        _check_count("shuffle_buffer", self.shuffle_buffer)
        if self.seed is not None:
            _check_count("seed", self.seed, minimum=0)
        for name in ("shuffle", "drop_remainder"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise TypeError(
                    f"`{name}` should be True, False or None. "
                    f"Received: {name}={value!r}"
                )
            object.__setattr__(self, name, training if value is None else value)
        check_bool("repeat", self.repeat)
        if not isinstance(self.cache, (bool, str)):
            raise TypeError(
                "`cache` should be True, False or a file path prefix. Received: "
                f"cache={self.cache!r}"
            )
        if self.preprocessing is not None and not callable(self.preprocessing):
            raise TypeError(
                "`preprocessing` should be a function or a Keras layer. Received: "
                f"preprocessing={self.preprocessing!r}"
            )

    @property
    def deterministic(self) -> bool:
        """Whether the elements arrive in a reproducible order."""
        return self.seed is not None or not self.shuffle


def check_crop_fits(decode: DecodeConfig, augmentation: AugmentConfig) -> None:
    """Raises a `ValueError` unless the crop fits in the resized image.

    The modern preset resizes its random crop to `image_size`, so it needs no
    such room.
    """
    image_size, resize_size = decode.sizes
    if augmentation.augment != "modern" and image_size > resize_size:
        raise ValueError(
            f"`image_size` should be at most `resize_size` ({resize_size}) "
            f"for augment={augmentation.augment!r}. Received: image_size={image_size}"
        )


def default_image_size(variant: str | None) -> int:
    """The input side of `variant`'s checkpoint; 224 for `None`."""
    if variant is None:
        return IMAGE_SIZE_WITHOUT_VARIANT
    return DEFAULT_IMAGE_SIZE[variant]


def default_resize_size(image_size: int, variant: str | None = "original") -> int:
    """The shorter side to resize to before cropping `image_size` pixels.

    Keeps the checkpoint's proportion of crop to resize (its registry entry):
    227/256 for the original variant, 224/256 for torchvision's and for `None`.

    Example:

    >>> default_resize_size(227), default_resize_size(67)
    (256, 76)
    """
    if variant is None:
        ratio = augment_lib.RESIZE_SIZE / IMAGE_SIZE_WITHOUT_VARIANT
    else:
        constants = imagenet_checkpoint(variant).preprocessing
        ratio = constants.resize_size / constants.crop_size
    return max(image_size, round(image_size * ratio))


def is_folder_source(source: Any) -> bool:
    """Whether `source` names a folder (else a TFDS dataset).

    Raises:
        TypeError: `source` is neither a non-empty string nor a path.
    """
    if isinstance(source, os.PathLike):
        check_path("source", source)
        return True
    if not isinstance(source, str) or not source:
        raise TypeError(
            "`source` should be a TFDS dataset name or a folder path. Received: "
            f"source={source!r}"
        )
    # TFDS names may contain "/" ("imagenette/320px-v2"), paths may not exist yet:
    # an existing folder or anything written like a path is a folder ("no such
    # folder" then), as is a name whose first part is an existing folder
    # ("data/digits_pngx" beside data/). A URL (gs://...) is a folder.
    if storage.is_url(source):
        return True
    path = os.path.expanduser(source)
    first = path.replace("\\", "/").split("/")[0]
    return (
        os.path.isdir(path)
        or source.startswith(("/", ".", "~", "\\"))
        or ("/" in path and os.path.isdir(first))
    )


def _check_count(
    name: str, value: Any, minimum: int = 1, maximum: int | None = None
) -> int:
    # A float where a count belongs is a TypeError; a count out of range a ValueError.
    if not is_integer(value):
        raise TypeError(f"`{name}` should be an integer. Received: {name}={value!r}")
    return check_int(name, value, minimum=minimum, maximum=maximum)
