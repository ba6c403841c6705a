"""Tests for keras_alexnet.data.augment: crops against hand-cut pixel windows of PIL
decodes, PCA lighting against its closed form, ten crops against NumPy slicing."""

import numpy as np
import pytest
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view

from keras_alexnet.data import augment
from keras_alexnet.data.augment import (
    decode_crop,
    eval_center_crop,
    eval_ten_crop,
    paper_augment,
    paper_crop_window,
    pca_lighting,
    random_flip,
    random_resized_crop_window,
    ten_crop,
)
from keras_alexnet.preprocessing import preprocess_input
from tests.data_fixtures import encode, natural_image, pil_decode

# The ImageNet PCA (fb.resnet.torch), restated here as the test's reference.
EIGENVALUES = np.array([0.2175, 0.0188, 0.0045])
EIGENVECTORS = np.array(
    [
        [-0.5675, 0.7192, 0.4009],
        [-0.5808, -0.0045, -0.8140],
        [-0.5836, -0.6948, 0.4203],
    ]
)


def _window(top, left, height, width):
    return lambda h, w: tf.constant([top, left, height, width], tf.int32)


def _resize(image, size):
    # The reference resampler: TF's antialiased bilinear resize (PIL's filter).
    return tf.image.resize(image, size, method="bilinear", antialias=True).numpy()


def _seeds(n):
    return [tf.constant([12345, i], tf.int64) for i in range(n)]


def _over_seeds(fn, n):
    """`fn(seed)` for n seeds, run as one tf.data map (eager calls are slow)."""
    seeds = tf.data.Dataset.range(n).map(
        lambda i: fn(tf.stack([tf.constant(12345, tf.int64), i]))
    )
    return next(iter(seeds.batch(n))).numpy()


