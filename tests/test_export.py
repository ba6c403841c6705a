"""Tests of `keras_alexnet.export`: each format, run by its own runtime, gives
Keras' logits on the same images.

The references are independent of the exporter: TensorFlow's SavedModel loader,
onnxruntime and the LiteRT interpreter run the exported files, and Keras runs the
model. The models are AlexNet's real convolutional stack (LRN, grouped
convolution, the preprocessing layer; the torchvision variant with adaptive
pooling) at a small input size, with a small head, to keep the files and the
conversions cheap.
"""

from __future__ import annotations

import os
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_alexnet import (
    AdaptiveAveragePooling2D,
    AlexNet,
    GroupedConv2D,
    LocalResponseNormalization,
    cli,
    export,
)
from keras_alexnet.export import FORMATS, check_destination, export_model
from keras_alexnet.resources import sample_images
from tests.read_only import make_read_only

BACKEND = keras.backend.backend()
tf_only = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="export runs under the TensorFlow backend"
)
IMAGE_SIZE = 67  # the smallest input of the original variant
RTOL = 1e-4


def photos(size: int = IMAGE_SIZE) -> np.ndarray:
    """The sample photos, resized by PIL: float32 RGB in [0, 255]."""
    images = []
    for path in sample_images():
        with Image.open(path) as image:
            resized = image.convert("RGB").resize((size, size), Image.BILINEAR)
            images.append(np.asarray(resized, np.float32))
    return np.stack(images)


def original_model() -> keras.Model:
    """The paper's stack (LRN, two groups) taking raw pixels, with 4 logits."""
    keras.utils.set_random_seed(1)
    base = AlexNet(
        weights=None,
        include_top=False,
        include_preprocessing=True,
        input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
        pooling="avg",
    )
    logits = keras.layers.Dense(4, name="logits")(base.output)
    return keras.Model(base.input, logits)


def torchvision_model() -> keras.Model:
    """torchvision's stack with the adaptive pooling of its top, 4 logits."""
    keras.utils.set_random_seed(2)
    base = AlexNet(
        weights=None,
        variant="torchvision",
        include_top=False,
        input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
    )
    x = AdaptiveAveragePooling2D(2, name="avgpool")(base.output)
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(4, name="logits")(x)
    return keras.Model(base.input, logits)


def assert_logits_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Each image's largest logit error within RTOL of its largest logit."""
    assert actual.shape == expected.shape
    scale = np.max(np.abs(expected), axis=1)
    error = np.max(np.abs(actual - expected), axis=1)
    assert np.all(scale > 1e-3), scale  # the images give non-trivial logits
    np.testing.assert_array_less(error, RTOL * scale)


