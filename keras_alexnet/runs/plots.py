"""The pictures of a run: training curves, conv1 filters, a confusion matrix.

matplotlib is imported inside each function (`pip install keras-alexnet[plots]`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "The run's pictures need matplotlib: `pip install keras-alexnet[plots]` "
            "(or `pip install matplotlib`)."
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_log(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a run's `log.csv` into one float array per column."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {key: np.array([float(row[key]) for row in rows]) for key in rows[0]}


def plot_curves(
    logs: Mapping[str, Mapping[str, np.ndarray]],
    path: str | os.PathLike,
    *,
    title: str = "",
) -> None:
    """Plots loss, top-1 / top-5 accuracy and learning rate per epoch.

    Args:
        logs: `{label: log}` with each log as `read_log` returns; several runs
            (LRN and BatchNorm, say) share the axes, one colour per run, solid
            for training and dashed for validation.
        path: the PNG to write.
        title: the figure's title.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (label, log), colour in zip(logs.items(), colours, strict=False):
        if "epoch" not in log:
            continue
        epochs = log["epoch"]
        for key, style, name in (("loss", "-", "train"), ("val_loss", "--", "val")):
            if key in log:
                axes[0].plot(
                    epochs,
                    log[key],
                    style,
                    color=colour,
                    marker="o",
                    markersize=3,
                    label=f"{label} {name}",
                )
        for key, style, name in (
            ("accuracy", "-", "train top-1"),
            ("val_accuracy", "--", "val top-1"),
            ("val_top5", ":", "val top-5"),
        ):
            if key in log:
                axes[1].plot(
                    epochs,
                    100 * log[key],
                    style,
                    color=colour,
                    marker="o",
                    markersize=3,
                    label=f"{label} {name}",
                )
        if "learning_rate" in log:
            axes[2].plot(
                epochs,
                log["learning_rate"],
                "-",
                color=colour,
                marker="o",
                markersize=3,
                label=label,
            )
    axes[0].set(title="Loss", xlabel="epoch", ylabel="cross-entropy", yscale="log")
    axes[1].set(title="Accuracy", xlabel="epoch", ylabel="%", ylim=(0, 100))
    rates = [
        rate for log in logs.values() for rate in np.ravel(log.get("learning_rate", []))
    ]
    # A log scale shows a schedule's decades, but no rate of 0 (the end of a
    # cosine): a run of only such rates is drawn on a linear scale.
    rate_scale = "log" if any(rate > 0 for rate in rates) else "linear"
    axes[2].set(title="Learning rate", xlabel="epoch", yscale=rate_scale)
    from matplotlib.ticker import MaxNLocator

    for axis in axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def conv1_change(initial: np.ndarray, trained: np.ndarray) -> float:
    """How far conv1 moved: `|trained - initial| / |initial|`, Frobenius norms."""
    initial = np.asarray(initial, np.float64)
    trained = np.asarray(trained, np.float64)
    if initial.shape != trained.shape:
        raise ValueError(
            "`initial` and `trained` should have the same shape. Received: "
            f"initial.shape={initial.shape}, trained.shape={trained.shape}"
        )
    return float(np.linalg.norm(trained - initial) / np.linalg.norm(initial))


def filter_mosaic(kernel: np.ndarray) -> np.ndarray:
    """conv1's filters tiled as an RGB image, each scaled to [0, 1] on its own.

    The first and second halves of the filters (the paper's two GPUs, 48
    each) are two blocks of rows with a wider gap between them; white lines
    separate the tiles.

    Args:
        kernel: `(height, width, 3, filters)`.

    Returns:
        A float image `(rows, columns, 3)` in [0, 1].
    """
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim != 4 or kernel.shape[2] != 3:
        raise ValueError(
            "`kernel` should be (height, width, 3, filters). Received: "
            f"kernel.shape={kernel.shape}"
        )
    height, width, _, filters = kernel.shape
    groups = 2 if filters % 2 == 0 and filters >= 16 else 1
    per_group = filters // groups
    columns = min(per_group, 16 if per_group % 16 == 0 else 12)
    rows = -(-per_group // columns)
    gap, group_gap = 1, max(2, height // 2)
    step_y, step_x = height + gap, width + gap
    mosaic = np.ones(
        (groups * rows * step_y + (groups - 1) * group_gap, columns * step_x, 3)
    )
    for index in range(filters):
        group, within = divmod(index, per_group)
        row, column = divmod(within, columns)
        tile = kernel[..., index]
        tile = (tile - tile.min()) / (np.ptp(tile) + 1e-12)
        y = (group * rows + row) * step_y + group * group_gap
        x = column * step_x
        mosaic[y : y + height, x : x + width] = tile
    return mosaic


def plot_conv1_filters(
    kernel: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str = "",
    initial: np.ndarray | None = None,
) -> None:
    """Draws conv1's filters as RGB tiles, beside their initial values if given.

    The layout is that of the paper's Figure 3 (two blocks, one per GPU's
    filters; conv1 itself is not split here); whether the filters are like
    the figure's is for the caption to say (see docs/training.md).

    Args:
        kernel: conv1's kernel, `(height, width, 3, filters)`.
        path: the PNG to write.
        title: the figure's title.
        initial: conv1's kernel before the run's first step (random, or
            pretrained when fine-tuning), drawn on the left.
    """
    plt = _pyplot()
    panels = [("trained", filter_mosaic(kernel))]
    if initial is not None:
        conv1_change(initial, kernel)  # the same shape
        panels.insert(0, ("at the start of the run", filter_mosaic(initial)))
    rows, columns = panels[0][1].shape[:2]
    figure, axes = plt.subplots(
        1,
        len(panels),
        figsize=(len(panels) * columns / 24 + 0.4, rows / 24 + 1.0),
        squeeze=False,
    )
    for axis, (name, mosaic) in zip(axes[0], panels, strict=True):
        axis.imshow(mosaic, interpolation="nearest")
        axis.set_axis_off()
        if initial is not None:
            axis.set_title(name, fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout(pad=0.3)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_confusion_matrix(
    matrix: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str = "",
) -> None:
    """Draws a confusion matrix, rows the true classes, as fractions of each row.

    Args:
        matrix: counts, `(classes, classes)`, `matrix[true, predicted]`.
        class_names: the class names.
        path: the PNG to write.
        title: the figure's title.
    """
    plt = _pyplot()
    matrix = np.asarray(matrix, np.float64)
    n = len(class_names)
    fractions = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(max(4.0, 0.45 * n + 2), 24)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axis, fraction=0.046, label="fraction of the true class")
    if n <= 40:
        axis.set_xticks(range(n), [str(c) for c in class_names], rotation=90)
        axis.set_yticks(range(n), [str(c) for c in class_names])
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    if matrix[i, j]:
                        axis.text(
                            j,
                            i,
                            int(matrix[i, j]),
                            ha="center",
                            va="center",
                            fontsize=8,
                            color="white" if fractions[i, j] > 0.5 else "black",
                        )
    axis.set(xlabel="predicted class", ylabel="true class", title=title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
