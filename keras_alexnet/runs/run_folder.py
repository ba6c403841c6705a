"""A run's folder, and the callback that records each completed epoch in it.

    OUTPUT/
      config.json          the resolved configuration (a rerun must match it)
      classes.json         the class names
      log.csv              one row per completed epoch, `epoch` first
      state.json           the last completed epoch, the best epoch and score,
                           callbacks' state
      checkpoints/epoch-0003.keras   the model (and optimizer) after an epoch;
                           the last `keep_checkpoints` epochs are kept
      best.keras           the epoch with the highest validation score (a hard
                           link to its checkpoint where the file system allows)
      conv1_initial.npy    conv1's kernel before the first step
      tensorboard/         TensorBoard logs
      per_class.csv, confusion_matrix.png, curves.png, conv1_filters.png
      metrics.json         the evaluation of best.keras; written last
      .lock                the process writing it (`FolderLock`), removed at the end

The folder is the run's own: an `output` holding anything else is refused,
so that nothing of the user's is overwritten or deleted (see `RunFolder.start`).
A run folder at a URL is a local working copy with a mirror
(`keras_alexnet.runs.run_mirror`), pushed after every completed epoch.

Resuming: every file is replaced atomically (a temporary file, then a rename),
in the order checkpoint, log, state, best.keras; then older checkpoints are
removed. `state.json` names the last epoch whose files are complete; a process
killed at any point leaves at most a newer checkpoint or log row that the
rerun ignores and overwrites, so `log.csv` never holds an epoch twice or misses
one, and the checkpoint `state.json` names is never removed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
from typing import Any

import keras
import numpy as np

from keras_alexnet._terminal import printable
from keras_alexnet._validation import check_bool, check_int
from keras_alexnet.runs.folder_lock import FolderLock
from keras_alexnet.runs.run_files import (
    read_config,
    read_json_object,
    read_log,
    read_state,
)
from keras_alexnet.weights.download import write_atomically
from keras_alexnet.weights.keras_file import check_keras_file

__all__ = ["BEST_RULE", "EpochRecorder", "RunFolder", "folder_size", "run_options"]

# Configuration keys a rerun may change without starting a new run.
RESUMABLE_KEYS = frozenset({"epochs", "verbose", "output", "keep_checkpoints"})
# Everything a run writes at the top of its folder; anything else is the user's.
RUN_ENTRIES = frozenset(
    {
        "config.json",
        "classes.json",
        "log.csv",
        "state.json",
        "checkpoints",
        "best.keras",
        "conv1_initial.npy",
        "tensorboard",
        "per_class.csv",
        "confusion_matrix.png",
        "curves.png",
        "conv1_filters.png",
        "metrics.json",
        ".lock",
    }
)
CHECKPOINT_NAME = re.compile(r"epoch-(\d{4,})\.keras")
# write_atomically's temporary files, left behind by a killed process.
TEMPORARY_NAME = re.compile(r"\.tmp-[^/]*")
LOCK = ".lock"
BEST_RULE = (
    "the epoch with the highest val_accuracy; a tie keeps the earlier epoch, "
    "an epoch whose val_accuracy is not finite is never chosen"
)
INITIAL_CONV1 = "conv1_initial.npy"


class RunFolder:
    """The files of one run (see the module docstring).

    Args:
        root: the folder; a symbolic link is resolved, and `root` is the real
            path the run writes to.
        mirror: for a run folder at a URL, the `RunMirror` whose working copy
            `root` is: `start` pulls it, `publish` pushes it, and `location`
            (what reports name) is its URL.
    """

    def __init__(self, root: str | os.PathLike, *, mirror: Any = None) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(
                f"`output` should be a folder path. Received: output={root!r}"
            )
        self.mirror = mirror
        self.requested = os.fspath(root) if mirror is None else mirror.url
        self.root = os.path.realpath(os.path.expanduser(os.fspath(root)))
        self.location = self.root if mirror is None else mirror.url
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise ValueError(
                f"`output` should be a folder. Received: output={self.requested!r}, "
                "which is a file"
            )
        self.keep_checkpoints = 1
        self.lock = FolderLock(
            self.path(LOCK), received=f"output={self.requested!r} ({self.root})"
        )

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def checkpoint(self, epoch: int) -> str:
        return self.path("checkpoints", f"epoch-{epoch:04d}.keras")

    def start(self, config: dict[str, Any]) -> dict[str, Any]:
        """Claims the folder, and writes `config.json` or checks it.

        The folder must be new, empty, or a run folder holding only what a run
        writes. The lock file `.lock` (created exclusively, holding the
        process id) keeps a second process out until `release`; a lock whose
        process has ended is taken over. A mirrored folder then takes the
        URL's lock and pulls the URL's files (`RunMirror.claim`).

        Args:
            config: the run's configuration; `keep_checkpoints` (default 1)
                is how many of the last epochs' checkpoints stay.

        Returns:
            The state of the previous run (`{"epoch": 0}` for a new run).

        Raises:
            ValueError: the folder holds files no run wrote, a run with another
                configuration, or is being written by another process.
        """
        self.keep_checkpoints = check_int(
            "keep_checkpoints", config.get("keep_checkpoints", 1), minimum=1
        )
        if self.mirror is None:
            self._refuse_foreign_entries()
        os.makedirs(self.root, exist_ok=True)
        self.lock.acquire()
        try:
            if self.mirror is not None:
                self.mirror.claim()
                self._refuse_foreign_entries()
            state = self._check_previous_run(config)
            self._write_text(
                self.path("config.json"), json.dumps(config, indent=2, sort_keys=True)
            )
            os.makedirs(self.path("checkpoints"), exist_ok=True)
        except ValueError as error:
            self.release()
            if self.mirror is None:
                raise
            # The files are the URL's: name them there, not in the copy.
            raise ValueError(str(error).replace(self.root, self.location)) from None
        except BaseException:
            self.release()
            raise
        return state

    def _check_previous_run(self, config: dict[str, Any]) -> dict[str, Any]:
        """Reads back and checks what a previous run left (its state,
        configuration, log and checkpoints), then that its configuration is
        `config` but for `RESUMABLE_KEYS`.

        Returns:
            The previous run's state (`{"epoch": 0}`: nothing to resume).
        """
        state = self.state()
        completed = state["epoch"]
        # A folder whose run completed no epoch has nothing to resume.
        if not completed:
            return state
        previous = read_config(self.path("config.json"))
        self.log_rows(completed)
        # The checkpoint to resume from, and best.keras, which the run keeps:
        # a damaged one is reported now, not kept or found at the end.
        checkpoint = self.checkpoint(completed)
        if not os.path.isfile(checkpoint):
            raise ValueError(
                f"{checkpoint!r} is missing, though state.json records epoch "
                f"{completed} as completed: the run cannot resume without it."
            )
        check_keras_file(checkpoint, full=True)
        best = self.path("best.keras")
        # Usually a hard link to a checkpoint: read once.
        if (
            state.get("best_epoch")
            and os.path.lexists(best)
            and not (os.path.isfile(best) and os.path.samefile(best, checkpoint))
        ):
            check_keras_file(best, full=True)
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
                f"{self.location} holds a run with another configuration "
                f"({details}). "
                "Rerun the same command to resume it, or choose another --output."
            )
        return state

    def foreign_entries(self) -> list[str]:
        """What the folder holds that no run wrote, relative to it, sorted."""
        if not os.path.isdir(self.root):
            return []
        entries = sorted(os.listdir(self.root))
        if not _is_run_config(self.path("config.json")):
            # Not (yet) a run folder: only a lock or a half-written config.
            return [e for e in entries if e != LOCK and not TEMPORARY_NAME.fullmatch(e)]
        # A run writes no symbolic link: one in its place leads elsewhere.
        foreign = [
            e
            for e in entries
            if (e not in RUN_ENTRIES and not TEMPORARY_NAME.fullmatch(e))
            or os.path.islink(self.path(e))
        ]
        checkpoints = self.path("checkpoints")
        if os.path.isdir(checkpoints) and not os.path.islink(checkpoints):
            foreign += [
                os.path.join("checkpoints", e)
                for e in sorted(os.listdir(checkpoints))
                if not (CHECKPOINT_NAME.fullmatch(e) or TEMPORARY_NAME.fullmatch(e))
                or os.path.islink(os.path.join(checkpoints, e))
            ]
        return foreign

    def _refuse_foreign_entries(self) -> None:
        config = self.path("config.json")
        if os.path.lexists(self.path("state.json")):
            # A run's folder whose config.json is damaged: say so, rather than
            # call every file of the run foreign.
            try:
                if not os.path.lexists(config):
                    raise ValueError(
                        f"{config!r} is missing, though the folder holds a "
                        "run's state.json."
                    )
                read_config(config)
            except ValueError as error:
                raise ValueError(
                    f"{error} If {self.requested!r} is not a run folder, choose "
                    "another --output."
                ) from None
        foreign = self.foreign_entries()
        if foreign:
            where = f" ({self.root})" if self.mirror is None else ""
            shown = ", ".join(repr(e) for e in foreign[:3])
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise ValueError(
                "`output` should be a new or empty folder, or a run folder. "
                f"Received: output={self.requested!r}{where}, which holds "
                f"{shown}{more} that no run wrote; choose another --output."
            )

    def release(self) -> None:
        """Removes this process's locks (nothing if it holds none)."""
        if self.mirror is not None:
            self.mirror.release()
        self.lock.release()

    def publish(self) -> None:
        """Pushes a mirrored folder's new files to its URL (nothing otherwise)."""
        if self.mirror is not None and self.mirror.writer:
            self.mirror.push()

    def state(self) -> dict[str, Any]:
        """`state.json`, checked (`read_state`); `{"epoch": 0}` before any epoch."""
        path = self.path("state.json")
        if not os.path.lexists(path):
            return {"epoch": 0}
        return read_state(path)

    def log_rows(self, completed: int | None = None) -> list[dict[str, str]]:
        """The rows of `log.csv` for the completed epochs (`read_log`)."""
        if completed is None:
            completed = self.state()["epoch"]
        if not completed:
            return []  # any row is a killed first epoch's, written again
        path = self.path("log.csv")
        if not os.path.lexists(path):
            raise ValueError(
                f"{path!r} is missing, though state.json records epoch "
                f"{completed} as completed."
            )
        return read_log(path, completed)

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

    def write_array(self, name: str, array: np.ndarray) -> None:
        """Writes `array` as `name` (`.npy`), atomically."""

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(array))

        write_atomically(self.path(name), write)

    def link_best(self, epoch: int) -> None:
        """Makes `best.keras` the checkpoint of `epoch`: a hard link, else a copy."""
        checkpoint = self.checkpoint(epoch)
        best = self.path("best.keras")
        if os.path.isfile(best) and os.path.samefile(best, checkpoint):
            return

        def link(tmp: str) -> None:
            os.remove(tmp)
            try:
                os.link(checkpoint, tmp)
            except OSError:  # no hard links here (some network and FAT file systems)
                shutil.copyfile(checkpoint, tmp)

        write_atomically(best, link)

    def sync_best(self) -> None:
        """Points `best.keras` at the best epoch of `state.json` if a process
        killed between writing the state and the link left it behind."""
        state = self.state()
        best_epoch = state.get("best_epoch")
        if best_epoch and os.path.isfile(self.checkpoint(best_epoch)):
            self.link_best(best_epoch)

    def prune_checkpoints(self) -> list[str]:
        """Removes the checkpoints older than the last `keep_checkpoints`
        completed epochs (and any of an epoch `state.json` does not count).

        `best.keras` keeps the best epoch's bytes when its checkpoint goes.

        Returns:
            The removed files' names.
        """
        last = int(self.state().get("epoch", 0))
        keep = set(range(last - self.keep_checkpoints + 1, last + 1))
        removed = []
        folder = self.path("checkpoints")
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            match = CHECKPOINT_NAME.fullmatch(name)
            if match and int(match.group(1)) not in keep:
                os.remove(os.path.join(folder, name))
                removed.append(name)
        return removed

    def best_checkpoint(self) -> dict[str, Any]:
        """The checkpoint `metrics.json` evaluates, and how it was chosen.

        Returns:
            `{"file", "epoch", "val_accuracy", "chosen_by"}`: `best.keras`, or
            the last epoch's checkpoint when no epoch had a finite score.
        """
        state = self.state()
        if state.get("best_epoch") and os.path.isfile(self.path("best.keras")):
            return {
                "file": "best.keras",
                "epoch": int(state["best_epoch"]),
                "val_accuracy": state.get("best"),
                "chosen_by": BEST_RULE,
            }
        last = int(state.get("epoch", 0))
        reason = (
            "best.keras is missing"
            if state.get("best_epoch")
            else "no epoch had a finite val_accuracy"
        )
        return {
            "file": os.path.relpath(self.checkpoint(last), self.root),
            "epoch": last,
            "val_accuracy": None,
            "chosen_by": f"the last epoch: {reason}",
        }

    def finished_metrics(self, config: dict[str, Any]) -> dict[str, Any] | None:
        """`metrics.json` if it is the evaluation of this run's final state.

        A run is finished when every epoch of `config` is done and its
        `metrics.json` evaluated the best checkpoint of that state.
        """
        if self.mirror is not None and not self.mirror.writer:
            self.mirror.pull()  # a worker waiting for the chief's metrics
        path = self.path("metrics.json")
        state = self.state()
        if not os.path.isfile(path) or state.get("epoch") != config["epochs"]:
            return None
        metrics = read_json_object(path)
        recorded = metrics.get("checkpoint", {})
        if (
            metrics.get("epochs") != state["epoch"]
            or recorded != self.best_checkpoint()
        ):
            return None  # another state's evaluation: evaluated again
        top1 = metrics.get("top1")
        if not (_is_fraction(top1) and isinstance(metrics.get("crop"), str)):
            raise ValueError(
                f"{path!r} is damaged: its `top1` should be a number from 0 to 1 "
                f"and its `crop` a string. Received: top1={top1!r}"
            )
        return metrics

    def resume_or_finish(
        self, config: dict[str, Any], *, verbose: int = 1
    ) -> dict[str, Any] | None:
        """Says where the run stands after `start`.

        Returns:
            The recorded metrics of a finished run (the lock released: there
            is nothing to do), else `None` (resuming or starting).
        """
        completed, epochs = int(self.state()["epoch"]), config["epochs"]
        finished = self.finished_metrics(config)
        if finished is not None:
            self.release()
            if verbose:
                print(
                    f"{printable(self.location)} holds this run, finished: {completed} "
                    f"epochs; top-1 {100 * finished['top1']:.2f} % "
                    f"({printable(finished['crop'])} "
                    f"crop, {finished['checkpoint']['file']} of epoch "
                    f"{finished['checkpoint']['epoch']}). Nothing to do; "
                    "more --epochs continue it."
                )
            return finished
        if verbose and completed:
            if completed < epochs:
                print(
                    f"Resuming {printable(self.location)} at epoch {completed + 1} "
                    f"of {epochs}"
                )
            else:
                print(
                    f"All {completed} epochs of {printable(self.location)} are "
                    "done; "
                    "evaluating"
                )
        return None

    def size_bytes(self) -> int:
        """The bytes the run holds where it lives: at its URL for a mirrored
        folder (no hard links there: `best.keras` is a copy of its checkpoint)."""
        if self.mirror is not None:
            return self.mirror.remote_size()
        return folder_size(self.root)

    def _write_text(self, path: str, text: str) -> None:
        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text + ("" if text.endswith("\n") else "\n"))

        write_atomically(path, write)


