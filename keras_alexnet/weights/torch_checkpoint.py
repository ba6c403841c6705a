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
import io
import math
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

# Bounds that keep a hostile file from costing unbounded time or memory. A state
# dict's pickle is a few kilobytes per thousand tensors and its tensors hold about
# what the file holds; these leave a wide margin above both.
_MAX_PICKLE_BYTES = 64 << 20
_MAX_PICKLE_OPCODES = 1_500_000  # ~35 per tensor: 40,000 tensors
_MAX_DIMS = 32  # NumPy 1's limit; no weight tensor comes close
_OUTPUT_BYTES_PER_FILE_BYTE = 4
_OUTPUT_BYTES_SLACK = 64 << 20
# Error messages show at most this much of a value read from the file.
_BRIEF_CHARS = 120

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


def _brief(value: Any, depth: int = 2) -> str:
    """A short description of a value read from a file, in bounded time.

    `repr` of an unpickled value does not belong in an error message: a few
    hundred bytes of pickle build a "billion laughs" structure (tuples that
    share one child, nested deep) whose repr has billions of characters.
    """
    if value is None or isinstance(value, bool | float):
        text = repr(value)
    elif isinstance(value, int):
        text = repr(value) if value.bit_length() <= 64 else "<a huge int>"
    elif isinstance(value, str | bytes):
        text = repr(value[:40]) + ("..." if len(value) > 40 else "")
    elif isinstance(value, tuple | list | dict):
        shown = list(value.items() if isinstance(value, dict) else value)[:4]
        if depth == 0:
            shown = []
        parts = [
            ": ".join(_brief(x, depth - 1) for x in item)
            if isinstance(value, dict)
            else _brief(item, depth - 1)
            for item in shown
        ]
        if len(value) > len(shown):
            parts.append(f"... {len(value)} items")
        text = f"{type(value).__name__}({', '.join(parts)})"
    else:
        text = f"<{type(value).__name__}>"
    if len(text) > _BRIEF_CHARS:
        text = text[: _BRIEF_CHARS - 3] + "..."
    return text


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
                f"the bytes of storage {_brief(self.key)} are missing"
            )
        if self.offset + self.numel > data.size:
            raise _UnsupportedPickleOperation(
                f"storage {_brief(self.key)} needs {self.offset + self.numel} "
                f"elements, the file holds {data.size}"
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
        if not _is_index(offset) or len(size) != len(stride):
            raise _UnsupportedPickleOperation(
                f"invalid tensor geometry: offset={_brief(offset)}, "
                f"size={_brief(size)}, stride={_brief(stride)}"
            )
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict) or len(metadata) > 2:
            raise _UnsupportedPickleOperation(
                f"unsupported tensor metadata {_brief(metadata)}"
            )
        metadata = dict(metadata)
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)
        self.negative = bool(metadata.pop("neg", False))
        self.conjugate = bool(metadata.pop("conj", False))
        if metadata:
            raise _UnsupportedPickleOperation(
                f"unsupported tensor metadata {_brief(list(metadata))}"
            )

    def numel(self) -> int:
        return math.prod(self.size)

    def to_numpy(self) -> np.ndarray:
        """Copies the tensor out of its storage, honouring offset and strides."""
        storage = self.storage
        flat = storage.elements()
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
                    f"{_brief(storage.key)}, which holds {flat.size}"
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

    def output_bytes(self) -> int:
        """The bytes `to_numpy` allocates (bfloat16 widens to 4 bytes)."""
        itemsize = 4 if self.storage.bfloat16 else self.storage.dtype.itemsize
        return self.numel() * itemsize

    def geometry(self) -> tuple:
        """What decides the tensor's values: equal geometries give equal arrays."""
        storage = self.storage
        return (
            id(storage.root),
            storage.offset,
            self.offset,
            self.size,
            self.stride,
            self.negative,
            self.conjugate,
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_index(value: Any) -> bool:
    """Whether `value` is an int that fits a tensor size, stride or offset."""
    return _is_int(value) and 0 <= value < 2**62


def _check_int_tuple(value: Any, what: str) -> None:
    if not isinstance(value, tuple | list) or len(value) > _MAX_DIMS:
        raise _UnsupportedPickleOperation(
            f"tensor {what} {_brief(value)} is not a tuple of at most {_MAX_DIMS} "
            "integers"
        )
    if not all(_is_index(v) for v in value):
        raise _UnsupportedPickleOperation(
            f"tensor {what} {_brief(value)} is not non-negative integers below 2**62"
        )


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


class _OrderedDict(collections.OrderedDict):
    """Stands in for `collections.OrderedDict`; ignores the state a pickle sets.

    A state dict pickles its `_metadata` attribute as the BUILD opcode's state;
    nothing here needs it. Setting it would let a pickle set any attribute, such
    as `get` or `items`, shadowing the methods this module calls.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # torch pickles an OrderedDict as a call without arguments, then sets
        # its items one by one, each key checked (see `_check_keys`).
        if args or kwargs:
            raise _UnsupportedPickleOperation("OrderedDict is called with arguments")
        super().__init__()

    def __setstate__(self, state: Any) -> None:
        del state


_ALLOWED_GLOBALS: Mapping[tuple[str, str], Any] = types.MappingProxyType(
    {
        ("collections", "OrderedDict"): _OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _Function(_rebuild_tensor),
        ("torch._utils", "_rebuild_tensor_v2"): _Function(_rebuild_tensor_v2),
        ("torch._utils", "_rebuild_parameter"): _Function(_rebuild_parameter),
        ("torch._utils", "_rebuild_parameter_with_state"): _Function(
            _rebuild_parameter_with_state
        ),
        **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
    }
)


class _BoundedReader:
    """A file whose reads may not ask for more bytes than remain in it.

    A pickle declares the length of each bytes or string it holds; a hostile one
    declares exabytes, which a plain `read(n)` would try to allocate.
    """

    def __init__(self, file: IO[bytes], end: int) -> None:
        self._file = file
        self._end = end

    def read(self, n: int = -1) -> bytes:
        remaining = self._end - self._file.tell()
        if n is None or n < 0:
            n = remaining
        if n > remaining:
            raise _UnsupportedPickleOperation(
                f"the pickle declares {n} bytes where {max(remaining, 0)} remain"
            )
        return self._file.read(n)

    def readline(self) -> bytes:
        return self._file.readline(max(self._end - self._file.tell(), 0))

    def readinto(self, buffer: Any) -> int:
        raise _UnsupportedPickleOperation("the pickle uses out-of-band buffers")


class _RestrictedUnpickler(pickle._Unpickler):
    """Resolves only `_ALLOWED_GLOBALS`; collects the storages it meets.

    It is the pure-Python unpickler: its memo is a dict, where the C
    unpickler's is an array sized by the largest index the pickle names (a
    363-byte file can make it allocate gigabytes). It runs at most
    `_MAX_PICKLE_OPCODES` opcodes, which bounds the objects a pickle can make.
    """

    def __init__(self, file: _BoundedReader, path: str, storages: dict[str, _Storage]):
        super().__init__(file)
        self._path = path
        self._storages = storages
        budget = iter(range(_MAX_PICKLE_OPCODES))
        dispatch: dict[int, Any] = {}
        for code, handler in pickle._Unpickler.dispatch.items():
            handler = _CHECKED_OPCODES.get(bytes([code]), handler)
            dispatch[code] = _counted(handler, budget)
        self.dispatch = dispatch  # type: ignore[misc]  # per instance, on purpose

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise UnsafeCheckpointError(
                f"Refusing to read {self._path!r}: its pickle references the "
                f"global `{module:.100}.{name:.100}`, which a state dict of "
                "tensors never needs. Only tensors, storages and OrderedDict are "
                "allowed; load the file with `torch.load(..., weights_only=True)` "
                "and save its state dict if you trust it."
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise _UnsupportedPickleOperation(
                f"unsupported persistent id {_brief(pid)}; only storages are allowed"
            )
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not (
            isinstance(storage_type, _StorageType)
            and isinstance(key, str)
            and _is_int(numel)
            and _is_index(numel)
        ):
            raise _UnsupportedPickleOperation(f"malformed storage id {_brief(pid)}")
        root = self._storages.get(key)
        if root is None:
            root = self._storages[key] = _Storage(storage_type, key, numel)
        elif root.dtype != storage_type.dtype:
            raise _UnsupportedPickleOperation(
                f"storage {_brief(key)} is used with two dtypes"
            )
        if view is None:
            return root
        # Legacy storage views (written by PyTorch < 1.0): (view_key, offset, numel)
        # in elements of the root storage.
        if not (
            isinstance(view, tuple)
            and len(view) == 3
            and isinstance(view[0], str)
            and _is_index(view[1])
            and _is_index(view[2])
        ):
            raise _UnsupportedPickleOperation(f"malformed storage view {_brief(view)}")
        return _Storage(storage_type, view[0], view[2], root=root, offset=view[1])


def _counted(handler: Any, budget: Any) -> Any:
    def counted(unpickler: Any) -> None:
        if next(budget, None) is None:
            raise _UnsupportedPickleOperation(
                f"the pickle runs more than {_MAX_PICKLE_OPCODES} operations, far "
                "more than a state dict needs"
            )
        handler(unpickler)

    return counted


def _refused_opcode(unpickler: Any) -> None:
    # Protocol 5's out-of-band buffers: a state dict never needs them, and
    # BYTEARRAY8 allocates the length it declares before reading anything.
    raise _UnsupportedPickleOperation("the pickle uses out-of-band buffers")


def _is_flat_key(key: Any) -> bool:
    scalar = (str, bytes, int, float, bool, type(None))
    return isinstance(key, scalar) or (
        isinstance(key, tuple)
        and len(key) <= 8
        and all(isinstance(k, scalar) for k in key)
    )


def _check_keys(keys: Any) -> None:
    # Hashing a "billion laughs" tuple (nested tuples sharing one child) walks
    # every path through it: billions of steps for a few hundred bytes. The keys
    # of a state dict are names and numbers.
    for key in keys:
        if not _is_flat_key(key):
            raise _UnsupportedPickleOperation(
                f"a dict or set key is {_brief(key)}, not a name or number"
            )


def _keys_checked(handler: Any, keys: Any) -> Any:
    def checked(unpickler: Any) -> None:
        _check_keys(keys(unpickler.stack))
        handler(unpickler)

    return checked


# pickle's pure-Python unpickler; typeshed does not declare its `load_*` methods.
_PURE_UNPICKLER: Any = pickle._Unpickler

# After a MARK, the unpickler's `stack` holds exactly the items since the mark.
_CHECKED_OPCODES = {
    pickle.BYTEARRAY8: _refused_opcode,
    pickle.NEXT_BUFFER: _refused_opcode,
    pickle.READONLY_BUFFER: _refused_opcode,
    pickle.SETITEM: _keys_checked(_PURE_UNPICKLER.load_setitem, lambda s: s[-2:-1]),
    pickle.SETITEMS: _keys_checked(_PURE_UNPICKLER.load_setitems, lambda s: s[::2]),
    pickle.DICT: _keys_checked(_PURE_UNPICKLER.load_dict, lambda s: s[::2]),
    pickle.ADDITEMS: _keys_checked(_PURE_UNPICKLER.load_additems, lambda s: s),
    pickle.FROZENSET: _keys_checked(_PURE_UNPICKLER.load_frozenset, lambda s: s),
}


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
    MemoryError,
    RecursionError,
    struct.error,
)


def _unpickle(
    file: IO[bytes], end: int, path: str, storages: dict[str, _Storage]
) -> Any:
    try:
        return _RestrictedUnpickler(_BoundedReader(file, end), path, storages).load()
    except UnsafeCheckpointError:
        raise
    except _MALFORMED_ERRORS as exc:
        # Some messages quote the pickle's bytes; keep them short.
        message = str(exc)[:300]
        raise ValueError(
            f"{path!r} is not a readable torch.save checkpoint: {message}"
        ) from None


class _OutputBudget:
    """How many bytes the arrays read from one file may take together."""

    def __init__(self, path: str, file_size: int) -> None:
        self.path = path
        self.left = _OUTPUT_BYTES_PER_FILE_BYTE * file_size + _OUTPUT_BYTES_SLACK

    def spend(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:
            raise ValueError(
                f"{self.path!r} is not a plausible checkpoint: {what} needs "
                f"{nbytes} bytes, more than the {self.left} bytes left of the "
                f"{_OUTPUT_BYTES_PER_FILE_BYTE} bytes per byte of file (plus "
                f"{_OUTPUT_BYTES_SLACK >> 20} MiB) its tensors may take."
            )
        self.left -= nbytes


def _read_zip(path: str, budget: _OutputBudget) -> Any:
    storages: dict[str, _Storage] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            pickles = [
                n for n in infos if n.endswith("/data.pkl") and n.count("/") == 1
            ]
            if len(pickles) != 1:
                raise ValueError(
                    f"{path!r} is a zip file but not a torch.save checkpoint: "
                    f"expected one '<name>/data.pkl' record, found "
                    f"{_brief(pickles)}."
                )
            prefix = pickles[0][: -len("data.pkl")]

            def read(name: str, limit: int, what: str) -> bytes:
                # Sizes are checked before reading: a record's declared size can
                # be far beyond what the file holds (a zip bomb), and zipfile
                # stops inflating at the declared size.
                size = infos[name].file_size
                if size > limit:
                    raise ValueError(
                        f"{path!r} is not a plausible checkpoint: its record "
                        f"{_brief(name)} inflates to {size} bytes, more than "
                        f"{limit} for {what}."
                    )
                return archive.read(name)

            byteorder = "little"
            if prefix + "byteorder" in infos:
                raw = read(prefix + "byteorder", 16, "a byte order")
                try:
                    byteorder = raw.decode("ascii").strip()
                except UnicodeDecodeError:
                    raise ValueError(
                        f"{path!r} declares its byte order in bytes that are not "
                        f"text, {_brief(raw)}; torch.save writes 'little' or 'big'."
                    ) from None
            if byteorder not in ("little", "big"):
                raise ValueError(
                    f"{path!r} declares an unknown byte order {_brief(byteorder)}; "
                    "torch.save writes 'little' or 'big'."
                )
            contents = read(pickles[0], _MAX_PICKLE_BYTES, "a state dict's pickle")
            obj = _unpickle(io.BytesIO(contents), len(contents), path, storages)
            del contents
            for key, storage in storages.items():
                record = f"{prefix}data/{key}"
                if record not in infos:
                    raise ValueError(
                        f"{path!r} is missing the record {_brief(record)} of "
                        f"storage {_brief(key)}."
                    )
                size = infos[record].file_size
                budget.spend(size, f"storage {_brief(key)}")
                raw = read(record, size, "a storage")
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
        if isinstance(exc, FileNotFoundError | IsADirectoryError):
            raise
        raise ValueError(
            f"{path!r} is a damaged or truncated zip file: {str(exc)[:300]}"
        ) from exc
    return obj


def _frombuffer(
    raw: bytes, dtype: np.dtype, storage: _Storage, path: str
) -> np.ndarray:
    needed = storage.numel * dtype.itemsize
    if len(raw) < needed:
        raise ValueError(
            f"{path!r} is truncated: storage {_brief(storage.key)} needs {needed} "
            f"bytes, the file holds {len(raw)}."
        )
    return np.frombuffer(raw, dtype=dtype, count=len(raw) // dtype.itemsize)


def _read_legacy(path: str, budget: _OutputBudget) -> Any:
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as file:
        file_size = os.fstat(file.fileno()).st_size
        magic = _unpickle(file, file_size, path, {})
        if magic != _LEGACY_MAGIC_NUMBER:
            raise ValueError(
                f"{path!r} is neither a zip nor a legacy torch.save checkpoint "
                "(wrong magic number)."
            )
        version = _unpickle(file, file_size, path, {})
        if version != _LEGACY_PROTOCOL_VERSION:
            raise ValueError(
                f"{path!r} uses legacy protocol version {_brief(version)}; only "
                f"{_LEGACY_PROTOCOL_VERSION} is supported."
            )
        _unpickle(file, file_size, path, {})  # system info: sizes of C types; LE
        obj = _unpickle(file, file_size, path, storages)
        keys = _unpickle(file, file_size, path, {})
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValueError(f"{path!r} has a malformed list of storage keys.")
        for key in keys:
            storage = storages.get(key)
            if storage is None:
                raise ValueError(
                    f"{path!r} holds storage {_brief(key)} that no tensor refers to."
                )
            header = file.read(8)
            if len(header) != 8:
                raise ValueError(f"{path!r} is truncated before storage {_brief(key)}.")
            (numel,) = struct.unpack("<q", header)
            if numel < 0:
                raise ValueError(
                    f"{path!r} is damaged: storage {_brief(key)} declares a "
                    f"negative number of elements, {numel}."
                )
            nbytes = numel * storage.dtype.itemsize
            if nbytes > file_size - file.tell():
                raise ValueError(
                    f"{path!r} is truncated: storage {_brief(key)} declares {numel} "
                    "elements, more than the rest of the file holds."
                )
            if storage.data is not None:
                raise ValueError(f"{path!r} holds storage {_brief(key)} twice.")
            budget.spend(nbytes, f"storage {_brief(key)}")
            storage.numel = numel
            storage.data = _frombuffer(file.read(nbytes), storage.dtype, storage, path)
    return obj


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
        IsADirectoryError: If `path` is a folder.
    """
    path = os.fspath(path)
    _refuse_folder(path)
    with open(path, "rb") as file:
        head = file.read(4)
        file_size = os.fstat(file.fileno()).st_size
    budget = _OutputBudget(path, file_size)
    try:
        if head == _ZIP_MAGIC:
            obj = _read_zip(path, budget)
        elif head[:1] == _PICKLE_PROTO_OPCODE:
            obj = _read_legacy(path, budget)
        else:
            raise ValueError(
                f"{path!r} is not a torch.save checkpoint: it starts with "
                f"{head!r}, neither a zip archive nor a pickle."
            )
        return _tensors(obj, path, budget)
    except UnsafeCheckpointError:
        raise
    except ValueError as exc:
        if path in str(exc):
            raise
        raise _not_plausible(path, exc) from None
    except (OverflowError, MemoryError, *_MALFORMED_ERRORS) as exc:
        # A file damaged where no check expected it (zipfile's own parsing).
        raise _not_plausible(path, exc) from None


