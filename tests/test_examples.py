"""Runs every example in its offline mode, as a user would, and reads its output.

The four scripts run at the same time, each in its own process (TensorFlow
backend), so that their start-up and their waits on the disk overlap.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples")
SAMPLE_NAMES = ("chelsea.jpg", "coffee.jpg", "rocket.jpg")
COMMANDS = {
    "classify": ["classify.py", "--weights", "none"],
    "extract_features": [
        "extract_features.py",
        "--weights",
        "none",
        "--output",
        "features.npz",
    ],
    "fine_tune": ["fine_tune.py", "--synthetic"],
    "train_imagenet": ["train_imagenet.py", "--synthetic"],
    # With no arguments, no example reaches for the network: each says what it
    # would download and how to point it at local data.
    "classify_no_arguments": ["classify.py"],
    "extract_features_no_arguments": ["extract_features.py"],
    "fine_tune_no_arguments": ["fine_tune.py"],
    "train_imagenet_no_arguments": ["train_imagenet.py"],
}
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """`{name: (exit status, stdout, stderr, working folder)}` for every example."""
    # An empty Keras cache: "nothing downloaded yet", whatever this machine holds.
    env = {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KERAS_HOME": str(tmp_path_factory.mktemp("keras_home")),
    }
    env.pop("KERAS_ALEXNET_WEIGHTS_MIRROR", None)
    processes = {}
    for name, (script, *args) in COMMANDS.items():
        folder = tmp_path_factory.mktemp(name)
        processes[name] = (
            subprocess.Popen(
                [sys.executable, os.path.join(EXAMPLES, script), *args],
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            folder,
        )
    results = {}
    try:
        for name, (process, folder) in processes.items():
            out, err = process.communicate(timeout=TIMEOUT_S)
            results[name] = (process.returncode, out, err, folder)
    finally:
        for process, _ in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def finished(runs, name):
    status, out, err, folder = runs[name]
    assert status == 0, f"{name} failed:\n{err[-3000:]}"
    return out, folder


def test_every_example_is_tested():
    scripts = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py"))
    assert scripts == sorted({script for script, *_ in COMMANDS.values()})


def test_classify(runs):
    out, _ = finished(runs, "classify")
    assert "Random weights" in out
    lines = out.splitlines()
    for name in SAMPLE_NAMES:
        (index,) = [i for i, line in enumerate(lines) if line.endswith(name)]
        top = lines[index + 1 : index + 6]
        assert all(re.match(r"^ +\d+\.\d\d%  \S+ \(n\d{8}\)$", line) for line in top)


def test_extract_features(runs):
    out, folder = finished(runs, "extract_features")
    assert "pool5: (3, 6, 6, 256)" in out
    assert "fc7: (3, 4096)" in out
    features = np.load(folder / "features.npz")
    assert features["pool5"].shape == (3, 6, 6, 256)
    assert features["fc7"].shape == (3, 4096)
    assert np.all(features["fc7"] >= 0)  # fc7 includes its ReLU
    assert [os.path.basename(p) for p in features["paths"]] == list(SAMPLE_NAMES)


def test_fine_tune(runs):
    out, _ = finished(runs, "fine_tune")
    assert "3 classes: class_0, class_1, class_2" in out
    match = re.search(r"validation accuracy: (\d\.\d+)", out)
    assert match and 0.0 <= float(match.group(1)) <= 1.0


def test_train_imagenet(runs):
    out, _ = finished(runs, "train_imagenet")
    # One epoch of one step, logged with the schedule's learning rate.
    assert re.search(r"val_top5: \d\.\d+ - learning_rate: 1\.0000e-04", out)
    match = re.search(
        r"10-crop validation: top-1 error (\d\.\d+), top-5 error (\d\.\d+) on 6 images",
        out,
    )
    assert match
    top1_error, top5_error = float(match.group(1)), float(match.group(2))
    assert 0.0 <= top5_error <= top1_error <= 1.0


@pytest.mark.parametrize(
    "name, words",
    [
        (
            "classify_no_arguments",
            ["--weights imagenet", "KERAS_ALEXNET_WEIGHTS_MIRROR"],
        ),
        (
            "extract_features_no_arguments",
            ["bvlc_alexnet.caffemodel", "--weights none"],
        ),
        ("fine_tune_no_arguments", ["tf_flowers", "--source ~/photos", "--synthetic"]),
        ("train_imagenet_no_arguments", ["--manual-dir", "--train-dir", "--synthetic"]),
    ],
)
def test_no_arguments_needs_no_network(runs, name, words):
    out, folder = finished(runs, name)
    assert all(word in out for word in words), out
    assert not os.listdir(folder)  # nothing downloaded, nothing written
