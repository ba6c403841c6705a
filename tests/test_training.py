"""Tests of the paper's training recipe against its closed-form update."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_alexnet.training import PaperSGD, paper_callbacks

# (gradient, learning rate) per step: the rate drops mid-way, as
# ReduceLROnPlateau makes it, so the velocity carries the old rate's steps.
GRADIENTS = np.array(
    [[0.5, -1.0, 2.0], [0.25, 0.5, -1.5], [-0.75, 1.0, 0.5], [1.0, 0.0, -0.25]],
    np.float32,
)
LEARNING_RATES = (0.01, 0.01, 0.001, 0.001)
INITIAL = np.array([1.0, -2.0, 0.5], np.float32)


def paper_update_numpy(w, gradients, learning_rates, weight_decay=5e-4):
    """Krizhevsky et al. (2012), section 5, written out in float64."""
    w = np.asarray(w, np.float64)
    v = np.zeros_like(w)
    for g, lr in zip(gradients, learning_rates, strict=True):
        v = 0.9 * v - weight_decay * lr * w - lr * np.asarray(g, np.float64)
        w = w + v
    return w


def run_optimizer(optimizer, name="kernel"):
    variable = keras.Variable(INITIAL, name=name)
    for g, lr in zip(GRADIENTS, LEARNING_RATES, strict=True):
        optimizer.learning_rate = lr
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
    return keras.ops.convert_to_numpy(variable)


@pytest.mark.backend
def test_paper_sgd_matches_the_papers_update():
    result = run_optimizer(PaperSGD())
    expected = paper_update_numpy(INITIAL, GRADIENTS, LEARNING_RATES)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.backend
def test_paper_sgd_inside_fit_matches_the_papers_update():
    # model.fit runs the update compiled (tf.function, jax.jit), JAX statelessly.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].set_weights([INITIAL[:, None]])
    model.compile(
        optimizer=PaperSGD(learning_rate=0.1),
        # d(sum(y_pred))/d(kernel) = x: a known, constant gradient.
        loss=lambda y_true, y_pred: keras.ops.sum(y_pred),
    )
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    model.fit(x, np.zeros((1, 1), np.float32), epochs=3, verbose=0)
    expected = paper_update_numpy(INITIAL, [x[0]] * 3, [0.1] * 3)
    np.testing.assert_allclose(
        model.layers[0].get_weights()[0][:, 0], expected, rtol=1e-6, atol=1e-7
    )


@pytest.mark.backend
def test_keras_decoupled_weight_decay_is_a_different_update():
    # The reason PaperSGD exists: SGD(weight_decay=...) shrinks w outside the
    # velocity, so it drifts from the paper's rule once momentum is on.
    keras_sgd = run_optimizer(
        keras.optimizers.SGD(learning_rate=0.01, momentum=0.9, weight_decay=5e-4)
    )
    paper = paper_update_numpy(INITIAL, GRADIENTS, LEARNING_RATES)
    assert np.max(np.abs(keras_sgd - paper)) > 1e-6


@pytest.mark.backend
def test_excluded_variables_get_no_weight_decay():
    optimizer = PaperSGD()
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    result = run_optimizer(optimizer, name="bias")
    expected = paper_update_numpy(INITIAL, GRADIENTS, LEARNING_RATES, weight_decay=0.0)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.backend
def test_paper_sgd_trains_and_round_trips_through_a_keras_file(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=PaperSGD(learning_rate=0.05), loss="mse")
    x = np.ones((4, 3), np.float32)
    model.fit(x, np.zeros((4, 2), np.float32), epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored.optimizer) is PaperSGD
    assert restored.optimizer.get_config() == model.optimizer.get_config()


def test_paper_sgd_defaults_and_config():
    optimizer = PaperSGD()
    config = optimizer.get_config()
    assert config["momentum"] == 0.9
    assert config["weight_decay"] == 5e-4
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == (
        pytest.approx(0.01)
    )
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is PaperSGD
    assert restored.get_config() == config


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"weight_decay": -1.0}, "Received: weight_decay=-1.0"),
        ({"weight_decay": "0.1"}, "Received: weight_decay='0.1'"),
        ({"nesterov": True}, "Received: nesterov=True"),
    ],
)
def test_paper_sgd_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PaperSGD(**kwargs)


def test_paper_callbacks_divide_by_ten_three_times_at_most():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=PaperSGD(learning_rate=0.01), loss="mse")
    (callback,) = paper_callbacks(patience=2, verbose=0)
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch in range(20):  # the validation accuracy never improves
        callback.on_epoch_end(epoch, {"val_accuracy": 0.5})
        rates.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    distinct = sorted(set(rates), reverse=True)
    np.testing.assert_allclose(distinct, [1e-2, 1e-3, 1e-4, 1e-5], rtol=1e-5)
    # Reductions happen every `patience` epochs without improvement.
    assert rates[:7] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3, 1e-4, 1e-4, 1e-5])


def test_paper_callbacks_modes_and_errors():
    (on_error,) = paper_callbacks(monitor="val_loss")
    (on_accuracy,) = paper_callbacks()
    assert on_error.mode == "min" and on_accuracy.mode == "max"
    with pytest.raises(ValueError, match="Received: patience=-1"):
        paper_callbacks(patience=-1)
    with pytest.raises(ValueError, match="Received: initial_learning_rate=0"):
        paper_callbacks(initial_learning_rate=0)


@pytest.mark.backend
def test_stop_on_divergence_raises_at_the_first_non_finite_batch():
    from keras_alexnet.training import StopOnDivergence, TrainingDivergedError

    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    x = np.array([[1.0], [np.nan], [1.0], [1.0]], np.float32)
    with pytest.raises(TrainingDivergedError, match="epoch 1, step 2 of 4") as error:
        model.fit(
            x,
            np.ones((4, 1), np.float32),
            batch_size=1,
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=[StopOnDivergence(4, advice="lower it"), Record()],
        )
    assert "(learning rate 1)" in str(error.value)
    assert str(error.value).endswith("too high for the batch size: lower it.")
    # Callbacks after it never saw the diverged batch.
    assert seen == [0]
    assert isinstance(error.value, ValueError)
