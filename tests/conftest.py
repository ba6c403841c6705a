"""Shared test set-up: the Keras backend in use, the no-skip rule of CI, and a
line every 30 seconds while one test runs long."""

from __future__ import annotations

import os
import threading
import time

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()


# A test that runs longer than this prints "still running" lines this often, so
# that a slow suite never sits silent (pytest's own output waits for the test).
PROGRESS_SECONDS = 30


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {BACKEND}"


class _ProgressWatcher:
    """Writes "still running <test> (N s)" to the terminal from a daemon thread.

    While a test runs, pytest's capture points file descriptors 1 and 2 at a
    temporary file, so the watcher writes to a copy of file descriptor 2 taken in
    `pytest_configure`, when the capture is suspended.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._test: tuple[str, float] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def started(self, nodeid: str) -> None:
        with self._lock:
            self._test = (nodeid, time.monotonic())

    def finished(self) -> None:
        with self._lock:
            self._test = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self._fd)

    def _run(self) -> None:
        reported: tuple[str, float] | None = None
        printed = 0
        while not self._stop.wait(1):
            with self._lock:
                test = self._test
            if test is None:
                continue
            if test != reported:
                reported, printed = test, 0
            elapsed = int(time.monotonic() - test[1])
            if elapsed // PROGRESS_SECONDS > printed:
                printed = elapsed // PROGRESS_SECONDS
                line = f"\nstill running {test[0]} ({elapsed} s)\n"
                try:
                    os.write(self._fd, line.encode())
                except OSError:
                    return


_WATCHER = pytest.StashKey[_ProgressWatcher]()


def pytest_configure(config):
    watcher = _ProgressWatcher(os.dup(2))
    config.stash[_WATCHER] = watcher
    config.add_cleanup(watcher.close)


@pytest.hookimpl(wrapper=True)
def pytest_collection(session):
    # Importing the test modules (TensorFlow, JAX, torch) takes a while too.
    watcher = session.config.stash[_WATCHER]
    watcher.started("collecting the tests")
    try:
        return (yield)
    finally:
        watcher.finished()


# Under pytest-xdist (`--dist loadgroup`, tests/run_all_backends.sh) a test
# file runs on one worker, so that its module fixtures are built once; the
# benchmarks' smoke runs share none and are the longest tests, so they spread.
# The multi-process tests stay together (test_multiworker.py): two of them at
# once would put four worker processes, which spin while they wait for each
# other, on two cores.
_SPREAD_FILES = {"test_benchmarks_smoke.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name not in _SPREAD_FILES:
            item.add_marker(pytest.mark.xdist_group(item.path.name))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    watcher = item.config.stash[_WATCHER]
    watcher.started(item.nodeid)
    try:
        return (yield)
    finally:
        watcher.finished()


def pytest_sessionfinish(session, exitstatus):
    # CI must prove everything: a parity test that skips because a reference is
    # missing proves nothing, so with KERAS_ALEXNET_NO_SKIPS=1 a skip fails the run.
    if os.environ.get("KERAS_ALEXNET_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(
            f"KERAS_ALEXNET_NO_SKIPS=1: {len(skipped)} test(s) skipped; failing.",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def rng():
    return np.random.default_rng(0)
