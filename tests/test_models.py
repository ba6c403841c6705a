"""The models runs train are `AlexNet`'s, and saved ones load in plain Keras."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_alexnet import AlexNet
from keras_alexnet.runs import models
from tests.backend_utils import to_numpy

# The paper's network at 227 pixels (Krizhevsky et al. 2012, figure 2, with
# Caffe's 227 input): class, name, output shape, parameters (kernel + bias),
# worked out by hand from the kernel sizes, strides and filter counts.
PAPER_TABLE = [
    ("InputLayer", "image", (227, 227, 3), 0),
    ("Conv2D", "conv1", (55, 55, 96), 11 * 11 * 3 * 96 + 96),
    ("LocalResponseNormalization", "norm1", (55, 55, 96), 0),
    ("MaxPooling2D", "pool1", (27, 27, 96), 0),
    ("GroupedConv2D", "conv2", (27, 27, 256), 5 * 5 * 48 * 256 + 256),
    ("LocalResponseNormalization", "norm2", (27, 27, 256), 0),
    ("MaxPooling2D", "pool2", (13, 13, 256), 0),
    ("Conv2D", "conv3", (13, 13, 384), 3 * 3 * 256 * 384 + 384),
    ("GroupedConv2D", "conv4", (13, 13, 384), 3 * 3 * 192 * 384 + 384),
    ("GroupedConv2D", "conv5", (13, 13, 256), 3 * 3 * 192 * 256 + 256),
    ("MaxPooling2D", "pool5", (6, 6, 256), 0),
    ("Flatten", "flatten", (9216,), 0),
    ("Dense", "fc6", (4096,), 9216 * 4096 + 4096),
    ("Dropout", "drop6", (4096,), 0),
    ("Dense", "fc7", (4096,), 4096 * 4096 + 4096),
    ("Dropout", "drop7", (4096,), 0),
    ("Dense", "predictions", (1000,), 4096 * 1000 + 1000),
]
# What the quickstart trains: 67 pixels, fc6/fc7 512 wide, He's initialisation.
# conv1: (67 - 11) / 4 + 1 = 15; each 3x3/2 pool: (n - 3) / 2 + 1.
SMALL_TABLE = [
    ("InputLayer", "image", (67, 67, 3), 0),
    ("Rescaling", "input_scale", (67, 67, 3), 0),
    ("Conv2D", "conv1", (15, 15, 96), 11 * 11 * 3 * 96 + 96),
    ("LocalResponseNormalization", "norm1", (15, 15, 96), 0),
    ("MaxPooling2D", "pool1", (7, 7, 96), 0),
    ("GroupedConv2D", "conv2", (7, 7, 256), 5 * 5 * 48 * 256 + 256),
    ("LocalResponseNormalization", "norm2", (7, 7, 256), 0),
    ("MaxPooling2D", "pool2", (3, 3, 256), 0),
    ("Conv2D", "conv3", (3, 3, 384), 3 * 3 * 256 * 384 + 384),
    ("GroupedConv2D", "conv4", (3, 3, 384), 3 * 3 * 192 * 384 + 384),
    ("GroupedConv2D", "conv5", (3, 3, 256), 3 * 3 * 192 * 256 + 256),
    ("MaxPooling2D", "pool5", (1, 1, 256), 0),
    ("Flatten", "flatten", (256,), 0),
    ("Dense", "fc6", (512,), 256 * 512 + 512),
    ("Dropout", "drop6", (512,), 0),
    ("Dense", "fc7", (512,), 512 * 512 + 512),
    ("Dropout", "drop7", (512,), 0),
    ("Dense", "predictions", (10,), 512 * 10 + 10),
]
# torchvision's layout at 67 pixels: padded conv1 (71 -> 16), adaptive pooling
# of the 1x1 pool5 to 6x6, dropout before fc6 and fc7 (torchvision's order).
TORCHVISION_SMALL_TABLE = [
    ("InputLayer", "image", (67, 67, 3), 0),
    ("ZeroPadding2D", "conv1_pad", (71, 71, 3), 0),
    ("Conv2D", "conv1", (16, 16, 64), 11 * 11 * 3 * 64 + 64),
    ("MaxPooling2D", "pool1", (7, 7, 64), 0),
    ("Conv2D", "conv2", (7, 7, 192), 5 * 5 * 64 * 192 + 192),
    ("MaxPooling2D", "pool2", (3, 3, 192), 0),
    ("Conv2D", "conv3", (3, 3, 384), 3 * 3 * 192 * 384 + 384),
    ("Conv2D", "conv4", (3, 3, 256), 3 * 3 * 384 * 256 + 256),
    ("Conv2D", "conv5", (3, 3, 256), 3 * 3 * 256 * 256 + 256),
    ("MaxPooling2D", "pool5", (1, 1, 256), 0),
    ("AdaptiveAveragePooling2D", "avgpool", (6, 6, 256), 0),
    ("Flatten", "flatten", (9216,), 0),
    ("Dropout", "drop6", (9216,), 0),
    ("Dense", "fc6", (512,), 9216 * 512 + 512),
    ("Dropout", "drop7", (512,), 0),
    ("Dense", "fc7", (512,), 512 * 512 + 512),
    ("Dense", "predictions", (10,), 512 * 10 + 10),
]


def layer_table(model):
    return [
        (
            type(layer).__name__,
            layer.name,
            tuple(layer.output.shape[1:]),
            layer.count_params(),
        )
        for layer in model.layers
    ]


@pytest.mark.parametrize(
    ("run_arguments", "api_arguments", "expected"),
    [
        ({"classes": 1000}, {}, PAPER_TABLE),
        (
            {"classes": 10, "image_size": 67, "fc_units": 512, "init": "he"},
            {
                "classes": 10,
                "input_shape": (67, 67, 3),
                "fc_units": 512,
                "initialization": "he",
            },
            SMALL_TABLE,
        ),
        (
            {
                "classes": 10,
                "variant": "torchvision",
                "image_size": 67,
                "fc_units": 512,
            },
            {
                "classes": 10,
                "variant": "torchvision",
                "input_shape": (67, 67, 3),
                "fc_units": 512,
            },
            TORCHVISION_SMALL_TABLE,
        ),
    ],
)
def test_runs_and_the_api_build_the_layer_table(run_arguments, api_arguments, expected):
    run_model = models.build_classifier(**run_arguments)
    api_model = AlexNet(weights=None, **api_arguments)
    assert layer_table(api_model) == expected
    assert layer_table(run_model) == expected
    assert run_model.get_config() == api_model.get_config()


@pytest.mark.parametrize(
    "run_arguments",
    [
        {"variant": "original", "image_size": 227, "normalization": "batchnorm"},
        {"variant": "torchvision", "image_size": 224, "groups": 2},
        {"variant": "original", "image_size": 67, "groups": 1, "fc_units": 512},
        {"variant": "torchvision", "image_size": 67, "normalization": "lrn"},
    ],
)
def test_runs_and_the_api_build_the_same_model(run_arguments):
    arguments = {"dropout": 0.3, "init": "he", "seed": 7, **run_arguments}
    run_model = models.build_classifier(5, **arguments)
    size = arguments.pop("image_size")
    arguments["initialization"] = arguments.pop("init")
    api_model = AlexNet(
        weights=None, classes=5, input_shape=(size, size, 3), **arguments
    )
    assert layer_table(run_model) == layer_table(api_model)
    assert run_model.get_config() == api_model.get_config()
    # The same seed: the same initial weights.
    for mine, theirs in zip(run_model.weights, api_model.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(mine), to_numpy(theirs))


# Loads every file named on the command line in plain Keras, never importing
# keras_alexnet, and prints each model's outputs (or the error, for those that
# need keras_alexnet's layers).
PLAIN_KERAS = """
import json, sys
import numpy as np, keras
x = np.load(sys.argv[1])
results = {}
for path in sys.argv[2:]:
    try:
        model = keras.saving.load_model(path)
    except Exception as error:
        results[path] = {"error": str(error)}
        continue
    outputs = keras.ops.convert_to_numpy(model(x, training=False))
    results[path] = {"outputs": np.asarray(outputs).tolist()}
