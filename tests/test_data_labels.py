"""Tests for keras_alexnet.data.labels: the four labels-file dialects of a flat
validation folder."""

import os

import pytest

from keras_alexnet.data import list_image_folder
from keras_alexnet.preprocessing import imagenet_class_index
from tests.data_fixtures import write_devkit_meta, write_flat_folder

WNIDS = [wnid for wnid, _ in imagenet_class_index()]


@pytest.fixture(scope="module")
def flat_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    write_flat_folder(str(root))
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
