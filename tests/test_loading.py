"""weights="imagenet" end to end: download from a loopback server, verify, convert,
cache; failures leave nothing behind; concurrent loads; damaged and hostile files."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import os
import pathlib
import pickle
import socket
import subprocess
import sys
import threading
import time
import types
import warnings

import numpy as np
import pytest
import torch

from keras_alexnet import AlexNet
from keras_alexnet.weights import architecture, download, registry
from keras_alexnet.weights.torch_checkpoint import UnsafeCheckpointError
from tests.backend_utils import to_numpy
from tests.caffe_writer import write_caffemodel
from tests.read_only import make_read_only
from tests.reference_models import (
    torchvision_alexnet,
    torchvision_features,
    torchvision_forward,
)

CHECKPOINT = registry.TORCHVISION_IMAGENET1K_V1


class _Handler(http.server.SimpleHTTPRequestHandler):
    truncate = False

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        if not self.truncate:
            return super().do_GET()
        # Announce the whole file, send half of it, hang up: a broken download.
        path = pathlib.Path(self.translate_path(self.path))
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True


class LoopbackServer:
    """Serves a folder on 127.0.0.1 from a thread, for the duration of a test."""

    def __init__(self, directory: pathlib.Path, truncate: bool = False) -> None:
        handler = type("Handler", (_Handler,), {"truncate": truncate})
        handler = functools.partial(handler, directory=str(directory))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def source_checkpoint(tmp_path_factory):
    """A full-size torchvision checkpoint, named as the real one, and its model."""
    torch.manual_seed(0)
    model = torchvision_alexnet()
    directory = tmp_path_factory.mktemp("origin")
    path = directory / CHECKPOINT.file_name
    torch.save(model.state_dict(), path)
    return model, path


def sha256_prefix(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    return home


def use_checkpoint(monkeypatch, **changes) -> registry.Checkpoint:
    """Points the registry's torchvision entry elsewhere (URL, hash) for a test."""
    checkpoint = dataclasses.replace(CHECKPOINT, **changes)
    checkpoints = dict(registry.CHECKPOINTS, **{checkpoint.name: checkpoint})
    monkeypatch.setattr(registry, "CHECKPOINTS", types.MappingProxyType(checkpoints))
    return checkpoint


