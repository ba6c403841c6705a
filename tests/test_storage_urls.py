"""Data on shared storage: DATA and `prepare`'s output as URLs `tf.io.gfile`
reads, exercised through TensorFlow's in-memory file system `ram://` (a path
the OS cannot open, so every read must take the URL route); local paths still
take the OS route; a TFDS split divided between workers by TFDS itself."""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_alexnet.data import (
    check_image_file,
    imagenet_dataset,
    list_image_folder,
    load_image,
    prepare_imagenet,
    storage,
)
from keras_alexnet.data.prepare import verify_prepared
from keras_alexnet.data.tfds import tfds_source
from keras_alexnet.resources import write_digits_folder
from keras_alexnet.runs.datasets import resolve_data

# write_digits_folder(per_class=4): 3 training and 1 validation image of each
# of the 10 digits.
DIGITS, TRAIN_PER_CLASS, VAL_PER_CLASS = [str(d) for d in range(10)], 3, 1


def _ram_folder() -> str:
    return f"ram://{uuid.uuid4().hex}"


def _copy_tree(local: os.PathLike, url: str) -> None:
    for folder, _, names in os.walk(local):
        relative = os.path.relpath(folder, local).replace(os.sep, "/")
        target = url if relative == "." else f"{url}/{relative}"
        tf.io.gfile.makedirs(target)
        for name in names:
            tf.io.gfile.copy(os.path.join(folder, name), f"{target}/{name}")


@pytest.fixture(scope="module")
def digits_url(tmp_path_factory):
    """The digits' train/ and val/ class folders, copied into ram://."""
    local = write_digits_folder(
        tmp_path_factory.mktemp("digits"), image_size=16, per_class=4
    )
    url = _ram_folder()
    _copy_tree(local, url)
    return url


def test_is_url():
    assert storage.is_url("gs://bucket/imagenet")
    assert storage.is_url("hdfs://namenode:8020/data")
    assert storage.is_url("ram://x")
    for local in ("/data/imagenet", "./gs://x", "data", "C:\\data", "~/imagenet"):
        assert not storage.is_url(local), local
    assert storage.join("gs://b/data", "train") == "gs://b/data/train"
    assert storage.absolute("gs://b/data") == "gs://b/data"


def test_local_paths_never_touch_gfile(tmp_path, monkeypatch):
    # A local folder is listed, checked and prepared by the OS calls as before:
    # with every tf.io.gfile function made to fail, it still works.
    data = write_digits_folder(tmp_path / "data", image_size=16, per_class=2)

    def refuse(*args, **kwargs):
        raise AssertionError(f"tf.io.gfile used for a local path: {args}")

    for name in ("exists", "isdir", "listdir", "walk", "stat", "GFile", "rename"):
        monkeypatch.setattr(tf.io.gfile, name, refuse)
    folder = list_image_folder(data / "train")
    assert folder.class_names == tuple(DIGITS)
    assert len(folder.files) == 10  # one training image of each digit
    assert all(isinstance(e, os.DirEntry) for e in storage.scandir(str(data)))
    spec = resolve_data(data)
    assert (spec.kind, spec.train) == ("folders", str(data / "train"))
    prepare_imagenet(data / "train", tmp_path / "prepared", verbose=0)
    verify_prepared(tmp_path / "prepared")


def test_url_folder_listed_and_read(digits_url):
    # The listing of a URL counts the files written, labels them by their
    # class folder, and the pipeline reads their bytes through tf.io.gfile.
    folder = list_image_folder(f"{digits_url}/train")
    assert folder.class_names == tuple(DIGITS)
    assert len(folder.files) == TRAIN_PER_CLASS * len(DIGITS)
    for path, label in zip(folder.files, folder.labels, strict=True):
        assert path.startswith(f"{digits_url}/train/{DIGITS[label]}/")
    assert folder.skipped == ()
    spec = resolve_data(digits_url)
    assert spec.kind == "folders"
    assert (spec.train, spec.val) == (f"{digits_url}/train", f"{digits_url}/val")
    val = imagenet_dataset(
        "validation", source=spec.val, image_size=24, variant=None, batch_size=4
    )
    labels = np.concatenate([y for _, y in val.as_numpy_iterator()])
    assert sorted(labels.tolist()) == list(range(10)) * VAL_PER_CLASS


