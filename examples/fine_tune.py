"""Fine-tunes a pretrained AlexNet on a small dataset, with a new classifier head.

    python examples/fine_tune.py --source tf_flowers          # TFDS, downloads
    python examples/fine_tune.py --source imagenette/320px-v2
    python examples/fine_tune.py --source ~/photos            # ~/photos/<class>/*.jpg
    python examples/fine_tune.py --synthetic                  # offline, < 1 minute
    python examples/fine_tune.py                              # says what it needs

The same as a command, with a resumable run folder and pictures:
`keras-alexnet finetune DATA --weights imagenet`.

Two phases, the usual recipe: first only the new head learns on top of the
frozen ImageNet features (`include_top=False`, global average pooling of pool5),
then the whole network is fine-tuned with a small learning rate. The input
pipeline is `keras_alexnet.data.imagenet_dataset`, which reads TFDS datasets and
image folders alike and applies the checkpoint's preprocessing.

`--synthetic` writes a tiny folder of coloured noise images (one colour per
class) and trains on it from random weights, to check the script end to end
without network access.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

import keras_alexnet
from keras_alexnet.data import imagenet_dataset


def make_synthetic_folder(root: str, classes: int = 3, per_class: int = 8) -> str:
    """Writes `root/<class>/<i>.jpg`: noise around one colour per class."""
    rng = np.random.default_rng(0)
    for label in range(classes):
        folder = os.path.join(root, f"class_{label}")
        os.makedirs(folder, exist_ok=True)
        colour = rng.uniform(40, 215, 3)
        for index in range(per_class):
            pixels = colour + rng.normal(0, 30, (72, 96, 3))
            image = tf.constant(np.clip(pixels, 0, 255).astype(np.uint8))
            tf.io.write_file(
                os.path.join(folder, f"{index}.jpg"), tf.io.encode_jpeg(image)
            )
    return root


def check_network_for(name: str) -> None:
    """Exits with one line, at once, when a TFDS download cannot succeed.

    TFDS retries a failed download for minutes before raising a
    ConnectionError; a dataset already prepared needs no network.
    """
    import tensorflow_datasets as tfds

    try:
        if tfds.builder(name).is_prepared():
            return
    except Exception as error:  # an unknown name, say: TFDS's own message
        sys.exit(f"fine_tune.py: {error}")
    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=5).close()
    except OSError as error:
        sys.exit(
            f"fine_tune.py: {name!r} is not prepared in the TFDS data folder and "
            f"its download server cannot be reached ({error}). Pass --source FOLDER "
            "for your own images, or --synthetic."
        )


def splits(args: argparse.Namespace, variant: str):
    """The training and validation datasets, and the class names."""
    common = {
        "variant": variant,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "seed": 0,
    }
    if os.path.isdir(os.path.expanduser(args.source)):
        source = os.path.expanduser(args.source)
        # One folder: train on it with augmentation, validate on its centre crops
        # (use a separate folder of held-out images for a real measurement).
        train = imagenet_dataset("train", source=source, **common)
        val = imagenet_dataset("validation", source=source, **common)
    else:
        # TFDS: tf_flowers has only a "train" split; hold 10 % of it out.
        train = imagenet_dataset("train[:90%]", source=args.source, **common)
        val = imagenet_dataset(
            "train[90%:]",
            source=args.source,
            augment="center_crop",
            shuffle=False,
            drop_remainder=False,
            **common,
        )
    return train, val, train.class_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="TFDS name (tf_flowers) or a folder")
    parser.add_argument("--variant", choices=["original", "torchvision"])
    parser.add_argument("--weights", choices=["imagenet", "none"], default="imagenet")
    parser.add_argument("--epochs", type=int, default=5, help="head-only epochs")
    parser.add_argument("--fine-tune-epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--image-size",
        type=int,
        help="the side of the crop taken from each image after its shorter side "
        "is resized to 256: a crop, not a rescale (128 keeps the middle half); "
        "default: the checkpoint's (227 or 224)",
    )
    parser.add_argument("--synthetic", action="store_true", help="offline smoke run")
    args = parser.parse_args()
    variant = args.variant or "original"
    if args.source is None and not args.synthetic:
        print(
            "This example fine-tunes on a dataset of your choice: --source "
            "tf_flowers downloads TFDS's tf_flowers (about 220 MB) and the "
            "ImageNet weights (about 233 MB); --source ~/photos reads a folder "
            "of class folders (~/photos/<class>/*.jpg); --synthetic runs "
            "offline on generated images in seconds."
        )
        return
    if args.synthetic is False and not os.path.isdir(os.path.expanduser(args.source)):
        check_network_for(args.source)

    with tempfile.TemporaryDirectory() as scratch:
        if args.synthetic:
            args.source = make_synthetic_folder(os.path.join(scratch, "images"))
            args.weights, args.epochs, args.fine_tune_epochs = "none", 1, 1
            # Small crops (128 of the 256-pixel images), for speed: without its
            # top, AlexNet takes any size from 67 (original) or 63 (torchvision).
            args.batch_size, args.image_size = 8, 128
        train, val, class_names = splits(args, variant)
        print(f"{len(class_names)} classes: {', '.join(class_names[:10])}")

        weights = None if args.weights == "none" else "imagenet"
        size = args.image_size
        base = keras_alexnet.AlexNet(
            include_top=False,
            weights=weights,
            variant=variant,
            pooling="avg",
            input_shape=None if size is None else (size, size, 3),
        )
        base.trainable = False
        inputs = keras.Input(base.input_shape[1:])
        # training=False keeps the base in inference mode in both phases.
        x = base(inputs, training=False)
        x = keras.layers.Dropout(0.5)(x)
        outputs = keras.layers.Dense(len(class_names), activation="softmax")(x)
        model = keras.Model(inputs, outputs)

        # Phase 1: the new head alone.
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        model.fit(train, validation_data=val, epochs=args.epochs, verbose=2)

        # Phase 2: everything, with a learning rate a tenth of the paper's.
        base.trainable = True
        model.compile(
            optimizer=keras_alexnet.PaperSGD(learning_rate=1e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        model.fit(train, validation_data=val, epochs=args.fine_tune_epochs, verbose=2)
        loss, accuracy = model.evaluate(val, verbose=0)
        print(f"validation accuracy: {accuracy:.3f} (loss {loss:.3f})")


if __name__ == "__main__":
    main()
