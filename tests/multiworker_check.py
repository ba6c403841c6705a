"""Run as a script by tests/test_multiworker.py: one worker of a two-process
cluster on 127.0.0.1 (CPU), started with the same command on each, the
cluster read from KERAS_DISTRIBUTION_* (every worker's address listed).

    python tests/multiworker_check.py FOLDER BACKEND

Each worker trains two epochs of a small AlexNet (the paper's LRN) on its
shard of a digits folder (shuffled, with the paper's augmentation) with its
part of a global batch of 8: under JAX with `keras.distribution.DataParallel`
over both processes' devices and `fit`; under TensorFlow with
`MultiWorkerMirroredStrategy` and `strategy_fit.fit_under_strategy`, scoring
the validation images after each epoch. Then, with no distribution, it trains
the same two epochs in this process alone with a plain `model.fit` on the
whole folder at the global batch (the one-process reference: the chief
trains it and hands it to the other worker in a file), and prints both
runs' losses after every step and the largest weight difference as JSON.

Under TensorFlow it then trains one epoch of a batch-normalised AlexNet under
the strategy, the chief alone saves it (which must take no collective step:
the other worker would never join it), and both take one more collective
step; it prints its moving statistics and logs, to be the same on both.
"""

from __future__ import annotations

import json
import os
import sys
import time

folder, backend = sys.argv[1], sys.argv[2]
os.environ["KERAS_BACKEND"] = backend

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_alexnet import PaperSGD  # noqa: E402
from keras_alexnet.data import imagenet_dataset  # noqa: E402
from keras_alexnet.runs import cluster as cluster_lib  # noqa: E402
from keras_alexnet.runs import models  # noqa: E402

GLOBAL_BATCH, EPOCHS = 8, 2


class StepLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def dataset(subset, shard, batch_size):
    return imagenet_dataset(
        "train" if subset == "train" else "validation",
        source=os.path.join(folder, "data", subset),
        image_size=67,
        batch_size=batch_size,
        augment="paper" if subset == "train" else "center_crop",
        seed=0,
        shard=shard if subset == "train" else None,
    )


def build(normalization="lrn"):
    keras.utils.set_random_seed(0)
    model = models.build_classifier(
        10, image_size=67, init="he", seed=0, fc_units=16, dropout=0.0,
        normalization=normalization,
    )  # fmt: skip
    model.compile(PaperSGD(0.01), "sparse_categorical_crossentropy")
    return model


def weights_of(model):
    return {v.path: np.asarray(v) for v in model.weights}


def one_process(validation):
    model = build()
    steps = StepLosses()
    history = model.fit(
        dataset("train", None, GLOBAL_BATCH),
        validation_data=dataset("val", None, GLOBAL_BATCH) if validation else None,
        epochs=EPOCHS, verbose=0, shuffle=False, callbacks=[steps],
    )  # fmt: skip
    return steps.losses, history.history, weights_of(model)


def jax_workers(cluster):
    keras.distribution.set_distribution(cluster_lib.data_parallel_over_workers(cluster))
    model = build()
    steps = StepLosses()
    data = dataset("train", cluster.shard, cluster.worker_batch(GLOBAL_BATCH))
    model.fit(data, epochs=EPOCHS, verbose=0, shuffle=False, callbacks=[steps])
    devices = len(keras.distribution.list_devices())
    keras.distribution.set_distribution(None)
    return {"devices": devices, "losses": steps.losses}, {}, weights_of(model)


def tensorflow_workers(cluster):
    from keras_alexnet.runs.strategy_fit import fit_under_strategy

    strategy = cluster_lib.mirrored_strategy_over_workers(cluster)

    def fit(normalization, epochs):
        with strategy.scope():
            model = build(normalization)
        steps = StepLosses()
        history = fit_under_strategy(
            model, strategy, dataset("train", cluster.shard, 4),
            validation_data=dataset("val", None, 4), batch_size=GLOBAL_BATCH,
            epochs=epochs, callbacks=[steps], verbose=0,
        )  # fmt: skip
        return model, steps.losses, history.history

    model, losses, history = fit("lrn", EPOCHS)
    result = {"devices": strategy.num_replicas_in_sync, "losses": losses}
    weights = weights_of(model)
    batchnorm, bn_losses, bn_history = fit("batchnorm", 1)
    if cluster.is_chief:
        batchnorm.save(os.path.join(folder, "batchnorm.keras"))
    # A collective step on both: had the save taken one, they would differ.
    one = strategy.gather(strategy.run(lambda: keras.ops.ones((1,))), axis=0)
    result["batchnorm"] = {
        "moving": [float(np.asarray(v).sum()) for v in batchnorm.weights
                   if "moving" in v.path],
        "losses": bn_losses,
        "history": bn_history,
        "replicas_after_save": int(np.asarray(one).sum()),
    }  # fmt: skip
    return result, history, weights


cluster = cluster_lib.cluster_from_environment()
workers = tensorflow_workers if backend == "tensorflow" else jax_workers
result, history, weights = workers(cluster)
# The chief alone trains the one-process reference and hands it to the other
# worker by a file, which it waits for (the cluster stays up until both end).
reference = os.path.join(folder, "reference.npz")
if cluster.is_chief:
    one_losses, one_history, one_weights = one_process(backend == "tensorflow")
    np.savez(reference + ".tmp.npz", losses=one_losses,
             history=json.dumps(one_history), **one_weights)  # fmt: skip
    os.replace(reference + ".tmp.npz", reference)
else:
    deadline = time.monotonic() + 300
    while not os.path.exists(reference) and time.monotonic() < deadline:
        time.sleep(0.2)
    with np.load(reference) as saved:
        one_losses = saved["losses"].tolist()
        one_history = json.loads(str(saved["history"]))
        one_weights = {k: saved[k] for k in weights}
result.update(
    index=cluster.index,
    one_process_losses=one_losses,
    history=history,
    one_process_history=one_history if history else {},
    max_abs_difference=max(
        float(np.abs(weights[k] - one_weights[k]).max()) for k in weights
    ),
    largest_weight=max(float(np.abs(w).max()) for w in one_weights.values()),
)
print(json.dumps(result))
