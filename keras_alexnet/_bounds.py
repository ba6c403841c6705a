"""The bounds of the numeric options, free of Keras.

Each upper bound keeps one image, one batch or one run within what a machine
can hold, so that a mistyped number is refused with its name instead of asking
for tens of gigabytes or aborting the process inside TensorFlow. The command
line checks them as the flags are read (a usage error, before Keras is
imported); the library functions as their arguments arrive. docs/cli.md lists
them.
"""

from __future__ import annotations

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_EPOCHS",
    "MAX_FC_UNITS",
    "MAX_IMAGE_SIZE",
    "MAX_LEARNING_RATE",
    "MAX_RESIZE_SIZE",
    "MAX_SEED",
    "MAX_SHARD_SIZE",
]

# The side of the square model input. At 1024 pixels conv1's output alone is
# 256x256x96 floats, 25 MB an image; near 10**9 TensorFlow aborts the process.
MAX_IMAGE_SIZE = 1024
# The shorter side images are resized to before cropping, or stored at by
# `prepare`: at least MAX_IMAGE_SIZE, so that every crop fits. A 2048-pixel
# square is 50 MB as float32; a 65536-pixel one would be 51 GB.
MAX_RESIZE_SIZE = 2048
# Images per batch: the largest batch of the large-batch ImageNet studies
# (You et al., 2017, LARS); 227-pixel images, 20 GB of float32 input a batch.
MAX_BATCH_SIZE = 32768
# Epochs (and the checkpoints a run may keep, one an epoch).
MAX_EPOCHS = 10_000
# The width of fc6 and fc7: 4 times the paper's 4096 makes fc6 600 MB.
MAX_FC_UNITS = 16384
# Learning rates: finite as the float32 the optimiser holds them in (a
# "finite" 1e300 is inf there). A huge rate that stays finite is left to the
# run's divergence check, which names the flag to change.
MAX_LEARNING_RATE = 3.4e38
# Images per prepared shard.
MAX_SHARD_SIZE = 1 << 24
# Seeds of a run reach NumPy's legacy seeding (`keras.utils.set_random_seed`),
# which takes 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1
