"""A run folder's files and `.keras` models read back as input: each kind of
damage is refused with one line naming the file and the reason, and nothing
the user owns changes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import zipfile

import keras
import pytest
from bounded import run_reader

from keras_alexnet._terminal import printable
from keras_alexnet.cli import main
from keras_alexnet.runs import train
from keras_alexnet.runs.run_files import read_classes, read_log, read_state
from keras_alexnet.runs.run_folder import RunFolder
from keras_alexnet.weights.keras_file import check_keras_file, load_keras_file

CLASSES = ["cat", "dog", "eel"]


def _tiny_model():
    # What classify needs of a trained model: conv1, conv2 and predictions.
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(2, 3, name="conv1")(inputs)
    x = keras.layers.Conv2D(2, 3, name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def good_keras(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "good.keras"
    _tiny_model().save(path)
    return path


def _rewrite(source, dest, config=None, drop=()):
    """`source`'s archive with `config.json` replaced by `config` (bytes)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(dest, "w") as new:
        for name in old.namelist():
            if name in drop:
                continue
            data = old.read(name)
            if name == "config.json" and config is not None:
                data = config
            new.writestr(name, data)


def _with_layer(source, **fields):
    config = json.loads(zipfile.ZipFile(source).read("config.json"))
    config["config"]["layers"][1].update(fields)
    return json.dumps(config).encode()


def _flip_weights_byte(source, dest):
    """`source` with one byte of `model.weights.h5`'s stored data inverted."""
    data = bytearray(source.read_bytes())
    info = zipfile.ZipFile(source).getinfo("model.weights.h5")
    header = data[info.header_offset : info.header_offset + 30]
    start = (
        info.header_offset
        + 30
        + int.from_bytes(header[26:28], "little")
        + int.from_bytes(header[28:30], "little")
    )
    data[start + info.compress_size // 2] ^= 0xFF
    dest.write_bytes(bytes(data))


def _damage(kind, source, dest):
    """Writes a `.keras` file damaged as `kind`; returns what the message says."""
    if kind == "random bytes":
        dest.write_bytes(os.urandom(2048))
        return "is not a .keras archive (a zip file)"
    if kind == "truncated":
        dest.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
        return "is not a .keras archive (a zip file)"
    if kind == "no config.json":
        _rewrite(source, dest, drop=("config.json",))
        return "it has no config.json"
    if kind == "no weights":
        _rewrite(source, dest, drop=("model.weights.h5",))
        return "it has no model.weights.h5"
    if kind == "config.json a list":
        _rewrite(source, dest, config=b"[1, 2]")
        return "its config.json holds a JSON list, not an object"
    if kind == "config.json not JSON":
        _rewrite(source, dest, config=b"{oops")
        return "has no readable config.json"
    if kind == "config.json nested too deep":
        _rewrite(source, dest, config=b"[" * 200_000)
        return "has no readable config.json"
    if kind == "unknown class":
        layer = {"module": "evil_payload", "class_name": "Payload"}
        _rewrite(source, dest, config=_with_layer(source, **layer))
        return "names the class 'Payload' of module 'evil_payload'"
    if kind == "python lambda":
        config = json.loads(zipfile.ZipFile(source).read("config.json"))
        config["config"]["layers"][1]["config"]["function"] = {
            "class_name": "__lambda__",
            "config": {"code": "print('ran')"},
        }
        _rewrite(source, dest, config=json.dumps(config).encode())
        return "names Python code"
    if kind == "bit flip":
        _flip_weights_byte(source, dest)
        return "damaged .keras archive (zip file): Bad CRC-32"
    raise AssertionError(kind)


KERAS_DAMAGE = [
    "random bytes",
    "truncated",
    "no config.json",
    "no weights",
    "config.json a list",
    "config.json not JSON",
    "config.json nested too deep",
    "unknown class",
    "python lambda",
    "bit flip",
]


@pytest.mark.parametrize("kind", KERAS_DAMAGE)
def test_a_damaged_keras_file_is_named_with_the_reason(kind, good_keras, tmp_path):
    path = tmp_path / "model.keras"
    reason = _damage(kind, good_keras, path)
    with pytest.raises(ValueError) as error:
        # The full check reads every member (a bit flip's CRC); the loader too.
        check_keras_file(path, full=True)
        load_keras_file(path)
    assert repr(str(path)) in str(error.value) and reason in str(error.value)
    assert "evil_payload" not in sys.modules


def test_a_zip_bomb_is_refused_from_its_directory(good_keras, tmp_path):
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(good_keras) as source, zipfile.ZipFile(bomb, "w") as zip_:
        zip_.writestr("config.json", source.read("config.json"))
        zeros = bytes(80 << 20)
        zip_.writestr("model.weights.h5", zeros, zipfile.ZIP_DEFLATED, 1)
    assert bomb.stat().st_size < 1 << 20
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"model.weights.h5 inflates .* zip bomb"):
        load_keras_file(bomb)
    assert time.perf_counter() - started < 1  # nothing inflated


