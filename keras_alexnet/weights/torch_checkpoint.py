"""A safe reader for `torch.save` checkpoints that needs neither torch nor trust.

`torch.load` unpickles, and unpickling can run any code the file names. This
module reads the same files with a `pickle.Unpickler` that resolves only the
handful of globals a state dict needs, each to a small stand-in defined here, so
a hostile file raises `UnsafeCheckpointError` before anything runs.

Two container formats are read, both written by `torch.save`:

- The zip format (PyTorch >= 1.6): `<name>/data.pkl` holds the pickled object,
  `<name>/data/<key>` the raw bytes of each storage, `<name>/byteorder` says
  "little" or "big" (absent means little).
- The legacy format (`_use_new_zipfile_serialization=False`): a sequence of
  pickles (magic number, protocol version, system info, the object, the sorted
  list of storage keys) followed by each storage as a little-endian int64 element
  count and the raw little-endian bytes.

In both, tensors are pickled as calls to `torch._utils._rebuild_tensor_v2` and
storages as persistent ids `("storage", <storage type>, key, location, numel)`,
plus, in the legacy format, a view element that is `None` since PyTorch 1.0.
The formats are specified only by their implementation,
`torch/serialization.py` (`_save`, `_legacy_save`, `_load`, `_legacy_load`) and
`torch/_utils.py` (`_rebuild_tensor_v2`, `_rebuild_parameter`).
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
import types
import zipfile
import zlib
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

__all__ = ["UnsafeCheckpointError", "read_torch_state_dict"]

_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL_VERSION = 1001
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO_OPCODE = b"\x80"

# The legacy `<dtype>Storage` classes torch still names in pickles, and the
# little-endian NumPy dtype of their elements. bfloat16 is read as raw uint16 bits
# and widened to float32 (exact), because NumPy has no bfloat16.
_STORAGE_DTYPES: Mapping[str, str] = types.MappingProxyType(
    {
        "DoubleStorage": "<f8",
        "FloatStorage": "<f4",
        "HalfStorage": "<f2",
        "BFloat16Storage": "<u2",
        "LongStorage": "<i8",
        "IntStorage": "<i4",
        "ShortStorage": "<i2",
        "CharStorage": "i1",
        "ByteStorage": "u1",
        "BoolStorage": "?",
        "ComplexFloatStorage": "<c8",
        "ComplexDoubleStorage": "<c16",
    }
)


class UnsafeCheckpointError(ValueError):
    """A checkpoint asks for a Python global that a state dict never needs."""


class _UnsupportedPickleOperation(Exception):
    """Raised by the stand-ins for a pickle they cannot accept."""


class _StandIn:
    """Base for the stand-ins: refuses the pickle BUILD opcode (`__setstate__`)."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise _UnsupportedPickleOperation(
            f"the pickle tries to set the state of {type(self).__name__}"
        )


class _StorageType(_StandIn):
    """Stands in for a class such as `torch.FloatStorage`; only a dtype marker."""

    __slots__ = ("bfloat16", "dtype", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])
        self.bfloat16 = name == "BFloat16Storage"


class _Storage(_StandIn):
    """A storage named by a persistent id; its bytes arrive after unpickling."""

    __slots__ = ("bfloat16", "data", "dtype", "key", "numel", "offset", "root")

    def __init__(
        self,
        storage_type: _StorageType,
        key: str,
        numel: int,
        root: _Storage | None = None,
        offset: int = 0,
    ) -> None:
        self.key = key
        self.dtype = storage_type.dtype
        self.bfloat16 = storage_type.bfloat16
        self.numel = numel
        # Legacy storage views (PyTorch < 1.0) are `numel` elements of a root
        # storage starting at `offset`; every other storage is its own root.
        self.root = self if root is None else root
        self.offset = offset
        self.data: np.ndarray | None = None

    def elements(self) -> np.ndarray:
        """Returns the elements of the storage, once its bytes have been read."""
        data = self.root.data
        if data is None:
            raise _UnsupportedPickleOperation(
                f"the bytes of storage {self.key!r} are missing"
            )
        if self.offset + self.numel > data.size:
            raise _UnsupportedPickleOperation(
                f"storage {self.key!r} needs {self.offset + self.numel} elements, "
                f"the file holds {data.size}"
            )
        return data[self.offset : self.offset + self.numel]


