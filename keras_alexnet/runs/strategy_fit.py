"""`fit_under_strategy`: Keras' training loop run under a `tf.distribute`
strategy, for TensorFlow multi-worker runs.

Keras 3's `fit` fails under `MultiWorkerMirroredStrategy` (keras-team/keras
#20585: before the first step it reduces a batch of data across the workers).
This loop runs the model's own `train_step` and `test_step` under
`strategy.run` in a `tf.function`, and calls the callbacks through
`keras.callbacks.CallbackList` as `fit` does, so the same callbacks work
unchanged. docs/distributed.md ("TensorFlow") says what differs from JAX.
"""

from __future__ import annotations

import itertools
from typing import Any

import keras
import tensorflow as tf

from keras_alexnet._validation import check_int

__all__ = ["WorkerLostError", "fit_under_strategy"]


class WorkerLostError(ConnectionError):
    """Another worker of the cluster stopped while this one trained."""


# What a step raises on the others when a worker dies or stops answering.
_LOST_WORKER = (
    tf.errors.UnavailableError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
    tf.errors.DeadlineExceededError,
)


def fit_under_strategy(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    train_data: tf.data.Dataset,
    *,
    batch_size: int,
    epochs: int,
    initial_epoch: int = 0,
    validation_data: tf.data.Dataset | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 1,
) -> keras.callbacks.History:
    """Trains a compiled `model` under `strategy` as `model.fit` would.

    Each worker passes its own part of the data (its shard, batched at its
    part of the global batch): nothing is sharded or rebatched across workers
    here. The gradient of a step is that of the global batch (Keras scales each
    replica's loss by the number of replicas, the strategy sums the
    gradients). The logs the callbacks get are the means over all workers,
    the same on every worker, so their decisions (stopping, schedules) agree.
    Batch normalisation's moving statistics are averaged over the workers at
    the end of every epoch, before the callbacks save anything.

    Args:
        model: a model built and compiled in `strategy.scope()`.
        strategy: the strategy, e.g. `MultiWorkerMirroredStrategy`.
        train_data: this worker's batches, a finite `tf.data.Dataset` of as
            many batches as every other worker's.
        batch_size: the global batch (all workers' batches together).
        epochs: the epoch count at the end, as for `fit`.
        initial_epoch: the epochs already done, as for `fit`.
        validation_data: this worker's validation batches, or `None`; read
            to its end where its length is unknown (every worker of a run
            scores the same images).
        callbacks: Keras callbacks, called as `fit` calls them.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.

    Returns:
        The `History` of the run, as `fit` returns it.

    Raises:
        ValueError: a dataset whose length is unknown, infinite or zero, or
            differs between workers (the workers would wait for each other
            forever), a batch not divisible by the replicas, or a bad
            `batch_size`, `epochs` or `initial_epoch`.
        WorkerLostError: another worker stopped (killed, preempted, or
            failed) during an epoch; the message says how to resume.
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    epochs = check_int("epochs", epochs, minimum=1)
    initial_epoch = check_int("initial_epoch", initial_epoch, minimum=0, maximum=epochs)
    train_steps = _agreed_steps(strategy, train_data, "train_data")
    val_steps = None
    unknown = tf.data.UNKNOWN_CARDINALITY
    if validation_data is not None and validation_data.cardinality() != unknown:
        val_steps = _agreed_steps(strategy, validation_data, "validation_data")
    with strategy.scope():
        if not model.optimizer.built:
            # Outside the step: variables are made in the cross-replica context.
            model.optimizer.build(model.trainable_variables)
    train_step = _step_function(strategy, model.train_step)
    test_step = _step_function(strategy, model.test_step)
    moving_statistics = _moving_statistics(model)
    average_statistics = _averaging_function(strategy, moving_statistics)

    callback_list = keras.callbacks.CallbackList(
        callbacks,
        add_history=True,
        add_progbar=verbose != 0,
        verbose=verbose,
        epochs=epochs,
        steps=train_steps,
        model=model,
    )
    train_batches = _distribute(strategy, train_data, batch_size)
    val_batches = None
    if validation_data is not None:
        val_batches = _distribute(strategy, validation_data, batch_size)
    model.stop_training = False
    callback_list.on_train_begin()
    training_logs = None
    epoch = initial_epoch
    try:
        for epoch in range(initial_epoch, epochs):
            model.reset_metrics()
            callback_list.on_epoch_begin(epoch)
            batches = iter(train_batches)
            for step in range(train_steps):
                callback_list.on_train_batch_begin(step)
                logs = train_step(batches)
                callback_list.on_train_batch_end(step, logs)
                if model.stop_training:
                    break
            else:
                # Keras' epoch iterator makes one more iterator at the end of a
                # whole epoch; the shuffle and the augmentation draw anew for
                # every iterator, so one is made here too: the epochs see fit's.
                iter(train_batches)
            if moving_statistics:
                average_statistics()
            # Read in the cross-replica context: every worker's counts summed.
            epoch_logs = _floats(model.get_metrics_result())
            if val_batches is not None:
                val_logs = _evaluate(model, test_step, val_batches, val_steps,
                                     callback_list)  # fmt: skip
                epoch_logs.update({f"val_{name}": v for name, v in val_logs.items()})
            callback_list.on_epoch_end(epoch, epoch_logs)
            training_logs = epoch_logs
            if model.stop_training:
                break
    except _LOST_WORKER as error:
        # TensorFlow's own text is a page of C++ status; keep its first cause.
        raise WorkerLostError(_lost_worker_message(epoch, error)) from None
    callback_list.on_train_end(logs=training_logs)
    return model.history


def _evaluate(
    model: keras.Model,
    test_step: Any,
    batches: Any,
    steps: int | None,
    callback_list: keras.callbacks.CallbackList,
) -> dict[str, float]:
    """One pass over the validation batches, as `fit`'s call of `evaluate`."""
    model.reset_metrics()
    callback_list.on_test_begin()
    iterator = iter(batches)
    for step in range(steps) if steps else itertools.count():
        callback_list.on_test_batch_begin(step)
        try:
            logs = test_step(iterator)
        except tf.errors.OutOfRangeError:
            # Raised on every worker at once: the distributed iterator ends
            # when all workers' data has ended.
            break
        callback_list.on_test_batch_end(step, logs)
    logs = _floats(model.get_metrics_result())
    callback_list.on_test_end(logs)
    return logs


