"""Runs a file reader on a hostile file in a subprocess with bounded memory and time.

The subprocess imports only NumPy and the reader's own module (loaded from its
file, without the package's `__init__`, which would import Keras and TensorFlow
and their gigabytes of address space), then caps its address space at what it
already uses plus `memory_mb` with `resource.setrlimit(RLIMIT_AS)`. A reader
that tries to allocate more gets a `MemoryError` instead of swapping the
machine; the tests then also check that the error is the reader's own
refusal, not that `MemoryError` dressed up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras_alexnet

PACKAGE_DIR = os.path.dirname(keras_alexnet.__file__)

_SCRIPT = """
import importlib.util, json, resource, sys, time
import numpy

module_file, function, memory_mb, *paths = sys.argv[1:]
spec = importlib.util.spec_from_file_location("reader_under_test", module_file)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
with open("/proc/self/statm") as statm:
    in_use = int(statm.read().split()[0]) * resource.getpagesize()
limit = in_use + (int(memory_mb) << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
outcomes = []
for path in paths:
    start = time.perf_counter()
    try:
        getattr(module, function)(path)
        error, message = None, ""
    except BaseException as exc:
        error, message = type(exc).__name__, str(exc)
    seconds = time.perf_counter() - start
    outcomes.append({"error": error, "message": message[:2000],
                     "message_length": len(message), "seconds": seconds})
print(json.dumps(outcomes))
"""


def run_reader(
    module: str, function: str, paths, *, memory_mb: int = 500, timeout: float = 60
) -> list[dict]:
    """Runs `function(path)` of `keras_alexnet/<module>.py` on each of `paths`.

    All run in one subprocess (one interpreter start for many files), one after
    the other, each under the same address-space cap. Returns, for each path,
    `{"error": exception class name or None, "message": ..., "message_length":
    ..., "seconds": ...}`. A run that exceeds `timeout` seconds in all (a hang)
    fails the calling test through `subprocess.TimeoutExpired`.
    """
    module_file = os.path.join(PACKAGE_DIR, *module.split("/")) + ".py"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, module_file, function, str(memory_mb)]
        + [str(path) for path in paths],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"the reader's subprocess died: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
