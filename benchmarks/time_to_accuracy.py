"""Epochs and seconds until the bare `keras-alexnet train DATA` reaches a target.

Per backend, in its own process, runs the bare command (the `auto` recipe:
settings fitted to the data) on DATA, watches the run folder's `state.json`
to time each epoch as it ends, then reads `log.csv`: the first epoch whose
validation top-1 reaches `--target`, the seconds to the end of that epoch
(start-up included), the best and final validation top-1, and the settings
the command chose. Extra arguments after `--` go to the command.

Not a test: timings on a shared machine vary; docs/training.md records them
with the machine they came from.

Usage: python benchmarks/time_to_accuracy.py DATA [--target 0.85]
[--backend tensorflow|jax|torch|all] [--output DIR] [-- --epochs 10 ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BACKENDS = ("tensorflow", "jax", "torch")


def run_one(data: str, output: str, backend: str, extra: list[str]) -> dict:
    """Runs the bare command on one backend; epoch end times from state.json."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    command = [sys.executable, "-m", "keras_alexnet_launcher", "train", data]
    command += ["--output", output, "--backend", backend, *extra]
    state = os.path.join(output, "state.json")
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    ends: dict[int, float] = {}
    while process.poll() is None:
        _note_epoch(state, ends, started)
        time.sleep(0.2)
    _note_epoch(state, ends, started)
    out = process.stdout.read() if process.stdout else ""
    if process.returncode:
        return {"backend": backend, "error": out.strip().splitlines()[-1:]}
    chose = next((line for line in out.splitlines() if line.startswith("Recipe")), "")
    with open(os.path.join(output, "log.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(output, "metrics.json")) as f:
        metrics = json.load(f)
    return {
        "backend": backend,
        "chose": chose,
        "val_accuracy": [float(row["val_accuracy"]) for row in rows],
        "epoch_end_s": [ends.get(int(row["epoch"])) for row in rows],
        "total_s": time.perf_counter() - started,
        "top1": metrics["top1"],
    }


def _note_epoch(path: str, ends: dict[int, float], started: float) -> None:
    try:
        with open(path) as f:
            epoch = int(json.load(f)["epoch"])
    except (OSError, ValueError, KeyError):
        return
    ends.setdefault(epoch, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--target", type=float, default=0.85)
    parser.add_argument("--backend", choices=(*BACKENDS, "all"), default="all")
    parser.add_argument("--output", help="where the run folders go (default: temp)")
    args = parser.parse_args(argv)
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    root = args.output or tempfile.mkdtemp(prefix="time_to_accuracy_")
    print(f"data {args.data}, target top-1 {args.target:.0%}, runs in {root}")
    for backend in backends:
        output = os.path.join(root, backend)
        if os.path.exists(os.path.join(output, "config.json")):
            sys.exit(f"{output} holds a run already; choose another --output")
        result = run_one(args.data, output, backend, extra)
        if "error" in result:
            print(f"{backend}: failed: {result['error']}")
            continue
        reached = next(
            (i for i, v in enumerate(result["val_accuracy"]) if v >= args.target), None
        )
        when = (
            f"epoch {reached + 1}, {result['epoch_end_s'][reached]:.0f} s"
            if reached is not None
            else "not reached"
        )
        curve = " ".join(f"{100 * v:.0f}" for v in result["val_accuracy"])
        print(f"{backend}: {result['chose']}")
        print(
            f"{backend}: target {when}; best {100 * max(result['val_accuracy']):.1f} "
            f"%, final top-1 {100 * result['top1']:.1f} % after "
            f"{len(result['val_accuracy'])} epochs, {result['total_s']:.0f} s in all; "
            f"val top-1 per epoch: {curve}"
        )


if __name__ == "__main__":
    main()