def files_in(directory: pathlib.Path) -> list[str]:
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_download_verify_convert_cache_then_offline(
    source_checkpoint, keras_home, monkeypatch
):
    torch_model, path = source_checkpoint
    server = LoopbackServer(path.parent)
    try:
        checkpoint = use_checkpoint(
            monkeypatch,
            url=f"{server.url}/{path.name}",
            file_hash=sha256_prefix(path),
        )
        model = AlexNet(variant="torchvision", weights="imagenet")
    finally:
        server.stop()
    cache = keras_home / "models" / "keras_alexnet"
    converted = pathlib.Path(download.converted_weights_path(checkpoint))
    assert files_in(cache) == sorted(
        [CHECKPOINT.file_name, converted.name, converted.name + ".sha256"]
    )
    assert (cache / (converted.name + ".sha256")).read_text().strip() == (
        hashlib.sha256(converted.read_bytes()).hexdigest()
    )

    x = np.random.default_rng(0).standard_normal((2, 224, 224, 3)).astype("float32")
    logits = torchvision_forward(torch_model, x.transpose(0, 3, 1, 2))
    expected = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    np.testing.assert_allclose(to_numpy(model(x)), expected, rtol=1e-4, atol=1e-6)

    # The server is gone and the source file too: only the conversion is used.
    (cache / CHECKPOINT.file_name).unlink()
    features = AlexNet(variant="torchvision", weights="imagenet", include_top=False)
    expected = torchvision_features(torch_model, x.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(
        to_numpy(features(x)), expected.transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5
    )


def test_mirror_url_and_folder(source_checkpoint, keras_home, monkeypatch):
    _, path = source_checkpoint
    checkpoint = use_checkpoint(
        monkeypatch, url="http://127.0.0.1:9/unreachable", file_hash=sha256_prefix(path)
    )
    server = LoopbackServer(path.parent)
    try:
        monkeypatch.setenv(download.MIRROR_ENV, server.url + "/")
        fetched = download.fetch_checkpoint(checkpoint)
    finally:
        server.stop()
    assert pathlib.Path(fetched).read_bytes() == path.read_bytes()

    os.remove(fetched)
    monkeypatch.setenv(download.MIRROR_ENV, str(path.parent))
    assert pathlib.Path(download.fetch_checkpoint(checkpoint)).read_bytes() == (
        path.read_bytes()
    )


def test_wrong_hash_fails_and_keeps_nothing(source_checkpoint, keras_home, monkeypatch):
    _, path = source_checkpoint
    server = LoopbackServer(path.parent)
    try:
        use_checkpoint(
            monkeypatch, url=f"{server.url}/{path.name}", file_hash="00000000"
        )
        with pytest.raises(download.ChecksumError, match="expected sha256-prefix hash"):
            AlexNet(variant="torchvision", weights="imagenet")
    finally:
        server.stop()
    assert files_in(keras_home / "models" / "keras_alexnet") == []


def test_truncated_download_fails_and_keeps_nothing(
    source_checkpoint, keras_home, monkeypatch
):
    _, path = source_checkpoint
    server = LoopbackServer(path.parent, truncate=True)
    try:
        use_checkpoint(
            monkeypatch, url=f"{server.url}/{path.name}", file_hash=sha256_prefix(path)
        )
        with pytest.raises(download.DownloadError, match="failed"):
            AlexNet(variant="torchvision", weights="imagenet")
    finally:
        server.stop()
    assert files_in(keras_home / "models" / "keras_alexnet") == []


def test_sha1_checkpoints_are_verified(tmp_path, keras_home, monkeypatch):
    # bvlc_alexnet is published with a SHA-1: a mirror copy must match it.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    source = mirror / registry.BVLC_ALEXNET.file_name
    source.write_bytes(b"not really a caffemodel")
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror))
    with pytest.raises(download.ChecksumError, match="expected sha1 hash"):
        download.fetch_checkpoint(registry.BVLC_ALEXNET)
    good = dataclasses.replace(
        registry.BVLC_ALEXNET, file_hash=hashlib.sha1(source.read_bytes()).hexdigest()
    )
    assert pathlib.Path(download.fetch_checkpoint(good)).read_bytes() == (
        source.read_bytes()
    )


CONCURRENT_LOAD = """
import dataclasses, sys, types
import numpy as np
from keras_alexnet import AlexNet
from keras_alexnet.weights import registry
entry = dataclasses.replace(registry.TORCHVISION_IMAGENET1K_V1, file_hash=sys.argv[1])
registry.CHECKPOINTS = types.MappingProxyType(
    dict(registry.CHECKPOINTS, **{entry.name: entry}))
model = AlexNet(variant="torchvision", weights="imagenet", classifier_activation=None)
x = np.linspace(-2, 2, 224 * 224 * 3, dtype="float32").reshape(1, 224, 224, 3)
np.save(sys.argv[2], np.asarray(model.predict_on_batch(x)))
"""


