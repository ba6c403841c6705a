"""Tests for keras_alexnet.data.tfds: TFDS's real imagenet2012 builder run on a
tiny fake ILSVRC-2012, read through `imagenet_dataset`."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_alexnet.data import imagenet_dataset
from keras_alexnet.preprocessing import imagenet_class_index
from tests.data_fixtures import (
    ILSVRC_CMYK_FILE,
    ILSVRC_PNG_FILE,
    pil_decode,
    write_fake_ilsvrc,
)

WNIDS = [wnid for wnid, _ in imagenet_class_index()]


@pytest.fixture(scope="module")
def fake_imagenet(tmp_path_factory):
    root = tmp_path_factory.mktemp("ilsvrc")
    manual_dir, data_dir = str(root / "manual"), str(root / "tfds")
    contents = write_fake_ilsvrc(manual_dir, val_count=4)
    tfds.disable_progress_bar()
    return {"manual_dir": manual_dir, "data_dir": data_dir, **contents}


def test_tfds_imagenet2012_builder_runs_on_a_fake_ilsvrc(fake_imagenet):
    # The real TFDS builder prepares the split from manual_dir; validation labels
    # come from its own validation_labels.txt, line k for ILSVRC2012_val_<k>.
    validation = imagenet_dataset(
        "validation",
        source="imagenet2012",
        data_dir=fake_imagenet["data_dir"],
        manual_dir=fake_imagenet["manual_dir"],
        variant=None,
        image_size=48,
        resize_size=64,
        batch_size=3,
    )
    labels_txt = tfds.core.tfds_path("datasets/imagenet2012/validation_labels.txt")
    first_lines = labels_txt.read_text().split()[:4]
    # Each output is matched to its source by its pixels (the evaluation crop
    # made by hand), so that its label can be checked against its file name.
    references = {}
    for name, data in fake_imagenet["validation"].items():
        window = pil_decode(data)[8:56, 16:64]
        references[name] = tf.image.resize(window, [48, 48], antialias=True).numpy()
    seen = set()
    for image, label in validation.unbatch().as_numpy_iterator():
        assert image.shape == (48, 48, 3)
        errors = {n: np.abs(image - r).mean() for n, r in references.items()}
        name = min(errors, key=errors.get)
        assert errors[name] < 2.0
        k = int(name[len("ILSVRC2012_val_") :][:8])
        assert label == WNIDS.index(first_lines[k - 1])
        seen.add(name)
    assert seen == set(references)
    assert validation.class_names == WNIDS


def test_tfds_train_split_with_cmyk_and_png(fake_imagenet):
    # The builder re-encodes the archive's CMYK JPEG and PNG named .JPEG; the
    # pipeline must give every image, with its class, at the model's size.
    train = imagenet_dataset(
        "train",
        source="imagenet2012",
        data_dir=fake_imagenet["data_dir"],
        manual_dir=fake_imagenet["manual_dir"],
        batch_size=2,
        seed=0,
    )
    images, labels = zip(*train.unbatch().as_numpy_iterator(), strict=True)
    expected = sorted(WNIDS.index(w) for w in fake_imagenet["train"].values())
    assert sorted(labels) == expected
    assert WNIDS.index(ILSVRC_CMYK_FILE[0]) in labels
    assert WNIDS.index(ILSVRC_PNG_FILE[0]) in labels
    assert all(image.shape == (227, 227, 3) for image in images)
    assert all(np.isfinite(image).all() for image in images)
