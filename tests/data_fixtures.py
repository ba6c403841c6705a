"""Small image files for the data tests: folders with bad files, a fake ILSVRC-2012.

Everything is made here, offline, with PIL; references are decoded with PIL too,
independently of the code under test.
"""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np
from PIL import Image, ImageFilter

# Three real ImageNet classes, so that labels can be checked against the class index.
TREE_CLASSES = ("n01440764", "n01443537", "n01484850")


def natural_image(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth RGB uint8 image (blurred noise on gradients), JPEG-friendly."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3)) * 255
    blurred = Image.fromarray(noise.astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(2)
    )
    y = np.linspace(0, 1, height)[:, None, None]
    x = np.linspace(0, 1, width)[None, :, None]
    ramp = 60 * y + 60 * x * np.array([1.0, -0.5, 0.3])
    image = np.asarray(blurred, np.float64) * 0.7 + ramp + 20
    return np.clip(image, 0, 255).astype(np.uint8)


def encode(image: np.ndarray, fmt: str = "JPEG", **options) -> bytes:
    """Encodes an array with PIL (`fmt` "JPEG", "PNG", ...; `mode` converts first)."""
    pil = Image.fromarray(image)
    mode = options.pop("mode", None)
    if mode:
        pil = pil.convert(mode)
    buffer = io.BytesIO()
    pil.save(buffer, fmt, **options)
    return buffer.getvalue()


def pil_decode(data: bytes) -> np.ndarray:
    """The reference decoder: PIL, converted to RGB."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def write(path: str, data: bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def write_flat_folder(root: str) -> str:
    """A flat validation folder: `ILSVRC2012_val_<k>.JPEG` for k = 1 to 4 and an
    unlabelled README; returns the folder of the images."""
    images = os.path.join(root, "images")
    for i in (1, 2, 3, 4):
        write(
            os.path.join(images, f"ILSVRC2012_val_{i:08d}.JPEG"),
            encode(natural_image(16, 16, i)),
        )
    write(os.path.join(images, "README"), b"not an image, and no label either")
    return images


def write_bad_folder(root: str, height: int = 48, width: int = 64) -> dict:
    """An ImageNet-style tree with the bad files real folders collect.

    Per class two clean JPEGs, plus: a CMYK JPEG, a PNG named .JPEG and a
    grayscale JPEG (readable), a truncated JPEG, a text file and an empty file
    (unreadable), and a hidden file (ignored).

    Returns:
        `{"readable": {path: (label, reference RGB array)}, "unreadable": [paths]}`.
    """
    readable, unreadable = {}, []
    for label, wnid in enumerate(TREE_CLASSES):
        for i in range(2):
            data = encode(natural_image(height, width, 10 * label + i), quality=90)
            path = write(os.path.join(root, wnid, f"{wnid}_{i}.JPEG"), data)
            readable[path] = (label, pil_decode(data))
    cls = os.path.join(root, TREE_CLASSES[0])
    image = natural_image(height, width, 99)
    for name, data in (
        ("cmyk.JPEG", encode(image, quality=95, mode="CMYK")),
        ("png_named.JPEG", encode(image, "PNG")),
        ("gray.JPEG", encode(image, quality=90, mode="L")),
    ):
        readable[write(os.path.join(cls, name), data)] = (0, pil_decode(data))
    whole = encode(natural_image(height, width, 7), quality=90)
    for name, data in (
        ("truncated.JPEG", whole[: len(whole) // 2]),
        ("notes.txt", b"class list, not an image\n"),
        ("empty.JPEG", b""),
    ):
        unreadable.append(write(os.path.join(root, TREE_CLASSES[1], name), data))
    write(os.path.join(cls, ".DS_Store"), b"\x00\x01")
    return {"readable": readable, "unreadable": unreadable}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


# Files that TFDS's imagenet2012 builder converts (its CMYK_IMAGES and PNG_IMAGES).
ILSVRC_CMYK_FILE = ("n01739381", "n01739381_1309.JPEG")
ILSVRC_PNG_FILE = ("n02105855", "n02105855_2933.JPEG")


def write_fake_ilsvrc(manual_dir: str, val_count: int = 4) -> dict:
    """A tiny ILSVRC2012_img_train.tar (a tar of per-class tars) and _img_val.tar.

    Train: two classes with two 64x80 JPEGs each, plus the CMYK JPEG and the PNG
    named .JPEG that the real archive holds, under their real names. Validation:
    `ILSVRC2012_val_00000001.JPEG` ... whose labels TFDS takes from its own
    validation_labels.txt.

    Returns:
        `{"train": {file name: wnid}, "validation": {file name: JPEG bytes}}`.
    """
    os.makedirs(manual_dir, exist_ok=True)
    per_class = {
        ILSVRC_CMYK_FILE[0]: [
            (ILSVRC_CMYK_FILE[1], encode(natural_image(64, 80, 1), mode="CMYK")),
            ("n01739381_1.JPEG", encode(natural_image(64, 80, 2))),
        ],
        ILSVRC_PNG_FILE[0]: [
            (ILSVRC_PNG_FILE[1], encode(natural_image(64, 80, 3), "PNG")),
            ("n02105855_1.JPEG", encode(natural_image(64, 80, 4))),
        ],
    }
    train = {}
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_train.tar"), "w") as t:
        for wnid, files in per_class.items():
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as class_tar:
                for name, data in files:
                    _add(class_tar, name, data)
                    train[name] = wnid
            _add(t, f"{wnid}.tar", inner.getvalue())
    validation = {
        f"ILSVRC2012_val_{i:08d}.JPEG": encode(natural_image(64, 80, 100 + i))
        for i in range(1, val_count + 1)
    }
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_val.tar"), "w") as t:
        # Not in sorted order: TFDS must sort the names itself.
        for name in sorted(validation, reverse=True):
            _add(t, name, validation[name])
    return {"train": train, "validation": validation}


def write_devkit_meta(path: str, wnid_for_id: dict[int, str]) -> None:
    """A devkit meta.mat: a `synsets` struct array with the fields read."""
    import scipy.io

    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")]
    # One inner node, which readers must ignore (the real file has 860).
    rows = [(1001, "n00001740", 3)] + [
        (i, wnid, 0) for i, wnid in sorted(wnid_for_id.items())
    ]
    synsets = np.array(rows, dtype=dtype)
    scipy.io.savemat(path, {"synsets": synsets})
