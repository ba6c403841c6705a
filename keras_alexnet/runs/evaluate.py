"""`evaluate`: top-1 / top-5 of a model on a dataset, per class, with a
confusion matrix, centre crop or the paper's ten crops."""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import keras
import numpy as np

from keras_alexnet._terminal import printable
from keras_alexnet.data.storage import is_url
from keras_alexnet.runs import models, plots
from keras_alexnet.runs.datasets import make_validation_dataset, resolve_data
from keras_alexnet.runs.run_folder import RunFolder
from keras_alexnet.runs.run_mirror import local_copy
from keras_alexnet.weights.download import write_atomically
from keras_alexnet.weights.keras_file import load_keras_file


def predict_scores(
    model: keras.Model, dataset: Iterable, *, steps: int | None = None, verbose: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and true labels of every image of `dataset`.

    Batches of ten crops `(batch, 10, H, W, C)` are averaged per image (the
    paper's test); one-hot labels are turned into class indices.

    Returns:
        `(probabilities (images, classes), labels (images,))`.
    """
    progress = None
    if verbose:
        # A bar redrawn in place on a terminal; one line at the end in a log.
        progress = keras.utils.Progbar(
            steps, unit_name="batch", verbose=1 if sys.stdout.isatty() else 2
        )
    scores, truths = [], []
    for step, (images, labels) in enumerate(dataset, start=1):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim == 5:
            n, k = images.shape[:2]
            out = model.predict_on_batch(images.reshape((n * k, *images.shape[2:])))
            out = np.asarray(keras.ops.convert_to_numpy(out), np.float64)
            out = out.reshape(n, k, -1).mean(axis=1)
        else:
            out = np.asarray(
                keras.ops.convert_to_numpy(model.predict_on_batch(images)), np.float64
            )
        scores.append(out)
        truths.append(labels.argmax(-1) if labels.ndim == 2 else labels)
        if progress is not None:
            progress.update(step)
    if not scores:
        raise ValueError("The evaluation data holds no images.")
    return np.concatenate(scores), np.concatenate(truths).astype(np.int64)


CENTRE = "centre"
TEN_CROP = "ten-crop"
CROP_WORDS = {CENTRE: "centre crop", TEN_CROP: "ten crops"}
# What `evaluate(output=...)` writes; an output holding anything else is refused.
EVALUATION_FILES = frozenset({"metrics.json", "per_class.csv", "confusion_matrix.png"})
TOP_K = 5


def score(
    probabilities: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Top-1, top-5, per-class rows and the confusion matrix of predictions.

    Top-5 is left out with 5 classes or fewer, where it is 100 % by definition.

    Returns:
        `{"top1", "top5" (more than 5 classes), "images", "per_class",
        "confusion"}`.
    """
    ranked = np.argsort(-probabilities, axis=-1, kind="stable")
    top1 = ranked[:, 0] == labels
    with_top5 = len(class_names) > TOP_K
    top5 = np.any(ranked[:, :TOP_K] == labels[:, None], axis=-1)
    n = len(class_names)
    matrix = np.zeros((n, n), np.int64)
    np.add.at(matrix, (labels, ranked[:, 0]), 1)
    per_class = []
    for c, name in enumerate(class_names):
        seen = labels == c
        row: dict[str, Any] = {
            "class": name,
            "images": int(np.sum(seen)),
            "top1": float(top1[seen].mean()) if np.any(seen) else None,
        }
        if with_top5:
            row["top5"] = float(top5[seen].mean()) if np.any(seen) else None
        per_class.append(row)
    result: dict[str, Any] = {"top1": float(top1.mean())}
    if with_top5:
        result["top5"] = float(top5.mean())
    result.update(images=int(len(labels)), per_class=per_class, confusion=matrix)
    return result


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The scores of a `score` result: `top1`, `top5` where defined, `images`."""
    return {k: result[k] for k in ("top1", "top5", "images") if k in result}


def describe(metrics: dict[str, Any]) -> str:
    """`top-1 72.50 %, top-5 95.00 % on 40 images`, top-5 where defined."""
    line = f"top-1 {100 * metrics['top1']:.2f} %"
    if "top5" in metrics:
        line += f", top-5 {100 * metrics['top5']:.2f} %"
    return f"{line} on {metrics['images']} images"


def checkpoint_label(checkpoint: dict[str, Any]) -> str:
    """`best.keras (epoch 2)`: the file a run's scores are of."""
    return f"{checkpoint['file']} (epoch {checkpoint['epoch']})"


def evaluate_run(
    folder: RunFolder,
    data: Iterable,
    class_names: Sequence[str],
    *,
    ten_crop_data: Iterable | None = None,
    verbose: int = 1,
) -> tuple[keras.Model, dict[str, Any]]:
    """Scores a run's best checkpoint on `data` (centre crops), and on
    `ten_crop_data` if given; writes `per_class.csv` and `confusion_matrix.png`.

    The checkpoint is `folder.best_checkpoint()`: `best.keras`, which
    `evaluate(DATA, "OUTPUT/best.keras")` scores the same way.

    Returns:
        `(the checkpoint's model, metrics)`: metrics are the centre crop's
        `top1`, `top5` (more than 5 classes), `images`, with `crop`,
        `checkpoint` (file, epoch, score, how it was chosen), `ten_crop`
        (its own scores) when computed, and `pictures` (`{file: title}`).
    """
    checkpoint = folder.best_checkpoint()
    label = checkpoint_label(checkpoint)
    model = load_keras_file(folder.path(checkpoint["file"]))
    results = {}
    for crop, dataset in ((CENTRE, data), (TEN_CROP, ten_crop_data)):
        if dataset is None:
            continue
        steps = _steps(dataset)
        if verbose:
            print(
                f"Evaluating {label} on {steps or 'the'} batches ({CROP_WORDS[crop]})"
            )
        results[crop] = score(
            *predict_scores(model, dataset, steps=steps, verbose=verbose), class_names
        )
    metrics = {**summary(results[CENTRE]), "crop": CENTRE, "checkpoint": checkpoint}
    if TEN_CROP in results:
        metrics["ten_crop"] = {**summary(results[TEN_CROP]), "crop": TEN_CROP}
    if verbose:
        for crop, result in results.items():
            print(f"{label}, {CROP_WORDS[crop]}: {describe(summary(result))}")
    write_per_class_csv(
        [(crop, checkpoint["file"], result) for crop, result in results.items()],
        folder.path("per_class.csv"),
    )
    title = confusion_title(label, CENTRE, results[CENTRE])
    plots.plot_confusion_matrix(
        results[CENTRE]["confusion"],
        class_names,
        folder.path("confusion_matrix.png"),
        title=title,
    )
    metrics["pictures"] = {"confusion_matrix.png": title}
    return model, metrics


def confusion_title(checkpoint: str, crop: str, result: dict[str, Any]) -> str:
    return (
        f"{checkpoint}, {CROP_WORDS[crop]}: top-1 {100 * result['top1']:.1f} % "
        f"on {result['images']} images"
    )


def write_per_class_csv(
    evaluations: Sequence[tuple[str, str, dict[str, Any]]], path: str
) -> None:
    """One row per class and evaluation: `class, images, top1, [top5,] crop,
    checkpoint`.

    Args:
        evaluations: `(crop, checkpoint file, score result)` of each evaluation.
        path: the CSV to write (atomically).
    """
    fields = ["class", "images", "top1"]
    if any("top5" in result for _, _, result in evaluations):
        fields.append("top5")
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=[*fields, "crop", "checkpoint"], lineterminator="\n"
    )
    writer.writeheader()
    for crop, checkpoint, result in evaluations:
        for row in result["per_class"]:
            writer.writerow({**row, "crop": crop, "checkpoint": checkpoint})

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(buffer.getvalue())

    write_atomically(path, write)


def _steps(data: Any) -> int | None:
    try:
        count = int(data.cardinality())
    except (AttributeError, TypeError):
        return None
    return count if count >= 0 else None


def load_any_model(
    weights: str | os.PathLike,
    *,
    variant: str | None = None,
    classes: int | None = None,
) -> tuple[keras.Model, str]:
    """Loads a model to evaluate or classify with, inferring what it can.

    `.keras` files hold their whole model. `.caffemodel` files are the original
    variant, `.pth`/`.pt` torchvision's, a `.weights.h5` the variant it records
    (else the one its conv1 implies); their class count is read from the
    checkpoint's last layer; `"imagenet"` is the variant's ImageNet checkpoint.
    A URL (`gs://.../best.keras`) is read from a local copy (`local_copy`).

    Returns:
        `(model, variant)`.
    """
    from keras_alexnet import AlexNet
    from keras_alexnet.weights import architecture, formats
    from keras_alexnet.weights.registry import Checkpoint
    from keras_alexnet.weights.spec import resolve_weights

    weights = local_copy(weights)
    _, value = resolve_weights(os.path.expanduser(os.fspath(weights)), variant=variant)
    if isinstance(value, Checkpoint):
        variant = variant or value.variant
        return AlexNet(weights=value, variant=variant), variant
    path = os.fspath(str(value))
    if formats.weights_format(path) == "keras":
        model = load_keras_file(path)
        names = {layer.name for layer in models._all_layers(model)}
        inferred = (
            "original"
            if "norm1" in names or _conv1_filters(model) == 96
            else ("torchvision")
        )
        return model, variant or inferred
    if classes is None or variant is None:
        stored = architecture.file_classes_and_variant(path)
        classes = classes or stored["classes"] or 1000
        variant = variant or stored["variant"] or "original"
    # The builder reads the architecture (LRN constants included) from the file.
    return AlexNet(weights=path, variant=variant, classes=classes), variant


def _conv1_filters(model: keras.Model) -> int | None:
    for layer in models._all_layers(model):
        if layer.name == "conv1":
            return int(layer.kernel.shape[-1])
    return None


def evaluate(
    data: str | os.PathLike,
    weights: str | os.PathLike,
    *,
    output: str | os.PathLike | None = None,
    variant: str | None = None,
    image_size: int | None = None,
    batch_size: int = 64,
    ten_crop: bool = False,
    validation_split: float | None = None,
    seed: int = 0,
    verbose: int = 1,
    allow_small_classes: bool = False,
) -> dict[str, Any]:
    """Evaluates a model on the validation images of `data`.

    On a run's `best.keras` with the centre crop, the scores are those of the
    run's `metrics.json`.

    Args:
        data: as for `keras_alexnet.runs.train`; its validation images are used.
        weights: a `.keras` file (a trained run's `best.keras`, also at a
            URL), a `.caffemodel`/`.pth` checkpoint, or `"imagenet"`.
        output: a local folder for `metrics.json`, `per_class.csv` and
            `confusion_matrix.png`; new, or holding only those; `None` writes
            nothing.
        variant: the preprocessing's checkpoint; inferred from `weights`.
        image_size: defaults to the model's input size.
        batch_size: images per batch.
        ten_crop: average the paper's ten crops instead of the centre crop.
        validation_split: as for `train`, to evaluate on the held-out part.
        seed: the seed of that split (use the training run's).
        verbose: 0 silent, 1 progress bars.
        allow_small_classes: as for `train`.

    Returns:
        `{"top1", "top5" (more than 5 classes), "images", "crop", "weights"}`.

    Raises:
        ValueError: `output` holds other files, the model's outputs and the
            classes of `data` differ, or as `resolve_data`.
    """
    folder = None if output is None else _evaluation_folder(output)
    model, variant = load_any_model(weights, variant=variant)
    size = image_size or models.describe_model(model)["image_size"]
    if size is None:
        size = models.default_image_size(variant)
    spec = resolve_data(
        data,
        validation_split=validation_split,
        allow_small_classes=allow_small_classes,
    )
    crop = TEN_CROP if ten_crop else CENTRE
    val, class_names = make_validation_dataset(
        spec,
        seed=seed,
        variant=variant,
        image_size=size,
        batch_size=max(1, batch_size // 10) if ten_crop else batch_size,
        eval_augment="ten_crop" if ten_crop else "center_crop",
    )
    outputs = int(model.output_shape[-1])
    if outputs != len(class_names):
        raise ValueError(
            f"The model has {outputs} outputs but {os.fspath(data)!r} has "
            f"{len(class_names)} classes."
        )
    result = score(
        *predict_scores(model, val, steps=_steps(val), verbose=verbose), class_names
    )
    metrics = {**summary(result), "crop": crop, "weights": os.fspath(weights)}
    name = os.path.basename(os.fspath(weights))
    if verbose:
        print(f"{printable(name)}, {CROP_WORDS[crop]}: {describe(metrics)}")
    if folder is not None:
        os.makedirs(folder.root, exist_ok=True)
        write_per_class_csv([(crop, name, result)], folder.path("per_class.csv"))
        plots.plot_confusion_matrix(
            result["confusion"],
            class_names,
            folder.path("confusion_matrix.png"),
            title=confusion_title(name, crop, result),
        )
        folder.write_json("metrics.json", metrics)
    return metrics


def _evaluation_folder(output: str | os.PathLike) -> RunFolder:
    if is_url(output):
        # realpath would make "gs://b/eval" a local folder named "gs:".
        raise ValueError(
            "`output` of an evaluation should be a local or mounted folder. "
            f"Received: output={os.fspath(output)!r}"
        )
    folder = RunFolder(output)
    if os.path.isdir(folder.root):
        foreign = sorted(set(os.listdir(folder.root)) - EVALUATION_FILES)
        if foreign:
            shown = ", ".join(repr(name) for name in foreign[:3])
            raise ValueError(
                "`output` should be a new folder or one holding only "
                f"{sorted(EVALUATION_FILES)}. Received: output={os.fspath(output)!r} "
                f"({folder.root}), which holds {shown}"
                + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            )
    return folder
