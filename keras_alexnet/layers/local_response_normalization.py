"""Local response normalization (Krizhevsky et al., 2012, section 3.3)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_alexnet._validation import check_choice, check_float, is_integer, is_number
from keras_alexnet.layers._stateless import build_at_instantiation, cast_integers

# Below float32 the sum of squares overflows: AlexNet's conv1 activations reach
# the thousands on Caffe-preprocessed input, and 1000 ** 2 > float16's 65504.
_LOW_PRECISION = ("float16", "bfloat16")

# The ways the layer can compute its window sum, all equal to float32 rounding.
# "auto" picks one for inference and one for training per backend and device
# (`default_implementations`); "native" is TensorFlow's own kernel, 4-D input only.
IMPLEMENTATIONS = ("auto", "matmul", "slices", "pool", "native")

# The names of the `tf.function`s in which Keras' TensorFlow trainer runs a
# step of `fit`, `evaluate` and `predict` (and their `*_on_batch` forms).
_KERAS_STEP_FUNCTIONS = ("one_step_on_data",)


@keras.saving.register_keras_serializable(package="keras_alexnet")
class LocalResponseNormalization(keras.layers.Layer):
    """Normalizes each activation by the energy of its neighbouring channels.

    For every position and channel `c`:

        outputs[c] = inputs[c] / (bias + alpha * S[c]) ** beta

    where `S[c]` is the sum of `inputs[j] ** 2` over the `size` channels centred
    on `c`, channels beyond the edges counting as zero: the paper's formula with
    `n = size`, `k = bias`. Caffe and PyTorch divide `alpha` by the window size,
    TensorFlow takes a radius (docs/lrn.md converts them). The paper's layer is
    `LocalResponseNormalization(5, 2.0, 1e-4, 0.75)`, Caffe's `bvlc_alexnet`
    `LocalResponseNormalization(5, 1.0, 2e-5, 0.75)`. Every float policy works:
    in float16 and bfloat16 (mixed or not) the squares are taken in float32 (or
    bfloat16, of float32's range): conv1's overflow float16; float64 is summed
    by shifted slices whatever `implementation` says, exact to float64
    rounding. Integer inputs are cast to the policy's dtype. The layer has no
    weights and is built when made.

    Args:
        size: the number of channels in the window, an odd integer >= 1.
        bias: the additive constant `k`, > 0.
        alpha: the scale applied to the raw sum of squares, >= 0.
        beta: the exponent, > 0.
        axis: the channel axis: -1 for `channels_last`, 1 for `channels_first`.
        implementation: how the window sum is computed in float32, every way
            equal to float32 rounding: `"auto"` (the fastest measured for the backend
            and device, docs/lrn.md), `"matmul"` (a banded 0/1 channel matrix),
            `"slices"` (shifted slices), `"pool"` (a 1-D average pool) or
            `"native"` (`tf.nn.local_response_normalization`: TensorFlow and
            4-D inputs only). Saved in the config.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Example:

    >>> import numpy as np
    >>> layer = LocalResponseNormalization(size=5, bias=2.0, alpha=1e-4, beta=0.75)
    >>> layer(np.ones((1, 2, 2, 8), "float32")).shape
    (1, 2, 2, 8)

    Reference:
        - [Krizhevsky, Sutskever and Hinton, ImageNet Classification with Deep
          Convolutional Neural Networks, NIPS 2012](https://papers.nips.cc/paper/4824)
    """

    def __init__(
        self,
        size: int = 5,
        bias: float = 2.0,
        alpha: float = 1e-4,
        beta: float = 0.75,
        axis: int = -1,
        implementation: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not is_integer(size):
            raise TypeError(f"`size` should be an odd integer. Received: size={size!r}")
        if size < 1 or size % 2 == 0:
            raise ValueError(
                f"`size` should be an odd integer >= 1. Received: size={size!r}"
            )
        _check_number("bias", bias, minimum=0.0, inclusive=False)
        _check_number("alpha", alpha, minimum=0.0, inclusive=True)
        _check_number("beta", beta, minimum=0.0, inclusive=False)
        if not is_integer(axis):
            raise TypeError(f"`axis` should be an integer. Received: axis={axis!r}")
        check_choice("implementation", implementation, IMPLEMENTATIONS)
        self.size = int(size)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.axis = int(axis)
        self.implementation = implementation
        self.supports_masking = True
        # The (inference, training) ways of "auto" for inputs of another rank
        # and of rank 4: TensorFlow's kernel takes 4-D inputs only.
        self._auto_ways = (default_implementations(3), default_implementations(4))
        # XLA compiles once per input shape (about 0.1 s): worth it for a
        # model of fixed image size, not when every image has its own
        # (`compute_output_shape` sees a model's free image size).
        self._xla: _XlaFunction | None = None
        if implementation == "auto" and _compiles_with_xla():
            self._xla = _XlaFunction(lambda x: self._compute(x, "slices"))
        self._any_image_size = False
        # Stateless: built now, as Keras' own stateless layers are.
        build_at_instantiation(self)

    def call(self, inputs, training=None):
        rank = self._check_inputs(inputs.shape)
        inputs = cast_integers(self, inputs)
        if (
            self._xla is not None
            and not training
            and not self._any_image_size
            and None not in tuple(inputs.shape)[1:]
            and _in_keras_step_or_eager()
        ):
            return self._xla(inputs)
        if keras.backend.standardize_dtype(inputs.dtype) == "float64":
            # Exact in float64: TensorFlow's kernel has no float64 version, and
            # `ops.matmul` computes float64 in float32 under JAX and PyTorch.
            way = "slices"
        elif self.implementation == "auto":
            inference, training_way = self._auto_ways[rank == 4]
            way = training_way if training else inference
        else:
            way = self.implementation
        return self._compute(inputs, way)

    def _check_inputs(self, input_shape: Any) -> int:
        """Returns the rank of inputs of `input_shape`, or raises ValueError."""
        shape = tuple(input_shape)
        rank = len(shape)
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"`axis` is out of range for inputs of rank {rank}. "
                f"Received: axis={self.axis}, input_shape={shape}"
            )
        if shape[self.axis] is None:
            raise ValueError(
                "The channel axis of the inputs of `LocalResponseNormalization` "
                f"must be defined. Received: input_shape={shape}"
            )
        if self.implementation == "native" and (
            keras.backend.backend() != "tensorflow" or rank != 4
        ):
            raise ValueError(
                "implementation='native' is TensorFlow's kernel: it needs the "
                "TensorFlow backend and 4-D inputs. Received: "
                f"backend={keras.backend.backend()!r}, "
                f"input_shape={shape}, axis={self.axis}"
            )
        return rank

    def _compute(self, inputs, implementation):
        compute_dtype = keras.backend.standardize_dtype(inputs.dtype)
        x = inputs
        rank = len(inputs.shape)
        channel_axis = self.axis % rank
        moved = channel_axis != rank - 1
        if moved:
            x = ops.moveaxis(x, channel_axis, -1)
        if implementation == "matmul" and compute_dtype == "bfloat16":
            outputs = self._bfloat16_by_matmul(x)
        else:
            if compute_dtype in _LOW_PRECISION:
                x = ops.cast(x, "float32")
            outputs = self._full_precision(x, implementation)
        if moved:
            outputs = ops.moveaxis(outputs, -1, channel_axis)
        if compute_dtype in _LOW_PRECISION:
            outputs = ops.cast(outputs, compute_dtype)
        return outputs

    def _full_precision(self, x, implementation):
        # In the dtype of `x`, float32 or float64: every constant is made in it.
        dtype = keras.backend.standardize_dtype(x.dtype)
        if implementation == "native":
            return self._tensorflow_lrn(x)
        if implementation == "matmul" and _torch_without_gradient(x):
            return self._torch_in_place(x)
        squares = ops.square(x)
        if implementation == "matmul":
            band = self._band_matrix(x.shape[-1], dtype, self.alpha)
            scaled_sum = ops.matmul(squares, band)
            denominator = self.bias + scaled_sum
        elif implementation == "pool":
            window_mean = self._mean_by_pooling(squares)
            denominator = self.bias + self.alpha * self.size * window_mean
        else:
            window_sum = self._sum_of_shifted_slices(squares)
            denominator = self.bias + self.alpha * window_sum
        return x * _inverse_power(denominator, self.beta)

    def _band_matrix(self, channels, dtype, value=1.0):
        # Made by device ops rather than from a NumPy array: under PyTorch a
        # host array would be copied to the GPU, and the CPU would wait for it,
        # at every call; compilers fold it into a constant. For the same reason
        # `value` stays a Python number (an operand of the kernel): through
        # `ops.cast` or `ops.multiply` it would become a one-element copy to
        # the GPU, and the CPU would wait for the GPU to drain its queue.
        index = ops.arange(channels)
        near = ops.abs(index[:, None] - index[None, :]) <= self.size // 2
        band = ops.cast(near, dtype)
        return band if value == 1.0 else band * value

    def _bfloat16_by_matmul(self, inputs):
        # bfloat16 has float32's range, so its squares cannot overflow, and every
        # BLAS accumulates a bfloat16 GEMM in float32: only the squares and the
        # window sum are rounded to bfloat16 (at most 0.8 % off in the output
        # against 0.4 % for computing all in float32, docs/performance.md), and
        # the biggest tensors stay half the size. The rest is in float32.
        band = self._band_matrix(inputs.shape[-1], "bfloat16")
        window_sum = ops.cast(ops.matmul(ops.square(inputs), band), "float32")
        x = ops.cast(inputs, "float32")
        return x * _inverse_power(self.bias + self.alpha * window_sum, self.beta)

    def _torch_in_place(self, x):
        # The band matmul with two buffers instead of five: where no gradient
        # is recorded (`predict`, `torch.no_grad`) nothing needs the
        # intermediates, and on CPU each fresh buffer of conv1's activations
        # costs more in page faults than the arithmetic (2.2x as fast, see
        # docs/performance.md).
        import torch

        x = x.contiguous()
        channels = x.shape[-1]
        band = self._band_matrix(
            channels, keras.backend.standardize_dtype(x.dtype), self.alpha
        )
        squares = torch.square(x)
        denominator = torch.addmm(
            # Filled on the device: no copy from the host (and no wait for it).
            squares.new_full((), self.bias),
            squares.view(-1, channels),
            band,
        ).view(x.shape)
        inverse_sqrt = denominator.rsqrt_()  # denominator ** -0.5
        # The squares are spent: their buffer takes the factor.
        if self.beta == 0.75:
            factor = torch.sqrt(inverse_sqrt, out=squares).mul_(inverse_sqrt)
        elif self.beta == 0.5:
            factor = inverse_sqrt
        else:
            factor = torch.pow(inverse_sqrt, 2.0 * self.beta, out=squares)
        return factor.mul_(x)

    def _sum_of_shifted_slices(self, squares):
        radius = self.size // 2
        channels = squares.shape[-1]
        padding = [(0, 0)] * (len(squares.shape) - 1) + [(radius, radius)]
        padded = ops.pad(squares, padding)
        window_sum = padded[..., 0:channels]
        for offset in range(1, self.size):
            window_sum = window_sum + padded[..., offset : offset + channels]
        return window_sum

    def _mean_by_pooling(self, squares):
        radius = self.size // 2
        channels = squares.shape[-1]
        # A 1-D average pool over the channels, seen as a length-C sequence.
        flat = ops.reshape(squares, (-1, channels, 1))
        padded = ops.pad(flat, [(0, 0), (radius, radius), (0, 0)])
        mean = ops.average_pool(
            padded, self.size, strides=1, padding="valid", data_format="channels_last"
        )
        return ops.reshape(mean, ops.shape(squares))

    def _tensorflow_lrn(self, x):
        import tensorflow as tf

        return tf.nn.local_response_normalization(
            x,
            depth_radius=self.size // 2,
            bias=self.bias,
            alpha=self.alpha,
            beta=self.beta,
        )

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        channel_axis = self.axis % self._check_inputs(shape)
        if None in shape[1:channel_axis] + shape[channel_axis + 1 :]:
            self._any_image_size = True  # a model for images of any size
        return shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "size": self.size,
                "bias": self.bias,
                "alpha": self.alpha,
                "beta": self.beta,
                "axis": self.axis,
                "implementation": self.implementation,
            }
        )
        return config


def _inverse_power(x: Any, beta: float) -> Any:
    """Returns `x ** -beta`, exactly as cheap square roots for the usual betas."""
    if beta == 0.75:
        # x ** -0.75 = x ** -0.5 * (x ** -0.5) ** 0.5: two fast roots, no exp/log.
        inv_sqrt = ops.rsqrt(x)
        return inv_sqrt * ops.sqrt(inv_sqrt)
    if beta == 0.5:
        return ops.rsqrt(x)
    if beta == 1.0:
        return 1.0 / x
    # `**` with a Python exponent: `ops.power` would copy it to the device
    # (under PyTorch, a wait for the GPU at every call).
    return x ** (-beta)


class _XlaFunction:
    """A layer's inference computation compiled by XLA, made on first use.

    A plain object, not a layer attribute holding the function: TensorFlow
    tracks the functions set on a layer and would try (and fail) to save them
    with the model.
    """

    def __init__(self, compute: Any) -> None:
        self._compute = compute
        self._function: Any = None

    def __call__(self, inputs: Any) -> Any:
        if self._function is None:
            import tensorflow as tf

            self._function = tf.function(
                self._compute, jit_compile=True, autograph=False
            )
        return self._function(inputs)


def default_implementations(rank: int = 4) -> tuple[str, str]:
    """Returns what `implementation="auto"` runs here: (inference, training).

    Args:
        rank: the rank of the inputs (TensorFlow's kernel takes 4-D only).
    """
    # GPUs run float32 matmuls in TF32 (10-bit mantissa) by default under
    # TensorFlow and JAX, which would cost three digits of the window sum; there
    # the exact sum of shifted slices is used. On CPU, the fastest forward and
    # forward+backward measured in benchmarks/lrn.py (docs/performance.md).
    backend = keras.backend.backend()
    if _accelerator_available():
        if backend == "torch":
            # PyTorch keeps float32 matmuls in float32 unless told otherwise
            # (`torch.backends.cuda.matmul.allow_tf32`), and in eager mode one
            # GEMM beats the dozen kernels of the slices: 1.5x forward and
            # backward on an H100, 2x in bfloat16 (benchmarks/gpu.py).
            return "matmul", "matmul"
        return "slices", "slices"
    if backend == "tensorflow":
        # Uncompiled, TensorFlow's kernel (4-D channels-last input only) is the
        # fastest forward; its gradient kernel was mostly slower than the
        # autodiff of the band matmul. `implementation="auto"` runs inference
        # through XLA-compiled slices instead where it can (`_compiles_with_xla`,
        # `_in_keras_step_or_eager`): 4.5 to 6.4 times TensorFlow's kernel,
        # 1.15 to 1.2 times the whole model. Compiled, the gradient alone was
        # 1.9 to 2.9 times the band matmul's too, yet a whole training step
        # was no faster (1622 against 1609 ms): training stays uncompiled.
        return ("native" if rank == 4 else "matmul"), "matmul"
    if backend == "jax":
        # XLA fuses the slices into one pass, but their gradient is slow.
        return "slices", "pool"
    return "matmul", "matmul"


def _compiles_with_xla() -> bool:
    """Whether `implementation="auto"` compiles the layer with XLA: TF on CPU.

    Keras compiles whole models with XLA on GPUs (`jit_compile="auto"`) but not
    on CPU, where XLA's convolutions trail oneDNN's; the layer alone is worth
    compiling there.
    """
    return keras.backend.backend() == "tensorflow" and not _accelerator_available()


def _torch_without_gradient(x: Any) -> bool:
    """Whether `x` is a PyTorch tensor whose operations autograd will not record."""
    if keras.backend.backend() != "torch":
        return False
    import torch

    return not (torch.is_grad_enabled() and x.requires_grad)


def _in_keras_step_or_eager() -> bool:
    """Whether the layer runs eagerly or in Keras' own evaluate/predict step.

    Elsewhere (`model.export`, `tf.saved_model.save`, a user's `tf.function`)
    the graph may be saved and converted, and converters (tf2onnx, LiteRT) and
    TF Serving cannot run an XLA function: there the layer traces plain
    TensorFlow operations, equal to float32 rounding. Should Keras rename its
    step functions, the layer would only lose speed (tests/test_speed_paths.py
    checks that `predict` and `evaluate` compile it).
    """
    import tensorflow as tf

    if tf.executing_eagerly():
        return True
    name = getattr(tf.compat.v1.get_default_graph(), "name", "")
    return isinstance(name, str) and name.startswith(_KERAS_STEP_FUNCTIONS)


def _accelerator_available() -> bool:
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available() or torch.backends.mps.is_available()
    return False


def _check_number(name: str, value: Any, minimum: float, inclusive: bool) -> None:
    # A TypeError for what is not a number, a ValueError for one out of range.
    if not is_number(value):
        raise TypeError(f"`{name}` should be a number. Received: {name}={value!r}")
    check_float(name, value, minimum=minimum, exclusive_minimum=not inclusive)