def run_saved_model(path: str, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    serving = loaded.signatures["serving_default"]
    _, inputs = serving.structured_input_signature
    (name,) = inputs
    assert inputs[name].dtype == tf.float32
    assert inputs[name].shape.as_list() == [None, *images.shape[1:]]
    (output,) = serving(**{name: tf.constant(images)}).values()
    return output.numpy()


def run_onnx(path: str, images: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (feed,) = session.get_inputs()
    return session.run(None, {feed.name: images})[0]


def run_tflite(path: str, images: np.ndarray) -> np.ndarray:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # TensorFlow's copy of the same interpreter
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=path)
    (feed,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(feed["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(feed["index"], images)
    interpreter.invoke()
    (fetch,) = interpreter.get_output_details()
    return interpreter.get_tensor(fetch["index"])


RUNTIMES = {"saved_model": run_saved_model, "onnx": run_onnx, "tflite": run_tflite}


def onnx_operators(path: str) -> list[tuple[str, dict, list[np.ndarray]]]:
    """Each node of an ONNX file: its operator, attributes and constant inputs."""
    import onnx

    graph = onnx.load(path).graph
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    return [
        (
            node.op_type,
            {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute},
            [constants[name] for name in node.input if name in constants],
        )
        for node in graph.node
    ]


def tflite_operators(path: str) -> list[str]:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return [op["op_name"] for op in Interpreter(model_path=path)._get_ops_details()]


def assert_native_operators(format: str, path: str, model: keras.Model) -> None:
    """The paper's LRN and grouped convolutions are each the runtime's one op."""
    lrn = [x for x in model.layers if isinstance(x, LocalResponseNormalization)]
    if format == "onnx":
        nodes = onnx_operators(path)
        convs = [(attrs, weights) for kind, attrs, weights in nodes if kind == "Conv"]
        grouped = [attrs.get("group", 1) for attrs, _ in convs]
        grouped = [groups for groups in grouped if groups > 1]
        assert grouped == ([2, 2, 2] if lrn else [])  # conv2, conv4 and conv5
        # onnxruntime's LRN kernel is slow: each LRN is a 1x1 convolution by
        # the band of the paper's formula (|i - c| <= size // 2) times alpha.
        assert not any(kind == "LRN" for kind, _, _ in nodes)
        pointwise = [w for attrs, w in convs if attrs["kernel_shape"] == [1, 1]]
        assert len(convs) == 5 + len(lrn) and len(pointwise) == len(lrn)
        for (band, bias), layer in zip(pointwise, lrn, strict=True):
            channels = band.shape[0]
            index = np.arange(channels)
            near = np.abs(index[:, None] - index[None, :]) <= layer.size // 2
            expected = (near * layer.alpha).reshape(channels, channels, 1, 1)
            np.testing.assert_allclose(band, expected, rtol=1e-6)
            np.testing.assert_allclose(bias, np.full(channels, layer.bias))
    elif format == "tflite":
        # LiteRT's XNNPACK delegate does not take its LRN op: each LRN is a
        # SQUARE, a 1x1 CONV_2D by the band and square roots, all delegated.
        kinds = tflite_operators(path)
        assert kinds.count("CONV_2D") == 5 + len(lrn)
        assert kinds.count("SQUARE") == len(lrn)
        assert kinds.count("LOCAL_RESPONSE_NORMALIZATION") == 0


DEST_NAMES = {"saved_model": "served", "onnx": "model.onnx", "tflite": "model.tflite"}


@tf_only
@pytest.mark.parametrize("beta", [0.75, 0.5, 0.6])
def test_tflite_lrn_equals_litert_own_lrn_kernel(beta, tmp_path):
    # The reference is LiteRT's LOCAL_RESPONSE_NORMALIZATION kernel, converted
    # from TensorFlow's op by TensorFlow's converter, on conv1-sized values.
    import tensorflow as tf

    constants = {"bias": 1.0, "alpha": 2e-5, "beta": beta}
    inputs = keras.Input((6, 6, 96))
    layer = LocalResponseNormalization(5, **constants)
    model = keras.Model(inputs, layer(inputs))
    path = export_model(model, str(tmp_path / "lrn.tflite"), format="tflite")
    kernel = tf.function(
        lambda x: tf.nn.local_response_normalization(x, 2, **constants),
        input_signature=[tf.TensorSpec((None, 6, 6, 96), tf.float32)],
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [kernel.get_concrete_function()], kernel
    )
    reference_path = tmp_path / "reference.tflite"
    reference_path.write_bytes(converter.convert())
    assert tflite_operators(str(reference_path)) == ["LOCAL_RESPONSE_NORMALIZATION"]
    assert "LOCAL_RESPONSE_NORMALIZATION" not in tflite_operators(path)
    x = np.random.default_rng(0).uniform(-300, 300, (2, 6, 6, 96)).astype("float32")
    expected = run_tflite(str(reference_path), x)
    np.testing.assert_allclose(run_tflite(path, x), expected, rtol=1e-5, atol=1e-6)


@tf_only
@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("build", [original_model, torchvision_model])
def test_exported_model_gives_keras_logits(build, format, tmp_path):
    model = build()  # never called: export_model runs it once itself
    dest = str(tmp_path / DEST_NAMES[format])
    assert export_model(model, dest, format=format) == dest
    images = photos()
    expected = keras.ops.convert_to_numpy(model.predict_on_batch(images))
    assert_logits_close(RUNTIMES[format](dest, images), expected)
    assert_native_operators(format, dest, model)
    # The model's layers are as before (TensorFlow's CPU kernels cannot run one
    # grouped convolution: predict_on_batch above would fail).
    grouped = [x for x in model.layers if isinstance(x, GroupedConv2D)]
    assert not any("convolution_op" in vars(layer) for layer in grouped)
    # Only dest was written: the temporary files are gone.
    assert os.listdir(tmp_path) == [DEST_NAMES[format]]


@tf_only
def test_cli_exports_a_keras_file_to_onnx(tmp_path, capsys):
    model = original_model()
    images = photos()
    expected = keras.ops.convert_to_numpy(model.predict_on_batch(images))
    source, dest = str(tmp_path / "tiny.keras"), str(tmp_path / "tiny.onnx")
    model.save(source)
    status = cli.main(["export", source, dest])  # the format from the extension
    out, err = capsys.readouterr()
    assert status == 0, err
    assert out.strip() == f"Saved {dest} (onnx)"
    assert_logits_close(run_onnx(dest, images), expected)


@tf_only
def test_cli_refuses_an_existing_dest_in_one_line(tmp_path, capsys):
    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"keep me")
    status = cli.main(["export", "imagenet", str(dest), "--format", "onnx"])
    _, err = capsys.readouterr()
    assert status == 1
    assert err.count("\n") == 1 and "already exists" in err and "overwrite" in err
    assert dest.read_bytes() == b"keep me"


def test_cli_refuses_a_missing_model_and_a_bad_format(tmp_path, capsys):
    missing = str(tmp_path / "nothing.weights.h5")
    assert cli.main(["export", missing, str(tmp_path / "m.onnx")]) == 1
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "nothing.weights.h5" in err
    assert cli.main(["export", "imagenet", "x.onnx", "--format", "pb"]) == 2
    _, err = capsys.readouterr()
    assert "invalid choice: 'pb'" in err
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"format": "pb"}, ValueError, "Received: format='pb'"),
        ({"format": "onnx", "dest": "model.tflite"}, ValueError, "end in .onnx"),
        ({"format": "tflite", "dest": "model.onnx"}, ValueError, "end in .tflite"),
        ({"dest": "model.onnx"}, ValueError, "should be a directory"),
        ({"dest": 3}, TypeError, "Received: dest=3"),
        ({"dest": "missing/served"}, ValueError, "folder of `dest` does not exist"),
        ({"model_or_path": 3}, TypeError, "Received: model_or_path=3"),
        ({"model_or_path": "model.weights.h5"}, ValueError, "holds no architecture"),
        ({"model_or_path": "missing.keras"}, ValueError, "names a file that does not"),
    ],
)
@tf_only
def test_bad_arguments_are_refused_before_any_work(kwargs, error, message, tmp_path):
    arguments = {"model_or_path": None, "dest": "served", "format": "saved_model"}
    arguments.update(kwargs)
    if arguments["model_or_path"] is None:
        arguments["model_or_path"] = keras.Sequential([keras.layers.Dense(1)])
    if isinstance(arguments["dest"], str):
        arguments["dest"] = str(tmp_path / arguments["dest"])
    with pytest.raises(error, match=message):
        export_model(**arguments)
    assert not os.listdir(tmp_path)


