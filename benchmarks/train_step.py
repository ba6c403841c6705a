"""One training step of AlexNet on CPU: keras-alexnet against eager PyTorch.

Per backend, in one process and in turns, images per second of one SGD step
(momentum 0.9, softmax cross-entropy on integer labels, dropout on) at
batch 64 of:

- keras-alexnet `AlexNet(weights=None, lrn="caffe", classifier_activation=None)`,
  the paper's network, through `model.train_on_batch` (compiled as `fit` would
  be: a `tf.function` without XLA under TensorFlow on CPU, `jax.jit` under
  JAX, eager under PyTorch);
- the same network in eager PyTorch: `nn.LocalResponseNorm`, grouped
  `nn.Conv2d`, `torch.optim.SGD` (what a user reimplementing the paper in
  PyTorch writes), with the same starting weights;
- keras-alexnet's torchvision layout and the same layout in plain `torch.nn`.

Before timing, the two networks take one step from the same weights on the
same batch (dropout off), and the table gives how far fc8's weights then
differ, relative to the change the step made: the two steps are the same step.

Usage: python benchmarks/train_step.py [--backend tensorflow|jax|torch|all]
[--quick]
"""

from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import (  # noqa: E402
    format_table,
    interleaved_times,
    machine_line,
    median,
    parse_args,
    ratio_line,
    run_per_backend,
)
from inference import caffe_blobs, torch_original, torch_torchvision  # noqa: E402

LEARNING_RATE = 0.01
MOMENTUM = 0.9


def keras_model(keras, AlexNet, dropout, **kwargs):
    model = AlexNet(weights=None, classifier_activation=None, dropout=dropout, **kwargs)
    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def torch_step(torch_network, dropout_on=True):
    """Returns one eager SGD step of the plain-PyTorch network, as a function."""
    import torch

    model = torch_network.model
    model.train(dropout_on)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    loss_function = torch.nn.CrossEntropyLoss()

    def step(x_nchw, labels):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(model(x_nchw), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def same_step_difference(keras, AlexNet, torch_builder, kwargs, x, labels):
    """How far one keras and one torch step from the same weights differ."""
    import torch

    model = keras_model(keras, AlexNet, dropout=0.0, **kwargs)
    before = model.get_layer("predictions").get_weights()[0].copy()
    network = torch_builder(caffe_blobs(model))
    step = torch_step(network, dropout_on=False)
    model.train_on_batch(x, labels)
    step(
        torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))),
        torch.from_numpy(labels.astype("int64")),
    )
    ours = model.get_layer("predictions").get_weights()[0]
    theirs = network.model[-1].weight.detach().numpy().T
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(ours - before)))


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    if run_per_backend(os.path.abspath(__file__), args):
        return
    backend = args.backend
    batch = 4 if args.quick else 64
    repeats = args.repeats or (2 if args.quick else 4)

    import keras
    import torch

    from keras_alexnet import AlexNet

    keras.utils.set_random_seed(0)
    print(machine_line(backend))
    rng = np.random.default_rng(0)
    layouts = {
        "original": ({"lrn": "caffe"}, torch_original, 227, 128.0),
        "torchvision": ({"variant": "torchvision"}, torch_torchvision, 224, 2.0),
    }
    candidates = {}
    differences = {}
    for layout, (kwargs, torch_builder, size, scale) in layouts.items():
        x = rng.uniform(-scale, scale, (batch, size, size, 3)).astype("float32")
        labels = rng.integers(0, 1000, batch).astype("int32")
        differences[layout] = same_step_difference(
            keras, AlexNet, torch_builder, kwargs, x, labels
        )
        model = keras_model(keras, AlexNet, dropout=0.5, **kwargs)
        step = torch_step(torch_builder(caffe_blobs(model)))
        x_nchw = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        labels_torch = torch.from_numpy(labels.astype("int64"))

        def keras_step(model=model, x=x, labels=labels):
            return model.train_on_batch(x, labels)

        candidates[f"keras-alexnet {layout}"] = keras_step
        candidates[f"PyTorch eager {layout}"] = (
            lambda step=step, x=x_nchw, labels=labels_torch: step(x, labels)
        )
    times = interleaved_times(candidates, repeats=repeats, warmup=1, pause=0.25)
    rate = {name: batch / median(values) for name, values in times.items()}
    rows = [
        [
            name,
            1e3 * median(times[name]),
            1e3 * min(times[name]),
            rate[name],
            batch / min(times[name]),
            f"{differences[name.rsplit(' ', 1)[1]]:.0e}" if "PyTorch" in name else "",
        ]
        for name in candidates
    ]
    print(f"batch {batch}, {repeats} timed steps each after a warm-up")
    print(
        format_table(
            [
                "train step",
                "median ms/step",
                "min ms/step",
                "img/s (median)",
                "img/s (best)",
                "fc8 after one step: max diff / max change",
            ],
            rows,
        )
    )
    for layout in layouts:
        print(
            ratio_line(
                f"train step {backend} {layout} img/s",
                "ours",
                "PyTorch",
                rate[f"keras-alexnet {layout}"] / rate[f"PyTorch eager {layout}"],
            )
        )


if __name__ == "__main__":
    main()
