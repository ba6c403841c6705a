"""prepare_imagenet and `keras-alexnet prepare`: 256-pixel shards, resumable."""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_alexnet.data import imagenet_dataset, prepare_imagenet
from keras_alexnet.data.prepare import verify_prepared
from tests.data_fixtures import TREE_CLASSES, encode, natural_image, write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = [(40, 60), (60, 30), (36, 36)]


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "train"
    images = {}
    for label, wnid in enumerate(TREE_CLASSES[:2]):
        for index, (height, width) in enumerate(SIZES):
            image = natural_image(height, width, seed=10 * label + index)
            path = write(str(root / wnid / f"{index}.JPEG"), encode(image, quality=95))
            images[path] = (image, label)
    return str(root), images


def _stored(output):
    """The (image, label) pairs of every shard, decoded by PIL."""
    with open(os.path.join(output, "prepare.json")) as file:
        manifest = json.load(file)
    pairs = []
    for shard in manifest["shards"]:
        for record in tf.data.TFRecordDataset(os.path.join(output, shard)):
            example = tf.train.Example.FromString(record.numpy())
            data = example.features.feature["image"].bytes_list.value[0]
            label = example.features.feature["label"].int64_list.value[0]
            pairs.append((np.asarray(Image.open(io.BytesIO(data))), label))
    return manifest, pairs


def test_prepare_stores_every_image_at_the_shorter_side(folder, tmp_path):
    source, images = folder
    output = str(tmp_path / "prepared")
    manifest = prepare_imagenet(source, output, resize_size=32, shard_size=4, verbose=0)
    assert manifest["images"] == 6
    assert manifest["shards"] == [
        "shard-00000-of-00002.tfrecord",
        "shard-00001-of-00002.tfrecord",
    ]
    assert manifest["class_names"] == list(TREE_CLASSES[:2])
    manifest, pairs = _stored(output)
    assert manifest["complete"] is True
    assert len(pairs) == 6
    # Each stored image against PIL's antialiased bilinear resize of the
    # original: same size (shorter side 32), same pixels up to JPEG and filters.
    matched = 0
    for image, label in images.values():
        height, width = image.shape[:2]
        scale = 32 / min(height, width)
        size = (round(width * scale), round(height * scale))
        reference = np.asarray(
            Image.fromarray(image).resize(size, Image.Resampling.BILINEAR), np.float64
        )
        for stored, stored_label in pairs:
            if stored.shape == reference.shape:
                error = np.mean(np.abs(stored - reference))
                if error < 6 and stored_label == label:
                    matched += 1
                    break
    assert matched == 6


def test_prepare_resumes_and_refuses_other_settings(folder, tmp_path):
    source, _ = folder
    output = str(tmp_path / "prepared")
    prepare_imagenet(source, output, resize_size=32, shard_size=4, verbose=0)
    first = os.path.join(output, "shard-00000-of-00002.tfrecord")
    second = os.path.join(output, "shard-00001-of-00002.tfrecord")
    with open(second, "rb") as file:
        second_bytes = file.read()
    os.remove(second)
    # An interrupted run leaves a temporary file and no shard: it is redone.
    with open(second + ".tmp", "wb") as file:
        file.write(b"half")
    before = os.stat(first).st_mtime_ns
    prepare_imagenet(source, output, resize_size=32, shard_size=4, verbose=0)
    assert os.stat(first).st_mtime_ns == before
    with open(second, "rb") as file:
        assert file.read() == second_bytes
    with pytest.raises(ValueError, match=r"other files or settings"):
        prepare_imagenet(source, output, resize_size=48, shard_size=4, verbose=0)
    # The refusal names the setting that differs (a default that changed, say).
    with pytest.raises(ValueError, match=r"\(quality=90 there, 95 here\)"):
        prepare_imagenet(
            source, output, resize_size=32, shard_size=4, quality=95, verbose=0
        )


def test_prepare_writes_only_into_its_own_folder(folder, tmp_path):
    # A folder holding prepare.json is read as prepared: shards written into
    # an image folder would silently change what it holds for imagenet_dataset.
    source, _ = folder
    before = sorted(os.walk(source))
    for output in (source, os.path.join(source, "prepared")):
        with pytest.raises(ValueError, match=r"should be outside `source`"):
            prepare_imagenet(source, output, verbose=0)
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"not prepared")
    with pytest.raises(ValueError, match=r"holds other files \('cat\.jpg'\)"):
        prepare_imagenet(source, str(other), verbose=0)
    assert sorted(os.walk(source)) == before
    assert os.listdir(other) == ["cat.jpg"]
    # A new folder, an empty one, or one it started (resuming) are taken.
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_imagenet(source, str(empty), resize_size=16, verbose=0)
    prepare_imagenet(source, str(empty), resize_size=16, verbose=0)


