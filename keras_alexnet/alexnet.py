"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012) as a Keras 3 functional model.

`AlexNet()` first resolves its arguments (and what the weights say about the
network they need) into a frozen `AlexNetConfig`, then builds the graph from the
variant's rows of `LAYOUTS`. Two layouts:

- `"original"`: the paper's network, as trained by Caffe's `bvlc_alexnet`
  (conv 96-256-384-384-256, LRN after conv1 and conv2, two groups in conv2, conv4
  and conv5, 227x227 input).
- `"torchvision"`: the "one weird trick" layout of `torchvision.models.alexnet`
  (conv 64-192-384-256-256, no LRN, no groups, adaptive average pooling to 6x6,
  224x224 input).

Reference:
    - [ImageNet Classification with Deep Convolutional Neural Networks, NIPS 2012](
      https://papers.nips.cc/paper/4824)
    - [One weird trick for parallelizing convolutional neural networks, 2014](
      https://arxiv.org/abs/1404.5997)
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Mapping
from typing import Any

import keras
from keras import layers

from keras_alexnet.layers import (
    AdaptiveAveragePooling2D,
    Conv2D,
    GroupedConv2D,
    ImagePreprocessing,
    LocalResponseNormalization,
    MaxPooling2D,
)
from keras_alexnet.variants import (
    CAFFE_LRN,
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
    "LAYOUTS",
    "LRN_PRESETS",
    "MAX_CLASSES",
    "NORMALIZATIONS",
    "PAPER_LRN",
    "VARIANTS",
    "AlexNet",
    "AlexNetConfig",
    "ConvRow",
    "Layout",
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
    default_size: int
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
        default_size=227,
        groups=2,
        normalization="lrn",
        adaptive_pool=False,
        dropout_before_fc=False,
    ),
    "torchvision": Layout(
        rows=_rows((64, 192, 384, 256, 256)),
        conv1_padding=2,
        default_size=224,
        groups=1,
        normalization="none",
        adaptive_pool=True,
        dropout_before_fc=True,
    ),
}

POOL5_SIZE = 6
FC_UNITS = 4096
# The classifier's kernel is 4096 x classes float32 (plus Adam's two slots when
# training): 100,000 classes is 1.6 GB, four times ImageNet-21k's 21,841. Larger
# is a mistake (a label id passed as the class count), refused before allocating.
MAX_CLASSES = 100_000
# The paper initialises these layers' biases to 1 "to accelerate the early stages
# of learning by providing the ReLUs with positive inputs", all others to 0.
_BIAS_ONE_LAYERS = ("conv2", "conv4", "conv5", "fc6", "fc7")


@dataclasses.dataclass(frozen=True)
class AlexNetConfig:
    """`AlexNet`'s arguments, checked and resolved; `resolve_config` makes one.

    `weights` is `None`, a registry `Checkpoint` or the path of a weights file;
    `lrn` is set when `normalization == "lrn"`; `preprocessing` is what
    `include_preprocessing` puts in front.
    """

    variant: str
    layout: Layout
    groups: int
    normalization: str
    lrn: LRNConstants | None
    include_top: bool
    pooling: str | None
    classes: int
    classifier_activation: str | None
    dropout: float
    input_shape: tuple[int | None, int | None, int | None]
    data_format: str
    include_preprocessing: bool
    preprocessing: Preprocessing
    weights: Checkpoint | str | None
    name: str


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
    include_preprocessing: bool = False,
    name: str = "alexnet",
) -> keras.Model:
    """Instantiates AlexNet, optionally with ImageNet weights.

    Layer names are stable. The original variant's follow Caffe's
    `bvlc_alexnet`: `conv1`, `norm1`, `pool1`, `conv2`, `norm2`, `pool2`,
    `conv3`, `conv4`, `conv5`, `pool5`, `flatten`, `fc6`, `drop6`, `fc7`,
    `drop7` and `predictions` (Caffe's `fc8`). The torchvision variant has no
    `norm1`/`norm2`, pads with `conv1_pad`, pools with `avgpool` before
    `flatten`, and puts `drop6`/`drop7` before `fc6`/`fc7`, as torchvision
    does. Convolutions and fully connected layers include their ReLU; with
    `normalization="batchnorm"` each convolution is followed by `bn<i>` and
    `relu<i>` instead.

    With `weights=None` the initialisation is the paper's: weights from
    N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6 and fc7 and 0 elsewhere, and
    LRN with n=5, k=2, alpha=1e-4, beta=0.75.

    Where the architecture comes from: every argument left at `None` (`variant`,
    `groups`, `normalization`, `lrn`) is taken from what the weights say, and an
    argument that contradicts them is refused with a `ValueError`:

    - a checkpoint (`"imagenet"`, a registry name or entry): its registry entry
      (for `bvlc_alexnet`, Caffe's LRN k=1, alpha=1e-4/5);
    - a `.keras` archive: the layer configs it holds (LRN constants included);
    - a `.weights.h5` written by keras-alexnet (`convert_checkpoint`,
      `keras-alexnet convert`): the architecture stamped into it; other
      `.weights.h5` files say nothing, so the defaults apply (the paper's LRN):
      pass `lrn="caffe"` for one saved by hand from a Caffe-derived model;
    - a `.caffemodel`: `bvlc_alexnet`'s layout and Caffe's LRN; a `.pth`:
      torchvision's layout.

    Args:
        include_top: whether to include the fully connected layers fc6, fc7 and the
            classifier.
        weights: `None` (the paper's random initialisation), `"imagenet"` (the
            variant's pretrained checkpoint: Caffe `bvlc_alexnet` for
            `"original"`, torchvision `IMAGENET1K_V1` for `"torchvision"`), a
            checkpoint's registry name (`"bvlc_alexnet"`,
            `"torchvision_imagenet1k_v1"`, torchvision's `"IMAGENET1K_V1"`) or
            entry (`keras_alexnet.CHECKPOINTS[...]`), or the path of a
            `.weights.h5`, `.keras`, `.caffemodel` or PyTorch `.pth`/`.pt` file.
        input_tensor: optional Keras tensor (the output of `keras.Input()`) to use
            as the model's input; its shape is checked like `input_shape`.
        input_shape: optional shape tuple of integers, `(height, width, channels)`
            (or channels first). With the top, the original variant needs a size
            whose pool5 is 6x6 (227 to 258 pixels; 227 is the default) and the
            torchvision variant any size from 63 (224 is the default); without
            it, any size from 67 (original) or 63 (torchvision).
        pooling: with `include_top=False`: `None` for the pool5 feature map,
            `"avg"` or `"max"` for global pooling to a vector.
        classes: the number of classes, with `include_top=True`, from 1 to
            `MAX_CLASSES` (100,000); must be 1000 with ImageNet weights.
        classifier_activation: the activation of the `predictions` layer; `None`
            returns logits. With pretrained weights, only `None` or `"softmax"`.
        variant: `"original"` (the paper) or `"torchvision"` ("one weird trick");
            `None` takes the weights' variant, else `"original"`.
        groups: 1 or 2, the channel groups of conv2, conv4 and conv5; `None` takes
            the weights', else the variant's default (2 for original, 1 for
            torchvision).
        normalization: `"lrn"`, `"batchnorm"` (after every convolution, the
            modern replacement) or `"none"`; `None` takes the weights', else the
            variant's default (`"lrn"` for original, `"none"` for torchvision).
        dropout: the dropout rate of fc6 and fc7, in [0, 1).
        lrn: the constants of the LRN layers: `"paper"` (n=5, k=2, alpha=1e-4,
            beta=0.75), `"caffe"` (Caffe's `bvlc_alexnet`: k=1, alpha=1e-4/5 on
            the raw sum), a dict with keys `size`, `bias`, `alpha`, `beta` (see
            `LocalResponseNormalization`) or `LRNConstants`. `None` takes the
            weights' (see above), else the paper's.
        include_preprocessing: whether the model starts with an
            `ImagePreprocessing` layer, so it takes RGB pixels in [0, 255] instead
            of `preprocess_input(x, variant)`.
        name: the model's name.

    Returns:
        A `keras.Model`.

    Example:

    >>> model = AlexNet(weights=None)
    >>> model.output_shape
    (None, 1000)
    >>> model.count_params()
    60965224
    """
    config = resolve_config(
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        variant=variant,
        groups=groups,
        normalization=normalization,
        dropout=dropout,
        lrn=lrn,
        include_preprocessing=include_preprocessing,
        name=name,
    )
    if input_tensor is None:
        img_input = layers.Input(shape=config.input_shape, name="image")
    elif not keras.backend.is_keras_tensor(input_tensor):
        img_input = layers.Input(
            tensor=input_tensor, shape=config.input_shape, name="image"
        )
    else:
        img_input = input_tensor

    x = img_input
    if config.include_preprocessing:
        constants = config.preprocessing
        x = ImagePreprocessing(
            channel_order=constants.channel_order,
            scale=constants.scale,
            mean=constants.mean,
            std=constants.std,
            name="preprocessing",
        )(x)

    layout = config.layout
    if layout.conv1_padding:  # torchvision pads conv1 by 2; the paper does not.
        x = layers.ZeroPadding2D(layout.conv1_padding, name="conv1_pad")(x)
    # Blocks 1-5, one row each (see LAYOUTS): conv1 11x11/4; conv2 5x5; conv3,
    # conv4 and conv5 3x3. conv2, conv4 and conv5 take `groups` (the paper's two
    # GPUs: 2); conv3 sees every channel. LRN (with normalization="lrn") follows
    # conv1 and conv2, and a 3x3/2 max pool follows conv1, conv2 and conv5.
    for row in layout.rows:
        x = _conv_block(x, row, config)
        if row.pooled:
            name = "pool5" if row.index == "5" else f"pool{row.index}"
            x = MaxPooling2D(3, strides=2, name=name)(x)

    if config.include_top:
        # Classifier: (adaptive pool to 6x6,) flatten, fc6 and fc7 with dropout
        # (after each in the paper, before each in torchvision), predictions.
        if layout.adaptive_pool:
            x = AdaptiveAveragePooling2D(POOL5_SIZE, name="avgpool")(x)
        x = layers.Flatten(name="flatten")(x)
        for index in ("6", "7"):
            if layout.dropout_before_fc:
                x = layers.Dropout(config.dropout, name=f"drop{index}")(x)
            x = layers.Dense(
                FC_UNITS, activation="relu", name=f"fc{index}", **_init(f"fc{index}")
            )(x)
            if not layout.dropout_before_fc:
                x = layers.Dropout(config.dropout, name=f"drop{index}")(x)
        x = layers.Dense(
            config.classes,
            activation=config.classifier_activation,
            name="predictions",
            **_init("predictions"),
        )(x)
    elif config.pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif config.pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    else:
        inputs = img_input
    model = keras.Model(inputs, x, name=config.name)
    if config.weights is not None:
        load_weights(model, config.weights)
    return model


