"""LocalResponseNormalization: the layer's window sums against each backend's LRN.

Measures, per backend, forward and forward+backward (the input gradient, with a
random upstream gradient) on AlexNet's two LRN inputs, norm1 (64, 55, 55, 96)
and norm2 (64, 27, 27, 256), channels last, with the paper's constants:

- `matmul`: the layer summing the window as squares @ banded 0/1 matrix;
- `slices`: the layer summing 5 shifted slices (its accelerator path);
- `pool`: the layer taking the window mean with a 1-D average pool over the
  channels (`keras.ops.average_pool`), as PyTorch's own LRN does;
- `native`: the layer calling `tf.nn.local_response_normalization`
  (TensorFlow only). It is TensorFlow's reference, timed once under both names;
- `auto (XLA)`: under TensorFlow on CPU, the layer's default: for inference
  the slices, the squares and the power compiled by XLA, for training the
  uncompiled matmul (traced under the name of Keras' step function, so that
  the layer takes the path it takes in `fit` and `predict`);
- `reference`: `torch.nn.functional.local_response_norm` on the same data in
  NCHW, PyTorch's own layout: what a PyTorch user runs. JAX has no LRN.

Compiled the way Keras runs them: `tf.function` without XLA (what Keras uses on
a CPU-only TensorFlow), `jax.jit`, eager PyTorch (forward under `no_grad`). The
row `layer default` tells which path the layer picks on this machine.

Usage: python benchmarks/lrn.py [--backend tensorflow|jax|torch|all] [--quick]
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

PAPER_LRN = {"size": 5, "bias": 2.0, "alpha": 1e-4, "beta": 0.75}
FULL_SHAPES = ((64, 55, 55, 96), (64, 27, 27, 256))
QUICK_SHAPES = ((4, 55, 55, 96), (4, 27, 27, 256))


def make_layer(implementation: str, shape):
    from keras_alexnet import LocalResponseNormalization

    layer = LocalResponseNormalization(**PAPER_LRN, implementation=implementation)
    layer.build(shape)
    return layer


def layer_implementations(backend: str) -> list[str]:
    from keras_alexnet.layers.local_response_normalization import (
        IMPLEMENTATIONS,
        _compiles_with_xla,
    )

    names = [
        name
        for name in IMPLEMENTATIONS
        if name != "auto" and (backend == "tensorflow" or name != "native")
    ]
    # "auto" differs from the named ways only where it compiles with XLA.
    return names + ["auto"] if _compiles_with_xla() else names


def tensorflow_candidates(x_nhwc, upstream_nhwc, implementations):
    import tensorflow as tf

    x = tf.constant(x_nhwc)
    upstream = tf.constant(upstream_nhwc)
    candidates, outputs = {}, {}
    for name in implementations:
        layer = make_layer(name, x.shape)

        # Named as Keras' TensorFlow trainer names its step: the layer compiles
        # itself with XLA only there (and when eager), see its docstring.
        def one_step_on_data(v, layer=layer):
            return layer(v)

        forward = tf.function(one_step_on_data)

        def one_step_on_data_backward(v, g, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(v)
                y = layer(v, training=True)
            return tape.gradient(y, v, output_gradients=g)

        one_step_on_data_backward.__name__ = "one_step_on_data"
        backward = tf.function(one_step_on_data_backward)

        candidates[name] = (
            lambda forward=forward: forward(x),
            lambda backward=backward: backward(x, upstream),
        )
        outputs[name] = forward(x).numpy()
    reference = tf.nn.local_response_normalization(
        x,
        depth_radius=PAPER_LRN["size"] // 2,
        bias=PAPER_LRN["bias"],
        alpha=PAPER_LRN["alpha"],
        beta=PAPER_LRN["beta"],
    )
    outputs["reference"] = reference.numpy()
    return candidates, outputs


def jax_candidates(x_nhwc, upstream_nhwc, implementations):
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(x_nhwc)
    upstream = jnp.asarray(upstream_nhwc)
    candidates, outputs = {}, {}
    for name in implementations:
        layer = make_layer(name, x.shape)
        forward = jax.jit(lambda v, layer=layer: layer(v))

        @jax.jit
        def backward(v, g, layer=layer):
            _, pullback = jax.vjp(lambda u: layer(u, training=True), v)
            return pullback(g)[0]

        candidates[name] = (
            lambda forward=forward: forward(x).block_until_ready(),
            lambda backward=backward: backward(x, upstream).block_until_ready(),
        )
        outputs[name] = np.asarray(forward(x))
    return candidates, outputs


def torch_candidates(x_nhwc, upstream_nhwc, implementations):
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(x_nhwc).requires_grad_()
    upstream = torch.from_numpy(upstream_nhwc)
    # PyTorch's LRN normalizes dim 1: give it NCHW data, as its users have.
    x_nchw = torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy()).requires_grad_()
    upstream_nchw = torch.from_numpy(upstream_nhwc.transpose(0, 3, 1, 2).copy())
    size = PAPER_LRN["size"]

    def reference(v):
        # torch divides alpha by size.
        return F.local_response_norm(
            v, size, PAPER_LRN["alpha"] * size, PAPER_LRN["beta"], PAPER_LRN["bias"]
        )

    def timed(function, inputs, gradient, **kwargs):
        def forward():
            with torch.no_grad():
                return function(inputs)

        def backward():
            outputs = function(inputs, **kwargs)
            (grad,) = torch.autograd.grad(outputs, inputs, gradient)
            return grad

        return forward, backward

    candidates, outputs = {}, {}
    for name in implementations:
        layer = make_layer(name, tuple(x.shape))
        candidates[name] = timed(layer, x, upstream, training=True)
        outputs[name] = candidates[name][0]().numpy()
    candidates["reference"] = timed(reference, x_nchw, upstream_nchw)
    outputs["reference"] = candidates["reference"][0]().numpy().transpose(0, 2, 3, 1)
    return candidates, outputs


LABELS = {
    "auto": "auto (XLA)",
    "native": "native = tf.nn.local_response_normalization",
    "reference": "F.local_response_norm (NCHW)",
}


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    if run_per_backend(os.path.abspath(__file__), args):
        return
    backend = args.backend
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    repeats = args.repeats or (3 if args.quick else 5)

    from keras_alexnet.layers.local_response_normalization import (
        default_implementations,
    )

    forward, training = default_implementations(rank=4)
    implementations = layer_implementations(backend)
    compiled = "auto" in implementations
    print(machine_line(backend))
    print(
        f"layer defaults on this machine: {forward} for inference, "
        f"{training} for training (the fwd+bwd rows call training=True)"
        + (
            "; in Keras' steps and eager calls, inference runs the slices "
            "compiled by XLA (row 'auto (XLA)')"
            if compiled
            else ""
        )
    )
    if compiled:
        forward = training = "auto"
    defaults = {"forward": forward, "fwd+bwd": training}
    make = {
        "tensorflow": tensorflow_candidates,
        "jax": jax_candidates,
        "torch": torch_candidates,
    }[backend]

    rng = np.random.default_rng(0)
    rows, ratios = [], []
    for shape in shapes:
        # ReLU outputs of conv1's magnitude: non-negative, many zeros.
        x = np.maximum(rng.standard_normal(shape) * 30.0, 0.0).astype("float32")
        upstream = rng.standard_normal(shape).astype("float32")
        candidates, outputs = make(x, upstream, implementations)
        # TensorFlow's or PyTorch's own LRN; under JAX, the exact shifted slices.
        truth = outputs.get("reference", outputs["slices"])
        shape_name = "x".join(str(d) for d in shape)
        for mode, index in (("forward", 0), ("fwd+bwd", 1)):
            # A backward pass takes seconds at full size: fewer repeats.
            times = interleaved_times(
                {name: pair[index] for name, pair in candidates.items()},
                repeats=repeats if index == 0 else max(3, repeats - 2),
                warmup=1,
            )
            default = defaults[mode]
            base = median(times[default])
            for name, values in times.items():
                label = LABELS.get(name, name)
                error = np.max(np.abs(outputs[name] - truth) / (np.abs(truth) + 1e-6))
                rows.append(
                    [
                        shape_name,
                        mode,
                        label + (" (layer default)" if name == default else ""),
                        1e3 * median(values),
                        1e3 * min(values),
                        median(values) / base,
                        f"{error:.0e}" if mode == "forward" else "",
                    ]
                )
                if name != default:
                    ratios.append(
                        ratio_line(
                            f"lrn {backend} {mode} {shape_name}",
                            name,
                            default,
                            median(values) / base,
                        )
                    )
    print(
        format_table(
            [
                "shape",
                "pass",
                "implementation",
                "median ms",
                "min ms",
                "vs default",
                "max rel. err",
            ],
            rows,
        )
    )
    print("\n".join(ratios))


if __name__ == "__main__":
    main()
