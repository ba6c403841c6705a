"""Reads a run folder's own files back, checked like any other input.

A run writes `config.json`, `state.json`, `log.csv`, `classes.json` and
`metrics.json` itself, but reads them back from a folder anyone may have
edited, copied half-way or damaged. Each reader checks the type and range of
what it returns and raises one `ValueError` naming the file and what is wrong.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any

__all__ = [
    "LEGACY_CONFIG_DEFAULTS",
    "MAX_RUN_FILE_BYTES",
    "read_classes",
    "read_config",
    "read_json_object",
    "read_log",
    "read_state",
]

# Run files are small; anything larger is not one (and is not read whole).
MAX_RUN_FILE_BYTES = 16 << 20
RUN_COMMANDS = ("train", "finetune")
# Keys that runs of earlier versions did not write, with the value they meant.
LEGACY_CONFIG_DEFAULTS = {"allow_small_classes": False}
# The counters `EpochRecorder` saves per callback (and may restore).
CALLBACK_STATE_KEYS = ("wait", "best", "cooldown_counter")


def read_json_object(path: str) -> dict[str, Any]:
    """A JSON object from `path`.

    Raises:
        ValueError: the file is too large, not UTF-8 JSON, or not an object;
            the message names it.
    """
    value = _read_json(path)
    if not isinstance(value, dict):
        raise _damaged(path, f"it holds a JSON {_json_type(value)}, not an object")
    return value


def read_config(path: str) -> dict[str, Any]:
    """A run's `config.json`, with `LEGACY_CONFIG_DEFAULTS` for keys it lacks.

    Raises:
        ValueError: not a JSON object whose `command` is `train` or `finetune`.
    """
    config = read_json_object(path)
    if config.get("command") not in RUN_COMMANDS:
        raise _damaged(
            path,
            f"its `command` is {config.get('command')!r}, not one of {RUN_COMMANDS}",
        )
    return {**LEGACY_CONFIG_DEFAULTS, **config}


def read_state(path: str) -> dict[str, Any]:
    """A run's `state.json`: `epoch` (an integer >= 0), `best` (a number or
    null), `best_epoch` (1 to `epoch`, or null), `callbacks` (counters).

    Raises:
        ValueError: any of these of another type or out of range.
    """
    state = read_json_object(path)
    epoch: Any = state.get("epoch")
    if not _is_integer(epoch) or epoch < 0:
        raise _damaged(path, f"its `epoch` should be an integer >= 0, not {epoch!r}")
    best_epoch = state.get("best_epoch")
    if best_epoch is not None and (
        not _is_integer(best_epoch) or not 1 <= best_epoch <= epoch
    ):
        raise _damaged(
            path,
            f"its `best_epoch` should be null or an integer from 1 to its epoch "
            f"{epoch}, not {best_epoch!r}",
        )
    best = state.get("best")
    if best is not None and not (_is_number(best) and math.isfinite(best)):
        raise _damaged(path, f"its `best` should be null or a number, not {best!r}")
    callbacks = state.get("callbacks", {})
    if not isinstance(callbacks, dict) or not all(
        isinstance(saved, dict)
        and all(k in CALLBACK_STATE_KEYS and _is_number(v) for k, v in saved.items())
        for saved in callbacks.values()
    ):
        raise _damaged(
            path,
            "its `callbacks` should map callback names to their counters "
            f"{CALLBACK_STATE_KEYS} (numbers)",
        )
    return state


def read_log(path: str, completed: int) -> list[dict[str, str]]:
    """The rows of a run's `log.csv` for epochs 1 to `completed`, in order.

    Rows of later epochs (left by a process killed before it wrote
    `state.json`) are dropped: the resumed run writes them again.

    Raises:
        ValueError: no `epoch` column, an epoch that is not an integer >= 1, a
            value that is not a number, an epoch twice, or one missing.
    """
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    try:
        columns = reader.fieldnames or []
    except csv.Error as error:
        raise _damaged(path, f"it is not CSV ({error})") from None
    if "epoch" not in columns:
        raise _damaged(path, "it has no `epoch` column")
    rows: dict[int, dict[str, str]] = {}
    try:
        for row in reader:
            line = reader.line_num
            epoch = _log_epoch(row.get("epoch"), path, line)
            bad = [k for k, v in row.items() if k is None or not _is_float_text(v)]
            if bad:
                raise _damaged(
                    path, f"line {line} has a cell that is not a number, or too few "
                    "or too many cells"
                )  # fmt: skip
            if epoch > completed:
                continue
            if epoch in rows:
                raise _damaged(
                    path,
                    f"it holds epoch {epoch} twice (line {line} again); a run "
                    "writes each epoch once: remove the wrong row",
                )
            rows[epoch] = row
    except csv.Error as error:
        raise _damaged(path, f"it is not CSV ({error})") from None
    missing = [epoch for epoch in range(1, completed + 1) if epoch not in rows]
    if missing:
        raise _damaged(
            path,
            f"it has no row for epoch {missing[0]}, though state.json records "
            f"epoch {completed} as completed",
        )
    return [rows[epoch] for epoch in range(1, completed + 1)]


def read_classes(path: str) -> list[str]:
    """The class names of a run's `classes.json`: a JSON list of distinct strings.

    Raises:
        ValueError: another JSON value (a string, an object...), an empty
            list, a name that is not a string, or a name twice.
    """
    names = _read_json(path)
    if not isinstance(names, list):
        raise _damaged(
            path,
            f"it holds a JSON {_json_type(names)}, not a list of class names",
        )
    if not names:
        raise _damaged(path, "it names no class")
    wrong = [name for name in names if not isinstance(name, str) or not name]
    if wrong:
        raise _damaged(
            path, f"a class name should be a non-empty string, not {wrong[0]!r}"
        )
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise _damaged(path, f"it names the class {twice!r} twice")
    return names


def _read_text(path: str) -> str:
    try:
        size = os.path.getsize(path)
        if size > MAX_RUN_FILE_BYTES:
            raise _damaged(
                path, f"it has {size:,} bytes, more than a run writes "
                f"(limit {MAX_RUN_FILE_BYTES:,})"
            )  # fmt: skip
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except UnicodeDecodeError as error:
        raise _damaged(path, f"it is not UTF-8 text ({error.reason})") from None
    except (IsADirectoryError, NotADirectoryError):
        raise _damaged(path, "it is not a file") from None


def _read_json(path: str) -> Any:
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise _damaged(path, f"it is not JSON ({error})") from None
    except RecursionError:
        raise _damaged(path, "it is not JSON a run writes (nested too deep)") from None


def _log_epoch(text: str | None, path: str, line: int) -> int:
    try:
        value = float(text or "")
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value == int(value) and value >= 1):
        raise _damaged(path, f"line {line} has the epoch {text!r}, not an integer >= 1")
    return int(value)


def _is_float_text(text: Any) -> bool:
    if text is None:  # a short row
        return False
    if text == "":  # a metric this epoch did not log
        return True
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    names = {list: "list", dict: "object", str: "string", bool: "boolean"}
    return "null" if value is None else names.get(type(value), "number")


def _damaged(path: str, problem: str) -> ValueError:
    return ValueError(f"{path!r} is damaged: {problem}.")
