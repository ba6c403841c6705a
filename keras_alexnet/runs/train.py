"""`train` and `finetune`: one call runs a whole, resumable training run.

Both write a run folder (`keras_alexnet.runs.run_folder`): configuration,
checkpoints, `log.csv`, TensorBoard logs, `curves.png`, `conv1_filters.png` and
`metrics.json`. Calling again with the same arguments after an interruption
continues from the last completed epoch. Each builds a list of `Phase`s (train:
one; finetune: the head, then everything) that one loop runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
from typing import Any

import keras
import numpy as np

from keras_alexnet import training
from keras_alexnet._bounds import (
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_IMAGE_SIZE,
    MAX_LEARNING_RATE,
)
from keras_alexnet._choices import DISTRIBUTE_MODES
from keras_alexnet._terminal import printable
from keras_alexnet._validation import check_float, check_int
from keras_alexnet.data import storage
from keras_alexnet.data.prepare import is_prepared
from keras_alexnet.data.prepared_manifest import read_manifest
from keras_alexnet.runs import cluster as cluster_lib
from keras_alexnet.runs import models, plots, recipes
from keras_alexnet.runs.datasets import (
    DataSpec,
    class_names_of,
    make_datasets,
    make_validation_dataset,
    resolve_data,
)
from keras_alexnet.runs.evaluate import checkpoint_label, evaluate_run
from keras_alexnet.runs.run_files import read_classes
from keras_alexnet.runs.run_folder import (
    INITIAL_CONV1,
    EpochRecorder,
    RunFolder,
    run_options,
)
from keras_alexnet.runs.run_mirror import open_run_folder
from keras_alexnet.runs.strategy_fit import fit_under_strategy
from keras_alexnet.weights.keras_file import load_keras_file

DISTRIBUTE_BACKENDS = ("tensorflow", "jax")
# Image sizes are read from at most this many training files.
SURVEY_FILES = 64
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclasses.dataclass(frozen=True)
class Phase:
    """One stretch of a run, with one optimizer.

    Attributes:
        name: `"train"`, `"head"` or `"finetune"`.
        end_epoch: the epoch count once the phase is done.
        base_trainable: whether a pretrained base learns (ignored without one).
        optimizer: `"recipe"` (the recipe's optimizer and schedule), `"adam"`
            or `"paper_sgd"`.
        learning_rate: the phase's (peak) learning rate.
    """

    name: str
    end_epoch: int
    base_trainable: bool
    optimizer: str
    learning_rate: float


def train(
    data: str | os.PathLike,
    output: str | os.PathLike,
    *,
    recipe: str | None = None,
    variant: str = "original",
    normalization: str | None = None,
    init: str | None = None,
    fc_units: int = models.FC_UNITS,
    dropout: float = 0.5,
    image_size: int | None = None,
    batch_size: int | None = None,
    epochs: int | None = None,
    learning_rate: float | None = None,
    flip: bool | None = None,
    lighting: bool | None = None,
    augment: str | None = None,
    validation_split: float | None = None,
    ten_crop: bool | None = None,
    seed: int = 0,
    mixed_precision: bool = False,
    distribute: bool | str = False,
    verbose: int = 1,
    keep_checkpoints: int = 1,
    allow_small_classes: bool = False,
) -> dict[str, Any]:
    """Trains AlexNet from scratch on `data` and writes the run to `output`.

    Args:
        data: a folder with `train/` and `val/` class folders, a class-folder
            tree with `validation_split`, or a TFDS name (see
            `keras_alexnet.runs.datasets.resolve_data`).
        output: the run folder, or a URL `tf.io.gfile` writes (`gs://...`,
            run in a local working copy: `keras_alexnet.runs.run_mirror`);
            rerunning with the same arguments resumes.
        recipe: `None` or `"auto"` (settings fitted to the data, printed in
            one line), `"paper"` or `"modern"` (see `keras_alexnet.runs.recipes`).
        variant: `"original"` (the paper's layout) or `"torchvision"`.
        normalization: overrides the recipe's (`"lrn"`, `"batchnorm"`, `"none"`).
        init: overrides the recipe's initialisation (`"paper"`, `"he"`).
        fc_units: the width of fc6 and fc7 (4096 in the paper; narrower trains
            faster on small datasets).
        dropout: the dropout rate of fc6 and fc7 (0.5 in the paper).
        image_size: the input side; defaults to the variant's (227 or 224), or
            with `auto` to the images' own side (at least 67).
        batch_size: overrides the recipe's.
        epochs: overrides the recipe's.
        learning_rate: overrides the recipe's (the peak of a cosine schedule);
            with `auto`, the default is scaled to the batch.
        flip: overrides the recipe's random flips.
        lighting: overrides the recipe's PCA lighting.
        augment: overrides the recipe's augmentation preset (`"paper"`,
            `"modern"`, `"center_crop"` for none; see `imagenet_dataset`).
        validation_split: the fraction of each class held out of a single tree.
        ten_crop: whether the final evaluation uses the paper's ten crops;
            defaults to the recipe's.
        seed: seeds the initialisation, shuffling, augmentation and split.
        mixed_precision: compute in float16 (GPU) or bfloat16 (CPU).
        distribute: `True` or `"data-parallel"`: data parallelism over all
            local devices (`tf.distribute.MirroredStrategy` on TensorFlow,
            `keras.distribution.DataParallel` on JAX); `"model-parallel"`:
            the paper's two-GPU split of every layer
            (`keras_alexnet.runs.distribution.model_parallel`, JAX only);
            `"multi-worker"`: data parallelism over the devices of several
            machines, the same call on each, the cluster read from the
            environment (`keras_alexnet.runs.cluster`, docs/distributed.md;
            JAX's distribution API, or TensorFlow's
            `MultiWorkerMirroredStrategy` with `runs.strategy_fit`).
            `batch_size` stays the global batch; only the chief (worker 0)
            writes `output`.
        verbose: 0 silent, 1 progress bars.
        keep_checkpoints: how many of the last epochs' checkpoints stay in
            `checkpoints/` (`best.keras` always stays).
        allow_small_classes: keep class folders with fewer than 2 training
            images or no validation image (refused otherwise).

    Returns:
        The final metrics, as written to `metrics.json`: the evaluation of
        `best.keras`.

    Raises:
        ValueError: a bad argument (`learning_rate` not a finite number > 0...).
        keras_alexnet.training.TrainingDivergedError: the loss became NaN or
            infinite (no checkpoint of the diverged model is written).
    """
    chosen = recipes.get_recipe(recipe)
    check_float("learning_rate", learning_rate, minimum=0, exclusive_minimum=True,
                maximum=MAX_LEARNING_RATE, allow_none=True)  # fmt: skip
    _check_distribute(_distribute_mode(distribute))  # before reading DATA
    train_images, image_side = (
        _survey(data, validation_split, allow_small_classes)
        if chosen.scales_to_data
        else (None, None)
    )
    settings = recipes.choose_settings(
        chosen,
        train_images=train_images,
        image_side=image_side,
        default_image_size=models.default_image_size(variant),
        batch_size=batch_size,
        learning_rate=learning_rate,
        image_size=image_size,
        epochs=epochs,
    )
    config = {
        "command": "train",
        "data": os.fspath(data),
        "recipe": chosen.name,
        "variant": variant,
        "normalization": normalization or chosen.normalization,
        "init": init or chosen.init,
        "fc_units": fc_units,
        "dropout": dropout,
        "image_size": settings.image_size,
        "batch_size": settings.batch_size,
        "epochs": settings.epochs,
        "learning_rate": settings.learning_rate,
        "flip": chosen.flip if flip is None else flip,
        "lighting": chosen.lighting if lighting is None else lighting,
        "augment": augment or chosen.augment,
        "validation_split": validation_split,
        "ten_crop": chosen.ten_crop if ten_crop is None else ten_crop,
        "seed": seed,
        "mixed_precision": mixed_precision,
        "distribute": _distribute_mode(distribute),
        "backend": keras.backend.backend(),
    }
    config.update(run_options(keep_checkpoints, allow_small_classes))
    _check_config(config)
    if verbose and settings.reason:
        print(
            f"Recipe {chosen.name}: {settings.reason}, {config['normalization']}, "
            f"init {config['init']}, {config['epochs']} epochs."
        )
    phases = [Phase("train", config["epochs"], True, "recipe", config["learning_rate"])]

    def build(classes: int) -> tuple[keras.Model, None]:
        model = models.build_classifier(
            classes,
            variant=variant,
            image_size=config["image_size"],
            normalization=config["normalization"],
            init=config["init"],
            seed=seed,
            fc_units=fc_units,
            dropout=dropout,
        )
        recipes.set_batchnorm_momentum(model, chosen.batchnorm_momentum)
        return model, None

    return _run(config, output, chosen, build, phases, verbose=verbose)


def finetune(
    data: str | os.PathLike,
    output: str | os.PathLike,
    *,
    weights: str | None = "imagenet",
    variant: str = "original",
    image_size: int | None = None,
    batch_size: int = 32,
    head_epochs: int = 5,
    epochs: int = 10,
    learning_rate: float = 1e-3,
    finetune_learning_rate: float = 1e-4,
    flip: bool = True,
    validation_split: float | None = None,
    seed: int = 0,
    mixed_precision: bool = False,
    distribute: bool | str = False,
    verbose: int = 1,
    keep_checkpoints: int = 1,
    allow_small_classes: bool = False,
) -> dict[str, Any]:
    """Fine-tunes a pretrained AlexNet on `data` with a new classifier head.

    Two phases, the usual recipe: for `head_epochs` only the new head learns
    (Adam, `learning_rate`) on the frozen base (`include_top=False`, global
    average pooling); then the whole network, base in inference mode, with
    `PaperSGD` at `finetune_learning_rate`, until `epochs` in all.

    Args:
        data: as for `train`.
        output: the run folder or a URL, as for `train`; rerunning with the
            same arguments resumes.
        weights: `"imagenet"`, a weights file (`.keras`, `.weights.h5`,
            `.caffemodel`, `.pth`), or `None` (a random base).
        variant: `"original"` or `"torchvision"`.
        image_size: the input side (any from 67); defaults to the variant's.
        batch_size: images per batch.
        head_epochs: epochs of the first phase.
        epochs: epochs in all.
        learning_rate: the head's learning rate in the first phase.
        finetune_learning_rate: the learning rate of the second phase.
        flip: random flips.
        validation_split: the fraction of each class held out of a single tree.
        seed: seeds shuffling, augmentation and the split.
        mixed_precision: as for `train`.
        distribute: as for `train`.
        verbose: 0 silent, 1 progress bars.
        keep_checkpoints: as for `train`.
        allow_small_classes: as for `train`.

    Returns:
        The final metrics, as written to `metrics.json`.

    Raises:
        ValueError: a bad argument.
        keras_alexnet.training.TrainingDivergedError: the loss became NaN or
            infinite.
    """
    if weights not in (None, "imagenet") and not os.path.isfile(
        os.path.expanduser(os.fspath(weights))
    ):
        raise ValueError(
            "`weights` should be 'imagenet', None or a weights file. Received: "
            f"weights={weights!r}, which is not a file"
        )
    config = {
        "command": "finetune",
        "data": os.fspath(data),
        "weights": None if weights is None else os.fspath(weights),
        "variant": variant,
        "image_size": image_size or models.default_image_size(variant),
        "batch_size": batch_size,
        "head_epochs": head_epochs,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "finetune_learning_rate": finetune_learning_rate,
        "flip": flip,
        "lighting": False,
        "augment": "paper",
        "validation_split": validation_split,
        "ten_crop": False,
        "seed": seed,
        "mixed_precision": mixed_precision,
        "distribute": _distribute_mode(distribute),
        "backend": keras.backend.backend(),
    }
    config.update(run_options(keep_checkpoints, allow_small_classes))
    _check_config(config)
    if not 0 <= head_epochs <= epochs:
        raise ValueError(
            "`head_epochs` should be from 0 to `epochs`. Received: "
            f"head_epochs={head_epochs}, epochs={epochs}"
        )
    phases = [
        Phase("head", head_epochs, False, "adam", learning_rate),
        Phase("finetune", epochs, True, "paper_sgd", finetune_learning_rate),
    ]

    def build(classes: int) -> tuple[keras.Model, keras.Model]:
        return models.build_finetune_model(
            classes,
            weights=config["weights"],
            variant=variant,
            image_size=config["image_size"],
        )

    # The paper's data handling (crops, no mixing, no smoothing); the phases
    # bring their own optimizers.
    return _run(config, output, recipes.RECIPES["paper"], build, phases,
                verbose=verbose)  # fmt: skip


def _survey(
    data: Any, validation_split: float | None, allow_small_classes: bool
) -> tuple[int | None, float | None]:
    """The number of training images and their median side (`None`: unknown).

    Unreadable `data` gives `None`s: the run reports it in its usual order,
    after the checks of the arguments and the run folder.
    """
    try:
        spec = resolve_data(
            data,
            validation_split=validation_split,
            allow_small_classes=allow_small_classes,
        )
    except (ValueError, TypeError, OSError, ImportError):
        return None, None
    if spec.kind == "tfds":
        return None, None
    if is_prepared(spec.train):
        # Shards of prepare_imagenet: their manifest counts the images, which
        # are stored at `resize_size`, not at the side they were taken.
        try:
            manifest = read_manifest(storage.expand(spec.train))
        except ValueError:
            return None, None  # a damaged manifest: the run names it
        return (manifest["images"] if manifest else None), None
    import tensorflow as tf
    from PIL import Image

    files = sorted(
        storage.join(folder, name)
        for folder, _, names in storage.walk(spec.train)
        for name in names
        if name.lower().endswith(IMAGE_SUFFIXES)
    )
    count = len(files)
    if spec.kind == "split" and spec.validation_split:
        count = round(count * (1 - spec.validation_split))
    sides = []
    for path in files[:: max(1, len(files) // SURVEY_FILES)]:
        try:
            with storage.open_read(path) as file, Image.open(file) as image:
                sides.append(min(image.size))
        except (OSError, tf.errors.OpError):
            continue  # the pipeline reports unreadable files
    return count or None, (statistics.median(sides) if sides else None)


def _check_config(config: dict[str, Any]) -> None:
    for key, maximum in (
        ("image_size", MAX_IMAGE_SIZE),
        ("batch_size", MAX_BATCH_SIZE),
        ("epochs", MAX_EPOCHS),
    ):
        check_int(key, config[key], minimum=1, maximum=maximum)
    for key in ("learning_rate", "finetune_learning_rate"):
        if key in config:
            check_float(
                key,
                config[key],
                minimum=0,
                exclusive_minimum=True,
                maximum=MAX_LEARNING_RATE,
            )
    _check_distribute(config["distribute"])


def _check_distribute(mode: str | bool) -> None:
    backend = keras.backend.backend()
    if mode and backend not in DISTRIBUTE_BACKENDS:
        raise ValueError(
            "`distribute` needs the TensorFlow or JAX backend. Received: backend "
            f"{backend!r}"
        )
    if mode == "model-parallel" and backend != "jax":
        raise ValueError(
            "`distribute='model-parallel'` needs the JAX backend "
            f"(keras.distribution). Received: backend {backend!r}"
        )


def _distribute_mode(distribute: Any) -> str | bool:
    """`False`, `"data-parallel"` (also `True`) or `"model-parallel"`."""
    if distribute is None or distribute is False:
        return False
    if distribute is True:
        return "data-parallel"
    if distribute not in DISTRIBUTE_MODES:
        raise ValueError(
            f"`distribute` should be a bool or one of {DISTRIBUTE_MODES}. "
            f"Received: distribute={distribute!r}"
        )
    return str(distribute)


def _distribution_scope(
    distribute: bool | str, distribution: Any = None, strategy: Any = None
) -> Any:
    """MirroredStrategy's scope on TensorFlow; DataParallel or the paper's
    ModelParallel set on JAX; over several workers, JAX's `distribution` set
    or TensorFlow's `strategy` entered."""
    if strategy is not None:
        return strategy.scope()
    if distribution is not None:
        keras.distribution.set_distribution(distribution)
        return contextlib.nullcontext()
    if not distribute:
        return contextlib.nullcontext()
    if distribute == "model-parallel":
        from keras_alexnet.runs.distribution import model_parallel

        keras.distribution.set_distribution(model_parallel())
        return contextlib.nullcontext()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.MirroredStrategy().scope()
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    return contextlib.nullcontext()


def _run(
    config: dict[str, Any],
    output: str | os.PathLike,
    recipe: recipes.Recipe,
    build: Any,
    phases: list[Phase],
    *,
    verbose: int,
) -> dict[str, Any]:
    cluster = None
    if config["distribute"] == "multi-worker":
        cluster = cluster_lib.cluster_from_environment()
        cluster.worker_batch(config["batch_size"])
    worker = None if cluster is None or cluster.is_chief else cluster.index
    folder = open_run_folder(output, worker=worker)
    config = {**config, "output": folder.location}
    writes, state = _claim(folder, config, cluster)
    # The locks go with the call, whatever ends it (an error included).
    try:
        if cluster is None or cluster.is_chief:
            finished = folder.resume_or_finish(config, verbose=verbose)
        else:
            finished = folder.finished_metrics(config)
        if finished is not None:
            return finished
        return _run_locked(
            folder, writes, cluster, config, state, recipe, build, phases, verbose
        )
    finally:
        folder.release()
        if writes is not folder:
            writes.release()
            shutil.rmtree(writes.root, ignore_errors=True)


def _run_locked(
    folder: RunFolder,
    writes: RunFolder,
    cluster: cluster_lib.Cluster | None,
    config: dict[str, Any],
    state: dict[str, Any],
    recipe: recipes.Recipe,
    build: Any,
    phases: list[Phase],
    verbose: int,
) -> dict[str, Any]:
    """The run, once the folders are claimed; `writes` is where this process
    writes (the run folder, or another worker's scratch folder)."""
    completed = int(state.get("epoch", 0))
    batch_size = config["batch_size"]
    distribution = strategy = None
    if cluster is not None:
        batch_size = cluster.worker_batch(batch_size)
        # Before any other computation: both join the cluster's runtime.
        if keras.backend.backend() == "tensorflow":
            strategy = cluster_lib.mirrored_strategy_over_workers(cluster)
        else:
            distribution = cluster_lib.data_parallel_over_workers(cluster)
    if config["mixed_precision"]:
        policy = "mixed_bfloat16" if _on_cpu() else "mixed_float16"
        keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(config["seed"])

    one_hot = recipe.mix or bool(recipe.label_smoothing)
    spec = resolve_data(
        config["data"],
        validation_split=config["validation_split"],
        allow_small_classes=config["allow_small_classes"],
    )
    if completed:
        _check_resumed_classes(folder, spec)
    train_data, val_data, class_names = make_datasets(
        spec,
        seed=config["seed"],
        variant=config["variant"],
        image_size=config["image_size"],
        batch_size=batch_size,
        augment=config["augment"],
        flip=config["flip"],
        lighting=config["lighting"],
        label_mode="one_hot" if one_hot else "sparse",
        label_smoothing=recipe.label_smoothing,
        shard=cluster.shard if cluster else None,
    )
    classes = len(class_names)
    if recipe.mix:
        train_data = recipes.mix_batches(train_data, config["seed"])
    steps = int(train_data.cardinality())
    writes.write_json("classes.json", class_names)

    with _distribution_scope(config["distribute"], distribution, strategy):
        if completed:
            model = load_keras_file(folder.checkpoint(completed))
            base = _find_base(model)
        else:
            model, base = build(classes)
            writes.write_array(INITIAL_CONV1, conv1_kernel(model))
            if config["mixed_precision"]:
                # Scores and metrics in float32, as Keras' mixed precision
                # guide asks of a model's output.
                scores = keras.layers.Activation(
                    "linear", dtype="float32", name="predictions_float32"
                )(model.output)
                model = keras.Model(model.input, scores, name=model.name)
        start = 0
        for phase in phases:
            first = max(start, completed)
            if first >= phase.end_epoch:
                start = phase.end_epoch
                continue
            optimizer, stateful = _phase_optimizer(
                phase, recipe, config["epochs"], steps, verbose
            )
            # Within a phase, the checkpoint carries the compiled optimizer and
            # its state; a new phase (or a new run) compiles afresh.
            if not start < completed == first:
                if base is not None:
                    base.trainable = phase.base_trainable
                _compile(model, optimizer, classes, not one_hot)
            callbacks = [
                *stateful.values(),
                # Before the recorder: a diverged epoch is never saved.
                training.StopOnDivergence(steps, advice=_divergence_advice(config)),
                EpochRecorder(writes, state=state, stateful_callbacks=stateful),
                keras.callbacks.TensorBoard(
                    writes.path("tensorboard"), write_graph=False
                ),
            ]
            if strategy is not None:
                # Keras' fit fails under MultiWorkerMirroredStrategy
                # (keras-team/keras#20585).
                fit_under_strategy(
                    model,
                    strategy,
                    train_data,
                    batch_size=config["batch_size"],
                    validation_data=val_data,
                    epochs=phase.end_epoch,
                    initial_epoch=first,
                    callbacks=callbacks,
                    verbose=_fit_verbose(verbose),
                )
            else:
                model.fit(
                    train_data,
                    validation_data=val_data,
                    epochs=phase.end_epoch,
                    initial_epoch=first,
                    callbacks=callbacks,
                    verbose=_fit_verbose(verbose),
                    # The pipeline shuffles; Keras' own flag only warns.
                    shuffle=False,
                )
            state = writes.state()
            start = phase.end_epoch

    if config["distribute"]:
        # The final scores on one device: predict_on_batch under a strategy
        # hands each replica the whole batch.
        keras.distribution.set_distribution(None)
    if writes is not folder:  # another worker: the chief evaluates
        return cluster_lib.wait_for_chief(lambda: folder.finished_metrics(config))
    folder.sync_best()
    folder.prune_checkpoints()
    best, metrics = evaluate_run(
        folder,
        val_data,
        class_names,
        ten_crop_data=_ten_crop_data(config, class_names)
        if config["ten_crop"]
        else None,
        verbose=verbose,
    )
    state = folder.state()
    metrics["epochs"] = int(state.get("epoch", 0))
    metrics["best_val_accuracy"] = state.get("best")
    metrics["pictures"].update(_pictures(folder, best, config, metrics["checkpoint"]))
    # Last: a metrics.json matching the state marks the run finished.
    folder.write_json("metrics.json", metrics)
    folder.publish()
    if verbose:
        size = folder.size_bytes() / 1e6
        print(f"Run folder: {printable(folder.location)} ({size:.1f} MB)")
    return metrics


def _claim(
    folder: RunFolder, config: dict[str, Any], cluster: cluster_lib.Cluster | None
) -> tuple[RunFolder, dict[str, Any]]:
    """`(writes, state)`: where this process writes, and the run's state.

    Only the chief writes the run folder (and holds its lock). The other
    workers of a multi-worker run read where it stands and write the same
    files into a scratch folder of their own: saving a model is a collective
    step every worker must take.
    """
    if cluster is None or cluster.is_chief:
        return folder, folder.start(config)
    if folder.mirror is not None:
        folder.mirror.claim()  # this worker's copy of the URL, read only
    # One name per run folder and worker: a rerun after a kill replaces what
    # the killed worker left.
    digest = hashlib.sha256(folder.root.encode()).hexdigest()[:16]
    name = f"keras-alexnet-worker-{cluster.index}-{digest}"
    scratch = os.path.join(tempfile.gettempdir(), name)
    shutil.rmtree(scratch, ignore_errors=True)
    writes = RunFolder(scratch)
    writes.start(config)
    state = folder.state()
    if state["epoch"]:
        # The recorder carries the log of the completed epochs forward.
        shutil.copyfile(folder.path("log.csv"), writes.path("log.csv"))
    return writes, state


def _check_resumed_classes(folder: RunFolder, spec: DataSpec) -> None:
    """The class folders of the data must be those of the run being resumed,
    whose model has one output per class of its `classes.json`."""
    classes_file = folder.path("classes.json")
    names = class_names_of(spec)  # None for TFDS: the dataset's own classes
    if names is None or not os.path.lexists(classes_file):
        return
    recorded = read_classes(classes_file)
    if recorded != names:
        raise ValueError(
            f"The classes of {spec.train!r} ({len(names)}) are not those of the "
            f"run being resumed ({len(recorded)}, in {classes_file!r}); choose "
            "another --output for a new run."
        )


def _phase_optimizer(phase, recipe, epochs, steps, verbose):
    """The optimizer of `phase` and its stateful callbacks `{name: callback}`."""
    if phase.optimizer == "adam":
        return keras.optimizers.Adam(phase.learning_rate), {}
    if phase.optimizer == "paper_sgd":
        return training.PaperSGD(learning_rate=phase.learning_rate), {}
    return recipes.optimizer_and_callbacks(
        recipe,
        learning_rate=phase.learning_rate,
        epochs=epochs,
        steps_per_epoch=steps,
        verbose=verbose,
    )


def _divergence_advice(config: dict[str, Any]) -> str:
    rate = config.get("finetune_learning_rate", config["learning_rate"])
    return (
        f"lower the learning rate (learning_rate, --learning-rate; now {rate:.3g}) "
        f"or raise the batch size (batch_size, --batch-size; now "
        f"{config['batch_size']})"
    )


def _compile(model, optimizer, classes, sparse):
    # Keras' own cross-entropy on probabilities stops learning on JAX and
    # PyTorch (not TensorFlow) where a class's probability is below 1e-7.
    loss = training.ProbabilityCrossentropy(sparse=sparse)
    if sparse:
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        top5 = keras.metrics.SparseTopKCategoricalAccuracy
    else:
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        top5 = keras.metrics.TopKCategoricalAccuracy
    # Top-5 says something only with more than five classes (else it is 100 %).
    if classes > 5:
        metrics.append(top5(5, name="top5"))
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)


