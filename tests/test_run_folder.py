"""What a run leaves: metrics.json against Keras' own evaluation of best.keras,
the checkpoints kept, pictures and CSV that name what they show, a folder that
is the run's own (user files, symlinks, locks), small classes refused, and the
messages of a resumed or finished run. References: Keras' `model.evaluate`,
NumPy, the file system."""

from __future__ import annotations

import contextlib
import csv
import filecmp
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import types

import keras
import numpy as np
import pytest
from PIL import Image

from keras_alexnet.resources import write_digits_folder
from keras_alexnet.runs import models, train
from keras_alexnet.runs.datasets import class_names_of, resolve_data
from keras_alexnet.runs.evaluate import evaluate, score
from keras_alexnet.runs.run_folder import EpochRecorder, RunFolder
from keras_alexnet.runs.train import conv1_title
from tests.tiny_run import OPTIONS


def _quiet_call(function, *args, **kwargs):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = function(*args, **kwargs)
    return result, out.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # One epoch, then the same command with two epochs (a resume), then the
    # same command again (finished). Epoch 1's checkpoint is copied aside
    # before the resume removes it.
    root = tmp_path_factory.mktemp("run_folder")
    data = write_digits_folder(root / "data", image_size=16, per_class=4)
    output = root / "run"
    _, first = _quiet_call(train, data, output, epochs=1, verbose=1, **OPTIONS)
    shutil.copyfile(output / "checkpoints" / "epoch-0001.keras", root / "epoch1.keras")
    metrics, resumed = _quiet_call(train, data, output, epochs=2, verbose=1, **OPTIONS)
    written = os.stat(output / "metrics.json").st_mtime_ns
    started = time.perf_counter()
    again, finished = _quiet_call(train, data, output, epochs=2, verbose=1, **OPTIONS)
    return types.SimpleNamespace(
        data=data,
        output=output,
        epoch1=root / "epoch1.keras",
        metrics=metrics,
        again=again,
        first=first,
        resumed=resumed,
        finished=finished,
        finished_seconds=time.perf_counter() - started,
        metrics_mtime=written,
    )


def _log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _best_epoch(output):
    # The rule metrics.json states: the highest val_accuracy, the earlier on ties.
    scores = [float(row["val_accuracy"]) for row in _log(output / "log.csv")]
    return int(np.argmax(scores)) + 1, scores


def _centre_crops(data):
    from keras_alexnet.data import imagenet_dataset

    return imagenet_dataset(
        "validation",
        source=data / "val",
        image_size=67,
        batch_size=7,
        check_files="decode",
    )


def test_metrics_json_is_the_centre_crop_evaluation_of_best_keras(run):
    best, scores = _best_epoch(run.output)
    recorded = json.loads((run.output / "metrics.json").read_text())
    assert recorded == run.metrics
    checkpoint = recorded["checkpoint"]
    assert checkpoint["file"] == "best.keras" and checkpoint["epoch"] == best
    assert checkpoint["val_accuracy"] == pytest.approx(scores[best - 1])
    assert "highest val_accuracy" in checkpoint["chosen_by"]
    assert "earlier epoch" in checkpoint["chosen_by"]
    assert recorded["crop"] == "centre" and "ten_crop" not in recorded
    # Keras' own evaluation and NumPy's argmax of best.keras on the centre crops.
    model = keras.saving.load_model(run.output / "best.keras")
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    _, accuracy = model.evaluate(_centre_crops(run.data), verbose=0)
    probabilities, labels = [], []
    for images, truth in _centre_crops(run.data):
        probabilities.append(keras.ops.convert_to_numpy(model(images)))
        labels.append(np.asarray(truth))
    probabilities, labels = np.concatenate(probabilities), np.concatenate(labels)
    right = int(np.sum(probabilities.argmax(-1) == labels))
    top5 = np.argsort(-probabilities, axis=-1)[:, :5]
    right5 = int(np.sum(np.any(top5 == labels[:, None], axis=-1)))
    assert recorded["images"] == len(labels) == 10
    assert recorded["top1"] == right / len(labels)
    assert recorded["top5"] == right5 / len(labels)
    assert recorded["top1"] == pytest.approx(accuracy, abs=1e-6)
    # Keras' val_accuracy of that epoch during fit, on the same images.
    assert recorded["top1"] == pytest.approx(scores[best - 1], abs=1e-6)
    # `evaluate` on best.keras reproduces it.
    evaluated = evaluate(run.data, run.output / "best.keras", verbose=0)
    assert evaluated["top1"] == recorded["top1"]
    assert evaluated["top5"] == recorded["top5"]


