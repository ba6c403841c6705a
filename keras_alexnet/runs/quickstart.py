"""`keras-alexnet quickstart`: AlexNet learning, offline, in a few minutes.

On scikit-learn's 1,797 handwritten digits, shipped with the package (8x8 grey
images, enlarged to 32 pixels and written as PNG class folders; CC BY 4.0, see
`keras_alexnet/resources/digits/README.md`), it:

1. shows why the paper's initialisation does not learn here (fc7 features of
   different digits are nearly identical) and He's does;
2. trains the paper's network (LRN, two groups) from scratch on 67 pixel crops
   (`train` with its default recipe, `auto`: He's initialisation, the rate
   scaled to the batch, warm-up then cosine; no flips), writing a run folder
   with its curves and conv1 filters;
3. evaluates it with the paper's ten crops (`evaluate`: per-class CSV and a
   confusion matrix);
4. saves and reloads the `.keras` file, and classifies a few images with it;
5. trains the same network with BatchNorm instead of LRN, and plots both runs
   on one figure, `lrn_vs_batchnorm.png`.
"""

from __future__ import annotations

import os
import time
from typing import Any

import keras
import numpy as np

from keras_alexnet.resources import write_digits_folder
from keras_alexnet.runs import models, plots
from keras_alexnet.runs.evaluate import evaluate
from keras_alexnet.runs.train import train
from keras_alexnet.weights.keras_file import load_keras_file

IMAGE_SIZE = 67
PNG_SIZE = 32
EPOCHS = 6
# fc6 and fc7 512 wide instead of 4096: the same accuracy on 10 digits, and
# checkpoints of 22 MB instead of 160 MB (weights and momentum), so that the
# whole quickstart folder stays well under 400 MB.
FC_UNITS = 512


def quickstart(
    output: str | os.PathLike = "runs/quickstart",
    *,
    epochs: int | None = None,
    smoke: bool = False,
    seed: int = 0,
    verbose: int = 1,
) -> dict[str, Any]:
    """Runs the quickstart (see the module docstring) into `output`.

    Args:
        output: the folder of the data and the two runs.
        epochs: epochs per run (default 6; 1 with `smoke`).
        smoke: 4 images a class, 1 epoch, fc6 and fc7 64 wide: a check of
            every step that takes seconds, not a measurement.
        seed: seeds the data split, initialisation and augmentation.
        verbose: 0 silent, 1 progress.

    Returns:
        `{"lrn": metrics, "batchnorm": metrics, "ten_crop": metrics}`.
    """
    say = print if verbose else (lambda *args, **kwargs: None)
    output = os.path.abspath(os.path.expanduser(os.fspath(output)))
    epochs = epochs or (1 if smoke else EPOCHS)
    started = time.perf_counter()

    data = os.path.join(output, "digits")
    if not os.path.isdir(os.path.join(data, "val")):
        write_digits_folder(
            data, image_size=PNG_SIZE, per_class=4 if smoke else None, seed=seed
        )
    counts = {
        split: sum(len(files) for _, _, files in os.walk(os.path.join(data, split)))
        for split in ("train", "val")
    }
    say(
        f"Data: scikit-learn's handwritten digits (UCI, CC BY 4.0), 10 classes, "
        f"{counts['train']} training and {counts['val']} validation images, "
        f"{PNG_SIZE} px PNGs in {data}"
    )

    say("\n1. Why the paper's initialisation does not learn here")
    similarity = fc7_similarity(data, seed=seed)
    for init, value in similarity.items():
        say(
            f"   init={init:<5}: fc7 features of different digits have a mean cosine "
            f"similarity of {value:.5f}"
        )

    common: dict[str, Any] = {
        # The default recipe chooses the batch (64) and its rate (0.005).
        "recipe": "auto",
        "init": "he",
        # The smoke check keeps the layers but not their width: small files.
        "fc_units": 64 if smoke else FC_UNITS,
        "image_size": IMAGE_SIZE,
        "batch_size": 10 if smoke else None,
        "epochs": epochs,
        "flip": False,  # digits are not mirror-symmetric
        "lighting": False,  # nor coloured
        "ten_crop": False,
        "seed": seed,
        "verbose": verbose,
    }
    results: dict[str, Any] = {}
    for step, normalization in (("2", "lrn"), ("5", "batchnorm")):
        if normalization == "batchnorm":
            say(
                "\n5. The same network with BatchNorm instead of LRN "
                f"({_epochs(epochs)})"
            )
        else:
            say(f"\n{step}. Training AlexNet (LRN) from scratch, {_epochs(epochs)}")
        results[normalization] = train(
            data,
            os.path.join(output, normalization),
            normalization=normalization,
            **common,
        )
        if normalization == "lrn":
            _evaluate_and_classify(data, output, results, say, verbose)

    logs = {
        name: plots.read_log(os.path.join(output, name, "log.csv"))
        for name in ("lrn", "batchnorm")
    }
    comparison = os.path.join(output, "lrn_vs_batchnorm.png")
    plots.plot_curves(
        {"LRN": logs["lrn"], "BatchNorm": logs["batchnorm"]},
        comparison,
        title="AlexNet on handwritten digits: LRN against BatchNorm",
    )
    say(
        f"\nValidation top-1 after {_epochs(epochs)}: LRN "
        f"{100 * results['lrn']['top1']:.1f} %, BatchNorm "
        f"{100 * results['batchnorm']['top1']:.1f} % (chance: 10 %)."
    )
    say(f"Both runs on one plot: {comparison}")
    say(
        f"Pictures: {os.path.join(output, 'lrn', 'curves.png')}, "
        f"{os.path.join(output, 'lrn', 'conv1_filters.png')}, "
        f"{os.path.join(output, 'evaluation', 'confusion_matrix.png')}"
    )
    say(f"Done in {time.perf_counter() - started:.0f} s.")
    return results