def _find_base(model: keras.Model) -> keras.Model | None:
    for layer in model.layers:
        if isinstance(layer, keras.Model) and layer.name == "base":
            return layer
    return None


def _ten_crop_data(config, class_names):
    spec = resolve_data(
        config["data"],
        validation_split=config["validation_split"],
        allow_small_classes=config["allow_small_classes"],
    )
    val, _ = make_validation_dataset(
        spec,
        seed=config["seed"],
        variant=config["variant"],
        image_size=config["image_size"],
        batch_size=max(1, config["batch_size"] // 10),
        eval_augment="ten_crop",
    )
    return val


def _fit_verbose(verbose: int) -> int:
    if not verbose:
        return 0
    return 1 if sys.stdout.isatty() else 2


def _on_cpu() -> bool:
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return not tf.config.list_physical_devices("GPU")
    if keras.backend.backend() == "jax":
        import jax

        return jax.default_backend() == "cpu"
    import torch

    return not torch.cuda.is_available()


# conv1's filters are captioned "as the paper's Figure 3" only for the
# paper's recipe at full size whose filters moved at least as far as their
# initial size (docs/training.md, "What a run folder holds").
FIGURE_3_MIN_CHANGE = 1.0


def _pictures(
    folder: RunFolder,
    model: keras.Model,
    config: dict[str, Any],
    checkpoint: dict[str, Any],
) -> dict[str, str]:
    """Writes `curves.png` and `conv1_filters.png` (of `checkpoint`'s model).

    Returns:
        `{picture: its title}`.
    """
    log = (
        plots.read_log(folder.path("log.csv"))
        if os.path.isfile(folder.path("log.csv"))
        else {}
    )
    data = os.path.basename(config["data"].rstrip("/"))
    titles = {
        "curves.png": f"{config['command']} on {data}: every epoch "
        f"(best: epoch {checkpoint['epoch']})",
    }
    plots.plot_curves(
        {config.get("normalization", "model"): log},
        folder.path("curves.png"),
        title=titles["curves.png"],
    )
    kernel = conv1_kernel(model)
    initial_path = folder.path(INITIAL_CONV1)
    initial = np.load(initial_path) if os.path.isfile(initial_path) else None
    titles["conv1_filters.png"] = conv1_title(kernel, initial, config, checkpoint)
    plots.plot_conv1_filters(
        kernel,
        folder.path("conv1_filters.png"),
        title=titles["conv1_filters.png"],
        initial=initial,
    )
    return titles


def conv1_title(
    kernel: np.ndarray,
    initial: np.ndarray | None,
    config: dict[str, Any],
    checkpoint: dict[str, Any],
) -> str:
    """What `conv1_filters.png` shows, and how far the filters moved."""
    size = f"{kernel.shape[-1]} filters of {kernel.shape[0]}x{kernel.shape[1]}x3"
    title = f"conv1 of {checkpoint_label(checkpoint)}: {size}"
    if initial is None:
        return f"{title} (initial filters not recorded)"
    change = plots.conv1_change(initial, kernel)
    title += (
        f", at the start of the run and trained; moved {100 * change:.1f} % "
        "(|W - W0| / |W0|)"
    )
    paper = (
        config.get("recipe") == "paper"
        and config["variant"] == "original"
        and config["image_size"] == 227
    )
    if paper and change >= FIGURE_3_MIN_CHANGE:
        title += "; as the paper's Figure 3"
    return title


def conv1_kernel(model: keras.Model) -> np.ndarray:
    """conv1's kernel `(height, width, 3, filters)` of a model or its base."""
    for layer in models._all_layers(model):
        if layer.name == "conv1":
            return np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float32)
    raise ValueError(f"The model {model.name!r} has no conv1 layer.")
