"""Where images come from: TFDS datasets and ImageNet-style folders.

Both readers hand `keras_alexnet.data.imagenet` the same thing: encoded image
bytes (or the path to read them from) with an integer label, so that decoding can
be fused with the training crop (`tf.image.decode_and_crop_jpeg`).

Folders collect bad files (truncated JPEGs, stray text files, other formats), so
`list_image_folder` checks every file while listing it, before training starts:
an epoch never stops on a file that the listing let through as readable.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_alexnet.preprocessing import imagenet_class_index

# Formats `tf.io.decode_image` reads, by their leading bytes.
_IMAGE_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"\xff\x0a", "jpeg xl"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jpeg xl"),
)
_HEAD_BYTES = 32
# A complete JPEG ends with its end-of-image marker, a PNG with its IEND chunk;
# some writers pad or append a little after them, hence a window, not the last bytes.
_TAIL_BYTES = 1024
_CHECK_MODES = ("header", "decode", None)
_ON_ERROR_MODES = ("skip", "raise")
_VAL_FILE_NAME = re.compile(r"ILSVRC2012_val_(\d{8})(\.\w+)?$")
# Warnings name this many files, then give the count of the rest.
_MAX_NAMED_FILES = 20


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """The readable images of a folder, with their labels.

    Attributes:
        root: the folder that was listed.
        files: paths of the readable images, sorted.
        labels: the class index of each file, an index into `class_names`.
        class_names: the classes in label order (WordNet IDs for ImageNet).
        skipped: `(path, reason)` for every file left out.
    """

    root: str
    files: tuple[str, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]


def list_image_folder(
    root: str | os.PathLike,
    *,
    labels_file: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
    on_error: str = "skip",
    check_files: str | None = "header",
) -> ImageFolder:
    """Lists an ImageNet-style folder and checks that its images can be read.

    Two layouts are understood:

    - a class tree, `root/<class>/**/<image>` (ImageNet's train set: one folder per
      WordNet ID). Labels index the sorted folder names, the order of the
      pretrained ImageNet heads, unless `class_names` gives the order.
    - a flat folder of images with a `labels_file` (ImageNet's validation set).
      `labels_file` may be: TFDS's `validation_labels.txt` or any file of one
      WordNet ID per line, line `k` labelling `ILSVRC2012_val_<k>`; the devkit's
      `ILSVRC2012_validation_ground_truth.txt` (one ILSVRC2012_ID per line, with
      the devkit's `meta.mat` beside it to translate the IDs, read with SciPy);
      `<file name> <class index or WordNet ID>` lines (Caffe's `val.txt`); or
      Kaggle's `LOC_val_solution.csv`. The classes are the file's own (see
      `labels_file_class_names`): the 1000 ImageNet WordNet IDs in sorted order
      for ImageNet's labels, else the sorted names the file gives.

    Every file is checked while listing (`check_files`): `"header"` reads its first
    and last bytes and keeps it when they show a complete JPEG, PNG, GIF, BMP,
    WebP or JPEG XL (a file that looks cut short is decoded to decide), `"decode"`
    decodes every file, `None` checks nothing. Hidden files are ignored. A file
    that fails is skipped, and one warning names the skipped files, or, with
    `on_error="raise"`, a `ValueError` names them.

    Args:
        root: the folder.
        labels_file: the labels of a flat folder; not allowed for a class tree.
        class_names: the classes in label order. For a tree, every folder must be
            one of them; defaults to the sorted folder names (tree) or the
            classes of the labels file (flat folder).
        on_error: `"skip"` or `"raise"`, what an unreadable or unlabelled file does.
        check_files: `"header"`, `"decode"` or `None`.

    Returns:
        An `ImageFolder`.

    Example (with ImageNet's train set unpacked in `/data/imagenet/train`):

        folder = list_image_folder("/data/imagenet/train")
        print(folder.class_names[:2], len(folder.files), len(folder.skipped))
    """
    root = _check_folder(root)
    if on_error not in _ON_ERROR_MODES:
        raise ValueError(
            f"`on_error` should be one of {_ON_ERROR_MODES}. Received: "
            f"on_error={on_error!r}"
        )
    if check_files not in _CHECK_MODES:
        raise ValueError(
            f"`check_files` should be one of {_CHECK_MODES}. Received: "
            f"check_files={check_files!r}"
        )
    if class_names is not None:
        if isinstance(class_names, str) or not all(
            isinstance(name, str) for name in class_names
        ):
            raise TypeError(
                "`class_names` should be a sequence of strings. Received: "
                f"class_names={class_names!r}"
            )
        class_names = tuple(class_names)
        if not class_names or len(set(class_names)) != len(class_names):
            raise ValueError(
                "`class_names` should be non-empty and without duplicates. "
                f"Received: class_names={class_names!r}"
            )

    entries = sorted(
        (e for e in os.scandir(root) if not e.name.startswith(".")),
        key=lambda e: e.name,
    )
    class_dirs = [e.name for e in entries if e.is_dir()]
    if class_dirs:
        if labels_file is not None:
            raise ValueError(
                "`labels_file` is for a flat folder of images, but "
                f"{root!r} holds class folders ({class_dirs[0]!r}, ...). "
                f"Received: labels_file={os.fspath(labels_file)!r}"
            )
        class_names, files, labels, skipped = _list_tree(
            root, entries, class_dirs, class_names
        )
    else:
        if labels_file is None:
            raise ValueError(
                f"{root!r} has no class folders, so it needs a `labels_file` "
                "giving the class of each image (for ImageNet's validation set: "
                "the devkit's ILSVRC2012_validation_ground_truth.txt, or "
                "validation_labels.txt from TFDS). Received: labels_file=None"
            )
        files = [e.path for e in entries if e.is_file()]
        if class_names is None:
            class_names = labels_file_class_names(labels_file, files)
        file_labels = read_labels_file(labels_file, files, class_names)
        labels = []
        skipped = []
        kept = []
        for path in files:
            if path in file_labels:
                kept.append(path)
                labels.append(file_labels[path])
            else:
                skipped.append((path, f"no label in {os.fspath(labels_file)}"))
        files = kept

    if check_files is not None:
        problems = _check_images(files, check_files)
        pairs = list(zip(files, labels, problems, strict=True))
        skipped += [(path, why) for path, _, why in pairs if why is not None]
        files = [path for path, _, why in pairs if why is None]
        labels = [label for _, label, why in pairs if why is None]

    if skipped:
        message = _describe_skipped(root, skipped, len(files) + len(skipped))
        if on_error == "raise":
            raise ValueError(
                f"{message} Pass on_error='skip' to train on the readable images."
            )
        warnings.warn(message, stacklevel=2)
    if not files:
        raise ValueError(f"No readable image found in {root!r}.")
    return ImageFolder(
        root=root,
        files=tuple(files),
        labels=tuple(labels),
        class_names=tuple(class_names),
        skipped=tuple(skipped),
    )


SUBSETS = ("training", "validation")


def split_image_folder(
    folder: ImageFolder,
    validation_split: float,
    subset: str,
    *,
    seed: int | None = None,
) -> ImageFolder:
    """Holds out a fraction of each class, as `validation_split` does in Keras.

    Like `keras.utils.image_dataset_from_directory(validation_split=...,
    subset=...)`, but per class (stratified), so that a small class is not left
    out of either subset: within each class the files are shuffled with `seed`
    and the last `round(validation_split * count)` of them (at least one when
    the class has two or more files) form the validation subset. The same
    `validation_split` and `seed` give two subsets that never share a file.

    Args:
        folder: a listed folder (`list_image_folder`).
        validation_split: the fraction held out, in (0, 1).
        subset: `"training"` or `"validation"`.
        seed: the seed of the shuffle; `None` means 0, so that the two subsets
            agree across calls.

    Returns:
        An `ImageFolder` holding the subset's files, with the same classes.
    """
    if (
        isinstance(validation_split, bool)
        or not isinstance(validation_split, (int, float))
        or not 0 < validation_split < 1
    ):
        raise ValueError(
            "`validation_split` should be a number in (0, 1). Received: "
            f"validation_split={validation_split!r}"
        )
    if subset not in SUBSETS:
        raise ValueError(
            f"`subset` should be one of {SUBSETS} with `validation_split`. "
            f"Received: subset={subset!r}"
        )
    rng = np.random.default_rng(0 if seed is None else seed)
    by_class: dict[int, list[str]] = {}
    for path, label in zip(folder.files, folder.labels, strict=True):
        by_class.setdefault(label, []).append(path)
    files, labels = [], []
    for label in sorted(by_class):
        paths = by_class[label]
        order = rng.permutation(len(paths))
        held = round(validation_split * len(paths))
        if len(paths) > 1:
            held = min(max(held, 1), len(paths) - 1)
        cut = len(paths) - held
        chosen = order[cut:] if subset == "validation" else order[:cut]
        for i in sorted(chosen):
            files.append(paths[i])
            labels.append(label)
    return dataclasses.replace(folder, files=tuple(files), labels=tuple(labels))


def check_same_classes(
    train_class_names: Sequence[str],
    class_names: Sequence[str],
    *,
    where: str = "the validation data",
) -> None:
    """Raises a `ValueError` naming the classes two datasets disagree on.

    A validation folder lacking one class would otherwise shift every later
    label by one, silently.

    Args:
        train_class_names: the classes of the training data.
        class_names: the classes of the other data.
        where: how the message names the other data.
    """
    train, other = list(train_class_names), list(class_names)
    if train == other:
        return
    missing = [name for name in train if name not in set(other)]
    extra = [name for name in other if name not in set(train)]
    parts = []
    if missing:
        parts.append(f"lacks the training classes {_some(missing)}")
    if extra:
        parts.append(f"has classes the training data lacks: {_some(extra)}")
    if not parts:
        parts.append("has the same classes in another order")
    raise ValueError(
        f"The classes of {where} should be those of the training data; it "
        f"{' and '.join(parts)}. Pass the training classes as `class_names` to "
        "label a subset of them consistently."
    )


def _some(names: list[str]) -> str:
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return f"{names[:10]}{more}"


def _check_folder(root: Any) -> str:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(
            f"The folder should be a path (str or os.PathLike). Received: {root!r}"
        )
    path = os.path.abspath(os.path.expanduser(os.fspath(root)))
    if not os.path.isdir(path):
        raise ValueError(f"The folder does not exist. Received: {os.fspath(root)!r}")
    return path


def _list_tree(root, entries, class_dirs, class_names):
    if class_names is None:
        class_names = tuple(class_dirs)
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [name for name in class_dirs if name not in index]
    if unknown:
        raise ValueError(
            f"The class folders {unknown[:5]} of {root!r} are not in `class_names`. "
            f"Received: class_names={list(class_names)[:5]}..."
        )
    files, labels = [], []
    skipped = [(e.path, "not inside a class folder") for e in entries if not e.is_dir()]
    for name in class_dirs:
        class_files = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, name)):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            class_files += [
                os.path.join(dirpath, f) for f in filenames if not f.startswith(".")
            ]
        class_files.sort()
        files += class_files
        labels += [index[name]] * len(class_files)
    return class_names, files, labels, skipped


def read_labels_file(
    labels_file: str | os.PathLike,
    files: Sequence[str],
    class_names: Sequence[str],
) -> dict[str, int]:
    """Maps the files of a flat ImageNet-style folder to class indices.

    See `list_image_folder` for the formats understood.

    Args:
        labels_file: the labels file.
        files: the paths of the folder's files.
        class_names: the classes in label order.

    Returns:
        A dict from each labelled path of `files` to its class index.
    """
    labels_file = os.path.expanduser(os.fspath(labels_file))
    index = {name: i for i, name in enumerate(class_names)}

    def class_index(token: str, where: str) -> int:
        if token in index:
            return index[token]
        if token.isdigit() and int(token) < len(class_names):
            return int(token)
        raise ValueError(
            f"{where} of {labels_file!r} names the class {token!r}, which is neither "
            f"one of the {len(class_names)} class names nor an index below "
            f"{len(class_names)}."
        )

    return {
        path: class_index(token, f"The entry for {_stem(path)!r}")
        for path, token in read_label_tokens(labels_file, files).items()
    }


def read_label_tokens(
    labels_file: str | os.PathLike, files: Sequence[str]
) -> dict[str, str]:
    """The class of each labelled file of a flat folder, as written in the file.

    Args:
        labels_file: the labels file (see `list_image_folder` for the formats).
        files: the paths of the folder's files.

    Returns:
        A dict from each labelled path of `files` to its class token: a class
        name (a WordNet ID for ImageNet) or a class index, as a string.
    """
    labels_file = os.path.expanduser(os.fspath(labels_file))
    if not os.path.isfile(labels_file):
        raise ValueError(f"The labels file does not exist. Received: {labels_file!r}")
    with open(labels_file, encoding="utf-8") as f:
        lines = [line.strip() for line in f.read().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"The labels file is empty. Received: {labels_file!r}")
    stem_to_path = {_stem(path): path for path in files}

    if lines[0].replace(" ", "").lower().startswith("imageid,predictionstring"):
        # Kaggle's LOC_val_solution.csv: the first word of each box is its class.
        pairs = [line.split(",", 1) for line in lines[1:]]
        per_stem = {stem: boxes.split()[0] for stem, boxes in pairs}
    elif len(lines[0].replace(",", " ").split()) == 2:
        # `<file name> <label>` lines, as in Caffe's val.txt.
        per_stem = {}
        for line in lines:
            name, token = line.replace(",", " ").split()
            per_stem[_stem(name)] = token
    else:
        # One label per line: line k is image ILSVRC2012_val_<k>.
        if all(line.isdigit() for line in lines):
            lines = _devkit_ids_to_wnids(labels_file, lines)
        per_stem = {}
        for path in files:
            match = _VAL_FILE_NAME.match(os.path.basename(path))
            if match and 1 <= int(match.group(1)) <= len(lines):
                per_stem[_stem(path)] = lines[int(match.group(1)) - 1]

    return {
        stem_to_path[stem]: token
        for stem, token in per_stem.items()
        if stem in stem_to_path
    }


def labels_file_class_names(
    labels_file: str | os.PathLike, files: Sequence[str]
) -> tuple[str, ...]:
    """The classes of a flat folder's labels file, in label order.

    A file naming only ImageNet WordNet IDs, or numbering ImageNet's validation
    images (`ILSVRC2012_val_*` with class indices), has the 1000 ImageNet
    classes in sorted order, the order of the pretrained heads. Any other file
    has its own classes: the sorted distinct names it gives, or, for class
    indices, `"0"` to the largest index.

    Args:
        labels_file: the labels file (see `list_image_folder` for the formats).
        files: the paths of the folder's files.

    Returns:
        The class names.
    """
    labelled = read_label_tokens(labels_file, files)
    tokens = set(labelled.values())
    imagenet = tuple(wnid for wnid, _ in imagenet_class_index())
    if tokens <= set(imagenet):
        return imagenet
    if all(token.isdigit() for token in tokens):
        if all(_VAL_FILE_NAME.match(os.path.basename(path)) for path in labelled):
            return imagenet
        return tuple(str(i) for i in range(max(int(t) for t in tokens) + 1))
    return tuple(sorted(tokens))


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _devkit_ids_to_wnids(labels_file: str, ids: list[str]) -> list[str]:
    # The devkit numbers classes by its own ILSVRC2012_ID, not in sorted-WordNet-ID
    # order; its meta.mat holds the translation.
    meta_path = os.path.join(os.path.dirname(labels_file), "meta.mat")
    if not os.path.isfile(meta_path):
        raise ValueError(
            f"{labels_file!r} holds ILSVRC2012_IDs, the devkit's class numbers, which "
            "are not in the order of the pretrained heads; the devkit's meta.mat must "
            f"sit beside it to translate them (looked for {meta_path!r}). Or pass "
            "TFDS's validation_labels.txt, one WordNet ID per line."
        )
    try:
        import scipy.io
    except ImportError as error:
        raise ImportError(
            "Reading the devkit's meta.mat needs SciPy: `pip install scipy`."
        ) from error
    synsets = scipy.io.loadmat(meta_path, squeeze_me=True)["synsets"]
    wnid_for_id = {
        int(s["ILSVRC2012_ID"]): str(s["WNID"])
        for s in synsets
        if int(s["num_children"]) == 0
    }
    try:
        return [wnid_for_id[int(i)] for i in ids]
    except KeyError as error:
        raise ValueError(
            f"{labels_file!r} names ILSVRC2012_ID {error.args[0]}, which {meta_path!r} "
            "does not define."
        ) from None


def image_format(head: bytes) -> str | None:
    """Returns the format of an encoded image from its first bytes, or `None`."""
    for signature, name in _IMAGE_SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def _check_images(files: list[str], mode: str) -> list[str | None]:
    # Opening files is I/O bound and TensorFlow's decoders release the GIL, so
    # threads overlap both.
    workers = min(32, 4 * (os.cpu_count() or 1))
    check = _decode_problem if mode == "decode" else _header_problem
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(check, files, chunksize=64))


def _header_problem(path: str) -> str | None:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
            f.seek(max(0, size - _TAIL_BYTES))
            tail = f.read()
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if size == 0:
        return "empty file"
    kind = image_format(head)
    if kind is None:
        return "not an image (no JPEG, PNG, GIF, BMP, WebP or JPEG XL signature)"
    if kind == "jpeg" and b"\xff\xd9" not in tail:
        # Cut short, or followed by a long trailer: only decoding can tell.
        return _decode_problem(path)
    if kind == "png" and b"IEND" not in tail:
        return _decode_problem(path)
    return None


def _decode_problem(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            contents = f.read()
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if image_format(contents[:_HEAD_BYTES]) is None:
        return "not an image (no JPEG, PNG, GIF, BMP, WebP or JPEG XL signature)"
    try:
        tf.io.decode_image(contents, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        reason = error.message.split("[Op:")[0].strip().split("}}")[-1].strip()
        return f"cannot be decoded ({reason})"
    return None


def _describe_skipped(root: str, skipped: list, total: int) -> str:
    named = "; ".join(f"{path}: {why}" for path, why in skipped[:_MAX_NAMED_FILES])
    more = len(skipped) - _MAX_NAMED_FILES
    rest = f"; and {more} more" if more > 0 else ""
    return (
        f"Skipped {len(skipped)} of {total} files in {root!r} that are not readable, "
        f"labelled images: {named}{rest}."
    )


def _expand(path: str | os.PathLike | None) -> str | None:
    return None if path is None else os.path.expanduser(os.fspath(path))


@dataclasses.dataclass(frozen=True)
class TFDSSource:
    """A TFDS split as `(encoded image, label)` pairs, with its classes."""

    dataset: tf.data.Dataset
    class_names: tuple[str, ...]


def tfds_source(
    name: str,
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    manual_dir: str | os.PathLike | None = None,
    download: bool = True,
    shuffle_files: bool = False,
    seed: int | None = None,
) -> TFDSSource:
    """Opens a TFDS image-classification split without decoding its images.

    Args:
        name: the TFDS name, e.g. `"imagenet2012"` or `"imagenette/320px-v2"`.
        split: the TFDS split, slicing allowed (`"train[:1%]"`).
        data_dir: where TFDS keeps its datasets; TFDS's default if `None`.
        manual_dir: the folder holding manually downloaded archives (for
            `imagenet2012`: `ILSVRC2012_img_train.tar` and `ILSVRC2012_img_val.tar`).
        download: whether to prepare the dataset if `data_dir` lacks it.
        shuffle_files: whether to read the record files in a shuffled order.
        seed: the seed of that order.

    Returns:
        A `TFDSSource` whose dataset yields `(encoded image bytes, int64 label)`.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=_expand(data_dir))
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"No such folder or TFDS dataset: {name!r}. A folder path should exist "
            "(write it as ./name if it is in the current folder); TFDS names are "
            "listed at https://www.tensorflow.org/datasets/catalog."
        ) from None
    if download:
        config = tfds.download.DownloadConfig(manual_dir=_expand(manual_dir))
        builder.download_and_prepare(download_config=config)
    keys = builder.info.supervised_keys
    features = builder.info.features
    if (
        not isinstance(keys, tuple)
        or len(keys) != 2
        or not isinstance(features[keys[0]], tfds.features.Image)
        or not isinstance(features[keys[1]], tfds.features.ClassLabel)
    ):
        raise ValueError(
            "`source` should name a TFDS image-classification dataset, whose "
            "supervised keys are an Image and a ClassLabel. Received: "
            f"source={name!r} with supervised keys {keys!r}"
        )
    image_key, label_key = keys
    dataset = builder.as_dataset(
        split=split,
        shuffle_files=shuffle_files,
        decoders={image_key: tfds.decode.SkipDecoding()},
        # `imagenet_dataset(cache=...)` decides about caching, not TFDS.
        read_config=tfds.ReadConfig(shuffle_seed=seed, try_autocache=False),
    )
    dataset = dataset.map(
        lambda example: (example[image_key], example[label_key]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return TFDSSource(dataset, tuple(features[label_key].names))
