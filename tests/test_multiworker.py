"""`distribute="multi-worker"`: the cluster read from the environment, each
worker's shard of the data, `strategy_fit` against `fit`, and two worker
processes on 127.0.0.1 against one process (tests/multiworker_check.py, JAX and
TensorFlow), killed and resumed."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_alexnet import cli
from keras_alexnet.data import imagenet_dataset, prepare_imagenet
from keras_alexnet.resources import write_digits_folder
from keras_alexnet.runs.cluster import (
    Cluster,
    cluster_from_environment,
    mirrored_strategy_over_workers,
)
from keras_alexnet.runs.run_folder import RUN_ENTRIES, RunFolder
from keras_alexnet.runs.train import _claim

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKERS = ["10.0.0.1:2222", "10.0.0.2:2222", "10.0.0.3:2222"]


@pytest.mark.parametrize(
    "environ, expected",
    [
        # TensorFlow's convention: the chief is worker 0 and the coordinator.
        (
            {"TF_CONFIG": json.dumps({"cluster": {"worker": WORKERS},
                                      "task": {"type": "worker", "index": 2}})},
            (3, 2, WORKERS[0]),
        ),
        (
            {"TF_CONFIG": json.dumps({"cluster": {"chief": WORKERS[:1],
                                                  "worker": WORKERS[1:]},
                                      "task": {"type": "worker", "index": 0}})},
            (3, 1, WORKERS[0]),
        ),
        (
            {"TF_CONFIG": json.dumps({"cluster": {"chief": WORKERS[:1],
                                                  "worker": WORKERS[1:]},
                                      "task": {"type": "chief", "index": 0}})},
            (3, 0, WORKERS[0]),
        ),
        # Keras' variables; the coordinator alone, or every address.
        (
            {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234",
             "KERAS_DISTRIBUTION_NUM_PROCESSES": "4",
             "KERAS_DISTRIBUTION_PROCESS_ID": "3"},
            (4, 3, "10.0.0.1:1234"),
        ),
        (
            {"KERAS_DISTRIBUTION_JOB_ADDRESSES": ",".join(WORKERS),
             "KERAS_DISTRIBUTION_NUM_PROCESSES": "3",
             "KERAS_DISTRIBUTION_PROCESS_ID": "1"},
            (3, 1, WORKERS[0]),
        ),
        # Under srun, SLURM's task count and rank.
        (
            {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "node1:1234",
             "SLURM_NTASKS": "8", "SLURM_PROCID": "5"},
            (8, 5, "node1:1234"),
        ),
    ],
)  # fmt: skip
def test_cluster_from_environment(environ, expected):
    cluster = cluster_from_environment(environ)
    assert (cluster.num_workers, cluster.index, cluster.coordinator) == expected
    assert cluster.is_chief == (expected[1] == 0)
    assert cluster.shard == expected[:2]


@pytest.mark.parametrize(
    "environ, message",
    [
        ({}, "reads the cluster from the environment"),
        ({"TF_CONFIG": "{not json"}, "TF_CONFIG should be JSON"),
        ({"TF_CONFIG": json.dumps({"cluster": {"ps": WORKERS},
                                   "task": {"type": "ps", "index": 0}})},
         "Received: type='ps'"),
        ({"TF_CONFIG": json.dumps({"cluster": {"worker": WORKERS},
                                   "task": {"type": "worker", "index": 3}})},
         "Received: index=3, num_workers=3"),
        ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "h:1"},
         "needs KERAS_DISTRIBUTION_NUM_PROCESSES"),
        ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "h:1,h:2",
          "KERAS_DISTRIBUTION_NUM_PROCESSES": "3",
          "KERAS_DISTRIBUTION_PROCESS_ID": "0"}, "names 2 workers"),
        ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "h:1",
          "KERAS_DISTRIBUTION_NUM_PROCESSES": "two",
          "KERAS_DISTRIBUTION_PROCESS_ID": "0"},
         "KERAS_DISTRIBUTION_NUM_PROCESSES='two'"),
    ],
)  # fmt: skip
def test_cluster_from_environment_refuses(environ, message):
    with pytest.raises(ValueError, match="Received") as raised:
        cluster_from_environment(environ)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "environ, addresses",
    [
        ({"TF_CONFIG": json.dumps({"cluster": {"chief": WORKERS[:1],
                                               "worker": WORKERS[1:]},
                                   "task": {"type": "worker", "index": 1}})},
         tuple(WORKERS)),
        ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": " , ".join(WORKERS),
          "KERAS_DISTRIBUTION_NUM_PROCESSES": "3",
          "KERAS_DISTRIBUTION_PROCESS_ID": "2"}, tuple(WORKERS)),
        # The coordinator alone: enough for JAX, not for TensorFlow.
        ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": WORKERS[0],
          "KERAS_DISTRIBUTION_NUM_PROCESSES": "3",
          "KERAS_DISTRIBUTION_PROCESS_ID": "2"}, ()),
    ],
)  # fmt: skip
def test_cluster_keeps_every_address(environ, addresses):
    # TensorFlow's workers connect to each other: all addresses, chief first.
    assert cluster_from_environment(environ).addresses == addresses


def test_cluster_refuses_addresses_that_disagree():
    with pytest.raises(ValueError, match="the coordinator first. Received"):
        Cluster(2, 0, "h:1", ("h:2", "h:1"))
    with pytest.raises(ValueError, match="every worker"):
        Cluster(3, 0, "h:1", ("h:1", "h:2"))


@pytest.mark.backend
def test_tensorflow_needs_every_address():
    # Refused before TensorFlow's runtime is touched.
    cluster = Cluster(2, 1, "10.0.0.1:1234")
    backend = keras.backend.backend()
    expected = (
        "list every worker's host:port"
        if backend == "tensorflow"
        else ("needs the tensorflow backend")
    )
    with pytest.raises(ValueError, match="Received") as raised:
        mirrored_strategy_over_workers(cluster)
    assert expected in str(raised.value)


def test_worker_batch_splits_the_global_batch():
    cluster = Cluster(4, 1, "h:1")
    assert cluster.worker_batch(128) == 32
    with pytest.raises(ValueError, match="divisible by 4. Received: batch_size=130"):
        cluster.worker_batch(130)


def test_shards_make_one_process_batches(tmp_path):
    # Every worker shuffles all file names the same way, takes every second
    # one from its index and the augmentation draw of that place: the two
    # workers' batches of 4 together are, image for image, one process's batch
    # of 8, epoch after epoch; no image twice, as many batches on each worker.
    data = write_digits_folder(tmp_path / "data", image_size=16, per_class=4)
    files = sum(len(names) for _, _, names in os.walk(data / "train"))
    options = {"source": str(data / "train"), "image_size": 24, "variant": None,
               "augment": "paper", "seed": 3}  # fmt: skip
    one = imagenet_dataset("train", batch_size=8, **options)
    workers = [
        imagenet_dataset("train", batch_size=4, shard=(2, index), **options)
        for index in (0, 1)
    ]
    steps = files // 8
    assert [int(d.cardinality()) for d in (one, *workers)] == [steps] * 3

    def images(x, y):
        pairs = zip(np.asarray(x), np.asarray(y), strict=True)
        return sorted(image.tobytes() + bytes([label]) for image, label in pairs)

    for _ in range(2):  # epochs: reshuffled alike
        seen = []
        for (x, y), (x0, y0), (x1, y1) in zip(one, *workers, strict=True):
            together = images(np.concatenate([x0, x1]), np.concatenate([y0, y1]))
            assert together == images(x, y)
            seen += together
        assert len(set(seen)) == len(seen) == 8 * steps
    with pytest.raises(ValueError, match=r"Received: shard=\(2, 2\)"):
        imagenet_dataset("train", batch_size=4, shard=(2, 2), **options)


def test_prepared_shards_split_by_file(tmp_path):
    # 30 images in shard files of 4 (7 full, one of 2): each of two workers
    # reads only its own files, every epoch 4 x 4 - 2 = 14 images, none of them
    # the other worker's; a folder with fewer files than workers is refused.
    data = write_digits_folder(tmp_path / "data", image_size=16, per_class=4)
    prepared = str(tmp_path / "prepared")
    prepare_imagenet(data / "train", prepared, resize_size=32, shard_size=4,
                     verbose=0)  # fmt: skip
    options = {"source": prepared, "image_size": 24, "variant": None,
               "augment": "center_crop", "shuffle": True, "seed": 1}  # fmt: skip
    workers = [
        imagenet_dataset("train", batch_size=2, shard=(2, index), **options)
        for index in (0, 1)
    ]
    for _ in range(2):  # epochs: the files are reshuffled alike on both
        images = [[x.tobytes() for x, _ in d.unbatch().as_numpy_iterator()]
                  for d in workers]  # fmt: skip
        assert [len(i) for i in images] == [14, 14]
        assert not set(images[0]) & set(images[1])
    with pytest.raises(ValueError, match="8 shard files for 9 workers"):
        imagenet_dataset("train", batch_size=1, shard=(9, 0), **options)


@pytest.mark.backend
def test_multi_worker_needs_a_cluster(tmp_path, capsys, monkeypatch):
    # TensorFlow and JAX: the cluster must be described; PyTorch: refused.
    for name in ("TF_CONFIG", "KERAS_DISTRIBUTION_JOB_ADDRESSES"):
        monkeypatch.delenv(name, raising=False)
    backend = keras.backend.backend()
    status = cli.main(["train", str(tmp_path), "--distribute", "multi-worker"])
    assert status == 1
    err = capsys.readouterr().err
    expected = {
        "tensorflow": "reads the cluster from the environment",
        "jax": "reads the cluster from the environment",
        "torch": "needs the TensorFlow or JAX backend",
    }[backend]
    assert expected in err


class _Calls(keras.callbacks.Callback):
    """Records the callback calls and the logs they get, as `fit` makes them."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            calls = object.__getattribute__(self, "calls")

            def record(*args, logs=None):
                logs = {k: round(float(v), 5) for k, v in (logs or {}).items()}
                calls.append((name, *args, logs))

            return record
        return object.__getattribute__(self, name)


