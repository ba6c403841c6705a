"""Where this process stands among the workers of a multi-worker run.

`train(distribute="multi-worker")` runs the same command on every worker; each
reads its place from the environment (`cluster_from_environment`), in this
order:

- `TF_CONFIG`, TensorFlow's convention (`{"cluster": {"chief": [...],
  "worker": [...]}, "task": {"type": "worker", "index": 1}}`): the chief (or
  else worker 0) is worker 0 and the coordinator;
- Keras' own `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator's
  `host:port` first, then the others' where known),
  `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`, the
  last two defaulting to SLURM's `SLURM_NTASKS` and `SLURM_PROCID` under `srun`.

JAX's workers meet at the coordinator (`data_parallel_over_workers`);
TensorFlow's connect to each other, so they need every worker's address
(`mirrored_strategy_over_workers`). docs/distributed.md shows the launch on a
plain cluster, SLURM and Kubernetes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import keras

__all__ = [
    "Cluster",
    "cluster_from_environment",
    "data_parallel_over_workers",
    "mirrored_strategy_over_workers",
    "wait_for_chief",
]

ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This worker's place in a cluster.

    Attributes:
        num_workers: the number of worker processes.
        index: this worker's index, 0 for the chief.
        coordinator: the chief's `host:port`, where the workers meet.
        addresses: every worker's `host:port`, in index order, where the
            environment names them all (`()` otherwise).
    """

    num_workers: int
    index: int
    coordinator: str
    addresses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.num_workers < 1 or not 0 <= self.index < self.num_workers:
            raise ValueError(
                "A worker's index should be from 0 to the number of workers - 1. "
                f"Received: index={self.index}, num_workers={self.num_workers}"
            )
        if not self.coordinator:
            raise ValueError(
                "The cluster needs the coordinator's host:port. Received: "
                f"coordinator={self.coordinator!r}"
            )
        if self.addresses and (
            len(self.addresses) != self.num_workers
            or self.addresses[0] != self.coordinator
        ):
            raise ValueError(
                "`addresses` should name every worker, the coordinator first. "
                f"Received: addresses={self.addresses!r}, num_workers="
                f"{self.num_workers}, coordinator={self.coordinator!r}"
            )

    @property
    def is_chief(self) -> bool:
        """Whether this worker writes the run folder (worker 0)."""
        return self.index == 0

    @property
    def shard(self) -> tuple[int, int]:
        """`(num_workers, index)`: this worker's part of the data."""
        return self.num_workers, self.index

    def worker_batch(self, batch_size: int) -> int:
        """Each worker's part of the global `batch_size`.

        Raises:
            ValueError: `batch_size` not divisible by the number of workers.
        """
        if batch_size % self.num_workers:
            raise ValueError(
                f"`batch_size` is the global batch, split evenly over the "
                f"{self.num_workers} workers: it should be divisible by "
                f"{self.num_workers}. Received: batch_size={batch_size}"
            )
        return batch_size // self.num_workers


def cluster_from_environment(environ: Mapping[str, str] | None = None) -> Cluster:
    """The cluster described by `TF_CONFIG`, or Keras' (and SLURM's) variables.

    Args:
        environ: the environment; defaults to `os.environ`.

    Returns:
        A `Cluster`.

    Raises:
        ValueError: neither is set, or one is malformed (named in the message).
    """
    environ = os.environ if environ is None else environ
    if environ.get("TF_CONFIG"):
        return _from_tf_config(environ["TF_CONFIG"])
    if environ.get(ADDRESSES):
        addresses = [address.strip() for address in environ[ADDRESSES].split(",")]
        count = environ.get(NUM_PROCESSES) or environ.get("SLURM_NTASKS")
        index = environ.get(PROCESS_ID) or environ.get("SLURM_PROCID")
        if count is None or index is None:
            raise ValueError(
                f"{ADDRESSES} needs {NUM_PROCESSES} and {PROCESS_ID} (or SLURM's "
                f"SLURM_NTASKS and SLURM_PROCID). Received: {NUM_PROCESSES}="
                f"{count!r}, {PROCESS_ID}={index!r}"
            )
        num_workers, worker = (
            _integer(NUM_PROCESSES, count),
            _integer(PROCESS_ID, index),
        )
        if len(addresses) > 1 and len(addresses) != num_workers:
            raise ValueError(
                f"{ADDRESSES} names {len(addresses)} workers but {NUM_PROCESSES} "
                f"says {num_workers}. Received: {ADDRESSES}={environ[ADDRESSES]!r}"
            )
        every = tuple(addresses) if len(addresses) > 1 else ()
        return Cluster(num_workers, worker, addresses[0], every)
    raise ValueError(
        "`distribute='multi-worker'` reads the cluster from the environment: set "
        f"TF_CONFIG, or {ADDRESSES} (the chief's host:port) with {NUM_PROCESSES} "
        f"and {PROCESS_ID} (docs/distributed.md). Received: neither"
    )