def test_two_processes_loading_at_once_do_not_corrupt_the_cache(
    source_checkpoint, keras_home, tmp_path
):
    torch_model, path = source_checkpoint
    env = {
        **os.environ,
        "KERAS_HOME": str(keras_home),
        download.MIRROR_ENV: str(path.parent),
    }
    outputs = [tmp_path / f"out{i}.npy" for i in range(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_LOAD, sha256_prefix(path), str(out)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outputs
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
    x = np.linspace(-2, 2, 224 * 224 * 3, dtype="float32").reshape(1, 224, 224, 3)
    expected = torchvision_forward(torch_model, x.transpose(0, 3, 1, 2))
    for out in outputs:
        np.testing.assert_allclose(np.load(out), expected, rtol=1e-4, atol=1e-5)
    cache = keras_home / "models" / "keras_alexnet"
    # The source, its conversion and the conversion's hash; no leftovers.
    assert len(files_in(cache)) == 3


def test_damaged_or_poisoned_cached_conversion_is_made_again(
    source_checkpoint, keras_home, monkeypatch
):
    torch_model, path = source_checkpoint
    checkpoint = use_checkpoint(monkeypatch, file_hash=sha256_prefix(path))
    monkeypatch.setenv(download.MIRROR_ENV, str(path.parent))
    AlexNet(variant="torchvision", weights="imagenet", include_top=False)
    converted = pathlib.Path(download.converted_weights_path(checkpoint))
    good = converted.read_bytes()

    # Poisoned: still a valid conversion of the right architecture, but every
    # weight zeroed.
    with np.load(converted) as data:
        zeroed = {key: np.zeros_like(data[key]) for key in data.files}
    with open(converted, "wb") as file:
        np.savez(file, **zeroed)
    assert converted.read_bytes() != good
    x = np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype("float32")
    with pytest.warns(UserWarning, match="does not have the SHA-256.*damaged or"):
        model = AlexNet(variant="torchvision", weights="imagenet", include_top=False)
    expected = torchvision_features(torch_model, x.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(
        to_numpy(model(x)), expected.transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5
    )
    digest = (converted.parent / (converted.name + ".sha256")).read_text().strip()
    assert digest == hashlib.sha256(converted.read_bytes()).hexdigest()


def test_a_folder_where_a_cache_file_belongs_is_reported(
    source_checkpoint, keras_home, monkeypatch
):
    _, path = source_checkpoint
    checkpoint = use_checkpoint(monkeypatch, file_hash=sha256_prefix(path))
    monkeypatch.setenv(download.MIRROR_ENV, str(path.parent))
    cache = keras_home / "models" / "keras_alexnet"
    (cache / CHECKPOINT.file_name).mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match="is a folder, where keras-alexnet"):
        download.fetch_checkpoint(checkpoint)
    (cache / CHECKPOINT.file_name).rmdir()
    converted = pathlib.Path(download.converted_weights_path(checkpoint))
    converted.mkdir()
    with pytest.raises(IsADirectoryError, match="conversion of .*Remove or rename"):
        AlexNet(variant="torchvision", weights="imagenet", include_top=False)
    assert converted.is_dir()  # reported, not removed


def test_stale_temporaries_are_removed_and_fresh_ones_kept(keras_home):
    cache = keras_home / "models" / "keras_alexnet"
    stale_dir, fresh_dir = cache / ".download-stale", cache / ".download-fresh"
    for folder in (stale_dir, fresh_dir):
        folder.mkdir(parents=True)
        (folder / "partial.pth").write_bytes(b"half a download")
    stale_file, fresh_file = cache / ".tmp-stale.weights.h5", cache / ".tmp-new.keras"
    stale_file.write_bytes(b"half a conversion")
    fresh_file.write_bytes(b"a conversion being written")
    kept = cache / "alexnet-owt-7be5be79.pth"
    kept.write_bytes(b"not temporary")
    two_hours_ago = time.time() - 7200
    for stale in (stale_dir / "partial.pth", stale_dir, stale_file, kept):
        os.utime(stale, (two_hours_ago, two_hours_ago))
    download.make_cache_dir()
    assert files_in(cache) == sorted(
        [".download-fresh", ".download-fresh/partial.pth", fresh_file.name, kept.name]
    )


def test_atomic_writes_respect_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        for umask, mode in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
            os.umask(umask)
            path = tmp_path / f"file{umask:o}.keras"
            download.write_atomically(str(path), lambda tmp: pathlib.Path(tmp).touch())
            assert path.stat().st_mode & 0o777 == mode
            # What a plain open() gives, the independent reference.
            plain = tmp_path / f"plain{umask:o}"
            plain.write_bytes(b"")
            assert plain.stat().st_mode & 0o777 == mode
    finally:
        os.umask(previous)


def test_atomic_writes_refuse_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        download.write_atomically(str(tmp_path / "no" / "x.keras"), lambda tmp: None)
    assert not (tmp_path / "no").exists()


def test_checksum_error_on_a_mirror_folder_says_what_to_replace(
    tmp_path, keras_home, monkeypatch
):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    bad = mirror / CHECKPOINT.file_name
    bad.write_bytes(b"a damaged copy")
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror))
    with pytest.raises(download.ChecksumError) as info:
        download.fetch_checkpoint(CHECKPOINT)
    message = str(info.value)
    assert str(bad) in message and "Replace it" in message and CHECKPOINT.url in message
    assert "downloads it anew" not in message
    assert bad.read_bytes() == b"a damaged copy"
    assert files_in(keras_home / "models" / "keras_alexnet") == []


