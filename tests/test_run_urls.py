"""A run folder at a URL: TensorFlow's in-memory file system (`ram://`), which
no operating-system call reaches, goes through the same `tf.io.gfile` calls as
`gs://`. References: a local run with the same arguments, the file listing
of `tf.io.gfile`, the clock and this process's id."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import socket
import time
import types

import pytest
import tensorflow as tf

from keras_alexnet import cli
from keras_alexnet.resources import write_digits_folder
from keras_alexnet.runs import run_mirror, train
from keras_alexnet.runs.evaluate import evaluate
from keras_alexnet.runs.run_mirror import (
    STALE_LOCK_SECONDS,
    RunMirror,
    open_run_folder,
    staging_folder,
)
from tests.tiny_run import OPTIONS

URL = "ram://run_urls/a"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train(data, output, epochs):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        metrics = train(data, output, epochs=epochs, verbose=1, **OPTIONS)
    return metrics, out.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    # One epoch to a local folder and to a URL; then the URL's run resumed to
    # two epochs after its working copy is deleted, as on another machine.
    root = tmp_path_factory.mktemp("run_urls")
    data = write_digits_folder(root / "data", image_size=16, per_class=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_HOME", str(root / "keras_home"))
        local = root / "local"
        local_metrics, _ = _train(data, local, 1)
        first_metrics, first = _train(data, URL, 1)
        staging = staging_folder(URL)
        after_first = _remote_files(URL)
        held_first = sum(tf.io.gfile.stat(f"{URL}/{n}").length for n in after_first)
        first_log = _read_remote(f"{URL}/log.csv")
        shutil.rmtree(staging)
        metrics, resumed = _train(data, URL, 2)
        _, finished = _train(data, URL, 2)
        yield types.SimpleNamespace(
            data=data,
            local=local,
            local_metrics=local_metrics,
            first_metrics=first_metrics,
            metrics=metrics,
            first=first,
            after_first=after_first,
            held_first=held_first,
            first_log=first_log,
            resumed=resumed,
            finished=finished,
            staging=staging,
        )
    tf.io.gfile.rmtree("ram://run_urls")


def _remote_files(url):
    found = set()
    for directory, _, names in tf.io.gfile.walk(url):
        inside = directory[len(url) + 1 :]
        found |= {f"{inside}/{name}" if inside else name for name in names}
    return found


def _local_files(root):
    return {
        os.path.relpath(os.path.join(directory, name), root)
        for directory, _, names in os.walk(root)
        for name in names
    }


def _without_event_names(files):
    # TensorBoard's event files are named after the host, time and process.
    return sorted(os.path.dirname(f) + "/*" if "tfevents" in f else f for f in files)


def _read_remote(url):
    with tf.io.gfile.GFile(url, "r") as f:
        return f.read()


def test_the_url_holds_what_a_local_run_folder_holds(runs):
    assert _without_event_names(runs.after_first) == _without_event_names(
        _local_files(runs.local)
    )
    assert runs.first_log == (runs.local / "log.csv").read_text()
    for name in ("top1", "images", "crop", "checkpoint", "epochs"):
        assert runs.first_metrics[name] == runs.local_metrics[name]
    assert not any(os.path.basename(f).startswith(".tmp-") for f in runs.after_first)
    assert ".lock" not in runs.after_first


def test_the_resumed_run_continues_at_the_urls_epoch(runs):
    remote = _remote_files(URL)
    assert "checkpoints/epoch-0002.keras" in remote
    assert "checkpoints/epoch-0001.keras" not in remote  # pruned there too
    assert "checkpoints/epoch-0001.keras" in runs.after_first
    assert ".lock" not in remote
    rows = list(csv.DictReader(io.StringIO(_read_remote(f"{URL}/log.csv"))))
    first_rows = list(csv.DictReader(io.StringIO(runs.first_log)))
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[0] == first_rows[0]
    assert json.loads(_read_remote(f"{URL}/state.json"))["epoch"] == 2
    assert json.loads(_read_remote(f"{URL}/metrics.json")) == runs.metrics
    assert runs.metrics["epochs"] == 2


def test_reports_name_the_url(runs):
    assert json.loads(_read_remote(f"{URL}/config.json"))["output"] == URL
    assert f"Run folder: {URL} (" in runs.first
    assert f"Resuming {URL} at epoch 2 of 2" in runs.resumed
    assert f"{URL} holds this run, finished: 2 epochs" in runs.finished
    assert runs.staging not in runs.first + runs.resumed + runs.finished
    # The size printed is what the URL holds (best.keras a copy there, not a link).
    printed = re.search(rf"Run folder: {re.escape(URL)} \(([0-9.]+) MB\)", runs.first)
    assert printed and float(printed.group(1)) == round(runs.held_first / 1e6, 1)
    assert not os.path.exists("ram:")  # never a local folder named after the URL


def test_a_finished_run_at_a_url_is_read_back(runs, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    weights = f"{URL}/best.keras"
    metrics = evaluate(runs.data, weights, verbose=0, batch_size=7)
    assert metrics["top1"] == runs.metrics["top1"]
    assert metrics["weights"] == weights
    image = str(next((runs.data / "val").rglob("*.png")))
    assert cli.main(["classify", "--weights", weights, "--top", "1", image]) == 0
    out = capsys.readouterr().out
    # The class names come from the run's classes.json, beside best.keras.
    assert f"Weights: {weights} (original variant, 10 classes)" in out
    with pytest.raises(ValueError, match="output=.ram://run_urls/eval.$"):
        evaluate(runs.data, weights, output="ram://run_urls/eval", verbose=0)
    assert not os.path.exists("ram:")
    classes = json.loads(_read_remote(f"{URL}/classes.json"))
    top = out.splitlines()[-1].split()
    assert top[0] == "1." and top[1] in classes


def test_a_url_holding_other_files_is_refused_untouched(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    url = "ram://run_urls_user"
    tf.io.gfile.makedirs(f"{url}/photos")
    with tf.io.gfile.GFile(f"{url}/notes.txt", "w") as f:
        f.write("mine")
    try:
        assert cli.main(["train", str(tmp_path / "no_data"), "--output", url]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("keras-alexnet: error: ")
        assert f"--output '{url}', which holds 'notes.txt', 'photos' that no" in err
        assert _remote_files(url) == {"notes.txt"}
        entries = sorted(e.rstrip("/") for e in tf.io.gfile.listdir(url))
        assert entries == ["notes.txt", "photos"]  # no lock, no working copy
        assert _read_remote(f"{url}/notes.txt") == "mine"
    finally:
        tf.io.gfile.rmtree(url)


def test_a_damaged_run_at_a_url_is_named_there(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    url = "ram://run_urls_damaged"
    tf.io.gfile.makedirs(url)
    for name, text in (("config.json", '{"command": "train"}'), ("state.json", "{")):
        with tf.io.gfile.GFile(f"{url}/{name}", "w") as f:
            f.write(text)
    try:
        with pytest.raises(ValueError) as error:
            train(tmp_path / "no_data", url, epochs=1, verbose=0, **OPTIONS)
        assert str(error.value).startswith(f"'{url}/state.json' is damaged: ")
        assert str(tmp_path) not in str(error.value)
        assert _remote_files(url) == {"config.json", "state.json"}  # no lock left
    finally:
        tf.io.gfile.rmtree(url)


def test_a_push_writes_the_state_after_the_files_it_names(tmp_path, monkeypatch):
    # The order a killed push must not break: the URL's state.json never names
    # a checkpoint or log row not yet there; the pruned checkpoint goes last.
    url = "ram://run_urls_order"
    mirror = RunMirror(url, staging=str(tmp_path / "staging"))
    names = ["metrics.json", "best.keras", "state.json", "log.csv", "config.json",
             "checkpoints/epoch-0002.keras"]  # fmt: skip
    for name in names:
        path = os.path.join(mirror.local, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(name)
    tf.io.gfile.makedirs(f"{url}/checkpoints")
    with tf.io.gfile.GFile(f"{url}/checkpoints/epoch-0001.keras", "w") as f:
        f.write("pruned here")
    mirror.copied["checkpoints/epoch-0001.keras"] = {"local": [0, 0]}
    events = []
    rename, remove = tf.io.gfile.rename, tf.io.gfile.remove

    def logged_rename(source, target, overwrite=False):
        events.append(target[len(url) + 1 :])
        rename(source, target, overwrite)

    def logged_remove(path):
        events.append(f"remove {path[len(url) + 1 :]}")
        remove(path)

    monkeypatch.setattr(tf.io.gfile, "rename", logged_rename)
    monkeypatch.setattr(tf.io.gfile, "remove", logged_remove)
    try:
        mirror.push()
        assert events[-4:] == ["state.json", "best.keras", "metrics.json",
                               "remove checkpoints/epoch-0001.keras"]  # fmt: skip
        assert sorted(events[:-4]) == sorted(set(names) - set(events[-4:]))
        assert _remote_files(url) == set(names)
        assert _read_remote(f"{url}/state.json") == "state.json"
        events.clear()
        mirror.push()  # nothing changed: nothing sent
        assert events == []
    finally:
        monkeypatch.undo()
        tf.io.gfile.rmtree(url)


def test_an_oversized_run_file_at_a_url_is_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(run_mirror, "MAX_RUN_FILE_BYTES", 1000)
    url = "ram://run_urls_large"
    tf.io.gfile.makedirs(url)
    for name, text in (("config.json", '{"command": "train"}'),
                       ("log.csv", "epoch\n" + "1\n" * 1000)):  # fmt: skip
        with tf.io.gfile.GFile(f"{url}/{name}", "w") as f:
            f.write(text)
    mirror = RunMirror(url, staging=str(tmp_path / "staging"))
    try:
        with pytest.raises(ValueError, match=f"'{url}/log.csv' is damaged: it has "):
            mirror.claim()
        assert not os.path.exists(tmp_path / "staging" / "run" / "log.csv")
        assert not tf.io.gfile.exists(f"{url}/.lock")
    finally:
        tf.io.gfile.rmtree(url)


def test_other_workers_pull_the_url_and_never_write_it(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    before = {f: tf.io.gfile.stat(f"{URL}/{f}").length for f in _remote_files(URL)}
    folder = open_run_folder(URL, worker=1)
    assert folder.root.startswith(str(tmp_path)) and "-worker-1" in folder.root
    folder.mirror.claim()
    assert folder.state()["epoch"] == 2
    config = json.loads(_read_remote(f"{URL}/config.json"))
    assert folder.finished_metrics(config) == runs.metrics
    os.remove(folder.path("state.json"))
    folder.publish()  # a worker's publish pushes nothing
    folder.release()
    after = {f: tf.io.gfile.stat(f"{URL}/{f}").length for f in _remote_files(URL)}
    assert after == before


def _write_lock(url, **holder):
    tf.io.gfile.makedirs(url)
    with tf.io.gfile.GFile(f"{url}/.lock", "w") as f:
        f.write(json.dumps({"token": "theirs", **holder}))


@pytest.mark.parametrize(
    "host, pid, age, live",
    [
        ("elsewhere", 7, 60.0, True),
        ("elsewhere", 7, STALE_LOCK_SECONDS + 60, False),
        (socket.gethostname(), os.getppid(), 0.0, True),  # the test's parent
        (socket.gethostname(), 2**22 + 1, 0.0, False),  # above Linux's pid_max
    ],
    ids=["other-host-fresh", "other-host-stale", "live-process", "ended-process"],
)
def test_the_urls_lock_is_respected_while_fresh(host, pid, age, live, tmp_path):
    url = "ram://run_urls_locked"
    _write_lock(url, host=host, pid=pid, time=time.time() - age)
    mirror = RunMirror(url, staging=str(tmp_path / "staging"))
    try:
        if live:
            with pytest.raises(ValueError, match=f"process {pid} on {host}") as error:
                mirror.claim()
            assert f"remove {url}/.lock if that run is gone" in str(error.value)
            assert json.loads(_read_remote(f"{url}/.lock"))["token"] == "theirs"
        else:
            with tf.io.gfile.GFile(f"{url}/.tmp-1-state.json", "w") as f:
                f.write("left by a push killed with its run")
            mirror.claim()
            assert not tf.io.gfile.exists(f"{url}/.tmp-1-state.json")
            mine = json.loads(_read_remote(f"{url}/.lock"))
            assert (mine["host"], mine["pid"]) == (socket.gethostname(), os.getpid())
            mirror.release()
            assert not tf.io.gfile.exists(f"{url}/.lock")
    finally:
        tf.io.gfile.rmtree(url)


def test_a_running_writer_keeps_its_lock_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(run_mirror, "HEARTBEAT_SECONDS", 0.05)
    url = "ram://run_urls_beat"
    mirror = RunMirror(url, staging=str(tmp_path / "staging"))
    try:
        mirror.claim()
        first = json.loads(_read_remote(f"{url}/.lock"))["time"]
        deadline = time.monotonic() + 10
        while json.loads(_read_remote(f"{url}/.lock"))["time"] == first:
            assert time.monotonic() < deadline, "the lock was never refreshed"
            time.sleep(0.05)
        mirror.release()
        assert not tf.io.gfile.exists(f"{url}/.lock")
        time.sleep(0.2)  # no beat after the release writes it again
        assert not tf.io.gfile.exists(f"{url}/.lock")
    finally:
        mirror.release()
        tf.io.gfile.rmtree(url)
