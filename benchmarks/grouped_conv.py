"""Grouped convolutions: AlexNet's conv2, conv4 and conv5 with 2 groups and with 1.

Per backend, at batch 64 (channels last), forward and forward+backward (the
gradients of the input, the kernel and the bias, with a random upstream
gradient) of:

- `Conv2D(groups=2)`: Keras' own grouped convolution. `GroupedConv2D`'s native
  path (`implementation="native"`) runs this very code
  (`Conv2D.convolution_op`), so it is timed once, under both names; its output
  is checked to agree;
- `GroupedConv2D split`: this library's layer convolving each group on its own
  and concatenating (`implementation="split"`);
- `Conv2D(groups=1)`: the ungrouped convolution of the same widths, twice the
  arithmetic. The project requires AlexNet's `groups=2` (the `GroupedConv2D`
  default) to be no slower than this on every backend.

Compiled the way Keras runs them: `tf.function` without XLA (Keras' choice on a
CPU-only TensorFlow), `jax.jit` of `stateless_call`, eager PyTorch (forward
under `no_grad`).

Usage: python benchmarks/grouped_conv.py [--backend tensorflow|jax|torch|all]
[--quick]
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    format_table,
    interleaved_times,
    machine_line,
    median,
    parse_args,
    ratio_line,
    run_per_backend,
)

# name: (height = width, input channels, filters, kernel size); padding "same".
LAYERS = {
    "conv2": (27, 96, 256, 5),
    "conv4": (13, 384, 384, 3),
    "conv5": (13, 384, 256, 3),
}
NATIVE = "Conv2D(groups=2) = GroupedConv2D native"
SPLIT = "GroupedConv2D split"
UNGROUPED = "Conv2D(groups=1)"
VARIANTS = (NATIVE, SPLIT, UNGROUPED)


def make_layer(variant: str, filters: int, kernel_size: int, input_shape):
    import keras

    from keras_alexnet import GroupedConv2D

    if variant in (NATIVE, UNGROUPED):
        groups = 2 if variant == NATIVE else 1
        layer = keras.layers.Conv2D(filters, kernel_size, padding="same", groups=groups)
        layer.build(input_shape)
        return layer
    layer = GroupedConv2D(
        filters, kernel_size, padding="same", groups=2, implementation="split"
    )
    layer.build(input_shape)
    return layer


def tensorflow_pair(layer, x_np, upstream_np):
    import tensorflow as tf

    x = tf.constant(x_np)
    upstream = tf.constant(upstream_np)
    forward = tf.function(lambda v: layer(v))

    @tf.function
    def backward(v, g):
        with tf.GradientTape() as tape:
            tape.watch(v)
            y = layer(v)
        return tape.gradient(y, [v, *layer.trainable_variables], output_gradients=g)

    return (lambda: forward(x)), (lambda: backward(x, upstream))


def jax_pair(layer, x_np, upstream_np):
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(x_np)
    upstream = jnp.asarray(upstream_np)
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def apply(weights, v):
        return layer.stateless_call(weights, non_trainable, v)[0]

    forward = jax.jit(apply)
    backward = jax.jit(lambda w, v, g: jax.vjp(apply, w, v)[1](g))
    return (
        lambda: forward(trainable, x).block_until_ready(),
        lambda: jax.block_until_ready(backward(trainable, x, upstream)),
    )


def torch_pair(layer, x_np, upstream_np):
    import torch

    x = torch.from_numpy(x_np).requires_grad_()
    upstream = torch.from_numpy(upstream_np)
    parameters = [v.value for v in layer.trainable_variables]

    def forward():
        with torch.no_grad():
            return layer(x)

    def backward():
        return torch.autograd.grad(layer(x), [x, *parameters], upstream)

    return forward, backward


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    if run_per_backend(os.path.abspath(__file__), args):
        return
    backend = args.backend
    batch = 4 if args.quick else 64
    repeats = args.repeats or (3 if args.quick else 5)
    make_pair = {"tensorflow": tensorflow_pair, "jax": jax_pair, "torch": torch_pair}[
        backend
    ]

    import keras

    from keras_alexnet.layers.grouped_conv2d import default_implementation

    default = SPLIT if default_implementation() == "split" else NATIVE
    print(machine_line(backend))
    print(f"GroupedConv2D default on this machine: {default}")

    rng = np.random.default_rng(0)
    rows, ratios = [], []
    for layer_name, (size, channels, filters, kernel_size) in LAYERS.items():
        input_shape = (batch, size, size, channels)
        x = rng.standard_normal(input_shape).astype("float32")
        upstream = rng.standard_normal((batch, size, size, filters)).astype("float32")
        pairs, outputs = {}, {}
        for variant in VARIANTS:
            layer = make_layer(variant, filters, kernel_size, input_shape)
            if variant == NATIVE:
                grouped_weights = layer.get_weights()
            elif variant == SPLIT:
                layer.set_weights(grouped_weights)
            pairs[variant] = make_pair(layer, x, upstream)
            outputs[variant] = keras.ops.convert_to_numpy(pairs[variant][0]())
        native_layer = make_layer(
            "GroupedConv2D native", filters, kernel_size, input_shape
        )
        native_layer.set_weights(grouped_weights)
        native_output = keras.ops.convert_to_numpy(native_layer(x))
        # Same kernel; only eager against compiled execution may differ.
        scale = np.max(np.abs(outputs[NATIVE]))
        if np.max(np.abs(native_output - outputs[NATIVE])) > 1e-5 * scale:
            raise AssertionError("GroupedConv2D native differs from Conv2D(groups=2)")
        macs = batch * size * size * filters * kernel_size**2 * channels
        for mode, index in (("forward", 0), ("fwd+bwd", 1)):
            # A backward pass takes seconds at batch 64: fewer repeats.
            times = interleaved_times(
                {name: pair[index] for name, pair in pairs.items()},
                repeats=repeats if index == 0 else max(3, repeats - 2),
                warmup=1,
            )
            ungrouped = median(times[UNGROUPED])
            for variant, values in times.items():
                work = macs if variant == UNGROUPED else macs // 2
                # Forward: 2 FLOPs per multiply-add; backward adds two more passes.
                flops = 2 * work * (1 if mode == "forward" else 3)
                error = ""
                if mode == "forward" and variant != UNGROUPED:
                    difference = outputs[variant] - outputs[NATIVE]
                    error = f"{np.max(np.abs(difference)):.0e}"
                rows.append(
                    [
                        layer_name,
                        mode,
                        variant + (" (default)" if variant == default else ""),
                        1e3 * median(values),
                        1e3 * min(values),
                        flops / median(values) / 1e9,
                        median(values) / ungrouped,
                        error,
                    ]
                )
            for variant, label in (
                (default, "GroupedConv2D"),
                (NATIVE, "Conv2D(groups=2)"),
            ):
                ratios.append(
                    ratio_line(
                        f"grouped_conv {backend} {mode} {layer_name}",
                        label,
                        UNGROUPED,
                        median(times[variant]) / ungrouped,
                    )
                )
    print(f"batch {batch}; GFLOP/s counts the grouped layers' own (halved) work")
    print(
        format_table(
            [
                "layer",
                "pass",
                "variant",
                "median ms",
                "min ms",
                "GFLOP/s",
                "vs groups=1",
                "max abs diff",
            ],
            rows,
        )
    )
    print("\n".join(ratios))


if __name__ == "__main__":
    main()