LOST_WORKER_STATUS = (
    "Graph execution error:\n\n"
    "Detected at node CollectiveReduceV2 defined at (most recent call last):\n"
    "Collective ops is aborted by: Error reported from /job:worker/task:1: The "
    "following tasks are unhealthy (stopped sending heartbeats):\n"
    "/job:worker/replica:0/task:1\n"
    "The tasks have crashed. Check the task logs for an earlier error.\n"
    "The error could be from a previous operation. Restart your program to reset."
)


def test_fit_under_strategy_calls_back_as_fit(tmp_path):
    # One process, one replica: the same callback calls with the same logs
    # (a shuffled pipeline, a learning-rate schedule, validation) as `fit`.
    import tensorflow as tf

    from keras_alexnet.runs.strategy_fit import fit_under_strategy

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(24, 5)).astype("float32"), rng.integers(0, 3, 24)

    def run(strategy):
        keras.utils.set_random_seed(0)
        # Each run's own pipeline: a shuffle draws anew for every iterator.
        data = tf.data.Dataset.from_tensor_slices((x, y))
        train = data.shuffle(24, seed=1).batch(4, drop_remainder=True)
        val = data.take(10).batch(4)
        with strategy.scope() if strategy else contextlib.nullcontext():
            model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
            model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                          metrics=["accuracy"])  # fmt: skip
        schedule = keras.callbacks.LearningRateScheduler(lambda e: 0.1 / (e + 1))
        calls = _Calls()
        options = {"validation_data": val, "epochs": 3, "initial_epoch": 1,
                   "callbacks": [schedule, calls], "verbose": 0}  # fmt: skip
        if strategy is None:
            history = model.fit(train, shuffle=False, **options)
        else:
            history = fit_under_strategy(model, strategy, train, batch_size=4,
                                         **options)  # fmt: skip
        return calls.calls, history.history, model.get_weights()

    calls, history, weights = run(tf.distribute.MirroredStrategy(["/cpu:0"]))
    fit_calls, fit_history, fit_weights = run(None)
    assert [c[0] for c in calls] == [c[0] for c in fit_calls]
    assert calls == fit_calls and history == fit_history
    for weight, fit_weight in zip(weights, fit_weights, strict=True):
        np.testing.assert_allclose(weight, fit_weight, rtol=1e-6)

    # A worker that dies fails the others' next step with TensorFlow's status
    # (this text, as TensorFlow 2.21 printed it when a worker was killed).
    class Lost(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise tf.errors.UnavailableError(None, None, LOST_WORKER_STATUS)

    one_cpu = tf.distribute.MirroredStrategy(["/cpu:0"])
    with one_cpu.scope():
        lost = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
        lost.compile("sgd", "sparse_categorical_crossentropy")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4, drop_remainder=True)
    # An OSError (ConnectionError): the command line reports it in one line.
    with pytest.raises(OSError) as raised:
        fit_under_strategy(lost, one_cpu, data,
                           batch_size=4, epochs=3, initial_epoch=1,
                           callbacks=[Lost()], verbose=0)  # fmt: skip
    assert str(raised.value) == (
        "A worker of the cluster stopped during epoch 2 (TensorFlow: "
        "UnavailableError: Collective ops is aborted by: Error reported from "
        "/job:worker/task:1: The following "
        "tasks are unhealthy (stopped sending heartbeats): "
        "/job:worker/replica:0/task:1). The epochs before it are saved in the run "
        "folder: run the same command on every worker to resume from there."
    )
    unknown = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda x, y: True)
    with pytest.raises(ValueError, match="of cardinality -2"):
        fit_under_strategy(keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)]),
                           tf.distribute.get_strategy(), unknown, batch_size=4,
                           epochs=1)  # fmt: skip


