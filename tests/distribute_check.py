"""Run as a script by tests/test_runs.py: one epoch on one device, then the same
epoch with two replicas on two virtual CPU devices, and prints the largest
weight difference as JSON.

    python tests/distribute_check.py BACKEND FOLDER

Virtual devices must be set before the backend starts, hence a process of its
own: TensorFlow splits its CPU into two logical devices
(`tf.distribute.MirroredStrategy`), JAX is told to expose two host devices
(`keras.distribution.DataParallel`). The data order is fixed (no shuffle, centre
crops), so both runs see the same batches.
"""

from __future__ import annotations

import json
import os
import sys

backend, folder = sys.argv[1], sys.argv[2]
os.environ["KERAS_BACKEND"] = backend
if backend == "jax":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import tensorflow as tf  # noqa: E402

if backend == "tensorflow":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_alexnet import PaperSGD  # noqa: E402
from keras_alexnet.data import imagenet_dataset  # noqa: E402
from keras_alexnet.resources import write_digits_folder  # noqa: E402
from keras_alexnet.runs import models  # noqa: E402
from keras_alexnet.runs.train import _distribution_scope  # noqa: E402


def one_epoch(data, distribute):
    keras.utils.set_random_seed(0)
    dataset = imagenet_dataset(
        "train",
        source=str(data / "train"),
        image_size=67,
        batch_size=6,
        augment="center_crop",
        shuffle=False,
    )
    with _distribution_scope(distribute):
        model = models.build_classifier(
            10, image_size=67, init="he", seed=0, fc_units=16, dropout=0.0
        )
        model.compile(PaperSGD(0.01), "sparse_categorical_crossentropy")
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    keras.distribution.set_distribution(None)
    return {v.path: np.asarray(v) for v in model.weights}


data = write_digits_folder(os.path.join(folder, "data"), image_size=16, per_class=4)
one, two = one_epoch(data, False), one_epoch(data, True)
if backend == "jax":
    import jax

    devices = len(jax.devices())
else:
    devices = len(tf.config.list_logical_devices("CPU"))
print(
    json.dumps(
        {
            "devices": devices,
            "max_abs_difference": max(
                float(np.abs(one[k] - two[k]).max()) for k in one
            ),
            "largest_weight": max(float(np.abs(w).max()) for w in one.values()),
        }
    )
)
