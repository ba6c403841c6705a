"""Keras' Conv2D and MaxPooling2D on keras-alexnet's fast paths: PyTorch's results,
Keras' weights files."""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest
import torch

from keras_alexnet import AlexNet
from keras_alexnet.layers import GroupedConv2D, with_fast_path
from keras_alexnet.layers import channels_last as module
from tests.backend_utils import to_numpy
from tests.conftest import BACKEND


def Conv2D(*args, **kwargs):
    """Keras' Conv2D, set on keras-alexnet's fast path."""
    return with_fast_path(keras.layers.Conv2D(*args, **kwargs))


def MaxPooling2D(*args, **kwargs):
    """Keras' MaxPooling2D, set on keras-alexnet's fast path."""
    return with_fast_path(keras.layers.MaxPooling2D(*args, **kwargs))


def _torch_conv(x, kernel, bias, strides, padding, dilation, groups):
    """PyTorch's own convolution in float64, NCHW, as the reference."""
    inputs = torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2)
    weight = torch.tensor(kernel, dtype=torch.float64).permute(3, 2, 0, 1)
    outputs = torch.nn.functional.conv2d(
        inputs,
        weight,
        torch.tensor(bias, dtype=torch.float64),
        strides,
        padding,
        dilation,
        groups,
    )
    return outputs.permute(0, 2, 3, 1).numpy()


@pytest.mark.backend
@pytest.mark.parametrize(
    "kernel_size, strides, padding, dilation, groups, torch_padding",
    [
        (11, 4, "valid", 1, 1, 0),  # conv1
        (5, 1, "same", 1, 2, 2),  # conv2
        (3, 1, "same", 1, 1, 1),  # conv3
        (3, 1, "same", 2, 1, 2),  # dilated
        (4, 2, "same", 1, 1, None),  # asymmetric "same": Keras' own path
    ],
)
def test_conv2d_matches_pytorch(
    rng, kernel_size, strides, padding, dilation, groups, torch_padding
):
    x = rng.normal(size=(2, 23, 21, 8)).astype("float32")
    layer_class = GroupedConv2D if groups > 1 else Conv2D
    layer = layer_class(
        6,
        kernel_size,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        groups=groups,
        bias_initializer="random_normal",
    )
    outputs = to_numpy(layer(x))
    kernel, bias = (to_numpy(w) for w in layer.weights)
    if torch_padding is None:
        # Keras' "same": 3 rows and columns in all (23 -> 12 rows at stride 2
        # needs 11 * 2 + 4 = 26), the odd one at the end, as in TensorFlow.
        padded = np.pad(x, [(0, 0), (1, 2), (1, 2), (0, 0)])
        expected = _torch_conv(padded, kernel, bias, strides, 0, dilation, groups)
    else:
        expected = _torch_conv(
            x, kernel, bias, strides, torch_padding, dilation, groups
        )
    assert outputs.shape == expected.shape
    np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.backend
def test_max_pooling_matches_pytorch(rng):
    x = rng.normal(size=(2, 13, 12, 5)).astype("float32")
    outputs = to_numpy(MaxPooling2D(3, strides=2)(x))
    expected = torch.nn.functional.max_pool2d(
        torch.tensor(x).permute(0, 3, 1, 2), 3, 2
    ).permute(0, 2, 3, 1)
    np.testing.assert_array_equal(outputs, expected.numpy())


@pytest.mark.backend
def test_pytorch_runs_views_without_keras_layout_copies(rng, monkeypatch):
    # Keras' torch backend copies NHWC inputs to NCHW (`_transpose_spatial_inputs`)
    # around each convolution and pooling; keras-alexnet's layers pass views.
    # The other backends keep Keras' own path: the fast path declines them.
    from keras.src.backend.torch import nn as torch_nn

    x = rng.normal(size=(2, 15, 15, 4)).astype("float32")
    conv = Conv2D(8, 3, padding="same")
    pool = MaxPooling2D(3, strides=2)
    if BACKEND != "torch":
        kernel = np.zeros((3, 3, 4, 8), "float32")
        same = ((1, 1), "same", (1, 1), "channels_last")
        assert module.torch_conv2d(x, kernel, *same) is None
        assert (
            module.torch_max_pool2d(x, (3, 3), (2, 2), "valid", "channels_last") is None
        )
        assert pool(conv(x)).shape == (2, 7, 7, 8)
        return
    calls = []
    original = torch_nn._transpose_spatial_inputs

    def counted(inputs):
        calls.append(inputs.shape)
        return original(inputs)

    monkeypatch.setattr(torch_nn, "_transpose_spatial_inputs", counted)
    outputs = pool(conv(torch.tensor(x)))
    assert calls == []
    assert outputs.is_contiguous()  # NHWC, ready for the next layer
    assert outputs.shape == (2, 7, 7, 8)


