"""The data API on a user's own dataset: class folders of small digit-like PNGs.

Checks the options a dataset other than ImageNet needs (`class_names`, train and
validation agreement, a labels file's own classes, `validation_split`, the
resize proportion, switchable augmentation, a user's preprocessing) against PIL
and hand computations, and that Keras sees the number of batches.
"""

from __future__ import annotations

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_alexnet.data import (
    check_same_classes,
    default_resize_size,
    imagenet_dataset,
    list_image_folder,
    split_image_folder,
)
from tests.data_fixtures import encode, natural_image, write

CLASSES = ("0", "1", "2", "3")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """`root/{train,val}/<digit>/<i>.png`: 5 train and 2 validation images a class,
    square 24x24 lossless PNGs; val lacks class "2"."""
    root = tmp_path_factory.mktemp("digits")
    for c, name in enumerate(CLASSES):
        for i in range(5):
            data = encode(natural_image(24, 24, 10 * c + i), "PNG")
            write(str(root / "train" / name / f"{i}.png"), data)
        if name != "2":
            for i in range(2):
                data = encode(natural_image(24, 24, 100 + 10 * c + i), "PNG")
                write(str(root / "val" / name / f"{i}.png"), data)
    return root


def _pil_resize(path, size):
    # The reference: PIL's antialiased bilinear resize of the whole square image.
    image = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    return np.asarray(image, np.float64)


def test_resize_size_follows_the_image_size_in_the_papers_proportion():
    # 227/256 for the paper: 67 px crops come from a 76 px image, not a 256 one.
    assert default_resize_size(227) == 256
    assert default_resize_size(67) == round(67 * 256 / 227) == 76
    assert default_resize_size(112, "torchvision") == 128
    assert default_resize_size(1) == 1


def test_small_eval_crop_sees_most_of_the_image(digits):
    # 24 px squares, image_size 16: resized to round(16 * 256 / 224) = 18, centre
    # 16 px crop at offset 1; with resize_size 256 it would be 16 of 256 px.
    dataset = imagenet_dataset(
        "validation", source=digits / "train", variant=None, image_size=16
    )
    images, labels = next(iter(dataset))
    path = sorted((digits / "train" / "0").iterdir())[0]
    reference = _pil_resize(path, 18)[1:17, 1:17]
    assert labels[0] == 0
    assert np.abs(images[0].numpy() - reference).max() < 4


@pytest.mark.parametrize("augment", ["paper", "modern"])
def test_flip_and_lighting_can_be_turned_off(digits, augment):
    # Crops of the whole square (scale (1, 1); image_size == resize_size), no
    # flip, no lighting: every epoch gives PIL's resize of each image, never its
    # mirror. With flip on, some images come out mirrored.
    options = {"variant": None, "image_size": 20, "batch_size": 20, "seed": 1}
    if augment == "paper":
        options.update(resize_size=20, lighting=False)
    else:
        options.update(scale=(1.0, 1.0))
    paths = sorted(str(p) for p in (digits / "train").rglob("*.png"))
    references = np.stack([_pil_resize(p, 20) for p in paths])

    def mirrored_count(dataset):
        count = 0
        for _ in range(2):
            for images, _ in dataset:
                for image in images.numpy():
                    errors = np.abs(references - image).max(axis=(1, 2, 3))
                    flipped = np.abs(references[:, :, ::-1] - image).max(axis=(1, 2, 3))
                    assert min(errors.min(), flipped.min()) < 4
                    count += int(flipped.min() < errors.min())
        return count

    plain = imagenet_dataset(
        "train", source=digits / "train", augment=augment, flip=False, **options
    )
    assert mirrored_count(plain) == 0
    flipping = imagenet_dataset(
        "train", source=digits / "train", augment=augment, **options
    )
    assert mirrored_count(flipping) > 0


def test_a_users_preprocessing_runs_on_each_batch(digits):
    options = {"variant": None, "image_size": 16, "batch_size": 4, "shuffle": False}
    plain = imagenet_dataset("validation", source=digits / "train", **options)
    halved = imagenet_dataset(
        "validation",
        source=digits / "train",
        preprocessing=keras.layers.Rescaling(0.5),
        **options,
    )
    for (x, y), (half, y2) in zip(plain, halved, strict=True):
        np.testing.assert_allclose(half.numpy(), x.numpy() * 0.5, rtol=1e-6)
        np.testing.assert_array_equal(y, y2)
    with pytest.raises(TypeError, match="preprocessing=3"):
        imagenet_dataset("train", source=digits / "train", preprocessing=3)


