"""Tests for keras_alexnet.data.imagenet: the fit-ready pipelines end to end, on a
folder with bad files; preprocessing and labels against closed forms; seeded
bit-reproducibility; `model.fit` on every pipeline; ten-crop evaluation."""

import os
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet.data import evaluate_ten_crop, imagenet_dataset, ten_crop
from tests.data_fixtures import (
    encode,
    natural_image,
    pil_decode,
    write,
    write_bad_folder,
)

# Caffe's ILSVRC-2012 channel means (BGR) and torchvision's mean and std (RGB),
# restated from their sources as the test's reference.
CAFFE_BGR_MEAN = np.array([104.00698793, 116.66876762, 122.67891434])
TORCHVISION_MEAN = np.array([0.485, 0.456, 0.406])
TORCHVISION_STD = np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tree"))
    return root, write_bad_folder(root, height=40, width=52)


@pytest.fixture(scope="module")
def clean_folder(tmp_path_factory):
    """Nine lossless 32x40 PNGs in three classes."""
    root = tmp_path_factory.mktemp("clean")
    references = {}
    for i in range(9):
        data = encode(natural_image(32, 40, i), "PNG")
        path = write(str(root / f"n0000000{i % 3}" / f"{i}.png"), data)
        references[path] = (i % 3, pil_decode(data))
    return str(root), references


def _dataset(root, split="train", **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return imagenet_dataset(split, source=root, **kwargs)


def _batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def _tiny_model(image_size, classes=3, activation="softmax"):
    model = keras.Sequential(
        [
            keras.Input((image_size, image_size, 3)),
            keras.layers.Conv2D(4, 4, strides=4),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes, activation=activation),
        ]
    )
    return model


@pytest.mark.parametrize(
    "variant, augment, size, crops",
    [
        ("original", "paper", 227, None),
        ("torchvision", "modern", 224, None),
        (None, None, 224, None),
        ("original", "ten_crop", 227, 10),
    ],
)
def test_every_readable_image_comes_out_rgb_at_the_model_size(
    bad_folder, variant, augment, size, crops
):
    root, expected = bad_folder
    dataset = _dataset(
        root, variant=variant, augment=augment, batch_size=4, drop_remainder=False
    )
    batches = _batches(dataset)
    images = np.concatenate([x for x, _ in batches])
    labels = np.concatenate([y for _, y in batches])
    shape = (size, size, 3) if crops is None else (crops, size, size, 3)
    assert images.shape == (len(expected["readable"]), *shape)
    # Unpreprocessed images come as uint8 pixels, for include_preprocessing=True.
    assert images.dtype == (np.uint8 if variant is None else np.float32)
    assert labels.dtype == np.int32
    assert np.isfinite(images).all()
    assert sorted(labels) == sorted(label for label, _ in expected["readable"].values())
    assert len(dataset.skipped_files) == len(expected["unreadable"])


