"""The benchmarks in benchmarks/ still run and still print their ratios.

Each script runs with `--quick --repeats 1` under TensorFlow in its own process:
the smallest sizes and one timed run still go through every code path (the
warm-up, the comparisons, the tables, the ratio lines). Nothing here looks at
the timings: speed is shown by the benchmarks' side-by-side ratios on a
quiet machine, never asserted by a test on a shared one.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# script: the ratio lines it must print, as regular expressions.
EXPECTED_RATIOS = {
    "lrn.py": [
        rf"ratio lrn tensorflow {mode} {shape}: \w+/\w+ = "
        for mode in ("forward", r"fwd\+bwd")
        for shape in ("4x55x55x96", "4x27x27x256")
    ],
    "grouped_conv.py": [
        rf"ratio grouped_conv tensorflow {mode} {layer}: "
        r"GroupedConv2D/Conv2D\(groups=1\) = "
        for mode in ("forward", r"fwd\+bwd")
        for layer in ("conv2", "conv4", "conv5")
    ],
    "prepared_data.py": [
        rf"ratio prepared_data {augment} img/s: prepared/original = "
        for augment in (
            "paper original float32",
            "paper original uint8",
            "paper torchvision float32",
            "paper None uint8",
            "center_crop original float32",
        )
    ],
    "inference.py": [
        r"ratio inference tensorflow original img/s: ours/OpenCV = ",
        r"ratio inference tensorflow original img/s: ours/PyTorch = ",
        r"ratio inference tensorflow torchvision img/s: ours/PyTorch = ",
        r"ratio inference tensorflow original img/s: groups=2/groups=1 = ",
        r"ratio inference tensorflow original GFLOP/s: ours/matmul peak = ",
    ],
    "serving.py": [
        rf"ratio serving {layout} batch {batch} img/s: ours/{runtime} = "
        for layout in ("original", "torchvision")
        for batch in (1, 2)
        for runtime in ("onnxruntime", "LiteRT")
    ]
    + [r"ratio serving torchvision batch 2 img/s: ours/PyTorch = "]
    + [
        rf"ratio serving per-process {layout} batch 1 img/s: ours/onnxruntime = "
        for layout in ("original", "torchvision")
    ]
    + [
        rf"ratio serving {runtime} batch 1 ms per FLOP: original/torchvision = "
        for runtime in ("onnxruntime", "LiteRT")
    ],
    "train_step.py": [
        rf"ratio train step tensorflow {layout} img/s: ours/PyTorch = "
        for layout in ("original", "torchvision")
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(EXPECTED_RATIOS))
def test_benchmark_runs_quick_and_prints_ratios(script):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / script),
            "--quick",
            "--repeats",
            "1",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for pattern in EXPECTED_RATIOS[script]:
        line = re.search(rf"^{pattern}\d+\.\d\d$", result.stdout, re.MULTILINE)
        assert line, f"no line matching {pattern!r} in:\n{result.stdout}"


@pytest.mark.slow
def test_gpu_benchmark_smoke_mode_runs_every_framework():
    # The prepared GPU script in its CPU smoke mode: every child runs and the
    # report carries the tables; the GPU run itself is in docs/performance.md.
    output = _gpu_smoke()
    assert "# GPU benchmark on CPU (SMOKE MODE" in output
    for heading in ("## Train step and inference", "## `fit` on", "## LRN alone"):
        assert heading in output
    for pattern in (
        r"^\| original, train step +\| \d",  # plain PyTorch's figure
        r"^ratio gpu keras-torch torchvision bf16: fit-prefetch / step-uint8 = ",
        r"^ratio gpu jax torchvision bf16: fit-uint8 / step-uint8 = ",
    ):
        assert re.search(pattern, output, re.MULTILINE), pattern


@pytest.mark.slow
def test_gpu_benchmark_gaps_runs_smoke_on_the_cpu():
    # `--focus gaps`, run 2, the one with the most code paths (conv1 alone,
    # space-to-depth, Keras' layout copies against the views, the parity
    # checks); run 3 shares its parts. Numbers on a CPU mean nothing.
    output = _gpu_smoke("--focus", "gaps", "--gaps-run", "2")
    assert "## Every measurement" in output
    # The views compute what Keras' copies compute (to the last bit so far).
    match = re.search(
        r"^NOTE channels-last views against Keras' copies, original, float32: "
        r"logits differ by (\S+) of their largest, conv1's kernel gradient by (\S+)$",
        output,
        re.MULTILINE,
    )
    assert match, output[-3000:]
    assert float(match[1]) < 1e-6 and float(match[2]) < 1e-5, match[0]
    for pattern in (
        r"^ratio gpu gaps conv1 alone forward bfloat16: jax space-to-depth / direct = ",
        r"^ratio gpu gaps torchvision train bf16: Keras/torch with Keras' conv and "
        r"pool \(before\) / torch eager = ",
        r"^ratio gpu gaps torchvision infer bf16: jax conv1 by space-to-depth / "
        r"default = ",
    ):
        assert re.search(pattern, output, re.MULTILINE), pattern


def _gpu_smoke(*arguments: str) -> str:
    """`benchmarks/gpu.py --smoke ARGUMENTS`: its output, checked to have run."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = result.stdout
    assert result.returncode == 0, output[-3000:] + result.stderr[-3000:]
    assert "skipped for time" not in output
    return output
