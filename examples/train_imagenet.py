"""Trains AlexNet on ImageNet from scratch with the 2012 paper's recipe.

    # TFDS imagenet2012, from the archives ILSVRC2012_img_{train,val}.tar:
    python examples/train_imagenet.py --manual-dir ~/ILSVRC2012
    # or from folders (train/<wnid>/*.JPEG, a flat val/ with its labels file):
    python examples/train_imagenet.py --train-dir /data/train --val-dir /data/val \\
        --val-labels /data/LOC_val_solution.csv
    # offline smoke run, a few steps on a tiny synthetic folder:
    python examples/train_imagenet.py --synthetic
    # with no arguments: says what it needs

The same with a resumable run folder, curves and conv1 filters:
`keras-alexnet train DATA --recipe paper`.

The recipe (Krizhevsky et al., 2012, sections 4.1 and 5):

- the paper's network (`variant="original"`: two groups, LRN with n=5, k=2,
  alpha=1e-4, beta=0.75) with its initialisation, weights from N(0, 0.01) and
  biases 1 in conv2, conv4, conv5, fc6 and fc7;
- random 227x227 crops of the images resized to 256, horizontal flips and PCA
  lighting (`keras_alexnet.data`'s "paper" augmentation), minus the mean pixel;
- SGD with batch 128, momentum 0.9 and weight decay 0.0005 inside the momentum
  (`PaperSGD`), learning rate 0.01 divided by 10 when the validation error stops
  improving, three times (`paper_callbacks`), about 90 epochs;
- at the end, the paper's 10-crop test: the average softmax of four corner
  crops, the centre crop and their mirrors.

On one modern GPU an epoch takes tens of minutes; the paper's two GTX 580s took
five to six days for the 90 epochs. Training resumes where it stopped after an
interruption (`keras.callbacks.BackupAndRestore`).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

import keras_alexnet
from keras_alexnet.data import evaluate_ten_crop, imagenet_dataset

# Real ImageNet classes for the synthetic run, more than the 5 of top-5 accuracy.
SYNTHETIC_CLASSES = (
    "n01440764",
    "n01443537",
    "n01484850",
    "n01491361",
    "n01494475",
    "n01496331",
)


def make_synthetic_imagenet(root: str, train: int = 1, val: int = 1) -> str:
    """Writes `root/{train,val}/<wnid>/<i>.JPEG`: noise around a colour per class."""
    rng = np.random.default_rng(0)
    for wnid in SYNTHETIC_CLASSES:
        colour = rng.uniform(40, 215, 3)
        for split, count in (("train", train), ("val", val)):
            folder = os.path.join(root, split, wnid)
            os.makedirs(folder, exist_ok=True)
            for index in range(count):
                pixels = colour + rng.normal(0, 30, (64, 80, 3))
                image = tf.constant(np.clip(pixels, 0, 255).astype(np.uint8))
                path = os.path.join(folder, f"{wnid}_{index}.JPEG")
                tf.io.write_file(path, tf.io.encode_jpeg(image))
    return root


def datasets(args: argparse.Namespace):
    """The training set, the validation set, and the validation set's 10 crops."""
    if args.train_dir:
        train_source, val_source = args.train_dir, args.val_dir
        extra = {}
        val_extra = {"labels_file": args.val_labels} if args.val_labels else {}
    else:
        train_source = val_source = "imagenet2012"
        extra = val_extra = {"manual_dir": args.manual_dir, "data_dir": args.data_dir}
    common = {"variant": "original", "batch_size": args.batch_size}
    # A seed makes the run reproducible, at some cost in input speed.
    train = imagenet_dataset(
        "train",
        source=train_source,
        augment="paper",
        seed=args.seed,
        **common,
        **extra,
    )
    val = imagenet_dataset(
        "validation", source=val_source, augment="center_crop", **common, **val_extra
    )
    ten_crop = imagenet_dataset(
        "validation",
        source=val_source,
        augment="ten_crop",
        variant="original",
        batch_size=max(1, args.batch_size // 10),
        **val_extra,
    )
    return train, val, ten_crop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manual-dir", help="folder of the ILSVRC2012 archives")
    parser.add_argument("--data-dir", help="TFDS data directory")
    parser.add_argument("--train-dir", help="ImageNet-style training folder")
    parser.add_argument("--val-dir", help="validation folder")
    parser.add_argument("--val-labels", help="labels file of a flat --val-dir")
    parser.add_argument("--epochs", type=int, default=90)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--output-dir", default="alexnet_training")
    parser.add_argument("--seed", type=int, help="reproducible shuffling and crops")
    parser.add_argument("--synthetic", action="store_true", help="offline smoke run")
    args = parser.parse_args()
    if not (args.synthetic or args.manual_dir or args.data_dir or args.train_dir):
        print(
            "This example trains on ILSVRC-2012, which cannot be downloaded "
            "automatically: get ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar "
            "from https://image-net.org and pass --manual-dir FOLDER (TFDS prepares "
            "them once), or pass --train-dir and --val-dir for unpacked folders. "
            "--synthetic runs a few offline steps on generated images."
        )
        return
    if bool(args.train_dir) != bool(args.val_dir):
        parser.error("--train-dir and --val-dir go together")

    with tempfile.TemporaryDirectory() as scratch:
        if args.synthetic:
            root = make_synthetic_imagenet(os.path.join(scratch, "imagenet"))
            args.train_dir = os.path.join(root, "train")
            args.val_dir = os.path.join(root, "val")
            # The paper's rate makes a 6-class problem with batches of 6 diverge:
            # with fc7's biases of 1, one step moves every logit by about
            # lr * |fc7|^2 * (p - y), |fc7|^2 >= 4096; ImageNet's 1000 classes
            # and batches of 128 keep the average (p - y) a thousand times smaller.
            args.epochs, args.batch_size, args.learning_rate = 1, 6, 1e-4
            args.seed = 0
            args.output_dir = os.path.join(scratch, "training")
        train, val, ten_crop = datasets(args)
        classes = len(train.class_names)

        # The paper's network and initialisation: weights=None.
        model = keras_alexnet.AlexNet(weights=None, variant="original", classes=classes)
        model.compile(
            optimizer=keras_alexnet.PaperSGD(learning_rate=args.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=[
                keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5"),
            ],
        )
        os.makedirs(args.output_dir, exist_ok=True)
        callbacks = [
            *keras_alexnet.paper_callbacks(
                monitor="val_accuracy", initial_learning_rate=args.learning_rate
            ),
            keras.callbacks.BackupAndRestore(os.path.join(args.output_dir, "backup")),
            keras.callbacks.ModelCheckpoint(
                os.path.join(args.output_dir, "best.weights.h5"),
                monitor="val_accuracy",
                mode="max",
                save_best_only=True,
                save_weights_only=True,
            ),
            keras.callbacks.CSVLogger(os.path.join(args.output_dir, "log.csv")),
        ]
        model.fit(
            train,
            validation_data=val,
            epochs=args.epochs,
            callbacks=callbacks,
            verbose=2,
        )

        # The paper's test protocol: the average of ten crops' softmax.
        result = evaluate_ten_crop(model, ten_crop)
        print(
            f"10-crop validation: top-1 error {1 - result['top1']:.3f}, "
            f"top-5 error {1 - result['top5']:.3f} on {result['count']} images"
        )


if __name__ == "__main__":
    main()