@pytest.mark.parametrize(
    "argument, value",
    [("batch_size", 0), ("epochs", 0), ("initial_epoch", -1), ("initial_epoch", 4)],
)
def test_fit_under_strategy_names_a_bad_argument(argument, value):
    import tensorflow as tf

    from keras_alexnet.runs.strategy_fit import fit_under_strategy

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile("sgd", "mse")
    data = tf.data.Dataset.from_tensor_slices(np.zeros((4, 5), "float32")).batch(2)
    options = {"batch_size": 2, "epochs": 3, "initial_epoch": 0, argument: value}
    with pytest.raises(ValueError, match=rf"{argument}={value}\b"):
        fit_under_strategy(model, tf.distribute.get_strategy(), data, **options)


def test_only_the_chief_claims_the_run_folder(tmp_path, monkeypatch):
    # The chief writes config.json; another worker reads the chief's state and
    # gets a scratch folder of its own under $TMPDIR (replacing what a killed
    # worker left there), leaving the run folder as it was.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    run, config = tmp_path / "run", {"epochs": 3}
    folder = RunFolder(run)
    writes, state = _claim(folder, config, Cluster(2, 0, "h:1"))
    assert writes is folder and state["epoch"] == 0
    assert json.loads((run / "config.json").read_text()) == config
    folder.write_json("state.json", {"epoch": 1})
    folder.write_log([{"epoch": 1, "loss": 2.5}])
    folder.release()
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    for attempt in (1, 2):  # a rerun replaces the first attempt's folder
        writes, state = _claim(RunFolder(run), config, Cluster(2, 1, "h:1"))
        assert state["epoch"] == 1
        assert os.path.dirname(writes.root) == str(tmp_path / "tmp")
        assert os.path.basename(writes.root).startswith("keras-alexnet-worker-1-")
        entries = sorted(os.listdir(writes.root))
        assert entries == [".lock", "checkpoints", "config.json", "log.csv"]
        assert writes.log_rows(1) == folder.log_rows(1)
        if attempt == 1:
            (Path(writes.root) / "stale.txt").write_text("left by a killed worker")
        writes.release()
    assert not (Path(writes.root) / "stale.txt").exists()
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


