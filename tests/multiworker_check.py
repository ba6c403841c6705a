"""Run as a script by tests/test_multiworker.py: one worker of a two-process
JAX cluster on 127.0.0.1 (CPU, Gloo), started with the same command on each.

    python tests/multiworker_check.py FOLDER NUM_WORKERS INDEX PORT

Each worker trains two epochs of a small AlexNet on its shard of a digits
folder (shuffled, with the paper's augmentation) with its part of a global
batch of 8, under `keras.distribution.DataParallel` over both processes'
devices. Then, with the distribution unset, it trains the same two epochs in
this process alone on the whole folder at the global batch (the one-process
reference), and prints both runs' losses after every step and the largest
weight difference as JSON (the reference needs no second process, and the
cluster stays up until both are done).
"""

from __future__ import annotations

import json
import os
import sys

folder, num_workers, index, port = sys.argv[1], *map(int, sys.argv[2:5])
os.environ["KERAS_BACKEND"] = "jax"

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_alexnet import PaperSGD  # noqa: E402
from keras_alexnet.data import imagenet_dataset  # noqa: E402
from keras_alexnet.runs import models  # noqa: E402
from keras_alexnet.runs.cluster import Cluster, data_parallel_over_workers  # noqa: E402

GLOBAL_BATCH, EPOCHS = 8, 2


class StepLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def run(shard, batch_size):
    keras.utils.set_random_seed(0)
    dataset = imagenet_dataset(
        "train",
        source=os.path.join(folder, "data", "train"),
        image_size=67,
        batch_size=batch_size,
        augment="paper",
        seed=0,
        shard=shard,
    )
    model = models.build_classifier(
        10, image_size=67, init="he", seed=0, fc_units=16, dropout=0.0
    )
    model.compile(PaperSGD(0.01), "sparse_categorical_crossentropy")
    steps = StepLosses()
    model.fit(dataset, epochs=EPOCHS, verbose=0, shuffle=False, callbacks=[steps])
    weights = {v.path: np.asarray(v) for v in model.weights}
    return steps.losses, weights


cluster = Cluster(num_workers, index, f"127.0.0.1:{port}")
keras.distribution.set_distribution(data_parallel_over_workers(cluster))
losses, weights = run(cluster.shard, cluster.worker_batch(GLOBAL_BATCH))
devices = len(keras.distribution.list_devices())
keras.distribution.set_distribution(None)
one_losses, one_weights = run(None, GLOBAL_BATCH)
print(
    json.dumps(
        {
            "index": index,
            "devices": devices,
            "losses": losses,
            "one_process_losses": one_losses,
            "max_abs_difference": max(
                float(np.abs(weights[k] - one_weights[k]).max()) for k in weights
            ),
            "largest_weight": max(float(np.abs(w).max()) for w in one_weights.values()),
        }
    )
)
