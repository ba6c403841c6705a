"""preprocess_input and decode_predictions against closed forms and the class file."""

from __future__ import annotations

import hashlib
import importlib.resources
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import decode_predictions, imagenet_class_index, preprocess_input
from tests.backend_utils import to_numpy

# The MD5 Keras records for the file it downloads from
# storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json
# (`file_hash` in keras/src/applications/imagenet_utils.py, decode_predictions).
KERAS_CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"
# Caffe's ilsvrc_2012_mean.npy channel means (B, G, R); torchvision's mean/std (RGB).
CAFFE_BGR_MEAN = np.array([104.00698793, 116.66876762, 122.67891434])
TORCH_MEAN = np.array([0.485, 0.456, 0.406])
TORCH_STD = np.array([0.229, 0.224, 0.225])


def expected(x_rgb, variant):
    x = np.asarray(x_rgb, "float64")
    if variant == "original":
        return x[..., ::-1] - CAFFE_BGR_MEAN
    return (x / 255.0 - TORCH_MEAN) / TORCH_STD


@pytest.mark.parametrize("variant", ["original", "torchvision"])
def test_numpy_matches_the_closed_form(rng, variant):
    x = rng.integers(0, 256, (2, 5, 4, 3)).astype("uint8")
    outputs = preprocess_input(x, variant=variant)
    assert isinstance(outputs, np.ndarray) and outputs.dtype == np.float32
    np.testing.assert_allclose(outputs, expected(x, variant), rtol=1e-5, atol=1e-4)
    # One image, not a batch, works the same.
    np.testing.assert_allclose(
        preprocess_input(x[0], variant=variant), expected(x[0], variant), atol=1e-4
    )


@pytest.mark.parametrize("variant", ["original", "torchvision"])
def test_tf_tensors_inside_tf_data(rng, variant):
    x = rng.integers(0, 256, (3, 4, 4, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices(x).map(
        lambda image: preprocess_input(image, variant=variant)
    )
    outputs = np.stack([image.numpy() for image in dataset])
    np.testing.assert_allclose(outputs, expected(x, variant), rtol=1e-5, atol=1e-4)


@pytest.mark.backend
@pytest.mark.parametrize("variant", ["original", "torchvision"])
def test_backend_tensors(rng, variant):
    x = rng.integers(0, 256, (2, 3, 3, 3)).astype("float32")
    outputs = to_numpy(
        preprocess_input(keras.ops.convert_to_tensor(x), variant=variant)
    )
    np.testing.assert_allclose(outputs, expected(x, variant), rtol=1e-5, atol=1e-4)


def test_channels_first(rng):
    x = rng.integers(0, 256, (2, 4, 4, 3)).astype("float32")
    outputs = preprocess_input(
        np.transpose(x, (0, 3, 1, 2)), data_format="channels_first"
    )
    np.testing.assert_allclose(
        np.transpose(outputs, (0, 2, 3, 1)), expected(x, "original"), atol=1e-4
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"variant": "caffe"}, r"Received: variant='caffe'"),
        ({"data_format": "NHWC"}, r"Received: data_format='NHWC'"),
        ({"x": np.zeros((2, 4, 4, 4))}, r"Received: x\.shape=\(2, 4, 4, 4\)"),
        ({"x": np.zeros((4, 4))}, r"Received: x\.shape=\(4, 4\)"),
    ],
)
def test_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        preprocess_input(**{"x": np.zeros((1, 4, 4, 3)), **kwargs})


def test_class_index_is_the_shipped_copy_of_keras_index():
    # The shipped bytes are Keras' published file, by the hash Keras checks.
    resource = importlib.resources.files("keras_alexnet") / "resources"
    shipped = (resource / "imagenet_class_index.json").read_bytes()
    assert hashlib.md5(shipped).hexdigest() == KERAS_CLASS_INDEX_MD5
    classes = imagenet_class_index()
    assert len(classes) == 1000
    assert [list(c) for c in classes] == [
        json.loads(shipped)[str(i)] for i in range(1000)
    ]
    # Sorted-wnid order, the order shared by Keras, Caffe, TFDS and torchvision.
    wnids = [wnid for wnid, _ in classes]
    assert wnids == sorted(wnids) and len(set(wnids)) == 1000
    assert classes[0] == ("n01440764", "tench")
    assert classes[999] == ("n15075141", "toilet_tissue")
    # The two names the index uses twice, for two synsets each.
    assert classes[134] == ("n02012849", "crane")  # the bird
    assert classes[517] == ("n03126707", "crane")  # the machine
    assert classes[638] == ("n03710637", "maillot")
    assert classes[639] == ("n03710721", "maillot")


def test_decode_predictions_ranks_classes():
    preds = np.zeros((2, 1000), "float32")
    preds[0, [281, 285, 7]] = [0.7, 0.2, 0.1]
    preds[1, 999] = 1.0
    decoded = decode_predictions(preds, top=3)
    assert [wnid for wnid, _, _ in decoded[0]] == [
        "n02123045",
        "n02124075",
        "n01514668",
    ]
    assert [name for _, name, _ in decoded[0]] == ["tabby", "Egyptian_cat", "cock"]
    assert decoded[0][0][2] == pytest.approx(0.7)
    assert decoded[1][0][:2] == ("n15075141", "toilet_tissue")


@pytest.mark.parametrize(
    ("preds", "top", "match"),
    [
        (np.zeros((2, 10)), 5, r"Received: preds\.shape=\(2, 10\)"),
        (np.zeros(1000), 5, r"Received: preds\.shape=\(1000,\)"),
        (np.zeros((1, 1000)), 0, r"Received: top=0"),
        (np.zeros((1, 1000)), 2.0, r"Received: top=2\.0"),
    ],
)
def test_decode_predictions_rejects_bad_input(preds, top, match):
    with pytest.raises(ValueError, match=match):
        decode_predictions(preds, top=top)
