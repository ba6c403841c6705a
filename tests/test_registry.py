"""Every registry entry against a model built from it (after torchvision's test)."""

from __future__ import annotations

import numpy as np
import pytest

from keras_alexnet import CHECKPOINTS, AlexNet, preprocess_input, variants
from keras_alexnet.weights import registry


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_entry_matches_the_model_it_builds(name):
    checkpoint = CHECKPOINTS[name]
    architecture = checkpoint.architecture
    lrn = None if architecture.lrn is None else architecture.lrn.as_dict()
    assert (architecture.normalization == "lrn") == (lrn is not None)
    model = AlexNet(
        weights=None,
        variant=architecture.variant,
        groups=architecture.groups,
        normalization=architecture.normalization,
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


def test_published_preprocessing_and_lrn_constants():
    # Caffe: OpenCV resize (no antialiasing), offsets rounded down, BGR means,
    # LRN alpha = 1e-4 / local_size, k = 1 (models/bvlc_alexnet/train_val.prototxt).
    caffe = registry.BVLC_ALEXNET.preprocessing
    assert (caffe.resize_size, caffe.crop_size, caffe.antialias) == (256, 227, False)
    assert (caffe.crop_rounding, caffe.channel_order) == ("floor", "bgr")
    assert registry.BVLC_ALEXNET.architecture.lrn.as_dict() == {
        "size": 5,
        "bias": 1.0,
        "alpha": 1e-4 / 5,
        "beta": 0.75,
    }
    # torchvision: Resize(256) antialiased by PIL, CenterCrop(224) rounds offsets.
    tv = registry.TORCHVISION_IMAGENET1K_V1.preprocessing
    assert (tv.resize_size, tv.crop_size, tv.antialias) == (256, 224, True)
    assert (tv.crop_rounding, tv.channel_order) == ("round", "rgb")
    assert registry.TORCHVISION_IMAGENET1K_V1.architecture.lrn is None
    assert registry.TORCHVISION_IMAGENET1K_V1.architecture.normalization == "none"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bvlc_alexnet", "bvlc_alexnet"),
        ("torchvision_imagenet1k_v1", "torchvision_imagenet1k_v1"),
        ("IMAGENET1K_V1", "torchvision_imagenet1k_v1"),
        ("AlexNet_Weights.IMAGENET1K_V1", "torchvision_imagenet1k_v1"),
    ],
)
def test_checkpoints_are_found_by_name_and_torchvision_alias(name, expected):
    assert registry.get_checkpoint(name) is CHECKPOINTS[expected]


@pytest.mark.parametrize("bad", ["caffenet", None, "Original", 1])
def test_variant_is_checked_in_one_place(bad):
    with pytest.raises(ValueError, match=rf"Received: variant={bad!r}"):
        variants.check_variant(bad)
    assert variants.check_variant(None, allow_none=True) is None


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match=r"Received: name='vgg16'"):
        registry.get_checkpoint("vgg16")
    with pytest.raises(ValueError, match=r"Received: variant='caffenet'"):
        registry.imagenet_checkpoint("caffenet")


def test_loading_errors_are_public_and_catchable_as_builtin_errors():
    import keras_alexnet

    assert issubclass(keras_alexnet.ChecksumError, ValueError)
    assert issubclass(keras_alexnet.DownloadError, OSError)
    assert issubclass(keras_alexnet.UnsafeCheckpointError, ValueError)
    assert {"ChecksumError", "DownloadError", "UnsafeCheckpointError"} <= set(
        keras_alexnet.__all__
    )