def test_only_the_last_checkpoint_stays_and_best_keras_is_the_best(run):
    best, _ = _best_epoch(run.output)
    assert os.listdir(run.output / "checkpoints") == ["epoch-0002.keras"]
    state = json.loads((run.output / "state.json").read_text())
    assert state["epoch"] == 2 and state["best_epoch"] == best
    if best == 2:  # a hard link: the same bytes on disk, once
        assert os.path.samefile(
            run.output / "best.keras", run.output / "checkpoints" / "epoch-0002.keras"
        )
    else:
        assert filecmp.cmp(run.output / "best.keras", run.epoch1, shallow=False)
    # The size printed at the end: every file once, hard links once.
    seen, total = set(), 0
    for directory, _, files in os.walk(run.output):
        for name in files:
            info = os.lstat(os.path.join(directory, name))
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    printed = re.search(r"Run folder: .* \(([\d.]+) MB\)", run.resumed)
    assert printed and float(printed.group(1)) == pytest.approx(total / 1e6, abs=0.1)


def test_resume_and_finished_runs_say_so(run):
    assert "Resuming" not in run.first
    assert f"Resuming {run.output} at epoch 2 of 2" in run.resumed
    assert "finished: 2 epochs" in run.finished and "Nothing to do" in run.finished
    assert "Evaluating" not in run.finished
    assert run.again == run.metrics
    assert run.finished_seconds < 5
    assert os.stat(run.output / "metrics.json").st_mtime_ns == run.metrics_mtime
    assert not os.path.exists(run.output / ".lock")


def test_per_class_csv_and_confusion_matrix_name_checkpoint_and_crop(run):
    best, _ = _best_epoch(run.output)
    rows = _log(run.output / "per_class.csv")
    assert {(row["crop"], row["checkpoint"]) for row in rows} == {
        ("centre", "best.keras")
    }
    model = keras.saving.load_model(run.output / "best.keras")
    for images, truth in _centre_crops(run.data).unbatch().batch(100):
        guesses = keras.ops.convert_to_numpy(model(images)).argmax(-1)
        truth = np.asarray(truth)
    names = json.loads((run.output / "classes.json").read_text())
    for row in rows:
        c = names.index(row["class"])
        assert int(row["images"]) == int(np.sum(truth == c))
        assert float(row["top1"]) == np.mean(guesses[truth == c] == c)
    title = run.metrics["pictures"]["confusion_matrix.png"]
    assert title.startswith(f"best.keras (epoch {best}), centre crop: top-1")


def test_conv1_picture_shows_initial_and_trained_filters_and_how_far(run):
    best, _ = _best_epoch(run.output)
    initial = np.load(run.output / "conv1_initial.npy")
    # The initial kernel is that of the same model built afresh with the seed.
    fresh = models.build_classifier(10, image_size=67, init="he", seed=0, fc_units=16)
    np.testing.assert_array_equal(
        initial, keras.ops.convert_to_numpy(fresh.get_layer("conv1").kernel)
    )
    trained = keras.ops.convert_to_numpy(
        keras.saving.load_model(run.output / "best.keras").get_layer("conv1").kernel
    )
    change = np.linalg.norm(trained - initial) / np.linalg.norm(initial)
    title = run.metrics["pictures"]["conv1_filters.png"]
    assert f"conv1 of best.keras (epoch {best})" in title
    assert f"moved {100 * change:.1f} %" in title
    assert "Figure 3" not in title
    with Image.open(run.output / "conv1_filters.png") as image:
        assert image.size[0] > 2 * image.size[1] > 400  # two panels side by side


def test_figure_3_only_for_the_paper_recipe_at_full_size_once_filters_moved():
    rng = np.random.default_rng(0)
    initial = rng.normal(0, 0.01, (11, 11, 3, 96))
    far = initial + rng.normal(0, 0.02, initial.shape)  # moved about 200 %
    near = initial + rng.normal(0, 0.001, initial.shape)  # about 10 %
    paper = {"recipe": "paper", "variant": "original", "image_size": 227}
    checkpoint = {"file": "best.keras", "epoch": 90}
    assert "Figure 3" in conv1_title(far, initial, paper, checkpoint)
    assert "Figure 3" not in conv1_title(near, initial, paper, checkpoint)
    small = {**paper, "image_size": 67}
    assert "Figure 3" not in conv1_title(far, initial, small, checkpoint)
    assert "not recorded" in conv1_title(far, None, paper, checkpoint)


