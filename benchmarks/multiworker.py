"""Training throughput of one process against two worker processes on this
machine (JAX and TensorFlow, CPU, `distribute="multi-worker"`'s set-up).

Both train the same small AlexNet (`runs.models.build_classifier`) with the
same global batch on in-memory images (no decoding: the training step and the
workers' gradient exchange are what is timed): one process alone with `fit`,
then two worker processes on 127.0.0.1, each fed half of every batch from its
shard: under JAX with `fit` and `keras.distribution.DataParallel` over both
processes' devices (Gloo); under TensorFlow with `MultiWorkerMirroredStrategy`
and `runs.strategy_fit.fit_under_strategy`. After warm-up steps (compilation),
images/s = timed steps x global batch / the time between the chief's batch
ends. Each configuration runs `--repeats` times in turn (one, two, two,
one, ...); the table gives the median and the best.

On one machine the two workers share its cores: the ratio says what the
exchange costs here, not what a second machine buys (docs/distributed.md).

Usage: python benchmarks/multiworker.py [--quick] [--repeats N] [--backend B]
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from _common import format_table, median, parse_args, ratio_line  # noqa: E402

# (image side, fc units, global batch, warm-up steps, timed steps)
FULL = (131, 1024, 32, 3, 10)
QUICK = (67, 16, 8, 2, 3)
BACKENDS = ("jax", "tensorflow")


def worker(backend: str, addresses: list[str], index: int, quick: bool) -> None:
    """One process of a run: trains, then prints its images/s as JSON."""
    os.environ["KERAS_BACKEND"] = backend
    import keras
    import numpy as np
    import tensorflow as tf

    sys.path.insert(0, ROOT)
    from keras_alexnet import PaperSGD
    from keras_alexnet.runs import cluster as cluster_lib
    from keras_alexnet.runs import models
    from keras_alexnet.runs.strategy_fit import fit_under_strategy

    side, fc_units, batch, warmup, steps = QUICK if quick else FULL
    cluster = cluster_lib.Cluster(
        len(addresses), index, addresses[0],
        tuple(addresses) if len(addresses) > 1 else (),
    )  # fmt: skip
    strategy = None
    if cluster.num_workers > 1 and backend == "tensorflow":
        strategy = cluster_lib.mirrored_strategy_over_workers(cluster)
    elif cluster.num_workers > 1:
        distribution = cluster_lib.data_parallel_over_workers(cluster)
        keras.distribution.set_distribution(distribution)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (batch * 4, side, side, 3)).astype("float32")
    labels = rng.integers(0, 10, batch * 4)
    data = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shard(*cluster.shard)
        .batch(cluster.worker_batch(batch), drop_remainder=True)
        .repeat()
        .take(warmup + steps)  # a known length, as strategy_fit needs
    )
    keras.utils.set_random_seed(0)
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = models.build_classifier(
            10, image_size=side, init="he", seed=0, fc_units=fc_units, dropout=0.5
        )
        model.compile(PaperSGD(0.001), "sparse_categorical_crossentropy")
    ends: list[float] = []
    clock = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter())
    )
    if strategy is None:
        model.fit(data, epochs=1, verbose=0, callbacks=[clock])
    else:
        fit_under_strategy(model, strategy, data, batch_size=batch, epochs=1,
                           verbose=0, callbacks=[clock])  # fmt: skip
    seconds = ends[-1] - ends[warmup - 1]
    print(json.dumps({"index": index, "images_per_second": steps * batch / seconds}))


def _free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def measure(backend: str, num_workers: int, quick: bool) -> float:
    """Runs one configuration in fresh processes; the chief's images/s."""
    addresses = ",".join(f"127.0.0.1:{port}" for port in _free_ports(num_workers))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT,
           "KERAS_BACKEND": backend}  # fmt: skip
    command = [sys.executable, __file__, "--worker", backend, addresses]
    flags = ["--quick"] if quick else []
    processes = [
        subprocess.Popen(
            [*command, str(index), *flags],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )  # fmt: skip
        for index in range(num_workers)
    ]
    try:
        outputs = [process.communicate(timeout=900) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, 9)
    for process, (_, err) in zip(processes, outputs, strict=True):
        if process.returncode:
            raise SystemExit(f"a worker failed:\n{err[-3000:]}")
    return json.loads(outputs[0][0].strip().splitlines()[-1])["images_per_second"]


def main() -> None:
    if "--worker" in sys.argv:
        at = sys.argv.index("--worker")
        backend, addresses, index = sys.argv[at + 1 : at + 4]
        worker(backend, addresses.split(","), int(index), "--quick" in sys.argv)
        return
    args = parse_args(__doc__.splitlines()[0])
    repeats = args.repeats or (1 if args.quick else 3)
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    if not set(backends) <= set(BACKENDS):
        raise SystemExit(f"multi-worker runs on {' or '.join(BACKENDS)} only")
    side, fc_units, batch, _, steps = QUICK if args.quick else FULL
    results = {(b, n): [] for b in backends for n in (1, 2)}
    for repeat in range(repeats):
        for backend in backends:
            for num_workers in (1, 2) if repeat % 2 == 0 else (2, 1):
                results[backend, num_workers].append(
                    measure(backend, num_workers, args.quick)
                )
    load = os.getloadavg()[0]
    print(
        f"AlexNet at {side}x{side}, fc {fc_units}, global batch {batch}, "
        f"{steps} timed steps, on CPU ({os.cpu_count()} cores, load {load:.1f})"
    )
    rows = [
        [backend, f"{n} process{'es' if n > 1 else ''}", median(v), max(v)]
        for (backend, n), v in results.items()
    ]
    print(format_table(["backend", "run", "img/s (median)", "img/s (best)"], rows))
    for backend in backends:
        ratio = median(results[backend, 2]) / median(results[backend, 1])
        label = f"multiworker {backend} img/s"
        print(ratio_line(label, "two workers", "one process", ratio))


if __name__ == "__main__":
    main()
