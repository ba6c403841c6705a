"""Run as a script by tests/test_runs.py: the paper's two-device split
(`keras.distribution.ModelParallel`, JAX) against one device, as JSON.

    python tests/model_parallel_check.py

JAX is told to expose two host devices before it starts, hence a process of its
own. The same AlexNet (67 pixels, the original variant's two groups, fc6/fc7 of
16 units) is built on one device and under `model_parallel()` with the same
weights; the script prints the largest difference of the outputs, the loss of
one training step, the weights after it, and how each sharded kernel is laid
out over the devices (read from JAX's own shards).
"""

from __future__ import annotations

import json
import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_alexnet import PaperSGD  # noqa: E402
from keras_alexnet.runs import models  # noqa: E402
from keras_alexnet.runs.train import _distribution_scope  # noqa: E402


def build():
    keras.utils.set_random_seed(0)
    model = models.build_classifier(
        10, image_size=67, init="he", seed=0, fc_units=16, dropout=0.0
    )
    model.compile(PaperSGD(0.01), "sparse_categorical_crossentropy")
    return model


rng = np.random.default_rng(0)
x = rng.normal(size=(4, 67, 67, 3)).astype("float32") * 50
y = np.arange(4) % 10

one = build()
weights = one.get_weights()
outputs_one = np.asarray(one.predict_on_batch(x))
loss_one = float(one.train_on_batch(x, y))

with _distribution_scope("model-parallel"):
    two = build()
two.set_weights(weights)
outputs_two = np.asarray(two.predict_on_batch(x))
loss_two = float(two.train_on_batch(x, y))

# Each device's part of each kernel: which output units it holds, as
# [first, last + 1) of the full kernel, found by comparing the shard's values
# with slices of the whole kernel.
layout = {}
for variable in two.weights:
    if not variable.path.endswith("/kernel"):
        continue
    full = np.asarray(variable.value)
    parts = []
    for shard in sorted(variable.value.addressable_shards, key=lambda s: s.device.id):
        data = np.asarray(shard.data)
        width = data.shape[-1]
        start = next(
            i
            for i in range(0, full.shape[-1], width)
            if np.array_equal(full[..., i : i + width], data)
        )
        parts.append([shard.device.id, start, start + width])
    layout[variable.path] = {"units": full.shape[-1], "parts": parts}

print(
    json.dumps(
        {
            "devices": len(jax.devices()),
            "versions": {"keras": keras.__version__, "jax": jax.__version__},
            "max_output_difference": float(np.abs(outputs_one - outputs_two).max()),
            "largest_output": float(np.abs(outputs_one).max()),
            "loss_one": loss_one,
            "loss_two": loss_two,
            "max_weight_difference": max(
                float(np.abs(a - np.asarray(b)).max())
                for a, b in zip(one.get_weights(), two.get_weights(), strict=True)
            ),
            "largest_weight": max(float(np.abs(w).max()) for w in weights),
            "layout": layout,
        }
    )
)
