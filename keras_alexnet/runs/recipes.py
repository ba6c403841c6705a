"""Training recipes: the paper's (2012) and the modern one that followed it.

`paper`: LRN; weights from N(0, 0.01), biases 1; random crops of the image
resized to 256, flips, PCA lighting; `PaperSGD` (lr 0.01, momentum 0.9, weight
decay 5e-4 inside the momentum), the rate divided by 10 when the validation
accuracy stops improving, three times; batch 128, 90 epochs; 10-crop test.

`modern`: BatchNorm instead of LRN; He initialisation; random resized crops,
flips, and MixUp or CutMix per batch (`keras.layers`); label smoothing 0.1; SGD with
Nesterov momentum 0.9, lr 0.1, decoupled weight decay 5e-5, a linear warm-up
over the first 5 % of the steps then cosine decay to 0; batch 256, 90 epochs;
centre-crop test.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

from keras_alexnet import training
from keras_alexnet._choices import RECIPE_NAMES


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The choices of one training recipe (see the module docstring)."""

    name: str
    normalization: str
    init: str
    augment: str
    flip: bool
    lighting: bool
    label_smoothing: float
    mix: bool
    batch_size: int
    epochs: int
    learning_rate: float
    ten_crop: bool


RECIPES = {
    "paper": Recipe(
        name="paper",
        normalization="lrn",
        init="paper",
        augment="paper",
        flip=True,
        lighting=True,
        label_smoothing=0.0,
        mix=False,
        batch_size=training.PAPER_BATCH_SIZE,
        epochs=training.PAPER_EPOCHS,
        learning_rate=training.PAPER_LEARNING_RATE,
        ten_crop=True,
    ),
    "modern": Recipe(
        name="modern",
        normalization="batchnorm",
        init="he",
        augment="modern",
        flip=True,
        lighting=False,
        label_smoothing=0.1,
        mix=True,
        batch_size=256,
        epochs=90,
        learning_rate=0.1,
        ten_crop=False,
    ),
}


def get_recipe(name: Any) -> Recipe:
    if name not in RECIPES:
        raise ValueError(
            f"`recipe` should be one of {RECIPE_NAMES}. Received: recipe={name!r}"
        )
    return RECIPES[name]


def optimizer_and_callbacks(
    recipe: Recipe,
    *,
    learning_rate: float,
    epochs: int,
    steps_per_epoch: int,
    verbose: int = 1,
) -> tuple[keras.optimizers.Optimizer, dict[str, keras.callbacks.Callback]]:
    """The optimizer and the learning-rate callbacks of `recipe`.

    Returns:
        `(optimizer, {name: callback})`.
    """
    if recipe.name == "paper":
        # The paper watched the validation error over ~90 epochs; a patience of
        # 5 in 90 epochs, scaled to shorter runs.
        patience = max(1, round(5 * epochs / training.PAPER_EPOCHS))
        (plateau,) = training.paper_callbacks(
            initial_learning_rate=learning_rate,
            patience=patience,
            verbose=1 if verbose else 0,
        )
        return training.PaperSGD(learning_rate=learning_rate), {"plateau": plateau}
    total = max(1, epochs * steps_per_epoch)
    warmup = max(1, round(0.05 * total))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(1, total - warmup),
        warmup_target=learning_rate,
        warmup_steps=warmup,
    )
    optimizer = keras.optimizers.SGD(
        learning_rate=schedule, momentum=0.9, nesterov=True, weight_decay=5e-5
    )
    return optimizer, {}


def mix_batches(dataset: Any, seed: int | None) -> Any:
    """MixUp or CutMix on each batch of a `tf.data` dataset, one of the two at
    random per batch (labels must be one-hot).

    Keras' own `keras.layers.MixUp` and `keras.layers.CutMix` (Keras >= 3.8,
    ported from keras-cv). keras-cv 0.9's `CutMix` imports and runs with Keras
    3, but weighs the labels by the area of the pasted box before clipping it to
    the image: a box crossing the border gives labels that disagree with the
    pixels (measured: a label weight of 0.635 for 32.9 % of the pixels), so
    keras-cv is not used. tests/test_runs.py checks that labels match pixels.
    """
    import tensorflow as tf

    mixup = keras.layers.MixUp(seed=seed)
    cutmix = keras.layers.CutMix(seed=seed)
    coins = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def mix(batch: tuple[Any, Any], coin: Any) -> tuple[Any, Any]:
        data = {"images": batch[0], "labels": batch[1]}
        out = tf.cond(coin % 2 == 0, lambda: mixup(data), lambda: cutmix(data))
        return out["images"], out["labels"]

    return tf.data.Dataset.zip(dataset, coins).map(mix)
