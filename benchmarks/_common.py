"""Timing helpers shared by the benchmarks; not part of the library.

The machines these run on are shared and noisy, so every benchmark compares its
variants side by side in one process: after a warm-up, the variants take turns
(A B C, then C B A, ...) so that drift in the machine's load falls on all of them
alike, and the table shows the median and the minimum of the repeats. Ratios are
of medians.

Keras reads `KERAS_BACKEND` once, at import, so a benchmark asked for several
backends re-launches itself once per backend (`run_per_backend`) and imports
Keras only in the child.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

BACKENDS = ("tensorflow", "jax", "torch")


def parse_args(description: str, argv: Sequence[str] | None = None):
    """Parses `--backend` and `--quick` (plus `--repeats`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--backend",
        choices=(*BACKENDS, "all"),
        default=None,
        help="the Keras backend to measure; 'all' runs each in its own process. "
        "Default: all, or with --quick the backend in $KERAS_BACKEND "
        "(tensorflow if unset), to stay well under a minute.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and few repeats: a smoke test, not a measurement",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats of each variant"
    )
    args = parser.parse_args(argv)
    if args.backend is None:
        args.backend = (
            os.environ.get("KERAS_BACKEND", "tensorflow") if args.quick else "all"
        )
    return args


def run_per_backend(script: str, args) -> bool:
    """With `--backend all`, runs `script` once per backend and returns True.

    Otherwise sets `KERAS_BACKEND` (before anything imports Keras) and returns
    False: the caller then measures in this process.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.backend != "all":
        os.environ["KERAS_BACKEND"] = args.backend
        return False
    rest = ["--quick"] if args.quick else []
    if args.repeats is not None:
        rest += ["--repeats", str(args.repeats)]
    failures = []
    for backend in BACKENDS:
        env = {**os.environ, "KERAS_BACKEND": backend}
        command = [sys.executable, script, "--backend", backend, *rest]
        if subprocess.run(command, env=env, check=False).returncode:
            failures.append(backend)
    if failures:
        raise SystemExit(f"benchmark failed under: {', '.join(failures)}")
    return True


def interleaved_times(
    candidates: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 2,
    pause: float = 0.0,
) -> dict[str, list[float]]:
    """Seconds per call of each candidate, measured in alternating order.

    Each candidate must block until its result is computed (call
    `block_until_ready`, `.numpy()` and so on inside it). `pause` seconds of
    sleep before each timed call let the thread pools of the previous runtime
    (OpenMP, Eigen, OpenCV spin-wait after their work) fall idle, so that one
    runtime's spinning is not charged to another's time on 2 cores.
    """
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            time.sleep(pause)
            start = time.perf_counter()
            candidates[name]()
            times[name].append(time.perf_counter() - start)
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Formats rows as a GitHub-flavoured Markdown table, ready for the docs."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        padded = [value.ljust(width) for value, width in zip(row, widths, strict=True)]
        lines.append("| " + " | ".join(padded) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return str(value)


def ratio_line(label: str, numerator: str, denominator: str, value: float) -> str:
    """One machine-readable summary line, e.g. `ratio lrn fwd: a/b = 0.61`."""
    return f"ratio {label}: {numerator}/{denominator} = {value:.2f}"


def machine_line(backend: str) -> str:
    """What ran the numbers: backend, versions, cores, load."""
    import keras

    versions = [f"keras {keras.__version__}"]
    if backend == "tensorflow":
        import tensorflow as tf

        versions.append(f"tensorflow {tf.__version__}")
    elif backend == "jax":
        import jax

        versions.append(f"jax {jax.__version__} ({jax.default_backend()})")
    elif backend == "torch":
        import torch

        versions.append(
            f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"backend {backend}: {', '.join(versions)}; {os.cpu_count()} CPUs, "
        f"load average {load:.2f} at start"
    )