def test_url_folder_keeps_the_file_checks():
    # Hidden files are left out, a non-image and a cut JPEG are skipped with
    # their path and reason; a missing URL folder is refused naming it.
    url = _ram_folder()
    image = np.full((20, 30, 3), 128, np.uint8)
    jpeg = tf.io.encode_jpeg(image).numpy()
    files = {
        "cat/good.jpg": jpeg,
        "cat/.hidden.jpg": b"not an image",
        "cat/notes.txt": b"not an image",
        "dog/cut.jpg": jpeg[: len(jpeg) // 2],
        "dog/deep/good.jpg": jpeg,
    }
    for name, data in files.items():
        tf.io.gfile.makedirs(os.path.dirname(f"{url}/{name}"))
        with tf.io.gfile.GFile(f"{url}/{name}", "wb") as f:
            f.write(data)
    with pytest.warns(UserWarning, match=r"Skipped 2 of 4 files") as caught:
        folder = list_image_folder(url)
    assert folder.files == (f"{url}/cat/good.jpg", f"{url}/dog/deep/good.jpg")
    assert folder.labels == (0, 1)
    skipped = dict(folder.skipped)
    assert set(skipped) == {f"{url}/cat/notes.txt", f"{url}/dog/cut.jpg"}
    assert skipped[f"{url}/cat/notes.txt"].startswith("not an image")
    assert skipped[f"{url}/dog/cut.jpg"].startswith("damaged JPEG")
    assert f"{url}/dog/cut.jpg" in str(caught[0].message)
    with pytest.raises(ValueError, match=f"does not exist. Received: '{url}/none'"):
        list_image_folder(f"{url}/none")
    assert check_image_file(f"{url}/cat") == "not a regular file (a folder)"
    assert check_image_file(f"{url}/none.jpg") == (
        f"cannot be read (No such file or directory: {url}/none.jpg)"
    )
    # A scheme TensorFlow has no file system for is named, not "missing".
    unknown = "The folder cannot be read: File system scheme 'nosuchfs' not"
    with pytest.raises(ValueError, match=unknown):
        list_image_folder("nosuchfs://bucket/data")
    with pytest.raises(ValueError, match="DATA cannot be read: File system scheme"):
        resolve_data("nosuchfs://bucket/data")


def test_url_flat_folder_with_a_labels_file():
    # A flat folder and its labels file (Caffe's `<file> <class>` lines), both
    # URLs: each image gets the class its line names.
    url = _ram_folder()
    tf.io.gfile.makedirs(url)
    jpeg = tf.io.encode_jpeg(np.full((8, 8, 3), 50, np.uint8)).numpy()
    classes = {"a.jpg": "cat", "b.jpg": "dog", "c.jpg": "cat"}
    for name in classes:
        with tf.io.gfile.GFile(f"{url}/{name}", "wb") as f:
            f.write(jpeg)
    labels_file = _ram_folder() + "/val.txt"
    with tf.io.gfile.GFile(labels_file, "w") as f:
        f.write("".join(f"{name} {c}\n" for name, c in classes.items()))
    folder = list_image_folder(url, labels_file=labels_file)
    assert folder.class_names == ("cat", "dog")
    assert dict(zip(folder.files, folder.labels, strict=True)) == {
        f"{url}/a.jpg": 0, f"{url}/b.jpg": 1, f"{url}/c.jpg": 0,
    }  # fmt: skip


def test_load_image_from_a_url(tmp_path):
    # The same bytes give the same model input, from a URL or from the disk.
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), np.uint8)
    local = tmp_path / "x.png"
    Image.fromarray(image).save(local)
    url = _ram_folder() + "/x.png"
    tf.io.gfile.copy(str(local), url)
    np.testing.assert_array_equal(load_image(url), load_image(local))
    with pytest.raises(ValueError, match=f"Cannot load the image '{url}x'"):
        load_image(url + "x")


def test_train_one_epoch_from_a_url(digits_url, tmp_path, capsys):
    # The `auto` recipe's survey counts the URL's training images (the line it
    # prints) and the run trains on them, its classes those of the folders.
    from keras_alexnet.runs import train

    results = train(
        digits_url, tmp_path / "run", epochs=1, fc_units=16, flip=False,
        lighting=False, verbose=1,
    )  # fmt: skip
    printed = capsys.readouterr().out
    images = TRAIN_PER_CLASS * len(DIGITS)
    assert f"an epoch of {images} images" in printed
    assert "images of about 16 px" in printed
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"] == digits_url
    with open(tmp_path / "run" / "log.csv") as f:
        assert len(f.read().splitlines()) == 2  # the header and epoch 1
    assert results["images"] == VAL_PER_CLASS * len(DIGITS)  # scored on val/


