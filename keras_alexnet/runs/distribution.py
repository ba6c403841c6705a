"""The paper's two-GPU split as `keras.distribution.ModelParallel` (JAX backend).

Krizhevsky et al. (2012, section 3.2 and Figure 2) put half of every layer's
kernels on each of two GPUs: conv2, conv4 and conv5 see only their own GPU's
half of the previous layer (the two groups of `groups=2`), while conv3 and the
fully connected layers read both halves. `paper_layout_map` says the same to
Keras: every kernel (and bias) of conv1-conv5, fc6, fc7 and predictions is
sharded along its output units over the mesh's `"model"` axis, so device 0
holds the first group's filters of conv2/conv4/conv5 and the first half of
each fc layer, device 1 the second; XLA inserts the exchanges the paper made
between GPUs (before conv3 and the fc layers). Everything else is replicated.

`keras.distribution` is implemented for the JAX backend only.
"""

from __future__ import annotations

from typing import Any

import keras

__all__ = ["PAPER_LAYOUT", "model_parallel", "paper_layout_map"]

# Regular expressions over variable paths (`conv2/kernel`) -> the sharding of
# each axis: conv kernels are (height, width, inputs, outputs), dense kernels
# (inputs, outputs); the outputs axis is split over the "model" devices.
PAPER_LAYOUT: dict[str, tuple[str | None, ...]] = {
    r"conv[1-5]/kernel": (None, None, None, "model"),
    r"conv[1-5]/bias": ("model",),
    r"(fc6|fc7|predictions)/kernel": (None, "model"),
    r"(fc6|fc7|predictions)/bias": ("model",),
}


def paper_layout_map(
    device_mesh: keras.distribution.DeviceMesh,
) -> keras.distribution.LayoutMap:
    """The `LayoutMap` of the paper's split on `device_mesh` (axis `"model"`)."""
    layout_map = keras.distribution.LayoutMap(device_mesh)
    for path, axes in PAPER_LAYOUT.items():
        layout_map[path] = axes
    return layout_map


def model_parallel(devices: Any = None) -> keras.distribution.ModelParallel:
    """The paper's split over pairs of devices; data parallel between pairs.

    With two devices this is exactly the paper's layout; with 2n devices, n
    pairs each hold one copy of the model split in two and take 1/n of each
    batch. Set it with `keras.distribution.set_distribution(...)` before the
    model is built. The number of units of every sharded layer (the classes
    included) must be even.

    Args:
        devices: the devices to use; `None` for all of
            `keras.distribution.list_devices()`.

    Raises:
        ValueError: a backend other than JAX, or an odd number of devices.
    """
    if keras.backend.backend() != "jax":
        raise ValueError(
            "The paper's model-parallel split needs the JAX backend "
            "(keras.distribution). Received: backend "
            f"{keras.backend.backend()!r}"
        )
    devices = list(devices or keras.distribution.list_devices())
    if len(devices) < 2 or len(devices) % 2:
        raise ValueError(
            "The paper's model-parallel split needs an even number of devices "
            f"(two halves of the network). Received: {len(devices)} devices"
        )
    mesh = keras.distribution.DeviceMesh(
        (len(devices) // 2, 2), ("batch", "model"), devices
    )
    return keras.distribution.ModelParallel(
        layout_map=paper_layout_map(mesh), batch_dim_name="batch"
    )
