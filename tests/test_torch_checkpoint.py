"""Tests of the torch-free checkpoint reader against `torch.load` itself."""

from __future__ import annotations

import builtins
import collections
import os
import pickle
import re
import zipfile

import numpy as np
import pytest
import torch

from keras_alexnet.weights import torch_checkpoint
from keras_alexnet.weights.torch_checkpoint import (
    UnsafeCheckpointError,
    read_torch_state_dict,
)
from tests.bounded import run_reader

FORMATS = {"zip": True, "legacy": False}


def _save(obj, path, fmt):
    torch.save(obj, path, _use_new_zipfile_serialization=FORMATS[fmt])
    return path


def _reference(path):
    """What torch itself reads, as NumPy (bfloat16 widened to float32)."""
    loaded = torch.load(path, weights_only=True)
    out = {}
    for name, value in loaded.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().resolve_neg().resolve_conj()
            if value.dtype == torch.bfloat16:
                value = value.float()
            out[name] = value.numpy()
    return out


def _assert_same(got, expected):
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype, name
        assert got[name].shape == value.shape, name
        np.testing.assert_array_equal(got[name], value, err_msg=name)
        assert got[name].flags.c_contiguous and got[name].flags.writeable


def _module_state_dict():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, groups=1),
        torch.nn.BatchNorm2d(8),  # adds an int64 `num_batches_tracked`
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 4, 3, groups=2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 5),
    )
    model(torch.randn(2, 3, 8, 8))  # updates the BatchNorm running stats
    return model.state_dict()


