"""Training augmentation and evaluation crops, as TensorFlow ops for `tf.data`.

Each function works on one encoded image (or one decoded image), so that
`keras_alexnet.data.imagenet` can map it over a dataset in parallel. Random
choices use stateless ops keyed on a per-image seed of shape `(2,)`, so a seeded
pipeline is bit-reproducible however many threads run it. The crops follow
Krizhevsky et al., 2012 (section 4.1); docs/data.md explains the fused
decode-and-crop, the folded preprocessing and the uint8 path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_alexnet._validation import check_choice, check_float, check_int, is_integer
from keras_alexnet.data.image_checks import guarded_image_bytes
from keras_alexnet.preprocessing import preprocessing_for
from keras_alexnet.variants import CROP_ROUNDINGS

# PCA of ImageNet's RGB pixel values scaled to [0, 1], as used by fb.resnet.torch
# (`datasets/imagenet.lua`); the paper's own values were never published.
PCA_EIGENVALUES = (0.2175, 0.0188, 0.0045)
# Rows are R, G, B; each column is the eigenvector of one eigenvalue.
PCA_EIGENVECTORS = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
# The paper draws each alpha from N(0, 0.1).
PCA_LIGHTING_STDDEV = 0.1
# The dtypes the presets return: preprocessed floats, or whole RGB pixels.
DTYPES = ("float32", "uint8")
RESIZE_SIZE = 256

CropWindowFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def decode_crop(contents: tf.Tensor, crop_window_fn: CropWindowFn) -> tf.Tensor:
    """Decodes only a window of an encoded image, as 3-channel RGB.

    An image declaring more than `DEFAULT_MAX_PIXELS` pixels fails with its
    size, and of a GIF only the first frame is decoded (`guarded_image_bytes`).
    JPEGs skip the blocks outside the window (`tf.image.decode_and_crop_jpeg`,
    accurate integer DCT as in PIL); other formats are decoded whole, then cut.

    Args:
        contents: a scalar string tensor, the encoded image.
        crop_window_fn: maps the image's `(height, width)` (int32 scalars) to the
            window `[top, left, height, width]` (int32) to decode.

    Returns:
        A uint8 tensor `(window height, window width, 3)`.
    """
    # The pixel limit and a GIF's first frame only, before anything is decoded.
    contents = guarded_image_bytes(contents)
    is_jpeg = tf.equal(tf.strings.substr(contents, 0, 3), b"\xff\xd8\xff")

    def jpeg() -> tf.Tensor:
        shape = tf.image.extract_jpeg_shape(contents)
        window = crop_window_fn(shape[0], shape[1])
        return tf.image.decode_and_crop_jpeg(
            contents, window, channels=3, dct_method="INTEGER_ACCURATE"
        )

    def other() -> tf.Tensor:
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
        shape = tf.shape(image)
        window = crop_window_fn(shape[0], shape[1])
        return tf.slice(image, [window[0], window[1], 0], [window[2], window[3], 3])

    image = tf.cond(is_jpeg, jpeg, other)
    image.set_shape([None, None, 3])
    return image


def paper_crop_window(
    height: tf.Tensor,
    width: tf.Tensor,
    seed: tf.Tensor,
    *,
    image_size: int,
    resize_size: int = RESIZE_SIZE,
) -> tf.Tensor:
    """Samples the paper's random training crop, in source-image pixels.

    A random `image_size` crop of the central square rescaled to `resize_size`,
    mapped back to the source: a square of side
    `round(image_size * min(height, width) / resize_size)` at a random offset.

    Args:
        height: the source image's height, an int32 scalar.
        width: the source image's width, an int32 scalar.
        seed: the stateless seed, shape `(2,)`.
        image_size: the side of the crop the model sees.
        resize_size: the shorter side the paper rescales to.

    Returns:
        `[top, left, side, side]`, int32.
    """
    short, side = _short_and_side(height, width, image_size, resize_size)
    offset = tf.random.stateless_uniform(
        [2], seed, minval=0, maxval=short - side + 1, dtype=tf.int32
    )
    top = (height - short) // 2 + offset[0]
    left = (width - short) // 2 + offset[1]
    return tf.stack([top, left, side, side])


def random_resized_crop_window(
    height: tf.Tensor,
    width: tf.Tensor,
    seed: tf.Tensor,
    *,
    area_range: tuple[float, float] = (0.08, 1.0),
    aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
) -> tf.Tensor:
    """Samples an Inception-style random resized crop (Szegedy et al., 2015).

    After 10 draws that do not fit, the window is the whole image.

    Args:
        height: the source image's height, an int32 scalar.
        width: the source image's width, an int32 scalar.
        seed: the stateless seed, shape `(2,)`.
        area_range: bounds of the fraction of the image area kept.
        aspect_ratio_range: bounds of the window's width / height.

    Returns:
        `[top, left, height, width]` in source pixels, int32.
    """
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.stack([height, width, 3]),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=aspect_ratio_range,
        area_range=area_range,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def _short_and_side(height, width, image_size, resize_size):
    short = tf.minimum(height, width)
    scale = tf.constant(image_size / resize_size, tf.float64)
    side = tf.cast(tf.round(scale * tf.cast(short, tf.float64)), tf.int32)
    return short, tf.clip_by_value(side, 1, short)


def random_flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Mirrors `image` (`(H, W, C)`) left to right with probability 1/2."""
    flip = tf.random.stateless_uniform([], seed) < 0.5
    return tf.cond(flip, lambda: tf.reverse(image, axis=[-2]), lambda: image)


