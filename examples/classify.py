"""Classifies photos with a pretrained AlexNet.

    python examples/classify.py                       # the sample photos, or how
                                                      # to get the weights
    python examples/classify.py cat.jpg dog.png       # your own JPEG or PNG files
    python examples/classify.py --variant torchvision # torchvision's weights
    python examples/classify.py --weights none        # offline: random weights

The first run downloads the checkpoint (about 233 MB) and converts it once into
the Keras cache (`~/.keras/models/keras_alexnet/`); set
`KERAS_ALEXNET_WEIGHTS_MIRROR` to a folder holding the original file on a machine
without network access.

Each image is prepared as the checkpoint's authors evaluated it by
`keras_alexnet.data.load_image`, from the checkpoint's registry entry: shorter
side resized to 256, centre crop (227 pixels for the paper's network and Caffe's
weights, 224 for torchvision's), then the checkpoint's normalisation.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import keras_alexnet
from keras_alexnet.data import load_image
from keras_alexnet.weights import download, registry


def explain_download(variant: str) -> bool:
    """With no arguments, says what a run would download, if anything.

    Returns whether it did (then the example stops: it never reaches for the
    network unasked).
    """
    hint = (
        None
        if len(sys.argv) > 1
        else download.download_hint(registry.imagenet_checkpoint(variant))
    )
    if hint:
        print(hint)
    return hint is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help="image files (default: samples)")
    parser.add_argument(
        "--variant", choices=["original", "torchvision"], default="original"
    )
    parser.add_argument("--weights", choices=["imagenet", "none"], default="imagenet")
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    if explain_download(args.variant):
        return

    paths = args.images or [str(path) for path in keras_alexnet.sample_images()]
    weights = None if args.weights == "none" else "imagenet"
    if weights is None:
        print("Random weights (--weights none): the classes are meaningless.")
    model = keras_alexnet.AlexNet(weights=weights, variant=args.variant)

    x = np.stack([load_image(path, args.variant) for path in paths])
    probabilities = model.predict(x, verbose=0)
    decoded = keras_alexnet.decode_predictions(probabilities, top=args.top)
    for path, top in zip(paths, decoded, strict=True):
        print(path)
        for wnid, name, probability in top:
            print(f"  {probability:6.2%}  {name} ({wnid})")


if __name__ == "__main__":
    main()
