"""Files shipped inside the package: the ImageNet class index and sample photos.

The photos (`images/`) are public-domain or CC0 pictures from scikit-image's
sample data; `images/README.md` names the source, author and license of each.
"""

from __future__ import annotations

import importlib.resources
import pathlib

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
