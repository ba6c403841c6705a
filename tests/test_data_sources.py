"""Tests for keras_alexnet.data.sources: folder listing with bad files, the labels
files of a flat validation folder, and TFDS's real imagenet2012 builder run on a
tiny fake ILSVRC-2012."""

import os
import warnings

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_alexnet.data import imagenet_dataset, list_image_folder
from keras_alexnet.preprocessing import imagenet_class_index
from tests.data_fixtures import (
    ILSVRC_CMYK_FILE,
    ILSVRC_PNG_FILE,
    TREE_CLASSES,
    encode,
    natural_image,
    pil_decode,
    write,
    write_bad_folder,
    write_devkit_meta,
    write_fake_ilsvrc,
)

WNIDS = [wnid for wnid, _ in imagenet_class_index()]


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tree"))
    return root, write_bad_folder(root)


def test_tree_listing_keeps_readable_images_and_names_the_rest(bad_folder):
    root, expected = bad_folder
    with pytest.warns(UserWarning) as record:
        folder = list_image_folder(root)
    assert folder.class_names == TREE_CLASSES
    assert folder.files == tuple(sorted(expected["readable"]))
    assert folder.labels == tuple(expected["readable"][f][0] for f in folder.files)
    assert sorted(path for path, _ in folder.skipped) == sorted(expected["unreadable"])
    message = str(record[0].message)
    assert f"Skipped 3 of {len(folder.files) + 3} files" in message
    for path in expected["unreadable"]:
        assert path in message
    assert not any(".DS_Store" in f for f in folder.files)


@pytest.mark.parametrize("check_files", ["header", "decode"])
def test_on_error_raise_names_the_unreadable_files(bad_folder, check_files):
    root, expected = bad_folder
    with pytest.raises(ValueError, match="truncated.JPEG") as error:
        list_image_folder(root, on_error="raise", check_files=check_files)
    for path in expected["unreadable"]:
        assert path in str(error.value)


def test_decode_check_agrees_with_header_check(bad_folder):
    root, expected = bad_folder
    with pytest.warns(UserWarning):
        folder = list_image_folder(root, check_files="decode")
    assert folder.files == tuple(sorted(expected["readable"]))


def test_jpeg_with_a_long_trailer_is_kept(tmp_path):
    # Some writers append data after the end-of-image marker: the tail check is
    # inconclusive, and decoding decides.
    data = encode(natural_image(32, 32, 0)) + b"\x00" * 4096
    write(str(tmp_path / "a" / "trailer.JPEG"), data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder = list_image_folder(tmp_path)
    assert len(folder.files) == 1 and not folder.skipped


def test_class_names_fix_the_label_order(tmp_path):
    # A subset of ImageNet labelled like the 1000-class heads.
    for wnid in ("n01484850", "n01440764"):
        write(str(tmp_path / wnid / "x.JPEG"), encode(natural_image(16, 16, 0)))
    folder = list_image_folder(tmp_path, class_names=WNIDS)
    assert folder.labels == (WNIDS.index("n01440764"), WNIDS.index("n01484850"))
    with pytest.raises(ValueError, match="n01484850"):
        list_image_folder(tmp_path, class_names=["n01440764", "n99999999"])


@pytest.fixture(scope="module")
def flat_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    images = root / "images"
    for i in (1, 2, 3, 4):
        write(
            str(images / f"ILSVRC2012_val_{i:08d}.JPEG"),
            encode(natural_image(16, 16, i)),
        )
    write(str(images / "README"), b"not an image, and no label either")
    return root


# The classes of validation images 1 to 4 in every format below.
FLAT_WNIDS = ["n01751748", "n09193705", "n02105855", "n04263257"]


def _write_labels(root, kind):
    labels = root / kind
    os.makedirs(labels, exist_ok=True)
    names = [f"ILSVRC2012_val_{i:08d}" for i in (1, 2, 3, 4)]
    if kind == "wnid_per_line":
        # TFDS's validation_labels.txt format.
        text = "\n".join(FLAT_WNIDS)
        path = labels / "validation_labels.txt"
    elif kind == "caffe_val_txt":
        text = "\n".join(
            f"{n}.JPEG {WNIDS.index(w)}" for n, w in zip(names, FLAT_WNIDS, strict=True)
        )
        path = labels / "val.txt"
    elif kind == "kaggle_csv":
        rows = [
            f"{n},{w} 1 2 30 40 {w} 5 6 7 8"
            for n, w in zip(names, FLAT_WNIDS, strict=True)
        ]
        text = "ImageId,PredictionString\n" + "\n".join(rows[::-1])
        path = labels / "LOC_val_solution.csv"
    else:
        # The devkit numbers classes its own way: here ILSVRC2012_ID 7 + k.
        wnid_for_id = {7 + k: w for k, w in enumerate(FLAT_WNIDS)}
        write_devkit_meta(str(labels / "meta.mat"), wnid_for_id)
        text = "\n".join(str(7 + k) for k in range(4))
        path = labels / "ILSVRC2012_validation_ground_truth.txt"
    path.write_text(text + "\n")
    return path


@pytest.mark.parametrize(
    "kind", ["wnid_per_line", "caffe_val_txt", "kaggle_csv", "devkit_ground_truth"]
)
def test_flat_folder_labels_files(flat_folder, kind):
    labels_file = _write_labels(flat_folder, kind)
    with pytest.warns(UserWarning, match="README: no label"):
        folder = list_image_folder(flat_folder / "images", labels_file=labels_file)
    assert [os.path.basename(f) for f in folder.files] == [
        f"ILSVRC2012_val_{i:08d}.JPEG" for i in (1, 2, 3, 4)
    ]
    assert folder.labels == tuple(WNIDS.index(w) for w in FLAT_WNIDS)
    assert folder.class_names == tuple(WNIDS)


def test_devkit_ids_need_meta_mat(tmp_path, flat_folder):
    path = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    path.write_text("490\n361\n171\n822\n")
    with pytest.raises(ValueError, match="meta.mat"):
        list_image_folder(flat_folder / "images", labels_file=path)


def test_listing_arguments(tmp_path, bad_folder, flat_folder):
    with pytest.raises(ValueError, match="Received: 'missing'"):
        list_image_folder("missing")
    with pytest.raises(TypeError, match="Received: 3"):
        list_image_folder(3)
    with pytest.raises(ValueError, match="Received: on_error='ignore'"):
        list_image_folder(bad_folder[0], on_error="ignore")
    with pytest.raises(ValueError, match="Received: check_files='full'"):
        list_image_folder(bad_folder[0], check_files="full")
    with pytest.raises(ValueError, match="Received: labels_file="):
        list_image_folder(bad_folder[0], labels_file=str(tmp_path / "x.txt"))
    with pytest.raises(ValueError, match="Received: labels_file=None"):
        list_image_folder(flat_folder / "images")
    with pytest.raises(TypeError, match="Received: class_names='n01440764'"):
        list_image_folder(bad_folder[0], class_names="n01440764")


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
