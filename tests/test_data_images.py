"""load_image: the checkpoint's evaluation transform, against closed forms and PIL."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from keras_alexnet import CHECKPOINTS
from keras_alexnet.data import load_image
from keras_alexnet.weights import registry


def write_png(path, rng, height, width):
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


@pytest.mark.parametrize(
    ("weights", "width", "top", "left"),
    [
        # Caffe: (256 - 227) / 2 = 14.5 -> 14 and (260 - 227) / 2 = 16.5 -> 16.
        ("bvlc_alexnet", 260, 14, 16),
        # torchvision's CenterCrop: round((259 - 224) / 2 = 17.5) = 18 (half to
        # even, Python's round), (256 - 224) / 2 = 16.
        ("IMAGENET1K_V1", 259, 16, 18),
        # round(16.5) = 16 (half to even), not 17.
        ("torchvision_imagenet1k_v1", 257, 16, 16),
    ],
)
def test_crop_offsets_follow_the_checkpoints_rounding(
    tmp_path, rng, weights, width, top, left
):
    # The shorter side is already 256: no resampling, so the crop must be an
    # exact slice of the file's pixels at the checkpoint's offsets.
    pixels = write_png(tmp_path / "image.png", rng, 256, width)
    size = registry.get_checkpoint(weights).input_size
    crop = load_image(tmp_path / "image.png", weights, preprocess=False)
    np.testing.assert_array_equal(
        crop, pixels[top : top + size, left : left + size].astype("float32")
    )


def test_preprocessing_is_the_checkpoints(tmp_path, rng):
    pixels = write_png(tmp_path / "image.png", rng, 256, 256)
    crop = pixels[14:241, 14:241].astype("float32")
    mean_bgr = np.array([104.00698793, 116.66876762, 122.67891434], "float32")
    x = load_image(tmp_path / "image.png", CHECKPOINTS["bvlc_alexnet"])
    np.testing.assert_allclose(x, crop[..., ::-1] - mean_bgr, rtol=1e-6, atol=1e-4)
    x = load_image(tmp_path / "image.png", "torchvision", data_format="channels_first")
    expected = (pixels[16:240, 16:240] / 255.0 - (0.485, 0.456, 0.406)) / (
        0.229,
        0.224,
        0.225,
    )
    np.testing.assert_allclose(x, expected.transpose(2, 0, 1), rtol=1e-5, atol=1e-5)


def test_antialiased_resize_is_close_to_pils(tmp_path, rng):
    # torchvision's Resize(256) is PIL's antialiased bilinear filter; on a smooth
    # image TensorFlow's antialiased resize is within a few levels of it.
    y, x = np.mgrid[0:512, 0:600]
    smooth = np.stack([x * 0.4, y * 0.45, (x + y) * 0.2], -1).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "smooth.png")
    crop = load_image(tmp_path / "smooth.png", "IMAGENET1K_V1", preprocess=False)
    with Image.open(tmp_path / "smooth.png") as image:
        resized = np.asarray(image.resize((300, 256), Image.BILINEAR), "float32")
    top, left = round((256 - 224) / 2), round((300 - 224) / 2)
    reference = resized[top : top + 224, left : left + 224]
    assert np.abs(crop - reference).max() <= 3.0


def test_bad_files_and_arguments_are_named(tmp_path):
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(ValueError, match=r"folder\.jpg.*a folder"):
        load_image(tmp_path / "folder.jpg")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(ValueError, match=r"Cannot read .*text\.jpg.*not an image"):
        load_image(tmp_path / "text.jpg")
    with pytest.raises(ValueError, match=r"Received: weights='vgg16'"):
        load_image(tmp_path / "text.jpg", "vgg16")
