"""TFDS image-classification splits as undecoded `(image bytes, label)` pairs."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import tensorflow as tf

__all__ = ["TFDSSource", "tfds_builder", "tfds_source"]


def _expand(path: str | os.PathLike | None) -> str | None:
    return None if path is None else os.path.expanduser(os.fspath(path))


def tfds_builder(name: str, *, data_dir: str | os.PathLike | None = None) -> Any:
    """Returns TFDS's builder of `name`.

    Raises:
        ValueError: TFDS has no dataset of that name (the message says that a
            folder path should exist, since `source` may be either).
    """
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=_expand(data_dir))
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"No such folder or TFDS dataset: {name!r}. A folder path should exist "
            "(write it as ./name if it is in the current folder); TFDS names are "
            "listed at https://www.tensorflow.org/datasets/catalog."
        ) from None


@dataclasses.dataclass(frozen=True)
class TFDSSource:
    """A TFDS split as `(encoded image, label)` pairs, with its classes."""

    dataset: tf.data.Dataset
    class_names: tuple[str, ...]


def tfds_source(
    name: str,
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    manual_dir: str | os.PathLike | None = None,
    download: bool = True,
    shuffle_files: bool = False,
    seed: int | None = None,
    shard: tuple[int, int] | None = None,
) -> TFDSSource:
    """Opens a TFDS image-classification split without decoding its images.

    Args:
        name: the TFDS name, e.g. `"imagenet2012"` or `"imagenette/320px-v2"`.
        split: the TFDS split, slicing allowed (`"train[:1%]"`).
        data_dir: where TFDS keeps its datasets; TFDS's default if `None`.
        manual_dir: the folder holding manually downloaded archives (for
            `imagenet2012`: `ILSVRC2012_img_train.tar` and `ILSVRC2012_img_val.tar`).
        download: whether to prepare the dataset if `data_dir` lacks it.
        shuffle_files: whether to read the record files in a shuffled order.
        seed: the seed of that order.
        shard: `(num_shards, index)`: only this worker's part of `split`, one
            of `tfds.even_splits(split, num_shards, drop_remainder=True)`:
            contiguous parts of the same size that never share an example
            (the last `len % num_shards` examples are left out), each read
            from its own record files.

    Returns:
        A `TFDSSource` whose dataset yields `(encoded image bytes, int64 label)`.

    Raises:
        ValueError: `name` is no TFDS dataset, or not an image-classification one.
    """
    import tensorflow_datasets as tfds

    builder = tfds_builder(name, data_dir=data_dir)
    if download:
        config = tfds.download.DownloadConfig(manual_dir=_expand(manual_dir))
        builder.download_and_prepare(download_config=config)
    keys = builder.info.supervised_keys
    features = builder.info.features
    if (
        not isinstance(keys, tuple)
        or len(keys) != 2
        or not isinstance(features[keys[0]], tfds.features.Image)
        or not isinstance(features[keys[1]], tfds.features.ClassLabel)
    ):
        raise ValueError(
            "`source` should name a TFDS image-classification dataset, whose "
            "supervised keys are an Image and a ClassLabel. Received: "
            f"source={name!r} with supervised keys {keys!r}"
        )
    image_key, label_key = keys
    if shard is not None:
        # Equal parts: workers that took different numbers of steps would
        # wait for each other's gradients forever.
        num_shards, index = shard
        split = tfds.even_splits(split, n=num_shards, drop_remainder=True)[index]
    dataset = builder.as_dataset(
        split=split,
        shuffle_files=shuffle_files,
        decoders={image_key: tfds.decode.SkipDecoding()},
        # `imagenet_dataset(cache=...)` decides about caching, not TFDS.
        read_config=tfds.ReadConfig(shuffle_seed=seed, try_autocache=False),
    )
    dataset = dataset.map(
        lambda example: (example[image_key], example[label_key]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return TFDSSource(dataset, tuple(features[label_key].names))
