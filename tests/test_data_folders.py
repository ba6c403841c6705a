"""Tests for keras_alexnet.data.folders: listing a class tree with bad files, and
the listing's argument checks."""

import warnings

import pytest

from keras_alexnet.data import list_image_folder
from keras_alexnet.preprocessing import imagenet_class_index
from tests.data_fixtures import (
    TREE_CLASSES,
    encode,
    natural_image,
    write,
    write_bad_folder,
    write_flat_folder,
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
    write_flat_folder(str(root))
    return root


def test_listing_arguments(tmp_path, bad_folder, flat_folder):
    with pytest.raises(ValueError, match="Received: 'missing'"):
        list_image_folder("missing")
    with pytest.raises(TypeError, match="`root` should be a path.*Received: root=3"):
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