def test_top5_only_with_more_than_five_classes():
    probabilities = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    result = score(probabilities, np.array([2, 0]), ["a", "b", "c"])
    assert result["top1"] == 0.5 and "top5" not in result
    assert all("top5" not in row for row in result["per_class"])
    probabilities = np.array(
        [
            [0.0, 0.1, 0.2, 0.3, 0.15, 0.25],  # class 0 ranked last of six
            [0.5, 0.15, 0.2, 0.05, 0.08, 0.02],  # class 1 ranked third
        ]
    )
    result = score(probabilities, np.array([0, 1]), list("abcdef"))
    assert result["top1"] == 0.0 and result["top5"] == 0.5


def _user_folder(path):
    path.mkdir()
    (path / "log.csv").write_text("mine\n")
    (path / "notes.txt").write_text("also mine\n")
    return {name: (path / name).read_text() for name in os.listdir(path)}


def test_a_folder_holding_user_files_is_refused_untouched(tmp_path):
    user = tmp_path / "mine"
    before = _user_folder(user)
    with pytest.raises(ValueError, match=r"holds 'log.csv', 'notes.txt' that no run"):
        train(tmp_path / "data", user, epochs=1, verbose=0, **OPTIONS)
    assert {n: (user / n).read_text() for n in os.listdir(user)} == before
    # Through a symbolic link too; the message names the real folder.
    link = tmp_path / "link"
    link.symlink_to(user)
    with pytest.raises(ValueError, match=re.escape(str(user))):
        train(tmp_path / "data", link, epochs=1, verbose=0, **OPTIONS)
    assert {n: (user / n).read_text() for n in os.listdir(user)} == before


