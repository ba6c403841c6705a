"""Inference throughput of AlexNet: keras-alexnet against what a user would run.

Per backend, in one process and in turns, images per second at batch 64 of:

- keras-alexnet `AlexNet(weights=None, lrn="caffe")`, the paper's network
  (LRN, two groups), and the same with `groups=1`;
- OpenCV's dnn module running BVLC's deploy.prototxt with a `.caffemodel` holding
  the same random weights (written with `tests/caffe_writer.py`): what a user
  of the Caffe weights runs without a deep-learning framework;
- eager PyTorch with `nn.LocalResponseNorm` and grouped `nn.Conv2d`, the same
  weights (NCHW, `inference_mode`);
- keras-alexnet `AlexNet(weights=None, variant="torchvision")` and torchvision's
  layout written with plain `torch.nn` (torchvision itself is not needed).

Keras runs through `model.predict_on_batch` (NumPy in and out, like the
others): a `tf.function` without XLA on a CPU-only TensorFlow, `jax.jit` under
JAX, eager `no_grad` under PyTorch. All return fc8's logits; the table gives the
largest difference from keras-alexnet's, to show that the networks are the same.
Inputs are 227x227 (original) and 224x224 (torchvision).

It also measures the backend's float32 matmul peak (4096x4096, the best of
five) and prints the share of it that the paper's network reaches in
effective FLOP/s (2 x its 0.72 G multiply-adds per image).

Usage: python benchmarks/inference.py [--backend tensorflow|jax|torch|all]
[--quick]
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))  # the repository root, for tests/
from _common import (  # noqa: E402
    format_table,
    interleaved_times,
    machine_line,
    median,
    parse_args,
    ratio_line,
    run_per_backend,
)

CONV_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5")
DENSE_NAMES = ("fc6", "fc7", "predictions")


def caffe_blobs(model) -> dict[str, list[np.ndarray]]:
    """The Keras model's weights as Caffe / PyTorch arrays (OIHW, (out, in))."""
    blobs = {}
    for name in CONV_NAMES:
        kernel_hwio, bias = model.get_layer(name).get_weights()
        blobs[name] = [kernel_hwio.transpose(3, 2, 0, 1).copy(), bias]
    for name in DENSE_NAMES:
        kernel, bias = model.get_layer(name).get_weights()
        if name == "fc6":
            # Keras' Flatten reads pool5 in H, W, C order, Caffe and torch in C, H, W.
            kernel = kernel.reshape(6, 6, 256, -1).transpose(2, 0, 1, 3)
            kernel = kernel.reshape(9216, -1)
        blobs[name] = [kernel.T.copy(), bias]
    return blobs


def opencv_caffe_net(blobs, batch: int, folder: str):
    import cv2

    from tests.caffe_writer import alexnet_deploy_prototxt, write_caffemodel

    caffemodel = os.path.join(folder, "alexnet.caffemodel")
    prototxt = os.path.join(folder, "deploy.prototxt")
    layers = [
        (name if name != "predictions" else "fc8", kind, blobs[name])
        for name, kind in [(n, "Convolution") for n in CONV_NAMES]
        + [(n, "InnerProduct") for n in DENSE_NAMES]
    ]
    write_caffemodel(caffemodel, layers)
    with open(prototxt, "w") as file:
        file.write(alexnet_deploy_prototxt(batch_size=batch, softmax=False))
    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    def run(x_nchw):
        net.setInput(x_nchw)
        return net.forward("fc8")

    return run


def torch_original(blobs, fc_units: int = 4096):
    """The paper's network in eager PyTorch, Caffe's LRN constants."""
    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4),
        nn.ReLU(inplace=True),
        nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=2),
        nn.ReLU(inplace=True),
        nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, padding=1, groups=2),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1, groups=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(9216, fc_units),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(fc_units, fc_units),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(fc_units, 1000),
    )
    return _load_torch(model, blobs)


def torch_torchvision(blobs, fc_units: int = 4096):
    """torchvision's `alexnet` layout in plain `torch.nn` (fc6/fc7 `fc_units` wide)."""
    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d((6, 6)),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(9216, fc_units),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(fc_units, fc_units),
        nn.ReLU(inplace=True),
        nn.Linear(fc_units, 1000),
    )
    return _load_torch(model, blobs)