def pca_lighting_shift(seed: Any, stddev: float = PCA_LIGHTING_STDDEV) -> tf.Tensor:
    """Draws the paper's PCA lighting shift, in RGB pixel units ([0, 255]).

    `255 * PCA_EIGENVECTORS @ (alpha * PCA_EIGENVALUES)`, `alpha ~ N(0, stddev)`.

    Args:
        seed: a stateless seed, an integer tensor of shape `(2,)`.
        stddev: the standard deviation of each `alpha`.

    Returns:
        A float32 tensor of shape `(3,)`, the R, G and B shifts.
    """
    _check_stddev(stddev)
    alpha = tf.random.stateless_normal([3], seed, stddev=stddev)
    eigenvalues = tf.constant(PCA_EIGENVALUES, tf.float32)
    eigenvectors = tf.constant(PCA_EIGENVECTORS, tf.float32)
    return 255.0 * tf.linalg.matvec(eigenvectors, alpha * eigenvalues)


def pca_lighting(
    image: Any, seed: Any, stddev: float = PCA_LIGHTING_STDDEV
) -> tf.Tensor:
    """Adds the paper's PCA lighting noise to an RGB image in [0, 255].

    One shift, `pca_lighting_shift(seed, stddev)`, for every pixel; not clipped.

    Args:
        image: an RGB image `(H, W, 3)` or batch `(N, H, W, 3)` in [0, 255]; one
            shift is drawn for the whole tensor.
        seed: a stateless seed, an integer tensor of shape `(2,)`.
        stddev: the standard deviation of each `alpha`.

    Returns:
        A float32 tensor of the shape of `image`.

    Example:

    >>> import numpy as np
    >>> image = np.full((2, 2, 3), 128.0, "float32")
    >>> pca_lighting(image, seed=[0, 1]).shape
    TensorShape([2, 2, 3])
    """
    _check_stddev(stddev)
    image = tf.cast(image, tf.float32)
    if image.shape.rank is not None and image.shape[-1] != 3:
        raise ValueError(
            "`image` should have 3 channels (RGB) last. Received: "
            f"image.shape={tuple(image.shape)}"
        )
    return image + pca_lighting_shift(seed, stddev)


def _check_stddev(stddev: Any) -> None:
    check_float("stddev", stddev, minimum=0)


