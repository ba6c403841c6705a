"""GPU throughput of keras-alexnet against plain PyTorch, side by side on one card.

One prepared script for a lent GPU (under 8 minutes on an H100): each framework
runs in its own process, one after the other, on the same card, and the parent
prints Markdown tables with the card's name in every one, then `ratio ...`
lines. Images per second at batch 256 (224x224 for torchvision's layout, 227x227
for the paper's), TF32 at each framework's defaults:

- plain PyTorch: eager float32, eager AMP bfloat16, `torch.compile` + AMP
  bfloat16, for `torchvision`'s layout and for the paper's (`original`:
  `nn.LocalResponseNorm`, grouped `nn.Conv2d`, same widths as keras-alexnet);
- keras-alexnet under Keras/JAX and Keras/PyTorch, `float32` and
  `mixed_bfloat16`, and under PyTorch also `jit_compile=True` (torch.compile);
- train step: `train_on_batch` (one SGD step with momentum, labels given,
  arrays already on the device; PyTorch: forward, loss, backward, step), and
  inference: `predict_on_batch` (PyTorch: `inference_mode`); every step ends
  with the loss or the logits on the host, as Keras' calls do;
- `fit` (cached data in memory, 2 epochs, the second timed) on float32 NumPy
  pixels, on uint8 NumPy pixels with `include_preprocessing=True`, and on
  uint8 pixels through `keras_alexnet.prefetch.prefetch_to_device`, against
  the device-resident step of the same model;
- LRN alone on conv1's output (256x55x55x96) in bfloat16, computed in float32
  (keras-alexnet's layer) against other ways, forward and forward+backward.

Each figure is the median of `--repeats` timed runs of `--steps` steps, after
warm-up calls that compile; the spread (min-max over the runs) is printed next
to it. Each child stops starting new measurements once its share of `--budget`
seconds is spent, and says which it skipped.

`--smoke` runs the same code on the CPU with a batch of 2, 67-pixel images
(torchvision layout 63) and one step: a test that the script works end to end,
not a measurement (tests/test_benchmarks_smoke.py runs it in CI).

The machine needs no TensorFlow: only PyTorch, JAX and Keras.

`--focus gaps` measures what issue 10 still missed against the ways that
closed it (benchmarks/_gpu_gaps.py; `--gaps-run 1|2|3`, `--children`).

Usage: python benchmarks/gpu.py [--smoke] [--budget SECONDS] [--out FOLDER]
[--focus all|original|gaps] [--gaps-run 1|2|3] [--children torch,jax,keras-torch]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CHILDREN = ("torch", "jax", "keras-torch")
# The share of the budget each child may spend starting measurements.
SHARES = {"torch": 0.25, "jax": 0.35, "keras-torch": 0.40}
LAYOUTS = ("torchvision", "original")
# The original layout without one of its extras, to see what each costs.
ATTRIBUTION = {
    "original without LRN": {"normalization": "none"},
    "original, groups=1": {"groups": 1},
}
RESULT = "RESULT "


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny: a test")
    parser.add_argument("--budget", type=float, default=None, help="seconds in all")
    parser.add_argument("--out", default=None, help="folder for results.json/.md")
    parser.add_argument("--child", choices=CHILDREN, default=None)
    parser.add_argument("--deadline", type=float, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--gaps-run",
        type=int,
        choices=(1, 2, 3),
        default=3,
        help="with --focus gaps: run 1 (Keras' overhead, blocks' costs, layout "
        "copies), run 2 (space-to-depth conv1, fit, the views as shipped) or "
        "run 3 (the defaults as shipped against torch.compile)",
    )
    parser.add_argument(
        "--children",
        default=",".join(CHILDREN),
        help="which of torch, jax and keras-torch to run, comma-separated",
    )
    parser.add_argument(
        "--focus",
        choices=("all", "original", "gaps"),
        default="all",
        help="'original': only the paper's layout, each framework's default "
        "against the other ways of its LRN and grouped convolutions; 'gaps': "
        "the targets still missed, against the ways that could close them "
        "(benchmarks/_gpu_gaps.py)",
    )
    args = parser.parse_args(argv)
    args.batch = args.batch or (2 if args.smoke else 256)
    args.steps = args.steps or (1 if args.smoke else 10)
    args.repeats = args.repeats or (1 if args.smoke else 3)
    if args.child:
        run_child(args)
        return
    budget = args.budget or (600.0 if args.smoke else 390.0)
    started = time.monotonic()
    results, infos, failures = [], {}, []
    chosen = [c for c in CHILDREN if c in args.children.split(",")]
    if not chosen:
        parser.error(f"--children names none of {CHILDREN}: {args.children!r}")
    for child in chosen:
        elapsed = time.monotonic() - started
        share = budget * SHARES[child]
        # What an earlier child left unspent goes to the later ones.
        remaining = budget - elapsed
        later = sum(SHARES[c] for c in chosen[chosen.index(child) :])
        share = max(share, remaining * SHARES[child] / later)
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            child,
            "--deadline",
            str(time.time() + share),
            "--batch",
            str(args.batch),
            "--steps",
            str(args.steps),
            "--repeats",
            str(args.repeats),
            "--focus",
            args.focus,
            "--gaps-run",
            str(args.gaps_run),
        ] + (["--smoke"] if args.smoke else [])
        env = dict(os.environ)
        env["KERAS_BACKEND"] = "torch" if child in ("torch", "keras-torch") else "jax"
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if args.smoke:
            env["CUDA_VISIBLE_DEVICES"] = ""
            env["JAX_PLATFORMS"] = "cpu"
            # torch.compile becomes a no-op: the code path runs, nothing compiles.
            env["TORCHDYNAMO_DISABLE"] = "1"
        print(f"== {child} (share {share:.0f} s)", flush=True)
        child_started = time.monotonic()
        status = _run_child(command, env, share + GRACE, results, infos, child, args)
        print(f"== {child}: {time.monotonic() - child_started:.0f} s", flush=True)
        if status:
            failures.append(f"{child} ({status})")
        if args.out:
            _write(args.out, results, infos, args, time.monotonic() - started)
    report = format_report(results, infos, args, time.monotonic() - started)
    print(report, flush=True)
    if args.out:
        _write(args.out, results, infos, args, time.monotonic() - started)
    if failures:
        raise SystemExit(f"gpu benchmark failed under: {', '.join(failures)}")


# Seconds a child may run past its share (a compilation in progress) before it
# is stopped, so that the report is always printed.
GRACE = 40.0


def _run_child(command, env, limit, results, infos, child, args):
    """Runs one child, collecting its RESULT lines as they come; kills it late."""
    import threading

    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    timer = threading.Timer(limit, process.kill)
    timer.start()
    tail = []
    try:
        for line in process.stdout:
            if line.startswith(RESULT):
                record = json.loads(line[len(RESULT) :])
                if record.get("kind") == "info":
                    infos[child] = record
                else:
                    results.append(record)
                print(line[len(RESULT) :].rstrip(), flush=True)
            else:
                tail = (tail + [line.rstrip()])[-40:]
                if line.startswith(("FAILED", "NOTE ")):
                    print(line.rstrip(), flush=True)
        process.wait()
    finally:
        timer.cancel()
    if process.returncode:
        print("\n".join(tail), flush=True)
        return f"exit {process.returncode}"
    return None


def _write(folder, results, infos, args, seconds):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "gpu_results.json"), "w") as file:
        json.dump({"infos": infos, "results": results}, file, indent=1)
    with open(os.path.join(folder, "gpu_report.md"), "w") as file:
        file.write(format_report(results, infos, args, seconds) + "\n")


# --------------------------------------------------------------------------
# The report.

TABLE1_COLUMNS = [
    ("torch", "fp32", "eager"),
    ("torch", "bf16", "eager"),
    ("torch", "bf16", "compile"),
    ("jax", "fp32", "jit"),
    ("jax", "bf16", "jit"),
    ("keras-torch", "fp32", "eager"),
    ("keras-torch", "bf16", "eager"),
    ("keras-torch", "fp32", "compile"),
    ("keras-torch", "bf16", "compile"),
]
COLUMN_NAMES = {
    ("torch", "fp32", "eager"): "torch eager fp32",
    ("torch", "bf16", "eager"): "torch eager AMP bf16",
    ("torch", "bf16", "compile"): "torch.compile AMP bf16",
    ("jax", "fp32", "jit"): "Keras/JAX fp32",
    ("jax", "bf16", "jit"): "Keras/JAX mixed_bfloat16",
    ("keras-torch", "fp32", "eager"): "Keras/torch fp32",
    ("keras-torch", "bf16", "eager"): "Keras/torch mixed_bfloat16",
    ("keras-torch", "fp32", "compile"): "Keras/torch jit_compile fp32",
    ("keras-torch", "bf16", "compile"): "Keras/torch jit_compile mixed_bfloat16",
}


def format_report(results, infos, args, seconds) -> str:
    card = next((i["card"] for i in infos.values() if i.get("card")), "unknown")
    if args.smoke:
        card = f"{card} (SMOKE MODE: tiny sizes on the CPU, not a measurement)"
    by_key = {
        (r["framework"], r["layout"], r["precision"], r["compiler"], r["mode"]): r
        for r in results
    }

    def cell(key):
        record = by_key.get(key)
        if record is None:
            return "-"
        return f"{record['img_s']:,.0f} ({record['min']:,.0f}-{record['max']:,.0f})"

    lines = [
        f"# GPU benchmark on {card}",
        "",
        f"batch {args.batch}, images/s, median (min-max) of {args.repeats} runs of "
        f"{args.steps} steps; {seconds:.0f} s in all.",
    ]
    lines += [f"- {child}: {info['versions']}" for child, info in infos.items()]
    header = ["card: " + card, *[COLUMN_NAMES[c] for c in TABLE1_COLUMNS]]
    rows = []
    for layout in LAYOUTS:
        for mode, label in (("train", "train step"), ("infer", "inference")):
            rows.append(
                [f"{layout}, {label}"]
                + [cell((f, layout, p, c, mode)) for f, p, c in TABLE1_COLUMNS]
            )
    lines += ["", "## Train step and inference", "", _table(header, rows)]

    header = [
        "card: " + card,
        "fit, float32 NumPy",
        "fit, uint8 NumPy + include_preprocessing",
        "fit, uint8 + prefetch_to_device",
        "train_on_batch, device-resident (same model)",
        "best fit / step",
    ]
    rows = []
    for framework, name in (("jax", "Keras/JAX"), ("keras-torch", "Keras/torch")):
        for layout in LAYOUTS:
            for precision in ("fp32", "bf16"):
                keys = [
                    (framework, layout, precision, "auto", mode)
                    for mode in (
                        "fit-float32",
                        "fit-uint8",
                        "fit-prefetch",
                        "step-uint8",
                    )
                ]
                if not any(k in by_key for k in keys):
                    continue
                step = by_key.get(keys[3])
                fits = [by_key[k]["img_s"] for k in keys[:3] if k in by_key]
                share = f"{max(fits) / step['img_s']:.0%}" if step and fits else "-"
                policy = "mixed_bfloat16" if precision == "bf16" else "float32"
                label = f"{name} {layout} {policy}"
                rows.append([label] + [cell(k) for k in keys] + [share])
    lines += [
        "",
        "## `fit` on 2048 cached images, against the step",
        "",
        _table(header, rows),
    ]

    header = ["card: " + card, "train step", "inference"]
    rows = []
    for framework, compiler, name in (
        ("jax", "jit", "Keras/JAX"),
        ("keras-torch", "eager", "Keras/torch"),
    ):
        for layout in ("original", *ATTRIBUTION):
            keys = [
                (framework, layout, "bf16", compiler, m) for m in ("train", "infer")
            ]
            if any(k in by_key for k in keys):
                rows.append([f"{name} {layout}"] + [cell(k) for k in keys])
    lines += [
        "",
        "## Original layout in mixed_bfloat16: what LRN and the groups cost",
        "",
        _table(header, rows),
    ]

    header = ["card: " + card, "precision", "train step", "inference"]
    rows = []
    for r in results:
        if r["mode"] == "train" and r["layout"].startswith(
            ("original (", "original, ")
        ):
            keys = [
                (r["framework"], r["layout"], r["precision"], r["compiler"], m)
                for m in ("train", "infer")
            ]
            name = {"jax": "Keras/JAX", "keras-torch": "Keras/torch"}[r["framework"]]
            rows.append(
                [f"{name} {r['layout']}", r["precision"]] + [cell(k) for k in keys]
            )
    if rows:
        lines += [
            "",
            "## Original layout: the default ways against the others",
            "",
            _table(header, rows),
        ]
        for framework in ("jax", "keras-torch"):
            compiler = "jit" if framework == "jax" else "eager"
            for mode in ("train", "infer"):
                keys = [
                    (framework, "original (default)", p, compiler, mode)
                    for p in ("bf16", "fp32")
                ]
                if all(k in by_key for k in keys):
                    lines.append(
                        f"ratio gpu original {mode}: {framework} default bf16 / fp32 = "
                        f"{by_key[keys[0]]['img_s'] / by_key[keys[1]]['img_s']:.2f}"
                    )
                    plain = by_key.get(("torch", "original", "bf16", "eager", mode))
                    if plain and framework == "keras-torch":
                        value = by_key[keys[0]]["img_s"] / plain["img_s"]
                        lines.append(
                            f"ratio gpu original {mode}: keras-torch default bf16 / "
                            f"torch eager bf16 = {value:.2f}"
                        )

    header = ["card: " + card, "way", "forward ms", "forward+backward ms"]
    rows = []
    for r in results:
        if r["mode"] == "lrn-forward":
            backward = by_key.get(
                (
                    r["framework"],
                    r["layout"],
                    r["precision"],
                    r["compiler"],
                    "lrn-fwd+bwd",
                )
            )
            rows.append(
                [
                    {"jax": "Keras/JAX", "keras-torch": "Keras/torch"}[r["framework"]],
                    r["compiler"],
                    _ms(r),
                    _ms(backward) if backward else "-",
                ]
            )
    lines += [
        "",
        f"## LRN alone, {args.batch}x55x55x96, bfloat16 in and out "
        "(the float32 model's row: float32 in and out)",
        "",
        _table(header, rows),
        "",
    ]
    lines += ratio_lines(by_key)
    if args.focus == "gaps":
        sys.path.insert(0, HERE)
        from _gpu_gaps import report_lines

        lines += report_lines(results, _table, card)
    skipped = [r for r in results if r["mode"] == "skipped"]
    if skipped:
        lines.append("")
        lines += [f"skipped for time: {r['what']}" for r in skipped]
    return "\n".join(lines)


def ratio_lines(by_key) -> list[str]:
    def rate(*key):
        record = by_key.get(key)
        return record["img_s"] if record else None

    lines = []

    def ratio(label, numerator, denominator):
        if numerator and denominator:
            lines.append(f"ratio gpu {label} = {numerator / denominator:.2f}")

    for layout in LAYOUTS:
        for mode in ("train", "infer"):
            ratio(
                f"{layout} {mode}: Keras/JAX bf16 / torch.compile bf16",
                rate("jax", layout, "bf16", "jit", mode),
                rate("torch", layout, "bf16", "compile", mode),
            )
            for precision in ("fp32", "bf16"):
                for compiler in ("eager", "compile"):
                    # Plain PyTorch was compiled in bfloat16 only.
                    reference = compiler if precision == "bf16" else "eager"
                    ratio(
                        f"{layout} {mode}: Keras/torch {compiler} {precision} / "
                        f"torch {reference} {precision}",
                        rate("keras-torch", layout, precision, compiler, mode),
                        rate("torch", layout, precision, reference, mode),
                    )
    for mode in ("train", "infer"):
        for framework, compiler in (
            ("jax", "jit"),
            ("keras-torch", "eager"),
            ("keras-torch", "compile"),
            ("torch", "eager"),
        ):
            ratio(
                f"original {mode}: {framework} {compiler} bf16 / fp32",
                rate(framework, "original", "bf16", compiler, mode),
                rate(framework, "original", "fp32", compiler, mode),
            )
    for framework in ("jax", "keras-torch"):
        for layout in LAYOUTS:
            for precision in ("fp32", "bf16"):
                step = rate(framework, layout, precision, "auto", "step-uint8")
                for mode in ("fit-uint8", "fit-prefetch", "fit-float32"):
                    ratio(
                        f"{framework} {layout} {precision}: {mode} / step-uint8",
                        rate(framework, layout, precision, "auto", mode),
                        step,
                    )
    return lines


def _ms(record) -> str:
    return f"{record['ms']:.2f} ({record['ms_min']:.2f}-{record['ms_max']:.2f})"


def _table(header, rows) -> str:
    sys.path.insert(0, HERE)
    from _common import format_table

    return format_table(header, rows)


# --------------------------------------------------------------------------
# The children.


class Child:
    def __init__(self, args):
        self.args = args
        self.deadline = args.deadline

    def emit(self, **record):
        print(RESULT + json.dumps(record), flush=True)

    def time_left(self) -> bool:
        return time.time() < self.deadline

    def measure(self, what, function, sync, images, **record):
        """Times `steps` calls `repeats` times after two warm-up calls."""
        if not self.time_left():
            self.emit(mode="skipped", what=what, **_blank(record))
            return None
        try:
            for _ in range(2):
                function()
            sync()
            seconds = []
            for _ in range(self.args.repeats):
                start = time.perf_counter()
                for _ in range(self.args.steps):
                    function()
                sync()
                seconds.append((time.perf_counter() - start) / self.args.steps)
        except Exception as error:  # noqa: BLE001 - reported, then the rest goes on
            print(f"FAILED {what}: {type(error).__name__}: {error}"[:2000], flush=True)
            self.failed = True
            return None
        rates = [images / s for s in seconds]
        self.emit(
            img_s=statistics.median(rates),
            min=min(rates),
            max=max(rates),
            ms=statistics.median(seconds) * 1e3,
            ms_min=min(seconds) * 1e3,
            ms_max=max(seconds) * 1e3,
            **record,
        )
        return statistics.median(rates)

    failed = False


def _blank(record):
    return {
        "framework": record.get("framework"),
        "layout": record.get("layout"),
        "precision": record.get("precision"),
        "compiler": record.get("compiler"),
    }


def image_size(layout, smoke):
    if smoke:
        return 63 if layout == "torchvision" else 67
    return 224 if layout == "torchvision" else 227


def run_child(args) -> None:
    sys.path.insert(0, ROOT)
    child = Child(args)
    {"torch": plain_torch, "jax": keras_child, "keras-torch": keras_child}[args.child](
        child
    )
    if child.failed:
        raise SystemExit(1)


# --- plain PyTorch -------------------------------------------------------


def torch_alexnet(layout, smoke):
    """The two layouts in plain `torch.nn`, as users write them."""
    from torch import nn

    classes = 1000
    if layout == "torchvision":
        features = [
            nn.Conv2d(3, 64, 11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.AdaptiveAvgPool2d((6, 6)),
        ]
        head = [nn.Dropout(0.5), nn.Linear(9216, 4096), nn.ReLU(inplace=True)]
        head += [nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True)]
    else:
        features = [
            nn.Conv2d(3, 96, 11, stride=4),
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=2),
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        ]
        head = [nn.Linear(9216, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5)]
        head += [nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5)]
    if smoke:  # no fc6-fc7, as in the Keras children's smoke models
        return nn.Sequential(
            *features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, classes)
        )
    return nn.Sequential(*features, nn.Flatten(), *head, nn.Linear(4096, classes))


def plain_torch(child) -> None:
    import torch

    smoke = child.args.smoke
    device = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
    card = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    child.emit(
        kind="info",
        card=card,
        versions=f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"cuDNN {torch.backends.cudnn.version()}",
    )
    torch.backends.cudnn.benchmark = True
    batch = child.args.batch

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    plans = [
        (layout, p, c)
        for layout in LAYOUTS
        for p, c in (("fp32", "eager"), ("bf16", "eager"))
    ]
    plans += [(layout, "bf16", "compile") for layout in LAYOUTS]
    if child.args.focus == "original":
        plans = [("original", p, "eager") for p in ("bf16", "fp32")]
    elif child.args.focus == "gaps":
        plans = [("torchvision", p, "eager") for p in ("bf16", "fp32")]
        plans += [("torchvision", "bf16", "compile")]
        plans += [("original", p, "eager") for p in ("bf16", "fp32")]
        if smoke:
            plans = plans[:1]
    elif smoke:
        plans = [("original", "fp32", "eager"), ("torchvision", "bf16", "compile")]
    for layout, precision, compiler in plans:
        torch.manual_seed(0)
        size = image_size(layout, smoke)
        model = torch_alexnet(layout, smoke).to(device)
        x = torch.rand(batch, 3, size, size, device=device) * 4 - 2
        y = torch.randint(0, 1000, (batch,), device=device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()
        amp = precision == "bf16"
        train_model = torch.compile(model) if compiler == "compile" else model

        def train_step(
            train_model=train_model,
            optimizer=optimizer,
            x=x,
            y=y,
            amp=amp,
            loss_fn=loss_fn,
        ):
            train_model.train()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(train_model(x), y)
            loss.backward()
            optimizer.step()
            return loss.item()

        record = dict(
            framework="torch", layout=layout, precision=precision, compiler=compiler
        )
        child.measure(
            f"torch {layout} {precision} {compiler} train",
            train_step,
            sync,
            batch,
            mode="train",
            **record,
        )
        if child.args.focus == "gaps" and layout == "torchvision" and amp:
            from _gpu_gaps import torch_async_train

            torch_async_train(
                child, train_model, optimizer, loss_fn, x, y, device, sync, record
            )
        infer_model = torch.compile(model) if compiler == "compile" else model

        def infer(infer_model=infer_model, x=x, amp=amp):
            infer_model.eval()
            with (
                torch.inference_mode(),
                torch.autocast(device, dtype=torch.bfloat16, enabled=amp),
            ):
                return infer_model(x).float().cpu()

        child.measure(
            f"torch {layout} {precision} {compiler} infer",
            infer,
            sync,
            batch,
            mode="infer",
            **record,
        )
        del model, optimizer, train_model, infer_model


# --- keras-alexnet under Keras/JAX or Keras/PyTorch ------------------------


def keras_child(child) -> None:
    import keras
    import numpy as np

    from keras_alexnet import AlexNet
    from keras_alexnet.prefetch import prefetch_to_device

    backend = keras.backend.backend()
    framework = "jax" if backend == "jax" else "keras-torch"
    smoke = child.args.smoke
    batch = child.args.batch
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        card = device.device_kind if device.platform == "gpu" else "CPU"
        versions = (
            f"keras {keras.__version__}, jax {jax.__version__} ({device.platform})"
        )

        def to_device(array):
            return jax.device_put(array, device)

        def sync():
            (jax.device_put(0.0, device) + 0).block_until_ready()

    else:
        import torch

        card = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
        versions = f"keras {keras.__version__}, torch {torch.__version__}"

        def to_device(array):
            return keras.ops.convert_to_tensor(array)

        def sync():
            if torch.cuda.is_available():
                torch.cuda.synchronize()

    child.emit(kind="info", card=card, versions=versions)
    policies = {"fp32": "float32", "bf16": "mixed_bfloat16"}
    # fit runs as users run it: compiled by XLA under JAX, eager under PyTorch.
    fit_compiler = "jit" if backend == "jax" else "eager"
    rng = np.random.default_rng(0)

    def build(layout, precision, compiler, preprocessing=False, **overrides):
        keras.config.set_dtype_policy(policies[precision])
        keras.utils.set_random_seed(0)
        size = image_size(layout, smoke)
        if smoke:
            model = _smoke_model(keras, layout, size, preprocessing)
        else:
            model = AlexNet(
                weights=None,
                variant=layout,
                classifier_activation=None,
                include_preprocessing=preprocessing,
                **overrides,
            )
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=compiler != "eager",
        )
        return model, size

    def step_and_inference(layout, precision, compiler, label=None, **overrides):
        record = dict(
            framework=framework,
            layout=label or layout,
            precision=precision,
            compiler=compiler,
        )
        what = f"{framework} {label or layout} {precision} {compiler}"
        if not child.time_left():
            child.emit(mode="skipped", what=what, **record)
            return
        model, size = build(layout, precision, compiler, **overrides)
        x = to_device(rng.uniform(-2, 2, (batch, size, size, 3)).astype("float32"))
        y = to_device(rng.integers(0, 1000, (batch,)).astype("int32"))
        child.measure(
            what + " train",
            lambda: model.train_on_batch(x, y),
            sync,
            batch,
            mode="train",
            **record,
        )
        child.measure(
            what + " infer",
            lambda: model.predict_on_batch(x),
            sync,
            batch,
            mode="infer",
            **record,
        )

    def fits(layout, precision, with_float32):
        record = dict(
            framework=framework, layout=layout, precision=precision, compiler="auto"
        )
        what = f"{framework} {layout} {precision} fit"
        if not child.time_left():
            child.emit(mode="skipped", what=what, **record)
            return
        count = (8 if not smoke else 2) * batch
        model, size = build(layout, precision, fit_compiler, preprocessing=True)
        pixels = rng.integers(0, 256, (count, size, size, 3), dtype="uint8")
        labels = rng.integers(0, 1000, (count,)).astype("int32")
        x, y = to_device(pixels[:batch]), to_device(labels[:batch])
        child.measure(
            what + " step",
            lambda: model.train_on_batch(x, y),
            sync,
            batch,
            mode="step-uint8",
            **record,
        )

        def batches():
            for start in range(0, count, batch):
                yield pixels[start : start + batch], labels[start : start + batch]

        # One epoch per timed call; the warm-up epochs build the iterators.
        epoch = dict(epochs=1, verbose=0, shuffle=False)
        saved, child.args.steps = child.args.steps, 1
        child.measure(
            what + " uint8",
            lambda: model.fit(pixels, labels, batch_size=batch, **epoch),
            sync,
            count,
            mode="fit-uint8",
            **record,
        )
        child.measure(
            what + " prefetch",
            lambda: model.fit(prefetch_to_device(batches(), size=2), **epoch),
            sync,
            count,
            mode="fit-prefetch",
            **record,
        )
        if with_float32 and child.time_left():
            # float32 pixels, normalised on the host, as before.
            model, _ = build(layout, precision, fit_compiler)
            floats = pixels.astype("float32") / 64 - 2
            child.measure(
                what + " float32",
                lambda: model.fit(floats, labels, batch_size=batch, **epoch),
                sync,
                count,
                mode="fit-float32",
                **record,
            )
        child.args.steps = saved

    if child.args.focus == "original":
        focus_original(child, step_and_inference, backend, smoke)
        return
    if child.args.focus == "gaps":
        from _gpu_gaps import jax_gaps, keras_torch_gaps

        if backend == "jax":
            jax_gaps(child, step_and_inference, build, to_device, sync, rng, fits)
        else:
            keras_torch_gaps(child, step_and_inference, build, to_device, rng, sync)
        return
    # In order of importance: what is cut for time comes last. The smoke run
    # takes one case of each code path (XLA compiles slowly on a CPU).
    both = [(layout, p) for layout in LAYOUTS for p in ("bf16", "fp32")]
    if smoke:
        both = [("original", "bf16")]
    compiler = "jit" if backend == "jax" else "eager"
    for layout, precision in both:
        step_and_inference(layout, precision, compiler)
    lrn_ways(child, keras, framework, to_device, sync, rng)
    fits("torchvision", "bf16", with_float32=not smoke)
    # What the original layout's extras cost in bfloat16: LRN and the groups.
    for label, overrides in ATTRIBUTION.items():
        if not smoke:
            step_and_inference("original", "bf16", compiler, label, **overrides)
    if backend == "torch":
        compiler = "compile"
        for layout, precision in both:
            step_and_inference(layout, precision, compiler)
        compiler = "eager"
    if not smoke:
        fits("original", "bf16", with_float32=False)
        fits("torchvision", "fp32", with_float32=False)
        fits("original", "fp32", with_float32=False)


def focus_original(child, step_and_inference, backend, smoke) -> None:
    """The paper's layout: the default ways against the others, both precisions."""
    from keras_alexnet.layers import grouped_conv2d, local_response_normalization

    compiler = "jit" if backend == "jax" else "eager"
    defaults = (
        grouped_conv2d.default_implementation,
        local_response_normalization.default_implementations,
    )
    if backend == "jax":
        others = {"grouped conv split": ("split", None)}
        others["grouped conv native"] = ("native", None)
    else:
        others = {"LRN slices (before)": (None, ("slices", "slices"))}
    for precision in ("bf16", "fp32"):
        step_and_inference("original", precision, compiler, "original (default)")
        for label, (conv_way, lrn_ways) in others.items():
            grouped_conv2d.default_implementation = (
                (lambda way=conv_way: way) if conv_way else defaults[0]
            )
            local_response_normalization.default_implementations = (
                (lambda rank=4, ways=lrn_ways: ways) if lrn_ways else defaults[1]
            )
            step_and_inference("original", precision, compiler, f"original, {label}")
            grouped_conv2d.default_implementation = defaults[0]
            local_response_normalization.default_implementations = defaults[1]