def test_without_the_listing_check_bad_files_are_dropped_mid_epoch(bad_folder):
    # check_files=None lets the text file and the truncated JPEG into the
    # pipeline: they must be dropped there, never stop the epoch. An evaluation
    # split is shorter by them; a training split keeps its length, each dropped
    # file replaced by a readable image.
    root, expected = bad_folder
    options = {"check_files": None, "batch_size": 5, "drop_remainder": False}
    dataset = _dataset(root, "validation", **options)
    labels = np.concatenate([y for _, y in _batches(dataset)])
    assert len(labels) == len(expected["readable"])
    listed = len(expected["readable"]) + len(expected["unreadable"])
    dataset = _dataset(root, "train", **options)
    assert dataset.cardinality() == -(-listed // 5)
    labels = np.concatenate([y for _, y in _batches(dataset)])
    assert len(labels) == listed
    assert set(labels) == {label for label, _ in expected["readable"].values()}


def test_on_error_raise_fails_before_training(bad_folder):
    with pytest.raises(ValueError, match="truncated.JPEG"):
        _dataset(bad_folder[0], on_error="raise")


def test_dataset_length_is_known_when_no_image_can_be_dropped(bad_folder):
    # Keras needs the number of batches to show progress and to avoid its "ran
    # out of data" message. A training split keeps its length whatever fails to
    # decode; an evaluation split knows it when the listing decoded every file.
    root, expected = bad_folder
    size = {"image_size": 24, "resize_size": 28, "batch_size": 2}
    unknown = tf.data.UNKNOWN_CARDINALITY
    batches = len(expected["readable"]) // 2
    assert _dataset(root, **size).cardinality() == batches
    assert _dataset(root, "validation", **size).cardinality() == unknown
    decoded = _dataset(root, "validation", check_files="decode", **size)
    assert decoded.cardinality() == -(-len(expected["readable"]) // 2)
    assert _dataset(root, check_files="decode", **size).cardinality() == batches


def test_eval_images_are_the_checkpoints_preprocessing_of_the_centre_crop(bad_folder):
    # Every format (CMYK, PNG named .JPEG, grayscale) must give the pixels PIL
    # gives, cropped and preprocessed as each checkpoint expects.
    root, expected = bad_folder
    # 40x52 images, resize_size 40: the 32 px centre crop is the window at (4, 10).
    references = [
        (label, image[4:36, 10:42].astype(np.float64))
        for label, image in expected["readable"].values()
    ]
    for variant in ("original", "torchvision"):
        dataset = _dataset(
            root,
            "validation",
            variant=variant,
            image_size=32,
            resize_size=40,
            batch_size=16,
        )
        images, labels = _batches(dataset)[0]
        assert len(images) == len(references)
        matched = set()
        for image, label in zip(images, labels, strict=True):
            if variant == "original":
                rgb = (image + CAFFE_BGR_MEAN)[..., ::-1]
            else:
                rgb = (image * TORCHVISION_STD + TORCHVISION_MEAN) * 255
            # Fused decoding of 4:2:0 JPEGs may differ in the window's last
            # column (see test_fused_decode_equals_hand_cut_window).
            errors = [np.abs(rgb - ref)[:, :-1].max() for _, ref in references]
            best = int(np.argmin(errors))
            assert errors[best] < 1e-3
            assert np.abs(rgb - references[best][1]).max() <= 16
            assert references[best][0] == label
            matched.add(best)
        assert len(matched) == len(references)


def test_seed_makes_the_pipeline_bit_reproducible(clean_folder):
    root, _ = clean_folder

    def two_epochs(seed):
        dataset = _dataset(root, image_size=24, resize_size=28, batch_size=4, seed=seed)
        return [_batches(dataset) for _ in range(2)]

    first, again, other = two_epochs(7), two_epochs(7), two_epochs(8)
    for epoch, epoch_again in zip(first, again, strict=True):
        for (x, y), (x_again, y_again) in zip(epoch, epoch_again, strict=True):
            np.testing.assert_array_equal(x, x_again)
            np.testing.assert_array_equal(y, y_again)
    # New crops (and order) every epoch, and for another seed.
    assert not np.array_equal(first[0][0][0], first[1][0][0])
    assert not np.array_equal(first[0][0][0], other[0][0][0])


def test_order_is_deterministic_only_when_asked(clean_folder):
    root, _ = clean_folder
    assert _dataset(root, batch_size=4).options().deterministic is False
    assert _dataset(root, seed=1, batch_size=4).options().deterministic is True
    assert _dataset(root, "validation").options().deterministic is True


def test_one_hot_labels_with_label_smoothing(clean_folder):
    root, references = clean_folder
    dataset = _dataset(
        root,
        "validation",
        image_size=24,
        resize_size=28,
        batch_size=9,
        label_mode="one_hot",
        label_smoothing=0.1,
        num_classes=5,
    )
    _, labels = _batches(dataset)[0]
    sparse = np.array([label for label, _ in references.values()])
    # Validation keeps the files' (sorted) order.
    order = np.argsort(list(references), kind="stable")
    expected = np.eye(5)[sparse[order]] * 0.9 + 0.1 / 5
    np.testing.assert_allclose(labels, expected, rtol=1e-6)


def test_batching_repeat_and_cache(clean_folder, tmp_path):
    root, _ = clean_folder
    kwargs = {"image_size": 24, "resize_size": 28, "batch_size": 4}
    train = _batches(_dataset(root, **kwargs))
    assert [len(y) for _, y in train] == [4, 4]  # the partial batch is dropped
    validation = _batches(_dataset(root, "validation", **kwargs))
    assert [len(y) for _, y in validation] == [4, 4, 1]
    repeated = _dataset(root, repeat=True, seed=3, **kwargs)
    labels = np.concatenate([y.numpy() for _, y in repeated.take(9)])
    assert np.bincount(labels).tolist() == [12, 12, 12]
    for cache in (True, str(tmp_path / "cache")):
        cached = _dataset(root, cache=cache, seed=3, **kwargs)
        for _ in range(2):
            assert sum(len(y) for _, y in _batches(cached)) == 8
    assert any(name.startswith("cache") for name in os.listdir(tmp_path))


def test_a_batch_larger_than_the_training_images_is_refused(clean_folder):
    root, _ = clean_folder
    # Nine images, batches of ten, incomplete batches dropped: no batch at all.
    with pytest.raises(ValueError, match=r"`batch_size` \(10\) is larger than the 9"):
        _dataset(root, image_size=24, resize_size=28, batch_size=10)
    # Validation keeps its incomplete batch, so one batch of nine is fine.
    validation = _dataset(root, "validation", image_size=24, batch_size=10)
    assert [len(y) for _, y in _batches(validation)] == [9]


def test_channels_first(clean_folder):
    root, _ = clean_folder
    keras.config.set_image_data_format("channels_first")
    try:
        dataset = _dataset(root, image_size=24, resize_size=28, batch_size=2)
        ten = _dataset(
            root, "validation", augment="ten_crop", image_size=24, batch_size=2
        )
    finally:
        keras.config.set_image_data_format("channels_last")
    assert dataset.element_spec[0].shape == (2, 3, 24, 24)
    assert ten.element_spec[0].shape == (None, 10, 3, 24, 24)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"batch_size": 0}, ValueError, "Received: batch_size=0"),
        ({"batch_size": 2.0}, TypeError, "Received: batch_size=2.0"),
        ({"shuffle_buffer": 0}, ValueError, "Received: shuffle_buffer=0"),
        ({"seed": -1}, ValueError, "Received: seed=-1"),
        ({"variant": "vgg"}, ValueError, "Received: variant='vgg'"),
        ({"augment": "autoaugment"}, ValueError, "Received: augment='autoaugment'"),
        ({"image_size": 300, "resize_size": 256}, ValueError, "image_size=300"),
        ({"label_mode": "int"}, ValueError, "Received: label_mode='int'"),
        ({"label_smoothing": 1.0}, ValueError, "Received: label_smoothing=1.0"),
        ({"label_smoothing": 0.1}, ValueError, "label_mode='sparse'"),
        ({"num_classes": 2}, ValueError, "Received: num_classes=2"),
        ({"on_error": "warn"}, ValueError, "Received: on_error='warn'"),
        ({"cache": 1}, TypeError, "Received: cache=1"),
        ({"repeat": "yes"}, TypeError, "Received: repeat='yes'"),
        ({"manual_dir": "/tmp"}, ValueError, "manual_dir='/tmp'"),
        ({"dtype": "float16"}, ValueError, "Received: dtype='float16'"),
    ],
)
def test_arguments_are_checked(clean_folder, kwargs, error, message):
    with pytest.raises(error, match=message):
        _dataset(clean_folder[0], **kwargs)


