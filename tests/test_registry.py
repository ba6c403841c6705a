"""Every registry entry against a model built from it (after torchvision's test)."""

from __future__ import annotations

import numpy as np
import pytest

from keras_alexnet import CHECKPOINTS, AlexNet, preprocess_input
from keras_alexnet.weights import registry


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_entry_matches_the_model_it_builds(name):
    checkpoint = CHECKPOINTS[name]
    architecture = dict(checkpoint.architecture)
    lrn = None
    if architecture["normalization"] == "lrn":
        lrn = {
            key: architecture[f"lrn_{key}"] for key in ("size", "bias", "alpha", "beta")
        }
    model = AlexNet(
        weights=None,
        variant=checkpoint.variant,
        groups=architecture["groups"],
        normalization=architecture["normalization"] or "none",
        lrn=lrn,
    )
    assert model.count_params() == checkpoint.num_params
    size = checkpoint.input_size
    assert model.input_shape == (None, size, size, 3)
    assert registry.imagenet_checkpoint(checkpoint.variant) is checkpoint
    if lrn is not None:
        norm1 = model.get_layer("norm1").get_config()
        assert {key: norm1[key] for key in lrn} == lrn


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_entry_metadata_is_complete_and_consistent(name):
    checkpoint = CHECKPOINTS[name]
    assert checkpoint.name == name
    assert checkpoint.url.endswith("/" + checkpoint.file_name)
    assert checkpoint.license and checkpoint.source in ("caffe", "torch")
    assert 0 < checkpoint.top1 < checkpoint.top5 < 100
    lengths = {"sha1": 40, "sha256": 64, "sha256-prefix": 8}
    assert len(checkpoint.file_hash) == lengths[checkpoint.hash_algorithm]
    int(checkpoint.file_hash, 16)
    if checkpoint.hash_algorithm == "sha256-prefix":
        # torchvision names its files after the hash prefix it checks.
        assert checkpoint.file_hash in checkpoint.file_name


def test_published_facts():
    bvlc, tv = registry.BVLC_ALEXNET, registry.TORCHVISION_IMAGENET1K_V1
    assert (bvlc.top1, bvlc.top5, bvlc.input_size) == (57.1, 80.2, 227)
    assert bvlc.file_hash == "9116a64c0fbe4459d18f4bb6b56d647b63920377"
    assert (tv.top1, tv.top5, tv.input_size) == (56.522, 79.066, 224)
    assert tv.url == "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_preprocessing_constants_drive_preprocess_input(name):
    checkpoint = CHECKPOINTS[name]
    constants = checkpoint.preprocessing
    pixel = np.array([[[[200.0, 100.0, 50.0]]]], "float32")
    ordered = pixel[..., ::-1] if constants.channel_order == "bgr" else pixel
    expected = (ordered * constants.scale - np.array(constants.mean)) / np.array(
        constants.std
    )
    np.testing.assert_allclose(
        preprocess_input(pixel, variant=checkpoint.variant), expected, rtol=1e-6
    )


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match=r"Received: name='vgg16'"):
        registry.get_checkpoint("vgg16")
    with pytest.raises(ValueError, match=r"Received: variant='caffenet'"):
        registry.imagenet_checkpoint("caffenet")