class _Tensor(_StandIn):
    """What `_rebuild_tensor_v2` returns: a tensor waiting for its storage."""

    __slots__ = ("negative", "conjugate", "offset", "size", "storage", "stride")

    def __init__(
        self,
        storage: _Storage,
        offset: int,
        size: tuple[int, ...],
        stride: tuple[int, ...],
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(storage, _Storage):
            raise _UnsupportedPickleOperation(
                f"a tensor is rebuilt from a {type(storage).__name__}, not a storage"
            )
        _check_int_tuple(size, "size")
        _check_int_tuple(stride, "stride")
        if not _is_int(offset) or offset < 0 or len(size) != len(stride):
            raise _UnsupportedPickleOperation(
                f"invalid tensor geometry: offset={offset!r}, size={size!r}, "
                f"stride={stride!r}"
            )
        metadata = dict(metadata or {})
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)
        self.negative = bool(metadata.pop("neg", False))
        self.conjugate = bool(metadata.pop("conj", False))
        if metadata:
            raise _UnsupportedPickleOperation(
                f"unsupported tensor metadata {sorted(metadata)}"
            )

    def to_numpy(self) -> np.ndarray:
        """Copies the tensor out of its storage, honouring offset and strides."""
        storage = self.storage
        flat = storage.elements()
        if any(s < 0 for s in self.size) or any(s < 0 for s in self.stride):
            raise _UnsupportedPickleOperation(
                f"negative size or stride: size={self.size}, stride={self.stride}"
            )
        if 0 in self.size:
            array = np.empty(self.size, dtype=flat.dtype)
        else:
            # as_strided does not check bounds, so check them here: the last
            # element the tensor reaches must lie inside the storage.
            last = self.offset + sum(
                (n - 1) * s for n, s in zip(self.size, self.stride, strict=True)
            )
            if last >= flat.size:
                raise _UnsupportedPickleOperation(
                    f"a tensor of size {self.size}, stride {self.stride} and offset "
                    f"{self.offset} reaches element {last} of storage "
                    f"{storage.key!r}, which holds {flat.size}"
                )
            view = np.lib.stride_tricks.as_strided(
                flat[self.offset :],
                shape=self.size,
                strides=tuple(s * flat.itemsize for s in self.stride),
                writeable=False,
            )
            array = np.array(view, dtype=flat.dtype.newbyteorder("="), order="C")
        if storage.bfloat16:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        if self.conjugate:
            array = np.conj(array)
        if self.negative:
            array = np.negative(array)
        return array


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int_tuple(value: Any, what: str) -> None:
    if not isinstance(value, tuple | list) or not all(_is_int(v) for v in value):
        raise _UnsupportedPickleOperation(f"tensor {what} {value!r} is not integers")


def _rebuild_tensor(
    storage: _Storage, storage_offset: int, size: tuple, stride: tuple
) -> _Tensor:
    """Stands in for `torch._utils._rebuild_tensor` (pre-1.0 pickles)."""
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(
    storage: _Storage,
    storage_offset: int,
    size: tuple,
    stride: tuple,
    requires_grad: bool,
    backward_hooks: Any,
    metadata: Mapping[str, Any] | None = None,
) -> _Tensor:
    """Stands in for `torch._utils._rebuild_tensor_v2`."""
    del requires_grad, backward_hooks  # training state, not weights
    return _Tensor(storage, storage_offset, size, stride, metadata)


def _rebuild_parameter(data: _Tensor, requires_grad: bool, backward_hooks: Any) -> Any:
    """Stands in for `torch._utils._rebuild_parameter`: a Parameter is its data."""
    del requires_grad, backward_hooks
    return data


def _rebuild_parameter_with_state(
    data: _Tensor, requires_grad: bool, backward_hooks: Any, state: Any
) -> Any:
    """Stands in for `torch._utils._rebuild_parameter_with_state`."""
    del requires_grad, backward_hooks, state
    return data


class _Function(_StandIn):
    """Wraps a stand-in function so that a pickle cannot BUILD onto it.

    BUILD on a plain function could `setattr(function, "__defaults__", ...)`
    and change how every later file in the process is read.
    """

    __slots__ = ("_function",)

    def __init__(self, function: Any) -> None:
        self._function = function

    def __call__(self, *args: Any) -> Any:
        return self._function(*args)


