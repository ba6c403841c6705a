"""`FolderLock`: one process at a time writes a folder.

The lock is a file created exclusively (`O_CREAT | O_EXCL`) holding the
process id, host name and thread. A lock whose process has ended, or whose
thread of this same process has ended (a call that raised), is stale and
taken over; another host's lock cannot be checked and is respected.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import socket
import threading
import time
from typing import Any

__all__ = ["FolderLock", "process_alive"]

# A lock file still empty this long after its creation was left by a process
# killed between creating and writing it.
EMPTY_LOCK_SECONDS = 10.0


class FolderLock:
    """The lock file `path`, held from `acquire` to `release`.

    Args:
        path: the lock file.
        received: what the caller passed, for the error message
            (`"output='runs/x' (/home/me/runs/x)"`).
    """

    def __init__(self, path: str, *, received: str) -> None:
        self.path = path
        self.received = received
        self.held = False

    def acquire(self) -> None:
        """Creates the lock file, taking over a stale one.

        Raises:
            ValueError: a live process (or another thread of this one) holds it.
        """
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "thread": threading.get_ident(),
        }
        for _ in range(3):
            try:
                descriptor = os.open(
                    self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644
                )
            except FileExistsError:
                previous = _read_holder(self.path)
                if previous is None or process_alive(previous):
                    who = (
                        "another process"
                        if previous is None
                        else f"process {previous['pid']} on {previous['host']}"
                    )
                    raise ValueError(
                        f"The folder is being written by {who}: wait for it, or "
                        f"remove {self.path} if that run is gone. Received: "
                        f"{self.received}"
                    ) from None
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path)
                continue
            with os.fdopen(descriptor, "w", encoding="utf-8") as f:
                json.dump(holder, f)
            self.held = True
            atexit.register(self.release)
            return
        raise ValueError(
            f"Could not lock the folder: {self.path} keeps reappearing. "
            f"Received: {self.received}"
        )

    def release(self) -> None:
        """Removes the lock file if this process holds it (else nothing)."""
        if not self.held:
            return
        self.held = False
        atexit.unregister(self.release)
        holder = _read_holder(self.path)
        if holder is not None and holder["pid"] == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)


def _read_holder(path: str) -> dict[str, Any] | None:
    """The lock's holder; `None` while it is being written. A lock left empty
    by a killed process reads as held by a dead process."""
    try:
        with open(path, encoding="utf-8") as f:
            holder = json.load(f)
        return {**holder, "pid": int(holder["pid"]), "host": str(holder["host"])}
    except FileNotFoundError:
        return {"pid": -1, "host": socket.gethostname()}
    except (OSError, ValueError, KeyError, TypeError):
        try:
            age = time.time() - os.path.getmtime(path)
        except OSError:
            age = math.inf
        return None if age < EMPTY_LOCK_SECONDS else {"pid": -1, "host": ""}


def process_alive(holder: dict[str, Any]) -> bool:
    """Whether a lock's process (`{"pid", "host", "thread"}`) still runs;
    another host's is assumed to."""
    pid = holder["pid"]
    if pid <= 0:
        return False
    if holder["host"] != socket.gethostname():
        return True
    if pid == os.getpid():
        # This process: held by another live thread, or left by a call that
        # raised in this one.
        others = {t.ident for t in threading.enumerate()} - {threading.get_ident()}
        return holder.get("thread") in others
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
