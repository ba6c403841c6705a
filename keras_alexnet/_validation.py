"""Argument checks shared by every module, after Keras' `argument_validation.py`.

Each check returns the value as a plain Python type, or raises an error whose
message says what was expected and then `Received: name=value`, the Keras style.
A bool is never taken for a number (`True` is an `int` in Python).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Collection
from typing import Any

__all__ = [
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "check_path",
    "is_integer",
    "is_number",
]


def is_integer(value: Any) -> bool:
    """Whether `value` is an integer (NumPy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether `value` is a real number (NumPy's too), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_bool(name: str, value: Any) -> bool:
    """Returns `value` if it is `True` or `False`; else raises `TypeError`."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` should be True or False. Received: {name}={value!r}")
    return value


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    allow_none: bool = False,
) -> Any:
    """Returns `value` as an `int` within `[minimum, maximum]`.

    Raises:
        ValueError: `value` is not an integer or lies outside the bounds.
    """
    if value is None and allow_none:
        return None
    if (
        not is_integer(value)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        raise ValueError(
            f"`{name}` should be {_integer_range(minimum, maximum)}"
            f"{' or None' if allow_none else ''}. Received: {name}={value!r}"
        )
    return int(value)


def check_float(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
    allow_none: bool = False,
) -> Any:
    """Returns `value` as a finite `float` within the bounds.

    Raises:
        ValueError: `value` is not a finite number or lies outside the bounds.
    """
    if value is None and allow_none:
        return None
    ok = is_number(value) and math.isfinite(float(value))
    if ok and minimum is not None:
        ok = value > minimum if exclusive_minimum else value >= minimum
    if ok and maximum is not None:
        ok = value < maximum if exclusive_maximum else value <= maximum
    if not ok:
        low = "" if minimum is None else ("(" if exclusive_minimum else "[")
        high = "" if maximum is None else (")" if exclusive_maximum else "]")
        if minimum is None and maximum is None:
            expected = "a finite number"
        elif maximum is None:
            expected = f"a finite number {'>' if exclusive_minimum else '>='} {minimum}"
        elif minimum is None:
            expected = f"a finite number {'<' if exclusive_maximum else '<='} {maximum}"
        else:
            expected = f"a number in {low}{minimum}, {maximum}{high}"
        raise ValueError(
            f"`{name}` should be {expected}{' or None' if allow_none else ''}. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_path(name: str, value: Any) -> str:
    """Returns `os.fspath(value)` if it is a text path (a `str` or a PathLike).

    Raises:
        TypeError: `value` is not a path, or a path of bytes (whose `__fspath__`
            returns bytes), which the file names of TensorFlow and Keras
            cannot take.
    """
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
        raise TypeError(
            f"`{name}` should be a path: a str or an os.PathLike whose __fspath__ "
            f"returns a str, not bytes. Received: {name}={path!r}"
        )
    raise TypeError(
        f"`{name}` should be a path: a str or an os.PathLike whose __fspath__ "
        f"returns a str. Received: {name}={value!r}"
    )


def check_choice(
    name: str, value: Any, choices: Collection[Any], *, allow_none: bool = False
) -> Any:
    """Returns `value` if it is one of `choices` (or `None` when allowed).

    Raises:
        ValueError: naming the choices and the received value.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (str, int, float, type(None))) and value in choices:
        return value
    expected = ", ".join(repr(c) for c in choices)
    raise ValueError(
        f"`{name}` should be one of {'None, ' if allow_none else ''}{expected}. "
        f"Received: {name}={value!r}"
    )


def _integer_range(minimum: int | None, maximum: int | None) -> str:
    if minimum is None and maximum is None:
        return "an integer"
    if maximum is None:
        return f"an integer >= {minimum}"
    if minimum is None:
        return f"an integer <= {maximum}"
    return f"an integer from {minimum} to {maximum}"
