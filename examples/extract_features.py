"""Extracts AlexNet features (pool5 and fc7) for images, by stable layer names.

    python examples/extract_features.py                     # the sample photos, or
                                                            # how to get the weights
    python examples/extract_features.py a.jpg b.jpg --output features.npz
    python examples/extract_features.py --weights none      # offline: random weights

fc7 (4096 values after its ReLU) is the classic "DeCAF" descriptor (Donahue et
al., 2014); pool5 (6x6x256) keeps the spatial layout. Any layer can be read the
same way: `conv1` ... `conv5`, `norm1`, `norm2`, `pool1`, `pool2`, `pool5`,
`fc6`, `fc7`, `predictions`.
"""

from __future__ import annotations

import argparse
import sys

import keras
import numpy as np

import keras_alexnet
from keras_alexnet.data import load_image
from keras_alexnet.weights import download, registry

LAYERS = ("pool5", "fc7")


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
    parser.add_argument("--weights", choices=["imagenet", "none"], default="imagenet")
    parser.add_argument("--output", help="save the features to this .npz file")
    args = parser.parse_args()
    if explain_download("original"):
        return

    paths = args.images or [str(path) for path in keras_alexnet.sample_images()]
    weights = None if args.weights == "none" else "imagenet"
    model = keras_alexnet.AlexNet(weights=weights, variant="original")
    # One sub-model returning several layers' outputs, by their names.
    extractor = keras.Model(
        model.input, {name: model.get_layer(name).output for name in LAYERS}
    )

    # Shorter side to 256, centre 227 crop, Caffe's BGR mean subtraction.
    x = np.stack([load_image(path, "bvlc_alexnet") for path in paths])
    features = extractor.predict(x, verbose=0)
    for name in LAYERS:
        print(f"{name}: {features[name].shape}")

    # Cosine similarity of the fc7 descriptors: similar images score higher.
    fc7 = features["fc7"] / np.linalg.norm(features["fc7"], axis=1, keepdims=True)
    similarity = fc7 @ fc7.T
    print("fc7 cosine similarity:")
    for path, row in zip(paths, similarity, strict=True):
        print(f"  {path.rsplit('/', 1)[-1]:<24}" + " ".join(f"{s:5.2f}" for s in row))
    if args.output:
        np.savez(args.output, paths=np.array(paths), **features)
        print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
