"""Whole runs: train, fine-tune and evaluate, one call each, with a run folder.

from keras_alexnet.runs import train, evaluate

train("~/digits_png", "runs/digits", recipe="paper", image_size=67, epochs=10)
evaluate("~/digits_png", "runs/digits/best.keras", ten_crop=True)
"""

from keras_alexnet.runs.evaluate import evaluate as evaluate
from keras_alexnet.runs.models import build_classifier as build_classifier
from keras_alexnet.runs.recipes import RECIPES as RECIPES
from keras_alexnet.runs.train import finetune as finetune
from keras_alexnet.runs.train import train as train

__all__ = ["RECIPES", "build_classifier", "evaluate", "finetune", "train"]
