"""The model's vocabulary: what a variant is, and the constants that describe one.

`AlexNet`, the data pipelines, the weights and the command line all import these
names from here, so that each fact is written once.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any, Literal, overload

# The two layouts `AlexNet(variant=...)` builds; every module checks against this.
VARIANTS = ("original", "torchvision")
NORMALIZATIONS = ("lrn", "batchnorm", "none")
# The input side of each variant's checkpoint, and so of `AlexNet`'s default input.
DEFAULT_IMAGE_SIZE: Mapping[str, int] = types.MappingProxyType(
    {"original": 227, "torchvision": 224}
)
CROP_ROUNDINGS = ("floor", "round")


@overload
def check_variant(variant: Any, allow_none: Literal[False] = False) -> str: ...
@overload
def check_variant(variant: Any, allow_none: bool) -> str | None: ...


def check_variant(variant: Any, allow_none: bool = False) -> str | None:
    """Returns `variant` if it is one of `VARIANTS` (or `None` when allowed).

    Raises:
        ValueError: naming the received value and what was expected.
    """
    if (variant is None and allow_none) or (
        isinstance(variant, str) and variant in VARIANTS
    ):
        return variant
    expected = ("None", *map(repr, VARIANTS)) if allow_none else map(repr, VARIANTS)
    raise ValueError(
        f"`variant` should be one of {', '.join(expected)}. "
        f"Received: variant={variant!r}"
    )


@dataclasses.dataclass(frozen=True)
class LRNConstants:
    """The constants of `LocalResponseNormalization`: alpha multiplies the raw sum.

    See the layer's docstring for how Caffe's, PyTorch's and TensorFlow's
    conventions map onto these four numbers.
    """

    size: int
    bias: float
    alpha: float
    beta: float

    def as_dict(self) -> dict[str, Any]:
        """Returns `{"size", "bias", "alpha", "beta"}`, the layer's arguments."""
        return dataclasses.asdict(self)


# The paper's LRN (section 3.3): n=5, k=2, alpha=1e-4 on the raw sum, beta=0.75.
PAPER_LRN = LRNConstants(size=5, bias=2.0, alpha=1e-4, beta=0.75)
# Caffe's bvlc_alexnet: local_size 5, alpha 1e-4 divided by local_size, k = 1.
CAFFE_LRN = LRNConstants(size=5, bias=1.0, alpha=1e-4 / 5, beta=0.75)
LRN_PRESETS: Mapping[str, LRNConstants] = types.MappingProxyType(
    {"paper": PAPER_LRN, "caffe": CAFFE_LRN}
)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """The network a checkpoint's weights need, as `AlexNet` arguments.

    Attributes:
        variant: one of `VARIANTS`.
        groups: the channel groups of conv2, conv4 and conv5.
        normalization: one of `NORMALIZATIONS` (`"none"`, never `None`).
        lrn: the LRN constants, with `normalization="lrn"`; else `None`.
    """

    variant: str
    groups: int
    normalization: str
    lrn: LRNConstants | None = None


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How a checkpoint expects its input, starting from an image file.

    Evaluation resizes the shorter side to `resize_size` (bilinear, antialiased
    or not), cuts the centre `crop_size` square (offsets rounded down, as Caffe,
    or rounded half to even, as torchvision's `CenterCrop`), then the model sees
    `(x[..., order] * scale - mean) / std` of the RGB pixels in [0, 255], where
    `order` reverses the channels when `channel_order == "bgr"`; `mean` and `std`
    are in the order of the channels the model sees.
    """

    resize_size: int
    crop_size: int
    antialias: bool
    crop_rounding: str
    channel_order: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
