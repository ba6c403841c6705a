"""`benchmarks/gpu.py --focus gaps`: the GPU targets issue 10 still misses.

Each framework's child measures its defaults next to the ways that could close
what is left, in one run on one card:

- plain PyTorch: the references (eager float32 and AMP bfloat16, torch.compile
  with AMP bfloat16), the train step also without copying the loss to the host
  at every step ("train, no per-step sync");
- Keras/JAX: `train_on_batch` and `predict_on_batch` against the same model's
  step jitted by hand from `stateless_call` (what the step costs without
  Keras' per-call work), with and without the per-step sync; and, for the
  paper's layout in float32 and bfloat16, the forward pass cut after each
  block, to see where bfloat16 inference loses;
- Keras/PyTorch: the defaults (keras-alexnet's Conv2D and MaxPooling2D run
  on channels-last views) against Keras' own way of running them, which copies
  NHWC inputs to NCHW and back around each (`keras_layout_copies`); a check of the
  in-place LRN on CUDA against PyTorch's `local_response_norm`; and a
  profile of one train step (GPU busy time against the step's wall time).
"""

from __future__ import annotations

import contextlib
import functools

NOTE = "NOTE "

# Where the paper's layout is cut to time its blocks (layer names of AlexNet).
CUTS = ("conv1", "norm1", "pool1", "pool2", "pool5", "fc7", "predictions")


# --- Keras/PyTorch: convolutions and pooling on channels-last views ----------


@contextlib.contextmanager
def keras_layout_copies():
    """Runs keras-alexnet's Conv2D and MaxPooling2D the way Keras' own run.

    keras-alexnet's layers pass channels-last views to PyTorch
    (`keras_alexnet/layers/channels_last.py`); Keras' torch backend copies
    NHWC inputs to NCHW and back into channels-last memory around each
    convolution and pooling. This turns the views off: the "before".
    """
    from keras_alexnet.layers import channels_last

    saved = channels_last.torch_conv2d, channels_last.torch_max_pool2d
    channels_last.torch_conv2d = channels_last.torch_max_pool2d = _declined
    try:
        yield
    finally:
        channels_last.torch_conv2d, channels_last.torch_max_pool2d = saved


def _declined(*args, **kwargs):
    return None


BEFORE = "Keras' conv and pool (before)"


def keras_torch_gaps(child, step_and_inference, build, to_device, rng, sync) -> None:
    """Keras' layout copies against keras-alexnet's views (run 1 and 2), and
    space-to-depth conv1 (run 2)."""
    lrn_cuda_parity(child)
    channels_last_parity(child, build, to_device, rng)
    if child.args.gaps_run == 2:
        conv1_alone(child, to_device, sync, rng)
    layouts = [("torchvision", "bf16"), ("torchvision", "fp32")]
    layouts += [("original", "bf16"), ("original", "fp32")]
    for layout, precision in layouts[:1] if child.args.smoke else layouts:
        step_and_inference(layout, precision, "eager")
        with keras_layout_copies():
            step_and_inference(layout, precision, "eager", f"{layout}, {BEFORE}")
        if child.args.gaps_run == 2 and precision == "bf16":
            with space_to_depth():
                step_and_inference(
                    layout, precision, "eager", f"{layout}, {SPACE_TO_DEPTH}"
                )
    for label, context in (
        ("default", contextlib.nullcontext),
        (BEFORE, keras_layout_copies),
    ):
        with context():
            model, size = build("torchvision", "bf16", "eager")
            batch = child.args.batch
            x = to_device(rng.uniform(-2, 2, (batch, size, size, 3)).astype("float32"))
            y = to_device(rng.integers(0, 1000, (batch,)).astype("int32"))
            profile_step(
                child,
                f"Keras/torch torchvision bf16 {label}",
                functools.partial(model.train_on_batch, x, y),
            )


