#!/usr/bin/env bash
# Runs the whole suite under the TensorFlow backend, then the backend-sensitive
# tests (marked `backend`) under JAX and PyTorch. A skipped test fails the run:
# a parity test that skips because a reference is missing proves nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export KERAS_ALEXNET_NO_SKIPS=1 TF_CPP_MIN_LOG_LEVEL=2
# Test files run in parallel on up to 4 cores (pytest-xdist), a file on one
# worker so that its module fixtures are built once (tests/conftest.py groups
# them; the benchmarks' smoke runs, the longest, spread over the workers).
workers=$(python -c "import os; print(min(4, len(os.sched_getaffinity(0))))")
parallel=(-n "$workers" --dist loadgroup)
status=0
KERAS_BACKEND=jax python -m pytest -m backend -p no:cacheprovider "${parallel[@]}" "$@" || status=1
KERAS_BACKEND=torch python -m pytest -m backend -p no:cacheprovider "${parallel[@]}" "$@" || status=1
# TensorFlow last, so that the summary line at the end covers the whole suite.
KERAS_BACKEND=tensorflow python -m pytest -p no:cacheprovider "${parallel[@]}" "$@" || status=1
exit $status
