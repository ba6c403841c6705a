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

from keras_alexnet.runs import models, plots
from keras_alexnet.runs.datasets import make_datasets, resolve_data
from keras_alexnet.runs.run_folder import RunFolder

WEIGHT_SUFFIXES = (".keras", ".weights.h5", ".caffemodel", ".pth", ".pt")


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


def score(
    probabilities: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Top-1, top-5, per-class rows and the confusion matrix of predictions."""
    ranked = np.argsort(-probabilities, axis=-1, kind="stable")
    k = min(5, probabilities.shape[-1])
    top1 = ranked[:, 0] == labels
    top5 = np.any(ranked[:, :k] == labels[:, None], axis=-1)
    n = len(class_names)
    matrix = np.zeros((n, n), np.int64)
    np.add.at(matrix, (labels, ranked[:, 0]), 1)
    per_class = [
        {
            "class": name,
            "images": int(np.sum(labels == c)),
            "top1": float(top1[labels == c].mean()) if np.any(labels == c) else None,
            "top5": float(top5[labels == c].mean()) if np.any(labels == c) else None,
        }
        for c, name in enumerate(class_names)
    ]
    return {
        "top1": float(top1.mean()),
        "top5": float(top5.mean()),
        "images": int(len(labels)),
        "per_class": per_class,
        "confusion": matrix,
    }


def evaluate_model(
    model: keras.Model,
    data: Iterable,
    class_names: Sequence[str],
    *,
    folder: RunFolder | None = None,
    ten_crop_data: Iterable | None = None,
    verbose: int = 1,
) -> dict[str, Any]:
    """Scores `model` on `data` (centre crops), and on `ten_crop_data` if given.

    With a `folder`, writes `per_class.csv` and `confusion_matrix.png` there.

    Returns:
        `{"top1", "top5", "images"}` (and `"ten_crop_top1"`, `"ten_crop_top5"`).
    """
    steps = _steps(data)
    if verbose:
        print(f"Evaluating on {steps or 'the'} batches (centre crop)")
    result = score(
        *predict_scores(model, data, steps=steps, verbose=verbose), class_names
    )
    metrics = {key: result[key] for key in ("top1", "top5", "images")}
    final = result
    if ten_crop_data is not None:
        steps = _steps(ten_crop_data)
        if verbose:
            print(f"Evaluating on {steps or 'the'} batches of ten crops")
        ten = score(
            *predict_scores(model, ten_crop_data, steps=steps, verbose=verbose),
            class_names,
        )
        metrics["ten_crop_top1"], metrics["ten_crop_top5"] = ten["top1"], ten["top5"]
        final = ten
    if verbose:
        line = (
            f"top-1 {100 * metrics['top1']:.2f} %, top-5 {100 * metrics['top5']:.2f} %"
        )
        if "ten_crop_top1" in metrics:
            line += (
                f"; ten crops: top-1 {100 * metrics['ten_crop_top1']:.2f} %, "
                f"top-5 {100 * metrics['ten_crop_top5']:.2f} %"
            )
        print(f"{line} on {metrics['images']} images")
    if folder is not None:
        write_per_class_csv(final["per_class"], folder.path("per_class.csv"))
        plots.plot_confusion_matrix(
            final["confusion"],
            class_names,
            folder.path("confusion_matrix.png"),
            title=f"Confusion matrix, top-1 {100 * final['top1']:.1f} %",
        )
    return metrics


def write_per_class_csv(rows: list[dict[str, Any]], path: str) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=["class", "images", "top1", "top5"], lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    with open(path, "w", encoding="utf-8") as f:
        f.write(buffer.getvalue())


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

    Returns:
        `(model, variant)`.
    """
    text = os.fspath(weights)
    lower = text.lower()
    if text == "imagenet":
        variant = variant or "original"
        from keras_alexnet import AlexNet

        return AlexNet(weights="imagenet", variant=variant), variant
    if not os.path.isfile(os.path.expanduser(text)):
        raise ValueError(
            "--weights should be 'imagenet' or the path of a weights file. "
            f"Received: {text!r}, which is not a file"
        )
    path = os.path.expanduser(text)
    if lower.endswith(".keras"):
        model = keras.saving.load_model(path)
        names = {layer.name for layer in models._all_layers(model)}
        inferred = (
            "original"
            if "norm1" in names or _conv1_filters(model) == 96
            else ("torchvision")
        )
        return model, variant or inferred
    if lower.endswith((".caffemodel", ".pth", ".pt", ".weights.h5")):
        from keras_alexnet import AlexNet
        from keras_alexnet.weights import architecture

        if classes is None or variant is None:
            stored = architecture.file_classes_and_variant(path)
            classes = classes or stored["classes"] or 1000
            variant = variant or stored["variant"] or "original"
        # The builder reads the architecture (LRN constants included) from the file.
        return AlexNet(weights=path, variant=variant, classes=classes), variant
    raise ValueError(
        f"--weights should end in one of {WEIGHT_SUFFIXES} or be 'imagenet'. "
        f"Received: {text!r}"
    )


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
) -> dict[str, Any]:
    """Evaluates a model on the validation images of `data`.

    Args:
        data: as for `keras_alexnet.runs.train`; its validation images are used.
        weights: a `.keras` file (a trained run's `best.keras`), a
            `.caffemodel`/`.pth` checkpoint, or `"imagenet"`.
        output: a folder for `metrics.json`, `per_class.csv` and
            `confusion_matrix.png`; `None` writes nothing.
        variant: the preprocessing's checkpoint; inferred from `weights`.
        image_size: defaults to the model's input size.
        batch_size: images per batch.
        ten_crop: average the paper's ten crops instead of the centre crop.
        validation_split: as for `train`, to evaluate on the held-out part.
        seed: the seed of that split (use the training run's).
        verbose: 0 silent, 1 progress bars.

    Returns:
        `{"top1", "top5", "images"}` (ten-crop scores under the same keys).
    """
    model, variant = load_any_model(weights, variant=variant)
    size = image_size or models.describe_model(model)["image_size"]
    if size is None:
        size = models.default_image_size(variant)
    spec = resolve_data(data, validation_split=validation_split)
    _, val, class_names = make_datasets(
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
    folder = None if output is None else RunFolder(output)
    if folder is not None:
        os.makedirs(folder.root, exist_ok=True)
    result = score(
        *predict_scores(model, val, steps=_steps(val), verbose=verbose), class_names
    )
    metrics = {
        "top1": result["top1"],
        "top5": result["top5"],
        "images": result["images"],
        "crops": "ten" if ten_crop else "centre",
        "weights": os.fspath(weights),
    }
    if verbose:
        print(
            f"top-1 {100 * metrics['top1']:.2f} %, top-5 {100 * metrics['top5']:.2f} % "
            f"on {metrics['images']} images ({metrics['crops']} crop)"
        )
    if folder is not None:
        folder.write_json("metrics.json", metrics)
        write_per_class_csv(result["per_class"], folder.path("per_class.csv"))
        plots.plot_confusion_matrix(
            result["confusion"],
            class_names,
            folder.path("confusion_matrix.png"),
            title=f"{os.path.basename(os.fspath(weights))}: top-1 "
            f"{100 * result['top1']:.1f} %",
        )
    return metrics
