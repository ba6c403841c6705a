"""Whole runs, as a user runs them: the quickstart's smoke mode (train,
evaluate, reload, classify, compare), resume after SIGKILL, fine-tuning, and
the command line's one-line errors. Checked against hand computations, Keras'
own metrics and closed forms."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from PIL import Image

from keras_alexnet import cli
from keras_alexnet.resources import write_digits_folder
from keras_alexnet.runs import models, recipes
from keras_alexnet.runs.quickstart import quickstart

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    output = tmp_path_factory.mktemp("quickstart")
    results = quickstart(output, smoke=True, verbose=0)
    return output, results


def _log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_quickstart_writes_both_runs_with_their_pictures(quick):
    output, results = quick
    for name in ("lrn", "batchnorm"):
        run = output / name
        for file in (
            "config.json",
            "log.csv",
            "metrics.json",
            "best.keras",
            "curves.png",
            "conv1_filters.png",
            "checkpoints/epoch-0001.keras",
        ):
            assert (run / file).is_file(), (name, file)
        assert [row["epoch"] for row in _log(run / "log.csv")] == ["1"]
        assert os.listdir(run / "tensorboard")
        config = json.loads((run / "config.json").read_text())
        assert config["normalization"] == name and config["init"] == "he"
        assert config["flip"] is False
    for picture in ("lrn_vs_batchnorm.png", "evaluation/confusion_matrix.png"):
        with Image.open(output / picture) as image:
            assert image.size[0] > 300
    # The 96 conv1 filters in two groups of 48: taller than wide.
    with Image.open(output / "lrn" / "conv1_filters.png") as image:
        assert image.size[0] > image.size[1] > 200
    assert results["reload_max_difference"] == 0.0


def test_evaluate_agrees_with_keras_metrics(quick):
    # The evaluation's top-1 and per-class rows against Keras' own accuracy on
    # the same centre crops.
    output, results = quick
    from keras_alexnet.data import imagenet_dataset

    model = keras.saving.load_model(output / "lrn" / "best.keras")
    model.compile(metrics=["accuracy"], loss="sparse_categorical_crossentropy")
    val = imagenet_dataset(
        "validation",
        source=output / "digits" / "val",
        image_size=67,
        batch_size=7,
        check_files="decode",
    )
    _, accuracy = model.evaluate(val, verbose=0)
    metrics = results["lrn"]
    assert metrics["top1"] == pytest.approx(accuracy, abs=1e-6)
    rows = _log(output / "evaluation" / "per_class.csv")
    assert [row["class"] for row in rows] == [str(d) for d in range(10)]
    assert sum(int(row["images"]) for row in rows) == metrics["images"] == 10


def test_classify_a_trained_model_with_its_class_names(quick, capsys):
    output, _ = quick
    image = (
        output
        / "digits"
        / "val"
        / "3"
        / sorted(os.listdir(output / "digits" / "val" / "3"))[0]
    )
    status = cli.main(
        [
            "classify",
            str(image),
            "--weights",
            str(output / "lrn" / "best.keras"),
            "--top",
            "3",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Weights:") and "10 classes" in lines[0]
    assert lines[1] == str(image)
    ranks = [line.split() for line in lines[2:5]]
    assert [r[0] for r in ranks] == ["1.", "2.", "3."]
    assert all(r[1] in [str(d) for d in range(10)] for r in ranks)
    probabilities = [float(r[2]) for r in ranks]
    assert probabilities == sorted(probabilities, reverse=True)
    # A file that is not an image: one line, status 1.
    text = output / "notes.txt"
    text.write_text("hello")
    status = cli.main(
        ["classify", str(text), "--weights", str(output / "lrn" / "best.keras")]
    )
    out, err = capsys.readouterr()
    assert status == 1
    assert err.count("\n") == 1 and "not an image (no JPEG" in err
    # Class names must match the model's outputs.
    names = output / "names.txt"
    names.write_text("a\nb\n")
    status = cli.main(
        [
            "classify",
            str(image),
            "--weights",
            str(output / "lrn" / "best.keras"),
            "--class-names",
            str(names),
        ]
    )
    _, err = capsys.readouterr()
    assert status == 1 and "names 2 classes, but the model has 10" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "./no_such_folder"], "No such folder: './no_such_folder'"),
        (
            ["evaluate", "./x", "--weights", "missing.keras"],
            "names a file that does not exist",
        ),
        (["finetune", "./x", "--weights", "missing.keras"], "not a file"),
    ],
)
def test_bad_input_is_one_line(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    os.makedirs("x/train/a")
    os.makedirs("x/val/a")
    status = cli.main(argv)
    _, err = capsys.readouterr()
    assert status == 1
    assert err.count("\n") == 1 and message in err, err


def test_validation_folder_lacking_a_class_is_refused(capsys, tmp_path):
    write_digits_folder(tmp_path, image_size=8, per_class=2)
    os.rename(tmp_path / "val" / "3", tmp_path / "val3")
    status = cli.main(["train", str(tmp_path), "--output", str(tmp_path / "run")])
    _, err = capsys.readouterr()
    assert status == 1 and "lacks the training classes ['3']" in err


def test_train_reads_prepared_folders(tmp_path, capsys):
    # `keras-alexnet prepare` for train/ and val/, then `keras-alexnet train`
    # on the folder holding both: the classes and the validation images are
    # those of the original folders.
    from keras_alexnet.data import prepare_imagenet

    write_digits_folder(tmp_path / "data", image_size=16, per_class=4)
    for split in ("train", "val"):
        prepare_imagenet(
            tmp_path / "data" / split,
            tmp_path / "prepared" / split,
            resize_size=16,
            verbose=0,
        )
    run = tmp_path / "run"
    argv = ["train", str(tmp_path / "prepared"), "--image-size", "67"]
    argv += ["--epochs", "1", "--output", str(run), "--quiet"]
    assert cli.main(argv) == 0
    with open(run / "classes.json") as file:
        assert json.load(file) == [str(digit) for digit in range(10)]
    # The auto batch counts the manifest's 40 images: the largest power of two
    # giving 20 steps an epoch, at least 8 (it was 128, larger than the data).
    with open(run / "config.json") as file:
        assert json.load(file)["batch_size"] == 8
    with open(run / "metrics.json") as file:
        metrics = json.load(file)
    val_files = sum(len(files) for _, _, files in os.walk(tmp_path / "data" / "val"))
    assert metrics["images"] == val_files == 10
    # A prepared folder cannot hold out a fraction: one line, exit 1.
    capsys.readouterr()
    argv = ["train", str(tmp_path / "prepared" / "train"), "--validation-split"]
    argv += ["0.2", "--output", str(tmp_path / "run2")]
    assert cli.main(argv) == 1
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "cannot hold out" in err, err


def test_finetune_trains_the_head_then_everything(tmp_path):
    from keras_alexnet.runs import finetune

    write_digits_folder(tmp_path / "data", image_size=16, per_class=3)
    finetune(
        tmp_path / "data",
        tmp_path / "run",
        weights=None,
        image_size=67,
        batch_size=10,
        head_epochs=1,
        epochs=2,
        verbose=0,
        keep_checkpoints=2,
    )
    rows = _log(tmp_path / "run" / "log.csv")
    assert [row["epoch"] for row in rows] == ["1", "2"]
    # Adam at 1e-3 for the head, then PaperSGD at 1e-4.
    assert float(rows[0]["learning_rate"]) == pytest.approx(1e-3)
    assert float(rows[1]["learning_rate"]) == pytest.approx(1e-4)
    model = keras.saving.load_model(
        tmp_path / "run" / "checkpoints" / "epoch-0001.keras"
    )
    assert not model.get_layer("base").trainable
    model = keras.saving.load_model(
        tmp_path / "run" / "checkpoints" / "epoch-0002.keras"
    )
    assert model.get_layer("base").trainable


def test_modern_recipe_warms_up_then_follows_the_cosine(quick):
    # BatchNorm, MixUp/CutMix on one-hot labels, label smoothing, and the
    # schedule: 5 steps an epoch, 10 in all, 1 step of warm-up to 0.1, then
    # 0.1 * (1 + cos(pi * (step - 1) / 9)) / 2, read at the end of each epoch.
    from keras_alexnet.runs import train

    output, _ = quick
    train(
        output / "digits", output / "modern", recipe="modern", image_size=67,
        batch_size=6, epochs=2, fc_units=16, flip=False, verbose=0,
    )  # fmt: skip
    rows = _log(output / "modern" / "log.csv")
    for row, step in zip(rows, (5, 10), strict=True):
        expected = 0.1 * (1 + np.cos(np.pi * (step - 1) / 9)) / 2
        assert float(row["learning_rate"]) == pytest.approx(expected, abs=1e-6)
    config = json.loads((output / "modern" / "config.json").read_text())
    assert config["normalization"] == "batchnorm" and config["augment"] == "modern"
    model = keras.saving.load_model(output / "modern" / "best.keras")
    assert model.get_layer("bn1") is not None


def test_resume_after_sigkill_mid_epoch(tmp_path, capsys):
    # A real training process (the keras-alexnet script), killed (SIGKILL)
    # during its second epoch, then the same command again: log.csv holds every
    # epoch once, and the optimizer has taken exactly epochs * steps steps (none
    # lost, none repeated).
    data = write_digits_folder(tmp_path / "data", image_size=16, per_class=8)
    arguments = [
        "train", str(data), "--output", str(tmp_path / "run"), "--epochs", "2",
        "--image-size", "67", "--batch-size", "1", "--fc-units", "64",
        "--init", "he", "--no-flip", "--no-lighting", "--center-crop-test",
    ]  # fmt: skip
    command = [sys.executable, "-m", "keras_alexnet", *arguments]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": ROOT}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    state = tmp_path / "run" / "state.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epoch"] == 1:
            break
        time.sleep(0.1)
    time.sleep(0.5)  # into epoch 2 (60 steps of one image)
    assert process.poll() is None, process.communicate()[1][-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert json.loads(state.read_text())["epoch"] == 1
    finished = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    # The command line hid TensorFlow's start-up lines.
    assert "cuda" not in finished.stderr.lower(), finished.stderr
    rows = _log(tmp_path / "run" / "log.csv")
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert "Resuming" in finished.stdout and "at epoch 2 of 2" in finished.stdout
    # Only the last checkpoint is kept; the run resumed from epoch 1's.
    assert os.listdir(tmp_path / "run" / "checkpoints") == ["epoch-0002.keras"]
    steps = 6 * 10  # 6 training images a class, batches of 1
    model = keras.saving.load_model(
        tmp_path / "run" / "checkpoints" / "epoch-0002.keras"
    )
    assert int(model.optimizer.iterations) == 2 * steps
    # A different command on the same folder is refused, not mixed in.
    status = cli.main([*arguments, "--seed", "1"])
    assert status == 1 and "another configuration" in capsys.readouterr().err


def test_paper_initialisation_gives_every_input_the_same_fc7(quick):
    # The cause documented in docs/training.md: with N(0, 0.01) weights and
    # biases of 1, fc7 barely depends on the image.
    from keras_alexnet.runs.quickstart import fc7_similarity

    output, _ = quick
    similarity = fc7_similarity(str(output / "digits"), per_class=2)
    assert similarity["paper"] > 0.9999
    assert similarity["he"] < 0.99


def test_he_initialisation_draws_from_he_normal():
    model = models.build_classifier(4, image_size=67, init="he", seed=0, fc_units=64)
    for name in ("conv2", "conv3", "fc6"):
        kernel = keras.ops.convert_to_numpy(model.get_layer(name).kernel)
        fan_in = np.prod(kernel.shape[:-1])
        assert kernel.std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.05)
        bias = keras.ops.convert_to_numpy(model.get_layer(name).bias)
        assert not bias.any()
    # The inputs (Caffe's scale, spread ~58) are brought to unit spread.
    scale = model.get_layer("input_scale")
    assert scale.scale == pytest.approx(1 / (255 * 0.226))


def test_mixup_and_cutmix_mix_labels_as_pixels():
    # Black images of class 0 and white images of class 1: after MixUp or
    # CutMix, the mean pixel of each image equals its label weight of class 1.
    import tensorflow as tf

    images = tf.concat([tf.zeros((4, 64, 64, 3)), tf.ones((4, 64, 64, 3))], 0)
    labels = tf.one_hot([0] * 4 + [1] * 4, 2)
    batches = tf.data.Dataset.from_tensors((images, labels)).repeat(6)
    mixed = recipes.mix_batches(batches, seed=3)
    assert mixed.cardinality() == 6
    for x, y in mixed:
        x, y = x.numpy(), y.numpy()
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
        # Up to a row or column of the box at each edge rounded to whole pixels.
        np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), y[:, 1], atol=0.04)


@pytest.mark.backend
def test_distribute_matches_one_device(tmp_path, capsys):
    # One epoch with two replicas on two virtual CPU devices against one device
    # with the same global batch: equal to float32 rounding (the gradients of
    # the two halves are averaged instead of computed at once).
    backend = keras.backend.backend()
    if backend == "torch":
        status = cli.main(["train", str(tmp_path), "--distribute"])
        assert status == 1
        assert "needs the TensorFlow or JAX backend" in capsys.readouterr().err
        return
    script = os.path.join(ROOT, "tests", "distribute_check.py")
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    finished = subprocess.run(
        [sys.executable, script, backend, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2
    assert result["max_abs_difference"] <= 1e-6 * result["largest_weight"] + 1e-7


def test_model_parallel_split_matches_one_device(tmp_path, capsys):
    # The paper's split (every layer's kernels halved over two virtual CPU
    # devices, under JAX in a process of its own) against one device: the same
    # outputs, the same loss of one training step and the same weights after
    # it, to float32 rounding (1e-6 of the largest value); each device holds
    # one contiguous half of every kernel's output units, so that conv2, conv4
    # and conv5's two groups are on their own device each, as in the paper.
    if keras.backend.backend() != "jax":
        status = cli.main(["train", str(tmp_path), "--distribute", "model-parallel"])
        assert status == 1
        assert "needs the JAX backend" in capsys.readouterr().err
    script = os.path.join(ROOT, "tests", "model_parallel_check.py")
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    finished = subprocess.run(
        [sys.executable, script], env=env, capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2
    tolerance = 1e-6
    assert result["max_output_difference"] <= tolerance * result["largest_output"]
    assert result["loss_two"] == pytest.approx(result["loss_one"], rel=tolerance)
    assert result["max_weight_difference"] <= tolerance * result["largest_weight"]
    layers = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    layout = result["layout"]
    assert sorted(layout) == sorted(f"{n}/kernel" for n in [*layers, "predictions"])
    for entry in layout.values():
        half = entry["units"] // 2
        assert entry["parts"] == [[0, 0, half], [1, half, 2 * half]]


def test_auto_settings_fit_the_data():
    # Closed forms of the rule: the largest power of two giving >= 20 steps an
    # epoch (at least 8, at most the reference 128), the paper's 0.01 at 128
    # scaled linearly, the images' side from 67 up to the variant's 227.
    auto = recipes.get_recipe(None)
    assert auto.name == "auto"

    def choose(**kwargs):
        base = {"train_images": None, "image_side": None, "default_image_size": 227}
        return recipes.choose_settings(auto, **{**base, **kwargs})

    faces = choose(train_images=160, image_side=25)
    assert (faces.batch_size, faces.image_size, faces.epochs) == (8, 67, 10)
    assert faces.learning_rate == pytest.approx(0.01 * 8 / 128)
    assert "batch 8 (20 steps an epoch of 160 images)" in faces.reason
    digits = choose(train_images=1437, image_side=32)
    assert digits.batch_size == 64 and digits.learning_rate == pytest.approx(0.005)
    big = choose(train_images=1_281_167, image_side=400)
    assert (big.batch_size, big.image_size) == (128, 227)
    assert big.learning_rate == pytest.approx(0.01)
    tiny = choose(train_images=5, image_side=80)
    assert (tiny.batch_size, tiny.image_size) == (5, 80)
    # The caller's batch still scales the rate; the caller's rate is kept.
    assert choose(batch_size=32).learning_rate == pytest.approx(0.0025)
    assert choose(batch_size=32, learning_rate=0.2).learning_rate == 0.2
    # The paper stays the paper.
    paper = recipes.choose_settings(
        recipes.get_recipe("paper"),
        train_images=160,
        image_side=25,
        default_image_size=227,
    )
    assert (paper.batch_size, paper.learning_rate) == (128, 0.01)
    assert (paper.image_size, paper.epochs, paper.reason) == (227, 90, "")


def test_plateau_patience_suits_the_run_length():
    assert [recipes.plateau_patience(n) for n in (1, 6, 10, 30, 31, 90)] == [
        3, 3, 3, 3, 4, 9,
    ]  # fmt: skip


@pytest.mark.parametrize("rate", [float("inf"), float("nan"), 0.0, -0.01])
def test_learning_rates_that_cannot_train_are_refused(tmp_path, rate):
    from keras_alexnet.runs import finetune, train

    with pytest.raises(ValueError, match="learning_rate"):
        train(tmp_path, tmp_path / "run", learning_rate=rate)
    with pytest.raises(ValueError, match="finetune_learning_rate"):
        finetune(tmp_path, tmp_path / "run", finetune_learning_rate=rate)
    assert not (tmp_path / "run").exists()


def test_divergence_stops_the_run_without_saving_it(tmp_path, capsys):
    # A rate of 1e12 overflows the weights within the first epoch: the run
    # stops at that batch with one line naming where and what to change, exit
    # 1, and no checkpoint of a non-finite model exists.
    data = write_digits_folder(tmp_path / "data", image_size=16, per_class=4)
    run = tmp_path / "run"
    argv = ["train", str(data), "--output", str(run), "--image-size", "67"]
    argv += ["--fc-units", "16", "--epochs", "2", "--learning-rate", "1e12"]
    status = cli.main([*argv, "--quiet"])
    _, err = capsys.readouterr()
    assert status == 1
    assert err.count("\n") == 1, err
    assert "diverged" in err and "epoch 1, step " in err
    assert "--learning-rate" in err and "--batch-size" in err
    assert not (run / "best.keras").exists()
    assert not os.listdir(run / "checkpoints")
