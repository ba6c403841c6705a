"""Image folders: listing (every file checked), splitting, and class names.

Two layouts: a class tree, `root/<class>/**/<image>` (ImageNet's train set), or
a flat folder of images with a labels file (ImageNet's validation set; see
`keras_alexnet.data.labels`).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from keras_alexnet._validation import (
    check_choice,
    check_float,
    check_int,
    check_path,
    is_integer,
)
from keras_alexnet.data import storage
from keras_alexnet.data.image_checks import (
    CHECK_MODES,
    DEFAULT_MAX_PIXELS,
    check_image_files,
)
from keras_alexnet.data.labels import labels_file_class_names, read_labels_file

__all__ = [
    "ON_ERROR_MODES",
    "SUBSETS",
    "ImageFolder",
    "check_same_classes",
    "checked_class_names",
    "list_image_folder",
    "split_image_folder",
]

# What an unreadable or unlabelled file does.
ON_ERROR_MODES = ("skip", "raise")
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
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImageFolder:
    """Lists an image folder and checks that its images can be read.

    A class tree's labels index the sorted folder names (the order of the
    pretrained ImageNet heads) unless `class_names` gives the order. A flat
    folder needs a `labels_file` (see `keras_alexnet.data.labels` for the
    dialects); its classes are the file's own (`labels_file_class_names`).
    Only regular files are listed; hidden files, FIFOs, devices, names that are
    not UTF-8 and links to folders below the top level are skipped. Every file
    left out is in `skipped` with the reason, and named in one warning.

    Args:
        root: the folder: a local path, or a URL `tf.io.gfile` reads
            (`gs://bucket/train`; docs/data.md, "Data on shared storage").
        labels_file: the labels of a flat folder (a path or a URL); not
            allowed for a class tree.
        class_names: the classes in label order. For a tree, every folder must be
            one of them; defaults to the sorted folder names (tree) or the
            classes of the labels file (flat folder).
        on_error: `"skip"` (skip unreadable or unlabelled files, with a
            warning) or `"raise"`; `"raise"` decodes every file, so that none
            fails later.
        check_files: `"header"` (parse JPEG and PNG headers, decode what they
            cannot vouch for), `"decode"` (decode every file, JPEGs strictly)
            or `None`. docs/data.md says what each catches.
        max_pixels: the most pixels (width times height) an image may declare.

    Returns:
        An `ImageFolder`.

    Raises:
        ValueError: a bad argument, a missing folder or labels file, or, with
            `on_error="raise"`, the unreadable files; or no readable image.
        TypeError: `root`, `class_names` or `max_pixels` of the wrong type.

    Example:

        folder = list_image_folder("/data/imagenet/train")
        print(folder.class_names[:2], len(folder.files), len(folder.skipped))
    """
    root = _check_folder(root)
    check_choice("on_error", on_error, ON_ERROR_MODES)
    check_choice("check_files", check_files, CHECK_MODES)
    if not is_integer(max_pixels):
        raise TypeError(
            f"`max_pixels` should be a positive integer. Received: "
            f"max_pixels={max_pixels!r}"
        )
    max_pixels = check_int("max_pixels", max_pixels, minimum=1)
    if class_names is not None:
        class_names = checked_class_names(class_names)

    entries = sorted(
        (e for e in storage.scandir(root) if not e.name.startswith(".")),
        key=lambda e: e.name,
    )
    class_dirs = [e.name for e in entries if _is_dir(e)]
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
        class_names, files, labels, skipped = _list_flat(
            root, entries, labels_file, class_names
        )

    if on_error == "raise" and check_files == "header":
        check_files = "decode"  # "raise" promises that nothing fails later
    if check_files is not None:
        problems = check_image_files(files, check_files, max_pixels)
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


# The two parts of `split_image_folder`, named as in Keras.
SUBSETS = ("training", "validation")


def split_image_folder(
    folder: ImageFolder,
    validation_split: float,
    subset: str,
    *,
    seed: int | None = None,
) -> ImageFolder:
    """Holds out a fraction of each class, as `validation_split` does in Keras.

    Stratified: within each class the files are shuffled with `seed` and the
    last `round(validation_split * count)` (at least one of a class of two or
    more) form the validation subset. The same `validation_split` and `seed`
    give two subsets that never share a file.

    Args:
        folder: a listed folder (`list_image_folder`).
        validation_split: the fraction held out, in (0, 1).
        subset: `"training"` or `"validation"`.
        seed: the seed of the shuffle; `None` means 0, so that the two subsets
            agree across calls.

    Returns:
        An `ImageFolder` holding the subset's files, with the same classes.

    Raises:
        ValueError: `validation_split` or `subset` out of range.
    """
    check_float(
        "validation_split",
        validation_split,
        minimum=0,
        maximum=1,
        exclusive_minimum=True,
        exclusive_maximum=True,
    )
    check_choice("subset", subset, SUBSETS)
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


def checked_class_names(class_names: Any) -> tuple[str, ...]:
    """`class_names` as a tuple, refused unless non-empty distinct strings."""
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
    return class_names


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
    path = check_path("root", root)
    if storage.is_url(path):
        # No links on object stores: a folder, or nothing.
        try:
            is_dir = storage.isdir(path)
        except OSError as error:
            raise ValueError(f"The folder cannot be read: {error}") from None
        if not is_dir:
            raise ValueError(f"The folder does not exist. Received: {path!r}")
        return path
    path = os.path.abspath(os.path.expanduser(path))
    if not _is_utf8(path):
        raise ValueError(
            "The folder's path is not valid UTF-8, which TensorFlow needs to open "
            f"its files: rename it. Received: {_printable(os.fspath(root))!r}"
        )
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ValueError(
                "The folder is a symbolic link that loops (it leads back to itself). "
                f"Received: {os.fspath(root)!r}"
            ) from None
        if os.path.islink(path):
            raise ValueError(
                "The folder is a symbolic link to something that does not exist "
                f"({error.strerror}). Received: {os.fspath(root)!r}"
            ) from None
        is_dir = False
    if not is_dir:
        raise ValueError(f"The folder does not exist. Received: {os.fspath(root)!r}")
    return path


def _is_utf8(path: str) -> bool:
    # Undecodable bytes of a file name come back as lone surrogates.
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(path: str) -> str:
    """`path`, with the bytes of a name that is not UTF-8 shown escaped."""
    if _is_utf8(path):
        return path
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
    skipped = [(e.path, _not_a_class_folder(e)) for e in entries if not _is_dir(e)]
    for name in class_dirs:
        class_files, class_skipped = _regular_files(_walk(storage.join(root, name)))
        files += class_files
        labels += [index[name]] * len(class_files)
        skipped += class_skipped
    return class_names, files, labels, skipped


def _list_flat(root, entries, labels_file, class_names):
    if labels_file is None:
        raise ValueError(
            f"{root!r} has no class folders, so it needs a `labels_file` "
            "giving the class of each image (for ImageNet's validation set: "
            "the devkit's ILSVRC2012_validation_ground_truth.txt, or "
            "validation_labels.txt from TFDS). Received: labels_file=None"
        )
    files, skipped = _regular_files(entries)
    if class_names is None:
        class_names = labels_file_class_names(labels_file, files)
    file_labels = read_labels_file(labels_file, files, class_names)
    labelled = [path for path in files if path in file_labels]
    skipped += [
        (path, f"no label in {os.fspath(labels_file)}")
        for path in files
        if path not in file_labels
    ]
    return class_names, labelled, [file_labels[path] for path in labelled], skipped


def _is_dir(entry: Any) -> bool:
    """Whether `entry` is a folder or a link to one; a looping link is not."""
    try:
        return entry.is_dir()
    except OSError:  # ELOOP: a link that leads back to itself
        return False


def _not_a_class_folder(entry: Any) -> str:
    try:
        entry.stat()
    except OSError as error:
        return f"a broken or looping link ({error.strerror})"
    return "not inside a class folder"


def _walk(top: str) -> Iterator[Any]:
    """Yields the `os.DirEntry` (or `storage.UrlEntry`) of every file below
    `top`, sorted, hidden ones left out; descends into real folders only (never
    into links, which may loop)."""
    entries = sorted(
        (e for e in storage.scandir(top) if not e.name.startswith(".")),
        key=lambda e: e.name,
    )
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path)
        else:
            yield entry


def _regular_files(entries):
    """Splits directory entries into regular files and `(path, reason)` skips.

    Looks only at the entries' types (and follows links with one `stat`):
    nothing is opened, so a FIFO cannot block the listing.
    """
    files, skipped = [], []
    for entry in entries:
        path = entry.path
        if not _is_utf8(path):
            skipped.append(
                (path, "its name is not valid UTF-8, which TensorFlow needs: rename it")
            )
            continue
        try:
            # The type the folder listing gave, or, for a link, its target's.
            mode = entry.stat(follow_symlinks=True).st_mode
        except OSError as error:
            skipped.append((path, f"a broken or looping link ({error.strerror})"))
            continue
        if stat.S_ISREG(mode):
            files.append(path)
        elif stat.S_ISDIR(mode):
            skipped.append((path, "a link to a folder, which is not followed"))
        else:
            skipped.append((path, "not a regular file (a FIFO, socket or device)"))
    return files, skipped


def _describe_skipped(root: str, skipped: list, total: int) -> str:
    named = "; ".join(
        f"{_printable(path)}: {why}" for path, why in skipped[:_MAX_NAMED_FILES]
    )
    more = len(skipped) - _MAX_NAMED_FILES
    rest = f"; and {more} more" if more > 0 else ""
    return (
        f"Skipped {len(skipped)} of {total} files in {root!r} that are not readable, "
        f"labelled images: {named}{rest}."
    )