def test_the_loader_names_missing_files_and_folders_as_weights_does(tmp_path):
    with pytest.raises(ValueError, match="`weights` names a file that does not exist"):
        load_keras_file(tmp_path / "missing.keras")
    (tmp_path / "folder.keras").mkdir()
    with pytest.raises(ValueError, match="`model_or_path` is a folder"):
        load_keras_file(tmp_path / "folder.keras", argument="model_or_path")
    with pytest.raises(TypeError, match="Received: weights=3"):
        load_keras_file(3)

    class BytesPath:
        def __fspath__(self):
            return b"model.keras"

    with pytest.raises(TypeError, match="should be the path of a .keras file"):
        load_keras_file(BytesPath())


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate", "{data}", "--weights", "{model}", "--quiet"],
        ["classify", "--weights", "{model}"],
        ["export", "{model}", "{tmp}/exported"],
    ],
    ids=["evaluate", "classify", "export"],
)
def test_every_command_loading_a_keras_file_names_it(
    command, good_keras, tmp_path, capsys
):
    model = tmp_path / "model.keras"
    _damage("no config.json", good_keras, model)
    argv = [a.format(data=tmp_path, model=model, tmp=tmp_path) for a in command]
    assert main(argv) == 1
    line = _one_error_line(capsys)
    assert repr(str(model)) in line and "it has no config.json" in line
    assert not os.path.exists(tmp_path / "exported")


# -- run folders --------------------------------------------------------------


def _run_folder(root, good_keras):
    """A run folder as a run of one epoch leaves it (without the pictures)."""
    root.mkdir()
    (root / "checkpoints").mkdir()
    shutil.copyfile(good_keras, root / "checkpoints" / "epoch-0001.keras")
    os.link(root / "checkpoints" / "epoch-0001.keras", root / "best.keras")
    (root / "config.json").write_text(json.dumps({"command": "train", "epochs": 1}))
    (root / "classes.json").write_text(json.dumps(CLASSES))
    (root / "log.csv").write_text("epoch,accuracy,val_accuracy\n1,0.5,0.25\n")
    state = {"epoch": 1, "best": 0.25, "best_epoch": 1, "callbacks": {}}
    (root / "state.json").write_text(json.dumps(state))
    return root


def _hashes(root):
    return {
        os.path.relpath(os.path.join(folder, name), root): hashlib.sha256(
            open(os.path.join(folder, name), "rb").read()
        ).hexdigest()
        for folder, _, names in os.walk(root)
        for name in names
    }


def _write(name, text):
    return lambda root: (root / name).write_text(text)


def _replace_best(root):
    os.remove(root / "best.keras")
    (root / "best.keras").write_bytes(os.urandom(4096))


def _flip_checkpoint(root):
    checkpoint = root / "checkpoints" / "epoch-0001.keras"
    _flip_weights_byte(checkpoint, root / "flipped")
    os.remove(checkpoint)
    os.replace(root / "flipped", checkpoint)