@tf_only
def test_existing_dest_is_kept_unless_overwrite(tmp_path):
    dest = tmp_path / "model.tflite"
    dest.write_bytes(b"old")
    model = original_model()
    with pytest.raises(ValueError, match="already exists"):
        export_model(model, dest, format="tflite")
    assert dest.read_bytes() == b"old"
    export_model(model, dest, format="tflite", overwrite=True)
    assert dest.read_bytes()[4:8] == b"TFL3"  # the flatbuffer's file identifier


@tf_only
def test_missing_onnx_converter_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"keras-alexnet\[export\]"):
        export_model(original_model(), tmp_path / "m.onnx", format="onnx")
    assert not os.listdir(tmp_path)


@tf_only
def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    model = original_model()

    def broken_export(filepath, **kwargs):
        with open(filepath, "wb") as file:
            file.write(b"half")
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(model, "export", broken_export)
    with pytest.raises(RuntimeError, match="converter crashed"):
        export_model(model, tmp_path / "m.tflite", format="tflite")
    assert not os.listdir(tmp_path)


@pytest.mark.backend
def test_other_backends_are_refused_with_the_setting_to_use(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    if BACKEND == "tensorflow":
        export_model(model, tmp_path / "served")
        assert (tmp_path / "served" / "saved_model.pb").is_file()
    else:
        with pytest.raises(ValueError, match="KERAS_BACKEND=tensorflow"):
            export_model(model, tmp_path / "served")
        assert not os.listdir(tmp_path)


# -- DEST, temporary folders and the probe (issue 20) ---------------------------


def _snapshot(folder):
    """Every path under `folder` with its bytes (files) or link target (links)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                found[path] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                with open(path, "rb") as file:
                    found[path] = ("file", file.read())
            else:
                found[path] = ("folder", None)
    return found


def _make_destination(tmp_path, case):
    """Builds the DEST of `case` in tmp_path; returns (dest, format)."""
    if case == "folder_for_a_file":
        (tmp_path / "m.tflite").mkdir()
        (tmp_path / "m.tflite" / "mine.txt").write_text("mine")
        return tmp_path / "m.tflite", "tflite"
    if case == "folder_of_other_things":
        (tmp_path / "photos").mkdir()
        (tmp_path / "photos" / "cat.jpg").write_bytes(b"precious")
        return tmp_path / "photos", "saved_model"
    if case.startswith("link_to_folder"):
        (tmp_path / "real").mkdir()
        (tmp_path / "real" / "saved_model.pb").write_bytes(b"an old export")
        (tmp_path / "served").symlink_to(tmp_path / "real")
        # "served/" resolves the link: the check must still see it.
        slash = os.sep if case.endswith("slash") else ""
        return str(tmp_path / "served") + slash, "saved_model"
    if case == "link_to_file":
        (tmp_path / "v1.onnx").write_bytes(b"v1")
        (tmp_path / "m.onnx").symlink_to(tmp_path / "v1.onnx")
        return tmp_path / "m.onnx", "onnx"
    assert case == "dangling_link"
    (tmp_path / "m.onnx").symlink_to(tmp_path / "nowhere.onnx")
    return tmp_path / "m.onnx", "onnx"


_DESTINATION_CASES = {
    "folder_for_a_file": "is a folder, and this format writes a file",
    "folder_of_other_things": "holds no SavedModel",
    "link_to_folder": "is a symbolic link",
    "link_to_folder_with_slash": "is a symbolic link",
    "link_to_file": "is a symbolic link",
    "dangling_link": "is a symbolic link",
}


@pytest.mark.parametrize("case", _DESTINATION_CASES)
def test_a_destination_overwrite_must_not_replace_is_refused_first(
    case, tmp_path, capsys
):
    dest, format = _make_destination(tmp_path, case)
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match=_DESTINATION_CASES[case]) as info:
        check_destination(dest, format, overwrite=True)
    assert str(dest) in str(info.value)
    # The command line: checked before building the model, one line, in flags.
    status = cli.main(["export", "imagenet", str(dest), "--overwrite"])
    _, err = capsys.readouterr()
    assert status == 1 and err.count("\n") == 1, err
    assert _DESTINATION_CASES[case] in err and str(dest) in err
    assert "overwrite=" not in err and "`dest`" not in err
    assert _snapshot(tmp_path) == before


def test_a_read_only_folder_is_refused_before_converting(tmp_path, monkeypatch):
    folder = tmp_path / "read_only"
    folder.mkdir()
    undo = make_read_only(folder, monkeypatch)
    try:
        with pytest.raises(ValueError, match="cannot be written") as info:
            check_destination(folder / "m.tflite", "tflite")
    finally:
        undo()
    assert str(folder / "m.tflite") in str(info.value)
    assert ".tmp-export" not in str(info.value)
    assert os.listdir(folder) == []


def test_a_bytes_destination_is_a_type_error(tmp_path):
    class BytesPath:
        def __fspath__(self):
            return os.fsencode(tmp_path / "m.onnx")

    with pytest.raises(TypeError, match="not bytes. Received: dest=b'"):
        check_destination(BytesPath(), "onnx")


@tf_only
def test_a_failed_write_names_dest_not_the_temporary_folder(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 1)])

    def full_disk(filepath, **kwargs):
        raise OSError(28, "No space left on device", filepath)

    monkeypatch.setattr(model, "export", full_disk)
    dest = tmp_path / "m.tflite"
    with pytest.raises(OSError, match="No space left") as info:
        export_model(model, dest, format="tflite")
    assert str(dest) in str(info.value) and ".tmp-export" not in str(info.value)
    assert os.listdir(tmp_path) == []


def _temporary_folder(tmp_path, name, *, alive):
    """A temporary folder as an export makes it; `alive=False` as a killed one."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "m.onnx").write_bytes(b"half")
    owner = export._claim(str(folder))
    if not alive:
        os.close(owner)  # the lock goes as it does when the process dies
        return folder, None
    return folder, owner


@tf_only
def test_killed_exports_are_removed_and_running_or_foreign_ones_kept(
    tmp_path, monkeypatch
):
    dead, _ = _temporary_folder(tmp_path, ".tmp-export-dead", alive=False)
    live, owner = _temporary_folder(tmp_path, ".tmp-export-live", alive=True)
    # Named like ours, without our owner file (or with a link in its place).
    foreign = tmp_path / ".tmp-export-foreign"
    foreign.mkdir()
    (foreign / "theirs.txt").write_text("theirs")
    linked = tmp_path / ".tmp-export-linked"
    linked.mkdir()
    (linked / export._OWNER_FILE).symlink_to(tmp_path / "elsewhere")
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 1)])

    def write(filepath, **kwargs):
        with open(filepath, "wb") as file:
            file.write(b"exported")

    monkeypatch.setattr(model, "export", write)
    try:
        export_model(model, tmp_path / "m.onnx", format="onnx")
    finally:
        os.close(owner)
    assert not dead.exists()
    assert sorted(os.listdir(tmp_path)) == sorted(
        [live.name, foreign.name, linked.name, "m.onnx"]
    )
    assert (foreign / "theirs.txt").read_text() == "theirs"
    assert (live / "m.onnx").read_bytes() == b"half"


@tf_only
def test_a_probe_that_cannot_fit_in_memory_is_refused_before_running(
    tmp_path, monkeypatch
):
    # 163840 x 163840 RGB float32 pixels: 300 GiB for one image.
    model = keras.Sequential(
        [keras.Input((163840, 163840, 3)), keras.layers.Conv2D(1, 1)]
    )

    def refuse(*args, **kwargs):
        raise AssertionError("the probe was allocated")

    monkeypatch.setattr(export.np, "zeros", refuse)
    with pytest.raises(ValueError, match=r"GiB of memory to run on one image") as info:
        export_model(model, tmp_path / "m.tflite", format="tflite")
    assert "(None, 163840, 163840, 3)" in str(info.value)
    assert os.listdir(tmp_path) == []