def finish(
    image: tf.Tensor,
    *,
    variant: str | None = None,
    flip: tf.Tensor | bool = False,
    rgb_shift: tf.Tensor | None = None,
) -> tf.Tensor:
    """Flips, shifts (PCA lighting) and preprocesses RGB images in [0, 255].

    Equal to `preprocess_input(flip(image) + rgb_shift, variant)`, in one reverse
    (the flip and the RGB to BGR swap at once) and one per-channel multiply-add.

    Args:
        image: float32 or uint8 `(..., H, W, 3)` with static `W`, RGB in
            [0, 255]; uint8 is reversed as bytes, then cast.
        variant: the checkpoint whose preprocessing to apply; `None` for none.
        flip: whether to mirror left to right, a bool or a scalar bool tensor.
        rgb_shift: `(3,)` added to every RGB pixel first, or `None`.

    Returns:
        A float32 tensor of the shape of `image`, channels in the checkpoint's
        order.
    """
    shape = image.shape
    if variant is None:
        bgr, scale, mean, std = False, 1.0, (0.0,) * 3, (1.0,) * 3
    else:
        constants = preprocessing_for(variant)
        bgr = constants.channel_order == "bgr"
        scale, mean, std = constants.scale, constants.mean, constants.std
    channels = [-1] if bgr else []

    def reverse(axes: list[int]) -> tf.Tensor:
        return tf.reverse(image, axis=axes) if axes else image

    if isinstance(flip, bool):
        image = reverse([-2] + channels if flip else channels)
    else:
        image = tf.cond(
            flip, lambda: reverse([-2] + channels), lambda: reverse(channels)
        )
    image = tf.cast(image, tf.float32)
    shift = tf.zeros([3]) if rgb_shift is None else rgb_shift
    if bgr:
        shift = tf.reverse(shift, axis=[0])
    # y = (x + shift) * scale - mean) / std = x * gain + bias, per channel.
    gain = tf.constant(np.float32(scale) / np.asarray(std, np.float32))
    bias = (shift * scale - tf.constant(mean, tf.float32)) / tf.constant(
        std, tf.float32
    )
    # Rows of width * 3 values: broadcasting over a last axis of 3 is several
    # times slower in TensorFlow on CPU.
    width = shape[-2]
    rows = tf.reshape(image, [-1, width * 3])
    if not np.all(np.float32(scale) / np.asarray(std, np.float32) == 1):
        rows = rows * tf.tile(gain, [width])  # Caffe's gain is 1: one pass less
    rows = rows + tf.tile(bias, [width])
    return tf.reshape(rows, tf.shape(image))


def ten_crop(images: Any, crop_size: int) -> Any:
    """Cuts the paper's ten test patches: four corners, centre, and mirrors.

    In torchvision's `TenCrop` order (top-left, top-right, bottom-left,
    bottom-right, centre, then mirrored); the centre's offsets rounded down.

    Args:
        images: one image `(H, W, C)` or a batch `(N, H, W, C)`, channels last, a
            NumPy array or a `tf.Tensor`.
        crop_size: the side of each square crop.

    Returns:
        `(10, crop_size, crop_size, C)` or `(N, 10, crop_size, crop_size, C)`, of
        the kind of `images` (NumPy in, NumPy out).

    Example:

    >>> import numpy as np
    >>> ten_crop(np.zeros((4, 256, 256, 3)), 227).shape
    (4, 10, 227, 227, 3)
    """
    if not is_integer(crop_size):
        raise TypeError(
            f"`crop_size` should be an integer. Received: crop_size={crop_size!r}"
        )
    check_int("crop_size", crop_size, minimum=1)
    as_numpy = isinstance(images, np.ndarray)
    x = tf.convert_to_tensor(images)
    if x.shape.rank not in (3, 4):
        raise ValueError(
            "`images` should be (H, W, C) or (N, H, W, C). Received: "
            f"images.shape={tuple(x.shape)}"
        )
    static_hw = x.shape[-3:-1]
    if any(d is not None and d < crop_size for d in static_hw):
        raise ValueError(
            f"`crop_size` should be at most the image size {tuple(static_hw)}. "
            f"Received: crop_size={crop_size}"
        )
    height, width = tf.shape(x)[-3], tf.shape(x)[-2]
    s = int(crop_size)
    top, left = (height - s) // 2, (width - s) // 2
    corners = [
        x[..., :s, :s, :],
        x[..., :s, width - s :, :],
        x[..., height - s :, :s, :],
        x[..., height - s :, width - s :, :],
        x[..., top : top + s, left : left + s, :],
    ]
    crops = tf.stack(corners, axis=-4)
    crops = tf.concat([crops, tf.reverse(crops, axis=[-2])], axis=-4)
    return crops.numpy() if as_numpy else crops


