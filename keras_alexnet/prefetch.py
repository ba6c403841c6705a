"""Copying the next batches to the accelerator while the current one trains.

`model.fit` on a GPU waits for each batch to reach the device unless the copy
runs ahead of the step. `prefetch_to_device` does that for any iterable of
batches (NumPy arrays, `tf.data` elements, tuples or dicts of them) on every
backend: a background thread converts each batch to the backend's tensors on
its default device (pinned memory and a side stream under PyTorch with CUDA,
`jax.device_put` under JAX) and keeps `size` of them ready. This module needs
no TensorFlow unless the backend is TensorFlow.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import keras
import numpy as np

_DONE = object()


def prefetch_to_device(batches: Iterable[Any], size: int = 2) -> Iterator[Any]:
    """Yields the batches of `batches` as tensors on the device, `size` ahead.

    Args:
        batches: an iterable of batches, each an array or a tuple, list or dict
            of arrays (NumPy, or tensors of any backend that NumPy can read).
        size: how many converted batches to keep ready, >= 1. Each takes a
            batch's worth of device memory.

    Returns:
        A generator, to pass to `model.fit` (or to iterate); each batch has the
        structure of the input's, with backend tensors on the default device.
        Like any generator it is consumed once: for several epochs, give it a
        repeating source and `steps_per_epoch`, as in
        `model.fit(prefetch_to_device(dataset.repeat()), epochs=10,
        steps_per_epoch=len(dataset))`. Without `steps_per_epoch`, Keras ends
        training after the first pass, warning that the input ran out of data.

    Example:

    >>> import numpy as np
    >>> batches = ((np.zeros((2, 4), "uint8"), np.arange(2)) for _ in range(3))
    >>> [tuple(x.shape) for x, y in prefetch_to_device(batches)]
    [(2, 4), (2, 4), (2, 4)]
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"`size` should be an integer >= 1. Received: size={size!r}")
    if not hasattr(batches, "__iter__"):
        raise TypeError(
            "`batches` should be an iterable of batches. "
            f"Received: batches={type(batches).__name__}"
        )
    return _prefetch(iter(batches), size, _converter())


def _prefetch(
    iterator: Iterator[Any], size: int, convert: Callable[[Any], Any]
) -> Iterator[Any]:
    ready: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in iterator:
                if not put(keras.tree.map_structure(convert, batch)):
                    return
            put(_DONE)
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
            put(error)

    thread = threading.Thread(target=produce, name="prefetch_to_device", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _converter() -> Callable[[Any], Any]:
    """Returns a function taking one array to the backend's default device."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return lambda x: jax.device_put(np.asarray(x), device)
    if backend == "torch":
        import torch
        from keras.src.backend.torch.core import get_device

        device = torch.device(get_device())
        if device.type != "cuda":
            return lambda x: torch.as_tensor(np.asarray(x), device=device)
        stream = torch.cuda.Stream(device)

        def to_cuda(x):
            pinned = torch.from_numpy(np.ascontiguousarray(x)).pin_memory()
            with torch.cuda.stream(stream):
                tensor = pinned.to(device, non_blocking=True)
            # The copy must be finished before the training step reads it, and
            # its memory must not be reused while that step may still run.
            stream.synchronize()
            tensor.record_stream(torch.cuda.default_stream(device))
            return tensor

        return to_cuda
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        name = gpus[0].name if gpus else "/CPU:0"

        def to_tensorflow(x):
            with tf.device(name):
                return tf.identity(x)

        return to_tensorflow
    return lambda x: keras.ops.convert_to_tensor(np.asarray(x))
