"""What `DATA` names: a TFDS dataset, a folder of `train/` and `val/` class
folders, or one class-folder tree split by `validation_split`."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from keras_alexnet._validation import check_bool
from keras_alexnet.data import imagenet as imagenet_lib
from keras_alexnet.data import storage
from keras_alexnet.data.folders import check_same_classes
from keras_alexnet.data.prepare import is_prepared, prepared_class_names

VALIDATION_FOLDERS = ("val", "validation")
# Below this many validation files, every one is decoded up front: the
# evaluation then knows its length (a progress bar with a total) and can drop
# nothing silently.
DECODE_CHECK_LIMIT = 20_000
# A class needs one image to learn from and one to be scored on; a class with
# fewer training files is refused unless the caller keeps it on purpose.
MIN_TRAINING_FILES = 2


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Where the training and validation images of a run come from.

    Attributes:
        kind: `"folders"` (`train/` and `val/`), `"split"` (one tree,
            `validation_split` held out) or `"tfds"`.
        train: the training folder or TFDS name.
        val: the validation folder or TFDS name.
        train_split: the TFDS split of training images (`"train"` for folders).
        val_split: the TFDS split of validation images.
        validation_split: the fraction held out of one tree (`"split"` kind).
        allow_small_classes: keep class folders with fewer than
            `MIN_TRAINING_FILES` training files or no validation file.
    """

    kind: str
    train: str
    val: str
    train_split: str = "train"
    val_split: str = "validation"
    validation_split: float | None = None
    allow_small_classes: bool = False


def resolve_data(
    data: Any,
    *,
    validation_split: float | None = None,
    allow_small_classes: bool = False,
) -> DataSpec:
    """Finds the training and validation images `data` names.

    Args:
        data: a folder (a local path, or a URL `tf.io.gfile` reads, such as
            `gs://bucket/imagenet`) holding `train/` and `val/` (or
            `validation/`) class folders (or `prepare_imagenet` shards); a
            class-folder tree (with `validation_split`); or a TFDS
            dataset name (its `validation` split, else `test`, else
            `validation_split` of `train`).
        validation_split: the fraction of each class held out of a single tree
            (or of a TFDS train split without a validation split).
        allow_small_classes: keep class folders too small to train and score
            (see `class_names_of`); refused otherwise.

    Returns:
        A `DataSpec`.
    """
    check_bool("allow_small_classes", allow_small_classes)
    if not isinstance(data, (str, os.PathLike)) or not os.fspath(data):
        raise TypeError(
            f"DATA should be a folder or a TFDS dataset name. Received: {data!r}"
        )
    text = os.fspath(data)
    if imagenet_lib._is_folder_source(text):
        root = storage.absolute(text)
        try:
            is_dir = storage.isdir(root)
        except OSError as error:  # a URL: an unknown scheme, no credentials
            raise ValueError(f"DATA cannot be read: {error}") from None
        if not is_dir:
            raise ValueError(f"No such folder: {text!r}")
        train = storage.join(root, "train")
        val = next(
            (
                storage.join(root, name)
                for name in VALIDATION_FOLDERS
                if storage.isdir(storage.join(root, name))
            ),
            None,
        )
        if storage.isdir(train) and val is not None:
            if validation_split is not None:
                raise ValueError(
                    f"{text!r} already holds train/ and {os.path.basename(val)}/; "
                    "--validation-split is for a single class-folder tree. Received: "
                    f"validation_split={validation_split}"
                )
            return DataSpec(
                "folders", train, val, allow_small_classes=allow_small_classes
            )
        if validation_split is None:
            raise ValueError(
                f"{text!r} should hold train/ and val/ (or validation/) class "
                "folders; for a single tree of class folders pass "
                "--validation-split (e.g. 0.2)."
            )
        return DataSpec(
            "split",
            root,
            root,
            "train",
            "validation",
            float(validation_split),
            allow_small_classes,
        )
    splits = _tfds_splits(text)
    if "validation" in splits and validation_split is None:
        return DataSpec("tfds", text, text, "train", "validation")
    if "test" in splits and validation_split is None:
        return DataSpec("tfds", text, text, "train", "test")
    fraction = 0.1 if validation_split is None else float(validation_split)
    percent = round(100 * (1 - fraction))
    return DataSpec("tfds", text, text, f"train[:{percent}%]", f"train[{percent}%:]")


def _tfds_splits(name: str) -> set[str]:
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"No such folder or TFDS dataset: {name!r}. A folder path should exist "
            "(write ./name for a folder in the current one)."
        ) from None
    return set(builder.info.splits.keys()) or {"train", "validation"}