def _evaluate_and_classify(data, output, results, say, verbose):
    best = os.path.join(output, "lrn", "best.keras")
    say("\n3. Evaluating the best checkpoint with the paper's ten crops")
    results["ten_crop"] = evaluate(
        data,
        best,
        output=os.path.join(output, "evaluation"),
        ten_crop=True,
        verbose=verbose,
    )
    say(f"\n4. Saving and reloading {best}, classifying a few images")
    model = load_keras_file(best)
    saved = os.path.join(output, "alexnet_digits.keras")
    model.save(saved)
    reloaded = load_keras_file(saved)
    images, labels, paths = _some_validation_images(data, count=6)
    x = _center_crops(paths)
    before = keras.ops.convert_to_numpy(model(x, training=False))
    after = keras.ops.convert_to_numpy(reloaded(x, training=False))
    difference = float(np.max(np.abs(before - after)))
    say(f"   {saved}: reloaded, predictions differ by at most {difference:.1e}")
    results["reload_max_difference"] = difference
    for path, label, row in zip(paths, labels, after, strict=True):
        guess = int(np.argmax(row))
        mark = "right" if guess == label else "wrong"
        say(
            f"   {os.path.relpath(path, output)}: {guess} "
            f"({100 * row[guess]:.0f} %), true {label}, {mark}"
        )
    del images


def _some_validation_images(data, count):
    val = os.path.join(data, "val")
    paths, labels = [], []
    for digit in sorted(os.listdir(val))[:count]:
        name = sorted(os.listdir(os.path.join(val, digit)))[0]
        paths.append(os.path.join(val, digit, name))
        labels.append(int(digit))
    return None, labels, paths


def _center_crops(paths):
    import tensorflow as tf

    from keras_alexnet.data import augment
    from keras_alexnet.data.imagenet import default_resize_size
    from keras_alexnet.preprocessing import preprocess_input

    crops = [
        np.asarray(
            augment.eval_center_crop(
                tf.io.read_file(path),
                image_size=IMAGE_SIZE,
                resize_size=default_resize_size(IMAGE_SIZE),
                antialias=False,
            )
        )
        for path in paths
    ]
    return preprocess_input(np.stack(crops), "original", data_format="channels_last")


def fc7_similarity(data: str, *, seed: int = 0, per_class: int = 4) -> dict[str, float]:
    """Mean cosine similarity of fc7 features of different digits, per init.

    Near 1: every image gets the same features (see
    `keras_alexnet.runs.models`).
    """
    val = os.path.join(data, "val")
    paths = [
        os.path.join(val, digit, name)
        for digit in sorted(os.listdir(val))
        for name in sorted(os.listdir(os.path.join(val, digit)))[:per_class]
    ]
    x = _center_crops(paths)
    result = {}
    for init in ("paper", "he"):
        model = models.build_classifier(10, image_size=IMAGE_SIZE, init=init, seed=seed)
        fc7 = keras.Model(model.input, model.get_layer("fc7").output)
        features = np.asarray(keras.ops.convert_to_numpy(fc7(x)), np.float64)
        unit = features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-12)
        cosine = unit @ unit.T
        result[init] = float(cosine[np.triu_indices(len(x), 1)].mean())
    return result


def _epochs(count: int) -> str:
    return f"{count} epoch" + ("" if count == 1 else "s")