def _step_function(strategy: tf.distribute.Strategy, step: Any) -> Any:
    """`step` on every replica's next batch; its logs averaged over replicas.

    Every replica's logs are its own running means over batches of the same
    size, so their mean is the global one.
    """

    @tf.function(reduce_retracing=True)
    def run(iterator: Any) -> dict[str, tf.Tensor]:
        logs = strategy.run(step, args=(next(iterator),))
        return {
            name: strategy.reduce("MEAN", value, axis=None)
            for name, value in logs.items()
        }

    return run


def _moving_statistics(model: keras.Model) -> list[Any]:
    """Batch normalisation's moving mean and variance, every layer's.

    Keras 3 keeps them per replica (aggregation `"none"`): each worker's
    follow its own part of the batch until they are averaged.
    """
    found = []
    stack = list(model.layers)
    while stack:
        layer = stack.pop(0)
        if isinstance(layer, keras.Model):
            stack = list(layer.layers) + stack
        elif isinstance(layer, keras.layers.BatchNormalization):
            found += [layer.moving_mean, layer.moving_variance]
    return found


def _averaging_function(strategy: tf.distribute.Strategy, variables: list[Any]) -> Any:
    """A function setting `variables` on every replica to their mean."""

    @tf.function
    def average() -> None:
        # Each replica's own values, averaged in the cross-replica context.
        values = strategy.run(
            lambda: [tf.identity(tf.convert_to_tensor(v)) for v in variables]
        )
        for variable, value in zip(variables, values, strict=True):
            variable.assign(strategy.reduce("MEAN", value, axis=None))

    return average


def _agreed_steps(
    strategy: tf.distribute.Strategy, dataset: tf.data.Dataset, name: str
) -> int:
    """The batches of `dataset`, checked to be as many on every worker."""
    steps = int(dataset.cardinality())
    if steps <= 0:
        # Unknown (-2), infinite (-1) or empty: the workers could not agree.
        raise ValueError(
            f"`{name}` should be a finite dataset of a known, nonzero number of "
            f"batches (the workers take every step together). Received: "
            f"{name} of cardinality {steps}"
        )

    @tf.function
    def every_workers_steps() -> tf.Tensor:
        mine = strategy.run(lambda: tf.constant([steps], tf.int64))
        return strategy.gather(mine, axis=0)

    counts = sorted(set(int(count) for count in every_workers_steps().numpy()))
    if len(counts) > 1:
        raise ValueError(
            f"`{name}` should have as many batches on every worker (each step "
            f"waits for all of them). Received: {counts} batches on different "
            "workers"
        )
    return steps


def _distribute(
    strategy: tf.distribute.Strategy, dataset: tf.data.Dataset, batch_size: int
) -> Any:
    """This worker's batches, split over its own replicas.

    `experimental_distribute_dataset` would take each batch for the global one
    and split it over all workers' replicas; every worker here already holds
    its own part, so each input pipeline is this worker's dataset.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF
    )
    dataset = dataset.with_options(options)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = context.get_per_replica_batch_size(batch_size)
        local_replicas = context.num_replicas_in_sync // context.num_input_pipelines
        if local_replicas == 1:
            return dataset
        # Each of this worker's replicas takes the next batch in turn.
        return dataset.rebatch(per_replica, drop_remainder=True)

    if batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            "`batch_size` is the global batch, split evenly over the "
            f"{strategy.num_replicas_in_sync} replicas: it should be divisible "
            f"by {strategy.num_replicas_in_sync}. Received: batch_size={batch_size}"
        )
    return strategy.distribute_datasets_from_function(dataset_fn)


def _lost_worker_message(epoch: int, error: tf.errors.OpError) -> str:
    lines = [line.strip() for line in str(error.message).splitlines()]
    lines = [line for line in lines if line and "Graph execution" not in line]
    found = [i for i, line in enumerate(lines) if "unhealthy" in line]
    found += [i for i, line in enumerate(lines) if "abort" in line]
    first = found[0] if found else 0
    cause = " ".join(lines[first : first + 2] if lines[first:] else [""])
    return (
        f"A worker of the cluster stopped during epoch {epoch + 1} "
        f"(TensorFlow: {type(error).__name__}: {cause[:300]}). The epochs before "
        "it are saved in the run folder: run the same command on every worker "
        "to resume from there."
    )


def _floats(logs: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in logs.items()}
