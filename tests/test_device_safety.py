"""The model runs where the tensors live: no NumPy meets a device tensor.

A CUDA tensor cannot be converted to NumPy, so a layer that mixes NumPy
constants into its inputs works on CPU and fails on a GPU under the PyTorch
backend. PyTorch's `meta` device fails the same way (its tensors hold no data),
which lets these tests run the model as a GPU would, on a machine without one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_alexnet import AlexNet, ImagePreprocessing
from tests.backend_utils import to_numpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.backend
@pytest.mark.parametrize("channel_order", ["rgb", "bgr"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_image_preprocessing_of_uint8_pixels(rng, channel_order, data_format):
    pixels = rng.integers(0, 256, (2, 3, 5, 3), dtype="uint8")
    mean, std, scale = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1 / 255
    layer = ImagePreprocessing(channel_order, scale, mean, std, data_format)
    x = pixels if data_format == "channels_last" else pixels.transpose(0, 3, 1, 2)
    outputs = to_numpy(layer(x))
    if data_format == "channels_first":
        outputs = outputs.transpose(0, 2, 3, 1)
    # The closed form, in float64, channel by channel.
    source = pixels.astype("float64")
    if channel_order == "bgr":
        source = source[..., ::-1]
    expected = (source * scale - np.array(mean)) / np.array(std)
    assert outputs.dtype == np.float32
    np.testing.assert_allclose(outputs, expected, rtol=1e-6, atol=1e-6)


def test_model_with_preprocessing_runs_on_a_device_numpy_cannot_read():
    # Under PyTorch, with every tensor and variable on the `meta` device, as they
    # would be on "cuda": converting any of them to NumPy raises
    # "can't convert meta device type tensor to numpy", as it does for CUDA.
    script = textwrap.dedent(
        """
        import json, keras, torch
        from keras_alexnet import AlexNet
        with keras.device("meta"):
            model = AlexNet(weights=None, variant=VARIANT, include_top=False,
                            input_shape=(67, 67, 3), include_preprocessing=True)
            x = torch.zeros((2, 67, 67, 3), dtype=torch.uint8, device="meta")
            shapes = [list(model(x, training=t).shape) for t in (False, True)]
            devices = [str(model(x).device), str(model.weights[0].value.device)]
        print(json.dumps([shapes, devices]))
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": ROOT}
    for variant in ("original", "torchvision"):
        result = subprocess.run(
            [sys.executable, "-c", script.replace("VARIANT", repr(variant))],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        shapes, devices = json.loads(result.stdout.strip().splitlines()[-1])
        assert shapes == [[2, 1, 1, 256]] * 2
        assert devices == ["meta", "meta"]


@pytest.mark.backend
def test_fit_takes_uint8_pixels_with_include_preprocessing(rng):
    keras.utils.set_random_seed(2)
    base = AlexNet(
        weights=None,
        variant="torchvision",
        include_top=False,
        pooling="avg",
        input_shape=(63, 63, 3),
        include_preprocessing=True,
    )
    outputs = keras.layers.Dense(3)(base.output)
    model = keras.Model(base.input, outputs)
    model.compile(
        optimizer=keras.optimizers.SGD(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = rng.integers(0, 256, (6, 63, 63, 3), dtype="uint8")
    y = np.arange(6) % 3
    history = model.fit(x, y, batch_size=6, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses
