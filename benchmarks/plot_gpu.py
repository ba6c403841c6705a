"""Draws the GPU runs of `benchmarks/gpu.py` as PNGs for the documentation.

    python benchmarks/plot_gpu.py    # docs/images/gpu_h100.png, gpu_h200.png

Reads the `gpu_results.json` files `benchmarks/gpu.py --out` wrote on the H100
and the H200 (kept in `benchmarks/results/`); it runs nothing on a GPU. Needs
matplotlib (`pip install "keras-alexnet[docs]"`).
"""

from __future__ import annotations

import argparse
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
RUNS = [
    HERE / "results" / "gpu_h100_run1.json",
    HERE / "results" / "gpu_h100_run2.json",
]
DEFAULT_OUTPUT = HERE.parent / "docs" / "images" / "gpu_h100.png"
# `--focus gaps`: run 2 (Keras/torch before and after the channels-last
# layers) and run 3 (Keras/JAX as shipped, against torch.compile).
H200_RUNS = [
    HERE / "results" / "gpu_h200_gaps_run2.json",
    HERE / "results" / "gpu_h200_gaps_run3.json",
]
H200_OUTPUT = HERE.parent / "docs" / "images" / "gpu_h200.png"
COLUMNS = [
    ("torch", "fp32", "eager", "PyTorch eager fp32"),
    ("torch", "bf16", "eager", "PyTorch eager AMP bf16"),
    ("torch", "bf16", "compile", "torch.compile AMP bf16"),
    ("jax", "fp32", "jit", "Keras/JAX fp32"),
    ("jax", "bf16", "jit", "Keras/JAX mixed_bfloat16"),
    ("keras-torch", "fp32", "eager", "Keras/torch fp32"),
    ("keras-torch", "bf16", "eager", "Keras/torch mixed_bfloat16"),
]


def plot(runs: list[dict], output: pathlib.Path) -> None:
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            'The chart needs matplotlib: pip install "keras-alexnet[docs]"'
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    card = next(i["card"] for i in runs[0]["infos"].values())
    first = {
        (r["framework"], r["layout"], r["precision"], r["compiler"], r["mode"]): r
        for r in runs[0]["results"]
        if "img_s" in r
    }
    # Run 2 measured the original layout the ways this version chose: the
    # split grouped convolution under JAX (pinned there; its default then was
    # native), the band-matmul LRN under PyTorch (its default then).
    chosen = {
        "jax": "original, grouped conv split",
        "keras-torch": "original (default)",
    }
    second = {
        (r["framework"], r["precision"], r["mode"]): r
        for r in runs[1]["results"]
        if "img_s" in r and r["layout"] == chosen.get(r["framework"])
    }
    figure, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=False)
    panels = [("torchvision", "torchvision layout"), ("original", "original layout")]
    for axis, (layout, title) in zip(axes, panels, strict=True):
        positions = range(len(COLUMNS))
        for offset, (mode, label) in zip(
            (-0.2, 0.2), (("train", "train step"), ("infer", "inference")), strict=True
        ):
            values = []
            for framework, precision, compiler, _ in COLUMNS:
                record = first.get((framework, layout, precision, compiler, mode))
                if layout == "original" and framework != "torch":
                    record = second.get((framework, precision, mode), record)
                values.append(record["img_s"] if record else 0)
            bars = axis.bar(
                [p + offset for p in positions], values, width=0.4, label=label
            )
            for bar, value in zip(bars, values, strict=True):
                text = f"{value / 1000:.1f}k" if value else "n/m"
                axis.annotate(
                    text,
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        axis.set_xticks(list(positions))
        axis.set_xticklabels([c[3] for c in COLUMNS], rotation=35, ha="right")
        axis.set_title(title)
        axis.set_ylabel("images per second, batch 256")
        axis.legend()
    _save(
        figure,
        output,
        f"AlexNet on one {card}: keras-alexnet against plain PyTorch "
        "(original layout: Keras rows from run 2, the ways this version chose; "
        "n/m: not measured)",
    )


def _save(figure, output: pathlib.Path, title: str) -> None:
    import matplotlib.pyplot as plt

    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)