def test_a_run_folder_records_its_real_path_and_refuses_foreign_files(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(ValueError, match="No such folder"):  # after the claim
        train(tmp_path / "no_data", link, epochs=1, verbose=0, **OPTIONS)
    config = json.loads((real / "config.json").read_text())
    assert config["output"] == os.path.realpath(real)
    (real / "checkpoints" / "mine.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"'checkpoints/mine.txt' that no run"):
        train(tmp_path / "no_data", real, epochs=1, verbose=0, **OPTIONS)
    assert (real / "checkpoints" / "mine.txt").read_text() == "mine"
    # A run writes no symbolic link: one named like a run's file is the user's.
    os.remove(real / "checkpoints" / "mine.txt")
    (tmp_path / "precious.keras").write_text("mine")
    (real / "best.keras").symlink_to(tmp_path / "precious.keras")
    with pytest.raises(ValueError, match=r"holds 'best.keras' that no run"):
        train(tmp_path / "no_data", real, epochs=1, verbose=0, **OPTIONS)
    assert (tmp_path / "precious.keras").read_text() == "mine"


def test_evaluate_refuses_to_write_into_a_run_folder(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="holds 'config.json'"):
        evaluate(tmp_path, "imagenet", output=tmp_path / "run", verbose=0)


CONFIG = {"command": "train", "epochs": 1}


def test_the_lock_keeps_a_second_process_out_until_it_ends(tmp_path):
    folder = RunFolder(tmp_path / "run")
    os.makedirs(folder.root)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"pid": other.pid, "host": os.uname().nodename, "thread": 1}
        (tmp_path / "run" / ".lock").write_text(json.dumps(lock))
        with pytest.raises(ValueError, match=f"being written by process {other.pid}"):
            folder.start(CONFIG)
    finally:
        other.kill()
        other.wait()
    folder.start(CONFIG)  # its process ended: a stale lock, taken over
    held = json.loads((tmp_path / "run" / ".lock").read_text())
    assert held["pid"] == os.getpid()
    folder.release()
    assert not (tmp_path / "run" / ".lock").exists()


def test_the_lock_keeps_another_thread_of_this_process_out(tmp_path):
    holder_started, stop = threading.Event(), threading.Event()

    def hold():
        RunFolder(tmp_path / "run").start(CONFIG)
        holder_started.set()
        stop.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        holder_started.wait(30)
        with pytest.raises(ValueError, match=f"process {os.getpid()}"):
            RunFolder(tmp_path / "run").start(CONFIG)
    finally:
        stop.set()
        thread.join()
    # A lock left by an ended thread (a call that raised) is taken over.
    folder = RunFolder(tmp_path / "run")
    folder.start(CONFIG)
    folder.release()


def _classes(root, counts, png):
    for split, per_class in counts.items():
        for name, count in per_class.items():
            os.makedirs(root / split / name, exist_ok=True)
            for index in range(count):
                shutil.copyfile(png, root / split / name / f"{name}{index}.png")
    return root


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    path = tmp_path_factory.mktemp("png") / "image.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)
    return path


def test_empty_and_single_image_classes_are_refused_by_name(tmp_path, png):
    data = _classes(
        tmp_path / "data",
        {
            "train": {"a": 3, "empty": 0, "one": 1},
            "val": {"a": 1, "empty": 0, "one": 1},
        },
        png,
    )
    pattern = (
        rf"in '{re.escape(str(data))}' these class folders have too few: "
        rf"'{re.escape(str(data / 'train' / 'empty'))}' \(0 files\), "
        rf"'{re.escape(str(data / 'train' / 'one'))}' \(1 file\), "
        rf"'{re.escape(str(data / 'val' / 'empty'))}' \(0 files\)"
    )
    with pytest.raises(ValueError, match=pattern):
        train(data, tmp_path / "run", epochs=1, verbose=0, **OPTIONS)
    assert not (tmp_path / "run" / "checkpoints" / "epoch-0001.keras").exists()
    kept = class_names_of(resolve_data(data, allow_small_classes=True))
    assert kept == sorted(os.listdir(data / "train")) == ["a", "empty", "one"]
    # One tree split by validation_split: a single image cannot be in both.
    tree = _classes(tmp_path / "tree", {".": {"a": 4, "b": 1}}, png)
    with pytest.raises(ValueError, match=r"tree/b' \(1 file\)"):
        class_names_of(resolve_data(tree, validation_split=0.5))


def test_keep_checkpoints_is_checked():
    with pytest.raises(ValueError, match="Received: keep_checkpoints=0"):
        train("data", "run", keep_checkpoints=0)


def _recorder(tmp_path, keep):
    folder = RunFolder(tmp_path / "run")
    folder.start({**CONFIG, "keep_checkpoints": keep})
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    recorder = EpochRecorder(folder)
    recorder.set_model(model)
    return folder, recorder


def test_best_keras_is_the_first_highest_score_and_old_checkpoints_go(tmp_path):
    folder, recorder = _recorder(tmp_path, keep=2)
    inodes = {}
    for epoch, value in enumerate([0.5, 0.7, 0.7, float("nan"), 0.6]):
        recorder.on_epoch_end(epoch, {"val_accuracy": value})
        inodes[epoch + 1] = os.stat(folder.checkpoint(epoch + 1)).st_ino
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == [
        "epoch-0004.keras",
        "epoch-0005.keras",
    ]
    # Epoch 2: the highest score, before epoch 3's equal one; NaN never wins.
    assert os.stat(tmp_path / "run" / "best.keras").st_ino == inodes[2]
    assert folder.best_checkpoint()["epoch"] == 2
    folder.release()


def test_without_a_finite_score_the_last_checkpoint_is_named(tmp_path):
    folder, recorder = _recorder(tmp_path, keep=1)
    for epoch in range(2):
        recorder.on_epoch_end(epoch, {"val_accuracy": float("nan")})
    assert not (tmp_path / "run" / "best.keras").exists()
    checkpoint = folder.best_checkpoint()
    assert checkpoint["file"] == os.path.join("checkpoints", "epoch-0002.keras")
    assert "no epoch had a finite val_accuracy" in checkpoint["chosen_by"]
    folder.release()


@pytest.mark.parametrize(
    "classes, expected", [(2, ["accuracy"]), (6, ["accuracy", "top5"])]
)
def test_training_reports_top5_only_with_more_than_five_classes(classes, expected):
    import importlib

    # `keras_alexnet.runs.train` the function shadows the module of that name.
    train_module = importlib.import_module("keras_alexnet.runs.train")

    inputs = keras.Input((3,))
    model = keras.Model(
        inputs, keras.layers.Dense(classes, activation="softmax")(inputs)
    )
    train_module._compile(model, keras.optimizers.SGD(0.1), classes, sparse=True)
    x = np.zeros((4, 3), "float32")
    logs = model.fit(x, np.zeros(4, "int64"), epochs=1, verbose=0).history
    assert sorted(k for k in logs if k != "loss") == expected


def test_curves_of_a_run_whose_rates_are_all_zero_draw_without_a_warning(tmp_path):
    # A one-epoch cosine run logs a rate of 0; matplotlib cannot put only
    # zeros on a log axis and warned ("Data has no positive values"), which the
    # command line printed as keras-alexnet's own warning.
    import warnings

    from keras_alexnet.runs import plots

    log = {
        "epoch": np.array([1.0]),
        "loss": np.array([1.1]),
        "learning_rate": np.array([0.0]),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.plot_curves({"run": log}, tmp_path / "curves.png")
    with Image.open(tmp_path / "curves.png") as image:
        assert image.size[0] > image.size[1] > 0
