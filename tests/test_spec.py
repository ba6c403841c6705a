"""Tests for `keras_alexnet.weights.spec`: the one rule for a `weights` value."""

from __future__ import annotations

import pathlib
import re

import pytest

from keras_alexnet.weights import registry
from keras_alexnet.weights.spec import (
    CHECKPOINT_VALUES,
    WEIGHTS_VALUES,
    resolve_weights,
)


def test_none_means_random_weights():
    assert resolve_weights(None) == ("none", None)


@pytest.mark.parametrize(
    ("value", "variant", "expected"),
    [
        ("imagenet", None, registry.BVLC_ALEXNET),
        ("imagenet", "original", registry.BVLC_ALEXNET),
        ("imagenet", "torchvision", registry.TORCHVISION_IMAGENET1K_V1),
        ("bvlc_alexnet", None, registry.BVLC_ALEXNET),
        ("torchvision_imagenet1k_v1", None, registry.TORCHVISION_IMAGENET1K_V1),
        ("IMAGENET1K_V1", None, registry.TORCHVISION_IMAGENET1K_V1),
        ("AlexNet_Weights.IMAGENET1K_V1", None, registry.TORCHVISION_IMAGENET1K_V1),
        (registry.BVLC_ALEXNET, None, registry.BVLC_ALEXNET),
    ],
)
def test_checkpoint_values(value, variant, expected):
    kind, checkpoint = resolve_weights(value, variant=variant)
    assert kind == "checkpoint"
    assert checkpoint is expected


@pytest.mark.parametrize(
    "name", ["a.weights.h5", "a.keras", "a.caffemodel", "a.pth", "a.pt", "A.BIN"]
)
def test_an_existing_file_of_each_format(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    assert resolve_weights(str(path)) == ("file", str(path))
    # A path object too, returned as a string.
    assert resolve_weights(path) == ("file", str(path))


@pytest.mark.parametrize("value", ["vgg16", "weights.npz", 42, 1.5, True, ["imagenet"]])
def test_refused_values_name_weights_and_the_value(value):
    with pytest.raises(ValueError) as info:
        resolve_weights(value)
    message = str(info.value)
    assert message.startswith("`weights` should be None")
    assert message.endswith(f"Received: weights={value!r}")
    # Every accepted kind is named: None, a path's suffixes, each checkpoint.
    for word in [".weights.h5", ".caffemodel", "'imagenet'", "bvlc_alexnet"]:
        assert word in message


def test_folders_and_missing_files_are_refused(tmp_path):
    folder = tmp_path / "x.pth"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"folder.*Received: weights='.*x\.pth'"):
        resolve_weights(folder)
    missing = tmp_path / "missing.keras"
    with pytest.raises(
        ValueError, match=r"does not exist.*Received: weights='.*missing\.keras'"
    ):
        resolve_weights(str(missing))


def test_checkpoints_only(tmp_path):
    path = pathlib.Path(tmp_path / "a.pth")
    path.write_bytes(b"")
    assert resolve_weights("imagenet", files=False)[0] == "checkpoint"
    for value in (None, str(path)):
        with pytest.raises(ValueError) as info:
            resolve_weights(value, files=False)
        assert str(info.value) == (
            f"`weights` should be {CHECKPOINT_VALUES}. Received: weights={value!r}"
        )


def test_the_wording_names_every_checkpoint_and_suffix():
    for name, checkpoint in registry.CHECKPOINTS.items():
        assert name in CHECKPOINT_VALUES
        for alias in checkpoint.aliases:
            assert alias in CHECKPOINT_VALUES
    # The suffixes as the readers know them, typed here independently.
    suffixes = re.findall(r"\.[a-z0-9.]+(?=[, ])", WEIGHTS_VALUES)
    for suffix in (".weights.h5", ".keras", ".caffemodel", ".pth", ".pt", ".bin"):
        assert suffix in suffixes
