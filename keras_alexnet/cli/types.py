"""Argument types of the command line: numbers checked as the flags are read.

Each returns the value or raises `argparse.ArgumentTypeError`, which argparse
reports as a usage error (status 2) naming the flag, before anything runs.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from keras_alexnet._bounds import MAX_LEARNING_RATE

__all__ = [
    "fraction",
    "integer_from",
    "learning_rate",
    "positive_float",
    "positive_int",
]


def integer_from(low: int, high: int | None = None) -> Callable[[str], int]:
    """The type of an integer from `low` (to `high`, inclusive, if given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            expected = f">= {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(
                f"should be an integer {expected}. Received: {text!r}"
            )
        return value

    return parse


positive_int = integer_from(1)


def positive_float(text: str) -> float:
    """A finite number > 0, such as a learning rate (`inf`, `nan`, `0` refused)."""
    value = _float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"should be a finite number > 0. Received: {text!r}"
        )
    return value


def learning_rate(text: str) -> float:
    """A `positive_float` of at most `MAX_LEARNING_RATE`."""
    value = positive_float(text)
    if value > MAX_LEARNING_RATE:
        raise argparse.ArgumentTypeError(
            f"should be a number > 0 and at most {MAX_LEARNING_RATE:g}. "
            f"Received: {text!r}"
        )
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1, such as a validation split."""
    value = _float(text)
    if not 0 < value < 1:  # False for nan
        raise argparse.ArgumentTypeError(f"should be in (0, 1). Received: {text!r}")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan
