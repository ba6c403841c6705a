"""Smoke test of an installed keras-alexnet wheel, run from outside the repository.

.ci/package_check runs it with the virtual environment's Python, in an empty
directory, so that `import keras_alexnet` can only find the installed wheel.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    import keras_alexnet
    from keras_alexnet import AlexNet, decode_predictions, preprocess_input

    location = Path(keras_alexnet.__file__).resolve()
    assert Path(sys.prefix).resolve() in location.parents, (
        f"keras_alexnet imported from {location}, not from the environment "
        f"{sys.prefix}: the repository's source leaked in"
    )
    version = importlib.metadata.version("keras-alexnet")
    assert keras_alexnet.__version__ == version, (keras_alexnet.__version__, version)
    assert (location.parent / "py.typed").is_file()

    # Build, then classify the bundled photos (random weights: offline).
    from PIL import Image

    photos = keras_alexnet.sample_images()
    assert len(photos) == 3, photos
    images = np.stack(
        [
            np.asarray(Image.open(path).convert("RGB").resize((227, 227)), np.float32)
            for path in photos
        ]
    )
    model = AlexNet(weights=None)
    assert model.count_params() == 60_965_224
    probabilities = np.asarray(model.predict_on_batch(preprocess_input(images)))
    assert probabilities.shape == (3, 1000)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
    top = decode_predictions(probabilities, top=3)
    assert [len(rows) for rows in top] == [3, 3, 3]
    wnid, name, _ = top[0][0]
    assert wnid.startswith("n") and len(wnid) == 9 and name, top[0][0]

    # The console script, as a user would call it.
    script = Path(sys.prefix) / "bin" / "keras-alexnet"
    help_text = subprocess.run(
        [script, "--help"], check=True, capture_output=True, text=True
    ).stdout
    assert "usage: keras-alexnet" in help_text and "export" in help_text, help_text
    classified = subprocess.run(
        [script, "classify", "--weights", "none", "--top", "2"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert classified.count("  1. n") == 3, classified
    print(f"wheel smoke test passed: keras-alexnet {version} from {location.parent}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
