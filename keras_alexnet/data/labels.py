"""The labels file of a flat image folder, in the four dialects ImageNet ships.

- one class per line, line `k` labelling `ILSVRC2012_val_<k>` (TFDS's
  `validation_labels.txt`), or the devkit's ILSVRC2012_IDs with its `meta.mat`;
- `<file name> <class name or index>` lines (Caffe's `val.txt`);
- Kaggle's `LOC_val_solution.csv`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from keras_alexnet.data import storage
from keras_alexnet.preprocessing import imagenet_class_index

__all__ = ["labels_file_class_names", "read_label_tokens", "read_labels_file"]

_VAL_FILE_NAME = re.compile(r"ILSVRC2012_val_(\d{8})(\.\w+)?$")


def read_labels_file(
    labels_file: str | os.PathLike,
    files: Sequence[str],
    class_names: Sequence[str],
) -> dict[str, int]:
    """Maps the files of a flat ImageNet-style folder to class indices.

    Args:
        labels_file: the labels file.
        files: the paths of the folder's files.
        class_names: the classes in label order.

    Returns:
        A dict from each labelled path of `files` to its class index.

    Raises:
        ValueError: the file is missing or empty, or names an unknown class.
    """
    labels_file = storage.expand(labels_file)
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
        labels_file: the labels file (see the module docstring).
        files: the paths of the folder's files.

    Returns:
        A dict from each labelled path of `files` to its class token: a class
        name (a WordNet ID for ImageNet) or a class index, as a string.

    Raises:
        ValueError: the file is missing or empty, or holds devkit IDs without
            the devkit's `meta.mat` beside it.
    """
    labels_file = storage.expand(labels_file)
    if not storage.isfile(labels_file):
        raise ValueError(f"The labels file does not exist. Received: {labels_file!r}")
    with storage.open_read(labels_file, "r") as f:
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
        labels_file: the labels file (see the module docstring).
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
    meta_path = storage.join(os.path.dirname(labels_file), "meta.mat")
    if not storage.isfile(meta_path):
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
    with storage.open_read(meta_path) as meta:
        synsets = scipy.io.loadmat(meta, squeeze_me=True)["synsets"]
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