def _find_window(crop, reference):
    """All (top, left, mirrored) where `crop` is an exact window of `reference`."""
    size = crop.shape[0]
    found = []
    for mirrored, candidate in ((False, crop), (True, crop[:, ::-1])):
        # Candidates share the top-left pixel; each is then checked whole.
        first = np.all(reference == candidate[0, 0], axis=-1)
        for top, left in zip(*np.nonzero(first), strict=True):
            window = reference[top : top + size, left : left + size]
            if window.shape == candidate.shape and np.array_equal(window, candidate):
                found.append((int(top), int(left), mirrored))
    return found


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_paper_crop_is_an_exact_window_of_the_central_square(fmt):
    # Shorter side 256: the paper's rescale is the identity, so each crop must be
    # an exact pixel window (or its mirror) of the decoded image, inside the
    # central 256x256 square. JPEG 4:4:4 goes through the fused decoder.
    data = encode(
        natural_image(256, 300, 0),
        fmt,
        **({"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}),
    )
    reference = pil_decode(data)
    crops = _over_seeds(
        lambda seed: paper_augment(
            tf.constant(data), seed, image_size=227, lighting_stddev=0.0
        ),
        24,
    )
    assert crops.shape == (24, 227, 227, 3)
    np.testing.assert_array_equal(crops, np.round(crops))
    offsets, mirrors = [], []
    for crop in crops:
        found = _find_window(crop.astype(np.uint8), reference)
        assert len(found) == 1, found
        top, left, mirrored = found[0]
        # Central square: columns 22..277; the crop's 227 px fit at 0..29 in it.
        assert 0 <= top <= 29 and 22 <= left <= 22 + 29
        offsets.append((top, left))
        mirrors.append(mirrored)
    assert len(set(offsets)) > 15
    assert 0 < sum(mirrors) < len(mirrors)


@pytest.mark.parametrize("antialias", [False, True])
def test_tensorflow_resize_to_the_same_size_is_the_identity(antialias):
    # The presets skip a resize to the image's own size; that is exact only
    # because TensorFlow's own op returns the pixels unchanged. Checked here on
    # every installed version, for uint8 pixels and for floats.
    rng = np.random.default_rng(3)
    for height, width in [(227, 227), (256, 341), (5, 7), (1, 1)]:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        floats = rng.normal(0, 100, (2, height, width, 3)).astype(np.float32)
        for image in (pixels, floats):
            out = tf.image.resize(image, [height, width], antialias=antialias)
            np.testing.assert_array_equal(out.numpy(), image.astype(np.float32))


def test_paper_crop_as_pixels_adds_the_rounded_lighting_shift():
    # A crop that needs no resize stays in whole pixels with dtype="uint8":
    # it must be round(crop + shift) clipped to [0, 255], computed here in
    # float64 from the lighting-free crop of the same seed (itself an exact
    # window of PIL's decode, above) and the shift `pca_lighting_shift` draws
    # from the seed's third part (checked against its closed form below). The
    # image is dark and bright at its edges, so clipping happens at both ends.
    image = natural_image(256, 280, 7).astype(np.float64)
    image[:, :80] *= 0.05
    image[:, 200:] = 255 - 0.05 * (255 - image[:, 200:])
    data = tf.constant(encode(image.astype(np.uint8), "PNG"))
    seeds = tf.constant([[12345, i] for i in range(12)], tf.int64)

    def crops(stddev, dtype):
        dataset = tf.data.Dataset.from_tensor_slices(seeds).map(
            lambda seed: paper_augment(
                data, seed, image_size=227, lighting_stddev=stddev, dtype=dtype
            )
        )
        return next(iter(dataset.batch(12))).numpy()

    pixels, plain = crops(0.5, "uint8"), crops(0.0, "float32")
    shifts = np.stack(
        [
            augment.pca_lighting_shift(
                tf.random.experimental.stateless_split(seed, 3)[2], 0.5
            ).numpy()
            for seed in seeds
        ]
    ).astype(np.float64)
    assert pixels.dtype == np.uint8
    expected = np.clip(np.round(plain + shifts[:, None, None, :]), 0, 255)
    np.testing.assert_array_equal(pixels, expected)
    assert (pixels == 0).any() and (pixels == 255).any()
    assert np.abs(shifts).max() > 5  # the shifts are not lost in rounding


def test_uint8_presets_refuse_preprocessed_variants():
    data = tf.constant(encode(natural_image(20, 24, 8), "PNG"))
    seed = tf.constant([1, 2], tf.int64)
    with pytest.raises(ValueError, match=r"Received: dtype='uint8', variant='orig"):
        paper_augment(data, seed, image_size=16, variant="original", dtype="uint8")
    with pytest.raises(ValueError, match=r"Received: dtype='int8', variant=None"):
        eval_center_crop(data, image_size=16, dtype="int8")


def test_paper_crop_rescales_like_the_shorter_side_to_resize_size():
    # 96x120 with resize_size 48, image_size 32: the 32 px crop of the 48 px
    # image covers a 64 px source window inside the central 96 px square, so the
    # output must be one of those windows resized to 32, found by trying them all.
    data = encode(natural_image(96, 120, 1), "PNG")
    reference = pil_decode(data).astype(np.float32)
    windows = sliding_window_view(reference[:, 12:108], (64, 64, 3))[..., 0, :, :, :]
    candidates = _resize(windows.reshape(-1, 64, 64, 3), [32, 32])
    candidates = candidates.reshape(33, 33, 32, 32, 3)
    for seed in _seeds(6):
        crop = paper_augment(
            tf.constant(data), seed, image_size=32, resize_size=48, lighting_stddev=0
        ).numpy()
        error = np.minimum(
            np.abs(candidates - crop).max(axis=(-1, -2, -3)),
            np.abs(candidates - crop[:, ::-1]).max(axis=(-1, -2, -3)),
        )
        assert error.min() < 1e-3


@pytest.mark.parametrize(
    "height, width", [(375, 500), (500, 333), (256, 256), (100, 150), (1200, 1600)]
)
def test_paper_crop_window_geometry(height, width):
    # Closed form: side round(227 * short / 256), offsets uniform over the
    # central short x short square.
    short = min(height, width)
    side = int(np.floor(227 * short / 256 + 0.5))
    top0, left0 = (height - short) // 2, (width - short) // 2
    span = short - side
    windows = _over_seeds(
        lambda seed: paper_crop_window(
            tf.constant(height), tf.constant(width), seed, image_size=227
        ),
        300,
    )
    np.testing.assert_array_equal(windows[:, 2:], side)
    assert windows[:, 0].min() >= top0 and windows[:, 0].max() <= top0 + span
    assert windows[:, 1].min() >= left0 and windows[:, 1].max() <= left0 + span
    # Uniform on {0..span}: mean span/2, standard error of the mean below span/30.
    for offsets in (windows[:, 0] - top0, windows[:, 1] - left0):
        assert abs(offsets.mean() - span / 2) < 4 * (span / np.sqrt(12)) / np.sqrt(300)


def test_fused_decode_equals_hand_cut_window():
    rng = np.random.default_rng(0)
    jpeg_444 = encode(natural_image(375, 500, 2), quality=90, subsampling=0)
    jpeg_420 = encode(natural_image(375, 500, 2), quality=90, subsampling=2)
    for _ in range(10):
        top, left = (int(v) for v in rng.integers(0, 100, 2))
        height, width = (int(v) for v in rng.integers(40, 270, 2))
        cut = np.s_[top : top + height, left : left + width]
        crop = decode_crop(tf.constant(jpeg_444), _window(top, left, height, width))
        np.testing.assert_array_equal(crop.numpy(), pil_decode(jpeg_444)[cut])
        # 4:2:0: libjpeg-turbo's fancy upsampling treats the window's right edge
        # as the image's edge, so only the last column may differ, slightly.
        crop = decode_crop(tf.constant(jpeg_420), _window(top, left, height, width))
        reference = pil_decode(jpeg_420)[cut].astype(int)
        difference = np.abs(crop.numpy().astype(int) - reference)
        assert difference[:, :-1].max() == 0
        assert difference.max() <= 16


@pytest.mark.parametrize(
    "kind",
    [
        "cmyk_jpeg",
        "png_named_jpeg",
        "gray_jpeg",
        "gray_png",
        "rgba_png",
        "png16",
        "gif",
    ],
)
def test_every_readable_format_decodes_to_rgb(kind):
    image = natural_image(30, 40, 3)
    data = {
        "cmyk_jpeg": lambda: encode(image, quality=95, mode="CMYK"),
        "png_named_jpeg": lambda: encode(image, "PNG"),
        "gray_jpeg": lambda: encode(image, quality=90, mode="L"),
        "gray_png": lambda: encode(image, "PNG", mode="L"),
        "rgba_png": lambda: encode(image, "PNG", mode="RGBA"),
        "png16": lambda: encode(image[..., 0].astype(np.uint16) * 257, "PNG"),
        "gif": lambda: encode(image, "GIF"),
    }[kind]()
    if kind == "png16":
        # PIL clips 16-bit values when converting to RGB; v * 257 is v in 8 bits.
        reference = np.repeat(image[..., :1], 3, axis=-1)
    else:
        reference = pil_decode(data)
    crop = decode_crop(tf.constant(data), _window(3, 5, 20, 30)).numpy()
    assert crop.shape == (20, 30, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, reference[3:23, 5:35])


def test_eval_center_crop_is_the_resized_centre_window():
    # Shorter side already 256: exactly the centre 224 window, no resampling,
    # as floats and as pixels.
    data = encode(natural_image(256, 300, 4), "PNG")
    crop = eval_center_crop(tf.constant(data), image_size=224).numpy()
    np.testing.assert_array_equal(crop, pil_decode(data)[16:240, 38:262])
    pixels = eval_center_crop(tf.constant(data), image_size=224, dtype="uint8")
    assert pixels.dtype == tf.uint8
    np.testing.assert_array_equal(pixels.numpy(), pil_decode(data)[16:240, 38:262])
    # 375x500: resized to 256x341 (torchvision truncates 256 * 500 / 375), then
    # the centre 224 window, offsets (256 - 224) // 2 and (341 - 224) // 2.
    data = encode(natural_image(375, 500, 5), quality=90, subsampling=0)
    crop = eval_center_crop(tf.constant(data), image_size=224).numpy()
    resized = _resize(pil_decode(data), [256, 341])
    np.testing.assert_allclose(crop, resized[16:240, 58:282], atol=1e-3)
    pixels = eval_center_crop(tf.constant(data), image_size=224, dtype="uint8")
    rounded = np.clip(np.round(resized[16:240, 58:282]), 0, 255)
    # Whole pixels of the same resize (a value near .5 may round either way).
    assert np.abs(pixels.numpy() - rounded).max() <= 1
    assert np.mean(pixels.numpy() != rounded) < 1e-3


def test_ten_crop_matches_hand_cut_crops():
    images = np.random.default_rng(0).random((2, 9, 11, 3)).astype(np.float32)
    s = 5
    corners = [
        images[:, :s, :s],
        images[:, :s, -s:],
        images[:, -s:, :s],
        images[:, -s:, -s:],
        images[:, 2 : 2 + s, 3 : 3 + s],
    ]
    expected = np.stack(corners + [c[:, :, ::-1] for c in corners], axis=1)
    crops = ten_crop(images, s)
    assert isinstance(crops, np.ndarray)
    np.testing.assert_array_equal(crops, expected)
    single = ten_crop(tf.constant(images[1]), s)
    assert tf.is_tensor(single)
    np.testing.assert_array_equal(single.numpy(), expected[1])


def test_eval_ten_crop_cuts_the_central_square():
    data = encode(natural_image(300, 400, 6), "PNG")
    square = _resize(pil_decode(data)[:, 50:350], [256, 256])
    crops = eval_ten_crop(tf.constant(data), image_size=224).numpy()
    np.testing.assert_allclose(crops, ten_crop(square, 224), atol=1e-3)
    # Shorter side already 256: cut from the decoded pixels, no resampling.
    data = encode(natural_image(256, 300, 6), "PNG")
    square = pil_decode(data)[:, 22:278]
    for dtype in ("float32", "uint8"):
        crops = eval_ten_crop(tf.constant(data), image_size=224, dtype=dtype)
        assert crops.dtype == dtype
        np.testing.assert_array_equal(crops.numpy(), ten_crop(square, 224))


def test_ten_crop_arguments():
    with pytest.raises(ValueError, match="Received: crop_size=12"):
        ten_crop(np.zeros((9, 11, 3)), 12)
    with pytest.raises(TypeError, match="Received: crop_size=2.5"):
        ten_crop(np.zeros((9, 11, 3)), 2.5)
    with pytest.raises(ValueError, match=r"Received: images.shape=\(9, 11\)"):
        ten_crop(np.zeros((9, 11)), 2)


def _lighting_shifts(n, stddev=0.1):
    image = tf.fill([2, 3, 3], 128.0)
    dataset = tf.data.Dataset.range(n).map(
        lambda i: pca_lighting(image, tf.stack([tf.constant(7, tf.int64), i]), stddev)
    )
    out = next(iter(dataset.batch(n))).numpy()
    # One shift per image, the same at every pixel.
    np.testing.assert_allclose(out, np.broadcast_to(out[:, :1, :1], out.shape))
    return out[:, 0, 0] - 128.0


def test_pca_lighting_matches_its_closed_form():
    # shift = 255 V (alpha * lambda), alpha ~ N(0, 0.1^2 I): mean 0, covariance
    # 255^2 V diag(0.1^2 lambda^2) V^T.
    n = 20_000
    shifts = _lighting_shifts(n)
    covariance = (
        255**2 * EIGENVECTORS @ np.diag((0.1 * EIGENVALUES) ** 2) @ EIGENVECTORS.T
    )
    standard_error = np.sqrt(np.diag(covariance) / n)
    assert np.all(np.abs(shifts.mean(axis=0)) < 4 * standard_error)
    sample = np.cov(shifts, rowvar=False)
    assert np.linalg.norm(sample - covariance) < 0.05 * np.linalg.norm(covariance)
    # In the eigenbasis the alphas are independent N(0, 0.1): the small
    # eigenvalues, invisible in the covariance above, are checked here.
    alphas = np.linalg.solve(EIGENVECTORS, shifts.T).T / (255 * EIGENVALUES)
    np.testing.assert_allclose(alphas.std(axis=0), 0.1, rtol=0.03)
    correlation = np.corrcoef(alphas, rowvar=False)
    assert np.abs(correlation - np.eye(3)).max() < 0.04


def test_pca_lighting_constants_and_arguments():
    np.testing.assert_array_equal(augment.PCA_EIGENVALUES, EIGENVALUES)
    np.testing.assert_array_equal(augment.PCA_EIGENVECTORS, EIGENVECTORS)
    np.testing.assert_array_equal(_lighting_shifts(4, stddev=0.0), 0.0)
    with pytest.raises(ValueError, match="Received: stddev=-1"):
        pca_lighting(np.zeros((2, 2, 3)), [0, 1], stddev=-1)
    with pytest.raises(ValueError, match=r"Received: image.shape=\(2, 2, 4\)"):
        pca_lighting(np.zeros((2, 2, 4)), [0, 1])


@pytest.mark.parametrize("variant", [None, "original", "torchvision"])
@pytest.mark.parametrize("flip", [False, True])
def test_finish_is_flip_shift_then_preprocess_input(variant, flip):
    # The fused pass against the library's preprocess_input (NumPy path) and,
    # for the original variant, Caffe's constants written out.
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, (2, 6, 5, 3)).astype(np.float32)
    shift = np.array([3.0, -2.0, 0.5], np.float32)
    out = augment.finish(
        tf.constant(image), variant=variant, flip=tf.constant(flip), rgb_shift=shift
    ).numpy()
    shifted = (image[:, :, ::-1] if flip else image) + shift
    expected = shifted if variant is None else preprocess_input(shifted, variant)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    if variant == "original":
        caffe_bgr_mean = [104.00698793, 116.66876762, 122.67891434]
        np.testing.assert_allclose(
            out, shifted[..., ::-1] - caffe_bgr_mean, rtol=1e-5, atol=1e-4
        )


def test_random_flip_mirrors_half_the_time():
    image = np.arange(2 * 5 * 3).reshape(2, 5, 3)
    flips = []
    for out in _over_seeds(lambda seed: random_flip(tf.constant(image), seed), 400):
        flipped = np.array_equal(out, image[:, ::-1])
        assert flipped or np.array_equal(out, image)
        flips.append(flipped)
    # Binomial(400, 1/2): 4 standard deviations is 40.
    assert abs(sum(flips) - 200) < 40


def test_random_resized_crop_window_bounds():
    height, width = 375, 500
    windows = np.array(
        [
            random_resized_crop_window(
                tf.constant(height), tf.constant(width), seed
            ).numpy()
            for seed in _seeds(300)
        ]
    )
    top, left, h, w = windows.T
    assert np.all((top >= 0) & (left >= 0))
    assert np.all((top + h <= height) & (left + w <= width))
    area = h * w / (height * width)
    whole = (h == height) & (w == width)
    # Rounding to whole pixels moves the ratio by about 1 / side.
    ratio = w / h
    inside = (area >= 0.08 - 0.01) & (ratio >= 0.75 - 0.02) & (ratio <= 4 / 3 + 0.02)
    assert np.all(inside | whole)
    assert area.min() < 0.2 and area.max() > 0.8
    assert len({tuple(x) for x in windows}) > 250


def test_modern_augment_resizes_the_window_and_flips():
    # With the whole image as the only admissible window, the output must be the
    # resized image or its mirror, and both must occur.
    data = encode(natural_image(120, 160, 8), "PNG")
    resized = _resize(pil_decode(data), [64, 64])
    mirrored = []
    for seed in _seeds(12):
        out = augment.modern_augment(
            tf.constant(data),
            seed,
            image_size=64,
            area_range=(1.0, 1.0),
            aspect_ratio_range=(4 / 3, 4 / 3),
        ).numpy()
        is_mirror = np.abs(out - resized[:, ::-1]).max() < 1e-3
        assert is_mirror or np.abs(out - resized).max() < 1e-3
        mirrored.append(is_mirror)
    assert 0 < sum(mirrored) < len(mirrored)