def channels_last_parity(child, build, to_device, rng) -> None:
    """The same weights' logits and gradients with and without the views."""
    import numpy as np

    for layout in ("torchvision", "original"):
        model, size = build(layout, "fp32", "eager")
        x = to_device(rng.uniform(-2, 2, (4, size, size, 3)).astype("float32"))

        def logits_and_gradient(model=model, x=x):
            for v in model.trainable_variables:
                v.value.grad = None
            out = model(x, training=False)
            out.float().square().mean().backward()
            gradient = model.get_layer("conv1").kernel.value.grad
            return out.detach().cpu().numpy(), gradient.detach().cpu().numpy()

        base, base_gradient = logits_and_gradient()
        with keras_layout_copies():
            before, before_gradient = logits_and_gradient()
        scale = np.abs(base).max()
        gradient_scale = np.abs(base_gradient).max()
        print(
            f"{NOTE}channels-last views against Keras' copies, {layout}, float32: "
            f"logits differ by {np.abs(before - base).max() / scale:.1e} of their "
            f"largest, conv1's kernel gradient by "
            f"{np.abs(before_gradient - base_gradient).max() / gradient_scale:.1e}",
            flush=True,
        )


def lrn_cuda_parity(child) -> None:
    """The layer's inference path (in place under PyTorch) against PyTorch's LRN."""
    import numpy as np
    import torch

    from keras_alexnet import LocalResponseNormalization

    device = "cuda" if torch.cuda.is_available() and not child.args.smoke else "cpu"
    generator = np.random.default_rng(1)
    for dtype in (torch.float32, torch.bfloat16):
        values = generator.uniform(0, 300, (8, 27, 27, 96)).astype("float32")
        x = torch.tensor(values, device=device, dtype=dtype)
        layer = LocalResponseNormalization(5, 2.0, 1e-4, 0.75, dtype=str(dtype)[6:])
        with torch.no_grad():
            got = layer(x).float()
        reference = torch.nn.functional.local_response_norm(
            x.float().permute(0, 3, 1, 2), 5, 5e-4, 0.75, 2.0
        ).permute(0, 2, 3, 1)
        error = ((got - reference).abs() / reference.abs().clamp_min(1e-6)).max()
        untouched = torch.equal(x, torch.tensor(values, device=device, dtype=dtype))
        print(
            f"{NOTE}LRN inference path on {device}, {dtype}: max relative error "
            f"against torch local_response_norm (float32) {float(error):.2e}, "
            f"input untouched: {untouched}",
            flush=True,
        )


def profile_step(child, label, step) -> None:
    """GPU busy time per step (sum of kernel times) against its wall time."""
    import time

    import torch

    if not child.time_left():
        return
    if not torch.cuda.is_available():
        print(f"{NOTE}profile {label}: no GPU, skipped", flush=True)
        step()
        return
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - start) / 5 * 1e3
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            step()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    busy = sum(e.self_device_time_total for e in events) / 5 / 1e3
    print(
        f"{NOTE}profile {label}: wall {wall:.2f} ms per step, GPU kernels "
        f"{busy:.2f} ms ({busy / wall:.0%} busy)",
        flush=True,
    )
    events.sort(key=lambda e: -e.self_device_time_total)
    for e in events[:10]:
        print(
            f"{NOTE}  {e.self_device_time_total / 5 / 1e3:7.3f} ms  "
            f"x{e.count // 5:<3d} {e.key[:110]}",
            flush=True,
        )


# --- Keras/JAX ----------------------------------------------------------------


def jax_gaps(child, step_and_inference, build, to_device, sync, rng, fits) -> None:
    """Run 1 (`--gaps-run 1`): Keras against the same step jitted by hand, and
    the paper's layout cut after each block; run 2: space-to-depth conv1 and
    `fit`."""
    smoke = child.args.smoke
    if child.args.gaps_run == 1:
        plans = [("torchvision", "bf16"), ("torchvision", "fp32")]
        plans += [("original", "bf16"), ("original", "fp32")]
        for layout, precision in plans[:1] if smoke else plans:
            step_and_inference(layout, precision, "jit")
            if layout == "torchvision" and precision == "bf16":
                hand_jitted(child, build, to_device, sync, rng, layout, precision)
        for precision in ("bf16", "fp32"):
            cut_forward(child, build, to_device, sync, rng, precision)
        return
    if child.args.gaps_run == 3:
        # The defaults as shipped (space-to-depth conv1 on GPUs) against the
        # direct conv1 of before, and `fit`.
        plans = [("torchvision", "bf16"), ("original", "bf16"), ("original", "fp32")]
        for layout, precision in plans[:1] if smoke else plans:
            step_and_inference(layout, precision, "jit")
        with space_to_depth(False):
            step_and_inference("torchvision", "bf16", "jit", f"torchvision, {DIRECT}")
        fits("torchvision", "bf16", with_float32=False)
        fits("original", "bf16", with_float32=False)
        return
    conv1_alone(child, to_device, sync, rng)
    plans = [("torchvision", "bf16"), ("original", "bf16"), ("original", "fp32")]
    for layout, precision in plans[:1] if smoke else plans:
        step_and_inference(layout, precision, "jit")
        with space_to_depth():
            step_and_inference(layout, precision, "jit", f"{layout}, {SPACE_TO_DEPTH}")
    hand_jitted(child, build, to_device, sync, rng, "torchvision", "bf16")
    fits("torchvision", "bf16", with_float32=False)