assert "keras_alexnet" not in sys.modules, "keras_alexnet was imported"
print(json.dumps(results))
"""


@pytest.mark.backend
def test_saved_models_load_in_plain_keras_without_lrn_or_groups(tmp_path, rng):
    portable = {
        "torchvision_base": AlexNet(
            weights=None,
            variant="torchvision",
            include_top=False,
            pooling="avg",
            input_shape=(67, 67, 3),
        ),
        "original_batchnorm": models.build_classifier(
            7, image_size=67, groups=1, normalization="batchnorm", fc_units=32
        ),
        "he": models.build_classifier(
            7, image_size=67, groups=1, normalization="none", init="he", fc_units=32
        ),
    }
    needs_package = {
        # LRN and grouped convolutions.
        "paper": AlexNet(weights=None, input_shape=(67, 67, 3), fc_units=32),
        # torchvision's top pools by keras_alexnet's AdaptiveAveragePooling2D.
        "torchvision": AlexNet(
            weights=None, variant="torchvision", input_shape=(67, 67, 3), fc_units=32
        ),
    }
    x = rng.uniform(-50, 50, (2, 67, 67, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    paths = {}
    for key, model in {**portable, **needs_package}.items():
        paths[key] = os.fspath(tmp_path / f"{key}.keras")
        model.save(paths[key])
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_KERAS, os.fspath(tmp_path / "x.npy")]
        + list(paths.values()),
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    for key, model in portable.items():
        assert "outputs" in loaded[paths[key]], loaded[paths[key]]
        np.testing.assert_allclose(
            np.array(loaded[paths[key]]["outputs"]),
            to_numpy(model(x, training=False)),
            rtol=1e-5,
            atol=1e-6,
        )
    # Keras names the module to import for keras_alexnet's layers; with it
    # imported (as here), they load and compute the same.
    for key, model in needs_package.items():
        error = loaded[paths[key]]["error"]
        assert "Could not locate class" in error
        assert "keras_alexnet.layers" in error
        reloaded = keras.saving.load_model(paths[key])
        np.testing.assert_allclose(
            to_numpy(reloaded(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-6
        )