def _refuse_folder(path: str) -> None:
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"{path!r} is a folder, not a torch.save checkpoint file."
        )


def _not_plausible(path: str, exc: BaseException) -> ValueError:
    return ValueError(
        f"{path!r} is not a plausible torch.save checkpoint: reading it raised "
        f"{type(exc).__name__} ({str(exc)[:200]})."
    )


def _tensors(obj: Any, path: str, budget: _OutputBudget) -> dict[str, np.ndarray]:
    # dict's own methods, not the object's: nothing in the file can override them.
    if isinstance(obj, dict) and isinstance(dict.get(obj, "state_dict"), dict):
        obj = dict.get(obj, "state_dict")
    if not isinstance(obj, dict):
        raise ValueError(
            f"{path!r} holds a {type(obj).__name__}, not a dict of tensors."
        )
    state_dict = {}
    # Tensors with the same storage and geometry share one array, as they
    # share one storage in torch: a storage named by hundreds of keys is copied
    # once, not hundreds of times.
    arrays: dict[tuple, np.ndarray] = {}
    for name, value in dict.items(obj):
        if not isinstance(value, _Tensor):
            continue
        name = str(name) if isinstance(name, str | int) else _brief(name)
        try:
            geometry = value.geometry()
            if geometry not in arrays:
                budget.spend(value.output_bytes(), f"tensor {_brief(name)}")
                arrays[geometry] = value.to_numpy()
            state_dict[name] = arrays[geometry]
        except _UnsupportedPickleOperation as exc:
            raise ValueError(
                f"{path!r}: cannot read tensor {_brief(name)}: {exc}"
            ) from None
    return state_dict
