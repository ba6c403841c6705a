"""The pretrained checkpoints keras-alexnet knows, as data.

Each entry carries what a user needs to trust and reproduce it, after the
`meta` of torchvision's `AlexNet_Weights`: where the source checkpoint lives and
its hash, its license, the architecture it needs, the preprocessing it was
trained with and the accuracy its authors reported. `tests/test_registry.py`
checks every entry against a model built from it.

Sources:
- Caffe `bvlc_alexnet`: BVLC model zoo, `models/bvlc_alexnet/readme.md`
  (https://github.com/BVLC/caffe/tree/master/models/bvlc_alexnet).
- torchvision `AlexNet_Weights.IMAGENET1K_V1`: `torchvision/models/alexnet.py`.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping

from keras_alexnet.variants import (
    CAFFE_LRN,
    Architecture,
    Preprocessing,
    check_variant,
)


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One pretrained checkpoint: where it comes from and what it needs."""

    name: str
    source: str
    url: str
    file_name: str
    file_hash: str
    hash_algorithm: str
    license: str
    num_params: int
    top1: float
    top5: float
    preprocessing: Preprocessing
    architecture: Architecture
    aliases: tuple[str, ...] = ()
    notes: str = ""

    @property
    def variant(self) -> str:
        """The `AlexNet` variant these weights need."""
        return self.architecture.variant

    @property
    def input_size(self) -> int:
        """The side of the square images the checkpoint was evaluated on."""
        return self.preprocessing.crop_size


# Caffe computed its ILSVRC-2012 mean image in BGR; these are its channel means.
# Its images were resized by OpenCV, which does not antialias, and its test-phase
# DataTransformer rounds the crop offsets down.
CAFFE_PREPROCESSING = Preprocessing(
    resize_size=256,
    crop_size=227,
    antialias=False,
    crop_rounding="floor",
    channel_order="bgr",
    scale=1.0,
    mean=(104.00698793, 116.66876762, 122.67891434),
    std=(1.0, 1.0, 1.0),
)

# torchvision's `Resize(256)` (PIL, antialiased) and `CenterCrop(224)`, whose
# offsets are `int(round((size - crop) / 2))`: Python rounds half to even.
TORCHVISION_PREPROCESSING = Preprocessing(
    resize_size=256,
    crop_size=224,
    antialias=True,
    crop_rounding="round",
    channel_order="rgb",
    scale=1.0 / 255.0,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
)

BVLC_ALEXNET = Checkpoint(
    name="bvlc_alexnet",
    source="caffe",
    url="http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel",
    file_name="bvlc_alexnet.caffemodel",
    file_hash="9116a64c0fbe4459d18f4bb6b56d647b63920377",
    hash_algorithm="sha1",
    license="Unrestricted use (BVLC model zoo)",
    num_params=60_965_224,
    top1=57.1,
    top5=80.2,
    preprocessing=CAFFE_PREPROCESSING,
    architecture=Architecture(
        variant="original", groups=2, normalization="lrn", lrn=CAFFE_LRN
    ),
    notes=(
        "The paper's architecture (two groups, LRN before pooling), trained by BVLC "
        "for 360,000 iterations without PCA lighting; centre-crop accuracy."
    ),
)

TORCHVISION_IMAGENET1K_V1 = Checkpoint(
    name="torchvision_imagenet1k_v1",
    source="torch",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    file_name="alexnet-owt-7be5be79.pth",
    # torchvision checks only that the SHA-256 starts with these digits.
    file_hash="7be5be79",
    hash_algorithm="sha256-prefix",
    license="BSD-3-Clause",
    num_params=61_100_840,
    top1=56.522,
    top5=79.066,
    preprocessing=TORCHVISION_PREPROCESSING,
    architecture=Architecture(variant="torchvision", groups=1, normalization="none"),
    # torchvision's own names: AlexNet_Weights.IMAGENET1K_V1 and .DEFAULT.
    aliases=("IMAGENET1K_V1", "AlexNet_Weights.IMAGENET1K_V1"),
    notes="The 'one weird trick' layout of torchvision.models.alexnet.",
)

CHECKPOINTS: Mapping[str, Checkpoint] = types.MappingProxyType(
    {c.name: c for c in (BVLC_ALEXNET, TORCHVISION_IMAGENET1K_V1)}
)

# What `weights="imagenet"` means for each variant.
IMAGENET_CHECKPOINT_FOR_VARIANT: Mapping[str, str] = types.MappingProxyType(
    {"original": BVLC_ALEXNET.name, "torchvision": TORCHVISION_IMAGENET1K_V1.name}
)


def find_checkpoint(name: str) -> Checkpoint | None:
    """Returns the entry whose name or alias is `name`, or `None`."""
    for checkpoint in CHECKPOINTS.values():
        if name == checkpoint.name or name in checkpoint.aliases:
            return checkpoint
    return None


def get_checkpoint(name: str) -> Checkpoint:
    """Returns the registry entry called `name` (see `CHECKPOINTS`, or an alias)."""
    checkpoint = find_checkpoint(name) if isinstance(name, str) else None
    if checkpoint is None:
        raise ValueError(
            f"Unknown checkpoint. Expected one of {sorted(CHECKPOINTS)} or "
            f"{sorted(a for c in CHECKPOINTS.values() for a in c.aliases)}. "
            f"Received: name={name!r}"
        )
    return checkpoint


def imagenet_checkpoint(variant: str) -> Checkpoint:
    """Returns the checkpoint that `weights="imagenet"` loads for `variant`."""
    return CHECKPOINTS[IMAGENET_CHECKPOINT_FOR_VARIANT[check_variant(variant)]]