SPACE_TO_DEPTH = "conv1 by space-to-depth"
DIRECT = "conv1 direct (before)"


@contextlib.contextmanager
def space_to_depth(wanted=True):
    """Runs AlexNet's conv1 as a stride-1 convolution over 4x4 pixel blocks
    (or, `wanted=False`, as one convolution of stride 4)."""
    from keras_alexnet.layers import channels_last

    saved = channels_last.use_space_to_depth
    channels_last.use_space_to_depth = lambda: wanted
    try:
        yield
    finally:
        channels_last.use_space_to_depth = saved


def conv1_alone(child, to_device, sync, rng) -> None:
    """conv1 (11x11/4, 96 filters) on 227x227x3: direct and space-to-depth."""
    import keras
    from keras import ops

    from keras_alexnet.layers.channels_last import space_to_depth_conv2d

    batch = child.args.batch
    size = 67 if child.args.smoke else 227
    framework = "jax" if keras.backend.backend() == "jax" else "keras-torch"
    values = rng.uniform(-2, 2, (batch, size, size, 3)).astype("float32")
    weights = rng.normal(0, 0.01, (11, 11, 3, 96)).astype("float32")
    ways = {
        "direct": lambda x, k: ops.conv(x, k, strides=4, padding="valid"),
        "space-to-depth": lambda x, k: space_to_depth_conv2d(x, k, 4),
    }
    if framework == "keras-torch":
        from keras_alexnet.layers.channels_last import torch_conv2d

        ways["direct"] = lambda x, k: torch_conv2d(
            x, k, (4, 4), "valid", (1, 1), "channels_last"
        )
    for dtype in ("bfloat16", "float32"):
        x = ops.cast(to_device(values), dtype)
        kernel = ops.cast(to_device(weights), dtype)
        for name, function in ways.items():
            forward, both = _forward_and_kernel_gradient(function, x, kernel)
            record = dict(
                framework=framework,
                layout="conv1 alone",
                precision=dtype,
                compiler=name,
            )
            child.measure(
                f"conv1 {name} {dtype} forward",
                forward,
                sync,
                batch,
                mode="forward",
                **record,
            )
            child.measure(
                f"conv1 {name} {dtype} fwd+bwd",
                both,
                sync,
                batch,
                mode="fwd+bwd",
                **record,
            )


def _forward_and_kernel_gradient(function, x, kernel):
    import keras

    if keras.backend.backend() == "jax":
        import jax
        import jax.numpy as jnp

        forward = jax.jit(function)
        gradient = jax.jit(
            jax.grad(lambda k: jnp.sum(function(x, k).astype("float32")))
        )
        return (lambda: forward(x, kernel).block_until_ready()), (
            lambda: gradient(kernel).block_until_ready()
        )
    import torch

    def forward():
        with torch.no_grad():
            return function(x, kernel)

    def both():
        k = kernel.detach().requires_grad_(True)
        function(x, k).float().sum().backward()
        return k.grad

    return forward, both