def test_validation_lacking_a_class_is_named_not_shifted(digits):
    train = list_image_folder(digits / "train")
    val = list_image_folder(digits / "val")
    assert val.class_names == ("0", "1", "3")
    with pytest.raises(ValueError, match=r"lacks the training classes \['2'\]"):
        check_same_classes(train.class_names, val.class_names)
    with pytest.raises(ValueError, match=r"classes the training data lacks: \['9'\]"):
        check_same_classes(CLASSES, (*CLASSES, "9"))
    # With the training classes given, "3" keeps its label 3.
    dataset = imagenet_dataset(
        "validation",
        source=digits / "val",
        class_names=train.class_names,
        variant=None,
        image_size=16,
        batch_size=10,
    )
    labels = np.concatenate([y.numpy() for _, y in dataset])
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 3, 3]
    assert dataset.class_names == list(CLASSES)


def test_flat_folder_takes_its_classes_from_the_labels_file(tmp_path):
    names = {"a.png": "cat", "b.png": "dog", "c.png": "cat", "d.png": "emu"}
    for name in names:
        write(str(tmp_path / "images" / name), encode(natural_image(8, 8, 1), "PNG"))
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{n} {c}\n" for n, c in names.items()))
    folder = list_image_folder(tmp_path / "images", labels_file=labels)
    assert folder.class_names == ("cat", "dog", "emu")
    assert folder.labels == (0, 1, 0, 2)
    # Class indices: "0" to the largest.
    labels.write_text("a.png 0\nb.png 2\nc.png 0\nd.png 1\n")
    folder = list_image_folder(tmp_path / "images", labels_file=labels)
    assert folder.class_names == ("0", "1", "2")
    assert folder.labels == (0, 2, 0, 1)


def test_validation_split_holds_out_part_of_each_class(digits):
    folder = list_image_folder(digits / "train")
    train = split_image_folder(folder, 0.2, "training", seed=3)
    val = split_image_folder(folder, 0.2, "validation", seed=3)
    # 5 images a class: round(0.2 * 5) = 1 held out of each.
    assert sorted(val.labels) == [0, 1, 2, 3]
    assert sorted(train.labels) == sorted([0, 1, 2, 3] * 4)
    assert not set(train.files) & set(val.files)
    assert set(train.files) | set(val.files) == set(folder.files)
    assert split_image_folder(folder, 0.2, "validation", seed=3).files == val.files
    dataset = imagenet_dataset(
        "validation",
        source=digits / "train",
        validation_split=0.2,
        subset="validation",
        seed=3,
        variant=None,
        image_size=16,
        check_files="decode",
    )
    assert dataset.cardinality() == 1
    with pytest.raises(ValueError, match="subset='train'"):
        split_image_folder(folder, 0.2, "train")
    with pytest.raises(ValueError, match="validation_split=1.5"):
        split_image_folder(folder, 1.5, "training")
    with pytest.raises(ValueError, match="go together"):
        imagenet_dataset("train", source=digits / "train", validation_split=0.2)


def test_missing_paths_are_no_such_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("data")
    with pytest.raises(ValueError, match="exist. Received: 'data/digits_pngx'"):
        imagenet_dataset("train", source="data/digits_pngx")
    with pytest.raises(ValueError, match="No such folder or TFDS dataset: 'digits_"):
        imagenet_dataset("train", source="digits_pngx", download=False)


def test_training_split_has_a_known_length_and_fits_without_running_out(tmp_path):
    # A truncated PNG passes no header check (no IEND), so plant one that does:
    # a JPEG whose middle is garbage decodes with an error only in the pipeline.
    good = encode(natural_image(24, 24, 0), quality=90)
    for c in range(2):
        for i in range(3):
            write(str(tmp_path / str(c) / f"{i}.jpg"), good)
    broken = good[:200] + b"\x00" * 50 + good[250:]
    write(str(tmp_path / "1" / "broken.jpg"), broken)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        listed = list_image_folder(tmp_path)
        dataset = imagenet_dataset(
            "train", source=tmp_path, variant=None, image_size=16, batch_size=2
        )
    batches = len(listed.files) // 2
    assert dataset.cardinality() == batches
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(dataset, epochs=2, verbose=0)
    assert not [w for w in caught if "ran out of data" in str(w.message)]
    assert len(history.history["loss"]) == 2
    # Every epoch has its full length, whatever failed to decode.
    assert sum(1 for _ in dataset) == batches
    assert tf.data.experimental.cardinality(dataset) == batches