def h200_ratios(runs: list[dict]) -> list[tuple[str, list[tuple[str, float]]]]:
    """The H200 targets as ratios: (panel title, [(bar label, ratio)])."""

    def rates(run):
        return {
            (r["framework"], r["layout"], r["precision"], r["compiler"], r["mode"]): r[
                "img_s"
            ]
            for r in run["results"]
            if "img_s" in r
        }

    two, three = (rates(run) for run in runs)
    before_conv1 = "torchvision, conv1 direct (before)"
    compiled = {
        m: three[("torch", "torchvision", "bf16", "compile", m)]
        for m in ("train", "infer")
    }
    jax = [
        (f"{label}\n{m}", three[(key, layout, "bf16", c, mode)] / compiled[m])
        for m in ("train", "infer")
        for label, key, layout, c, mode in (
            ("Keras/JAX before", "jax", before_conv1, "jit", m),
            ("Keras/JAX now", "jax", "torchvision", "jit", m),
        )
    ]
    jax.append(
        (
            "Keras/JAX fit\n(uint8) train",
            three[("jax", "torchvision", "bf16", "auto", "fit-uint8")]
            / compiled["train"],
        )
    )
    before = "Keras' conv and pool (before)"
    torch = []
    for layout in ("original", "torchvision"):
        for precision in ("bf16", "fp32"):
            for mode in ("train", "infer"):
                plain = two[("torch", layout, precision, "eager", mode)]
                for label, name in (
                    ("before", f"{layout}, {before}"),
                    ("now", layout),
                ):
                    rate = two[("keras-torch", name, precision, "eager", mode)]
                    torch.append(
                        (f"{layout} {precision}\n{mode} {label}", rate / plain)
                    )
    return [
        (
            "Keras/JAX mixed_bfloat16 / torch.compile AMP bf16\n"
            "(torchvision layout, run 3)",
            jax,
        ),
        ("Keras/PyTorch / plain PyTorch eager, same precision\n(run 2)", torch),
    ]


def plot_h200(runs: list[dict], output: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    card = next(i["card"] for i in runs[1]["infos"].values())
    panels = h200_ratios(runs)
    figure, axes = plt.subplots(
        1, 2, figsize=(14, 5.2), gridspec_kw={"width_ratios": [5, 16]}
    )
    for axis, (title, bars), target in zip(axes, panels, (1.0, 0.9), strict=True):
        labels = [label for label, _ in bars]
        values = [value for _, value in bars]
        colors = ["tab:gray" if "before" in label else "tab:blue" for label in labels]
        drawn = axis.bar(range(len(values)), values, color=colors)
        for bar, value in zip(drawn, values, strict=True):
            axis.annotate(
                f"{value:.2f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        axis.axhline(target, color="tab:red", linestyle="--", linewidth=1)
        axis.annotate(
            f"target {target:g}",
            (-0.5, target),
            color="tab:red",
            ha="left",
            va="bottom",
            fontsize=8,
        )
        axis.set_xticks(range(len(values)))
        axis.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        axis.set_title(title, fontsize=9)
        axis.set_ylabel("ratio of images per second (same run)")
    _save(
        figure,
        output,
        f"keras-alexnet on one {card}: before (grey) and after (blue) this "
        "version's GPU changes",
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--h200-output", type=pathlib.Path, default=H200_OUTPUT)
    args = parser.parse_args(argv)
    runs = [json.loads(path.read_text()) for path in RUNS]
    plot(runs, args.output)
    print(f"wrote {args.output}")
    runs = [json.loads(path.read_text()) for path in H200_RUNS]
    plot_h200(runs, args.h200_output)
    print(f"wrote {args.h200_output}")


if __name__ == "__main__":
    main()
