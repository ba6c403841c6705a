"""Export an AlexNet (or any Keras model) for serving: SavedModel, ONNX or TFLite.

`export_model` wraps Keras' `Model.export`: it runs the model once (Keras' ONNX
export refuses a model never called), checks the destination before the slow
conversion, names the pip extra of a missing converter, and writes the output
atomically. It runs under the TensorFlow backend; the exported files need
neither Keras nor a backend. docs/export.md says what runs each format, and
what is left behind by an export that was killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import types
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np

from keras_alexnet._choices import EXPORT_FORMATS as FORMATS
from keras_alexnet._choices import EXPORT_SUFFIXES

# Keras' names for the formats.
_KERAS_FORMATS = {"saved_model": "tf_saved_model", "onnx": "onnx", "tflite": "litert"}
# An undefined height or width is given this size for the one run before export;
# 227 suits both variants, with or without the top.
_PROBE_SIZE = 227
_EXTRA_HINT = 'pip install "keras-alexnet[export]"'
# The temporary folder of an export, beside its destination, and the file in it
# that says it is ours: locked (flock) by the export for as long as it runs, so
# a later export removes only the folders of exports that died.
_TEMPORARY_PREFIX = ".tmp-export-"
_OWNER_FILE = ".keras-alexnet-export"

__all__ = ["FORMATS", "check_destination", "export_model"]


def export_model(
    model_or_path: keras.Model | str | os.PathLike[str],
    dest: str | os.PathLike[str],
    format: str = "saved_model",
    *,
    overwrite: bool = False,
    verbose: bool = False,
) -> str:
    """Exports a Keras model for serving, after running it once.

    Args:
        model_or_path: a `keras.Model` (for example `AlexNet(...)`) or the path
            of a `.keras` file saved by Keras.
        dest: where to write: a directory for `"saved_model"`, a file ending in
            `.onnx` or `.tflite` for the other formats.
        format: `"saved_model"`, `"onnx"` or `"tflite"`.
        overwrite: whether to replace an existing `dest`; if `False` an existing
            `dest` is an error, checked before anything is converted.
        verbose: whether Keras prints what it exports.

    Returns:
        The path written, `dest` as a string.

    Raises:
        ValueError: a bad `format`, a `dest` with the wrong extension, that
            exists or whose folder does not exist, a backend other than
            TensorFlow.
        TypeError: `model_or_path` is neither a model nor a path.
        ImportError: the converter for `format` is not installed (the message
            names the pip extra).

    Example:

    ```python
    from keras_alexnet import AlexNet
    from keras_alexnet.export import export_model

    model = AlexNet(weights="imagenet", include_preprocessing=True)
    export_model(model, "alexnet.onnx", format="onnx")
    ```
    """
    dest = check_destination(dest, format, overwrite=overwrite)
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "Export runs under the TensorFlow backend (set KERAS_BACKEND=tensorflow "
            "before importing Keras); the exported model runs without it. "
            f"Received: backend {keras.backend.backend()!r}"
        )
    _check_converter(format)
    model = _load(model_or_path)
    _run_once(model)

    def write(tmp: str) -> None:
        model.export(tmp, format=_KERAS_FORMATS[format], verbose=verbose)
        if format == "onnx" and _has_lrn(model):
            _lrn_as_convolution(tmp)

    with _converter_form(model, format):
        _write_atomically(dest, write, is_directory=format == "saved_model")
    return dest


def check_destination(
    dest: str | os.PathLike[str], format: str, *, overwrite: bool = False
) -> str:
    """Checks `format` and `dest` as `export_model` does, before any slow work.

    Args:
        dest: the directory (`"saved_model"`) or file (`.onnx`, `.tflite`) to write.
        format: `"saved_model"`, `"onnx"` or `"tflite"`.
        overwrite: whether an existing `dest` may be replaced.

    Returns:
        `dest` as a string.

    Raises:
        ValueError: a bad format or extension; a `dest` that exists (unless
            `overwrite`), is a symbolic link, is a folder where a file is
            written, or is a folder holding something other than a SavedModel;
            a `dest` whose folder does not exist or cannot be written.
        TypeError: `dest` is not a path.
    """
    if format not in FORMATS:
        raise ValueError(f"`format` should be one of {FORMATS}. Received: {format=}")
    if isinstance(dest, bool) or not isinstance(dest, (str, os.PathLike)):
        raise TypeError(f"`dest` should be a path. Received: dest={dest!r}")
    dest = os.fspath(dest)
    if not isinstance(dest, str):
        raise TypeError(
            f"`dest` should be a path given as text, not bytes. Received: dest={dest!r}"
        )
    suffix = EXPORT_SUFFIXES.get(format)
    if suffix is not None and not dest.lower().endswith(suffix):
        raise ValueError(
            f"`dest` should end in {suffix} for format={format!r}. Received: {dest=}"
        )
    if suffix is None and dest.lower().endswith((".onnx", ".tflite", ".keras")):
        raise ValueError(
            "`dest` should be a directory for format='saved_model'; use "
            f"format='onnx' or 'tflite' for a single file. Received: {dest=}"
        )
    folder = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(folder):
        # As `keras-alexnet convert`: a typo in a folder name is not a request
        # to create it.
        raise ValueError(
            f"The folder of `dest` does not exist: {folder!r}. Received: {dest=}"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(
            f"The folder of `dest` cannot be written (read-only, or not yours): "
            f"{folder!r}. Received: {dest=}"
        )
    # "served/" names the link "served" too, not the folder it points to.
    plain = os.path.normpath(dest)
    if os.path.islink(plain):
        # Replacing the link would drop it; writing through it would change a
        # file elsewhere. Neither is what a path to export to asks for.
        raise ValueError(
            f"`dest` is a symbolic link (to {os.readlink(plain)!r}); give the path "
            f"to write, not a link. Received: {dest=}"
        )
    if os.path.lexists(plain):
        if not overwrite:
            raise ValueError(
                f"`dest` already exists; remove it or pass overwrite=True. "
                f"Received: {dest=}"
            )
        _check_replaceable(dest, is_directory=suffix is None)
    return dest


def _check_replaceable(dest: str, *, is_directory: bool) -> None:
    """Refuses an existing `dest` that overwriting would wrongly replace."""
    if not os.path.isdir(dest):
        return  # a file: replacing it is what overwrite asks for
    if not is_directory:
        raise ValueError(
            "`dest` is a folder, and this format writes a file; `overwrite` "
            f"replaces only a file. Received: {dest=}"
        )
    entries = os.listdir(dest)
    if entries and "saved_model.pb" not in entries:
        # A folder of other things (photos, a project) is never deleted to
        # make room for a SavedModel.
        raise ValueError(
            "`dest` is a folder that holds no SavedModel (no saved_model.pb); "
            "`overwrite` replaces only an empty folder or a SavedModel. Received: "
            f"{dest=}"
        )


def _check_converter(format: str) -> None:
    if format != "onnx":
        return  # SavedModel and TFLite are written by TensorFlow itself.
    for module in ("onnx", "tf2onnx"):
        try:
            __import__(module)
        except ImportError as error:
            raise ImportError(
                f"Exporting to ONNX needs the `{module}` package: {_EXTRA_HINT}"
            ) from error


def _load(model_or_path: Any) -> keras.Model:
    if isinstance(model_or_path, keras.Model):
        return model_or_path
    if isinstance(model_or_path, bool) or not isinstance(
        model_or_path, (str, os.PathLike)
    ):
        raise TypeError(
            "`model_or_path` should be a keras.Model or the path of a .keras file. "
            f"Received: model_or_path={model_or_path!r}"
        )
    path = os.fspath(model_or_path)
    if not path.lower().endswith(".keras"):
        raise ValueError(
            "`model_or_path` should be a keras.Model or the path of a .keras file "
            "(a .weights.h5 file holds no architecture: build the model with "
            f"AlexNet(weights=...) and pass it). Received: {path!r}"
        )
    from keras_alexnet.weights.keras_file import load_keras_file

    return load_keras_file(path, argument="model_or_path", compile=False)


def _run_once(model: keras.Model) -> None:
    """Calls the model on zeros, so that every layer is built and traced."""
    _check_probe_memory(model)
    inputs = []
    for shape, dtype in zip(_input_shapes(model), _input_dtypes(model), strict=True):
        inputs.append(np.zeros(_probe_shape(shape), dtype=dtype or "float32"))
    model(inputs[0] if len(inputs) == 1 else inputs, training=False)


def _probe_shape(shape: tuple[int | None, ...]) -> list[int]:
    """One image of `shape`: batch 1, an undefined size `_PROBE_SIZE`."""
    return [1] + [_PROBE_SIZE if size is None else int(size) for size in shape[1:]]


def _check_probe_memory(model: keras.Model) -> None:
    """Refuses a model whose one-image run needs more memory than is available.

    An input of 160000x160000 pixels asks for 300 GiB per image; NumPy or
    TensorFlow would fail deep inside with a bare MemoryError (or the system
    would swap). The estimate is twice the largest tensor, a layer's input and
    output, from the symbolic shapes; nothing is allocated to compute it.
    """
    largest, largest_shape = 0, None
    tensors = list(model.inputs)
    for layer in model.layers:
        try:
            tensors.extend(keras.tree.flatten(layer.output))
        except (AttributeError, ValueError):
            # A layer used twice has no single output; the layers around it
            # show its tensors.
            continue
    for tensor in tensors:
        shape = getattr(tensor, "shape", None)
        if shape is None or len(shape) == 0:
            continue
        nbytes = _itemsize(getattr(tensor, "dtype", None))
        for size in _probe_shape(tuple(shape)):
            nbytes *= size
        if nbytes > largest:
            largest, largest_shape = nbytes, tuple(shape)
    available = _available_memory()
    if available is not None and 2 * largest > available:
        input_shapes = [tuple(shape) for shape in _input_shapes(model)]
        raise ValueError(
            f"The model needs about {2 * largest / 2**30:.1f} GiB of memory to run "
            f"on one image (a tensor of shape {largest_shape} holds "
            f"{largest / 2**30:.1f} GiB), more than the {available / 2**30:.1f} "
            "GiB available; export runs the model once. Build it with a smaller "
            f"input shape. Received: input shape "
            f"{input_shapes[0] if len(input_shapes) == 1 else input_shapes}"
        )


def _itemsize(dtype: Any) -> int:
    try:
        return np.dtype(dtype or "float32").itemsize
    except TypeError:
        return 4  # a dtype NumPy lacks (bfloat16 is 2): an upper bound


def _available_memory() -> int | None:
    """The bytes of memory free for this process, `None` where unknown.

    Linux' MemAvailable (else the RAM), and at most a container's limit
    (cgroup v2 `memory.max`), which MemAvailable does not show.
    """
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, OSError, ValueError):
            return None
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as limit:
            text = limit.read().strip()
        if text.isdigit():
            available = min(available, int(text))
    except OSError:
        pass
    return available


def _input_shapes(model: keras.Model) -> list[tuple[int | None, ...]]:
    return [tuple(tensor.shape) for tensor in model.inputs]


def _input_dtypes(model: keras.Model) -> list[str | None]:
    return [getattr(tensor, "dtype", None) for tensor in model.inputs]


def _write_atomically(
    dest: str, write: Callable[[str], None], *, is_directory: bool
) -> None:
    """Writes through a temporary folder beside `dest`, then renames it to `dest`.

    Errors name `dest`, never the temporary folder. The folders of killed
    exports (`kill -9` leaves them) are removed first.
    """
    directory = os.path.dirname(os.path.abspath(dest))
    _remove_dead_exports(directory)
    try:
        # A fresh temporary directory beside dest: the final rename stays on one
        # file system, and a failed export leaves nothing at dest.
        workdir = tempfile.mkdtemp(prefix=_TEMPORARY_PREFIX, dir=directory)
    except OSError as error:
        raise OSError(f"Cannot write {dest!r}: {error.strerror or error}") from None
    owner = _claim(workdir)
    target = os.path.normpath(dest)  # "served/" is "served", link or not
    try:
        tmp = os.path.join(workdir, os.path.basename(target) or "model")
        try:
            write(tmp)
            if is_directory and os.path.lexists(target):
                # A directory cannot be swapped in one rename: the old one goes
                # first (check_destination allowed only a SavedModel or an
                # empty folder).
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                else:
                    os.remove(target)
            os.replace(tmp, target)
        except OSError as error:
            # A full disk or a folder made read-only meanwhile: the message
            # would name the temporary folder, which is gone by now.
            if workdir not in str(error):
                raise
            raise OSError(f"Cannot write {dest!r}: {error.strerror or error}") from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if owner is not None:
            os.close(owner)  # after the removal: the folder is never seen unowned


def _claim(workdir: str) -> int | None:
    """Marks `workdir` as a running export's; returns the locked file's descriptor.

    The lock is taken before the file gets its name, so no other process sees
    the marker unlocked while this one lives; the system drops the lock when
    the process dies, even by `kill -9`.
    """
    try:
        import fcntl
    except ImportError:
        return None  # no flock (Windows): the folder is never called dead
    claiming = os.path.join(workdir, ".claiming")
    descriptor = os.open(claiming, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        os.write(descriptor, f"keras-alexnet export, process {os.getpid()}\n".encode())
        os.rename(claiming, os.path.join(workdir, _OWNER_FILE))
    except OSError:
        os.close(descriptor)
        return None
    return descriptor


def _remove_dead_exports(directory: str) -> None:
    """Removes the temporary folders of exports that died in `directory`.

    Only a folder named like ours, holding our owner file that no live process
    locks, is removed: an export still running (here or in another process)
    holds the lock, and a folder without the file is not provably ours.
    """
    try:
        import fcntl
    except ImportError:
        return
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(_TEMPORARY_PREFIX):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            descriptor = os.open(
                os.path.join(entry.path, _OWNER_FILE),
                os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0),
            )
        except OSError:
            continue  # no owner file: not ours, or an export setting up
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                continue
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # locked: its export is running
        else:
            shutil.rmtree(entry.path, ignore_errors=True)
        finally:
            os.close(descriptor)


@contextlib.contextmanager
def _converter_form(model: keras.Model, format: str) -> Iterator[None]:
    """Traces AlexNet's layers as operators that the converters map natively.

    For ONNX and TFLite, each `GroupedConv2D` traces one grouped TensorFlow
    convolution (ONNX `Conv` with `group=2`) instead of its split form (Split,
    two Conv and Concat, with layout transposes between). Each
    `LocalResponseNormalization` traces, for TFLite, a 1x1 convolution and
    square roots (`_lrn_by_1x1_convolution`), all ops of LiteRT's XNNPACK
    delegate; for ONNX, TensorFlow's own kernel whatever the device (ONNX
    `LRN`, which `_lrn_as_convolution` then rewrites). The SavedModel keeps
    the forms TensorFlow runs fastest. The layers are restored afterwards.
    """
    from keras_alexnet.layers import GroupedConv2D, LocalResponseNormalization

    # (layer, attribute, value to restore; None: delete the instance's own).
    patched: list[tuple[Any, str, Any]] = []
    if format != "saved_model":
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, GroupedConv2D) and layer.groups > 1:
                patched.append((layer, "convolution_op", None))
                one_conv = types.MethodType(_one_grouped_conv, layer)
                layer.convolution_op = one_conv  # type: ignore[method-assign]
            elif isinstance(layer, LocalResponseNormalization) and format == "tflite":
                # LiteRT's XNNPACK delegate does not take its LRN op: the
                # paper's network would run in five partitions around it.
                patched.append((layer, "call", None))
                lrn_by_conv = types.MethodType(_lrn_by_1x1_convolution, layer)
                layer.call = lrn_by_conv  # type: ignore[method-assign]
            elif (
                isinstance(layer, LocalResponseNormalization)
                and layer.implementation == "auto"
            ):
                # On a GPU the layer would trace its sum of shifted slices:
                # 4-D inference takes TensorFlow's kernel instead.
                other_rank, rank4 = layer._auto_ways
                patched.append((layer, "_auto_ways", layer._auto_ways))
                layer._auto_ways = (other_rank, ("native", rank4[1]))
    try:
        yield
    finally:
        for layer, name, value in patched:
            if value is None:
                delattr(layer, name)
            else:
                setattr(layer, name, value)


def _has_lrn(model: keras.Model) -> bool:
    from keras_alexnet.layers import LocalResponseNormalization

    return any(
        isinstance(layer, LocalResponseNormalization)
        for layer in model._flatten_layers(include_self=False, recursive=True)
    )


def _one_grouped_conv(layer: Any, inputs: Any, kernel: Any) -> Any:
    """A grouped convolution as one TensorFlow op, for the converters only.

    TensorFlow's CPU kernels cannot run it (Keras compiles it with XLA, which
    the converters cannot read), but tf2onnx maps it to `Conv(group=...)`.
    """
    import tensorflow as tf

    return tf.nn.conv2d(
        inputs,
        kernel,
        strides=list(layer.strides),
        padding=layer.padding.upper(),
        dilations=list(layer.dilation_rate),
        data_format="NHWC" if layer.data_format == "channels_last" else "NCHW",
    )


def _lrn_by_1x1_convolution(layer: Any, inputs: Any, training: Any = None) -> Any:
    """LRN as `SQUARE`, a 1x1 `CONV_2D` and square roots, for the TFLite converter.

    The same function as the ONNX rewrite (`_lrn_as_convolution`): the window
    sum times `alpha` is a 1x1 convolution by the banded channel matrix times
    `alpha`, with `bias` as its bias; `** beta` for the usual 0.75 is two
    square roots. Every op is one that LiteRT's XNNPACK delegate runs. Inputs
    other than 4-D channels-last float32 keep the layer's own computation.
    """
    import tensorflow as tf

    rank = len(inputs.shape)
    if rank != 4 or layer.axis % rank != 3 or inputs.dtype != tf.float32:
        return type(layer).call(layer, inputs, training=training)
    channels = int(inputs.shape[-1])
    index = np.arange(channels)
    near = np.abs(index[:, None] - index[None, :]) <= layer.size // 2
    band = (near * np.float32(layer.alpha)).astype("float32")
    denominator = tf.nn.bias_add(
        tf.nn.conv2d(
            tf.square(inputs), band.reshape(1, 1, channels, channels), 1, "VALID"
        ),
        np.full(channels, layer.bias, "float32"),
    )
    if layer.beta == 0.75:
        root2 = tf.sqrt(denominator)
        return inputs / (root2 * tf.sqrt(root2))
    if layer.beta == 0.5:
        return inputs / tf.sqrt(denominator)
    return inputs * tf.pow(denominator, -layer.beta)


def _lrn_as_convolution(path: str | os.PathLike[str]) -> None:
    """Rewrites each ONNX `LRN` of a file as a 1x1 convolution and a power.

    onnxruntime's CPU kernel for `LRN` is about ten times as slow as the
    convolutions around it in AlexNet (docs/serving.md); the same function as
    `Mul(x, x)`, a 1x1 `Conv` by the banded channel matrix times `alpha / size`
    with `bias` as its bias, the power `-beta` and `Mul` runs in the fast
    convolution kernels, equal to float32 rounding. An `LRN` whose channel
    count is unknown is kept.

    Args:
        path: an ONNX file, rewritten in place.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(os.fspath(path))
    shapes = _onnx_shapes(model)
    nodes: list[Any] = []
    for node in model.graph.node:
        shape = shapes.get(node.input[0]) if node.op_type == "LRN" else None
        if not shape or len(shape) != 4 or shape[1] <= 0:
            nodes.append(node)
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        # ONNX's LRN divides `alpha` by `size`, as Caffe does (docs/lrn.md).
        size = int(attributes["size"])
        alpha = float(attributes.get("alpha", 1e-4)) / size
        beta = float(attributes.get("beta", 0.75))
        bias = float(attributes.get("bias", 1.0))
        channels = shape[1]
        x, y = node.input[0], node.output[0]
        name = (node.name or y) + "/as_conv"
        index = np.arange(channels)
        # ONNX's window: (size - 1) // 2 channels before c, size // 2 after.
        offset = index[None, :] - index[:, None]  # input channel - output channel
        near = (offset >= -((size - 1) // 2)) & (offset <= size // 2)
        band = (near * np.float32(alpha)).astype("float32")
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(
                    band.reshape(channels, channels, 1, 1), f"{name}/band"
                ),
                numpy_helper.from_array(
                    np.full(channels, bias, "float32"), f"{name}/bias"
                ),
            ]
        )
        nodes += [
            helper.make_node("Mul", [x, x], [f"{name}/squares"]),
            helper.make_node(
                "Conv",
                [f"{name}/squares", f"{name}/band", f"{name}/bias"],
                [f"{name}/denominator"],
                kernel_shape=[1, 1],
            ),
        ]
        if beta == 0.75:
            # d ** 0.75 = sqrt(d) * sqrt(sqrt(d)): two fast roots, no exp/log.
            nodes += [
                helper.make_node("Sqrt", [f"{name}/denominator"], [f"{name}/root2"]),
                helper.make_node("Sqrt", [f"{name}/root2"], [f"{name}/root4"]),
                helper.make_node(
                    "Mul", [f"{name}/root2", f"{name}/root4"], [f"{name}/power"]
                ),
            ]
        else:
            model.graph.initializer.append(
                numpy_helper.from_array(np.array(beta, "float32"), f"{name}/beta")
            )
            nodes.append(
                helper.make_node(
                    "Pow", [f"{name}/denominator", f"{name}/beta"], [f"{name}/power"]
                )
            )
        nodes.append(helper.make_node("Div", [x, f"{name}/power"], [y]))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, os.fspath(path))


def _onnx_shapes(model: Any) -> dict[str, list[int]]:
    """The static shape of each tensor of an ONNX graph that shape inference finds."""
    from onnx import shape_inference

    graph = shape_inference.infer_shapes(model).graph
    return {
        value.name: [dim.dim_value for dim in value.type.tensor_type.shape.dim]
        for value in [*graph.value_info, *graph.input]
    }
