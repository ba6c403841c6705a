"""Tests of the torch-free checkpoint reader against `torch.load` itself."""

from __future__ import annotations

import builtins
import collections
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from keras_alexnet.weights.torch_checkpoint import (
    UnsafeCheckpointError,
    read_torch_state_dict,
)

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
