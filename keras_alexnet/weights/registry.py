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
from typing import Any


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How a checkpoint expects its input, starting from RGB pixels in [0, 255].

    The model sees `(x[..., order] * scale - mean) / std`, where `order` reverses the
    channels when `channel_order == "bgr"`; `mean` and `std` are in the order of the
    channels the model sees.
    """

    channel_order: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One pretrained checkpoint: where it comes from and what it needs."""

    name: str
    variant: str
    source: str
    url: str
    file_name: str
    file_hash: str
    hash_algorithm: str
    license: str
    num_params: int
    top1: float
    top5: float
    input_size: int
    preprocessing: Preprocessing
    architecture: Mapping[str, Any]
    notes: str = ""


# Caffe computed its ILSVRC-2012 mean image in BGR; these are its channel means.
CAFFE_PREPROCESSING = Preprocessing(
    channel_order="bgr",
    scale=1.0,
    mean=(104.00698793, 116.66876762, 122.67891434),
    std=(1.0, 1.0, 1.0),
)

TORCHVISION_PREPROCESSING = Preprocessing(
    channel_order="rgb",
    scale=1.0 / 255.0,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
)

BVLC_ALEXNET = Checkpoint(
    name="bvlc_alexnet",
    variant="original",
    source="caffe",
    url="http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel",
    file_name="bvlc_alexnet.caffemodel",
    file_hash="9116a64c0fbe4459d18f4bb6b56d647b63920377",
    hash_algorithm="sha1",
    license="Unrestricted use (BVLC model zoo)",
    num_params=60_965_224,
    top1=57.1,
    top5=80.2,
    input_size=227,
    preprocessing=CAFFE_PREPROCESSING,
    # Caffe's LRN divides alpha by local_size and defaults k to 1.
    architecture=types.MappingProxyType(
        {
            "groups": 2,
            "normalization": "lrn",
            "lrn_size": 5,
            "lrn_bias": 1.0,
            "lrn_alpha": 1e-4 / 5,
            "lrn_beta": 0.75,
        }
    ),
    notes=(
        "The paper's architecture (two groups, LRN before pooling), trained by BVLC "
        "for 360,000 iterations without PCA lighting; centre-crop accuracy."
    ),
)

TORCHVISION_IMAGENET1K_V1 = Checkpoint(
    name="torchvision_imagenet1k_v1",
    variant="torchvision",
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
    input_size=224,
    preprocessing=TORCHVISION_PREPROCESSING,
    architecture=types.MappingProxyType({"groups": 1, "normalization": None}),
    notes="The 'one weird trick' layout of torchvision.models.alexnet.",
)

CHECKPOINTS: Mapping[str, Checkpoint] = types.MappingProxyType(
    {c.name: c for c in (BVLC_ALEXNET, TORCHVISION_IMAGENET1K_V1)}
)

# What `weights="imagenet"` means for each variant.
IMAGENET_CHECKPOINT_FOR_VARIANT: Mapping[str, str] = types.MappingProxyType(
    {"original": BVLC_ALEXNET.name, "torchvision": TORCHVISION_IMAGENET1K_V1.name}
)


def get_checkpoint(name: str) -> Checkpoint:
    """Returns the registry entry called `name` (see `CHECKPOINTS`)."""
    if name not in CHECKPOINTS:
        raise ValueError(
            f"Unknown checkpoint. Expected one of {sorted(CHECKPOINTS)}. "
            f"Received: name={name!r}"
        )
    return CHECKPOINTS[name]


def imagenet_checkpoint(variant: str) -> Checkpoint:
    """Returns the checkpoint that `weights="imagenet"` loads for `variant`."""
    if variant not in IMAGENET_CHECKPOINT_FOR_VARIANT:
        raise ValueError(
            "`variant` should be one of "
            f"{sorted(IMAGENET_CHECKPOINT_FOR_VARIANT)}. Received: variant={variant!r}"
        )
    return CHECKPOINTS[IMAGENET_CHECKPOINT_FOR_VARIANT[variant]]
