"""Training pieces: the paper's SGD update and learning-rate schedule, a
cross-entropy that trains alike on every backend, and a stop on divergence.

Krizhevsky et al. (2012, section 5) train with stochastic gradient descent,
batch 128, momentum 0.9 and weight decay 0.0005, with the update

    v <- 0.9 * v - 0.0005 * lr * w - lr * dL/dw
    w <- w + v

so the weight decay is an L2 term inside the momentum. Keras' `SGD(weight_decay=...)`
instead shrinks the weights outside it (`w <- w - lr * wd * w`, decoupled, as
in AdamW), which is a different optimizer once momentum is on. `PaperSGD`
implements the paper's. The learning rate starts at 0.01 and is divided by 10
when the validation error stops improving, three times in about 90 epochs:
`paper_callbacks` returns that schedule.

Reference:
    - [Krizhevsky, Sutskever and Hinton, ImageNet Classification with Deep
      Convolutional Neural Networks, NIPS 2012](https://papers.nips.cc/paper/4824)
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = [
    "PaperSGD",
    "ProbabilityCrossentropy",
    "StopOnDivergence",
    "TrainingDivergedError",
    "paper_callbacks",
]

PAPER_LEARNING_RATE = 0.01
PAPER_MOMENTUM = 0.9
PAPER_WEIGHT_DECAY = 5e-4
PAPER_BATCH_SIZE = 128
PAPER_EPOCHS = 90
# "divided by 10 when the validation error rate stopped improving ... The learning
# rate was ... reduced three times prior to termination."
PAPER_LR_FACTOR = 0.1
PAPER_LR_REDUCTIONS = 3


@keras.saving.register_keras_serializable(package="keras_alexnet")
class PaperSGD(keras.optimizers.SGD):
    """SGD with momentum and the paper's weight decay, inside the momentum.

    Each step, for every variable `w` with gradient `g`:

        v <- momentum * v - weight_decay * lr * w - lr * g
        w <- w + v

    which is `keras.optimizers.SGD` (no `nesterov`) on the gradient
    `g + weight_decay * w`, i.e. an L2 penalty `weight_decay / 2 * |w|^2` in the
    loss. Keras' own `weight_decay` argument of `SGD` is decoupled
    (`w <- w - lr * weight_decay * w` beside the momentum) and is not used.

    The paper decays every weight; Caffe's `bvlc_alexnet` solver exempted the
    biases (`decay_mult: 0`). For Caffe's choice call
    `optimizer.exclude_from_weight_decay(var_names=["bias"])` before training.

    Args:
        learning_rate: a float, a `keras.optimizers.schedules.LearningRateSchedule`
            or a callable; the paper starts at 0.01.
        momentum: the momentum, in [0, 1]; the paper's is 0.9.
        weight_decay: the L2 coefficient that enters the momentum, >= 0; the
            paper's is 0.0005.
        **kwargs: the other arguments of `keras.optimizers.SGD` (`name`,
            `clipnorm`, `use_ema`, `gradient_accumulation_steps`, ...).

    Example:

    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=PaperSGD(), loss="mse")
    >>> model.optimizer.weight_decay
    0.0005

    Reference:
        - [Krizhevsky, Sutskever and Hinton, ImageNet Classification with Deep
          Convolutional Neural Networks, NIPS 2012, section 5](
          https://papers.nips.cc/paper/4824)
    """

    def __init__(
        self,
        learning_rate: Any = PAPER_LEARNING_RATE,
        momentum: float = PAPER_MOMENTUM,
        weight_decay: float = PAPER_WEIGHT_DECAY,
        **kwargs: Any,
    ) -> None:
        if (
            isinstance(weight_decay, bool)
            or not isinstance(weight_decay, (int, float))
            or not weight_decay >= 0
        ):
            raise ValueError(
                "`weight_decay` should be a number >= 0. "
                f"Received: weight_decay={weight_decay!r}"
            )
        if kwargs.get("nesterov"):
            raise ValueError(
                "The paper's update has no Nesterov momentum. "
                f"Received: nesterov={kwargs['nesterov']!r}"
            )
        kwargs.pop("nesterov", None)
        if isinstance(momentum, int) and not isinstance(momentum, bool):
            momentum = float(momentum)
        super().__init__(
            learning_rate=learning_rate,
            momentum=momentum,
            weight_decay=float(weight_decay),
            **kwargs,
        )

    def _apply_weight_decay(self, variables):
        # Keras calls this before `update_step` for its decoupled decay; the
        # paper's decay enters the gradient in `update_step` instead.
        del variables

    def update_step(self, gradient, variable, learning_rate):
        gradient = ops.cast(gradient, variable.dtype)
        if self.weight_decay and self._use_weight_decay(variable):
            weight_decay = ops.cast(self.weight_decay, variable.dtype)
            gradient = ops.add(gradient, ops.multiply(variable, weight_decay))
        super().update_step(gradient, variable, learning_rate)


def paper_callbacks(
    monitor: str = "val_accuracy",
    initial_learning_rate: float = PAPER_LEARNING_RATE,
    patience: int = 5,
    reductions: int = PAPER_LR_REDUCTIONS,
    verbose: int = 1,
) -> list[keras.callbacks.Callback]:
    """Returns the paper's learning-rate schedule as Keras callbacks.

    The learning rate is divided by 10 whenever `monitor` (by default the
    validation accuracy, i.e. the validation error rate the paper watched, read
    the other way up) has not improved for `patience` epochs, and at most
    `reductions` times: from 0.01 to 0.001, 0.0001 and 0.00001. The paper gives no
    patience; 5 epochs of about 90 is this library's choice. Checkpointing and
    logging are left to the caller.

    Args:
        monitor: a validation metric of `model.fit`'s logs; names with
            `"loss"` or `"error"` in them are minimized, others maximized. Compile
            with `metrics=["accuracy"]` and pass validation data for the default.
        initial_learning_rate: the optimizer's starting learning rate; with
            `reductions`, it fixes the floor the rate never goes below.
        patience: epochs without improvement before each reduction.
        reductions: the most times the rate is divided by 10.
        verbose: 1 prints a message at each reduction.

    Returns:
        `[keras.callbacks.ReduceLROnPlateau(...)]`, to pass to `model.fit`.

    Example:

    >>> model.fit(  # doctest: +SKIP
    ...     train, validation_data=val, epochs=90, callbacks=paper_callbacks()
    ... )
    """
    if not isinstance(monitor, str) or not monitor:
        raise ValueError(
            f"`monitor` should be a metric name. Received: monitor={monitor!r}"
        )
    if (
        isinstance(initial_learning_rate, bool)
        or not isinstance(initial_learning_rate, (int, float))
        or not initial_learning_rate > 0
    ):
        raise ValueError(
            "`initial_learning_rate` should be a number > 0. "
            f"Received: initial_learning_rate={initial_learning_rate!r}"
        )
    for name, value, minimum in (
        ("patience", patience, 0),
        ("reductions", reductions, 0),
        ("verbose", verbose, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(
                f"`{name}` should be an integer >= {minimum}. "
                f"Received: {name}={value!r}"
            )
    minimized = "loss" in monitor or "error" in monitor
    # The floor is the rate after `reductions` divisions, a hair higher: the
    # callback reads the rate back in float32, and a last rate rounded just
    # above the exact product would otherwise allow one more (no-op) reduction.
    floor = initial_learning_rate * PAPER_LR_FACTOR**reductions * (1 + 1e-6)
    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor,
            mode="min" if minimized else "max",
            factor=PAPER_LR_FACTOR,
            patience=patience,
            min_lr=floor,
            verbose=verbose,
        )
    ]


# The smallest normal float32: below it a probability loses precision, and its
# logarithm's gradient with it.
SMALLEST_PROBABILITY = float(np.finfo(np.float32).tiny)


@keras.saving.register_keras_serializable(package="keras_alexnet")
class ProbabilityCrossentropy(keras.losses.Loss):
    """Cross-entropy of softmax probabilities, with the logits' gradient on
    every backend.

    `-sum(y * log(p))` where `p` is a softmax output. Keras' own cross-entropy
    on probabilities clips `p` to `[1e-7, 1 - 1e-7]` on JAX and PyTorch, so an
    image whose true class has a probability below 1e-7 (logits 16 apart)
    gives no gradient at all, while TensorFlow silently reads the softmax's
    logits instead. This loss clips only at the smallest normal float32
    (logits 87 apart): the gradient with respect to the logits is `p - y`, as
    from logits, on TensorFlow, JAX and PyTorch alike.

    Args:
        sparse: integer labels (`True`) or one-hot / soft labels.
        label_smoothing: in [0, 1); mixes `label_smoothing / classes` into the
            one-hot labels.
        name: the loss's name.
        **kwargs: `keras.losses.Loss`'s `reduction` and `dtype`.
    """

    def __init__(
        self,
        sparse: bool = True,
        label_smoothing: float = 0.0,
        name: str = "probability_crossentropy",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.sparse = bool(sparse)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_pred = ops.convert_to_tensor(y_pred)
        classes = y_pred.shape[-1]
        if self.sparse:
            labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
            y_true = ops.one_hot(labels, classes, dtype=y_pred.dtype)
        y_true = ops.cast(y_true, y_pred.dtype)
        if self.label_smoothing:
            y_true = y_true * (1.0 - self.label_smoothing) + (
                self.label_smoothing / classes
            )
        log_p = ops.log(ops.clip(y_pred, SMALLEST_PROBABILITY, 1.0))
        return -ops.sum(y_true * log_p, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "sparse": self.sparse,
            "label_smoothing": self.label_smoothing,
        }


class TrainingDivergedError(FloatingPointError, ValueError):
    """The loss became NaN or infinite: the run stopped before saving it.

    A `ValueError` too, so that the command line reports it as one line.
    """


class StopOnDivergence(keras.callbacks.Callback):
    """Raises `TrainingDivergedError` at the first batch whose loss is NaN or
    infinite.

    Unlike `keras.callbacks.TerminateOnNaN`, which ends `fit` quietly, the
    error stops the caller too, before any callback after this one writes the
    non-finite model. The message names the epoch, the step, the learning rate
    and `advice`.

    Args:
        steps_per_epoch: the steps of an epoch, for the message (or `None`).
        advice: what to change, e.g. "lower --learning-rate".
    """

    def __init__(self, steps_per_epoch: int | None = None, advice: str = "") -> None:
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.advice = advice
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        self._check((logs or {}).get("loss"), f"step {batch + 1}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # Callbacks placed after this one (checkpoints) see only finite runs.
        for key in ("loss", "val_loss"):
            self._check((logs or {}).get(key), "the end of the epoch", key)

    def _check(self, value: Any, where: str, key: str = "loss") -> None:
        if value is None:
            return
        value = float(np.asarray(ops.convert_to_numpy(value)))
        if math.isfinite(value):
            return
        steps = f" of {self.steps_per_epoch}" if self.steps_per_epoch else ""
        if where.startswith("step"):
            where += steps
        rate = _current_learning_rate(self.model)
        raise TrainingDivergedError(
            f"Training diverged: the {key} became {value} at epoch {self.epoch + 1}, "
            f"{where} (learning rate {rate:.3g}); no checkpoint of it was saved. "
            "The learning rate is likely too high for the batch size"
            + (f": {self.advice}." if self.advice else ".")
        )


def _current_learning_rate(model: keras.Model) -> float:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return float("nan")
    rate = optimizer.learning_rate
    return float(np.asarray(ops.convert_to_numpy(rate)))