@pytest.mark.backend
def test_gradients_match_keras_layers(rng):
    # The same weights in Keras' own Conv2D and MaxPooling2D: equal values and
    # equal gradients for the input and the kernel (a GradientTape, jax.grad or
    # autograd, each backend's own).
    x = rng.normal(size=(2, 11, 11, 4)).astype("float32")
    ours = keras.Sequential(
        [keras.Input((11, 11, 4)), Conv2D(6, 3, padding="same"), MaxPooling2D(3, 2)]
    )
    reference = keras.Sequential(
        [
            keras.Input((11, 11, 4)),
            keras.layers.Conv2D(6, 3, padding="same"),
            keras.layers.MaxPooling2D(3, 2),
        ]
    )
    reference.set_weights(ours.get_weights())
    for model in (ours, reference):
        model.values = _value_and_gradients(model, x)
    for got, expected in zip(ours.values, reference.values, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _value_and_gradients(model, x):
    """The sum of squared outputs, and its gradients for x and the kernel."""
    kernel = model.layers[0].kernel
    if BACKEND == "torch":
        inputs = torch.tensor(x, requires_grad=True)
        loss = model(inputs).square().sum()
        loss.backward()
        gradients = [inputs.grad.numpy(), to_numpy(kernel.value.grad)]
        return [to_numpy(loss.detach()), *gradients]
    if BACKEND == "jax":
        import jax

        def loss_fn(inputs, kernel_value):
            values = [v.value for v in model.trainable_variables]
            values[0] = kernel_value
            outputs, _ = model.stateless_call(values, [], inputs)
            return (outputs**2).sum()

        loss, grads = jax.value_and_grad(loss_fn, argnums=(0, 1))(x, kernel.value)
        return [np.asarray(loss), np.asarray(grads[0]), np.asarray(grads[1])]
    import tensorflow as tf

    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        loss = tf.reduce_sum(model(inputs) ** 2)
    grads = tape.gradient(loss, [inputs, kernel.value])
    return [loss.numpy(), grads[0].numpy(), grads[1].numpy()]


def test_weights_files_load_into_keras_own_layers_and_back(rng, tmp_path):
    # Keras names a .weights.h5 file's groups after the layers' classes; the
    # fast path leaves the classes Keras' own, so files move both ways.
    model = AlexNet(
        weights=None, variant="original", input_shape=(67, 67, 3), include_top=False
    )
    path = str(tmp_path / "ours.weights.h5")
    model.save_weights(path)
    config = model.get_config()
    assert {
        (layer["module"], layer["class_name"], layer["registered_name"])
        for layer in config["layers"]
        if layer["class_name"] in ("Conv2D", "MaxPooling2D")
    } == {("keras.layers", "Conv2D", None), ("keras.layers", "MaxPooling2D", None)}
    keras_model = keras.Model.from_config(config)
    assert not any(
        type(layer).__module__.startswith("keras_alexnet.layers.channels_last")
        or "convolution_op" in vars(layer)
        or "call" in vars(layer)
        for layer in keras_model.layers
    )
    keras_model.load_weights(path)
    x = rng.uniform(0, 255, (2, 67, 67, 3)).astype("float32")
    np.testing.assert_allclose(
        keras_model.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )
    # And back: a file of Keras' layers into keras-alexnet's.
    back = str(tmp_path / "keras.weights.h5")
    keras_model.save_weights(back)
    fresh = AlexNet(
        weights=None, variant="original", input_shape=(67, 67, 3), include_top=False
    )
    fresh.load_weights(back)
    np.testing.assert_allclose(
        fresh.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )


def test_fast_path_keeps_keras_class_and_config():
    plain = keras.layers.Conv2D(4, 3, strides=2, name="c")
    fast = Conv2D(4, 3, strides=2, name="c")
    assert type(fast) is keras.layers.Conv2D
    assert fast.get_config() == plain.get_config()
    serialized = keras.saving.serialize_keras_object(MaxPooling2D(3, 2))
    assert (serialized["module"], serialized["class_name"]) == (
        "keras.layers",
        "MaxPooling2D",
    )
    for layer in (GroupedConv2D(4, 3, groups=2), keras.layers.Dense(3)):
        with pytest.raises(TypeError, match=r"Received: layer="):
            with_fast_path(layer)


def test_legacy_look_alike_class_names_still_load(rng, tmp_path):
    # keras-alexnet 0.1 saved its look-alike layers as below (taken from a file
    # it wrote); with keras_alexnet imported they load as Keras' own layers.
    model = keras.Sequential(
        [
            keras.Input((9, 9, 3)),
            keras.layers.Conv2D(4, 3, name="conv1"),
            keras.layers.MaxPooling2D(3, 2, name="pool1"),
        ]
    )
    path = tmp_path / "legacy.keras"
    model.save(path)
    legacy = tmp_path / "legacy_names.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(legacy, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                for layer in config["config"]["layers"]:
                    if layer["class_name"] in ("Conv2D", "MaxPooling2D"):
                        layer["module"] = "keras_alexnet.layers.channels_last"
                        layer["registered_name"] = (
                            f"keras_alexnet>{layer['class_name']}"
                        )
                data = json.dumps(config).encode()
            target.writestr(item, data)
    loaded = keras.saving.load_model(legacy)
    assert [type(layer) for layer in loaded.layers] == [
        keras.layers.Conv2D,
        keras.layers.MaxPooling2D,
    ]
    x = rng.normal(size=(2, 9, 9, 3)).astype("float32")
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))