def _free_ports(count: int) -> list[int]:
    # Held open together, so that no two are the same.
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _start(command, index, ports, tmp_path, name, backend="jax"):
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KERAS_BACKEND": backend,
        # Every worker's address: JAX uses the first, TensorFlow all.
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": ",".join(
            f"127.0.0.1:{port}" for port in ports
        ),
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
        "KERAS_DISTRIBUTION_PROCESS_ID": str(index),
        # The worker's scratch folder lands here: it must be gone at the end.
        "TMPDIR": str(tmp_path / f"tmp-{index}"),
    }
    os.makedirs(env["TMPDIR"], exist_ok=True)
    out = open(tmp_path / f"{name}-{index}.log", "w")  # noqa: SIM115
    # A session of its own: the finally kills the worker's whole group.
    return subprocess.Popen(
        command, env=env, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def _stop(processes):
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait(processes, seconds):
    deadline = time.monotonic() + seconds
    for process in processes:
        process.wait(timeout=max(1.0, deadline - time.monotonic()))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_two_workers_match_one_process(tmp_path, backend):
    # Two epochs, shuffled and augmented as the paper's, global batch 8: each
    # worker's losses after every step (on TensorFlow also the validation
    # loss), and its weights at the end, equal those of one process's plain
    # `fit` (float32 rounding: the two halves' gradients are averaged).
    write_digits_folder(tmp_path / "data", image_size=16, per_class=4)
    ports = _free_ports(2)
    script = os.path.join(ROOT, "tests", "multiworker_check.py")
    command = [sys.executable, script, str(tmp_path), backend]
    workers = []
    try:
        for index in (0, 1):
            workers.append(_start(command, index, ports, tmp_path, "w", backend))
        _wait(workers, 400)
    finally:
        _stop(workers)
    results = []
    for index, worker in enumerate(workers):
        log = (tmp_path / f"w-{index}.log").read_text()
        assert worker.returncode == 0, log[-3000:]
        result = json.loads(log.strip().splitlines()[-1])
        assert result["devices"] == 2
        assert len(result["losses"]) == 6  # 2 epochs of 3 steps
        np.testing.assert_allclose(
            result["losses"], result["one_process_losses"], rtol=1e-6
        )
        for name, values in result["history"].items():
            expected = result["one_process_history"][name]
            np.testing.assert_allclose(values, expected, rtol=1e-6)
        tolerance = 1e-6 * result["largest_weight"] + 1e-7
        assert result["max_abs_difference"] <= tolerance
        results.append(result)
    if backend == "tensorflow":
        # Batch normalisation: the workers' moving statistics averaged, logs
        # the same on both; the chief's save alone took no collective step.
        assert results[0]["history"]["val_loss"]
        chief, other = (result["batchnorm"] for result in results)
        assert chief == other and chief["replicas_after_save"] == 2
        assert len(chief["moving"]) == 10 and np.isfinite(chief["losses"]).all()


@pytest.mark.slow
def test_killed_workers_resume_from_the_last_epoch(tmp_path):
    # A worker killed after the first epoch stops the cluster; the same
    # command on every worker then continues from the last completed epoch:
    # each epoch logged once, the run finished. Only the chief wrote the
    # folder; the other worker's scratch folder is gone. Run on TensorFlow
    # (`fit_under_strategy`, every address listed); JAX shares the run-folder
    # code and its two workers are run by the test above.
    data = write_digits_folder(tmp_path / "data", image_size=16, per_class=4)
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "keras_alexnet", "train", str(data),
        "--output", str(run), "--distribute", "multi-worker", "--epochs", "2",
        "--batch-size", "8", "--image-size", "67", "--fc-units", "16",
        "--center-crop-test",
    ]  # fmt: skip
    state = run / "state.json"
    workers = []
    try:
        ports = _free_ports(2)
        workers = [_start(command, i, ports, tmp_path, "first", "tensorflow")
                   for i in (0, 1)]  # fmt: skip
        deadline = time.monotonic() + 400
        while not state.exists() and time.monotonic() < deadline:
            assert all(w.poll() is None for w in workers)
            time.sleep(0.2)
        os.killpg(workers[1].pid, signal.SIGKILL)  # the worker dies...
        killed_at = json.loads(state.read_text())["epoch"]
        _stop(workers)  # ...and the scheduler stops the rest of the job
        assert killed_at == 1
        ports = _free_ports(2)
        workers = [_start(command, i, ports, tmp_path, "again", "tensorflow")
                   for i in (0, 1)]  # fmt: skip
        _wait(workers, 400)
    finally:
        _stop(workers)
    logs = [(tmp_path / f"again-{i}.log").read_text() for i in (0, 1)]
    for worker, log in zip(workers, logs, strict=True):
        assert worker.returncode == 0, log[-3000:]
        assert "Epoch 2/2" in log and "Epoch 1/2" not in log
    assert f"Resuming {run} at epoch 2 of 2" in logs[0]
    with open(run / "log.csv", newline="") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [1, 2]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
    assert set(os.listdir(run)) <= RUN_ENTRIES - {".lock"}
    # The killed worker's scratch folder was replaced, then removed at the end.
    scratch = [n for n in os.listdir(tmp_path / "tmp-1") if "keras-alexnet" in n]
    assert scratch == []