def lrn_ways(child, keras, framework, to_device, sync, rng) -> None:
    """LRN on conv1's output in bfloat16: keras-alexnet's layer against others."""
    import numpy as np
    from keras import ops

    from keras_alexnet import LocalResponseNormalization

    batch = child.args.batch
    side = 13 if child.args.smoke else 55
    shape = (batch, side, side, 96)
    k, alpha, beta = 2.0, 1e-4, 0.75
    values = rng.uniform(0, 300, shape).astype("float32")

    def window_sum(squares):
        padded = ops.pad(squares, [(0, 0)] * 3 + [(2, 2)])
        total = padded[..., 0:96]
        for offset in range(1, 5):
            total = total + padded[..., offset : offset + 96]
        return total

    def bf16_all(x):
        scale = k + alpha * window_sum(ops.square(x))
        inv = ops.rsqrt(scale)
        return x * (inv * ops.sqrt(inv))

    def f32_scale_bf16_multiply(x):
        squares = ops.square(ops.cast(x, "float32"))
        scale = k + alpha * window_sum(squares)
        inv = ops.rsqrt(scale)
        return x * ops.cast(inv * ops.sqrt(inv), x.dtype)

    keras.config.set_dtype_policy("mixed_bfloat16")
    layer = LocalResponseNormalization(5, k, alpha, beta)
    layer.build(shape)
    keras.config.set_dtype_policy("float32")
    layer32 = LocalResponseNormalization(5, k, alpha, beta)
    layer32.build(shape)
    band = np.abs(np.arange(96)[:, None] - np.arange(96)[None, :]) <= 2
    band = (alpha * band).astype("float32")

    def band_matmul(x, dtype):
        # The squares times a banded matrix: one GEMM, accumulated in float32
        # by cuBLAS and XLA even when its operands are bfloat16.
        squares = ops.square(ops.cast(x, dtype))
        total = ops.cast(ops.matmul(squares, ops.cast(band, dtype)), "float32")
        inv = ops.rsqrt(k + total)
        return x * ops.cast(inv * ops.sqrt(inv), x.dtype)

    ways = {
        "keras-alexnet layer (float32 inside)": (lambda x: layer(x), "bfloat16"),
        "all in bfloat16": (bf16_all, "bfloat16"),
        "float32 scale, bfloat16 multiply": (f32_scale_bf16_multiply, "bfloat16"),
        "band matmul, bfloat16 squares": (
            lambda x: band_matmul(x, "bfloat16"),
            "bfloat16",
        ),
        "band matmul, float32 squares": (
            lambda x: band_matmul(x, "float32"),
            "bfloat16",
        ),
        "keras-alexnet layer, float32 model": (lambda x: layer32(x), "float32"),
    }
    if child.args.smoke:  # one way of each kind: the layer, and a plain function
        ways = dict(list(ways.items())[:2])
    for name, (function, dtype) in ways.items():
        x = to_device(values)
        x = ops.cast(x, dtype)
        forward, both = _forward_and_gradient(keras, function, x)
        record = dict(framework=framework, layout="lrn", precision=dtype, compiler=name)
        child.measure(
            f"lrn {name} forward", forward, sync, batch, mode="lrn-forward", **record
        )
        child.measure(
            f"lrn {name} fwd+bwd", both, sync, batch, mode="lrn-fwd+bwd", **record
        )


def _forward_and_gradient(keras, function, x):
    """Compiled forward and forward+input-gradient calls of `function` on `x`."""
    if keras.backend.backend() == "jax":
        import jax
        import jax.numpy as jnp

        forward = jax.jit(function)
        gradient = jax.jit(jax.grad(lambda v: jnp.sum(function(v).astype("float32"))))
        return (lambda: forward(x).block_until_ready()), (
            lambda: gradient(x).block_until_ready()
        )
    import torch

    def both():
        v = x.detach().requires_grad_(True)
        function(v).float().sum().backward()
        return v.grad

    def forward():
        with torch.no_grad():
            return function(x)

    return forward, both


def _smoke_model(keras, layout, size, preprocessing):
    """A layout at smoke size without fc6-fc7: cheap to compile on a CPU."""
    from keras_alexnet import AlexNet

    base = AlexNet(
        weights=None,
        variant=layout,
        include_top=False,
        pooling="avg",
        input_shape=(size, size, 3),
        include_preprocessing=preprocessing,
    )
    outputs = keras.layers.Dense(1000)(base.output)
    return keras.Model(base.input, outputs)


if __name__ == "__main__":
    main()