def _awkward_tensors():
    torch.manual_seed(1)
    base = torch.randn(4, 6)
    return collections.OrderedDict(
        transposed=base.t(),  # non-contiguous, shares base's storage
        offset_view=base[1:, 2:],  # storage offset 8, strides (6, 1)
        strided=base[::2, ::3],  # strides (12, 3)
        expanded=torch.randn(3, 1).expand(3, 4),  # stride 0
        half=torch.randn(5).half(),
        double=torch.randn(2, 3, dtype=torch.float64),
        int64=torch.arange(7),
        int32=torch.arange(4, dtype=torch.int32),
        int8=torch.tensor([-3, 4], dtype=torch.int8),
        uint8=torch.tensor([0, 255], dtype=torch.uint8),
        boolean=torch.tensor([True, False, True]),
        bfloat16=torch.randn(4).bfloat16(),
        complex64=torch.randn(3, dtype=torch.complex64),
        scalar=torch.tensor(2.5),
        empty=torch.zeros(0, 3),
        negative_view=torch._neg_view(torch.randn(3)),  # pickled with metadata
        parameter=torch.nn.Parameter(torch.randn(2, 2)),
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_module_state_dict_matches_torch_load(tmp_path, fmt):
    path = _save(_module_state_dict(), tmp_path / "model.pt", fmt)
    _assert_same(read_torch_state_dict(path), _reference(path))


@pytest.mark.parametrize("fmt", FORMATS)
def test_views_dtypes_and_shared_storages_match_torch_load(tmp_path, fmt):
    path = _save(_awkward_tensors(), tmp_path / "awkward.pt", fmt)
    expected = _reference(path)
    assert set(expected) == set(_awkward_tensors())
    _assert_same(read_torch_state_dict(path), expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_tensor_entries_are_dropped_and_state_dict_is_unwrapped(tmp_path, fmt):
    state_dict = _module_state_dict()
    plain = _save(
        {"weight": torch.ones(2), "epoch": 3, "name": "x", "nested": {"a": 1}},
        tmp_path / "plain.pt",
        fmt,
    )
    assert list(read_torch_state_dict(plain)) == ["weight"]
    wrapped = _save(
        {"state_dict": state_dict, "epoch": 3, "optimizer": {"lr": 0.1}},
        tmp_path / "wrapped.pt",
        fmt,
    )
    expected = {k: v.numpy() for k, v in state_dict.items()}
    _assert_same(read_torch_state_dict(wrapped), expected)


def test_big_endian_zip_matches_torch_load(tmp_path):
    little = _save(
        {"a": torch.randn(3, 4), "b": torch.randn(5).double(), "c": torch.arange(3)},
        tmp_path / "little.pt",
        "zip",
    )
    dtypes = {"0": "<f4", "1": "<f8", "2": "<i8"}  # storage keys in save order
    big = tmp_path / "big.pt"
    with zipfile.ZipFile(little) as src, zipfile.ZipFile(big, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            prefix, _, key = info.filename.partition("/data/")
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif key in dtypes:
                data = np.frombuffer(data, dtypes[key]).byteswap().tobytes()
            dst.writestr(info, data)
    expected = _reference(big)  # torch byte-swaps files marked big-endian
    np.testing.assert_array_equal(expected["c"], [0, 1, 2])
    _assert_same(read_torch_state_dict(big), expected)


class _RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _RunsEval:
    def __init__(self, source):
        self.source = source

    def __reduce__(self):
        return (builtins.eval, (self.source,))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("payload", ["system", "eval"])
def test_hostile_pickle_in_checkpoint_is_refused_without_running(
    tmp_path, fmt, payload
):
    marker = tmp_path / "pwned"
    if payload == "system":
        evil = _RunsShell(f"touch {marker}")
        global_name = f"{os.system.__module__}.system"  # posix.system on Linux
    else:
        evil = _RunsEval(f"open({str(marker)!r}, 'w').close()")
        global_name = "__builtin__.eval"  # protocol 2 keeps Python 2's name
    path = _save({"weight": torch.ones(2), "evil": evil}, tmp_path / "evil.pt", fmt)
    with pytest.raises(UnsafeCheckpointError) as info:
        read_torch_state_dict(path)
    assert global_name in str(info.value)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert not marker.exists()


def test_hostile_plain_pickle_is_refused_and_the_payload_is_real(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_RunsShell(f"touch {marker}"), protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="system"):
        read_torch_state_dict(path)
    assert not marker.exists()
    # Control: the same bytes do run the command when unpickled naively.
    pickle.loads(path.read_bytes())
    assert marker.exists()


def _crafted_zip(path, size, stride, offset, numel=6):
    """A zip checkpoint whose one tensor has the given geometry, made by hand."""

    class Storage:
        pass

    class Tensor:
        pass

    storage = Storage()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is storage:
                return ("storage", torch.FloatStorage, "0", "cpu", numel)
            return None

        def reducer_override(self, obj):
            if isinstance(obj, Tensor):
                args = (storage, offset, size, stride, False, collections.OrderedDict())
                return (torch._utils._rebuild_tensor_v2, args)
            return NotImplemented

    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("crafted/data.pkl", "w") as file:
            Pickler(file, protocol=2).dump({"t": Tensor()})
        archive.writestr("crafted/byteorder", "little")
        archive.writestr("crafted/version", "3\n")
        archive.writestr("crafted/data/0", np.arange(numel, dtype="<f4").tobytes())
    return path


def test_crafted_zip_geometry_is_honoured(tmp_path):
    path = _crafted_zip(tmp_path / "ok.pt", size=(2, 2), stride=(1, 3), offset=1)
    expected = _reference(path)
    np.testing.assert_array_equal(expected["t"], [[1, 4], [2, 5]])
    _assert_same(read_torch_state_dict(path), expected)


@pytest.mark.parametrize(
    ("size", "stride", "offset"),
    [((2, 3), (3, 1), 1), ((7,), (1,), 0), ((2,), (6,), 0), ((2,), (-1,), 1)],
)
def test_tensor_reaching_outside_its_storage_is_refused(tmp_path, size, stride, offset):
    path = _crafted_zip(tmp_path / "oob.pt", size, stride, offset)
    with pytest.raises(ValueError, match="oob.pt"):
        read_torch_state_dict(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_checkpoint_raises_value_error_naming_path(tmp_path, fmt):
    source = _save({"w": torch.randn(64, 64)}, tmp_path / "full.pt", fmt)
    data = source.read_bytes()
    for cut in (len(data) - 100, len(data) // 2, 40):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"cut{cut}.pt"):
            read_torch_state_dict(path)


def test_zip_missing_storage_record_raises(tmp_path):
    source = _save({"w": torch.randn(3)}, tmp_path / "full.pt", "zip")
    path = tmp_path / "missing.pt"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            if "/data/" not in info.filename:
                dst.writestr(info, src.read(info))
    with pytest.raises(ValueError, match="missing.pt.*data/0"):
        read_torch_state_dict(path)


@pytest.mark.parametrize(
    "contents",
    [b"", b"garbage, not a checkpoint", b"PK\x03\x04broken zip", b"\x80\x02K\x05."],
)
def test_garbage_raises_value_error_naming_path(tmp_path, contents):
    path = tmp_path / "garbage.pt"
    path.write_bytes(contents)
    with pytest.raises(ValueError, match="garbage.pt"):
        read_torch_state_dict(path)


def test_zip_of_something_else_raises(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="data.pkl"):
        read_torch_state_dict(path)


def test_non_dict_checkpoint_raises(tmp_path):
    path = _save([torch.ones(2)], tmp_path / "list.pt", "zip")
    with pytest.raises(ValueError, match="list"):
        read_torch_state_dict(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_torch_state_dict(tmp_path / "absent.pt")


def test_pickle_cannot_modify_the_allowed_functions(tmp_path):
    # GLOBAL torch._utils._rebuild_tensor_v2, then BUILD with the slot state
    # {"__defaults__": ({"neg": True},)}: on a plain function this would make
    # every later tensor read negated.
    hostile = tmp_path / "build.pt"
    hostile.write_bytes(
        b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n"
        b"N}X\x0c\x00\x00\x00__defaults__}X\x03\x00\x00\x00neg\x88s\x85s\x86b."
    )
    with pytest.raises(ValueError, match="build.pt.*set the state"):
        read_torch_state_dict(hostile)
    path = _save(_module_state_dict(), tmp_path / "model.pt", "zip")
    _assert_same(read_torch_state_dict(path), _reference(path))


# -- hostile files: bounded time and memory, a ValueError naming the file ------
#
# Each file is built here, small on disk, and read in a subprocess whose address
# space is capped (tests/bounded.py): the reader must refuse it by design, not
# run out of memory. Pickles are written opcode by opcode (see `pickletools`).

_PROTO2 = b"\x80\x02"
_NONE, _DUP, _TUPLE2, _STOP, _BINPERSID = b"N", b"2", b"\x86", b".", b"Q"
_EMPTY_DICT, _SETITEM, _MARK, _TUPLE = b"}", b"s", b"(", b"t"
_REBUILD_V2 = b"ctorch._utils\n_rebuild_tensor_v2\n"
_FLOAT_STORAGE = b"ctorch\nFloatStorage\n"


def _laughs(levels=60):
    """Pushes a "billion laughs" tuple: 2**levels leaves in a few bytes."""
    return _NONE + (_DUP + _TUPLE2) * levels


def _string(text):
    data = text.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


def _int(value):
    return b"J" + value.to_bytes(4, "little", signed=True)


def _tuple(*items):
    return _MARK + b"".join(items) + _TUPLE


def _storage_pid(key="0", numel=6):
    return (
        _tuple(_string("storage"), _FLOAT_STORAGE, _string(key), _string("cpu"))[:-1]
        + _int(numel)
        + _TUPLE
        + _BINPERSID
    )


def _tensor(storage, offset=None, size=None, stride=None, metadata=b"}"):
    offset = _int(0) if offset is None else offset
    size = _tuple(_int(2), _int(3)) if size is None else size
    stride = _tuple(_int(3), _int(1)) if stride is None else stride
    args = _tuple(storage, offset, size, stride, b"\x89", _NONE, metadata)
    return _REBUILD_V2 + args + b"R"


def _state_dict(*items):
    """A dict pickle of `(name, value pickle)` items."""
    body = b"".join(_string(name) + value + _SETITEM for name, value in items)
    return _PROTO2 + _EMPTY_DICT + body + _STOP


def _zip_checkpoint(path, pickled, storages=None):
    if storages is None:
        storages = {"0": np.arange(6, dtype="<f4").tobytes()}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hostile/data.pkl", pickled)
        archive.writestr("hostile/byteorder", "little")
        for key, data in storages.items():
            archive.writestr(f"hostile/data/{key}", data)
    return path


def _legacy_checkpoint(path, pickled, storages=()):
    header = (
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps({"little_endian": True}, protocol=2)
    )
    keys = pickle.dumps([key for key, _ in storages], protocol=2)
    data = b"".join((len(raw) // 4).to_bytes(8, "little") + raw for _, raw in storages)
    path.write_bytes(header + pickled + keys + data)
    return path


def _check_refusal(path, outcome):
    """The outcome of `run_reader`: a designed ValueError, short, naming `path`."""
    assert outcome["error"] == "ValueError", outcome
    assert path.name in outcome["message"], outcome
    assert outcome["message_length"] < 2000, outcome
    assert "MemoryError" not in outcome["message"], outcome
    return outcome["message"]


_STORAGE = _storage_pid()
_HOSTILE_PICKLES = {
    # A "billion laughs" where each error message would format it.
    "laughs_as_persistent_id": (_PROTO2 + _laughs() + _BINPERSID + _STOP, "persistent"),
    "laughs_as_storage_key": (
        _PROTO2
        + _tuple(_string("storage"), _FLOAT_STORAGE, _laughs(), _string("cpu"))[:-1]
        + _int(6)
        + _TUPLE
        + _BINPERSID
        + _STOP,
        "malformed storage id",
    ),
    "laughs_as_size": (
        _state_dict(("t", _tensor(_STORAGE, size=_laughs()))),
        "tensor size",
    ),
    "laughs_as_metadata": (
        _state_dict(
            (
                "t",
                _tensor(
                    _STORAGE,
                    metadata=_EMPTY_DICT
                    + _string("neg")
                    + _laughs()
                    + _SETITEM
                    + _string("x")
                    + _laughs()
                    + _SETITEM
                    + _string("y")
                    + _laughs()
                    + _SETITEM,
                ),
            )
        ),
        "metadata",
    ),
    "laughs_as_dict_key": (
        _PROTO2 + _EMPTY_DICT + _laughs() + _NONE + _SETITEM + _STOP,
        "key",
    ),
    "laughs_in_wrong_call": (
        _PROTO2 + _REBUILD_V2 + _laughs() + b"\x85R" + _STOP,
        "readable",
    ),
    # Memo indices: the C unpickler sizes its memo array by the largest one.
    "huge_memo_put": (
        _PROTO2 + _NONE + b"r\xff\xff\xff\x7f" + _STOP,
        "NoneType|no tensor refers",
    ),
    "huge_memo_get": (_PROTO2 + b"j\xff\xff\xff\x7f" + _STOP, "readable"),
    # Lengths far beyond the file.
    "binbytes8_beyond_file": (
        b"\x80\x04\x8e" + (1 << 60).to_bytes(8, "little") + _STOP,
        "declares",
    ),
    "binunicode8_beyond_file": (
        b"\x80\x04\x8d" + (1 << 40).to_bytes(8, "little") + _STOP,
        "declares",
    ),
    "frame_beyond_file": (
        b"\x80\x04\x95" + (1 << 40).to_bytes(8, "little") + _STOP,
        "declares",
    ),
    "bytearray8": (
        b"\x80\x05\x96" + (1 << 40).to_bytes(8, "little") + _STOP,
        "out-of-band",
    ),
    # Geometry: a stride-0 view of a huge size stays inside its 6-element storage.
    "stride0_huge_size": (
        _state_dict(
            (
                "t",
                _tensor(
                    _STORAGE,
                    size=_tuple(_int(1 << 30), _int(1 << 30)),
                    stride=_tuple(_int(0), _int(0)),
                ),
            )
        ),
        "needs [0-9]+ bytes",
    ),
    "too_many_dimensions": (
        _state_dict(
            (
                "t",
                _tensor(
                    _STORAGE,
                    size=_tuple(*[_int(1)] * 100),
                    stride=_tuple(*[_int(1)] * 100),
                ),
            )
        ),
        "at most 32",
    ),
    "size_beyond_2_62": (
        _state_dict(
            (
                "t",
                _tensor(
                    _STORAGE,
                    size=_tuple(b"\x8a\x09" + b"\x00" * 8 + b"\x01"),
                    stride=_tuple(_int(1)),
                ),
            )
        ),
        "below 2\\*\\*62",
    ),
    "storage_numel_beyond_2_62": (
        _state_dict(
            (
                "t",
                _tensor(
                    _tuple(
                        _string("storage"),
                        _FLOAT_STORAGE,
                        _string("0"),
                        _string("cpu"),
                        b"\x8a\x09" + b"\x00" * 8 + b"\x01",
                    )[:-1]
                    + _TUPLE
                    + _BINPERSID
                ),
            )
        ),
        "malformed storage id",
    ),
}


@pytest.fixture(scope="module")
def hostile_pickle_outcomes(tmp_path_factory):
    """Every hostile pickle in both containers, read in one bounded subprocess."""
    folder = tmp_path_factory.mktemp("hostile")
    storage = [("0", np.arange(6, dtype="<f4").tobytes())]
    paths = {}
    for case, (pickled, _) in _HOSTILE_PICKLES.items():
        paths[case, "zip"] = _zip_checkpoint(folder / f"{case}.zip.pt", pickled)
        paths[case, "legacy"] = _legacy_checkpoint(
            folder / f"{case}.legacy.pt", pickled, storage
        )
    outcomes = run_reader(
        "weights/torch_checkpoint", "read_torch_state_dict", paths.values()
    )
    return {
        key: (path, out)
        for (key, path), out in zip(paths.items(), outcomes, strict=True)
    }


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", _HOSTILE_PICKLES)
def test_hostile_pickle_is_refused_in_bounded_time_and_memory(
    hostile_pickle_outcomes, fmt, case
):
    path, outcome = hostile_pickle_outcomes[case, fmt]
    assert path.stat().st_size < 10_000
    message = _check_refusal(path, outcome)
    assert re.search(_HOSTILE_PICKLES[case][1], message), message


def _patch_declared_size(path, name, size):
    """Sets the uncompressed size the zip's central directory gives `name`."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    at = data.index(b"PK\x01\x02")
    while data[at + 46 : at + 46 + len(encoded)] != encoded:
        at = data.index(b"PK\x01\x02", at + 4)
    data[at + 24 : at + 28] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_zip_records_are_refused_by_their_declared_size(tmp_path):
    pickled = _state_dict(("t", _tensor(_STORAGE)))
    sound = _zip_checkpoint(tmp_path / "sound.pt", pickled)
    np.testing.assert_array_equal(
        read_torch_state_dict(sound)["t"], np.arange(6, dtype="f4").reshape(2, 3)
    )
    paths = []
    for record in ("hostile/data.pkl", "hostile/data/0", "hostile/byteorder"):
        path = tmp_path / f"bomb_{record.replace('/', '_')}.pt"
        path.write_bytes(sound.read_bytes())
        _patch_declared_size(path, record, 0xFFFF_FFF0)  # 4 GiB
        paths.append(path)
    # A record that inflates past its declared size is cut there and fails its CRC.
    grown = tmp_path / "grown.pt"
    _zip_checkpoint(
        grown, pickled, {"0": np.arange(6, dtype="<f4").tobytes() + bytes(1 << 20)}
    )
    _patch_declared_size(grown, "hostile/data/0", 24)
    paths.append(grown)
    outcomes = run_reader("weights/torch_checkpoint", "read_torch_state_dict", paths)
    for path, outcome in zip(paths[:3], outcomes, strict=False):
        assert "4294967280 bytes, more than" in _check_refusal(path, outcome)
    assert "CRC" in _check_refusal(grown, outcomes[3])


def _shared_storage_checkpoint(path, keys, numel, offsets):
    """`keys` tensors viewing one storage of `numel` floats at `offsets`."""
    storage = _storage_pid(numel=numel)
    items = []
    for i in range(keys):
        offset = offsets(i)
        view = _tensor(
            storage,
            offset=_int(offset),
            size=_tuple(_int(numel - offset)),
            stride=_tuple(_int(1)),
        )
        items.append((f"t{i}", view))
    raw = np.arange(numel, dtype="<f4").tobytes()
    return _zip_checkpoint(path, _state_dict(*items), {"0": raw})


def test_one_storage_behind_hundreds_of_keys_is_copied_once(tmp_path):
    numel = 1 << 20  # 4 MiB of floats; 500 copies would be 2 GiB
    path = _shared_storage_checkpoint(tmp_path / "shared.pt", 500, numel, lambda i: 0)
    state_dict = read_torch_state_dict(path)
    assert len(state_dict) == 500
    np.testing.assert_array_equal(state_dict["t499"], np.arange(numel, dtype="f4"))
    assert all(np.shares_memory(state_dict["t0"], v) for v in state_dict.values())
    # Distinct views cannot share one array: their total is checked first.
    distinct = _shared_storage_checkpoint(
        tmp_path / "distinct.pt", 500, numel, lambda i: i
    )
    assert distinct.stat().st_size < 5 << 20
    (outcome,) = run_reader(
        "weights/torch_checkpoint", "read_torch_state_dict", [distinct]
    )
    assert "bytes per byte of file" in _check_refusal(distinct, outcome)


def test_many_storages_are_read_in_linear_time(tmp_path):
    # 30,000 one-element storages took 14 s and 60,000 took 65 s when each
    # storage was looked up in a list of the zip's names.
    count = 30_000
    items, storages = [], {}
    for i in range(count):
        pid = _storage_pid(key=str(i), numel=1)
        one = _tuple(_int(1))
        items.append((f"t{i}", _tensor(pid, size=one, stride=one)))
        storages[str(i)] = np.float32(i).tobytes()
    path = _zip_checkpoint(tmp_path / "many.pt", _state_dict(*items), storages)
    (outcome,) = run_reader(
        "weights/torch_checkpoint", "read_torch_state_dict", [path], timeout=10
    )
    assert outcome["error"] is None, outcome


def test_build_on_an_ordered_dict_cannot_shadow_its_methods(tmp_path):
    # GLOBAL collections.OrderedDict, call it, then BUILD with state
    # {"get": 5, "items": 5} (and again as a (dict, slot dict) pair).
    ordered = b"ccollections\nOrderedDict\n)R"
    state = _EMPTY_DICT + _string("get") + _int(5) + _SETITEM
    state += _string("items") + _int(5) + _SETITEM
    for name, build in {"dict": state, "pair": _NONE + state + _TUPLE2}.items():
        path = tmp_path / f"{name}.pt"
        pickled = _PROTO2 + ordered + _string("w") + _tensor(_STORAGE) + _SETITEM
        pickled += build + b"b" + _STOP
        _zip_checkpoint(path, pickled)
        np.testing.assert_array_equal(
            read_torch_state_dict(path)["w"], np.arange(6, dtype="f4").reshape(2, 3)
        )


def test_pickle_operations_are_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_checkpoint, "_MAX_PICKLE_OPCODES", 1000)
    path = _zip_checkpoint(
        tmp_path / "long.pt", _PROTO2 + (_NONE + b"0") * 1000 + _NONE + _STOP
    )
    with pytest.raises(ValueError, match="long.pt.*more than 1000 operations"):
        read_torch_state_dict(path)


def test_zip_directory_offsets_beyond_any_file_name_the_file(tmp_path):
    # zipfile itself raises "cannot fit 'int' into an offset-sized integer".
    source = _save({"w": torch.ones(3)}, tmp_path / "full.pt", "zip")
    data = bytearray(source.read_bytes())
    end = data.rindex(b"PK\x06\x06")  # zip64 end of central directory record
    data[end + 48 : end + 56] = b"\xff" * 8  # offset of the central directory
    path = tmp_path / "far.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="far.pt"):
        read_torch_state_dict(path)


def test_legacy_version_record_is_not_formatted_whole(tmp_path):
    # The legacy format's second pickle, its protocol version, as billion laughs.
    path = tmp_path / "version.pt"
    path.write_bytes(
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + _PROTO2 + _laughs() + _STOP
    )
    (outcome,) = run_reader(
        "weights/torch_checkpoint", "read_torch_state_dict", [path], timeout=30
    )
    assert "legacy protocol version tuple(" in _check_refusal(path, outcome)


def test_first_round_leftovers_name_the_file_and_the_reason(tmp_path):
    # Each was a misleading or bare error: a damaged zip, "more than the rest
    # of the file holds" for a negative count, a bare IsADirectoryError.
    not_ascii = tmp_path / "byteorder.pt"
    with zipfile.ZipFile(not_ascii, "w") as archive:
        archive.writestr("m/data.pkl", _state_dict(("t", _tensor(_STORAGE))))
        archive.writestr("m/byteorder", b"\xff\xfelittle")
        archive.writestr("m/data/0", np.arange(6, dtype="<f4").tobytes())
    raw = np.arange(6, dtype="<f4").tobytes()
    negative = _legacy_checkpoint(
        tmp_path / "negative.pt", _state_dict(("t", _tensor(_STORAGE))), [("0", raw)]
    )
    data = bytearray(negative.read_bytes())
    count_at = len(data) - len(raw) - 8  # the int64 element count before the bytes
    data[count_at : count_at + 8] = (-5).to_bytes(8, "little", signed=True)
    negative.write_bytes(bytes(data))
    folder = tmp_path / "folder.pth"
    folder.mkdir()
    expected = {
        not_ascii: ("ValueError", r"byte order in bytes that are not text"),
        negative: ("ValueError", r"negative number of elements, -5"),
        folder: ("IsADirectoryError", r"is a folder, not a torch.save checkpoint"),
    }
    outcomes = run_reader(
        "weights/torch_checkpoint", "read_torch_state_dict", list(expected)
    )
    for (path, (error, reason)), outcome in zip(
        expected.items(), outcomes, strict=True
    ):
        assert outcome["error"] == error, outcome
        assert repr(str(path)) in outcome["message"], outcome
        assert re.search(reason, outcome["message"]), outcome
        assert outcome["message_length"] < 500 and outcome["seconds"] < 5, outcome
    assert folder.is_dir() and not os.listdir(folder)
