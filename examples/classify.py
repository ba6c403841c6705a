"""Classifies photos with a pretrained AlexNet.

    python examples/classify.py                       # the bundled sample photos
    python examples/classify.py cat.jpg dog.png       # your own JPEG or PNG files
    python examples/classify.py --variant torchvision # torchvision's weights
    python examples/classify.py --weights none        # offline: random weights

The first run downloads the checkpoint (about 233 MB) and converts it once into
the Keras cache (`~/.keras/models/keras_alexnet/`); set
`KERAS_ALEXNET_WEIGHTS_MIRROR` to a folder holding the original file on a machine
without network access.

Each image is prepared as the checkpoint's authors evaluated it: shorter side
resized to 256, centre crop (227 pixels for the paper's network and Caffe's
weights, 224 for torchvision's), then `preprocess_input`.
"""

from __future__ import annotations

import argparse

import numpy as np
import tensorflow as tf

import keras_alexnet

IMAGE_SIZE = {"original": 227, "torchvision": 224}


def load_image(path: str, image_size: int, antialias: bool) -> np.ndarray:
    """Decodes an image, resizes its shorter side to 256 and crops the centre."""
    image = tf.io.decode_image(
        tf.io.read_file(path), channels=3, expand_animations=False
    )
    height, width = image.shape[0], image.shape[1]
    scale = 256 / min(height, width)
    size = (max(256, round(height * scale)), max(256, round(width * scale)))
    image = tf.image.resize(image, size, method="bilinear", antialias=antialias)
    top, left = (size[0] - image_size) // 2, (size[1] - image_size) // 2
    return image[top : top + image_size, left : left + image_size].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help="image files (default: samples)")
    parser.add_argument("--variant", choices=sorted(IMAGE_SIZE), default="original")
    parser.add_argument("--weights", choices=["imagenet", "none"], default="imagenet")
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()

    paths = args.images or [str(path) for path in keras_alexnet.sample_images()]
    weights = None if args.weights == "none" else "imagenet"
    if weights is None:
        print("Random weights (--weights none): the classes are meaningless.")
    model = keras_alexnet.AlexNet(weights=weights, variant=args.variant)

    # Caffe's images were resized by OpenCV (no antialiasing), torchvision's by
    # PIL (antialiased): resize as each checkpoint's training data was.
    antialias = args.variant == "torchvision"
    images = np.stack(
        [load_image(path, IMAGE_SIZE[args.variant], antialias) for path in paths]
    )
    x = keras_alexnet.preprocess_input(images, args.variant)
    probabilities = model.predict(x, verbose=0)
    decoded = keras_alexnet.decode_predictions(probabilities, top=args.top)
    for path, top in zip(paths, decoded, strict=True):
        print(path)
        for wnid, name, probability in top:
            print(f"  {probability:6.2%}  {name} ({wnid})")


if __name__ == "__main__":
    main()