def _resize_then(
    image: tf.Tensor,
    size: Sequence[int],
    antialias: bool,
    then: Callable[[tf.Tensor], tf.Tensor],
    same_size: Callable[[tf.Tensor], tf.Tensor] | None = None,
) -> tf.Tensor:
    """`then(resized image)`, or `same_size(image)` when it already has `size`.

    TensorFlow's bilinear resize of an image to its own size returns its pixels
    exactly (antialiased or not), so skipping it changes no value. `same_size`
    (by default `then` of the image cast to float32) gets the image in its own
    dtype, with its shape set to `size`.
    """

    def resized() -> tf.Tensor:
        out = tf.image.resize(image, size, method="bilinear", antialias=antialias)
        out.set_shape([*image.shape[:-3], *size, 3])
        return then(out)

    def kept() -> tf.Tensor:
        out = tf.ensure_shape(image, [*image.shape[:-3], *size, 3])
        if same_size is not None:
            return same_size(out)
        return then(tf.cast(out, tf.float32))

    if image.shape[-3:-1] == tuple(size):
        return kept()
    same = tf.reduce_all(tf.equal(tf.shape(image)[-3:-1], size))
    return tf.cond(same, kept, resized)


def _check_dtype(dtype: Any, variant: str | None) -> None:
    if dtype not in DTYPES or (dtype == "uint8" and variant is not None):
        raise ValueError(
            "`dtype` should be 'float32', or 'uint8' with variant=None "
            f"(preprocessed images are not pixels). Received: dtype={dtype!r}, "
            f"variant={variant!r}"
        )


def to_pixels(image: tf.Tensor) -> tf.Tensor:
    """Rounds RGB values to uint8 pixels: half to even, clipped to [0, 255]."""
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _finish_pixels(
    image: tf.Tensor, flip: tf.Tensor | bool, rgb_shift: tf.Tensor | None
) -> tf.Tensor:
    """`to_pixels(finish(image, flip=flip, rgb_shift=rgb_shift))` for uint8 `image`.

    Stays in whole pixels: the bytes are flipped and the shift is added rounded,
    `x + round(s)`, which equals `round(x + s)` for a whole `x` (it can differ
    from float32's `x + s` only where that sum rounds to an exact half).
    """
    if isinstance(flip, bool):
        image = tf.reverse(image, axis=[-2]) if flip else image
    else:
        image = tf.cond(flip, lambda: tf.reverse(image, axis=[-2]), lambda: image)
    if rgb_shift is None:
        return image
    width = image.shape[-2]
    shift = tf.cast(tf.round(rgb_shift), tf.int32)
    # clip(x + s) in bytes, never out of [0, 255]: with up = max(s, 0) and
    # down = max(-s, 0), max(min(x, 255 - up), down) - down + up.
    up = tf.cast(tf.maximum(shift, 0), tf.uint8)
    down = tf.cast(tf.maximum(-shift, 0), tf.uint8)
    # Rows of width * 3 values, as in `finish`: broadcasting over 3 is slower.
    up, down = tf.tile(up, [width]), tf.tile(down, [width])
    rows = tf.reshape(image, [-1, width * 3])
    rows = tf.maximum(tf.minimum(rows, 255 - up), down) - down + up
    return tf.reshape(rows, tf.shape(image))


def _finish_crop(
    crop: tf.Tensor,
    image_size: int,
    antialias: bool,
    *,
    variant: str | None,
    flip: tf.Tensor | bool,
    rgb_shift: tf.Tensor | None = None,
    dtype: str = "float32",
) -> tf.Tensor:
    """Resizes a crop to `image_size` (when needed), then `finish`es it."""

    def finished(image: tf.Tensor) -> tf.Tensor:
        out = finish(image, variant=variant, flip=flip, rgb_shift=rgb_shift)
        return to_pixels(out) if dtype == "uint8" else out

    def same_size(image: tf.Tensor) -> tf.Tensor:
        if dtype == "uint8" and image.dtype == tf.uint8:
            return _finish_pixels(image, flip, rgb_shift)
        return finished(image)

    size = [image_size, image_size]
    return _resize_then(crop, size, antialias, finished, same_size)