def hand_jitted(child, build, to_device, sync, rng, layout, precision) -> None:
    """The same model's train step and forward, jitted from `stateless_call`."""
    import jax
    import numpy as np

    model, size = build(layout, precision, "jit")
    batch = child.args.batch
    x = to_device(rng.uniform(-2, 2, (batch, size, size, 3)).astype("float32"))
    y = to_device(rng.integers(0, 1000, (batch,)).astype("int32"))
    model.train_on_batch(x, y)  # builds the optimizer's variables
    loss_fn, optimizer = model.loss, model.optimizer
    state = {
        "trainable": [v.value for v in model.trainable_variables],
        "non_trainable": [v.value for v in model.non_trainable_variables],
        "optimizer": [v.value for v in optimizer.variables],
    }

    def compute_loss(trainable, non_trainable, x, y):
        logits, non_trainable = model.stateless_call(
            trainable, non_trainable, x, training=True
        )
        return loss_fn(y, logits), non_trainable

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def train(trainable, non_trainable, optimizer_state, x, y):
        (loss, non_trainable), grads = jax.value_and_grad(compute_loss, has_aux=True)(
            trainable, non_trainable, x, y
        )
        trainable, optimizer_state = optimizer.stateless_apply(
            optimizer_state, grads, trainable
        )
        return trainable, non_trainable, optimizer_state, loss

    @jax.jit
    def forward(trainable, non_trainable, x):
        return model.stateless_call(trainable, non_trainable, x, training=False)[0]

    def step(to_host):
        s = state
        s["trainable"], s["non_trainable"], s["optimizer"], loss = train(
            s["trainable"], s["non_trainable"], s["optimizer"], x, y
        )
        return float(loss) if to_host else loss

    record = dict(framework="jax", layout=layout, precision=precision)
    what = f"jax {layout} {precision} hand-jitted"
    child.measure(
        what + " train",
        lambda: step(True),
        sync,
        batch,
        mode="train",
        compiler="hand-jitted",
        **record,
    )
    child.measure(
        what + " train, no per-step sync",
        lambda: step(False),
        sync,
        batch,
        mode="train-async",
        compiler="hand-jitted",
        **record,
    )
    child.measure(
        what + " infer",
        lambda: np.asarray(forward(state["trainable"], state["non_trainable"], x)),
        sync,
        batch,
        mode="infer",
        compiler="hand-jitted",
        **record,
    )


def cut_forward(child, build, to_device, sync, rng, precision) -> None:
    """The paper's layout cut after each block: jitted forward, images/s."""
    import jax
    import keras
    import numpy as np

    model, size = build("original", precision, "jit")
    batch = child.args.batch
    x = to_device(rng.uniform(-2, 2, (batch, size, size, 3)).astype("float32"))
    names = {layer.name for layer in model.layers}
    for cut in CUTS:
        if cut not in names:
            continue
        part = keras.Model(model.input, model.get_layer(cut).output)
        trainable = [v.value for v in part.trainable_variables]
        non_trainable = [v.value for v in part.non_trainable_variables]
        forward = jax.jit(lambda t, n, x, part=part: part.stateless_call(t, n, x)[0])
        child.measure(
            f"jax original {precision} forward to {cut}",
            lambda forward=forward, t=trainable, n=non_trainable: np.asarray(
                forward(t, n, x)[:1]
            ),
            sync,
            batch,
            framework="jax",
            layout=f"original to {cut}",
            precision=precision,
            compiler="hand-jitted",
            mode="infer",
        )


# --- plain PyTorch --------------------------------------------------------------


