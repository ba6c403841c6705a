#!/usr/bin/env bash
# Runs the whole suite under the TensorFlow backend, then the backend-sensitive
# tests (marked `backend`) under JAX and PyTorch. A skipped test fails the run:
# a parity test that skips because a reference is missing proves nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export KERAS_ALEXNET_NO_SKIPS=1 TF_CPP_MIN_LOG_LEVEL=2
status=0
KERAS_BACKEND=jax python -m pytest -m backend -p no:cacheprovider "$@" || status=1
KERAS_BACKEND=torch python -m pytest -m backend -p no:cacheprovider "$@" || status=1
# TensorFlow last, so that the summary line at the end covers the whole suite.
KERAS_BACKEND=tensorflow python -m pytest -p no:cacheprovider "$@" || status=1
exit $status
