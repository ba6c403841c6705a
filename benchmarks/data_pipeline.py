"""Images per second of the paper's training pipeline: keras_alexnet.data against
PIL + a torch DataLoader doing the same augmentation, side by side.

Both pipelines read the same synthetic ImageNet-sized JPEGs (500x375 and
375x500, quality 90, 4:2:0, like most of ImageNet) from a temporary folder and
produce float32 batches of crops: shorter side to 256, central 256 square,
random crop (227 for the original variant, 224 for torchvision), horizontal
flip, PCA lighting, then the checkpoint's preprocessing. Files sit in the page
cache after the warm-up, so this measures decoding and augmentation, not the disk.

Each pipeline runs with 1 worker, then with one worker per core (tf.data: a
private thread pool of that size; torch: that many DataLoader worker processes,
each with one intra-op thread). Two rates are printed: images per second of wall
time, and images per CPU-second of the whole process tree (user + system, the
DataLoader's workers included), the per-core rate that does not depend on other
load on the machine.

Usage: python benchmarks/data_pipeline.py [--images 512] [--batches 16]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from PIL import Image

EIGENVALUES = np.array([0.2175, 0.0188, 0.0045], np.float32)
EIGENVECTORS = np.array(
    [
        [-0.5675, 0.7192, 0.4009],
        [-0.5808, -0.0045, -0.8140],
        [-0.5836, -0.6948, 0.4203],
    ],
    np.float32,
)
CAFFE_BGR_MEAN = np.array([104.00698793, 116.66876762, 122.67891434], np.float32)
TORCHVISION_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
TORCHVISION_STD = np.array([0.229, 0.224, 0.225], np.float32)
CROP = {"original": 227, "torchvision": 224}
RESIZE = 256


def write_jpegs(root: str, count: int, classes: int = 4) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        width, height = (500, 375) if i % 4 else (375, 500)
        # Smooth content (upsampled noise) compresses like photographs do.
        small = rng.integers(0, 256, (height // 16, width // 16, 3), np.uint8)
        image = Image.fromarray(small).resize((width, height), Image.BICUBIC)
        noise = rng.normal(0, 6, (height, width, 3))
        pixels = np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8)
        folder = os.path.join(root, f"n{i % classes:08d}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(pixels).save(os.path.join(folder, f"{i}.JPEG"), quality=90)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its children (the workers)."""
    import psutil

    processes = [psutil.Process()]
    processes += processes[0].children(recursive=True)
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def time_batches(iterator, batches: int, batch_size: int) -> tuple[float, float]:
    """Returns (images per wall second, images per CPU-second)."""
    for _ in range(3):  # warm-up: threads, workers, page cache
        next(iterator)
    start, start_cpu = time.perf_counter(), cpu_seconds()
    for _ in range(batches):
        next(iterator)
    images = batches * batch_size
    wall, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    return images / wall, images / cpu


def keras_alexnet_rate(
    root: str, variant: str, threads: int, batches: int, batch_size: int
) -> tuple[float, float]:
    import tensorflow as tf

    from keras_alexnet.data import imagenet_dataset

    dataset = imagenet_dataset(
        "train", source=root, variant=variant, batch_size=batch_size, repeat=True
    )
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    dataset = dataset.with_options(options)
    return time_batches(iter(dataset), batches, batch_size)


class PaperAugmentedFolder:
    """The same recipe with PIL, NumPy and torch, as a torchvision user writes it."""

    def __init__(self, root: str, variant: str):
        self.variant = variant
        self.crop = CROP[variant]
        self.files = sorted(
            os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
        )
        self.rng = np.random.default_rng()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        import torch

        image = Image.open(self.files[index]).convert("RGB")
        width, height = image.size
        scale = RESIZE / min(width, height)
        size = (round(width * scale), round(height * scale))
        image = image.resize(size, Image.BILINEAR)
        left, top = (size[0] - RESIZE) // 2, (size[1] - RESIZE) // 2
        x = left + self.rng.integers(0, RESIZE - self.crop + 1)
        y = top + self.rng.integers(0, RESIZE - self.crop + 1)
        image = image.crop((x, y, x + self.crop, y + self.crop))
        if self.rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        pixels = torch.from_numpy(np.asarray(image, np.float32))
        alpha = self.rng.normal(0, 0.1, 3).astype(np.float32)
        shift = 255 * EIGENVECTORS @ (alpha * EIGENVALUES)
        pixels = pixels + torch.from_numpy(shift)
        if self.variant == "original":
            pixels = pixels.flip(-1) - torch.from_numpy(CAFFE_BGR_MEAN)
        else:
            mean, std = (
                torch.from_numpy(TORCHVISION_MEAN),
                torch.from_numpy(TORCHVISION_STD),
            )
            pixels = (pixels / 255 - mean) / std
        return pixels, index % 4


def _worker_init(worker_id: int) -> None:
    import torch

    torch.set_num_threads(1)
    # Forked workers share the parent's generator state: reseed each one.
    info = torch.utils.data.get_worker_info()
    info.dataset.rng = np.random.default_rng(info.seed)


def torch_rate(root: str, variant: str, workers: int, batches: int, batch_size: int):
    import torch

    loader = torch.utils.data.DataLoader(
        PaperAugmentedFolder(root, variant),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        worker_init_fn=_worker_init,
        persistent_workers=True,
        drop_last=True,
    )

    def forever():
        while True:
            yield from loader

    return time_batches(forever(), batches, batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as root:
        write_jpegs(root, args.images)
        print(
            f"{args.images} JPEGs 500x375, batches of {args.batch_size}, {cores} "
            "cores; img/s = per wall second, img/cpu-s = per CPU-second (per core)"
        )
        header = "keras_alexnet img/s img/cpu-s   PIL+torch img/s img/cpu-s   ratio"
        print(f"{'variant':<12} {'workers':>7}   {header}")
        for variant in ("original", "torchvision"):
            for workers in sorted({1, cores}):
                rates = (args.batches, args.batch_size)
                ours = keras_alexnet_rate(root, variant, workers, *rates)
                theirs = torch_rate(root, variant, workers, *rates)
                print(
                    f"{variant:<12} {workers:>7}   {ours[0]:>19.0f} {ours[1]:>9.0f}"
                    f"   {theirs[0]:>15.0f} {theirs[1]:>9.0f}"
                    f"   {ours[1] / theirs[1]:>5.2f}"
                )


if __name__ == "__main__":
    main()