def test_split_and_source_are_checked(clean_folder):
    with pytest.raises(ValueError, match="Received: split=''"):
        imagenet_dataset("", source=clean_folder[0])
    with pytest.raises(TypeError, match="Received: source=3"):
        imagenet_dataset("train", source=3)
    with pytest.raises(ValueError, match="does not exist"):
        imagenet_dataset("train", source="./no/such/folder")
    with pytest.raises(ValueError, match="labels_file"):
        imagenet_dataset("train", source="imagenette", labels_file="x.txt")


@pytest.mark.parametrize("augment", ["paper", "modern", None])
def test_model_fit_runs_on_each_pipeline(clean_folder, augment):
    root, _ = clean_folder
    dataset = _dataset(
        root, augment=augment, image_size=24, resize_size=28, batch_size=4, seed=0
    )
    model = _tiny_model(24)
    model.compile("sgd", "sparse_categorical_crossentropy")
    history = model.fit(dataset, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_model_fit_with_one_hot_smoothed_labels(clean_folder):
    root, _ = clean_folder
    dataset = _dataset(
        root,
        image_size=24,
        resize_size=28,
        batch_size=4,
        label_mode="one_hot",
        label_smoothing=0.1,
        repeat=True,
    )
    model = _tiny_model(24)
    model.compile("sgd", "categorical_crossentropy")
    history = model.fit(dataset, epochs=1, steps_per_epoch=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_alexnet_fits_the_paper_pipeline(clean_folder):
    from keras_alexnet import AlexNet

    root, _ = clean_folder
    dataset = _dataset(root, batch_size=2, seed=0).take(1)
    model = AlexNet(weights=None, classes=3)
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy"
    )
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("from_logits", [False, True])
def test_evaluate_ten_crop_averages_softmax_of_the_crops(from_logits):
    # Each crop is constant: its channel values are the logits of six classes, so
    # a global-average-pooling model outputs exactly those logits (or softmax).
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 10, 6)) * 3
    crops = np.broadcast_to(logits[:, :, None, None, :], (7, 10, 4, 4, 6))
    labels = rng.integers(0, 6, size=7)
    model = keras.Sequential(
        [
            keras.Input((4, 4, 6)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Activation("linear" if from_logits else "softmax"),
        ]
    )
    dataset = tf.data.Dataset.from_tensor_slices((crops.astype("float32"), labels))
    result = evaluate_ten_crop(model, dataset.batch(3), from_logits=from_logits)
    mean = _softmax(logits).mean(axis=1)
    ranks = (mean > mean[np.arange(7), labels][:, None]).sum(axis=1)
    assert result == {
        "top1": float(np.mean(ranks == 0)),
        "top5": float(np.mean(ranks < 5)),
        "count": 7,
    }
    # The average of softmaxes, not the softmax of the average of logits, is
    # what is ranked: the two disagree on at least one image here.
    assert not np.array_equal(mean.argmax(-1), logits.mean(axis=1).argmax(-1))


def _caffe(rgb):
    return rgb[..., ::-1] - CAFFE_BGR_MEAN


def _torchvision(rgb):
    return (rgb / 255 - TORCHVISION_MEAN) / TORCHVISION_STD


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("variant", ["original", "torchvision"])
def test_resampling_follows_the_checkpoint(clean_folder, variant, dtype):
    # 32x40 images, resize_size 24, image_size 16: resized to 24x30 with
    # OpenCV-like bilinear (original, Caffe) or PIL-like antialiased bilinear
    # (torchvision), then the centre 16x16 window at ((24-16)//2, (30-16)//2).
    # uint8 pixels are that window rounded, left for the model to preprocess.
    root, references = clean_folder
    dataset = _dataset(
        root, "validation", variant=variant, image_size=16, resize_size=24, dtype=dtype
    )
    images, _ = _batches(dataset)[0]
    assert images.dtype == dtype
    preprocess = _caffe if variant == "original" else _torchvision
    if dtype == "uint8":

        def preprocess(rgb):  # half to even, as np.round
            return np.clip(np.round(rgb), 0, 255)

    for image, path in zip(images, sorted(references), strict=True):
        full = references[path][1]
        expected = {
            antialias: preprocess(
                tf.image.resize(full, [24, 30], antialias=antialias).numpy()[4:20, 7:23]
            )
            for antialias in (False, True)
        }
        right = variant == "torchvision"
        np.testing.assert_allclose(image, expected[right], atol=1e-4)
        assert np.abs(image - expected[not right]).max() > 1e-2


def test_evaluate_ten_crop_on_the_ten_crop_pipeline(clean_folder):
    root, references = clean_folder
    dataset = _dataset(
        root, "validation", augment="ten_crop", image_size=24, resize_size=28
    )
    # The crops by hand: central 32x32 square of the PIL decode, resized to 28
    # OpenCV-like (the original variant), ten hand-cut crops, Caffe preprocessing.
    expected = []
    for path in sorted(references):
        label, image = references[path]
        square = tf.image.resize(image[:, 4:36], [28, 28]).numpy()
        expected.append((label, _caffe(ten_crop(square, 24))))
    crops = np.concatenate([x for x, _ in _batches(dataset)])
    np.testing.assert_allclose(crops, [c for _, c in expected], atol=1e-4)

    model = _tiny_model(24)
    result = evaluate_ten_crop(model, dataset)
    assert result["count"] == len(references)
    correct = 0
    for label, ten in expected:
        mean = model.predict_on_batch(ten.astype("float32")).mean(axis=0)
        correct += int(np.argmax(mean) == label)
    assert result["top1"] == pytest.approx(correct / len(references))
    assert result["top5"] == 1.0  # three classes


def test_evaluate_ten_crop_shows_a_progress_bar_with_its_total(capsys):
    # Seven images in batches of three: three batches, "3/3" when done (one
    # line: stdout is not a terminal here); verbose=0 prints nothing.
    model = _tiny_model(8)
    crops = np.zeros((7, 10, 8, 8, 3), "float32")
    dataset = tf.data.Dataset.from_tensor_slices((crops, np.zeros(7, "int64")))
    evaluate_ten_crop(model, dataset.batch(3))
    assert re.fullmatch(r"3/3 - \d+s - .*/batch\n", capsys.readouterr().out)
    # A list knows its length too.
    evaluate_ten_crop(model, [(crops[:2], np.zeros(2))] * 2)
    assert re.fullmatch(r"2/2 - \d+s - .*/batch\n", capsys.readouterr().out)
    evaluate_ten_crop(model, dataset.batch(3), verbose=0)
    assert capsys.readouterr().out == ""


def test_evaluate_ten_crop_arguments():
    model = _tiny_model(8)
    with pytest.raises(TypeError, match="Received: model=str"):
        evaluate_ten_crop("model", [])
    with pytest.raises(ValueError, match=r"Received: crops.shape=\(2, 8, 8, 3\)"):
        evaluate_ten_crop(model, [(np.zeros((2, 8, 8, 3)), np.zeros(2))])
    with pytest.raises(ValueError, match="no images"):
        evaluate_ten_crop(model, [])