_ALLOWED_GLOBALS: Mapping[tuple[str, str], Any] = types.MappingProxyType(
    {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _Function(_rebuild_tensor),
        ("torch._utils", "_rebuild_tensor_v2"): _Function(_rebuild_tensor_v2),
        ("torch._utils", "_rebuild_parameter"): _Function(_rebuild_parameter),
        ("torch._utils", "_rebuild_parameter_with_state"): _Function(
            _rebuild_parameter_with_state
        ),
        **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
    }
)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only `_ALLOWED_GLOBALS`; collects the storages it meets."""

    def __init__(self, file: IO[bytes], path: str, storages: dict[str, _Storage]):
        super().__init__(file)
        self._path = path
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise UnsafeCheckpointError(
                f"Refusing to read {self._path!r}: its pickle references the "
                f"global `{module}.{name}`, which a state dict of tensors never "
                "needs. Only tensors, storages and OrderedDict are allowed; load "
                "the file with `torch.load(..., weights_only=True)` and save its "
                "state dict if you trust it."
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise _UnsupportedPickleOperation(
                f"unsupported persistent id {pid!r:.200}; only storages are allowed"
            )
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not (
            isinstance(storage_type, _StorageType)
            and isinstance(key, str)
            and _is_int(numel)
            and numel >= 0
        ):
            raise _UnsupportedPickleOperation(f"malformed storage id {pid!r:.200}")
        root = self._storages.get(key)
        if root is None:
            root = self._storages[key] = _Storage(storage_type, key, numel)
        elif root.dtype != storage_type.dtype:
            raise _UnsupportedPickleOperation(
                f"storage {key!r} is used with two dtypes"
            )
        if view is None:
            return root
        # Legacy storage views (written by PyTorch < 1.0): (view_key, offset, numel)
        # in elements of the root storage.
        if not (
            isinstance(view, tuple)
            and len(view) == 3
            and isinstance(view[0], str)
            and _is_int(view[1])
            and _is_int(view[2])
            and view[1] >= 0
            and view[2] >= 0
        ):
            raise _UnsupportedPickleOperation(f"malformed storage view {view!r:.200}")
        return _Storage(storage_type, view[0], view[2], root=root, offset=view[1])


# What a malformed pickle makes the unpickler or the stand-ins raise.
_MALFORMED_ERRORS = (
    pickle.UnpicklingError,
    _UnsupportedPickleOperation,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    RecursionError,
    struct.error,
)


def _unpickle(file: IO[bytes], path: str, storages: dict[str, _Storage]) -> Any:
    try:
        return _RestrictedUnpickler(file, path, storages).load()
    except UnsafeCheckpointError:
        raise
    except _MALFORMED_ERRORS as exc:
        raise ValueError(
            f"{path!r} is not a readable torch.save checkpoint: {exc}"
        ) from exc


def _read_zip(path: str) -> tuple[Any, dict[str, _Storage]]:
    storages: dict[str, _Storage] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pickles = [
                n for n in names if n.endswith("/data.pkl") and n.count("/") == 1
            ]
            if len(pickles) != 1:
                raise ValueError(
                    f"{path!r} is a zip file but not a torch.save checkpoint: "
                    f"expected one '<name>/data.pkl' record, found {pickles}."
                )
            prefix = pickles[0][: -len("data.pkl")]
            byteorder = "little"
            if prefix + "byteorder" in names:
                byteorder = archive.read(prefix + "byteorder").decode("ascii").strip()
            if byteorder not in ("little", "big"):
                raise ValueError(
                    f"{path!r} declares an unknown byte order {byteorder!r}."
                )
            with archive.open(pickles[0]) as file:
                obj = _unpickle(file, path, storages)
            for key, storage in storages.items():
                record = f"{prefix}data/{key}"
                if record not in names:
                    raise ValueError(
                        f"{path!r} is missing the record {record!r} of storage {key!r}."
                    )
                raw = archive.read(record)
                dtype = storage.dtype
                if byteorder == "big":
                    dtype = dtype.newbyteorder(">")
                storage.data = _frombuffer(raw, dtype, storage, path)
    except (
        zipfile.BadZipFile,
        EOFError,
        OSError,
        UnicodeDecodeError,
        NotImplementedError,
        zlib.error,
    ) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path!r} is a damaged or truncated zip file: {exc}") from exc
    return obj, storages


def _frombuffer(
    raw: bytes, dtype: np.dtype, storage: _Storage, path: str
) -> np.ndarray:
    needed = storage.numel * dtype.itemsize
    if len(raw) < needed:
        raise ValueError(
            f"{path!r} is truncated: storage {storage.key!r} needs {needed} bytes, "
            f"the file holds {len(raw)}."
        )
    return np.frombuffer(raw, dtype=dtype, count=len(raw) // dtype.itemsize)


def _read_legacy(path: str) -> tuple[Any, dict[str, _Storage]]:
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as file:
        file_size = os.fstat(file.fileno()).st_size
        magic = _unpickle(file, path, {})
        if magic != _LEGACY_MAGIC_NUMBER:
            raise ValueError(
                f"{path!r} is neither a zip nor a legacy torch.save checkpoint "
                "(wrong magic number)."
            )
        version = _unpickle(file, path, {})
        if version != _LEGACY_PROTOCOL_VERSION:
            raise ValueError(
                f"{path!r} uses legacy protocol version {version!r}; only "
                f"{_LEGACY_PROTOCOL_VERSION} is supported."
            )
        _unpickle(file, path, {})  # system info: sizes of C types; data is LE
        obj = _unpickle(file, path, storages)
        keys = _unpickle(file, path, {})
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValueError(f"{path!r} has a malformed list of storage keys.")
        for key in keys:
            storage = storages.get(key)
            if storage is None:
                raise ValueError(
                    f"{path!r} holds storage {key!r} that no tensor refers to."
                )
            header = file.read(8)
            if len(header) != 8:
                raise ValueError(f"{path!r} is truncated before storage {key!r}.")
            (numel,) = struct.unpack("<q", header)
            nbytes = numel * storage.dtype.itemsize
            if numel < 0 or nbytes > file_size - file.tell():
                raise ValueError(
                    f"{path!r} is truncated: storage {key!r} declares {numel} "
                    "elements, more than the rest of the file holds."
                )
            storage.numel = numel
            storage.data = _frombuffer(file.read(nbytes), storage.dtype, storage, path)
    return obj, storages


def read_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Reads the tensors of a `torch.save` checkpoint without torch or pickled code.

    Accepts the zip format (PyTorch >= 1.6) and the legacy format. The pickle
    may reference only `collections.OrderedDict`, the tensor and parameter
    rebuild functions of `torch._utils` and the `torch.<dtype>Storage` classes;
    each resolves to a stand-in defined in this module, so nothing from the
    file is ever executed.

    Args:
        path: The checkpoint file.

    Returns:
        The state dict as `{name: array}`, in file order, each array a C-contiguous
        copy in native byte order with the tensor's shape and dtype (bfloat16
        becomes float32). If the saved object is a dict whose `"state_dict"` entry
        is a dict, that entry is read instead. Entries that are not tensors
        (numbers, strings, nested dicts) are left out.

    Raises:
        UnsafeCheckpointError: If the pickle references any other global, such
            as `posix.system` or `builtins.eval`.
        ValueError: If the file is not a `torch.save` checkpoint, is truncated
            or damaged, or does not hold a dict of tensors.
        FileNotFoundError: If `path` does not exist.
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        head = file.read(4)
    if head == _ZIP_MAGIC:
        obj, _ = _read_zip(path)
    elif head[:1] == _PICKLE_PROTO_OPCODE:
        obj, _ = _read_legacy(path)
    else:
        raise ValueError(
            f"{path!r} is not a torch.save checkpoint: it starts with {head!r}, "
            "neither a zip archive nor a pickle."
        )
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(
            f"{path!r} holds a {type(obj).__name__}, not a dict of tensors."
        )
    state_dict = {}
    for name, value in obj.items():
        if not isinstance(value, _Tensor):
            continue
        try:
            state_dict[str(name)] = value.to_numpy()
        except _UnsupportedPickleOperation as exc:
            raise ValueError(f"{path!r}: cannot read tensor {name!r}: {exc}") from exc
    return state_dict
