"""A run's folder, and the callback that records each completed epoch in it.

    OUTPUT/
      config.json          the resolved configuration (a rerun must match it)
      log.csv              one row per completed epoch, `epoch` first
      state.json           the last completed epoch, the best score, callbacks' state
      checkpoints/epoch-0003.keras   the model (and optimizer) after each epoch
      best.keras           the checkpoint with the best validation score
      tensorboard/         TensorBoard logs
      curves.png, conv1_filters.png, metrics.json   written at the end

Resuming: every file is replaced atomically (a temporary file, then a rename),
in the order checkpoint, log, state. `state.json` names the last epoch whose
three files are complete; a process killed at any point leaves at most a newer
checkpoint or log row that the rerun ignores and overwrites, so `log.csv` never
holds an epoch twice or misses one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from typing import Any

import keras
import numpy as np

from keras_alexnet.weights.download import write_atomically

# Configuration keys a rerun may change without starting a new run.
RESUMABLE_KEYS = frozenset({"epochs", "verbose", "output"})


class RunFolder:
    """The files of one run (see the module docstring)."""

    def __init__(self, root: str | os.PathLike) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(
                f"`output` should be a folder path. Received: output={root!r}"
            )
        self.root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise ValueError(
                f"`output` should be a folder. Received: output={os.fspath(root)!r}, "
                "which is a file"
            )

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def checkpoint(self, epoch: int) -> str:
        return self.path("checkpoints", f"epoch-{epoch:04d}.keras")

    def start(self, config: dict[str, Any]) -> dict[str, Any]:
        """Writes `config.json`, or checks it against a previous run's.

        Returns:
            The state of the previous run (`{"epoch": 0}` for a new run).

        Raises:
            ValueError: the folder holds a run with another configuration.
        """
        os.makedirs(self.path("checkpoints"), exist_ok=True)
        config_path = self.path("config.json")
        # A folder whose run completed no epoch has nothing to resume.
        if os.path.isfile(config_path) and self.state()["epoch"]:
            with open(config_path, encoding="utf-8") as f:
                previous = json.load(f)
            changed = sorted(
                key
                for key in set(previous) | set(config)
                if key not in RESUMABLE_KEYS and previous.get(key) != config.get(key)
            )
            if changed:
                details = ", ".join(
                    f"{key}: {previous.get(key)!r} then {config.get(key)!r}"
                    for key in changed[:5]
                )
                raise ValueError(
                    f"{self.root} holds a run with another configuration ({details}). "
                    "Rerun the same command to resume it, or choose another --output."
                )
        self._write_text(config_path, json.dumps(config, indent=2, sort_keys=True))
        return self.state()

    def state(self) -> dict[str, Any]:
        path = self.path("state.json")
        if not os.path.isfile(path):
            return {"epoch": 0}
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def log_rows(self) -> list[dict[str, str]]:
        path = self.path("log.csv")
        if not os.path.isfile(path):
            return []
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def write_log(self, rows: list[dict[str, Any]]) -> None:
        keys = ["epoch"]
        for row in rows:
            keys += [key for key in row if key not in keys]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        self._write_text(self.path("log.csv"), buffer.getvalue())

    def write_json(self, name: str, data: Any) -> None:
        self._write_text(self.path(name), json.dumps(data, indent=2, sort_keys=True))

    def _write_text(self, path: str, text: str) -> None:
        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text + ("" if text.endswith("\n") else "\n"))

        write_atomically(path, write)


class EpochRecorder(keras.callbacks.Callback):
    """Saves the checkpoint, the log row and the state after every epoch.

    Args:
        folder: the run's `RunFolder`.
        monitor: the validation score that picks `best.keras` (higher is better).
        state: the previous run's state (best score, callbacks' state).
        stateful_callbacks: `{name: callback}` whose counters (`wait`, `best`,
            `cooldown_counter`) are saved and restored, such as the paper's
            `ReduceLROnPlateau`; they must come before this callback.
    """

    STATE_ATTRIBUTES = ("wait", "best", "cooldown_counter")

    def __init__(
        self,
        folder: RunFolder,
        *,
        monitor: str = "val_accuracy",
        state: dict[str, Any] | None = None,
        stateful_callbacks: dict[str, keras.callbacks.Callback] | None = None,
    ) -> None:
        super().__init__()
        self.folder = folder
        self.monitor = monitor
        state = state or {"epoch": 0}
        self.best = state.get("best")
        self.stateful_callbacks = stateful_callbacks or {}
        self.saved_callbacks = state.get("callbacks", {})
        completed = int(state.get("epoch", 0))
        self.rows: list[dict[str, Any]] = [
            row for row in folder.log_rows() if int(float(row["epoch"])) <= completed
        ]

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # After the callbacks' own on_train_begin, which resets their counters.
        for name, callback in self.stateful_callbacks.items():
            for attribute, value in self.saved_callbacks.get(name, {}).items():
                setattr(callback, attribute, value)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        number = epoch + 1
        logs = dict(logs or {})
        checkpoint = self.folder.checkpoint(number)
        write_atomically(checkpoint, lambda tmp: self.model.save(tmp, overwrite=True))
        score = logs.get(self.monitor)
        if score is not None and (self.best is None or score > self.best):
            self.best = float(score)

            def copy(tmp: str) -> None:
                shutil.copyfile(checkpoint, tmp)

            write_atomically(self.folder.path("best.keras"), copy)
        row: dict[str, Any] = {"epoch": number}
        row.update({key: _number(value) for key, value in logs.items()})
        # Keras logs the rate the epoch used; schedules without a callback do not.
        row.setdefault("learning_rate", _learning_rate(self.model.optimizer))
        self.rows = [r for r in self.rows if int(float(r["epoch"])) < number] + [row]
        self.folder.write_log(self.rows)
        self.folder.write_json(
            "state.json",
            {
                "epoch": number,
                "best": self.best,
                "monitor": self.monitor,
                "checkpoint": os.path.relpath(checkpoint, self.folder.root),
                "callbacks": {
                    name: {
                        a: _number(getattr(callback, a))
                        for a in self.STATE_ATTRIBUTES
                        if hasattr(callback, a)
                    }
                    for name, callback in self.stateful_callbacks.items()
                },
            },
        )


def _number(value: Any) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(value)))


def _learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    return _number(optimizer.learning_rate)
