"""Training recipes: one that suits the data (the default), the paper's (2012)
and the modern one that followed it.

`auto` (the default): the modern optimizer and schedule without the heavy
augmentation, scaled to the data it sees (`choose_settings`): BatchNorm with
moving-average momentum 0.9; He initialisation; the paper's crops and flips;
SGD with Nesterov momentum 0.9 and decoupled weight decay 5e-5 at the paper's
0.01 for a batch of 128, scaled linearly to the batch; a warm-up over 5 % of
the steps then cosine decay; a batch that gives an epoch at least 20 steps; an
input size near the images' own; 10 epochs; centre-crop test.
docs/training.md explains each choice.

`paper`: LRN; weights from N(0, 0.01), biases 1; random crops of the image
resized to 256, flips, PCA lighting; `PaperSGD` (lr 0.01, momentum 0.9, weight
decay 5e-4 inside the momentum), the rate divided by 10 when the validation
accuracy stops improving, three times (patience: a tenth of the run, at least
3 epochs); batch 128, 90 epochs; 10-crop test.

`modern`: BatchNorm instead of LRN; He initialisation; random resized crops,
flips, and MixUp or CutMix per batch (`keras.layers`); label smoothing 0.1; SGD with
Nesterov momentum 0.9, lr 0.1, decoupled weight decay 5e-5, a linear warm-up
over the first 5 % of the steps then cosine decay to 0; batch 256, 90 epochs;
centre-crop test.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras

from keras_alexnet import training
from keras_alexnet._choices import RECIPE_NAMES

DEFAULT_RECIPE = "auto"
# `auto` picks a batch that gives each epoch at least this many steps: fewer,
# and a short run takes too few steps to learn (160 images in batches of 128:
# one step an epoch).
MIN_STEPS_PER_EPOCH = 20
MIN_AUTO_BATCH_SIZE = 8
# The smallest input `auto` chooses: the size the quickstart trains at, where
# pool5 is 1x1 (below it the fc layers see one pixel or less).
MIN_AUTO_IMAGE_SIZE = 67
WARMUP_FRACTION = 0.05


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
    schedule: str = "cosine"
    scales_to_data: bool = False
    batchnorm_momentum: float | None = None


RECIPES = {
    "auto": Recipe(
        name="auto",
        normalization="batchnorm",
        init="he",
        augment="paper",
        flip=True,
        lighting=False,
        label_smoothing=0.0,
        mix=False,
        # The rate that trained AlexNet (the paper's, at its batch): the modern
        # 0.1 at 256 is ResNet's, and drives fc6-fc7 (4096 wide, no
        # normalization) to saturated logits within a few steps.
        batch_size=training.PAPER_BATCH_SIZE,
        epochs=10,
        learning_rate=training.PAPER_LEARNING_RATE,
        ten_crop=False,
        scales_to_data=True,
        # Keras' 0.99 averages BatchNorm's statistics over ~100 steps: a short
        # run on a small folder validates with statistics still near their
        # initial values (0 and 1). 0.9 is PyTorch's (its `momentum=0.1`).
        batchnorm_momentum=0.9,
    ),
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
        schedule="plateau",
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


def set_batchnorm_momentum(model: keras.Model, momentum: float | None) -> None:
    """Sets the moving-average momentum of every BatchNormalization layer
    (`None`: leaves Keras' 0.99)."""
    if momentum is None:
        return
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            set_batchnorm_momentum(layer, momentum)
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def get_recipe(name: Any) -> Recipe:
    """The recipe called `name` (`None` for the default, `"auto"`)."""
    if name is None:
        name = DEFAULT_RECIPE
    if name not in RECIPES:
        raise ValueError(
            f"`recipe` should be one of {RECIPE_NAMES}. Received: recipe={name!r}"
        )
    return RECIPES[name]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a run trains with, once the recipe met the data.

    Attributes:
        batch_size: images per step.
        learning_rate: the peak rate (the plateau schedule's first).
        image_size: the input side.
        epochs: the run's length.
        reason: how `auto` chose them, in words (empty for fixed recipes).
    """

    batch_size: int
    learning_rate: float
    image_size: int
    epochs: int
    reason: str = ""


def choose_settings(
    recipe: Recipe,
    *,
    train_images: int | None,
    image_side: float | None,
    default_image_size: int,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    image_size: int | None = None,
    epochs: int | None = None,
) -> Settings:
    """The batch, learning rate, input size and length of a run.

    Given values are kept. A fixed recipe (`paper`, `modern`) fills the others
    with its own. `auto` fits them to the data:

    - batch: the largest power of two that gives an epoch at least
      `MIN_STEPS_PER_EPOCH` steps, from `MIN_AUTO_BATCH_SIZE` up to the
      recipe's 128;
    - learning rate: the recipe's, scaled linearly from its reference batch
      (0.01 at 128) to the batch (Goyal et al., 2017);
    - input size: the images' median side, from 67 to the variant's size.

    Args:
        recipe: the recipe.
        train_images: the number of training images (`None`: unknown).
        image_side: their median side in pixels (`None`: unknown).
        default_image_size: the variant's input size.
        batch_size: the caller's batch (`None`: choose).
        learning_rate: the caller's rate (`None`: choose).
        image_size: the caller's input size (`None`: choose).
        epochs: the caller's run length (`None`: the recipe's).

    Returns:
        `Settings`.
    """
    epochs = epochs or recipe.epochs
    if not recipe.scales_to_data:
        return Settings(
            batch_size or recipe.batch_size,
            learning_rate or recipe.learning_rate,
            image_size or default_image_size,
            epochs,
        )
    reasons = []
    if batch_size is None:
        batch_size = recipe.batch_size
        if train_images:
            fitting = 2 ** int(math.log2(max(1, train_images // MIN_STEPS_PER_EPOCH)))
            batch_size = min(recipe.batch_size, max(MIN_AUTO_BATCH_SIZE, fitting))
            batch_size = min(batch_size, train_images)
            steps = max(1, train_images // batch_size)  # drops the partial batch
            reasons.append(
                f"batch {batch_size} ({steps} steps an epoch of {train_images} images)"
            )
    if learning_rate is None:
        learning_rate = recipe.learning_rate * batch_size / recipe.batch_size
        reasons.append(
            f"learning rate {learning_rate:.4g} ({recipe.learning_rate:g} x "
            f"{batch_size}/{recipe.batch_size}, warm-up then cosine)"
        )
    if image_size is None:
        image_size = default_image_size
        if image_side:
            image_size = int(
                min(default_image_size, max(MIN_AUTO_IMAGE_SIZE, round(image_side)))
            )
            reasons.append(
                f"image size {image_size} (images of about {image_side:.0f} px)"
            )
    return Settings(batch_size, learning_rate, image_size, epochs, ", ".join(reasons))


def plateau_patience(epochs: int) -> int:
    """Epochs without improvement before the paper's /10: a tenth of the run,
    at least 3 (the paper's three cuts in about 90 epochs came every 20 to 30
    epochs; a patience of 1 or 2 cuts a short run's rate on noise)."""
    return max(3, math.ceil(epochs / 10))


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
    if recipe.schedule == "plateau":
        (plateau,) = training.paper_callbacks(
            initial_learning_rate=learning_rate,
            patience=plateau_patience(epochs),
            verbose=1 if verbose else 0,
        )
        return training.PaperSGD(learning_rate=learning_rate), {"plateau": plateau}
    total = max(1, epochs * steps_per_epoch)
    warmup = max(1, round(WARMUP_FRACTION * total))
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