RUN_DAMAGE = {
    "config.json a list": (
        _write("config.json", "[1, 2]"),
        "config.json",
        "holds a JSON list, not an object",
    ),
    "config.json another command": (
        _write("config.json", '{"command": "rm -rf"}'),
        "config.json",
        "its `command` is 'rm -rf'",
    ),
    "config.json missing": (
        lambda root: os.remove(root / "config.json"),
        "config.json",
        "is missing, though the folder holds a run's state.json",
    ),
    "state.json a list": (
        _write("state.json", "[1]"),
        "state.json",
        "holds a JSON list, not an object",
    ),
    "state.json epoch a string": (
        _write("state.json", '{"epoch": "one"}'),
        "state.json",
        "`epoch` should be an integer >= 0, not 'one'",
    ),
    "state.json best_epoch beyond": (
        _write("state.json", '{"epoch": 1, "best": 0.2, "best_epoch": 7}'),
        "state.json",
        "`best_epoch` should be null or an integer from 1 to its epoch 1, not 7",
    ),
    "state.json callbacks": (
        _write("state.json", '{"epoch": 1, "callbacks": {"lr": {"model": 1}}}'),
        "state.json",
        "its `callbacks` should map callback names",
    ),
    "state.json not JSON": (_write("state.json", "{"), "state.json", "is not JSON"),
    "log.csv without epoch": (
        _write("log.csv", "accuracy,loss\n0.1,2.0\n"),
        "log.csv",
        "it has no `epoch` column",
    ),
    "log.csv epoch twice": (
        _write("log.csv", "epoch,accuracy\n1,0.5\n1,0.5\n"),
        "log.csv",
        "it holds epoch 1 twice (line 3 again)",
    ),
    "log.csv epoch not a number": (
        _write("log.csv", "epoch,accuracy\nabc,0.5\n"),
        "log.csv",
        "line 2 has the epoch 'abc', not an integer >= 1",
    ),
    "log.csv missing": (
        lambda root: os.remove(root / "log.csv"),
        "log.csv",
        "is missing, though state.json records epoch 1 as completed",
    ),
    "log.csv epoch missing": (
        _write("log.csv", "epoch,accuracy\n"),
        "log.csv",
        "it has no row for epoch 1",
    ),
    "best.keras random bytes": (
        _replace_best,
        "best.keras",
        "is not a .keras archive (a zip file)",
    ),
    "checkpoint bit flip": (
        _flip_checkpoint,
        "epoch-0001.keras",
        "Bad CRC-32 for file 'model.weights.h5'",
    ),
    "checkpoint missing": (
        lambda root: os.remove(root / "checkpoints" / "epoch-0001.keras"),
        "epoch-0001.keras",
        "is missing, though state.json records epoch 1 as completed",
    ),
}


@pytest.mark.parametrize("kind", list(RUN_DAMAGE))
def test_a_damaged_run_folder_stops_a_resume_naming_the_file(
    kind, good_keras, tmp_path, capsys
):
    damage, name, reason = RUN_DAMAGE[kind]
    root = _run_folder(tmp_path / "run", good_keras)
    damage(root)
    before = _hashes(root)
    status = main(["train", str(tmp_path / "data"), "--output", str(root), "--quiet"])
    line = _one_error_line(capsys)
    assert status == 1
    assert name in line and reason in line, line
    assert "Traceback" not in line
    assert _hashes(root) == before  # nothing changed; the lock is gone too


def test_state_and_log_are_read_back_as_written(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    (root / "state.json").write_text(
        '{"epoch": 2, "best": 0.5, "best_epoch": 1, '
        '"callbacks": {"plateau": {"wait": 1, "best": Infinity}}}'
    )
    # Epoch 3's row was written before a process was killed: dropped.
    (root / "log.csv").write_text("epoch,loss,lr\n1,2.5,\n2,1.5,0.1\n3,1.0,0.1\n")
    assert read_state(str(root / "state.json"))["best_epoch"] == 1
    rows = read_log(str(root / "log.csv"), 2)
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert rows[0]["lr"] == ""


@pytest.mark.parametrize(
    "text, problem",
    [
        ('"cat"', "it holds a JSON string, not a list of class names"),
        ('{"cat": 0}', "it holds a JSON object, not a list of class names"),
        ("[]", "it names no class"),
        ('["cat", 3]', "a class name should be a non-empty string, not 3"),
        ('["cat", "cat"]', "it names the class 'cat' twice"),
        ("[", "it is not JSON"),
    ],
)
def test_classes_json_is_a_list_of_distinct_names(text, problem, tmp_path):
    path = tmp_path / "classes.json"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        read_classes(str(path))
    assert str(error.value).startswith(f"{str(path)!r} is damaged: {problem}")


def test_hostile_run_files_are_refused_in_bounded_memory_and_time(tmp_path):
    big = tmp_path / "big.json"
    big.write_text("[" + '"x",' * 6_000_000 + '"x"]')  # 24 MB
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 5_000_000)
    outcomes = run_reader(
        "runs/run_files", "read_classes", [big, nested], memory_mb=200, timeout=60
    )
    for path, outcome, reason in zip(
        (big, nested), outcomes, ("more than a run writes", "is not JSON"), strict=True
    ):
        assert outcome["error"] == "ValueError", outcome
        assert repr(str(path)) in outcome["message"] and reason in outcome["message"]
        assert outcome["seconds"] < 5