def test_unusable_keras_home_is_named(tmp_path, monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for home in (a_file, a_file / "below"):
        monkeypatch.setenv("KERAS_HOME", str(home))
        with pytest.raises(OSError, match=f"KERAS_HOME={str(home)!r}.*writable"):
            download.fetch_checkpoint(CHECKPOINT)
    # A read-only folder. Root may write anywhere, so where the tests run as
    # root the permission is taken away from os.access's answer instead.
    read_only = tmp_path / "read_only"
    (read_only / "models" / "keras_alexnet").mkdir(parents=True)
    read_only.chmod(0o555)
    (read_only / "models").chmod(0o555)
    (read_only / "models" / "keras_alexnet").chmod(0o555)
    if os.geteuid() == 0:
        monkeypatch.setattr(download.os, "access", lambda path, mode: False)
    monkeypatch.setenv("KERAS_HOME", str(read_only))
    try:
        with pytest.raises(OSError, match="cannot write to.*KERAS_HOME="):
            download.fetch_checkpoint(CHECKPOINT)
    finally:
        for folder in (read_only / "models" / "keras_alexnet", read_only / "models"):
            folder.chmod(0o755)
        read_only.chmod(0o755)


class _Stalling(http.server.BaseHTTPRequestHandler):
    """Sends headers and a little of the body, then nothing."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        self.wfile.write(b"x" * 1000)
        self.wfile.flush()
        self.server.release.wait(30)


@pytest.mark.parametrize("server_kind", ["stalls", "never_answers"])
def test_a_server_that_stalls_or_never_answers_times_out(
    keras_home, monkeypatch, server_kind
):
    monkeypatch.setenv(download.TIMEOUT_ENV, "0.5")
    if server_kind == "stalls":
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stalling)
        server.release = threading.Event()
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.server_address[1]
    else:
        # Listens, so that the connection is made, but never reads nor answers.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
    checkpoint = use_checkpoint(
        monkeypatch, url=f"http://127.0.0.1:{port}/{CHECKPOINT.file_name}"
    )
    start = time.monotonic()
    try:
        with pytest.raises(download.DownloadError, match="timed out.*0.5 s"):
            download.fetch_checkpoint(checkpoint)
    finally:
        if server_kind == "stalls":
            server.release.set()
            server.shutdown()
            server.server_close()
        else:
            listener.close()
    assert time.monotonic() - start < 20  # a hang guard, not a speed target
    assert files_in(keras_home / "models" / "keras_alexnet") == []


def test_download_timeout_setting_is_checked(monkeypatch):
    for text in ("0", "-1", "soon", "inf"):
        monkeypatch.setenv(download.TIMEOUT_ENV, text)
        with pytest.raises(ValueError, match=f"Received: {download.TIMEOUT_ENV}="):
            download.download_timeout()


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_checkpoint_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    hostile = tmp_path / "alexnet.pth"
    torch.save({"features.0.weight": _Exploit(marker)}, hostile, pickle_protocol=2)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        AlexNet(variant="torchvision", weights=str(hostile))
    assert not marker.exists()
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps({"x": _Exploit(marker)}))
    with pytest.raises(ValueError):
        AlexNet(variant="torchvision", weights=str(plain))
    assert not marker.exists()


def test_checkpoint_of_another_architecture_names_layer_and_shapes(source_checkpoint):
    _, path = source_checkpoint
    # A .pth holds torchvision's layout: another variant is refused up front,
    with pytest.raises(
        ValueError, match=r"need variant='torchvision'.*Received: variant='original'"
    ):
        AlexNet(weights=str(path), variant="original")
    # and another grouping when the arrays are compared, naming layer and shapes.
    with pytest.raises(
        ValueError, match=r"Layer 'conv2'.*\(5, 5, 32, 192\).*\(5, 5, 64, 192\)"
    ):
        AlexNet(weights=str(path), groups=2)


def test_unknown_file_type_is_refused(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"PK")
    with pytest.raises(ValueError, match=r"Received: weights='.*weights\.npz'"):
        AlexNet(weights=str(path))


@pytest.mark.parametrize("variant, filters", [("original", 96), ("torchvision", 64)])
def test_file_classes_and_variant_of_a_plain_weights_h5(tmp_path, variant, filters):
    # model.save_weights records no architecture: the class count comes from
    # the last Dense layer's shape, the variant from conv1's filter count. The
    # expected values are those the models are built with.
    from keras_alexnet.runs import models

    model = models.build_classifier(
        7, variant=variant, image_size=67, fc_units=8, dropout=0.0
    )
    assert model.get_layer("conv1").kernel.shape[-1] == filters
    path = os.fspath(tmp_path / "plain.weights.h5")
    model.save_weights(path)
    assert architecture.file_architecture(path) == {}
    assert architecture.file_classes_and_variant(path) == {
        "classes": 7,
        "variant": variant,
    }
    archive = os.fspath(tmp_path / "whole.keras")
    model.save(archive)
    assert architecture.file_classes_and_variant(archive) == {
        "classes": 7,
        "variant": variant,
    }
    headless = AlexNet(weights=None, include_top=False, input_shape=(67, 67, 3))
    headless.save_weights(path)
    assert architecture.file_classes_and_variant(path) == {
        "classes": None,
        "variant": "original",
    }


# -- Read-only caches and the conversion's trust (issue 20) ---------------------


def _tiny_cache(keras_home, monkeypatch, arrays):
    """A cache holding a small stand-in source and its conversion to `arrays`.

    Written with NumPy and hashlib, not the code under test. Returns the
    registry entry (hashed as the source), the cache folder and the conversion.
    """
    cache = keras_home / "models" / "keras_alexnet"
    cache.mkdir(parents=True)
    source = cache / CHECKPOINT.file_name
    source.write_bytes(b"a stand-in for the torchvision checkpoint")
    checkpoint = use_checkpoint(monkeypatch, file_hash=sha256_prefix(source))
    converted = pathlib.Path(download.converted_weights_path(checkpoint))
    _write_conversion(converted, arrays)
    return checkpoint, cache, converted


def _write_conversion(converted, arrays):
    """A conversion and the SHA-256 beside it, as the cache keeps them."""
    with open(converted, "wb") as file:
        np.savez(file, **{f"{name}/0": array for name, array in arrays.items()})
    digest = hashlib.sha256(converted.read_bytes()).hexdigest()
    (converted.parent / (converted.name + ".sha256")).write_text(digest + "\n")


def _state(folder):
    """Every file under `folder` with its bytes and modification time."""
    return {
        str(path): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
    }


def test_a_read_only_cache_holding_what_is_asked_is_only_read(keras_home, monkeypatch):
    kernel = np.arange(6, dtype="float32").reshape(2, 3)
    checkpoint, cache, converted = _tiny_cache(keras_home, monkeypatch, {"fc": kernel})
    undo = make_read_only(cache, monkeypatch)
    before = _state(cache)
    try:
        source = download.fetch_checkpoint(checkpoint)
        weights = download.imagenet_layer_weights(checkpoint)
    finally:
        undo()
    assert source == str(cache / CHECKPOINT.file_name)
    assert list(weights) == ["fc"]
    np.testing.assert_array_equal(weights["fc"][0], kernel)
    assert _state(cache) == before


@pytest.mark.parametrize("missing", ["conversion", "damaged conversion", "source"])
def test_a_read_only_cache_that_must_be_written_names_folder_and_purpose(
    missing, keras_home, monkeypatch
):
    kernel = np.ones((2, 3), "float32")
    checkpoint, cache, converted = _tiny_cache(keras_home, monkeypatch, {"fc": kernel})
    digest = converted.parent / (converted.name + ".sha256")
    if missing == "conversion":
        converted.unlink()
        digest.unlink()
        purpose = "to save the conversion of"
    elif missing == "damaged conversion":
        digest.write_text("0" * 64 + "\n")
        purpose = "to replace the conversion"
    else:
        converted.unlink()
        digest.unlink()
        (cache / CHECKPOINT.file_name).unlink()
        purpose = f"to download {CHECKPOINT.file_name!r}"
    undo = make_read_only(cache, monkeypatch)
    before = _state(cache)
    try:
        with pytest.raises(OSError) as info, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the damaged conversion is named too
            download.imagenet_layer_weights(checkpoint)
    finally:
        undo()
    message = str(info.value)
    assert purpose in message and repr(str(cache)) in message
    assert f"KERAS_HOME={str(keras_home)!r}" in message and "writable" in message
    assert _state(cache) == before


def test_a_conversion_replaced_with_its_digest_is_caught_against_the_source(
    keras_home, monkeypatch
):
    true = {"fc": np.full((2, 3), 0.5, "float32")}
    forged = {"fc": np.full((2, 3), 9.0, "float32")}
    checkpoint, cache, converted = _tiny_cache(keras_home, monkeypatch, forged)
    source = str(cache / CHECKPOINT.file_name)
    # The converter stands in for read_checkpoint (tested on real files above):
    # the source converts to `true`.
    conversions = []

    def convert(path):
        conversions.append(path)
        return {name: [array] for name, array in true.items()}

    monkeypatch.setattr(download, "read_checkpoint", convert)
    # The digest beside it matches: without the setting, the forgery loads
    # (docs/pretrained.md says so).
    monkeypatch.delenv(download.VERIFY_ENV, raising=False)
    np.testing.assert_array_equal(
        download.imagenet_layer_weights(checkpoint)["fc"][0], forged["fc"]
    )
    assert conversions == []
    monkeypatch.setenv(download.VERIFY_ENV, "1")
    with pytest.warns(UserWarning, match="differs from the conversion of the source"):
        weights = download.imagenet_layer_weights(checkpoint)
    np.testing.assert_array_equal(weights["fc"][0], true["fc"])
    assert conversions == [source, source]  # the check, then the new conversion
    digest = (converted.parent / (converted.name + ".sha256")).read_text().strip()
    assert digest == hashlib.sha256(converted.read_bytes()).hexdigest()
    # Now equal: verified again, no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        download.imagenet_layer_weights(checkpoint)


def test_a_checkpoint_that_is_not_alexnet_is_named(tmp_path):
    # The name maps said "the torchvision state dict" or "the Caffe model".
    pth = tmp_path / "small.pth"
    torch.save({"features.0.weight": torch.zeros(2, 3, 1, 1)}, pth)
    caffemodel = tmp_path / "small.caffemodel"
    write_caffemodel(caffemodel, [("conv1", "Convolution", [np.zeros((2, 3, 1, 1))])])
    for path, reason in ((pth, "missing"), (caffemodel, "missing")):
        with pytest.raises(ValueError, match=reason) as info:
            AlexNet(weights=str(path), include_top=False)
        assert str(info.value).startswith(repr(str(path))), info.value


def test_a_path_like_returning_bytes_is_a_type_error_naming_weights(tmp_path):
    path = tmp_path / "alexnet.pth"
    path.write_bytes(b"never read")

    class BytesPath:
        def __fspath__(self):
            return os.fsencode(path)

    with pytest.raises(TypeError, match=r"not bytes\. Received: weights=b'"):
        AlexNet(weights=BytesPath())
