"""Serving latency of AlexNet: keras-alexnet against the runtimes of its exports.

Under TensorFlow (the backend that exports), in one process and in turns, per
layout (the paper's network with Caffe's LRN constants, and torchvision's) and
per batch size (1, 8 and 64; 1 and 2 with `--quick`), milliseconds per batch of:

- keras-alexnet, `model.predict_on_batch` (NumPy in and out);
- onnxruntime running the file that `export_model(..., format="onnx")` writes
  from the same model (default session options, as a user would open it);
- LiteRT running the file that `export_model(..., format="tflite")` writes
  (its default XNNPACK delegate, one thread per CPU);
- at the largest batch, eager PyTorch with the same weights
  (benchmarks/inference.py's models; with `--quick`, torchvision's layout only).

Each runtime's logits are checked against keras-alexnet's before timing. The
ratios are of medians: ours/onnxruntime > 1 means keras-alexnet is faster. The
last lines give onnxruntime's and LiteRT's milliseconds per GFLOP of the paper's
network over the torchvision layout's (1.0: the paper's LRN and grouped
convolutions cost no more per FLOP than plain convolutions).

`--quick` uses 67x67 inputs and fc6/fc7 of 64 units: a smoke test.

Usage: python benchmarks/serving.py [--quick] [--repeats N]
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile

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


def torch_runner(model, variant: str):
    from inference import caffe_blobs, torch_original, torch_torchvision

    make = torch_original if variant == "original" else torch_torchvision
    run = make(caffe_blobs(model), fc_units=model.get_layer("fc6").units)
    return lambda x: run(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def measure_layout(variant: str, args, repeats: int, folder: str) -> dict:
    """Milliseconds per batch of each runtime at each batch size, and the rows."""
    from inference import model_flops

    from keras_alexnet.export import export_model

    model, size = build(variant, args.quick)
    onnx_path = os.path.join(folder, f"{variant}.onnx")
    tflite_path = os.path.join(folder, f"{variant}.tflite")
    export_model(model, onnx_path, format="onnx")
    export_model(model, tflite_path, format="tflite")
    gc.collect()  # the conversions' copies of the weights
    runners = {
        "keras-alexnet": model.predict_on_batch,
        "onnxruntime": onnxruntime_runner(onnx_path),
        "LiteRT": litert_runner(tflite_path),
    }
    batches = (1, 2) if args.quick else (1, 8, 64)
    with_torch = not args.quick or variant == "torchvision"
    rng = np.random.default_rng(0)
    results: dict = {"flops": model_flops(model), "ms": {}, "rows": []}
    for batch in batches:
        x = rng.uniform(-128, 128, (batch, size, size, 3)).astype("float32")
        candidates = dict(runners)
        if batch == batches[-1] and with_torch:
            candidates["PyTorch eager"] = torch_runner(model, variant)
        expected = np.asarray(model.predict_on_batch(x))
        scale = np.max(np.abs(expected))
        for name, run in candidates.items():
            difference = np.max(np.abs(np.asarray(run(x)) - expected)) / scale
            if difference > 1e-4:
                raise SystemExit(f"{name} {variant}: logits differ by {difference:.1e}")
        times = interleaved_times(
            {name: (lambda run=run, x=x: run(x)) for name, run in candidates.items()},
            repeats=repeats,
            warmup=2,
            pause=0.05,
        )
        for name, values in times.items():
            results["ms"][name, batch] = 1e3 * median(values)
            results["rows"].append(
                [variant, batch, name, 1e3 * median(values), 1e3 * min(values)]
            )
    return results


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    args.backend = "tensorflow"  # export runs under TensorFlow
    run_per_backend(os.path.abspath(__file__), args)
    repeats = args.repeats or (2 if args.quick else 10)

    import onnxruntime

    print(machine_line("tensorflow") + f"; onnxruntime {onnxruntime.__version__}")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for variant in LAYOUTS:
            results[variant] = measure_layout(variant, args, repeats, folder)
            gc.collect()
    rows = [row for variant in LAYOUTS for row in results[variant]["rows"]]
    print(f"{repeats} timed runs each after a warm-up, in turns")
    print(
        format_table(
            ["layout", "batch", "runtime", "median ms/batch", "min ms/batch"], rows
        )
    )
    for variant in LAYOUTS:
        ms = results[variant]["ms"]
        for (name, batch), value in ms.items():
            if name == "keras-alexnet":
                continue
            print(
                ratio_line(
                    f"serving {variant} batch {batch} img/s",
                    "ours",
                    name.split()[0],
                    value / ms["keras-alexnet", batch],
                )
            )
    for runtime in ("onnxruntime", "LiteRT"):
        per_flop = {
            variant: results[variant]["ms"][runtime, 1] / results[variant]["flops"]
            for variant in LAYOUTS
        }
        print(
            ratio_line(
                f"serving {runtime} batch 1 ms per FLOP",
                "original",
                "torchvision",
                per_flop["original"] / per_flop["torchvision"],
            )
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f} at the end")


if __name__ == "__main__":
    main()
