"""Tests of the `keras-alexnet` command line, offline, through `cli.main`."""

from __future__ import annotations

import os
import re
import struct
import zlib

import keras
import numpy as np
import pytest
from PIL import Image

from keras_alexnet import AlexNet, cli, conversion, imagenet_class_index, parity
from keras_alexnet.resources import sample_images
from keras_alexnet.weights import download, registry
from tests.test_conversion import write_torchvision_checkpoint

SAMPLE_NAMES = ["chelsea.jpg", "coffee.jpg", "rocket.jpg"]
# "  1. n02123045 tabby    0.1234"
PREDICTION_LINE = re.compile(r"^  (\d+)\. (n\d{8}) (\S+) +(\d\.\d{4})$")


def run(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def predictions(out):
    """`{image path: [(wnid, name, probability), ...]}` from classify's output."""
    result, current = {}, None
    for line in out.splitlines():
        match = PREDICTION_LINE.match(line)
        if match:
            result[current].append(
                (match.group(2), match.group(3), float(match.group(4)))
            )
        elif not line.startswith("Weights:"):
            current = line
            result[current] = []
    return result


def test_sample_images_are_the_three_licensed_photos():
    paths = sample_images()
    assert [path.name for path in paths] == SAMPLE_NAMES
    readme = (paths[0].parent / "README.md").read_text(encoding="utf-8")
    for path in paths:
        assert path.is_file() and path.stat().st_size < 100_000
        assert f"`{path.name}`" in readme
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert 256 <= min(image.size) <= 320


def test_classify_sample_photos_with_random_weights(capsys):
    status, out, err = run(capsys, "classify", "--weights", "none", "--top", "3")
    assert status == 0, err
    assert "RANDOMLY INITIALISED" in out
    result = predictions(out)
    assert [os.path.basename(path) for path in result] == SAMPLE_NAMES
    names = dict(imagenet_class_index())
    for top in result.values():
        assert len(top) == 3
        for wnid, name, probability in top:
            assert names[wnid] == name and 0 < probability < 1
        probabilities = [p for _, _, p in top]
        assert probabilities == sorted(probabilities, reverse=True)


def test_convert_then_classify_with_the_converted_weights(capsys, tmp_path):
    source = write_torchvision_checkpoint(tmp_path / "random.pth")
    dest = os.fspath(tmp_path / "converted.weights.h5")
    status, out, err = run(capsys, "convert", source, dest)
    assert status == 0, err
    # The conversion's progress bar with its total (read, build, set weights).
    assert re.search(r"^3/3 - \d+s - ", out, re.M), out
    assert "Modelling (the same input tensor into both models)" in out
    assert "Modelling parity: OK" in out
    assert f"Saved {dest}" in out and os.path.isfile(dest)
    # The file records its architecture: no variant or LRN to repeat on loading.
    assert f'Load it with AlexNet(weights="{dest}").' in out

    # A PNG of the user's, classified with the converted weights.
    png = tmp_path / "photo.png"
    with Image.open(sample_images()[1]) as image:
        image.save(png)
    status, out, err = run(
        capsys,
        "classify",
        os.fspath(png),
        "--weights",
        dest,
        "--top",
        "1",
    )
    assert status == 0, err
    assert "RANDOMLY" not in out
    assert f"Weights: {dest} (torchvision variant)" in out
    (top,) = predictions(out).values()
    assert len(top) == 1


def test_classify_takes_the_lrn_constants_the_weights_file_says(capsys, tmp_path):
    # model.save_weights records nothing: the paper's LRN, AlexNet's default, is
    # used (never Caffe's, which classify once forced on every file); --lrn says
    # otherwise; a .keras file's own constants win, and a contradiction is refused.
    image = os.fspath(sample_images()[0])
    plain = os.fspath(tmp_path / "paper.weights.h5")
    AlexNet(weights=None).save_weights(plain)
    status, out, err = run(capsys, "classify", image, "--weights", plain, "--top", "1")
    assert status == 0, err
    assert "LRN {'size': 5, 'bias': 2.0, 'alpha': 0.0001, 'beta': 0.75}" in out
    status, out, err = run(
        capsys, "classify", image, "--weights", plain, "--lrn", "caffe", "--top", "1"
    )
    assert status == 0, err
    assert "'bias': 1.0, 'alpha': 2e-05" in out
    # Refused from the file's config, before any model is built: a small one does.
    archive = os.fspath(tmp_path / "caffe.keras")
    AlexNet(weights=None, lrn="caffe", include_top=False, input_shape=(67, 67, 3)).save(
        archive
    )
    status, out, err = run(
        capsys, "classify", image, "--weights", archive, "--lrn", "paper"
    )
    assert status == 1
    # In terms of the flag, not of AlexNet's `lrn=` argument.
    assert "need --lrn {'size': 5, 'bias': 1.0" in err
    assert "Received: --lrn {'size': 5, 'bias': 2.0" in err


class _FakeReport:
    def __init__(self, ok):
        self.ok = ok

    def modelling_ok(self):
        return self.ok

    def __str__(self):
        return f"fake report, ok={self.ok}"


@pytest.fixture
def tiny_conversion(monkeypatch):
    """Replaces the slow conversion by a tiny model: tests the command's logic."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="tiny")
    monkeypatch.setattr(conversion, "convert_checkpoint", lambda *a, **k: model)
    return model


def test_convert_writes_nothing_when_parity_fails(
    capsys, tmp_path, monkeypatch, tiny_conversion
):
    monkeypatch.setattr(parity, "parity_report", lambda *a: _FakeReport(False))
    dest = tmp_path / "out.keras"
    status, out, err = run(capsys, "convert", "x.pth", os.fspath(dest))
    assert status == 1
    assert "fake report, ok=False" in out
    assert "was not written" in err
    assert not dest.exists()


def test_convert_no_parity_skips_the_check(
    capsys, tmp_path, monkeypatch, tiny_conversion
):
    def fail(*args):
        raise AssertionError("parity_report should not run")

    monkeypatch.setattr(parity, "parity_report", fail)
    dest = tmp_path / "out.keras"
    status, out, err = run(capsys, "convert", "x.pth", os.fspath(dest), "--no-parity")
    assert status == 0, err
    assert dest.is_file()


def test_info_lists_the_registry_and_the_cache(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", os.fspath(tmp_path))
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    status, out, _ = run(capsys, "info")
    assert status == 0
    for checkpoint in registry.CHECKPOINTS.values():
        assert checkpoint.name in out
        assert checkpoint.license in out
        assert f"{checkpoint.num_params:,}" in out
        assert f"{checkpoint.top1} % / {checkpoint.top5} %" in out
    assert out.count("no (downloaded on first use)") == 2

    converted = download.converted_weights_path(registry.BVLC_ALEXNET)
    os.makedirs(os.path.dirname(converted))
    open(converted, "wb").close()
    _, out, _ = run(capsys, "info")
    assert f"yes, converted: {converted}" in out
    assert out.count("no (downloaded on first use)") == 1


def test_imagenet_weights_without_network_give_a_clear_error(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("KERAS_HOME", os.fspath(tmp_path))
    # A closed local port: the download fails at once, as it would offline.
    monkeypatch.setenv(download.MIRROR_ENV, "http://127.0.0.1:9")
    status, out, err = run(capsys, "classify", "--weights", "imagenet")
    assert status == 1
    assert "Downloading 'bvlc_alexnet' from http://127.0.0.1:9/" in err
    assert download.MIRROR_ENV in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the following arguments are required: COMMAND"),
        (["fit"], "invalid choice: 'fit'"),
        (["classify", "--top", "0"], "should be an integer from 1 to 1000"),
        (["classify", "--top", "five"], "Received: 'five'"),
        (["classify", "--variant", "vgg"], "invalid choice: 'vgg'"),
        (["convert", "only_source.pth"], "required: DEST"),
        (["train", "data", "--epochs", "-1"], "should be an integer from 1 to 10000"),
    ],
)
def test_bad_arguments_exit_with_status_2(capsys, argv, message):
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert message in err
    # One line, naming the problem: not argparse's whole usage block.
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["classify", "missing.jpg", "--weights", "none"], "No such image file"),
        (
            ["classify", "--weights", "missing.weights.h5"],
            "names a file that does not exist",
        ),
        (["classify", "{not_an_image}", "--weights", "none"], "not an image"),
        (["classify", "{bomb}", "--weights", "none"], "more than max_pixels"),
        (["classify", "{folder}", "--weights", "none"], "is a folder. Pass its"),
        (["convert", "missing.pth", "out.keras"], "not a file"),
        (
            ["convert", "{checkpoint}", "out.keras", "--variant", "original"],
            "holds the 'torchvision' variant",
        ),
    ],
)
def test_failures_exit_with_status_1_and_a_message(capsys, tmp_path, argv, message):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("not a JPEG")
    checkpoint = tmp_path / "empty.pth"
    checkpoint.write_bytes(b"")
    # A PNG declaring 40000x40000 pixels (decoded: 4.8 GB), 33 bytes long.
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + ihdr
        + struct.pack(">I", zlib.crc32(ihdr))
    )
    names = {"not_an_image": not_an_image, "checkpoint": checkpoint, "bomb": bomb}
    argv = [arg.format(folder=tmp_path, **names) for arg in argv]
    status, _, err = run(capsys, *argv)
    assert status == 1
    assert err.startswith("keras-alexnet: error:")
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "dest, message",
    [
        ("out.h5", "DEST should end in .weights.h5"),
        ("out.txt", "DEST should end in .weights.h5"),
        ("typo/out.keras", "the folder of DEST does not exist"),
    ],
)
def test_bad_convert_destination_exits_with_status_2_before_converting(
    capsys, tmp_path, dest, message
):
    checkpoint = tmp_path / "empty.pth"  # would fail to read, if it were read
    checkpoint.write_bytes(b"")
    status, _, err = run(capsys, "convert", str(checkpoint), str(tmp_path / dest))
    assert status == 2
    assert message in err and "Traceback" not in err
    assert "empty.pth" not in err
    assert not (tmp_path / "typo").exists()


COMMANDS = (
    "classify", "convert", "info", "export", "prepare",
    "train", "finetune", "evaluate", "quickstart",
)  # fmt: skip


def test_help_exits_with_status_0(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0
    # Every command, each with its one-line description.
    for command in COMMANDS:
        assert re.search(rf"^    {command}\s+\S", out, re.M), (command, out)
    for command in COMMANDS:
        assert run(capsys, command, "--help")[0] == 0


# Runs the command line in a fresh interpreter, then prints its status and the
# modules of Keras and its backends that were imported.
IMPORTS_SCRIPT = """
import json, sys
from keras_alexnet.cli import main
status = main(sys.argv[1:])
heavy = ("keras", "tensorflow", "jax", "torch")
print(json.dumps([status, [m for m in sys.modules if m.split(".")[0] in heavy]]))
"""


@pytest.mark.parametrize(
    "argv, expected_status",
    [
        (["--help"], 0),
        (["train", "--help"], 0),
        (["train", "data", "--learning-rate", "nan"], 2),
        (["fit"], 2),
    ],
)
def test_help_and_usage_errors_import_no_backend(argv, expected_status):
    # Answered before Keras, TensorFlow, JAX or PyTorch is imported: at once.
    import json
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    finished = subprocess.run(
        [sys.executable, "-c", IMPORTS_SCRIPT, *argv],
        env={**os.environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=120,
    )
    status, imported = json.loads(finished.stdout.strip().splitlines()[-1])
    assert status == expected_status, finished.stderr
    assert imported == []


PACKAGE_SCRIPT = """
import sys
import keras_alexnet
from keras_alexnet import variants, _choices, _validation
from keras_alexnet.weights import registry
assert "keras" not in sys.modules, "keras imported by the light modules"
assert set(keras_alexnet.__all__) <= set(dir(keras_alexnet))
import keras
# Registered for load_model once Keras is imported, by `import keras_alexnet`.
name = "keras_alexnet>LocalResponseNormalization"
assert keras.saving.get_registered_object(name) is not None
from keras_alexnet import AlexNet
for name in keras_alexnet.__all__:
    assert getattr(keras_alexnet, name) is not None, name
assert keras_alexnet.AlexNet is AlexNet
print("ok")
"""


def test_the_package_imports_keras_on_first_use_of_a_name():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    finished = subprocess.run(
        [sys.executable, "-c", PACKAGE_SCRIPT],
        env={**os.environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.strip().splitlines()[-1] == "ok"


@pytest.mark.parametrize("rate", ["inf", "nan", "0", "-0.1", "fast"])
@pytest.mark.parametrize(
    "command, flag",
    [
        ("train", "--learning-rate"),
        ("finetune", "--learning-rate"),
        ("finetune", "--finetune-learning-rate"),
    ],
)
def test_rates_must_be_finite_and_positive(capsys, command, flag, rate):
    status, _, err = run(capsys, command, "data", flag, rate)
    assert status == 2
    assert f"argument {flag}: should be a finite number > 0. Received: '{rate}'" in err


def test_library_argument_names_are_shown_as_flags():
    # What the reporter writes instead of the library's names, for the flags
    # of `finetune`: its `--learning-rate` is not mistaken inside
    # `finetune_learning_rate`, and a switch is written as the switch.
    args = cli.build_parser().parse_args(["finetune", "data"])
    message = (
        "`head_epochs` should be from 0 to `epochs`. Received: head_epochs=7, "
        "epochs=2, finetune_learning_rate=inf, learning_rate=0, flip=False, "
        "data='x', verbose=1"
    )
    from keras_alexnet.cli.main import in_flags

    assert in_flags(message, args.flags) == (
        "`--head-epochs` should be from 0 to `--epochs`. Received: --head-epochs 7, "
        "--epochs 2, --finetune-learning-rate inf, --learning-rate 0, --no-flip, "
        "DATA 'x', verbose=1"
    )


def test_a_library_error_names_the_flag(capsys, tmp_path):
    # export's refusal to replace a file, read by a command-line user. (The
    # check of head_epochs against epochs, once finetune's, is now a usage
    # error of the command line, with the flags in its message.)
    status, _, err = run(
        capsys, "finetune", str(tmp_path), "--weights", "none",
        "--epochs", "2", "--head-epochs", "3", "--output", str(tmp_path / "run"),
    )  # fmt: skip
    assert status == 2
    assert "argument --head-epochs: should be at most --epochs (2). Received: 3" in err
    dest = tmp_path / "model"
    dest.mkdir()
    status, _, err = run(capsys, "export", "imagenet", str(dest))
    assert status == 1
    assert "remove it or pass --overwrite." in err and "overwrite=True" not in err
    assert dest.is_dir() and not any(dest.iterdir())


def test_every_option_of_a_run_reaches_the_library():
    # Run commands pass their options by name: a flag whose name is not a
    # parameter of the function would be silently dropped.
    import inspect

    from keras_alexnet.data.prepare import prepare_imagenet
    from keras_alexnet.runs.evaluate import evaluate
    from keras_alexnet.runs.quickstart import quickstart
    from keras_alexnet.runs.train import finetune, train

    functions = {
        "train": train,
        "finetune": finetune,
        "evaluate": evaluate,
        "quickstart": quickstart,
        "prepare": prepare_imagenet,
    }
    command_line_only = {"help", "run", "flags", "command", "backend", "debug", "quiet"}
    (commands,) = [
        action.choices
        for action in cli.build_parser()._actions
        if isinstance(action.choices, dict)
    ]
    for command, function in functions.items():
        options = {action.dest for action in commands[command]._actions}
        parameters = inspect.signature(function).parameters
        assert options - command_line_only <= set(parameters), command


# "  1. 7                              0.1234": a class index, without class names.
INDEX_LINE = re.compile(r"^  (\d+)\. (\d+) +(\d\.\d{4})$")


def test_classify_infers_the_class_count_of_a_pth_and_a_weights_h5(capsys, tmp_path):
    # A torchvision state dict with a 10-class classifier, saved by torch itself;
    # the .weights.h5 is its conversion. Each image is one colour, so that any
    # resize and crop leaves it one colour and the network's input is known by
    # hand: torchvision's normalisation of that colour.
    import torch

    from tests.test_conversion import (
        TORCHVISION_SHAPES,
        he_weights,
        torch_functional_alexnet,
    )

    shapes = dict(TORCHVISION_SHAPES, **{"classifier.6": (10, 4096)})
    state_dict = {}
    for name, (weight, bias) in he_weights(shapes, seed=3).items():
        state_dict[f"{name}.weight"] = torch.from_numpy(weight)
        state_dict[f"{name}.bias"] = torch.from_numpy(bias)
    pth = os.fspath(tmp_path / "ten.pth")
    torch.save(state_dict, pth)
    colours = [(200, 40, 90), (20, 160, 230)]
    images = []
    for index, colour in enumerate(colours):
        images.append(os.fspath(tmp_path / f"colour{index}.png"))
        Image.new("RGB", (9, 7), colour).save(images[-1])
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    x = (np.array(colours, np.float32) / 255.0 - mean) / std
    x = np.broadcast_to(x[:, :, None, None], (2, 3, 224, 224)).copy()
    logits = torch_functional_alexnet(
        {key: value.numpy() for key, value in state_dict.items()}, x
    )
    expected = torch.softmax(torch.from_numpy(logits), dim=1).numpy()

    h5 = os.fspath(tmp_path / "ten.weights.h5")
    status, out, err = run(capsys, "convert", pth, h5, "--no-parity", "--quiet")
    assert status == 0, err
    assert "/step" not in out  # --quiet: no progress bar
    for weights in (pth, h5):
        status, out, err = run(
            capsys, "classify", *images, "--weights", weights, "--top", "3"
        )
        assert status == 0, err
        assert "torchvision variant, 10 classes" in out
        printed, current = {}, None
        for line in out.splitlines():
            match = INDEX_LINE.match(line)
            if match:
                printed[current].append((int(match.group(2)), float(match.group(3))))
            elif not line.startswith("Weights:"):
                current = line
                printed[current] = []
        assert list(printed) == images
        for path, row in zip(images, expected, strict=True):
            top = np.argsort(-row)[:3]
            assert [index for index, _ in printed[path]] == top.tolist()
            np.testing.assert_allclose(
                [score for _, score in printed[path]], row[top], atol=2e-4
            )


@pytest.mark.parametrize(
    "argv, flag, expected",
    [
        (["train", "data", "--image-size", "1000000000"], "--image-size", "1 to 1024"),
        (["train", "data", "--batch-size", "100000000"], "--batch-size", "1 to 32768"),
        (["train", "data", "--epochs", "100000000000"], "--epochs", "1 to 10000"),
        (["train", "data", "--fc-units", "1000000000"], "--fc-units", "1 to 16384"),
        (
            ["train", "data", "--keep-checkpoints", "10001"],
            "--keep-checkpoints",
            "1 to",
        ),
        (["train", "data", "--seed", "-1"], "--seed", "0 to 4294967295"),
        (["finetune", "data", "--head-epochs", "-3"], "--head-epochs", "0 to 10000"),
        (
            ["evaluate", "d", "--weights", "w", "--image-size", "2000"],
            "--image-size",
            "",
        ),
        (["evaluate", "d", "--weights", "w", "--seed", "2**40"], "--seed", ""),
        (["quickstart", "--epochs", "100000000000"], "--epochs", "1 to 10000"),
        (["prepare", "s", "o", "--resize-size", "65536"], "--resize-size", "1 to 2048"),
        (["prepare", "s", "o", "--shard-size", "99999999999"], "--shard-size", "1 to"),
        (["classify", "--backend", "foo"], "--backend", "invalid choice: 'foo'"),
        (["train", "d", "--learning-rate", "1e300"], "--learning-rate", "most 3.4e+38"),
    ],
)
def test_numeric_options_are_bounded_as_usage_errors(capsys, argv, flag, expected):
    # Bounds from keras_alexnet/_bounds.py, checked before anything runs.
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert f"argument {flag}: " in err and expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "{data}", "--image-size", "10"],
            "--image-size: should be at least 6",
        ),
        (
            ["finetune", "{data}", "--head-epochs", "5", "--epochs", "2"],
            "--head-epochs: should be at most --epochs (2). Received: 5",
        ),
        (
            ["export", "{model}", "{out}", "--include-preprocessing"],
            "--include-preprocessing applies when MODEL is weights",
        ),
        (
            ["export", "imagenet", "{out}.onnx", "--format", "tflite"],
            "DEST should end in .tflite for --format tflite",
        ),
    ],
)
def test_argument_contradictions_are_usage_errors(capsys, tmp_path, argv, message):
    names = {"data": tmp_path / "data", "model": tmp_path / "m.keras"}
    names["out"] = tmp_path / "out"
    argv = [arg.format(**names) for arg in argv]
    status, _, err = run(
        capsys, *argv, *(["--output", str(names["out"])] if argv[0] != "export" else [])
    )
    assert status == 2
    assert message in err and "Traceback" not in err
    # Refused before anything is read or written.
    assert sorted(os.listdir(tmp_path)) == []


def test_an_unknown_keras_backend_is_a_usage_error():
    import subprocess
    import sys

    # Keras refuses it while TensorFlow imports it: one line, status 2.
    env = dict(os.environ, KERAS_BACKEND="foo")
    finished = subprocess.run(
        [sys.executable, "-m", "keras_alexnet", "info"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 2
    assert "error: KERAS_BACKEND='foo'" in finished.stderr
    assert "tensorflow, jax, torch" in finished.stderr
    assert "Traceback" not in finished.stderr