def _from_tf_config(text: str) -> Cluster:
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        chiefs = list(cluster.get("chief", []))
        workers = chiefs + list(cluster.get("worker", []))
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            'TF_CONFIG should be JSON like {"cluster": {"worker": ["host:port", '
            '...]}, "task": {"type": "worker", "index": 0}} '
            f"({error!r}). Received: TF_CONFIG={text!r}"
        ) from None
    if kind not in ("chief", "worker"):
        raise ValueError(
            "TF_CONFIG's task type should be 'chief' or 'worker' (a multi-worker "
            f"run has no parameter servers or evaluators). Received: type={kind!r}"
        )
    position = index if kind == "chief" else len(chiefs) + index
    return Cluster(
        len(workers), position, workers[0] if workers else "", tuple(workers)
    )


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"{name} should be an integer. Received: {name}={text!r}"
        ) from None


def data_parallel_over_workers(cluster: Cluster) -> Any:
    """Joins the cluster and returns `DataParallel` over every worker's devices.

    JAX only (`keras.distribution`); call it before any JAX computation. Each
    worker feeds its own part of every global batch (`auto_shard_dataset` off:
    the pipeline is sharded by file, before decoding). Blocks until every
    worker has joined.

    Returns:
        A `keras.distribution.DataParallel` to pass to `set_distribution`.

    Raises:
        ValueError: a backend other than JAX.
    """
    _check_backend("jax", "data_parallel_over_workers")
    import jax

    if not jax.distributed.is_initialized():
        # CPU devices of several processes exchange gradients through Gloo.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize(
            cluster.coordinator, cluster.num_workers, cluster.index
        )
    return keras.distribution.DataParallel(
        devices=keras.distribution.list_devices(), auto_shard_dataset=False
    )


def mirrored_strategy_over_workers(cluster: Cluster) -> Any:
    """TensorFlow's `MultiWorkerMirroredStrategy` over the cluster's workers.

    TensorFlow only; call it before any TensorFlow computation (the strategy
    configures the runtime's collectives). Whether the cluster came from
    `TF_CONFIG` or from Keras' variables, the workers are one `"worker"` job
    in index order, the chief first: every worker converts alike, so they
    agree. Keras' `fit` does not run under this strategy (keras-team/keras
    #20585); `keras_alexnet.runs.strategy_fit` trains under it.

    Returns:
        A `tf.distribute.MultiWorkerMirroredStrategy`.

    Raises:
        ValueError: a backend other than TensorFlow, or a cluster that does
            not name every worker's address.
    """
    _check_backend("tensorflow", "mirrored_strategy_over_workers")
    if not cluster.addresses:
        raise ValueError(
            "TensorFlow's workers connect to each other: list every worker's "
            f"host:port in {ADDRESSES}, the chief first, comma-separated (JAX "
            "uses the first), or set TF_CONFIG (docs/distributed.md). Received: "
            f"{ADDRESSES}={cluster.coordinator!r} for {cluster.num_workers} "
            "workers"
        )
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({"worker": list(cluster.addresses)}),
        task_type="worker",
        task_id=cluster.index,
        rpc_layer="grpc",
    )
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)


def _check_backend(backend: str, name: str) -> None:
    if keras.backend.backend() != backend:
        raise ValueError(
            f"`{name}` needs the {backend} backend. Received: backend "
            f"{keras.backend.backend()!r}"
        )


def wait_for_chief(
    finished: Callable[[], dict[str, Any] | None], *, poll_seconds: float = 2.0
) -> dict[str, Any]:
    """Waits until the chief has written the run's metrics, and returns them.

    Workers stay up while the chief evaluates, so that the cluster shuts down
    together (JAX's coordination service lives in the chief's process).

    Args:
        finished: returns the metrics once written (`RunFolder.finished_metrics`).
        poll_seconds: the time between two looks.
    """
    while (metrics := finished()) is None:
        time.sleep(poll_seconds)
    return metrics
