"""Tests for keras_alexnet.data.options: the configs of `imagenet_dataset` resolve
their defaults as the checkpoints' registry entries say, and refuse a mistake by
the name the caller passed."""

import pytest

from keras_alexnet.data.options import (
    AugmentConfig,
    BatchConfig,
    DecodeConfig,
    SourceConfig,
    check_crop_fits,
)
from keras_alexnet.variants import VARIANTS
from keras_alexnet.weights.registry import imagenet_checkpoint


@pytest.mark.parametrize("variant", VARIANTS)
def test_default_sizes_are_the_checkpoints(variant):
    checkpoint = imagenet_checkpoint(variant)
    decoding = DecodeConfig(variant=variant)
    assert decoding.image_size == checkpoint.input_size
    assert decoding.resize_size == checkpoint.preprocessing.resize_size
    assert decoding.dtype == "float32"


def test_no_variant_is_224_uint8_pixels_resized_from_256():
    decoding = DecodeConfig(variant=None)
    assert (decoding.image_size, decoding.resize_size, decoding.dtype) == (
        224,
        256,
        "uint8",
    )


def test_training_sets_the_defaults_of_the_stages():
    assert AugmentConfig(training=True).augment == "paper"
    assert AugmentConfig(training=False).augment == "center_crop"
    assert AugmentConfig(augment=None, training=True).augment == "center_crop"
    assert AugmentConfig(lighting=False).lighting_stddev == 0.0
    assert AugmentConfig(lighting=0.25).lighting_stddev == 0.25
    batching = BatchConfig(training=True)
    assert batching.shuffle and batching.drop_remainder
    assert not batching.deterministic
    batching = BatchConfig(training=False)
    assert not batching.shuffle and not batching.drop_remainder
    assert batching.deterministic
    assert SourceConfig("train[:10%]", source="tf_flowers").training
    assert not SourceConfig("validation", source="tf_flowers").training


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: SourceConfig(" "), ValueError, "Received: split=' '"),
        (lambda: SourceConfig("train", source=3), TypeError, "source=3"),
        (lambda: SourceConfig("train", on_error="warn"), ValueError, "on_error"),
        (lambda: SourceConfig("train", check_files="full"), ValueError, "check_"),
        (lambda: SourceConfig("train", download=1), TypeError, "download=1"),
        (
            lambda: SourceConfig(
                "train", source="./x", validation_split=1.5, subset="training"
            ),
            ValueError,
            "Received: validation_split=1.5",
        ),
        (
            lambda: SourceConfig(
                "train", source="./x", validation_split=0.5, subset="train"
            ),
            ValueError,
            "Received: subset='train'",
        ),
        (lambda: DecodeConfig(image_size=2.0), TypeError, "image_size=2.0"),
        (lambda: DecodeConfig(resize_size=0), ValueError, "resize_size=0"),
        (lambda: DecodeConfig(dtype="float16"), ValueError, "dtype='float16'"),
        (lambda: DecodeConfig(num_classes=True), TypeError, "num_classes=True"),
        (lambda: AugmentConfig(augment="auto_"), ValueError, "augment='auto_'"),
        (lambda: AugmentConfig(flip=1), TypeError, "Received: flip=1"),
        (lambda: AugmentConfig(lighting=-1), ValueError, "lighting=-1"),
        (lambda: AugmentConfig(scale=(0.5, 1)), ValueError, "augment='center_crop'"),
        (
            lambda: AugmentConfig(augment="modern", scale=(0.5, 0.2)),
            ValueError,
            r"Received: scale=\(0.5, 0.2\)",
        ),
        (lambda: BatchConfig(shuffle=1), TypeError, "True, False or None"),
        (lambda: BatchConfig(seed=-1), ValueError, "Received: seed=-1"),
        (lambda: BatchConfig(preprocessing=3), TypeError, "preprocessing=3"),
    ],
)
def test_each_config_names_the_argument(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_the_crop_must_fit_unless_the_preset_resizes_it():
    decoding = DecodeConfig(image_size=300, resize_size=256)
    with pytest.raises(ValueError, match="Received: image_size=300"):
        check_crop_fits(decoding, AugmentConfig(augment="paper"))
    check_crop_fits(decoding, AugmentConfig(augment="modern"))
