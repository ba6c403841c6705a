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
    axes[2].set(title="Learning rate", xlabel="epoch", yscale="log")
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


def plot_conv1_filters(
    kernel: np.ndarray, path: str | os.PathLike, *, title: str = ""
) -> None:
    """Draws conv1's filters as RGB tiles, like the paper's Figure 3.

    The paper shows its 96 filters as the 48 learned on each GPU; here the
    first and second halves of the filters are the two groups (conv1 itself is
    not split). Each filter is scaled to [0, 1] on its own, as in the figure.

    Args:
        kernel: conv1's kernel, `(height, width, 3, filters)`.
        path: the PNG to write.
        title: the figure's title.
    """
    plt = _pyplot()
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim != 4 or kernel.shape[2] != 3:
        raise ValueError(
            "`kernel` should be (height, width, 3, filters). Received: "
            f"kernel.shape={kernel.shape}"
        )
    filters = kernel.shape[-1]
    groups = 2 if filters % 2 == 0 and filters >= 16 else 1
    per_group = filters // groups
    columns = min(per_group, 16 if per_group % 16 == 0 else 12)
    rows = -(-per_group // columns)
    figure, axes = plt.subplots(
        groups * rows, columns, figsize=(columns * 0.6, groups * rows * 0.6 + 0.8)
    )
    axes = np.atleast_2d(axes)
    for axis in axes.flat:
        axis.axis("off")
    for index in range(filters):
        group, within = divmod(index, per_group)
        row, column = divmod(within, columns)
        tile = kernel[..., index]
        tile = (tile - tile.min()) / (np.ptp(tile) + 1e-12)
        axes[group * rows + row, column].imshow(tile, interpolation="nearest")
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout(pad=0.2, h_pad=0.1 if groups == 1 else 0.1, w_pad=0.1)
    if groups == 2:
        # A gap between the two groups, as between the figure's two GPUs.
        figure.subplots_adjust(hspace=0.15)
        line_y = 0.5 * (
            axes[rows - 1, 0].get_position().y0 + axes[rows, 0].get_position().y1
        )
        figure.add_artist(plt.Line2D([0.02, 0.98], [line_y, line_y], color="k", lw=1.5))
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
