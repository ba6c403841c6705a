"""The names that options of runs and export take, free of Keras.

The command line offers them as choices before a backend is chosen, so they
live apart from the modules that use them (`runs.recipes`, `runs.models`,
`runs.train`, `export`), which import them from here.
"""

from __future__ import annotations

import types
from collections.abc import Mapping

__all__ = [
    "BACKENDS",
    "DISTRIBUTE_MODES",
    "EXPORT_FORMATS",
    "EXPORT_SUFFIXES",
    "INITIALIZATIONS",
    "RECIPE_NAMES",
]

# The Keras backends keras-alexnet runs on.
BACKENDS = ("tensorflow", "jax", "torch")
# The recipes of `keras_alexnet.runs.recipes.RECIPES`.
RECIPE_NAMES = ("auto", "paper", "modern")
# `paper`: N(0, 0.01), biases 1; `he`: He normal, biases 0 (see runs/models.py).
INITIALIZATIONS = ("paper", "he")
# How `train(distribute=...)` spreads a run over devices.
DISTRIBUTE_MODES = ("data-parallel", "model-parallel", "multi-worker")
# The formats of `export_model`, and the file suffix of those written as a file
# (a SavedModel is a directory).
EXPORT_FORMATS = ("saved_model", "onnx", "tflite")
EXPORT_SUFFIXES: Mapping[str, str] = types.MappingProxyType(
    {"onnx": ".onnx", "tflite": ".tflite"}
)