def class_names_of(spec: DataSpec) -> list[str] | None:
    """The classes of a folder spec, checked to agree between train and val.

    Every class folder must hold `MIN_TRAINING_FILES` training files and, with
    a separate validation folder, one validation file, unless
    `spec.allow_small_classes`: an empty folder would otherwise become a class
    no image teaches.

    Returns:
        The class names; `None` for TFDS (the dataset's own classes).

    Raises:
        ValueError: the classes of train and val differ, or small class
            folders, named with their file counts.
    """
    if spec.kind == "tfds":
        return None
    train = _class_folders(spec.train)
    if not train:
        raise ValueError(f"{spec.train!r} holds no class folders.")
    if spec.kind == "folders":
        check_same_classes(
            train, _class_folders(spec.val), where=f"the validation folder {spec.val!r}"
        )
    if not spec.allow_small_classes:
        _check_class_sizes(spec, train)
    return train


def _check_class_sizes(spec: DataSpec, class_names: list[str]) -> None:
    small = []
    if not is_prepared(spec.train):
        small += [
            (storage.join(spec.train, name), count)
            for name in class_names
            if (count := _file_count(storage.join(spec.train, name)))
            < MIN_TRAINING_FILES
        ]
    if spec.kind == "folders" and not is_prepared(spec.val):
        small += [
            (storage.join(spec.val, name), 0)
            for name in class_names
            if not _file_count(storage.join(spec.val, name))
        ]
    if small:
        root = spec.train if spec.kind == "split" else os.path.dirname(spec.train)
        shown = ", ".join(
            f"{path!r} ({count} file{'' if count == 1 else 's'})"
            for path, count in small[:5]
        )
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        raise ValueError(
            f"Every class needs {MIN_TRAINING_FILES} training images and 1 "
            f"validation image; in {root!r} these class folders have too few: "
            f"{shown}{more}. Remove them, or pass allow_small_classes=True "
            "(--allow-small-classes) to keep them."
        )


def _class_folders(root: str) -> list[str]:
    if is_prepared(root):  # shards of prepare_imagenet: the classes it stored
        return list(prepared_class_names(root))
    return sorted(
        entry.name
        for entry in storage.scandir(root)
        if entry.is_dir() and not entry.name.startswith(".")
    )


def _file_count(root: str) -> int:
    """Files under `root`, hidden ones (`.DS_Store`) left out."""
    return sum(
        sum(not name.startswith(".") for name in files)
        for _, _, files in storage.walk(root)
    )


# `shard`: every worker of a multi-worker run scores all validation images.
TRAIN_ONLY_OPTIONS = (
    "augment",
    "flip",
    "lighting",
    "scale",
    "label_smoothing",
    "shard",
)


def make_datasets(
    spec: DataSpec, *, seed: int | None, **options: Any
) -> tuple[Any, Any, list[str]]:
    """The training and validation `tf.data` pipelines of a spec.

    Args:
        spec: a `DataSpec`.
        seed: the seed of shuffling, augmentation and the held-out split.
        **options: `imagenet_dataset` options; `augment`, `flip`, `lighting`,
            `scale`, `label_mode`, `label_smoothing` apply to training only,
            `eval_augment` (`"center_crop"` or `"ten_crop"`) to validation.

    Returns:
        `(train, val, class_names)`.
    """
    class_names = class_names_of(spec)
    eval_augment = options.pop("eval_augment", "center_crop")
    if spec.kind == "tfds":
        train = imagenet_lib.imagenet_dataset(
            spec.train_split, source=spec.train, **options, seed=seed
        )
    else:
        train = imagenet_lib.imagenet_dataset(
            "train",
            source=spec.train,
            class_names=class_names,
            **options,
            seed=seed,
            **_subset(spec, "training"),
        )
    val = _validation(spec, class_names, seed, eval_augment, options)
    return train, val, list(class_names or train.class_names)


def make_validation_dataset(
    spec: DataSpec,
    *,
    seed: int | None,
    eval_augment: str = "center_crop",
    **options: Any,
) -> tuple[Any, list[str]]:
    """The validation pipeline of a spec alone, as `make_datasets` builds it.

    Returns:
        `(val, class_names)`.
    """
    class_names = class_names_of(spec)
    val = _validation(spec, class_names, seed, eval_augment, options)
    return val, list(class_names or val.class_names)


def _validation(
    spec: DataSpec,
    class_names: list[str] | None,
    seed: int | None,
    eval_augment: str,
    options: dict[str, Any],
) -> Any:
    common = {k: v for k, v in options.items() if k not in TRAIN_ONLY_OPTIONS}
    common.update(seed=seed, augment=eval_augment)
    if spec.kind == "tfds":
        return imagenet_lib.imagenet_dataset(
            spec.val_split,
            source=spec.val,
            **{**common, "shuffle": False},
            drop_remainder=False,
        )
    check = "decode" if _file_count(spec.val) <= DECODE_CHECK_LIMIT else "header"
    return imagenet_lib.imagenet_dataset(
        "validation",
        source=spec.val,
        class_names=class_names,
        **common,
        check_files=check,
        **_subset(spec, "validation"),
    )


def _subset(spec: DataSpec, subset: str) -> dict[str, Any]:
    if spec.kind != "split":
        return {}
    return {"validation_split": spec.validation_split, "subset": subset}
