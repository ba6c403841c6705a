"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012) as a Keras 3 functional model.

Two layouts are built from one table:

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
import os
import types
from collections.abc import Mapping
from typing import Any

import keras
from keras import layers

from keras_alexnet.layers import (
    AdaptiveAveragePooling2D,
    GroupedConv2D,
    ImagePreprocessing,
    LocalResponseNormalization,
)
from keras_alexnet.weights import loading, registry

VARIANTS = ("original", "torchvision")
NORMALIZATIONS = ("lrn", "batchnorm", "none")

# The paper's LRN (section 3.3): n=5, k=2, alpha=1e-4 on the raw sum, beta=0.75.
PAPER_LRN = types.MappingProxyType(
    {"size": 5, "bias": 2.0, "alpha": 1e-4, "beta": 0.75}
)
# Caffe's bvlc_alexnet: local_size 5, alpha 1e-4 divided by local_size, k = 1.
CAFFE_LRN = types.MappingProxyType(
    {
        key: registry.BVLC_ALEXNET.architecture[f"lrn_{key}"]
        for key in ("size", "bias", "alpha", "beta")
    }
)
LRN_PRESETS = {"paper": PAPER_LRN, "caffe": CAFFE_LRN}


@dataclasses.dataclass(frozen=True)
class _Layout:
    filters: tuple[int, int, int, int, int]
    conv1_padding: int
    groups: int
    normalization: str
    default_size: int
    adaptive_pool: bool
    dropout_before_fc: bool


_LAYOUTS = {
    "original": _Layout(
        filters=(96, 256, 384, 384, 256),
        conv1_padding=0,
        groups=2,
        normalization="lrn",
        default_size=227,
        adaptive_pool=False,
        dropout_before_fc=False,
    ),
    "torchvision": _Layout(
        filters=(64, 192, 384, 256, 256),
        conv1_padding=2,
        groups=1,
        normalization="none",
        default_size=224,
        adaptive_pool=True,
        dropout_before_fc=True,
    ),
}

POOL5_SIZE = 6
FC_UNITS = 4096
# The paper initialises these layers' biases to 1 "to accelerate the early stages
# of learning by providing the ReLUs with positive inputs", all others to 0.
_BIAS_ONE_LAYERS = ("conv2", "conv4", "conv5", "fc6", "fc7")


