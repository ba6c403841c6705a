"""Draws the performance chart of the documentation from recorded numbers.

    python benchmarks/plot_performance.py                 # docs/images/performance.png
    python benchmarks/plot_performance.py --data my.json --output chart.png

Reads `benchmarks/recorded.json` (the CPU numbers published in
docs/performance.md, measured by benchmarks/inference.py and
benchmarks/grouped_conv.py); it runs no benchmark itself. The GPU chart has its
own script, benchmarks/plot_gpu.py. After new runs, update the JSON with the
tables and rerun this script. Needs matplotlib (`pip install "keras-alexnet[docs]"`).
"""

from __future__ import annotations

import argparse
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "recorded.json"
DEFAULT_OUTPUT = HERE.parent / "docs" / "images" / "performance.png"


def plot(data: dict, output: pathlib.Path) -> None:
    """Writes a two-panel PNG: whole-model inference and grouped convolutions."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            'The chart needs matplotlib: pip install "keras-alexnet[docs]"'
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    inference, grouped = data["inference"], data["grouped_conv_fwd_bwd"]
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1.25, 1]}
    )

    backends = list(inference["rows"])
    columns = inference["columns"]
    width = 0.8 / len(columns)
    x = np.arange(len(backends))
    for index, column in enumerate(columns):
        values = [inference["rows"][backend][index] for backend in backends]
        bars = left.bar(x + (index - (len(columns) - 1) / 2) * width, values, width)
        bars.set_label(column)
        left.bar_label(bars, fmt="%.0f", fontsize=7)
    left.set_xticks(x, [f"Keras backend:\n{backend}" for backend in backends])
    left.set_ylabel("images / s (higher is better)")
    left.set_title("Whole-model inference, batch 64, CPU")
    left.legend(fontsize=8, ncols=2, loc="upper right")
    left.set_ylim(0, max(max(row) for row in inference["rows"].values()) * 1.35)

    layers = list(grouped["rows"])
    y = np.arange(len(layers))
    height = 0.8 / len(grouped["columns"])
    for index, column in enumerate(grouped["columns"]):
        values = [grouped["rows"][layer][index] for layer in layers]
        bars = right.barh(y + (index - 0.5) * height, values, height, label=column)
        right.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    right.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    right.text(1.03, -0.75, "groups=1", fontsize=8)
    right.set_yticks(y, layers)
    right.invert_yaxis()
    right.set_xlabel("time relative to groups=1 (lower is better)")
    right.set_title(
        "Two groups, forward + backward, CPU\n"
        "(GroupedConv2D splits on TensorFlow and JAX, stays native on PyTorch)",
        fontsize=10,
    )
    right.legend(fontsize=8, loc="lower right")

    figure.suptitle(f"keras-alexnet on {data['machine']}", fontsize=9)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    plot(json.loads(args.data.read_text(encoding="utf-8")), args.output)
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