def test_imagenet_dataset_reads_prepared_shards(folder, tmp_path):
    source, _ = folder
    output = str(tmp_path / "prepared")
    prepare_imagenet(source, output, resize_size=32, shard_size=4, verbose=0)
    for augment in ("paper", "center_crop"):
        dataset = imagenet_dataset(
            "train",
            source=output,
            variant=None,
            image_size=24,
            resize_size=32,
            augment=augment,
            batch_size=6,
            drop_remainder=False,
            seed=1,
        )
        images, labels = next(iter(dataset))
        assert images.shape == (6, 24, 24, 3)
        assert sorted(labels.numpy().tolist()) == [0, 0, 0, 1, 1, 1]
        assert dataset.class_names == list(TREE_CLASSES[:2])


def test_imagenet_dataset_refuses_an_unfinished_folder(folder, tmp_path):
    source, _ = folder
    output = str(tmp_path / "prepared")
    prepare_imagenet(source, output, resize_size=32, shard_size=4, verbose=0)
    manifest_path = os.path.join(output, "prepare.json")
    with open(manifest_path) as file:
        manifest = json.load(file)
    manifest["complete"] = False
    with open(manifest_path, "w") as file:
        json.dump(manifest, file)
    with pytest.raises(ValueError, match=r"not fully prepared"):
        imagenet_dataset("train", source=output, variant=None)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"resize_size": 0}, r"Received: resize_size=0"),
        ({"shard_size": 2.5}, r"Received: shard_size=2\.5"),
        ({"quality": 101}, r"Received: quality=101"),
    ],
)
def test_prepare_rejects_bad_arguments(folder, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        prepare_imagenet(folder[0], str(tmp_path / "out"), verbose=0, **kwargs)


def test_cli_prepare(folder, tmp_path):
    source, _ = folder
    output = str(tmp_path / "prepared")
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "keras_alexnet", "prepare", source, output]
    result = subprocess.run(
        [*command, "--resize-size", "32", "--shard-size", "4", "--quality", "80"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "6 images of 2 classes in 2 shards" in result.stdout
    with open(os.path.join(output, "prepare.json"), encoding="utf-8") as file:
        assert json.load(file)["quality"] == 80
    bad = subprocess.run(
        [*command, "--shard-size", "0"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    # A usage error, in terms of the flag: one line, no traceback.
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("keras-alexnet prepare: error: argument --shard-size:")
    assert "Received: '0'" in last


def test_cli_warnings_are_one_line(folder, tmp_path, capsys):
    # A file that is not an image is skipped with a warning: one line from
    # keras-alexnet, not Python's file, line number and source line.
    from keras_alexnet import cli

    source = tmp_path / "source"
    shutil.copytree(folder[0], source)
    bad = next(source.iterdir()) / "notes.JPEG"
    bad.write_text("not an image")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        argv = ["prepare", str(source), str(tmp_path / "out"), "--resize-size", "16"]
        assert cli.main(argv) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "notes.JPEG" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("keras-alexnet: warning: Skipped 1 of 7 files")
    assert "UserWarning" not in err and "prepare.py:" not in err


def test_unpreprocessed_images_come_as_uint8_pixels(folder):
    source, _ = folder
    common = {
        "source": source,
        "variant": None,
        "image_size": 24,
        "resize_size": 32,
        "augment": "center_crop",
        "batch_size": 6,
    }
    pixels, _ = next(iter(imagenet_dataset("validation", **common)))
    floats, _ = next(iter(imagenet_dataset("validation", dtype="float32", **common)))
    assert pixels.dtype == tf.uint8 and floats.dtype == tf.float32
    # The same images, rounded to whole pixel values.
    expected = np.clip(np.round(floats.numpy()), 0, 255)
    np.testing.assert_array_equal(pixels.numpy(), expected)


def test_prepared_labels_follow_class_names(tmp_path):
    # Classes of 2 and 4 images: the counts of the labels tell them apart.
    source = tmp_path / "train"
    for wnid, count in (("a", 2), ("b", 4)):
        for index in range(count):
            image = natural_image(20, 24, seed=index)
            write(str(source / wnid / f"{index}.JPEG"), encode(image, quality=95))
    output = str(tmp_path / "prepared")
    prepare_imagenet(str(source), output, resize_size=16, shard_size=4, verbose=0)

    def labels(**kwargs):
        dataset = imagenet_dataset(
            "validation",
            source=output,
            variant=None,
            image_size=16,
            resize_size=16,
            batch_size=6,
            **kwargs,
        )
        found = sorted(int(label) for _, batch in dataset for label in batch.numpy())
        return found, dataset.class_names

    assert labels() == ([0, 0, 1, 1, 1, 1], ["a", "b"])
    # As for a folder source: labels index `class_names`, which may hold more.
    assert labels(class_names=["z", "b", "a"]) == ([1, 1, 1, 1, 2, 2], ["z", "b", "a"])
    with pytest.raises(ValueError, match=r"classes \['b'\] of the prepared folder"):
        labels(class_names=["a"])
    with pytest.raises(ValueError, match=r"Received: class_names=\('a', 'b', 'a'\)"):
        labels(class_names=["a", "b", "a"])
    # Shards cannot hold out a fraction: refused, not silently the same images.
    with pytest.raises(ValueError, match=r"Received: validation_split=0.5"):
        imagenet_dataset(
            "train", source=output, validation_split=0.5, subset="training"
        )
    with pytest.raises(ValueError, match=r"Received: labels_file='labels.txt'"):
        imagenet_dataset("train", source=output, labels_file="labels.txt")


def _batches_within(dataset, seconds=120):
    """Iterates `dataset` in a thread: a reader that loops forever fails here."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: [batch for batch in dataset]).result(seconds)


def test_a_damaged_shard_is_refused_not_skipped(folder, tmp_path):
    source, _ = folder
    output = str(tmp_path / "prepared")
    prepare_imagenet(source, output, resize_size=32, shard_size=4, verbose=0)
    second = os.path.join(output, "shard-00001-of-00002.tfrecord")
    with open(second, "rb") as file:
        data = file.read()
    common = {"source": output, "variant": None, "image_size": 24}
    common |= {"resize_size": 32, "batch_size": 2, "drop_remainder": False}
    # Its length known from the manifest: 6 images, 3 batches of 2.
    dataset = imagenet_dataset("train", **common)
    assert int(dataset.cardinality()) == 3
    assert sum(int(images.shape[0]) for images, _ in _batches_within(dataset)) == 6
    # Truncated: refused by name before the epoch (it used to lose the rest of
    # the shard with a logged warning).
    with open(second, "wb") as file:
        file.write(data[: len(data) // 2])
    for split in ("train", "validation"):
        with pytest.raises(ValueError, match=r"shard-00001-of-00002.tfrecord is dama"):
            imagenet_dataset(split, **common)
    # The same size with flipped bytes inside a record: TFRecord's checksum
    # stops the epoch with an error naming the shard, in bounded time.
    flipped = bytearray(data)
    flipped[len(data) // 2 : len(data) // 2 + 16] = bytes(
        255 - b for b in flipped[len(data) // 2 : len(data) // 2 + 16]
    )
    with open(second, "wb") as file:
        file.write(bytes(flipped))
    for split in ("train", "validation"):
        with pytest.raises(
            tf.errors.OpError,
            match=r"shard-00001-of-00002.tfrecord is damaged at record \d of 2",
        ):
            _batches_within(imagenet_dataset(split, **common))
    # Rewritten by rerunning prepare_imagenet, as the message says.
    os.remove(second)
    prepare_imagenet(source, output, resize_size=32, shard_size=4, verbose=0)
    with open(second, "rb") as file:
        assert file.read() == data


def test_a_manifest_cannot_point_outside_its_folder(folder, tmp_path):
    source, _ = folder
    output = tmp_path / "prepared"
    prepare_imagenet(source, str(output), resize_size=32, shard_size=4, verbose=0)
    manifest = json.loads((output / "prepare.json").read_text())
    manifest["shards"][0] = "../../etc/passwd"
    (output / "prepare.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"prepare.json is damaged"):
        imagenet_dataset("train", source=str(output), variant=None, image_size=24)


def _sha256_of(path):
    import hashlib

    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def test_a_rerun_checks_every_shard_against_its_digest(folder, tmp_path):
    source, _ = folder
    output = str(tmp_path / "prepared")
    manifest = prepare_imagenet(source, output, resize_size=32, shard_size=4, verbose=0)
    paths = [os.path.join(output, shard) for shard in manifest["shards"]]
    written = [pathlib.Path(path).read_bytes() for path in paths]
    # The digests and sizes of the files as written (hashlib, not the code's).
    assert manifest["shard_sha256"] == [_sha256_of(path) for path in paths]
    assert manifest["shard_bytes"] == [len(data) for data in written]
    verify_prepared(output)
    # One shard truncated, the other with one bit flipped (same size).
    with open(paths[0], "r+b") as file:
        file.truncate(len(written[0]) - 100)
    flipped = bytearray(written[1])
    flipped[len(flipped) // 2] ^= 0x40
    with open(paths[1], "wb") as file:
        file.write(bytes(flipped))
    with pytest.raises(ValueError, match=r"shard-00000-of-00002.tfrecord is damaged"):
        verify_prepared(output)
    with pytest.warns(UserWarning) as caught:
        again = prepare_imagenet(
            source, output, resize_size=32, shard_size=4, verbose=0
        )
    messages = " ".join(str(warning.message) for warning in caught)
    assert "shard-00000-of-00002.tfrecord is damaged (" in messages
    assert "shard-00001-of-00002.tfrecord is damaged (its SHA-256" in messages
    # Rewritten as they were, and recorded as written, not as found.
    assert [pathlib.Path(path).read_bytes() for path in paths] == written
    assert again["shard_bytes"] == manifest["shard_bytes"]
    verify_prepared(output)


def test_shards_of_an_older_manifest_are_checked_by_their_records(folder, tmp_path):
    source, _ = folder
    output = str(tmp_path / "prepared")
    prepare_imagenet(source, output, resize_size=32, shard_size=4, verbose=0)
    manifest_path = os.path.join(output, "prepare.json")
    manifest = json.loads(pathlib.Path(manifest_path).read_text())
    del manifest["shard_sha256"]  # as written before digests were recorded
    pathlib.Path(manifest_path).write_text(json.dumps(manifest))
    first = os.path.join(output, manifest["shards"][0])
    data = bytearray(pathlib.Path(first).read_bytes())
    data[len(data) // 2] ^= 0x01
    pathlib.Path(first).write_bytes(bytes(data))
    # Read as before (sizes only); checked record by record on request.
    imagenet_dataset("validation", source=output, variant=None, image_size=24)
    with pytest.raises(ValueError, match=r"00002.tfrecord is damaged \(record \d"):
        verify_prepared(output)
    with pytest.warns(UserWarning, match=r"is damaged \(record \d does not read"):
        again = prepare_imagenet(
            source, output, resize_size=32, shard_size=4, verbose=0
        )
    assert again["shard_sha256"][0] == _sha256_of(first)


@pytest.fixture(scope="module")
def prepared_once(tmp_path_factory):
    """A prepared folder of 6 images in 2 shards, written once for the module."""
    root = tmp_path_factory.mktemp("prepared_once")
    for label, wnid in enumerate(TREE_CLASSES[:2]):
        for index, (height, width) in enumerate(SIZES):
            image = natural_image(height, width, seed=10 * label + index)
            write(str(root / "train" / wnid / f"{index}.JPEG"), encode(image))
    output = root / "prepared"
    prepare_imagenet(
        str(root / "train"), str(output), resize_size=32, shard_size=4, verbose=0
    )
    return output


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("images", -1, r"`images` should be an integer >= 1. Received: images=-1"),
        ("images", 9, r"`shards` should name 3 files for 9 images"),
        ("quality", 0, r"`quality` should be an integer from 1 to 100"),
        ("resize_size", "256", r"`resize_size` should be an integer from 1 to 65536"),
        ("class_names", ["n01", "n01"], r"`class_names` should be a list of dist"),
        ("shard_bytes", [1], r"`shard_bytes` should hold one entry a shard"),
        ("shard_sha256", ["0" * 63, "0" * 64], r"`shard_sha256` should hold one"),
        ("skipped_files", [["a"]], r"`skipped_files` should be a list of \[path"),
    ],
)
def test_manifest_fields_are_checked_on_read(
    prepared_once, tmp_path, field, value, match
):
    output = tmp_path / "prepared"
    shutil.copytree(prepared_once, output)
    manifest = json.loads((output / "prepare.json").read_text())
    manifest[field] = value
    (output / "prepare.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"prepare.json is damaged: " + match):
        imagenet_dataset("train", source=str(output), variant=None, image_size=24)
