"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012) as a Keras 3 functional model.

`AlexNet()` checks each argument where it arrives, settles the network the
weights need (`resolve_config`), then builds the graph from the variant's rows
of `LAYOUTS`. Two layouts:

- `"original"`: the paper's network, as trained by Caffe's `bvlc_alexnet`
  (conv 96-256-384-384-256, LRN after conv1 and conv2, two groups in conv2, conv4
  and conv5, 227x227 input).
- `"torchvision"`: the "one weird trick" layout of `torchvision.models.alexnet`
  (conv 64-192-384-256-256, no LRN, no groups, adaptive average pooling to 6x6,
  224x224 input).

Background (where the architecture comes from, small inputs with the top, the
two initialisations): docs/architecture.md.

Reference:
    - [ImageNet Classification with Deep Convolutional Neural Networks, NIPS 2012](
      https://papers.nips.cc/paper/4824)
    - [One weird trick for parallelizing convolutional neural networks, 2014](
      https://arxiv.org/abs/1404.5997)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import layers

from keras_alexnet._choices import INITIALIZATIONS
from keras_alexnet._validation import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    is_integer,
)
from keras_alexnet.layers import (
    AdaptiveAveragePooling2D,
    GroupedConv2D,
    ImagePreprocessing,
    LocalResponseNormalization,
    with_fast_path,
)
from keras_alexnet.variants import (
    CAFFE_LRN,
    DEFAULT_IMAGE_SIZE,
    LRN_PRESETS,
    NORMALIZATIONS,
    PAPER_LRN,
    VARIANTS,
    LRNConstants,
    Preprocessing,
    check_variant,
)
from keras_alexnet.weights import registry
from keras_alexnet.weights.architecture import architecture_dict, file_architecture
from keras_alexnet.weights.assignment import load_weights
from keras_alexnet.weights.registry import Checkpoint
from keras_alexnet.weights.spec import resolve_weights

__all__ = [
    "CAFFE_LRN",
    "FC_UNITS",
    "INITIALIZATIONS",
    "LAYOUTS",
    "LRN_PRESETS",
    "MAX_CLASSES",
    "NORMALIZATIONS",
    "PAPER_LRN",
    "VARIANTS",
    "AlexNet",
    "ConvRow",
    "Layout",
    "ResolvedArchitecture",
    "minimum_input_size",
    "pool5_size",
    "resolve_config",
]


@dataclasses.dataclass(frozen=True)
class ConvRow:
    """One convolution of the table, and what follows it.

    Attributes:
        index: the layer's number: `conv{index}`, `norm{index}`, `bn{index}`.
        filters: output channels.
        kernel_size: square kernel side.
        strides: the stride.
        padding: `"valid"` or `"same"`.
        grouped: whether it takes the `groups` of the configuration (the paper's
            two-GPU split), or sees all input channels.
        normalized: whether LRN follows it when `normalization="lrn"`.
        pooled: whether a 3x3/2 max pool follows it.
    """

    index: str
    filters: int
    kernel_size: int
    strides: int
    padding: str
    grouped: bool
    normalized: bool
    pooled: bool


@dataclasses.dataclass(frozen=True)
class Layout:
    """One variant: its convolutions and the defaults of its other arguments."""

    rows: tuple[ConvRow, ...]
    conv1_padding: int
    groups: int
    normalization: str
    adaptive_pool: bool
    dropout_before_fc: bool


def _rows(filters: tuple[int, int, int, int, int]) -> tuple[ConvRow, ...]:
    f1, f2, f3, f4, f5 = filters
    return (
        #       conv  filters kernel stride padding grouped normalized pooled
        ConvRow("1", f1, 11, 4, "valid", False, True, True),
        ConvRow("2", f2, 5, 1, "same", True, True, True),
        ConvRow("3", f3, 3, 1, "same", False, False, False),
        ConvRow("4", f4, 3, 1, "same", True, False, False),
        ConvRow("5", f5, 3, 1, "same", True, False, True),
    )


LAYOUTS: Mapping[str, Layout] = {
    "original": Layout(
        rows=_rows((96, 256, 384, 384, 256)),
        conv1_padding=0,
        groups=2,
        normalization="lrn",
        adaptive_pool=False,
        dropout_before_fc=False,
    ),
    "torchvision": Layout(
        rows=_rows((64, 192, 384, 256, 256)),
        conv1_padding=2,
        groups=1,
        normalization="none",
        adaptive_pool=True,
        dropout_before_fc=True,
    ),
}

POOL5_SIZE = 6
# The width of fc6 and fc7 in the paper (and in every checkpoint).
FC_UNITS = 4096
# The classifier's kernel is 4096 x classes float32 (plus Adam's two slots when
# training): 100,000 classes is 1.6 GB, four times ImageNet-21k's 21,841. Larger
# is a mistake (a label id passed as the class count), refused before allocating.
MAX_CLASSES = 100_000
# The paper initialises these layers' biases to 1 "to accelerate the early stages
# of learning by providing the ReLUs with positive inputs", all others to 0.
_BIAS_ONE_LAYERS = ("conv2", "conv4", "conv5", "fc6", "fc7")
# The layers with weights, in order: `seed + index` seeds each one's draws.
_WEIGHTED_LAYERS: tuple[str, ...] = ("conv1", "conv2", "conv3", "conv4", "conv5")
_WEIGHTED_LAYERS += ("fc6", "fc7", "predictions")
# The spread of ImageNet's RGB values on [0, 255] (torchvision's std, 0.226 on
# [0, 1]), before a checkpoint's preprocessing.
_PIXEL_STD = 255.0 * 0.226


def AlexNet(
    include_top: bool = True,
    weights: str | os.PathLike | Checkpoint | None = "imagenet",
    input_tensor: Any = None,
    input_shape: tuple[int | None, int | None, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    variant: str | None = None,
    groups: int | None = None,
    normalization: str | None = None,
    dropout: float = 0.5,
    lrn: str | Mapping[str, float] | LRNConstants | None = None,
    fc_units: int = FC_UNITS,
    initialization: str = "paper",
    seed: int | None = None,
    include_preprocessing: bool = False,
    name: str = "alexnet",
) -> keras.Model:
    """Instantiates AlexNet, optionally with ImageNet weights.

    Layer names follow Caffe's `bvlc_alexnet` (`conv1` ... `pool5`, `fc6`,
    `fc7`, `predictions`); the layer table and the rules below are in
    docs/architecture.md. Arguments left at `None` (`variant`, `groups`,
    `normalization`, `lrn`) are taken from what the weights say, else the
    variant's defaults.

    Args:
        include_top: whether to include fc6, fc7 and the `predictions` layer.
        weights: `None` (random initialisation), `"imagenet"` (the variant's
            checkpoint), a checkpoint's registry name or entry
            (`keras_alexnet.CHECKPOINTS`), or the path of a `.weights.h5`,
            `.keras`, `.caffemodel` or PyTorch `.pth`/`.pt` file.
        input_tensor: optional Keras tensor to use as the model's input.
        input_shape: optional `(height, width, channels)` (channels first under
            that data format). Any size from 67 (original) or 63 (torchvision)
            pixels. With the top, the original variant needs a fixed size and
            flattens pool5 as it is (6x6 from 227 to 258 pixels); with a
            registry checkpoint's top, pool5 must be 6x6.
        pooling: with `include_top=False`: `None` (the pool5 feature map),
            `"avg"` or `"max"` (global pooling to a vector).
        classes: the number of classes with the top, 1 to `MAX_CLASSES`; 1000
            with a checkpoint's top.
        classifier_activation: the activation of `predictions`; `None` returns
            logits. With pretrained weights, only `None` or `"softmax"`.
        variant: `"original"` (the paper) or `"torchvision"`; `None` takes the
            weights', else `"original"`.
        groups: 1 or 2, the channel groups of conv2, conv4 and conv5; `None`
            takes the weights', else the variant's (2 original, 1 torchvision).
        normalization: `"lrn"`, `"batchnorm"` (after every convolution) or
            `"none"`; `None` takes the weights', else the variant's.
        dropout: the dropout rate of fc6 and fc7, in [0, 1).
        lrn: the LRN constants: `"paper"`, `"caffe"`, a dict with keys `size`,
            `bias`, `alpha`, `beta`, or `LRNConstants`; `None` takes the
            weights', else the paper's.
        fc_units: the width of fc6 and fc7 (`FC_UNITS`, 4096, in the paper and
            with a checkpoint's top).
        initialization: with `weights=None`: `"paper"` (N(0, 0.01) weights,
            biases 1 in conv2, conv4, conv5, fc6, fc7) or `"he"` (He's normal,
            Glorot's uniform for `predictions`, biases 0, and an `input_scale`
            layer that brings preprocessed inputs to unit spread).
        seed: the seed of the initial weights (`seed + i` for the i-th layer
            with weights), or `None`.
        include_preprocessing: whether the model starts with `ImagePreprocessing`
            and so takes RGB pixels in [0, 255].
        name: the model's name.

    Returns:
        A `keras.Model`.

    Raises:
        TypeError: `include_top` or `include_preprocessing` is not a bool.
        ValueError: an argument out of its range, an argument that contradicts
            the weights, or an input shape the network cannot take.

    Example:

    >>> model = AlexNet(weights=None)
    >>> model.output_shape
    (None, 1000)
    >>> model.count_params()
    60965224
    >>> small = AlexNet(weights=None, input_shape=(67, 67, 3), fc_units=512,
    ...                 classes=10, initialization="he", seed=0)
    >>> small.get_layer("fc6").kernel.shape
    (256, 512)
    """
    check_bool("include_top", include_top)
    check_bool("include_preprocessing", include_preprocessing)
    check_choice("pooling", pooling, ("avg", "max"), allow_none=True)
    classes = check_int("classes", classes, minimum=1, maximum=MAX_CLASSES)
    dropout = check_float(
        "dropout", dropout, minimum=0.0, maximum=1.0, exclusive_maximum=True
    )
    fc_units = check_int("fc_units", fc_units, minimum=1)
    check_choice("initialization", initialization, INITIALIZATIONS)
    seed = check_int("seed", seed, minimum=0, allow_none=True)
    network = resolve_config(
        weights=weights,
        variant=variant,
        groups=groups,
        normalization=normalization,
        lrn=lrn,
    )
    _check_pretrained(
        network.weights,
        include_top=include_top,
        classes=classes,
        classifier_activation=classifier_activation,
        fc_units=fc_units,
        initialization=initialization,
    )
    data_format = keras.config.image_data_format()
    layout = LAYOUTS[network.variant]
    shape = _check_input_shape(
        input_shape,
        input_tensor,
        include_top,
        network.variant,
        network.weights,
        data_format,
    )
    if input_tensor is None:
        img_input = layers.Input(shape=shape, name="image")
    elif not keras.backend.is_keras_tensor(input_tensor):
        img_input = layers.Input(tensor=input_tensor, shape=shape, name="image")
    else:
        img_input = input_tensor

    x = img_input
    if include_preprocessing:
        constants = network.preprocessing
        x = ImagePreprocessing(
            channel_order=constants.channel_order,
            scale=constants.scale,
            mean=constants.mean,
            std=constants.std,
            name="preprocessing",
        )(x)
    if initialization == "he":
        # He's initialisation keeps activations' size for inputs of unit
        # spread; Caffe's preprocessing leaves a spread of ~58, with which SGD
        # at lr 0.01 diverges in a few steps on conv1.
        x = layers.Rescaling(
            1.0 / _input_spread(network.preprocessing), name="input_scale"
        )(x)

    def init(name: str, use_bias: bool = True) -> dict[str, Any]:
        return _initializers(name, initialization, seed, use_bias)

    if layout.conv1_padding:  # torchvision pads conv1 by 2; the paper does not.
        x = layers.ZeroPadding2D(layout.conv1_padding, name="conv1_pad")(x)
    # Blocks 1-5, one row each (see LAYOUTS): conv1 11x11/4; conv2 5x5; conv3,
    # conv4 and conv5 3x3. conv2, conv4 and conv5 take `groups` (the paper's two
    # GPUs: 2); conv3 sees every channel. LRN (with normalization="lrn") follows
    # conv1 and conv2, and a 3x3/2 max pool follows conv1, conv2 and conv5.
    for row in layout.rows:
        x = _conv_block(x, row, network, data_format, init)
        if row.pooled:
            pool = layers.MaxPooling2D(3, strides=2, name=f"pool{row.index}")
            x = with_fast_path(pool)(x)

    if include_top:
        x = _classifier(
            x, layout, classes, classifier_activation, dropout, fc_units, init
        )
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    else:
        inputs = img_input
    model = keras.Model(inputs, x, name=name)
    if network.weights is not None:
        load_weights(model, network.weights)
    return model


def _classifier(
    x: Any,
    layout: Layout,
    classes: int,
    classifier_activation: Any,
    dropout: float,
    fc_units: int,
    init: Any,
) -> Any:
    """(torchvision: `avgpool` to 6x6,) `flatten`, fc6, fc7, `predictions`.

    Dropout follows fc6 and fc7 in the paper and precedes them in torchvision.
    The original variant flattens pool5 whatever its size.
    """
    if layout.adaptive_pool:
        x = AdaptiveAveragePooling2D(POOL5_SIZE, name="avgpool")(x)
    x = layers.Flatten(name="flatten")(x)
    for index in ("6", "7"):
        if layout.dropout_before_fc:
            x = layers.Dropout(dropout, name=f"drop{index}")(x)
        x = layers.Dense(
            fc_units, activation="relu", name=f"fc{index}", **init(f"fc{index}")
        )(x)
        if not layout.dropout_before_fc:
            x = layers.Dropout(dropout, name=f"drop{index}")(x)
    return layers.Dense(
        classes,
        activation=classifier_activation,
        name="predictions",
        **init("predictions"),
    )(x)


def _conv_block(
    x: Any, row: ConvRow, network: ResolvedArchitecture, data_format: str, init: Any
) -> Any:
    """`conv{i}` with its ReLU, or `conv{i}`, `bn{i}`, `relu{i}`; then `norm{i}`."""
    batchnorm = network.normalization == "batchnorm"
    groups = network.groups if row.grouped else 1
    name = f"conv{row.index}"
    options = {
        "strides": row.strides,
        "padding": row.padding,
        "activation": None if batchnorm else "relu",
        "use_bias": not batchnorm,
        "name": name,
        **init(name, use_bias=not batchnorm),
    }
    if groups > 1:
        conv = GroupedConv2D(row.filters, row.kernel_size, groups=groups, **options)
    else:
        # Keras' own layer (a saved model loads without keras-alexnet), run by
        # the fast path that applies when called (layers/channels_last.py).
        conv = with_fast_path(layers.Conv2D(row.filters, row.kernel_size, **options))
    x = conv(x)
    channel_axis = -1 if data_format == "channels_last" else 1
    if batchnorm:
        x = layers.BatchNormalization(axis=channel_axis, name=f"bn{row.index}")(x)
        x = layers.Activation("relu", name=f"relu{row.index}")(x)
    if network.normalization == "lrn" and row.normalized:
        assert network.lrn is not None  # resolve_config sets it for "lrn"
        x = LocalResponseNormalization(
            **network.lrn.as_dict(), axis=channel_axis, name=f"norm{row.index}"
        )(x)
    return x


def _initializers(
    name: str, initialization: str, seed: int | None, use_bias: bool
) -> dict[str, Any]:
    """The kernel (and bias) initializers of the layer `name`."""
    if seed is not None:
        seed += _WEIGHTED_LAYERS.index(name)
    bias = 0.0
    if initialization == "paper":
        kernel = keras.initializers.RandomNormal(0.0, 0.01, seed=seed)
        bias = 1.0 if name in _BIAS_ONE_LAYERS else 0.0
    elif name == "predictions":  # Glorot's uniform, the usual one for softmax
        kernel = keras.initializers.GlorotUniform(seed=seed)
    else:  # He's normal: N(0, 2 / fan_in), not truncated
        kernel = keras.initializers.VarianceScaling(
            2.0, "fan_in", "untruncated_normal", seed=seed
        )
    initializers = {"kernel_initializer": kernel}
    if use_bias:
        initializers["bias_initializer"] = keras.initializers.Constant(bias)
    return initializers


def _input_spread(preprocessing: Preprocessing) -> float:
    """The spread of ImageNet pixels after `preprocessing` (58 Caffe's, 1 torch's)."""
    return float(_PIXEL_STD * preprocessing.scale / np.mean(preprocessing.std))


def _check_pretrained(
    weights: Checkpoint | str | None,
    *,
    include_top: bool,
    classes: int,
    classifier_activation: Any,
    fc_units: int,
    initialization: str,
) -> None:
    """Refuses the arguments that pretrained `weights` cannot serve."""
    if weights is None:
        return
    if initialization != "paper":
        raise ValueError(
            "`initialization` applies to random weights (`weights=None`). "
            f"Received: initialization={initialization!r} with "
            f"weights={getattr(weights, 'name', weights)!r}"
        )
    if classifier_activation not in (None, "softmax"):
        raise ValueError(
            "Only `None` and 'softmax' are supported as `classifier_activation` "
            "with pretrained weights. "
            f"Received: classifier_activation={classifier_activation!r}"
        )
    if isinstance(weights, Checkpoint) and include_top:
        if classes != 1000:
            raise ValueError(
                f"If using `weights={weights.name!r}` with `include_top=True`, "
                f"`classes` should be 1000. Received classes={classes}"
            )
        if fc_units != FC_UNITS:
            raise ValueError(
                f"If using `weights={weights.name!r}` with `include_top=True`, "
                f"`fc_units` should be {FC_UNITS}. Received: fc_units={fc_units}"
            )


# -- The network the weights need -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ResolvedArchitecture:
    """The network `AlexNet` builds for some weights; `resolve_config` makes one.

    Attributes:
        weights: `None`, a registry `Checkpoint` or the path of a weights file.
        variant: one of `VARIANTS`.
        groups: the channel groups of conv2, conv4 and conv5.
        normalization: one of `NORMALIZATIONS`.
        lrn: the LRN constants with `normalization="lrn"`, else `None`.
        preprocessing: what the weights expect, and what
            `include_preprocessing` puts in front.
    """

    weights: Checkpoint | str | None
    variant: str
    groups: int
    normalization: str
    lrn: LRNConstants | None
    preprocessing: Preprocessing


def resolve_config(
    *,
    weights: Any = "imagenet",
    variant: Any = None,
    groups: Any = None,
    normalization: Any = None,
    lrn: Any = None,
) -> ResolvedArchitecture:
    """Settles the network `AlexNet(weights=..., ...)` builds, without building it.

    Reads what the weights say about the architecture (without reading their
    arrays); each argument left at `None` takes the weights' value, else the
    variant's default.

    Args:
        weights: as `AlexNet`'s `weights`.
        variant: as `AlexNet`'s `variant`.
        groups: as `AlexNet`'s `groups`.
        normalization: as `AlexNet`'s `normalization`.
        lrn: as `AlexNet`'s `lrn`.

    Returns:
        A `ResolvedArchitecture`.

    Raises:
        ValueError: an argument out of its range, unreadable weights, or an
            argument that contradicts what the weights say.
    """
    check_variant(variant, allow_none=True)
    groups = check_int("groups", groups, minimum=1, maximum=2, allow_none=True)
    check_choice("normalization", normalization, NORMALIZATIONS, allow_none=True)
    if isinstance(weights, str) and weights == "imagenet":
        weights = registry.imagenet_checkpoint(variant or "original")
    resolved_weights, stated, source = _resolve_weights(weights)
    variant = _agree("variant", variant, stated, source) or "original"
    layout = LAYOUTS[variant]
    groups = _agree("groups", groups, stated, source) or layout.groups
    normalization = (
        _agree("normalization", normalization, stated, source) or layout.normalization
    )
    lrn_constants = None
    if normalization == "lrn":
        lrn_constants = (
            _agree("lrn", _check_lrn(lrn), stated, source, show=_lrn_text) or PAPER_LRN
        )
    elif lrn is not None:
        _check_lrn(lrn)
    if isinstance(resolved_weights, Checkpoint):
        preprocessing = resolved_weights.preprocessing
    elif stated.get("variant") == "original" and stated.get("lrn") == CAFFE_LRN:
        preprocessing = registry.BVLC_ALEXNET.preprocessing
    else:
        preprocessing = registry.imagenet_checkpoint(variant).preprocessing
    return ResolvedArchitecture(
        weights=resolved_weights,
        variant=variant,
        groups=groups,
        normalization=normalization,
        lrn=lrn_constants,
        preprocessing=preprocessing,
    )


def _resolve_weights(weights: Any) -> tuple[Any, dict[str, Any], str]:
    """Returns (None, a Checkpoint or a path; what it states; how to name it)."""
    _, resolved = resolve_weights(weights)
    if isinstance(resolved, Checkpoint):
        return resolved, architecture_dict(resolved.architecture), resolved.name
    if isinstance(resolved, str):  # the path of a weights file
        return resolved, file_architecture(resolved), resolved
    return None, {}, ""


def _agree(
    argument: str,
    value: Any,
    stated: Mapping[str, Any],
    source: str,
    show: Any = repr,
) -> Any:
    """`value`, or what the weights state when `value` is None; refuses a conflict."""
    expected = stated.get(argument)
    if argument == "lrn" and stated.get("normalization") not in (None, "lrn"):
        expected = None
    if value is None:
        return expected
    if expected is not None and value != expected:
        raise ValueError(
            f"The weights {source!r} need {argument}={show(expected)}, the "
            f"architecture they were trained or saved with. Received: "
            f"{argument}={show(value)}"
        )
    return value


def _lrn_text(lrn: LRNConstants) -> str:
    return repr(lrn.as_dict())


def _check_lrn(lrn: Any) -> LRNConstants | None:
    if lrn is None or isinstance(lrn, LRNConstants):
        return lrn
    if isinstance(lrn, str):
        if lrn not in LRN_PRESETS:
            raise ValueError(
                f"`lrn` should be one of {sorted(LRN_PRESETS)} or a dict. "
                f"Received: lrn={lrn!r}"
            )
        return LRN_PRESETS[lrn]
    if not isinstance(lrn, Mapping) or set(lrn) != {"size", "bias", "alpha", "beta"}:
        raise ValueError(
            "`lrn` should be 'paper', 'caffe' or a dict with the keys size, bias, "
            f"alpha and beta. Received: lrn={lrn!r}"
        )
    # Checked by the layer itself; stored as plain Python numbers.
    LocalResponseNormalization(**lrn)
    return LRNConstants(
        size=int(lrn["size"]),
        bias=float(lrn["bias"]),
        alpha=float(lrn["alpha"]),
        beta=float(lrn["beta"]),
    )


def pool5_size(image_size: int, variant: str = "original") -> int:
    """Returns the height (or width) of pool5 for an input of `image_size` pixels.

    Zero or less means the input is too small for the network.
    """
    padding = LAYOUTS[check_variant(variant)].conv1_padding
    size = (image_size + 2 * padding - 11) // 4 + 1  # conv1
    for _ in range(3):  # pool1, pool2 and pool5; conv2-5 keep the size.
        size = (size - 3) // 2 + 1
    return size


def minimum_input_size(variant: str = "original") -> int:
    """Returns the smallest input height or width the convolutional base accepts."""
    size = 11 - 2 * LAYOUTS[check_variant(variant)].conv1_padding
    while pool5_size(size, variant) < 1:
        size += 1
    return size


def _check_input_shape(
    input_shape: Any,
    input_tensor: Any,
    include_top: bool,
    variant: str,
    weights: Checkpoint | str | None,
    data_format: str,
) -> tuple[int | None, ...]:
    """The model's input shape, from `input_shape` or `input_tensor`, checked."""
    if input_shape is not None:
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
            raise ValueError(
                "`input_shape` should be a tuple of three integers "
                f"(height, width, channels). Received: input_shape={input_shape!r}"
            )
        if not all(size is None or is_integer(size) for size in input_shape):
            raise ValueError(
                "`input_shape` should hold integers (or None for a free height or "
                f"width). Received: input_shape={tuple(input_shape)!r}"
            )
        input_shape = tuple(None if s is None else int(s) for s in input_shape)
    if input_tensor is not None:
        # The tensor's own shape is what the layers will see: check that one.
        try:
            tensor_shape = tuple(
                None if s is None else int(s) for s in input_tensor.shape[1:]
            )
        except (AttributeError, TypeError, ValueError) as error:
            raise ValueError(
                "`input_tensor` should be a tensor with a shape. "
                f"Received: input_tensor={input_tensor!r}"
            ) from error
        if input_shape is not None and any(
            given is not None and real is not None and given != real
            for given, real in zip(input_shape, tensor_shape, strict=False)
        ):
            raise ValueError(
                "`input_shape` and the shape of `input_tensor` disagree. Received: "
                f"input_shape={input_shape}, input_tensor.shape="
                f"{tuple(input_tensor.shape)}"
            )
        input_shape = tensor_shape
    if input_shape is None:
        size = DEFAULT_IMAGE_SIZE[variant] if include_top else None
        if data_format == "channels_first":
            return (3, size, size)
        return (size, size, 3)

    if len(input_shape) != 3:
        raise ValueError(
            "`input_tensor` should have the shape (batch, height, width, channels). "
            f"Received: input_shape={input_shape}"
        )
    if data_format == "channels_first":
        channels, height, width = input_shape
    else:
        height, width, channels = input_shape
    if weights is not None and channels != 3:
        raise ValueError(
            "Pretrained weights need 3 input channels. "
            f"Received: input_shape={input_shape}"
        )
    if channels is None or channels < 1:
        raise ValueError(
            "The channel dimension of `input_shape` should be a positive integer. "
            f"Received: input_shape={input_shape}"
        )
    minimum = minimum_input_size(variant)
    # The torchvision variant pools pool5 to 6x6 (avgpool) whatever the input;
    # the original flattens pool5 as it is, so fc6's inputs follow the size.
    flattens_pool5 = include_top and not LAYOUTS[variant].adaptive_pool
    for size in (height, width):
        if size is None:
            if flattens_pool5:
                raise ValueError(
                    "With `include_top=True` the original variant needs a fixed "
                    "input size (fc6 takes pool5 flattened), such as 227. "
                    f"Received: input_shape={input_shape}"
                )
            continue
        if size < minimum:
            raise ValueError(
                f"Input size must be at least {minimum}x{minimum} for "
                f"variant={variant!r}. Received: input_shape={input_shape}"
            )
        if (
            flattens_pool5
            and isinstance(weights, Checkpoint)
            and pool5_size(size) != POOL5_SIZE
        ):
            raise ValueError(
                f"With `weights={weights.name!r}` and `include_top=True` the "
                "original variant needs an input size whose pool5 is 6x6 (227 to "
                f"258 pixels, 227 in the paper). Received: input_shape={input_shape}"
            )
    return input_shape
