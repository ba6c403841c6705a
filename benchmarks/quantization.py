"""int8 inference on CPU: `model.quantize("int8")` against float32, side by side.

Keras 3 quantizes `Dense` layers (not `Conv2D`): in AlexNet that is fc6, fc7
and fc8, 58.6 of its 61 million weights, a quarter of the bytes afterwards.
Images per second of `predict_on_batch` at batch 1 (where the fully connected
layers' weight reads dominate) and at batch 16, and the drift of the logits:
the largest difference over the largest logit, and top-1 agreement. No
pretrained weights are available offline here, so the model has the paper's
deterministic random initialisation (seed 0) and the inputs are
Caffe-preprocessed random pixels: the drift of converted weights on real images
may differ.

Usage: python benchmarks/quantization.py [--backend tensorflow|jax|torch|all]
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


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    if run_per_backend(os.path.abspath(__file__), args):
        return
    backend = args.backend
    repeats = args.repeats or (2 if args.quick else 6)
    batches = (1, 2) if args.quick else (1, 16)

    import keras

    from keras_alexnet import AlexNet

    print(machine_line(backend))
    keras.utils.set_random_seed(0)
    common = {"weights": None, "lrn": "caffe", "classifier_activation": None}
    float_model = AlexNet(**common)
    int8_model = AlexNet(**common)
    int8_model.set_weights(float_model.get_weights())
    import warnings

    with warnings.catch_warnings():
        # Keras warns for each layer it cannot quantize (all but Dense).
        warnings.simplefilter("ignore")
        int8_model.quantize("int8")
    quantized = [layer.name for layer in int8_model.layers if _is_int8(layer)]
    print(f"quantized layers: {', '.join(quantized)}")

    rng = np.random.default_rng(0)
    rows, lines = [], []
    for batch in batches:
        x = rng.uniform(-128, 128, (batch, 227, 227, 3)).astype("float32")
        reference = np.asarray(float_model.predict_on_batch(x))
        outputs = np.asarray(int8_model.predict_on_batch(x))
        drift = np.max(np.abs(outputs - reference)) / np.max(np.abs(reference))
        agree = np.mean(np.argmax(outputs, -1) == np.argmax(reference, -1))
        times = interleaved_times(
            {
                "float32": lambda x=x: float_model.predict_on_batch(x),
                "int8": lambda x=x: int8_model.predict_on_batch(x),
            },
            repeats=repeats,
            warmup=1,
            pause=0.1,
        )
        rate = {name: batch / median(values) for name, values in times.items()}
        spread = {
            name: f"{batch / max(values):.1f}-{batch / min(values):.1f}"
            for name, values in times.items()
        }
        rows.append(
            [
                batch,
                f"{rate['float32']:.1f} ({spread['float32']})",
                f"{rate['int8']:.1f} ({spread['int8']})",
                f"{rate['int8'] / rate['float32']:.2f}",
                f"{drift:.1e}",
                f"{agree:.0%}",
            ]
        )
        lines.append(
            ratio_line(
                f"quantization {backend} batch {batch} img/s",
                "int8",
                "float32",
                rate["int8"] / rate["float32"],
            )
        )
    print(
        format_table(
            [
                "batch",
                "float32 img/s",
                "int8 img/s",
                "int8 / float32",
                "max |logit drift| / max |logit|",
                "top-1 agreement",
            ],
            rows,
        )
    )
    print("\n".join(lines))


def _is_int8(layer) -> bool:
    return getattr(layer, "quantization_mode", None) == "int8"


if __name__ == "__main__":
    main()