def _load_torch(model, blobs):
    import torch

    weighted = [m for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for module, name in zip(weighted, CONV_NAMES + DENSE_NAMES, strict=True):
            module.weight.copy_(torch.from_numpy(blobs[name][0]))
            module.bias.copy_(torch.from_numpy(blobs[name][1]))
    model.eval()

    def run(x_nchw):
        with torch.inference_mode():
            return model(torch.from_numpy(x_nchw)).numpy()

    run.model = model  # type: ignore[attr-defined]  # for benchmarks/train_step.py
    return run


def model_flops(model) -> int:
    """Multiply-adds x 2 per image of the convolutions and dense layers."""
    import keras

    flops = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, filters = layer.output.shape
            kernel_h, kernel_w, fan_in, _ = layer.kernel.shape  # fan_in per group
            flops += 2 * height * width * filters * kernel_h * kernel_w * fan_in
        elif isinstance(layer, keras.layers.Dense):
            flops += 2 * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    return flops


def matmul_peak(size: int = 4096) -> float:
    """The backend's float32 matmul rate in FLOP/s, the best of five runs."""
    import time

    import keras

    a = keras.ops.convert_to_tensor(np.ones((size, size), "float32"))
    b = keras.ops.convert_to_tensor(np.ones((size, size), "float32"))
    best = float("inf")
    for _ in range(6):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0])
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    if run_per_backend(os.path.abspath(__file__), args):
        return
    backend = args.backend
    batch = 8 if args.quick else 64
    repeats = args.repeats or (3 if args.quick else 4)

    import cv2
    import keras

    from keras_alexnet import AlexNet

    keras.utils.set_random_seed(0)
    print(
        machine_line(backend) + f"; OpenCV {cv2.__version__} "
        f"({cv2.getNumThreads()} threads)"
    )
    common = {"weights": None, "classifier_activation": None}
    original = AlexNet(lrn="caffe", **common)
    original_g1 = AlexNet(lrn="caffe", groups=1, **common)
    torchvision = AlexNet(variant="torchvision", **common)

    rng = np.random.default_rng(0)
    # Caffe-preprocessed pixels: BGR minus the mean, in about [-128, 128].
    x227 = rng.uniform(-128, 128, (batch, 227, 227, 3)).astype("float32")
    x224 = rng.uniform(-2, 2, (batch, 224, 224, 3)).astype("float32")
    x227_nchw = np.ascontiguousarray(x227.transpose(0, 3, 1, 2))
    x224_nchw = np.ascontiguousarray(x224.transpose(0, 3, 1, 2))

    with tempfile.TemporaryDirectory() as folder:
        original_blobs = caffe_blobs(original)
        opencv_run = opencv_caffe_net(original_blobs, batch, folder)
        torch_original_run = torch_original(original_blobs)
        torch_torchvision_run = torch_torchvision(caffe_blobs(torchvision))

        # name: (function, the keras-alexnet run it must equal)
        candidates = {
            "keras-alexnet original (groups=2)": (
                lambda: original.predict_on_batch(x227),
                None,
            ),
            "keras-alexnet original, groups=1": (
                lambda: original_g1.predict_on_batch(x227),
                None,
            ),
            "OpenCV dnn (Caffe), original": (
                lambda: opencv_run(x227_nchw),
                "keras-alexnet original (groups=2)",
            ),
            "PyTorch eager, original": (
                lambda: torch_original_run(x227_nchw),
                "keras-alexnet original (groups=2)",
            ),
            "keras-alexnet torchvision": (
                lambda: torchvision.predict_on_batch(x224),
                None,
            ),
            "PyTorch eager, torchvision": (
                lambda: torch_torchvision_run(x224_nchw),
                "keras-alexnet torchvision",
            ),
        }
        outputs = {name: np.asarray(f()) for name, (f, _) in candidates.items()}
        times = interleaved_times(
            {name: f for name, (f, _) in candidates.items()},
            repeats=repeats,
            warmup=1,
            pause=0.25,
        )

    rate = {name: batch / median(values) for name, values in times.items()}
    peak = matmul_peak(1024 if args.quick else 4096)
    flops = model_flops(original)
    rows = []
    for name, (_, ours) in candidates.items():
        difference = ""
        if ours is not None:
            scale = np.max(np.abs(outputs[ours]))
            difference = f"{np.max(np.abs(outputs[name] - outputs[ours])) / scale:.0e}"
        rows.append(
            [
                name,
                1e3 * median(times[name]),
                1e3 * min(times[name]),
                rate[name],
                batch / min(times[name]),
                difference,
            ]
        )
    print(f"batch {batch}, {repeats} timed runs each after a warm-up")
    print(
        format_table(
            [
                "model",
                "median ms/batch",
                "min ms/batch",
                "img/s (median)",
                "img/s (best)",
                "max diff / max |logit|",
            ],
            rows,
        )
    )
    ours, ours_g1 = (
        "keras-alexnet original (groups=2)",
        "keras-alexnet original, groups=1",
    )
    comparisons = [
        ("original", ours, "OpenCV dnn (Caffe), original", "ours", "OpenCV"),
        ("original", ours, "PyTorch eager, original", "ours", "PyTorch"),
        (
            "torchvision",
            "keras-alexnet torchvision",
            "PyTorch eager, torchvision",
            "ours",
            "PyTorch",
        ),
        ("original", ours, ours_g1, "groups=2", "groups=1"),
    ]
    ours_flops = flops * rate[ours]
    print(
        f"original: {flops / 1e9:.3f} GFLOP per image, {ours_flops / 1e9:.0f} "
        f"GFLOP/s at the median; {keras.backend.backend()} float32 matmul peak "
        f"{peak / 1e9:.0f} GFLOP/s"
    )
    print(
        ratio_line(
            f"inference {backend} original GFLOP/s",
            "ours",
            "matmul peak",
            ours_flops / peak,
        )
    )
    for variant, numerator, denominator, top, bottom in comparisons:
        print(
            ratio_line(
                f"inference {backend} {variant} img/s",
                top,
                bottom,
                rate[numerator] / rate[denominator],
            )
        )


if __name__ == "__main__":
    main()
