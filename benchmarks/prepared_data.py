"""Reading prepared 256-pixel shards against decoding the original JPEGs.

Writes a folder of JPEGs of ImageNet's typical size (500x375, quality 90,
fine-grained content, 110 KiB per file like ImageNet), prepares it once with
`prepare_imagenet` (shorter side 256, TFRecord shards), then times one epoch of
`imagenet_dataset` from each, side by side, with TensorFlow limited to one
thread: images per second per core. Both pipelines apply the same augmentation
and yield the same batches, for each output the library offers:

- `paper`, `original`: the paper's random crop of the central square, flip,
  PCA lighting, Caffe's preprocessing (float32, 227 px);
- `paper`, `torchvision`: the same with torchvision's preprocessing (224 px,
  antialiased resizing as PIL does);
- `paper`, `original`, uint8: the same crops as uint8 RGB pixels, resized as
  Caffe's (without antialiasing), for `AlexNet(variant="original",
  include_preprocessing=True)`, which normalises them on the device (the GPU
  feed of the Caffe weights);
- `paper`, `None`: uint8 pixels resized like PIL (224 px), for
  `AlexNet(include_preprocessing=True)`;
- `center_crop`, `original`: the evaluation transform.

Usage: python benchmarks/prepared_data.py [--quick] [--repeats N] [--quality Q]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))  # the repository root, for tests/
from _common import format_table, median, ratio_line  # noqa: E402


def photo_like(height, width, seed):
    """Fine-grained noise on gradients: about ImageNet's 110 KiB per JPEG.

    Decoding time grows with the entropy of the file, so smoother synthetic
    images (30 KiB) would flatter the original JPEGs' decoding.
    """
    import numpy as np
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    noise = Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8))
    detail = np.asarray(noise.filter(ImageFilter.GaussianBlur(0.7)), np.float64)
    y = np.linspace(0, 1, height)[:, None, None]
    x = np.linspace(0, 1, width)[None, :, None]
    ramp = 60 * y + 60 * x * np.array([1.0, -0.5, 0.3])
    return np.clip(detail * 0.9 + ramp + 10, 0, 255).astype(np.uint8)


# (augment, variant, dtype) of each pipeline timed from both sources.
CONFIGURATIONS = (
    ("paper", "original", "float32"),
    ("paper", "original", "uint8"),
    ("paper", "torchvision", "float32"),
    ("paper", None, "uint8"),
    ("center_crop", "original", "float32"),
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--quality",
        type=int,
        default=None,
        help="the JPEG quality prepare_imagenet stores (default: its default)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    count = 24 if args.quick else 384
    repeats = args.repeats or (1 if args.quick else 3)

    import tensorflow as tf

    from keras_alexnet.data import imagenet_dataset, prepare_imagenet
    from tests.data_fixtures import TREE_CLASSES, encode, write

    load = os.getloadavg()[0]
    print(
        f"tensorflow {tf.__version__}; one thread; {os.cpu_count()} CPUs, "
        f"load average {load:.2f} at start; {count} images of 500x375"
    )
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "train")
        for index in range(count):
            wnid = TREE_CLASSES[index % len(TREE_CLASSES)]
            image = photo_like(375, 500, seed=index)
            write(
                os.path.join(source, wnid, f"{index}.JPEG"), encode(image, quality=90)
            )
        prepared = os.path.join(folder, "prepared")
        quality = {} if args.quality is None else {"quality": args.quality}
        start = time.perf_counter()
        manifest = prepare_imagenet(
            source, prepared, shard_size=64, verbose=0, **quality
        )
        prepare_seconds = time.perf_counter() - start

        def sizes(root):
            return sum(
                os.path.getsize(os.path.join(d, f))
                for d, _, files in os.walk(root)
                for f in files
            )

        options = tf.data.Options()
        options.threading.private_threadpool_size = 1
        options.threading.max_intra_op_parallelism = 1
        roots = {"original": source, "prepared": prepared}
        datasets = {
            (root_name, augment, variant, dtype): imagenet_dataset(
                "train",
                source=root,
                augment=augment,
                variant=variant,
                dtype=dtype,
                batch_size=32,
                seed=0,
                drop_remainder=False,
            ).with_options(options)
            for augment, variant, dtype in CONFIGURATIONS
            for root_name, root in roots.items()
        }

        def epoch(dataset):
            images = 0
            for batch, _ in dataset:
                images += int(batch.shape[0])
            return images

        for dataset in datasets.values():  # warm-up: traces the functions
            epoch(dataset)
        seconds = {name: [] for name in datasets}
        for repeat in range(repeats):
            names = list(datasets) if repeat % 2 == 0 else list(datasets)[::-1]
            for name in names:
                start = time.perf_counter()
                images = epoch(datasets[name])
                seconds[name].append(time.perf_counter() - start)
        rates = {name: images / median(values) for name, values in seconds.items()}
        spans = {
            name: f"{images / max(values):.0f}-{images / min(values):.0f}"
            for name, values in seconds.items()
        }
        kib = {name: sizes(root) / count / 1024 for name, root in roots.items()}
    print(
        f"prepare_imagenet: {count / prepare_seconds:.1f} images/s (all threads), "
        f"JPEG quality {manifest['quality']}; KiB per image on disk: "
        f"original {kib['original']:.0f}, prepared {kib['prepared']:.0f}"
    )
    rows = []
    for config in CONFIGURATIONS:
        original = rates[("original", *config)]
        prepared_rate = rates[("prepared", *config)]
        rows.append(
            [
                ", ".join(map(str, config)),
                f"{original:.0f} ({spans[('original', *config)]})",
                f"{prepared_rate:.0f} ({spans[('prepared', *config)]})",
                f"{prepared_rate / original:.2f}",
            ]
        )
    print(
        format_table(
            [
                "augment, variant, dtype",
                "original JPEGs, img/s (range)",
                "prepared shards, img/s (range)",
                "ratio",
            ],
            rows,
        )
    )
    for config in CONFIGURATIONS:
        value = rates[("prepared", *config)] / rates[("original", *config)]
        print(
            ratio_line(
                f"prepared_data {' '.join(map(str, config))} img/s",
                "prepared",
                "original",
                value,
            )
        )


if __name__ == "__main__":
    main()
