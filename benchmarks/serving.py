"""Serving latency of AlexNet: keras-alexnet against the runtimes of its exports.

Under TensorFlow (the backend that exports), per layout (the paper's network
with Caffe's LRN constants, and torchvision's) and per batch size (1, 8 and
64; 1 and 2 with `--quick`), milliseconds per batch of:

- keras-alexnet, `serving_function(model, batch_size)` (NumPy in and out);
- `model.predict_on_batch`, the Keras way;
- onnxruntime running the file that `export_model(..., format="onnx")` writes
  from the same model (default session options, as a user would open it);
- LiteRT running the file that `export_model(..., format="tflite")` writes
  (its default XNNPACK delegate, one thread per CPU);
- at the largest batch, eager PyTorch with the same weights
  (benchmarks/inference.py's models; with `--quick`, torchvision's layout only).

Two modes (`--mode`, default both):

- in-process: all runtimes in this process, in turns (A B C, C B A, ...): the
  side-by-side comparison. onnxruntime's worker threads spin after each call
  and slow whatever runs next on a small machine.
- per-process: each runtime in a fresh process of its own (which imports
  only that runtime), the processes alternated A B A B over `--rounds` rounds;
  the figure is the median of the rounds' medians, with their range.

Each runtime's logits are checked against keras-alexnet's before timing. The
ratios are of medians: ours/onnxruntime > 1 means keras-alexnet is faster. The
"ms per FLOP" lines give onnxruntime's and LiteRT's milliseconds per GFLOP of
the paper's network over the torchvision layout's at batch 1 (1.0: the paper's
LRN and grouped convolutions cost no more per FLOP than plain convolutions).
Every block of measurements prints the load average before and after.

`--quick` uses 67x67 inputs and fc6/fc7 of 64 units, and per process only
keras-alexnet and onnxruntime at batch 1, one round: a smoke test.

Usage: python benchmarks/serving.py [--quick] [--repeats N]
[--mode both|in-process|per-process] [--rounds N]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))  # the repository root
from _common import (  # noqa: E402
    format_table,
    interleaved_times,
    machine_line,
    median,
    parse_args,
    ratio_line,
    run_per_backend,
)

LAYOUTS = ("original", "torchvision")
OURS = "keras-alexnet"
# Timed calls per process at each batch size (warm-up apart).
CALLS = {1: 40, 2: 3, 8: 15, 64: 5}


def build(variant: str, quick: bool):
    """The layout with random weights and logits out, and its input size."""
    from keras_alexnet import AlexNet

    options = {"weights": None, "variant": variant, "classifier_activation": None}
    if variant == "original":
        options["lrn"] = "caffe"
    if quick:
        options.update(input_shape=(67, 67, 3), fc_units=64)
        return AlexNet(**options), 67
    return AlexNet(**options), 227 if variant == "original" else 224


def images(batch: int, size: int) -> np.ndarray:
    """The same inputs in every process: seeded by the batch size."""
    rng = np.random.default_rng(batch)
    return rng.uniform(-128, 128, (batch, size, size, 3)).astype("float32")


def keras_runner(model, batch: int):
    from keras_alexnet import serving_function

    return serving_function(model, batch_size=batch)


def onnxruntime_runner(path: str):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (feed,) = session.get_inputs()
    return lambda x: session.run(None, {feed.name: x})[0]


def litert_runner(path: str):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # TensorFlow's copy of the same interpreter
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
    (feed,) = interpreter.get_input_details()
    (fetch,) = interpreter.get_output_details()
    shape: list[tuple[int, ...]] = [()]

    def run(x):
        if x.shape != shape[0]:
            interpreter.resize_tensor_input(feed["index"], x.shape)
            interpreter.allocate_tensors()
            shape[0] = x.shape
        interpreter.set_tensor(feed["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(fetch["index"])

    return run


def torch_runner(blobs, variant: str):
    from inference import torch_original, torch_torchvision

    make = torch_original if variant == "original" else torch_torchvision
    run = make(blobs, fc_units=blobs["fc6"][0].shape[0])
    return lambda x: run(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def prepare(variant: str, quick: bool, folder: str):
    """Builds the layout, writes its exports, weights and PyTorch blobs to `folder`."""
    from inference import caffe_blobs

    from keras_alexnet.export import export_model

    model, size = build(variant, quick)
    export_model(model, os.path.join(folder, f"{variant}.onnx"), format="onnx")
    export_model(model, os.path.join(folder, f"{variant}.tflite"), format="tflite")
    model.save_weights(os.path.join(folder, f"{variant}.weights.h5"))
    if not quick or variant == "torchvision":  # the layouts PyTorch runs
        blobs = {
            f"{name}/{index}": array
            for name, arrays in caffe_blobs(model).items()
            for index, array in enumerate(arrays)
        }
        np.savez(os.path.join(folder, f"{variant}-blobs.npz"), **blobs)
    gc.collect()  # the conversions' copies of the weights
    return model, size


def make_runner(name: str, variant: str, folder: str, batch: int, model=None):
    """The runtime `name` on `variant`'s files in `folder`, or on `model`."""
    if name == OURS:
        return keras_runner(model, batch)
    if name == "predict_on_batch":
        return model.predict_on_batch
    if name == "onnxruntime":
        return onnxruntime_runner(os.path.join(folder, f"{variant}.onnx"))
    if name == "LiteRT":
        return litert_runner(os.path.join(folder, f"{variant}.tflite"))
    with np.load(os.path.join(folder, f"{variant}-blobs.npz")) as saved:
        blobs: dict[str, list[np.ndarray]] = {}
        for key in sorted(saved.files):
            blobs.setdefault(key.split("/")[0], []).append(saved[key])
    return torch_runner(blobs, variant)