def paper_augment(
    contents: tf.Tensor,
    seed: tf.Tensor,
    *,
    image_size: int,
    resize_size: int = RESIZE_SIZE,
    lighting_stddev: float = PCA_LIGHTING_STDDEV,
    variant: str | None = None,
    antialias: bool = True,
    flip: bool = True,
    dtype: str = "float32",
) -> tf.Tensor:
    """The paper's training augmentation of one encoded image.

    Random crop (`paper_crop_window`), resize to `image_size`, random flip, PCA
    lighting, then `variant`'s preprocessing.

    Args:
        contents: the encoded image, a scalar string tensor.
        seed: a stateless seed of shape `(2,)`.
        image_size: the side of the output.
        resize_size: the shorter side the paper rescales to.
        lighting_stddev: the standard deviation of PCA lighting's alphas; 0 turns
            it off.
        variant: the checkpoint whose preprocessing to apply; `None` leaves RGB
            in [0, 255].
        antialias: whether the resize filters like PIL (`True`) or samples like
            OpenCV's `INTER_LINEAR` (`False`).
        flip: whether to mirror left to right with probability 1/2.
        dtype: `"float32"`, or `"uint8"` (with `variant=None`) for `to_pixels`.

    Returns:
        An image `(image_size, image_size, 3)` of `dtype`.
    """
    _check_dtype(dtype, variant)
    crop_seed, flip_seed, lighting_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3)
    )
    crop = decode_crop(
        contents,
        lambda h, w: paper_crop_window(
            h, w, crop_seed, image_size=image_size, resize_size=resize_size
        ),
    )
    return _finish_crop(
        crop,
        image_size,
        antialias,
        variant=variant,
        flip=flip and tf.random.stateless_uniform([], flip_seed) < 0.5,
        rgb_shift=(
            pca_lighting_shift(lighting_seed, lighting_stddev)
            if lighting_stddev
            else None
        ),
        dtype=dtype,
    )


def modern_augment(
    contents: tf.Tensor,
    seed: tf.Tensor,
    *,
    image_size: int,
    area_range: tuple[float, float] = (0.08, 1.0),
    aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
    variant: str | None = None,
    antialias: bool = True,
    flip: bool = True,
    dtype: str = "float32",
) -> tf.Tensor:
    """Random resized crop and horizontal flip, the usual modern recipe.

    Args:
        contents: the encoded image, a scalar string tensor.
        seed: a stateless seed of shape `(2,)`.
        image_size: the side of the output.
        area_range: bounds of the fraction of the image area kept.
        aspect_ratio_range: bounds of the crop's width / height.
        variant: the checkpoint whose preprocessing to apply; `None` leaves RGB
            in [0, 255].
        antialias: whether the resize filters like PIL or samples like OpenCV.
        flip: whether to mirror left to right with probability 1/2.
        dtype: `"float32"`, or `"uint8"` (with `variant=None`) for `to_pixels`.

    Returns:
        An image `(image_size, image_size, 3)` of `dtype`.
    """
    _check_dtype(dtype, variant)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    crop = decode_crop(
        contents,
        lambda h, w: random_resized_crop_window(
            h,
            w,
            crop_seed,
            area_range=area_range,
            aspect_ratio_range=aspect_ratio_range,
        ),
    )
    mirror = flip and tf.random.stateless_uniform([], flip_seed) < 0.5
    return _finish_crop(
        crop, image_size, antialias, variant=variant, flip=mirror, dtype=dtype
    )