def run_options(keep_checkpoints: int, allow_small_classes: bool) -> dict[str, Any]:
    """The run folder's and the data check's options, checked, as config keys."""
    return {
        "keep_checkpoints": check_int("keep_checkpoints", keep_checkpoints, minimum=1),
        "allow_small_classes": check_bool("allow_small_classes", allow_small_classes),
    }


def folder_size(root: str | os.PathLike) -> int:
    """Bytes of the files under `root`, each hard-linked file counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _, files in os.walk(os.fspath(root)):
        for name in files:
            info = os.lstat(os.path.join(directory, name))
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def _is_fraction(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 <= value <= 1
    )


def _is_run_config(path: str) -> bool:
    if not os.path.isfile(path):
        return False
    try:
        read_config(path)
    except (OSError, ValueError):
        return False
    return True


class EpochRecorder(keras.callbacks.Callback):
    """Saves the checkpoint, the log row and the state after every epoch.

    `best.keras` follows `BEST_RULE`; checkpoints older than the folder's
    `keep_checkpoints` last epochs are removed once the state is written.

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
        self.best_epoch = state.get("best_epoch")
        self.stateful_callbacks = stateful_callbacks or {}
        self.saved_callbacks = state.get("callbacks", {})
        self.rows: list[dict[str, Any]] = folder.log_rows(int(state.get("epoch", 0)))

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # After the callbacks' own on_train_begin, which resets their counters.
        for name, callback in self.stateful_callbacks.items():
            for attribute, value in self.saved_callbacks.get(name, {}).items():
                setattr(callback, attribute, value)
        self.folder.sync_best()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        number = epoch + 1
        logs = dict(logs or {})
        checkpoint = self.folder.checkpoint(number)
        write_atomically(checkpoint, lambda tmp: self.model.save(tmp, overwrite=True))
        score = logs.get(self.monitor)
        if (
            score is not None
            and math.isfinite(_number(score))
            and (self.best is None or _number(score) > self.best)
        ):
            self.best, self.best_epoch = _number(score), number
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
                "best_epoch": self.best_epoch,
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
        if self.best_epoch == number:
            self.folder.link_best(number)
        self.folder.prune_checkpoints()
        self.folder.publish()


def _number(value: Any) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(value)))


def _learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    return _number(optimizer.learning_rate)