def contestants(variant: str, batch: int, batches, quick: bool, in_process: bool):
    if quick and not in_process:
        return [OURS, "onnxruntime"]
    names = [OURS, "predict_on_batch", "onnxruntime", "LiteRT"]
    if batch == batches[-1] and (not quick or variant == "torchvision"):
        names.append("PyTorch eager")
    return names


def check_logits(name: str, variant: str, actual, expected) -> float:
    difference = np.max(np.abs(np.asarray(actual) - expected)) / np.max(
        np.abs(expected)
    )
    if difference > 1e-4:
        raise SystemExit(f"{name} {variant}: logits differ by {difference:.1e}")
    return float(difference)


def load_line() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return "load average " + " ".join(f"{value:.2f}" for value in load)


def measure_in_process(variant, model, size, folder, batches, args, repeats):
    """Milliseconds per batch of each runtime, all in this process, in turns."""
    results: dict = {"ms": {}, "rows": []}
    for batch in batches:
        x = images(batch, size)
        names = contestants(variant, batch, batches, args.quick, in_process=True)
        runners = {
            name: make_runner(name, variant, folder, batch, model) for name in names
        }
        expected = np.asarray(model(x, training=False))
        for name, run in runners.items():
            check_logits(name, variant, run(x), expected)
        print(f"in-process {variant} batch {batch}: {load_line()} before", flush=True)
        times = interleaved_times(
            {name: (lambda run=run, x=x: run(x)) for name, run in runners.items()},
            repeats=repeats,
            warmup=2,
            pause=0.05,
        )
        print(f"in-process {variant} batch {batch}: {load_line()} after", flush=True)
        for name, values in times.items():
            results["ms"][name, batch] = 1e3 * median(values)
            results["rows"].append(
                [variant, batch, name, 1e3 * median(values), 1e3 * min(values)]
            )
        del runners
        gc.collect()
    return results


