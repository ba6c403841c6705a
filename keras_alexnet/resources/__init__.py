"""Files shipped inside the package: the ImageNet class index, sample photos and
scikit-learn's handwritten digits.

The photos (`images/`) are public-domain or CC0 pictures from scikit-image's
sample data; `images/README.md` names the source, author and license of each.
"""

from __future__ import annotations

import importlib.resources
import os
import pathlib
from typing import Any

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def sample_images() -> list[pathlib.Path]:
    """Returns the paths of the sample photos shipped with keras-alexnet.

    Three small JPEGs (a cat, a cup of coffee and a rocket launch, at most 320
    pixels on the shorter side), sorted by name, for trying a model offline.

    Returns:
        A list of `pathlib.Path`, sorted by file name.

    Example:

    >>> [path.name for path in sample_images()]
    ['chelsea.jpg', 'coffee.jpg', 'rocket.jpg']
    """
    folder = importlib.resources.files(__name__) / "images"
    # The package is installed as plain files (setuptools), so the traversable
    # is a real folder; pathlib.Path gives callers a path any reader accepts.
    paths = [
        pathlib.Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.lower().endswith(_IMAGE_SUFFIXES)
    ]
    if not paths:
        raise FileNotFoundError(
            f"No sample photos found in {str(folder)!r}: the package was installed "
            "without its data files."
        )
    return sorted(paths, key=lambda path: path.name)


DIGIT_CLASSES = tuple(str(digit) for digit in range(10))


def digits() -> tuple[Any, Any]:
    """Returns scikit-learn's 1,797 handwritten digits, shipped with the package.

    8x8 grey images, 0 (no ink) to 16 (all ink), from the UCI "Optical
    Recognition of Handwritten Digits" test set (CC BY 4.0; `digits/README.md`
    names the source).

    Returns:
        `(images, labels)`: uint8 arrays of shapes `(1797, 8, 8)` and `(1797,)`.
    """
    import numpy as np

    with (importlib.resources.files(__name__) / "digits" / "digits.npz").open(
        "rb"
    ) as f:
        data = np.load(f)
        return data["images"], data["labels"]


def write_digits_folder(
    root: str | os.PathLike,
    *,
    image_size: int = 32,
    validation_fraction: float = 0.25,
    per_class: int | None = None,
    seed: int = 0,
) -> pathlib.Path:
    """Writes the shipped digits as PNG class folders, `train/<digit>/` and `val/`.

    Each 8x8 digit is drawn dark on white and enlarged to `image_size` pixels
    (bilinear), so that it reads like a small scanned image; a seeded shuffle
    puts `validation_fraction` of each class in `val/`. The same arguments write
    the same files.

    Args:
        root: the folder to write into (created).
        image_size: the side of the PNGs.
        validation_fraction: the fraction of each class written to `val/`.
        per_class: at most this many images per class (train and val together);
            `None` for all (174 to 183).
        seed: the seed of the shuffle.

    Returns:
        `root`, as a `pathlib.Path`.
    """
    import numpy as np
    import tensorflow as tf

    images, labels = digits()
    root = pathlib.Path(root)
    rng = np.random.default_rng(seed)
    ink = 255.0 - images.astype(np.float32) * (255.0 / 16.0)
    enlarged = tf.image.resize(ink[..., None], [image_size, image_size])
    enlarged = tf.cast(tf.clip_by_value(tf.round(enlarged), 0, 255), tf.uint8)
    for digit, name in enumerate(DIGIT_CLASSES):
        indices = rng.permutation(np.flatnonzero(labels == digit))
        if per_class is not None:
            indices = indices[:per_class]
        held = max(1, round(validation_fraction * len(indices)))
        for position, index in enumerate(indices):
            split = "val" if position < held else "train"
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            png = tf.io.encode_png(enlarged[int(index)])
            tf.io.write_file(str(folder / f"{int(index):04d}.png"), png)
    return root