def _conv_block(x: Any, row: ConvRow, config: AlexNetConfig) -> Any:
    """`conv{i}` with its ReLU, or `conv{i}`, `bn{i}`, `relu{i}`; then `norm{i}`."""
    batchnorm = config.normalization == "batchnorm"
    groups = config.groups if row.grouped else 1
    name = f"conv{row.index}"
    # keras-alexnet's Conv2D and MaxPooling2D are Keras' own, saved alike, minus
    # the layout copies Keras' PyTorch backend makes (layers/channels_last.py).
    conv_class = GroupedConv2D if groups > 1 else Conv2D
    x = conv_class(
        row.filters,
        row.kernel_size,
        strides=row.strides,
        padding=row.padding,
        groups=groups,
        activation=None if batchnorm else "relu",
        use_bias=not batchnorm,
        name=name,
        **_init(name, use_bias=not batchnorm),
    )(x)
    channel_axis = -1 if config.data_format == "channels_last" else 1
    if batchnorm:
        x = layers.BatchNormalization(axis=channel_axis, name=f"bn{row.index}")(x)
        x = layers.Activation("relu", name=f"relu{row.index}")(x)
    if config.normalization == "lrn" and row.normalized:
        assert config.lrn is not None  # resolve_config sets it for "lrn"
        x = LocalResponseNormalization(
            **config.lrn.as_dict(), axis=channel_axis, name=f"norm{row.index}"
        )(x)
    return x