@pytest.mark.backend
@pytest.mark.parametrize(
    "size, kernel_size, stride", [(35, 11, 4), (36, 11, 4), (17, 3, 2), (16, 4, 4)]
)
def test_space_to_depth_convolution_matches_pytorch(
    rng, monkeypatch, size, kernel_size, stride
):
    # AlexNet's conv1 (11x11/4) as a stride-1 convolution over 4x4 blocks of
    # pixels: the same sums of products, whatever the input's remainder.
    monkeypatch.setattr(module, "use_space_to_depth", lambda: True)
    x = rng.normal(size=(2, size, size + 1, 3)).astype("float32")
    layer = Conv2D(5, kernel_size, strides=stride, bias_initializer="random_normal")
    calls = []
    original = module.space_to_depth_conv2d
    monkeypatch.setattr(
        module,
        "space_to_depth_conv2d",
        lambda *args: calls.append(1) or original(*args),
    )
    outputs = to_numpy(layer(x))
    assert calls  # the layer took the space-to-depth path
    kernel, bias = (to_numpy(w) for w in layer.weights)
    expected = _torch_conv(x, kernel, bias, stride, 0, 1, 1)
    assert outputs.shape == expected.shape
    np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "input_shape, kernel_shape, stride, message",
    [
        ((1, 15, 15, 3), (5, 5, 3, 4), 1, "stride"),
        ((1, 15, 15, 3), (5, 5, 3, 4), 2.0, "stride"),
        ((1, 15, 15, 3), (5, 3, 3, 4), 2, "square"),
        ((1, 15, 15, 2), (5, 5, 3, 4), 2, "channels"),
        ((1, 4, 15, 3), (5, 5, 3, 4), 2, "at least as large"),
    ],
)
def test_space_to_depth_rejects_what_it_cannot_compute(
    input_shape, kernel_shape, stride, message
):
    with pytest.raises(ValueError, match=message):
        module.space_to_depth_conv2d(
            np.zeros(input_shape, "float32"), np.zeros(kernel_shape, "float32"), stride
        )