def eval_center_crop(
    contents: tf.Tensor,
    *,
    image_size: int,
    resize_size: int = RESIZE_SIZE,
    variant: str | None = None,
    antialias: bool = True,
    crop_rounding: str = "floor",
    dtype: str = "float32",
) -> tf.Tensor:
    """Resize the shorter side to `resize_size`, then the centre `image_size` crop.

    The resize is torchvision's `Resize(resize_size)`; the whole image is
    decoded (not fused with the crop), so that evaluation sees the pixels the
    reference pipelines see.

    Args:
        contents: the encoded image, a scalar string tensor.
        image_size: the side of the output.
        resize_size: the shorter side the image is rescaled to.
        variant: the checkpoint whose preprocessing to apply; `None` leaves RGB
            in [0, 255].
        antialias: whether the resize filters like PIL or samples like OpenCV.
        crop_rounding: how the crop offset `(size - crop) / 2` is rounded:
            `"floor"` (Caffe's test crop) or `"round"`, half to even
            (torchvision's `CenterCrop`).
        dtype: `"float32"`, or `"uint8"` (with `variant=None`) for `to_pixels`.

    Returns:
        An image `(image_size, image_size, 3)` of `dtype`.

    Raises:
        ValueError: an unknown `crop_rounding`, or `dtype="uint8"` with a
            `variant`.
    """
    check_choice("crop_rounding", crop_rounding, CROP_ROUNDINGS)
    _check_dtype(dtype, variant)
    image = decode_crop(contents, lambda h, w: tf.stack([0, 0, h, w]))
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    short = tf.minimum(height, width)
    # torchvision truncates the longer side: int(size * long / short).
    new_height = tf.where(height == short, resize_size, resize_size * height // short)
    new_width = tf.where(width == short, resize_size, resize_size * width // short)
    if crop_rounding == "floor":
        top = (new_height - image_size) // 2
        left = (new_width - image_size) // 2
    else:  # tf.round, like Python's round, rounds half to even.
        top = tf.cast(tf.round((new_height - image_size) / 2), tf.int32)
        left = tf.cast(tf.round((new_width - image_size) / 2), tf.int32)

    def centre(image: tf.Tensor) -> tf.Tensor:
        crop = tf.slice(image, tf.stack([top, left, 0]), [image_size, image_size, 3])
        crop.set_shape([image_size, image_size, 3])
        return crop

    def resized() -> tf.Tensor:
        size = tf.stack([new_height, new_width])
        out = tf.image.resize(image, size, method="bilinear", antialias=antialias)
        out = finish(centre(out), variant=variant)
        return to_pixels(out) if dtype == "uint8" else out

    def kept() -> tf.Tensor:
        # Already at the size (an image prepared at 256): resizing is exact.
        crop = centre(image)
        return crop if dtype == "uint8" else finish(crop, variant=variant)

    same = tf.logical_and(tf.equal(new_height, height), tf.equal(new_width, width))
    return tf.cond(same, kept, resized)


def eval_ten_crop(
    contents: tf.Tensor,
    *,
    image_size: int,
    resize_size: int = RESIZE_SIZE,
    variant: str | None = None,
    antialias: bool = True,
    dtype: str = "float32",
) -> tf.Tensor:
    """The paper's ten test patches of the central `resize_size` square.

    Args:
        contents: the encoded image, a scalar string tensor.
        image_size: the side of each patch.
        resize_size: the side of the central square the patches are cut from.
        variant: the checkpoint whose preprocessing to apply; `None` leaves RGB
            in [0, 255].
        antialias: whether the resize filters like PIL or samples like OpenCV.
        dtype: `"float32"`, or `"uint8"` (with `variant=None`) for `to_pixels`.

    Returns:
        A tensor `(10, image_size, image_size, 3)` of `dtype`, in `ten_crop`
        order.
    """
    _check_dtype(dtype, variant)

    def central_square(height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
        short = tf.minimum(height, width)
        return tf.stack([(height - short) // 2, (width - short) // 2, short, short])

    def finished(square: tf.Tensor) -> tf.Tensor:
        out = finish(ten_crop(square, image_size), variant=variant)
        return to_pixels(out) if dtype == "uint8" else out

    def same_size(square: tf.Tensor) -> tf.Tensor:
        if dtype == "uint8":  # whole pixels already: cut, nothing to round
            return ten_crop(square, image_size)
        return finished(square)

    square = decode_crop(contents, central_square)
    size = [resize_size, resize_size]
    return _resize_then(square, size, antialias, finished, same_size)