def run_child(name, variant, batch, folder, args) -> dict:
    """Runs one runtime in a process of its own; returns its `child` result."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        name,
        "--layout",
        variant,
        "--batch",
        str(batch),
        "--folder",
        folder,
        "--calls",
        str(args.repeats or CALLS[batch]),
    ]
    if args.quick:
        command.append("--quick")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, check=False
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode or not lines:
        raise SystemExit(
            f"{name} {variant} batch {batch} failed:\n{result.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


def child(argv) -> None:
    """One runtime on one layout and batch size: prints its timings as JSON."""
    parser = argparse.ArgumentParser()
    for flag in ("--child", "--layout", "--folder"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    model, size = (
        None,
        (67 if args.quick else 227 if args.layout == "original" else 224),
    )
    if args.child in (OURS, "predict_on_batch"):
        model, size = build(args.layout, args.quick)
        model.load_weights(os.path.join(args.folder, f"{args.layout}.weights.h5"))
    run = make_runner(args.child, args.layout, args.folder, args.batch, model)
    x = images(args.batch, size)
    expected = np.load(os.path.join(args.folder, f"{args.layout}-{args.batch}.npy"))
    difference = check_logits(args.child, args.layout, run(x), expected)
    for _ in range(2 if args.batch > 8 else 5):
        run(x)
    times = []
    for _ in range(args.calls):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "median_ms": 1e3 * median(times),
                "min_ms": 1e3 * min(times),
                "difference": difference,
                "load": os.getloadavg()[0],
            }
        )
    )


def measure_per_process(variant, model, size, folder, batches, args):
    """Median over rounds of each runtime's median, each in its own process."""
    rounds = args.rounds or (1 if args.quick else 3)
    results: dict = {"ms": {}, "rows": []}
    for batch in batches:
        x = images(batch, size)
        np.save(
            os.path.join(folder, f"{variant}-{batch}.npy"), model(x, training=False)
        )
        names = contestants(variant, batch, batches, args.quick, in_process=False)
        medians: dict[str, list[float]] = {name: [] for name in names}
        loads = [os.getloadavg()[0]]
        for round_ in range(rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                result = run_child(name, variant, batch, folder, args)
                medians[name].append(result["median_ms"])
                loads.append(result["load"])
        load = f"{min(loads):.1f}-{max(loads):.1f}"
        print(f"per-process {variant} batch {batch}: load average {load}", flush=True)
        for name, values in medians.items():
            results["ms"][name, batch] = median(values)
            results["rows"].append(
                [variant, batch, name, median(values), min(values), max(values), load]
            )
    return results


def print_ratios(mode: str, results: dict, flops: dict) -> None:
    label = "serving" if mode == "in-process" else "serving per-process"
    for variant in LAYOUTS:
        ms = results[variant]["ms"]
        for (name, batch), value in ms.items():
            if name != OURS:
                print(
                    ratio_line(
                        f"{label} {variant} batch {batch} img/s",
                        "ours",
                        name.split()[0],
                        value / ms[OURS, batch],
                    )
                )
    for runtime in ("onnxruntime", "LiteRT"):
        if (runtime, 1) not in results[LAYOUTS[0]]["ms"]:
            continue
        per_flop = {
            variant: results[variant]["ms"][runtime, 1] / flops[variant]
            for variant in LAYOUTS
        }
        print(
            ratio_line(
                f"{label} {runtime} batch 1 ms per FLOP",
                "original",
                "torchvision",
                per_flop["original"] / per_flop["torchvision"],
            )
        )


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--child" in argv:
        child(argv)
        return
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument(
        "--mode", choices=("both", "in-process", "per-process"), default="both"
    )
    own.add_argument("--rounds", type=int, default=None)
    options, rest = own.parse_known_args(argv)
    args = parse_args(__doc__.splitlines()[0], rest)
    args.mode, args.rounds = options.mode, options.rounds
    args.backend = "tensorflow"  # export runs under TensorFlow
    run_per_backend(os.path.abspath(__file__), args)
    repeats = args.repeats or (2 if args.quick else 10)

    import onnxruntime
    from inference import model_flops

    print(machine_line("tensorflow") + f"; onnxruntime {onnxruntime.__version__}")
    batches = (1, 2) if args.quick else (1, 8, 64)
    modes = ("in-process", "per-process") if args.mode == "both" else (args.mode,)
    results: dict = {mode: {} for mode in modes}
    flops = {}
    with tempfile.TemporaryDirectory() as folder:
        for variant in LAYOUTS:
            model, size = prepare(variant, args.quick, folder)
            flops[variant] = model_flops(model)
            if "in-process" in modes:
                results["in-process"][variant] = measure_in_process(
                    variant, model, size, folder, batches, args, repeats
                )
            if "per-process" in modes:
                results["per-process"][variant] = measure_per_process(
                    variant,
                    model,
                    size,
                    folder,
                    batches[:1] if args.quick else batches,
                    args,
                )
            del model
            gc.collect()
    for mode in modes:
        if mode == "in-process":
            print(f"in-process: {repeats} timed runs each after a warm-up, in turns")
            headers = ["layout", "batch", "runtime", "median ms/batch", "min ms/batch"]
        else:
            print(
                "per-process: median of the rounds' medians (each process "
                f"{'--repeats' if args.repeats else 'CALLS'} calls), and their range"
            )
            headers = [
                "layout",
                "batch",
                "runtime",
                "median ms/batch",
                "lowest",
                "highest",
                "load",
            ]
        rows = [row for variant in LAYOUTS for row in results[mode][variant]["rows"]]
        print(format_table(headers, rows))
        print_ratios(mode, results[mode], flops)
    print(f"{load_line()} at the end")


if __name__ == "__main__":
    main()
