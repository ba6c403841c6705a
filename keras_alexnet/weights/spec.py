"""The one rule for a `weights` value: `resolve_weights` and its wording."""

from __future__ import annotations

import os
from typing import Any

from keras_alexnet._validation import check_path
from keras_alexnet.weights import registry
from keras_alexnet.weights.formats import SUFFIXES, weights_format
from keras_alexnet.weights.registry import Checkpoint

__all__ = ["CHECKPOINT_VALUES", "WEIGHTS_VALUES", "resolve_weights"]

# The values that name a registry checkpoint, as error messages list them.
CHECKPOINT_VALUES = (
    "'imagenet' (the variant's ImageNet checkpoint), a checkpoint name "
    f"{sorted(registry.CHECKPOINTS)} or alias "
    f"{sorted(a for c in registry.CHECKPOINTS.values() for a in c.aliases)}, "
    "or a registry entry (`Checkpoint`)"
)
# Every value `weights=` accepts, as error messages list them.
WEIGHTS_VALUES = (
    "None (random initialization), the path of a weights file ending in "
    f"{SUFFIXES}, {CHECKPOINT_VALUES}"
)


def resolve_weights(
    weights: Any, *, variant: str | None = None, files: bool = True
) -> tuple[str, Checkpoint | str | None]:
    """Says what a `weights` value names, checking it before anything is built.

    Args:
        weights: `None`, `"imagenet"`, a checkpoint name or alias, a
            `Checkpoint`, or the path of a weights file (`WEIGHTS_VALUES`).
        variant: the variant whose checkpoint `"imagenet"` names
            (default `"original"`).
        files: whether `None` and paths are accepted; `False` accepts only
            checkpoints (`CHECKPOINT_VALUES`).

    Returns:
        `("none", None)`, `("checkpoint", Checkpoint)` or `("file", path)`,
        `path` a `str` naming an existing file of one of `WEIGHTS_FORMATS`.

    Raises:
        ValueError: any other value, a folder, or a missing file, naming
            `weights` and the received value.

    Example:

    >>> resolve_weights("imagenet")[1].name
    'bvlc_alexnet'
    >>> resolve_weights(None)
    ('none', None)
    """
    if weights is None and files:
        return "none", None
    if isinstance(weights, Checkpoint):
        return "checkpoint", weights
    if isinstance(weights, str):
        if weights == "imagenet":
            return "checkpoint", registry.imagenet_checkpoint(variant or "original")
        checkpoint = registry.find_checkpoint(weights)
        if checkpoint is not None:
            return "checkpoint", checkpoint
    if not files or not isinstance(weights, (str, os.PathLike)):
        raise _refused(weights, files)
    path = check_path("weights", weights)
    try:
        weights_format(path)
    except ValueError:
        raise _refused(path, files) from None
    if os.path.isdir(path):
        raise ValueError(
            f"`weights` is a folder, not a weights file. Received: weights={path!r}"
        )
    if not os.path.isfile(path):
        raise ValueError(
            f"`weights` names a file that does not exist. Received: weights={path!r}"
        )
    return "file", path


def _refused(weights: Any, files: bool) -> ValueError:
    expected = WEIGHTS_VALUES if files else CHECKPOINT_VALUES
    return ValueError(f"`weights` should be {expected}. Received: weights={weights!r}")
