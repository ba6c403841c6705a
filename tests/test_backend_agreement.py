"""The same training steps give the same losses on TensorFlow, JAX and PyTorch.

Each backend trains a tiny convolutional network (convolution, BatchNorm,
ReLU, pooling, a softmax head: the pieces of AlexNet that behave differently
across backends) in its own process, `KERAS_BACKEND=...`, from the same
initial weights (a `.weights.h5` file) on the same batches, with the loss and
optimizer `train` compiles. References: the first loss of a zero head is
ln(classes) exactly, and the backends agree with one another; a saturated
softmax gets the gradient `p - y` (NumPy) on the backend under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_alexnet.training import ProbabilityCrossentropy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = 3
STEPS = 4

# Run in a fresh interpreter per backend: builds the model, loads the shared
# weights, trains STEPS batches and prints the losses (float64 from float32).
TRAIN_STEPS = r"""
import json, sys
import numpy as np
import keras
from keras_alexnet.training import ProbabilityCrossentropy

weights, batches = sys.argv[1], sys.argv[2]
classes, steps = int(sys.argv[3]), int(sys.argv[4])

def tiny_model():
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, name="conv"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(classes, activation="softmax", name="predictions"),
    ])

model = tiny_model()
model.load_weights(weights)
model.compile(
    optimizer=keras.optimizers.SGD(0.5, momentum=0.9),
    loss=ProbabilityCrossentropy(sparse=True),
)
data = np.load(batches)
losses = [
    float(model.train_on_batch(data["x"][i], data["y"][i]))
    for i in range(steps)
]
print(json.dumps({"backend": keras.backend.backend(), "losses": losses}))
"""


def _tiny_model():
    # The same network as TRAIN_STEPS builds, to write the shared weights.
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(CLASSES, activation="softmax", name="predictions"),
        ]
    )


def _losses_on(backend, weights, batches):
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": ROOT}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [sys.executable, "-c", TRAIN_STEPS, weights, batches, str(CLASSES), str(STEPS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == backend
    return np.array(report["losses"])


def test_backends_take_the_same_training_steps(tmp_path):
    rng = np.random.default_rng(0)
    model = _tiny_model()
    conv = model.get_layer("conv")
    conv.kernel.assign(rng.normal(0, 0.5, conv.kernel.shape).astype("float32"))
    # A zero head: every class at 1/3, the first loss is ln(3) exactly.
    head = model.get_layer("predictions")
    head.kernel.assign(np.zeros(head.kernel.shape, "float32"))
    weights = str(tmp_path / "tiny.weights.h5")
    model.save_weights(weights)
    batches = str(tmp_path / "batches.npz")
    np.savez(
        batches,
        x=rng.normal(0, 1, (STEPS, 16, 8, 8, 3)).astype("float32"),
        y=rng.integers(0, CLASSES, (STEPS, 16)),
    )

    losses = {
        backend: _losses_on(backend, weights, batches)
        for backend in ("tensorflow", "jax", "torch")
    }
    for backend, values in losses.items():
        assert values[0] == pytest.approx(np.log(CLASSES), abs=1e-6), backend
        # Learning, not stuck: the steps change the loss.
        assert np.ptp(values) > 1e-3, (backend, values)
    for backend in ("jax", "torch"):
        np.testing.assert_allclose(
            losses[backend], losses["tensorflow"], rtol=1e-4, err_msg=backend
        )


@pytest.mark.backend
def test_a_saturated_softmax_still_gets_the_logits_gradient():
    # Logits [20, 0, 0], true class 1: p_1 = 2e-9, below the 1e-7 where Keras'
    # own cross-entropy on probabilities clips (no gradient on JAX and
    # PyTorch). One SGD step of rate 1 on the bias must move it by -(p - y),
    # the gradient of the cross-entropy with respect to the logits (NumPy).
    bias = np.array([20.0, 0.0, 0.0], np.float32)
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(CLASSES, activation="softmax")]
    )
    model.layers[0].set_weights([np.zeros((2, CLASSES), np.float32), bias])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss=ProbabilityCrossentropy())
    loss = float(model.train_on_batch(np.ones((1, 2), np.float32), np.array([1])))

    p = np.exp(bias - bias.max()) / np.exp(bias - bias.max()).sum()
    assert loss == pytest.approx(-np.log(p[1]), rel=1e-5)
    expected = bias - (p - np.eye(CLASSES)[1])
    np.testing.assert_allclose(model.layers[0].get_weights()[1], expected, atol=1e-5)


@pytest.mark.backend
@pytest.mark.parametrize("sparse", [True, False])
def test_probability_crossentropy_matches_the_closed_form(sparse):
    probabilities = np.array([[0.7, 0.2, 0.1], [1e-12, 0.5, 0.5 - 1e-12]], np.float32)
    labels = np.array([0, 0])
    targets = labels if sparse else np.eye(CLASSES, dtype=np.float32)[labels]
    loss = ProbabilityCrossentropy(sparse=sparse, reduction=None)
    value = keras.ops.convert_to_numpy(loss(targets, probabilities))
    np.testing.assert_allclose(value, [-np.log(0.7), -np.log(1e-12)], rtol=1e-5)
    # Label smoothing 0.3 over 3 classes: targets 0.8, 0.1, 0.1.
    smoothed = ProbabilityCrossentropy(
        sparse=sparse, label_smoothing=0.3, reduction=None
    )
    value = keras.ops.convert_to_numpy(smoothed(targets[:1], probabilities[:1]))
    expected = -(0.8 * np.log(0.7) + 0.1 * np.log(0.2) + 0.1 * np.log(0.1))
    np.testing.assert_allclose(value, [expected], rtol=1e-5)
    config = smoothed.get_config()
    assert ProbabilityCrossentropy.from_config(config).label_smoothing == 0.3