def test_an_old_run_folder_without_allow_small_classes_resumes(good_keras, tmp_path):
    root = _run_folder(tmp_path / "run", good_keras)
    # Runs before `allow_small_classes` existed wrote no such key; they meant False.
    (root / "config.json").write_text(json.dumps({"command": "train", "epochs": 1}))
    folder = RunFolder(root)
    state = folder.start(
        {"command": "train", "epochs": 2, "allow_small_classes": False}
    )
    folder.release()
    assert state["epoch"] == 1
    with pytest.raises(ValueError, match=r"allow_small_classes: False then True"):
        folder.start({"command": "train", "epochs": 2, "allow_small_classes": True})
    assert not (root / ".lock").exists()


def test_the_lock_is_released_when_a_run_fails_in_this_process(tmp_path):
    with pytest.raises(ValueError, match="No such folder"):
        train(tmp_path / "no_data", tmp_path / "run", epochs=1, verbose=0)
    assert not (tmp_path / "run" / ".lock").exists()


FORGED = "\x1b[2K\rcat\n  1. dog 1.0000\u202e"


def test_printable_escapes_what_could_forge_or_recolour_a_line():
    assert printable(FORGED) == "\\x1b[2K\\rcat\\n  1. dog 1.0000\\u202e"
    assert printable("chat noir, 猫, café") == "chat noir, 猫, café"


def test_class_names_and_errors_reach_the_terminal_escaped(
    good_keras, tmp_path, capsys
):
    root = tmp_path / "run"
    root.mkdir()
    shutil.copyfile(good_keras, root / "best.keras")
    (root / "classes.json").write_text(json.dumps([FORGED, "dog", "eel"]))
    assert main(["classify", "--weights", str(root / "best.keras"), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert printable(FORGED) in out
    # The header, then per image its path and its three classes: no more lines.
    lines = out.splitlines()[1:]
    assert len(lines) % 4 == 0
    ranks = [line.split(".")[0] for i, line in enumerate(lines) if i % 4]
    assert ranks == ["  1", "  2", "  3"] * (len(lines) // 4)
    # An error whose message carries such text: one escaped line.
    (root / "classes.json").write_text(json.dumps([FORGED, FORGED, "eel"]))
    assert main(["classify", "--weights", str(root / "best.keras")]) == 1
    line = _one_error_line(capsys)
    assert "\x1b" not in line and printable(FORGED) in line


def test_a_resume_on_data_with_other_classes_is_refused(good_keras, tmp_path):
    from keras_alexnet.resources import write_digits_folder

    data, output = tmp_path / "data", tmp_path / "run"
    options = {"recipe": "paper", "image_size": 67, "batch_size": 10, "verbose": 0}
    # The run's own config.json, written before DATA was found missing.
    with pytest.raises(ValueError, match="No such folder"):
        train(data, output, epochs=1, **options)
    config = (output / "config.json").read_text()
    shutil.rmtree(output)
    _run_folder(output, good_keras)  # classes.json names 3 classes
    (output / "config.json").write_text(config)
    write_digits_folder(data, image_size=16, per_class=4)  # 10 classes
    before = _hashes(output)
    with pytest.raises(ValueError, match=r"are not those of the run being resumed"):
        train(data, output, epochs=2, **options)
    # Only config.json changed, to the longer run asked for (`epochs` resumes).
    after = _hashes(output)
    assert {k: v for k, v in after.items() if k != "config.json"} == {
        k: v for k, v in before.items() if k != "config.json"
    }
    assert json.loads((output / "config.json").read_text())["epochs"] == 2


def test_a_class_names_file_is_text_of_a_sane_size(tmp_path):
    from keras_alexnet.runs.trained_models import read_class_names

    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt' is not UTF-8 text"):
        read_class_names(latin1)
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(17 << 20)  # sparse: no time spent writing
    with pytest.raises(ValueError, match=r"big.txt' has 17,825,792 bytes"):
        read_class_names(big)