def _init(name: str, use_bias: bool = True) -> dict[str, Any]:
    initializers = {"kernel_initializer": keras.initializers.RandomNormal(0.0, 0.01)}
    if use_bias:
        bias = 1.0 if name in _BIAS_ONE_LAYERS else 0.0
        initializers["bias_initializer"] = keras.initializers.Constant(bias)
    return initializers


# -- Resolving the arguments -----------------------------------------------------


def resolve_config(
    *,
    include_top: bool = True,
    weights: Any = "imagenet",
    input_tensor: Any = None,
    input_shape: Any = None,
    pooling: Any = None,
    classes: Any = 1000,
    classifier_activation: Any = "softmax",
    variant: Any = None,
    groups: Any = None,
    normalization: Any = None,
    dropout: Any = 0.5,
    lrn: Any = None,
    include_preprocessing: bool = False,
    name: str = "alexnet",
) -> AlexNetConfig:
    """Checks `AlexNet`'s arguments and resolves them into an `AlexNetConfig`.

    Reads what the weights say about the architecture (without building a model
    or reading their arrays) and raises `ValueError`/`TypeError`, naming the
    argument and the received value, for anything wrong.
    """
    _check_bool("include_top", include_top)
    _check_bool("include_preprocessing", include_preprocessing)
    if variant is not None:
        check_variant(variant)
    if isinstance(weights, str) and weights == "imagenet":
        weights = registry.imagenet_checkpoint(variant or "original")
    resolved_weights, stated, source = _resolve_weights(weights)
    variant = _agree("variant", variant, stated, source) or "original"
    layout = LAYOUTS[variant]
    groups = _agree("groups", _check_groups(groups), stated, source) or layout.groups
    normalization = (
        _agree("normalization", _check_normalization(normalization), stated, source)
        or layout.normalization
    )
    lrn_constants = None
    if normalization == "lrn":
        lrn_constants = (
            _agree("lrn", _check_lrn(lrn), stated, source, show=_lrn_text) or PAPER_LRN
        )
    elif lrn is not None:
        _check_lrn(lrn)
    if pooling not in (None, "avg", "max"):
        raise ValueError(
            f"`pooling` should be None, 'avg' or 'max'. Received: pooling={pooling!r}"
        )
    classes = _check_classes(classes)
    dropout = _check_dropout(dropout)
    if isinstance(resolved_weights, Checkpoint) and include_top and classes != 1000:
        raise ValueError(
            f"If using `weights={resolved_weights.name!r}` with `include_top=True`, "
            f"`classes` should be 1000. Received classes={classes}"
        )
    if resolved_weights is not None and classifier_activation not in (
        None,
        "softmax",
    ):
        raise ValueError(
            "Only `None` and 'softmax' are supported as `classifier_activation` "
            "with pretrained weights. "
            f"Received: classifier_activation={classifier_activation!r}"
        )
    data_format = keras.config.image_data_format()
    input_shape = _check_input_shape(
        input_shape,
        input_tensor,
        include_top,
        layout,
        variant,
        resolved_weights is not None,
        data_format,
    )
    if isinstance(resolved_weights, Checkpoint):
        preprocessing = resolved_weights.preprocessing
    elif stated.get("variant") == "original" and stated.get("lrn") == CAFFE_LRN:
        preprocessing = registry.BVLC_ALEXNET.preprocessing
    else:
        preprocessing = registry.imagenet_checkpoint(variant).preprocessing
    return AlexNetConfig(
        variant=variant,
        layout=layout,
        groups=groups,
        normalization=normalization,
        lrn=lrn_constants,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        dropout=dropout,
        input_shape=input_shape,
        data_format=data_format,
        include_preprocessing=include_preprocessing,
        preprocessing=preprocessing,
        weights=resolved_weights,
        name=name,
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


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` should be True or False. Received: {name}={value!r}")


def _is_integer(value: Any) -> bool:
    # NumPy integers are numbers.Integral; bools are refused as integers.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_groups(groups: Any) -> int | None:
    if groups is None:
        return None
    if not _is_integer(groups) or groups not in (1, 2):
        raise ValueError(
            f"`groups` should be None, 1 or 2. Received: groups={groups!r}"
        )
    return int(groups)


def _check_normalization(normalization: Any) -> str | None:
    if normalization is None:
        return None
    if not isinstance(normalization, str) or normalization not in NORMALIZATIONS:
        raise ValueError(
            f"`normalization` should be None (the variant's default) or one of "
            f"{NORMALIZATIONS}. Received: normalization={normalization!r}"
        )
    return normalization


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


def _check_classes(classes: Any) -> int:
    if not _is_integer(classes) or not 1 <= classes <= MAX_CLASSES:
        raise ValueError(
            f"`classes` should be an integer from 1 to {MAX_CLASSES:,} (the "
            "classifier's kernel is 4096 x classes). "
            f"Received: classes={classes!r}"
        )
    return int(classes)


def _check_dropout(dropout: Any) -> float:
    if (
        isinstance(dropout, bool)
        or not isinstance(dropout, numbers.Real)
        or not 0.0 <= float(dropout) < 1.0
    ):
        raise ValueError(
            f"`dropout` should be a number in [0, 1). Received: dropout={dropout!r}"
        )
    return float(dropout)


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
    layout: Layout,
    variant: str,
    pretrained: bool,
    data_format: str,
) -> tuple[int | None, ...]:
    if input_shape is not None:
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
            raise ValueError(
                "`input_shape` should be a tuple of three integers "
                f"(height, width, channels). Received: input_shape={input_shape!r}"
            )
        if not all(size is None or _is_integer(size) for size in input_shape):
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
        size = layout.default_size if include_top else None
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
    if pretrained and channels != 3:
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
    for size in (height, width):
        if size is None:
            if include_top and not layout.adaptive_pool:
                raise ValueError(
                    "With `include_top=True` the original variant needs a fixed "
                    "input size whose pool5 is 6x6, such as 227. "
                    f"Received: input_shape={input_shape}"
                )
            continue
        if size < minimum:
            raise ValueError(
                f"Input size must be at least {minimum}x{minimum} for "
                f"variant={variant!r}. Received: input_shape={input_shape}"
            )
        if include_top and not layout.adaptive_pool and pool5_size(size) != POOL5_SIZE:
            raise ValueError(
                "With `include_top=True` the original variant needs an input size "
                "whose pool5 is 6x6 (227 to 258 pixels, 227 in the paper). "
                f"Received: input_shape={input_shape}"
            )
    return input_shape
