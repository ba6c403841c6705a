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
import errno
import os
import re
import stat
import struct
import sys
import warnings
import zlib
from collections.abc import Iterator, Sequence
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
# Listings of at least this many files show a progress bar while checked.
_PROGRESS_MIN_FILES = 5000
# Images declaring more pixels are refused before decoding: PIL's default
# `Image.MAX_IMAGE_PIXELS` (a 64 kB PNG can declare 23000x23000 pixels, which
# decode to 1.5 GB).
DEFAULT_MAX_PIXELS = 89_478_485


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

    Only regular files are listed: FIFOs, sockets and devices are skipped (never
    opened: reading them could block or never end), as are files whose name is
    not valid UTF-8 (TensorFlow cannot open them). Symbolic links to regular
    files are followed, and the top-level class folders may be links to folders;
    links to folders deeper down, broken and looping links are skipped. Hidden
    files and folders are ignored.

    Every file is checked while listing (`check_files`). `"header"` reads a
    JPEG's headers (its markers, then libjpeg's parse of its tables, up to the
    compressed data) and the end-of-image marker, and every chunk of a PNG
    (CRCs, and the image data inflated, not decoded); a JPEG that looks cut
    short or unusual (progressive, 12-bit), and GIF, BMP and WebP files (rare,
    and their damage hides in the compressed data) are decoded to decide. It
    cannot see damage inside a JPEG's compressed data: TensorFlow decodes most
    such files without an error into garbage, and fails on a few, which
    `imagenet_dataset` then drops with a logged warning. `"decode"` decodes every
    file, JPEGs strictly (libjpeg's "Corrupt JPEG data" warnings are errors),
    and catches those too. `None` checks nothing. `"header"` and `"decode"`
    refuse an image declaring more than `max_pixels` pixels before decoding
    it. `on_error="raise"` promises that no file fails later, so with
    `check_files="header"` it decodes every file too.

    A file that fails is skipped, and one warning names the skipped files, or,
    with `on_error="raise"`, a `ValueError` names them. Every file left out is in
    `skipped`, with the reason.

    Args:
        root: the folder.
        labels_file: the labels of a flat folder; not allowed for a class tree.
        class_names: the classes in label order. For a tree, every folder must be
            one of them; defaults to the sorted folder names (tree) or the
            classes of the labels file (flat folder).
        on_error: `"skip"` or `"raise"`, what an unreadable or unlabelled file does.
        check_files: `"header"`, `"decode"` or `None`.
        max_pixels: the most pixels (width times height) an image may declare.

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
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int | np.integer):
        raise TypeError(
            f"`max_pixels` should be a positive integer. Received: "
            f"max_pixels={max_pixels!r}"
        )
    if max_pixels < 1:
        raise ValueError(
            f"`max_pixels` should be a positive integer. Received: "
            f"max_pixels={max_pixels!r}"
        )
    if class_names is not None:
        class_names = checked_class_names(class_names)

    with os.scandir(root) as scan:
        entries = sorted(
            (e for e in scan if not e.name.startswith(".")), key=lambda e: e.name
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
        files, skipped = _regular_files(e for e in entries if not e.is_dir())
        if class_names is None:
            class_names = labels_file_class_names(labels_file, files)
        file_labels = read_labels_file(labels_file, files, class_names)
        labels = []
        kept = []
        for path in files:
            if path in file_labels:
                kept.append(path)
                labels.append(file_labels[path])
            else:
                skipped.append((path, f"no label in {os.fspath(labels_file)}"))
        files = kept

    if on_error == "raise" and check_files == "header":
        check_files = "decode"  # see the docstring: nothing may fail later
    if check_files is not None:
        problems = _check_images(files, check_files, int(max_pixels))
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
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(
            f"The folder should be a path (str or os.PathLike). Received: {root!r}"
        )
    path = os.path.abspath(os.path.expanduser(os.fspath(root)))
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
    skipped = [(e.path, "not inside a class folder") for e in entries if not e.is_dir()]
    for name in class_dirs:
        class_files, class_skipped = _regular_files(_walk(os.path.join(root, name)))
        files += class_files
        labels += [index[name]] * len(class_files)
        skipped += class_skipped
    return class_names, files, labels, skipped


def _walk(top: str) -> Iterator[os.DirEntry[str]]:
    """Yields the `os.DirEntry` of every file below `top`, sorted, hidden ones left
    out; descends into real folders only (never into links, which may loop)."""
    with os.scandir(top) as scan:
        entries = sorted(
            (e for e in scan if not e.name.startswith(".")), key=lambda e: e.name
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


class _Damaged(Exception):
    """An image file whose structure is wrong; the message says how."""


@dataclasses.dataclass(frozen=True)
class _Header:
    kind: str
    width: int
    height: int
    # False when the structure looks cut short or unusual: decoding decides.
    complete: bool


def check_image_file(
    path: str | os.PathLike,
    *,
    decode: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> str | None:
    """Checks one image file as `list_image_folder` does; returns the problem.

    Args:
        path: the file.
        decode: decode it (`check_files="decode"`) rather than check its headers.
        max_pixels: the most pixels (width times height) it may declare.

    Returns:
        `None` if the file is a readable image, else why not, e.g. `"not a
        regular file (a FIFO, socket or device)"`.
    """
    check = _decode_problem if decode else _header_problem
    return check(os.fspath(path), max_pixels)


def _check_images(files: list[str], mode: str, max_pixels: int) -> list[str | None]:
    # Opening files is I/O bound and the decoders release the GIL, so threads
    # overlap both.
    workers = min(32, 4 * (os.cpu_count() or 1))
    check = _decode_problem if mode == "decode" else _header_problem
    # A folder of ImageNet's size takes minutes to check: show a progress bar.
    progress = None
    if len(files) >= _PROGRESS_MIN_FILES:
        import keras

        print(f"Checking {len(files)} files ({mode})")
        progress = keras.utils.Progbar(
            len(files), unit_name="file", verbose=1 if sys.stdout.isatty() else 2
        )
    problems: list[str | None] = []
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for problem in pool.map(
            lambda path: check(path, max_pixels), files, chunksize=64
        ):
            problems.append(problem)
            if progress is not None and len(problems) % 1000 == 0:
                progress.update(len(problems))
    if progress is not None:
        progress.update(len(problems), finalize=True)
    return problems


def _open_regular(path: str) -> Any:
    """Opens `path` for reading, refusing anything but a regular file.

    Opened without blocking, then checked on the open descriptor: a FIFO named
    like an image would block `open` forever, and a link to `/dev/zero` would
    read forever; a file swapped for one after the listing is still refused.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Damaged("not a regular file (a FIFO, socket or device)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _header_problem(path: str, max_pixels: int) -> str | None:
    try:
        with _open_regular(path) as f:
            header = _read_header(f, os.fstat(f.fileno()).st_size, max_pixels)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    except _Damaged as error:
        return str(error)
    problem = _size_problem(header, max_pixels)
    if problem is None and not header.complete:
        # Cut short, or followed by a long trailer: only decoding can tell.
        return _decode_problem(path, max_pixels)
    return problem


def _decode_problem(path: str, max_pixels: int) -> str | None:
    try:
        with _open_regular(path) as f:
            header = _read_header(f, os.fstat(f.fileno()).st_size, max_pixels)
            problem = _size_problem(header, max_pixels)
            if problem is not None:
                return problem  # before decoding it: a bomb decodes to gigabytes
            f.seek(0)
            contents = f.read()
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    except _Damaged as error:
        return str(error)
    if header.kind == "jpeg":
        # Stricter than TensorFlow's decoder: of 3,000 damaged JPEGs (baseline,
        # progressive, CMYK, grayscale), none passed it that TensorFlow refused.
        return _strict_jpeg_problem(contents)
    try:
        tf.io.decode_image(contents, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        reason = error.message.split("[Op:")[0].strip().split("}}")[-1].strip()
        return f"cannot be decoded ({reason})"
    return None


def _strict_jpeg_problem(contents: bytes) -> str | None:
    # TensorFlow decodes a JPEG whose entropy-coded data is damaged without an
    # error, into garbage: libjpeg only warns ("Corrupt JPEG data: premature
    # end of data segment"). simplejpeg's strict mode turns those warnings into
    # errors; decoding at 1/8 scale still reads every coefficient.
    simplejpeg = _simplejpeg()
    try:
        colorspace = simplejpeg.decode_jpeg_header(contents)[2]
        simplejpeg.decode_jpeg(
            contents,
            colorspace="CMYK" if colorspace == "CMYK" else "RGB",
            min_factor=8,
            strict=True,
        )
    except ValueError as error:
        return f"cannot be decoded ({error})"
    return None


def _simplejpeg() -> Any:
    try:
        import simplejpeg
    except ImportError as error:
        raise ImportError(
            "Checking JPEG files needs simplejpeg, a dependency of keras-alexnet: "
            "`pip install simplejpeg`."
        ) from error
    return simplejpeg


def _size_problem(header: _Header, max_pixels: int) -> str | None:
    if header.width <= 0 or header.height <= 0:
        return f"declares an empty {header.width}x{header.height} image"
    if header.width * header.height > max_pixels:
        return (
            f"declares {header.width}x{header.height} pixels, more than "
            f"max_pixels={max_pixels} (a decompression bomb?)"
        )
    return None


def _read_header(f: Any, size: int, max_pixels: int) -> _Header:
    """Reads an image's size and checks its structure, reading little of it."""
    if size == 0:
        raise _Damaged("empty file")
    head = f.read(_HEAD_BYTES)
    kind = image_format(head)
    if kind is None:
        raise _Damaged(
            "not an image (no JPEG, PNG, GIF, BMP, WebP or JPEG XL signature)"
        )
    if kind == "jpeg":
        return _jpeg_header(f, size)
    if kind == "png":
        return _png_header(f, size, max_pixels)
    # GIF, BMP and WebP are rare in image datasets and their damage hides in
    # the compressed data: after the pixel cap, decoding decides.
    if kind == "gif" and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
        return _Header(kind, width, height, complete=False)
    if kind == "bmp" and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return _Header(kind, abs(width), abs(height), complete=False)
    if kind == "webp":
        return _webp_header(f, head)
    return _Header(kind, 1, 1, complete=False)  # JPEG XL: decoding decides


# JPEG start-of-frame markers (ITU T.81, table B.1): SOF0-SOF15 but DHT (C4),
# JPG (C8) and DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Progressive and hierarchical frames, whose later scans follow the first.
_JPEG_MULTI_SCAN_SOF = frozenset({0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xCA, 0xCB, 0xCD})
_JPEG_MAX_SEGMENTS = 1000


def _parse_jpeg_headers(headers: bytes) -> None:
    """Has libjpeg-turbo (through simplejpeg) parse a JPEG's headers."""
    simplejpeg = _simplejpeg()
    try:
        simplejpeg.decode_jpeg_header(headers)
    except ValueError as error:
        raise _Damaged(f"damaged JPEG: {error}") from None


def _jpeg_header(f: Any, size: int) -> _Header:
    """Walks the marker segments of a JPEG to its first scan (ITU T.81, B.1)."""
    pos, frame, tables = 2, None, set()
    for _ in range(_JPEG_MAX_SEGMENTS):
        f.seek(pos)
        marker = f.read(4)
        if len(marker) < 4 or marker[0] != 0xFF:
            raise _Damaged(f"damaged JPEG: no marker at byte {pos}")
        if marker[1] == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", marker[2:])
        if length < 2 or pos + 2 + length > size:
            raise _Damaged(f"damaged JPEG: a segment at byte {pos} runs past the end")
        if marker[1] == 0xDB:  # quantization tables: (precision, id), values
            segment, at = f.read(length - 2), 0
            while at < len(segment):
                tables.add(segment[at] & 0x0F)
                at += 1 + (128 if segment[at] >> 4 else 64)
        elif marker[1] in _JPEG_SOF:
            progressive = marker[1] in _JPEG_MULTI_SCAN_SOF
            frame = f.read(length - 2)
            if len(frame) < 6 or len(frame) < 6 + 3 * frame[5]:
                raise _Damaged("damaged JPEG: its frame header is cut short")
        elif marker[1] == 0xDA:  # start of scan: the entropy-coded data follows
            if frame is None:
                raise _Damaged("damaged JPEG: a scan before any frame header")
            precision, height, width, count = struct.unpack(">BHHB", frame[:6])
            used = {frame[6 + 3 * i + 2] for i in range(count)}
            # libjpeg's own reading of the headers (Huffman tables, scan
            # parameters), without decoding the image: what it refuses here,
            # TensorFlow would refuse later.
            f.seek(0)
            _parse_jpeg_headers(f.read(pos + 2 + length))
            if progressive or precision != 8 or count not in (1, 3, 4):
                # More scans with their own tables, 12-bit samples, or two
                # components: decoding decides.
                return _Header("jpeg", width, height, complete=False)
            if not used <= tables:
                raise _Damaged("damaged JPEG: a quantization table is not defined")
            f.seek(max(0, size - _TAIL_BYTES))
            complete = b"\xff\xd9" in f.read()
            return _Header("jpeg", width, height, complete)
        pos += 2 + length
    raise _Damaged(f"damaged JPEG: no scan in its first {_JPEG_MAX_SEGMENTS} segments")


def _png_header(f: Any, size: int, max_pixels: int) -> _Header:
    """Walks a PNG's chunks, checking each CRC and inflating the image data.

    Inflating (without unfiltering) costs a fraction of decoding and finds the
    damage a CRC cannot: a stream written wrong. Its output is bounded by the
    size the header declares. (PNG specification, sections 5 and 10.)
    """
    pos, width, height, seen_data = 8, 0, 0, False
    inflater, inflated = zlib.decompressobj(), 0
    raw_size: int | None = 0
    while pos + 12 <= size:
        f.seek(pos)
        length, kind = struct.unpack(">I4s", f.read(8))
        if pos + 12 + length > size:
            break  # cut short
        data = f.read(length)
        (crc,) = struct.unpack(">I", f.read(4))
        if zlib.crc32(data, zlib.crc32(kind)) != crc:
            raise _Damaged(
                f"damaged PNG: chunk {kind.decode('latin-1')!r} at byte {pos} "
                "fails its CRC"
            )
        if pos == 8:
            if kind != b"IHDR" or length != 13:
                raise _Damaged("damaged PNG: it does not start with its IHDR chunk")
            width, height, depth, color, _, _, interlace = struct.unpack(
                ">IIBBBBB", data
            )
            channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color, 4)
            problem = _size_problem(_Header("png", width, height, True), max_pixels)
            if problem is not None:
                raise _Damaged(problem)  # before inflating gigabytes
            raw_size = height * (1 + (width * channels * depth + 7) // 8)
            if interlace:
                raw_size = None  # Adam7 passes: only the end of the stream counts
        if kind == b"IDAT":
            seen_data = True
            inflated += _inflate(inflater, data, raw_size, inflated)
        if kind == b"IEND":
            if not seen_data or not inflater.eof:
                raise _Damaged("damaged PNG: its image data ends early")
            if raw_size is not None and inflated != raw_size:
                raise _Damaged(
                    f"damaged PNG: its image data holds {inflated} bytes, its "
                    f"header needs {raw_size}"
                )
            return _Header("png", width, height, complete=True)
        pos += 12 + length
    if pos == 8:
        raise _Damaged("damaged PNG: it ends before its IHDR chunk")
    return _Header("png", width, height, complete=False)


def _inflate(inflater: Any, data: bytes, raw_size: int | None, done: int) -> int:
    """Inflates `data` in bounded steps; returns the bytes it produced."""
    produced = 0
    try:
        while data and not inflater.eof:
            out = inflater.decompress(data, 1 << 20)
            produced += len(out)
            if raw_size is not None and done + produced > raw_size:
                raise _Damaged("damaged PNG: its image data inflates past its size")
            data = inflater.unconsumed_tail
    except zlib.error as error:
        raise _Damaged(
            f"damaged PNG: its image data does not inflate ({error})"
        ) from None
    return produced


def _webp_header(f: Any, head: bytes) -> _Header:
    """Reads a WebP's size from its first chunk (RFC 9649)."""
    chunk = head[12:16]
    f.seek(20)
    data = f.read(10)
    if chunk == b"VP8X" and len(data) >= 10:
        width = 1 + int.from_bytes(data[4:7], "little")
        height = 1 + int.from_bytes(data[7:10], "little")
    elif chunk == b"VP8L" and len(data) >= 5:
        bits = int.from_bytes(data[1:5], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    elif chunk == b"VP8 " and len(data) >= 10:
        width = int.from_bytes(data[6:8], "little") & 0x3FFF
        height = int.from_bytes(data[8:10], "little") & 0x3FFF
    else:
        width = height = 1  # unknown: decoding decides
    return _Header("webp", width, height, complete=False)


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