def AlexNet(
    include_top: bool = True,
    weights: str | os.PathLike | None = "imagenet",
    input_tensor: Any = None,
    input_shape: tuple[int | None, ...] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    variant: str = "original",
    groups: int | None = None,
    normalization: str | None = None,
    dropout: float = 0.5,
    lrn: str | Mapping[str, float] | None = None,
    include_preprocessing: bool = False,
    name: str = "alexnet",
) -> keras.Model:
    """Instantiates AlexNet, optionally with ImageNet weights.

    Layer names follow the paper and Caffe: `conv1`, `norm1`, `pool1`, `conv2`,
    `norm2`, `pool2`, `conv3`, `conv4`, `conv5`, `pool5`, `flatten`, `fc6`,
    `drop6`, `fc7`, `drop7` and `predictions` (Caffe's `fc8`). Convolutions and
    fully connected layers include their ReLU; with `normalization="batchnorm"`
    each convolution is followed by `bn<i>` and `relu<i>` instead.

    With `weights=None` the initialisation is the paper's: weights from
    N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6 and fc7 and 0 elsewhere, and
    LRN with n=5, k=2, alpha=1e-4, beta=0.75. With `weights="imagenet"` the model
    takes the exact hyperparameters of the checkpoint (for `bvlc_alexnet`, Caffe's
    LRN k=1, alpha=1e-4/5), see `keras_alexnet.weights.registry`.

    Args:
        include_top: whether to include the fully connected layers fc6, fc7 and the
            classifier.
        weights: `None` (the paper's random initialisation), `"imagenet"` (the
            variant's pretrained checkpoint: Caffe `bvlc_alexnet` for
            `"original"`, torchvision `IMAGENET1K_V1` for `"torchvision"`), or the
            path of a `.weights.h5`, `.keras`, `.caffemodel` or PyTorch
            `.pth`/`.pt` file.
        input_tensor: optional Keras tensor (the output of `keras.Input()`) to use
            as the model's input.
        input_shape: optional shape tuple, `(height, width, channels)` (or
            channels first). With the top, the original variant needs a size whose
            pool5 is 6x6 (227 to 258 pixels; 227 is the default) and the
            torchvision variant any size from 63 (224 is the default); without
            it, any size from 67 (original) or 63 (torchvision).
        pooling: with `include_top=False`: `None` for the pool5 feature map,
            `"avg"` or `"max"` for global pooling to a vector.
        classes: the number of classes, with `include_top=True`; must be 1000
            with `weights="imagenet"`.
        classifier_activation: the activation of the `predictions` layer; `None`
            returns logits. With pretrained weights, only `None` or `"softmax"`.
        variant: `"original"` (the paper) or `"torchvision"` ("one weird trick").
        groups: 1 or 2, the channel groups of conv2, conv4 and conv5; `None` takes
            the variant's default (2 for original, 1 for torchvision).
        normalization: `"lrn"`, `"batchnorm"` (after every convolution, the
            modern replacement) or `"none"`; `None` takes the variant's default
            (`"lrn"` for original, `"none"` for torchvision).
        dropout: the dropout rate of fc6 and fc7, in [0, 1).
        lrn: the constants of the LRN layers: `"paper"` (n=5, k=2, alpha=1e-4,
            beta=0.75), `"caffe"` (Caffe's `bvlc_alexnet`: k=1, alpha=1e-4/5 on
            the raw sum), or a dict with keys `size`, `bias`, `alpha`, `beta` (see
            `LocalResponseNormalization`). `None` takes Caffe's with
            `weights="imagenet"` or a `.caffemodel`, else the paper's. LRN has no
            weights, so a weights file cannot carry them: pass `lrn="caffe"` to
            reload a model fine-tuned from the Caffe weights.
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
    _check_bool("include_top", include_top)
    _check_bool("include_preprocessing", include_preprocessing)
    if variant not in VARIANTS:
        raise ValueError(
            f"`variant` should be one of {VARIANTS}. Received: variant={variant!r}"
        )
    layout = _LAYOUTS[variant]
    weights = _check_weights(weights)
    groups = _check_groups(groups, layout)
    normalization = _check_normalization(normalization, layout)
    if pooling not in (None, "avg", "max"):
        raise ValueError(
            f"`pooling` should be None, 'avg' or 'max'. Received: pooling={pooling!r}"
        )
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(
            f"`classes` should be a positive integer. Received: classes={classes!r}"
        )
    _check_dropout(dropout)

    checkpoint = None
    if weights == "imagenet":
        checkpoint = registry.imagenet_checkpoint(variant)
        if include_top and classes != 1000:
            raise ValueError(
                "If using `weights='imagenet'` with `include_top=True`, "
                f"`classes` should be 1000. Received classes={classes}"
            )
        expected = checkpoint.architecture
        if groups != expected["groups"] or normalization != _normalization_name(
            expected["normalization"]
        ):
            raise ValueError(
                f"The ImageNet weights of variant={variant!r} ({checkpoint.name}) "
                f"need groups={expected['groups']} and "
                f"normalization={_normalization_name(expected['normalization'])!r}. "
                f"Received: groups={groups!r}, normalization={normalization!r}"
            )
    lrn = _resolve_lrn(lrn, weights)
    if (
        checkpoint is not None
        and normalization == "lrn"
        and dict(lrn) != dict(CAFFE_LRN)
    ):
        raise ValueError(
            f"The ImageNet weights of variant={variant!r} were trained with Caffe's "
            f"LRN constants {dict(CAFFE_LRN)}. Received: lrn={dict(lrn)}"
        )
    if weights is not None and classifier_activation not in (None, "softmax"):
        raise ValueError(
            "Only `None` and 'softmax' are supported as `classifier_activation` "
            "with pretrained weights. "
            f"Received: classifier_activation={classifier_activation!r}"
        )

    data_format = keras.config.image_data_format()
    input_shape = _check_input_shape(
        input_shape, input_tensor, include_top, variant, weights, data_format
    )
    if input_tensor is None:
        img_input = layers.Input(shape=input_shape, name="image")
    elif not keras.backend.is_keras_tensor(input_tensor):
        img_input = layers.Input(tensor=input_tensor, shape=input_shape, name="image")
    else:
        img_input = input_tensor

    x = img_input
    if include_preprocessing:
        constants = (checkpoint or registry.imagenet_checkpoint(variant)).preprocessing
        x = ImagePreprocessing(
            channel_order=constants.channel_order,
            scale=constants.scale,
            mean=constants.mean,
            std=constants.std,
            name="preprocessing",
        )(x)

    builder = _Builder(normalization, lrn, data_format)
    f1, f2, f3, f4, f5 = layout.filters
    # Block 1: 96 @ 11x11/4 (no padding in the paper, 2 in torchvision).
    if layout.conv1_padding:
        x = layers.ZeroPadding2D(layout.conv1_padding, name="conv1_pad")(x)
    x = builder.conv(x, "1", f1, 11, strides=4, padding="valid")
    x = builder.norm(x, "1")
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    # Block 2: 256 @ 5x5, two groups.
    x = builder.conv(x, "2", f2, 5, groups=groups)
    x = builder.norm(x, "2")
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    # Blocks 3-5: 384 @ 3x3 seeing both groups, then 384 and 256 @ 3x3, two groups.
    x = builder.conv(x, "3", f3, 3)
    x = builder.conv(x, "4", f4, 3, groups=groups)
    x = builder.conv(x, "5", f5, 3, groups=groups)
    x = layers.MaxPooling2D(3, strides=2, name="pool5")(x)

    if include_top:
        if layout.adaptive_pool:
            x = AdaptiveAveragePooling2D(POOL5_SIZE, name="avgpool")(x)
        x = layers.Flatten(name="flatten")(x)
        for index in ("6", "7"):
            if layout.dropout_before_fc:
                x = layers.Dropout(dropout, name=f"drop{index}")(x)
            x = layers.Dense(
                FC_UNITS, activation="relu", name=f"fc{index}", **_init(f"fc{index}")
            )(x)
            if not layout.dropout_before_fc:
                x = layers.Dropout(dropout, name=f"drop{index}")(x)
        x = layers.Dense(
            classes,
            activation=classifier_activation,
            name="predictions",
            **_init("predictions"),
        )(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    else:
        inputs = img_input
    model = keras.Model(inputs, x, name=name)

    if weights is not None:
        loading.load_weights(
            model,
            weights,
            checkpoint=checkpoint,
            build_full_model=lambda: AlexNet(
                weights=None,
                variant=variant,
                groups=groups,
                normalization=normalization,
                name=f"{variant}_full",
            ),
        )
    return model


class _Builder:
    """Adds the convolutions and normalizations of one configuration."""

    def __init__(
        self, normalization: str, lrn: Mapping[str, Any], data_format: str
    ) -> None:
        self.normalization = normalization
        self.lrn = lrn
        self.channel_axis = -1 if data_format == "channels_last" else 1

    def conv(self, x, index, filters, kernel_size, strides=1, padding="same", groups=1):
        batchnorm = self.normalization == "batchnorm"
        name = f"conv{index}"
        conv_class = GroupedConv2D if groups > 1 else layers.Conv2D
        x = conv_class(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            groups=groups,
            activation=None if batchnorm else "relu",
            use_bias=not batchnorm,
            name=name,
            **_init(name, use_bias=not batchnorm),
        )(x)
        if batchnorm:
            x = layers.BatchNormalization(axis=self.channel_axis, name=f"bn{index}")(x)
            x = layers.Activation("relu", name=f"relu{index}")(x)
        return x

    def norm(self, x, index):
        if self.normalization != "lrn":
            return x
        return LocalResponseNormalization(
            **self.lrn, axis=self.channel_axis, name=f"norm{index}"
        )(x)


def _init(name: str, use_bias: bool = True) -> dict[str, Any]:
    initializers = {"kernel_initializer": keras.initializers.RandomNormal(0.0, 0.01)}
    if use_bias:
        bias = 1.0 if name in _BIAS_ONE_LAYERS else 0.0
        initializers["bias_initializer"] = keras.initializers.Constant(bias)
    return initializers


def _normalization_name(normalization: str | None) -> str:
    return "none" if normalization is None else normalization


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` should be True or False. Received: {name}={value!r}")


def _check_weights(weights: Any) -> str | None:
    if weights is None or weights == "imagenet":
        return weights
    if isinstance(weights, (str, os.PathLike)) and os.path.exists(weights):
        return os.fspath(weights)
    raise ValueError(
        "The `weights` argument should be either `None` (random initialization), "
        "'imagenet' (pre-training on ImageNet), or the path to the weights file to "
        f"be loaded. Received: weights={weights!r}"
    )


def _check_groups(groups: Any, layout: _Layout) -> int:
    if groups is None:
        return layout.groups
    if groups not in (1, 2) or isinstance(groups, bool):
        raise ValueError(
            f"`groups` should be None, 1 or 2. Received: groups={groups!r}"
        )
    return int(groups)


def _check_normalization(normalization: Any, layout: _Layout) -> str:
    if normalization is None:
        return layout.normalization
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"`normalization` should be None (the variant's default) or one of "
            f"{NORMALIZATIONS}. Received: normalization={normalization!r}"
        )
    return normalization


def _resolve_lrn(lrn: Any, weights: str | None) -> Mapping[str, float]:
    if lrn is None:
        from_caffe = weights == "imagenet" or (
            weights is not None and weights.lower().endswith(".caffemodel")
        )
        return CAFFE_LRN if from_caffe else PAPER_LRN
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
    return dict(lrn)


def _check_dropout(dropout: Any) -> None:
    if (
        isinstance(dropout, bool)
        or not isinstance(dropout, (int, float))
        or not 0.0 <= dropout < 1.0
    ):
        raise ValueError(
            f"`dropout` should be a number in [0, 1). Received: dropout={dropout!r}"
        )


def pool5_size(image_size: int, variant: str = "original") -> int:
    """Returns the height (or width) of pool5 for an input of `image_size` pixels.

    Zero or less means the input is too small for the network.
    """
    padding = _LAYOUTS[variant].conv1_padding
    size = (image_size + 2 * padding - 11) // 4 + 1  # conv1
    for _ in range(3):  # pool1, pool2 and pool5; conv2-5 keep the size.
        size = (size - 3) // 2 + 1
    return size


def minimum_input_size(variant: str = "original") -> int:
    """Returns the smallest input height or width the convolutional base accepts."""
    size = 11 - 2 * _LAYOUTS[variant].conv1_padding
    while pool5_size(size, variant) < 1:
        size += 1
    return size


def _check_input_shape(
    input_shape: Any,
    input_tensor: Any,
    include_top: bool,
    variant: str,
    weights: str | None,
    data_format: str,
) -> tuple[int | None, ...]:
    layout = _LAYOUTS[variant]
    if input_shape is None and input_tensor is not None:
        try:
            input_shape = tuple(input_tensor.shape[1:])
        except (AttributeError, TypeError) as error:
            raise ValueError(
                "`input_tensor` should be a tensor with a shape. "
                f"Received: input_tensor={input_tensor!r}"
            ) from error
    if input_shape is None:
        size = layout.default_size if include_top else None
        if data_format == "channels_first":
            return (3, size, size)
        return (size, size, 3)

    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(
            "`input_shape` should be a tuple of three integers "
            f"(height, width, channels). Received: input_shape={input_shape!r}"
        )
    input_shape = tuple(input_shape)
    if data_format == "channels_first":
        channels, height, width = input_shape
    else:
        height, width, channels = input_shape
    if weights is not None and channels != 3:
        raise ValueError(
            "Pretrained weights need 3 input channels. "
            f"Received: input_shape={input_shape}"
        )
    if not isinstance(channels, int) or channels < 1:
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
        if not isinstance(size, int) or size < minimum:
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