def _gfile_sha256(path: str) -> str:
    with tf.io.gfile.GFile(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_prepare_into_a_url_and_read_back(digits_url):
    # Shards and manifest written through tf.io.gfile: the recorded digests
    # are those of the bytes stored; the shards read back as every image with
    # its label; a rerun resumes; damage is found and named.
    dest = _ram_folder() + "/prepared"
    manifest = prepare_imagenet(
        f"{digits_url}/train", dest, resize_size=16, shard_size=8, verbose=0
    )
    images = TRAIN_PER_CLASS * len(DIGITS)
    assert manifest["images"] == images and len(manifest["shards"]) == 4
    assert sorted(tf.io.gfile.listdir(dest)) == sorted(
        ["prepare.json", *manifest["shards"]]
    )
    with tf.io.gfile.GFile(f"{dest}/prepare.json") as f:
        stored = json.load(f)
    assert stored["complete"] is True
    for shard, digest, size in zip(
        stored["shards"], stored["shard_sha256"], stored["shard_bytes"], strict=True
    ):
        assert _gfile_sha256(f"{dest}/{shard}") == digest
        assert tf.io.gfile.stat(f"{dest}/{shard}").length == size
    verify_prepared(dest)
    train = imagenet_dataset(
        "train", source=dest, image_size=16, variant=None, batch_size=2,
        augment="center_crop", shuffle=False,
    )  # fmt: skip
    labels = np.concatenate([y for _, y in train.as_numpy_iterator()])
    assert sorted(labels.tolist()) == sorted(list(range(10)) * TRAIN_PER_CLASS)
    before = {s: _gfile_sha256(f"{dest}/{s}") for s in manifest["shards"]}
    again = prepare_imagenet(
        f"{digits_url}/train", dest, resize_size=16, shard_size=8, verbose=0
    )
    assert again == manifest
    assert before == {s: _gfile_sha256(f"{dest}/{s}") for s in manifest["shards"]}
    first = f"{dest}/{manifest['shards'][0]}"
    with tf.io.gfile.GFile(first, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    with tf.io.gfile.GFile(first, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(ValueError, match=f"The prepared shard {first} is damaged"):
        verify_prepared(dest)


def test_prepare_refuses_a_url_it_does_not_own(digits_url):
    # A URL folder holding someone's file is left untouched; one inside the
    # source is refused.
    dest = _ram_folder()
    tf.io.gfile.makedirs(dest)
    with tf.io.gfile.GFile(f"{dest}/mine.txt", "w") as f:
        f.write("keep me")
    with pytest.raises(ValueError, match=r"holds other files \('mine.txt'\)"):
        prepare_imagenet(f"{digits_url}/train", dest, verbose=0)
    assert tf.io.gfile.listdir(dest) == ["mine.txt"]
    with pytest.raises(ValueError, match="should be outside `source`"):
        prepare_imagenet(digits_url, f"{digits_url}/train/out", verbose=0)


# --- TFDS: each worker's part of a split --------------------------------------

EXAMPLES, FILES = 12, 3


class StorageUrlsIds(tfds.core.GeneratorBasedBuilder):
    """12 images of 4x4 pixels, image `i` filled with the value `i`."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(4, 4, 3)),
                    "label": tfds.features.ClassLabel(names=["even", "odd"]),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(EXAMPLES):
            yield i, {"image": np.full((4, 4, 3), i, np.uint8), "label": i % 2}


@pytest.fixture(scope="module")
def ids_dataset(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    tfds.disable_progress_bar()
    builder = StorageUrlsIds(data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(num_shards=FILES)
    )
    return builder, data_dir


def _ids(dataset) -> list[int]:
    ids = []
    for encoded, label in dataset.as_numpy_iterator():
        with Image.open(io.BytesIO(encoded)) as image:
            value = int(np.asarray(image)[0, 0, 0])
        assert label == value % 2
        ids.append(value)
    return ids


@pytest.mark.parametrize("workers", [2, 5])
def test_tfds_split_between_workers(ids_dataset, workers):
    # Each worker reads its own part: equal lengths, no example twice, all of
    # them but the last `12 % workers` (the ids the builder wrote); and each
    # reads a part of the record files, not all three.
    builder, data_dir = ids_dataset
    assert builder.info.splits["train"].num_shards == FILES
    parts = [
        _ids(tfds_source("storage_urls_ids", "train", data_dir=data_dir,
                         download=False, shard=(workers, index)).dataset)
        for index in range(workers)
    ]  # fmt: skip
    assert [len(p) for p in parts] == [EXAMPLES // workers] * workers
    seen = [i for part in parts for i in part]
    assert len(set(seen)) == len(seen) == EXAMPLES - EXAMPLES % workers
    assert set(seen) <= set(range(EXAMPLES))
    if workers == 2:
        assert set(seen) == set(range(EXAMPLES))
    for split in tfds.even_splits("train", n=workers, drop_remainder=True):
        files = {i.filename for i in builder.info.splits[split].file_instructions}
        assert len(files) < FILES


def test_tfds_pipeline_shard_gives_equal_steps(ids_dataset):
    # Through imagenet_dataset: as many batches on each worker, none shared.
    _, data_dir = ids_dataset
    options = {"source": "storage_urls_ids", "data_dir": data_dir,
               "download": False, "image_size": 4, "resize_size": 4,
               "variant": None, "augment": "center_crop", "batch_size": 2}  # fmt: skip
    workers = [imagenet_dataset("train", shard=(2, i), **options) for i in (0, 1)]
    assert [int(w.cardinality()) for w in workers] == [3, 3]
    pixels = [
        sorted(int(x[0, 0, 0]) for x, _ in w.unbatch().as_numpy_iterator())
        for w in workers
    ]
    assert sorted(pixels[0] + pixels[1]) == list(range(EXAMPLES))