def torch_async_train(
    child, train_model, optimizer, loss_fn, x, y, device, sync, record
):
    """The reference train step without `loss.item()` at every step."""
    import torch

    def step():
        train_model.train()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = loss_fn(train_model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    layout, compiler = record["layout"], record["compiler"]
    child.measure(
        f"torch {layout} bf16 {compiler} train, no per-step sync",
        step,
        sync,
        x.shape[0],
        mode="train-async",
        **record,
    )
    if compiler == "eager" and layout == "torchvision":
        profile_step(child, "plain torch torchvision AMP bf16 eager", step)


# --- the report ---------------------------------------------------------------


def report_lines(results, table, card) -> list[str]:
    """Every measurement of a gaps run, and the ratios the targets ask for."""
    rows = []
    for r in results:
        if r.get("mode") == "skipped" or "img_s" not in r:
            continue
        rows.append(
            [
                {"torch": "PyTorch", "jax": "Keras/JAX", "keras-torch": "Keras/torch"}[
                    r["framework"]
                ],
                r["layout"],
                r["precision"],
                r["compiler"],
                r["mode"],
                f"{r['img_s']:,.0f} ({r['min']:,.0f}-{r['max']:,.0f})",
                f"{r['ms']:.2f}",
            ]
        )
    header = ["card: " + card, "layout", "precision", "way", "mode", "images/s", "ms"]
    lines = ["", "## Every measurement", "", table(header, rows), ""]
    by_key = {
        (r["framework"], r["layout"], r["precision"], r["compiler"], r["mode"]): r[
            "img_s"
        ]
        for r in results
        if "img_s" in r
    }

    def ratio(label, a, b):
        if by_key.get(a) and by_key.get(b):
            lines.append(f"ratio gpu gaps {label} = {by_key[a] / by_key[b]:.2f}")

    for mode in ("train", "infer"):
        reference = ("torch", "torchvision", "bf16", "compile", mode)
        ratio(
            f"torchvision {mode}: Keras/JAX bf16 / torch.compile bf16",
            ("jax", "torchvision", "bf16", "jit", mode),
            reference,
        )
        ratio(
            f"torchvision {mode}: hand-jitted JAX bf16 / torch.compile bf16",
            ("jax", "torchvision", "bf16", "hand-jitted", mode),
            reference,
        )
    ratio(
        "torchvision train, no per-step sync: hand-jitted JAX / torch.compile",
        ("jax", "torchvision", "bf16", "hand-jitted", "train-async"),
        ("torch", "torchvision", "bf16", "compile", "train-async"),
    )
    for mode in ("train", "infer"):
        ratio(
            f"original {mode}: Keras/JAX bf16 / fp32",
            ("jax", "original", "bf16", "jit", mode),
            ("jax", "original", "fp32", "jit", mode),
        )
        for layout in ("torchvision", "original"):
            for precision in ("bf16", "fp32"):
                plain = ("torch", layout, precision, "eager", mode)
                ratio(
                    f"{layout} {mode} {precision}: Keras/torch / torch eager",
                    ("keras-torch", layout, precision, "eager", mode),
                    plain,
                )
                ratio(
                    f"{layout} {mode} {precision}: Keras/torch with {BEFORE} "
                    "/ torch eager",
                    ("keras-torch", f"{layout}, {BEFORE}", precision, "eager", mode),
                    plain,
                )
        ratio(
            f"original {mode}: Keras/torch bf16 / fp32",
            ("keras-torch", "original", "bf16", "eager", mode),
            ("keras-torch", "original", "fp32", "eager", mode),
        )
        ratio(
            f"original {mode}: Keras/torch with {BEFORE} bf16 / fp32",
            ("keras-torch", f"original, {BEFORE}", "bf16", "eager", mode),
            ("keras-torch", f"original, {BEFORE}", "fp32", "eager", mode),
        )
    for mode in ("train", "infer"):
        ratio(
            f"torchvision {mode}: Keras/JAX bf16 with {DIRECT} / torch.compile bf16",
            ("jax", f"torchvision, {DIRECT}", "bf16", "jit", mode),
            ("torch", "torchvision", "bf16", "compile", mode),
        )
    ratio(
        "torchvision train: Keras/JAX fit (uint8, include_preprocessing) / "
        "torch.compile bf16",
        ("jax", "torchvision", "bf16", "auto", "fit-uint8"),
        ("torch", "torchvision", "bf16", "compile", "train"),
    )
    for framework, compiler in (("jax", "jit"), ("keras-torch", "eager")):
        for layout in ("torchvision", "original"):
            for precision in ("bf16", "fp32"):
                for mode in ("train", "infer"):
                    ratio(
                        f"{layout} {mode} {precision}: {framework} {SPACE_TO_DEPTH}"
                        " / default",
                        (
                            framework,
                            f"{layout}, {SPACE_TO_DEPTH}",
                            precision,
                            compiler,
                            mode,
                        ),
                        (framework, layout, precision, compiler, mode),
                    )
        for dtype in ("bfloat16", "float32"):
            for mode in ("forward", "fwd+bwd"):
                ratio(
                    f"conv1 alone {mode} {dtype}: {framework} space-to-depth / direct",
                    (framework, "conv1 alone", dtype, "space-to-depth", mode),
                    (framework, "conv1 alone", dtype, "direct", mode),
                )
    return lines
