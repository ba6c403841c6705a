"""The AlexNet builder: architecture, the keras.applications contract, training."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_alexnet import AlexNet, GroupedConv2D, LocalResponseNormalization
from keras_alexnet.alexnet import resolve_config
from tests.backend_utils import to_numpy

# Published counts: the paper's network (REFERENCE.md) and torchvision's docs.
PARAMS = {
    ("original", 2): 60_965_224,
    ("original", 1): 62_378_344,
    ("torchvision", 1): 61_100_840,
}


def closed_form_param_count(filters, groups, normalization, classes=1000, top=True):
    """Counts parameters from the layer table alone, independently of Keras."""
    kernels = [
        (11, 3),
        (5, filters[0]),
        (3, filters[1]),
        (3, filters[2]),
        (3, filters[3]),
    ]
    grouped = [False, True, False, True, True]
    total = 0
    for (size, fan_in), out, is_grouped in zip(kernels, filters, grouped, strict=True):
        fan_in //= groups if is_grouped else 1
        total += size * size * fan_in * out
        total += 4 * out if normalization == "batchnorm" else out
    if top:
        total += (6 * 6 * filters[4] + 1) * 4096 + (4096 + 1) * 4096
        total += (4096 + 1) * classes
    return total


# Small models (67 px, no top) where the full size is not the point.
SMALL = {"include_top": False, "input_shape": (67, 67, 3)}

FILTERS = {
    "original": (96, 256, 384, 384, 256),
    "torchvision": (64, 192, 384, 256, 256),
}


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "groups"), list(PARAMS))
def test_parameter_counts_are_the_published_ones(variant, groups):
    model = AlexNet(weights=None, variant=variant, groups=groups)
    assert model.count_params() == PARAMS[(variant, groups)]


@pytest.mark.parametrize(
    ("variant", "groups", "normalization", "include_top", "pooling"),
    [
        # With the top, fc6 to fc8 hold 58 million weights: a full-size check.
        pytest.param(*combo, marks=[pytest.mark.slow] if combo[3] else [])
        for combo in itertools.product(
            ("original", "torchvision"),
            (1, 2),
            ("lrn", "batchnorm", "none"),
            (True, False),
            (None, "avg", "max"),
        )
        if combo[3] is False or combo[4] is None
    ],
)
def test_output_shapes_and_counts_of_every_combination(
    variant, groups, normalization, include_top, pooling
):
    model = AlexNet(
        weights=None,
        variant=variant,
        groups=groups,
        normalization=normalization,
        include_top=include_top,
        pooling=pooling,
        input_shape=(227, 227, 3) if variant == "original" else (224, 224, 3),
        classes=17,
    )
    assert model.get_layer("pool5").output.shape == (None, 6, 6, FILTERS[variant][4])
    expected_shape = {None: (None, 6, 6, 256), "avg": (None, 256), "max": (None, 256)}
    assert model.output_shape == (
        (None, 17) if include_top else expected_shape[pooling]
    )
    assert model.count_params() == closed_form_param_count(
        FILTERS[variant], groups, normalization, classes=17, top=include_top
    )
    names = {layer.name for layer in model.layers}
    assert {f"conv{i}" for i in range(1, 6)} | {"pool1", "pool2", "pool5"} <= names
    assert ({"norm1", "norm2"} <= names) == (normalization == "lrn")
    assert ({"bn1", "bn5"} <= names) == (normalization == "batchnorm")
    if include_top:
        assert {"flatten", "fc6", "drop6", "fc7", "drop7", "predictions"} <= names
    for name in ("conv2", "conv4", "conv5"):
        assert model.get_layer(name).groups == groups
    assert model.get_layer("conv3").groups == 1


@pytest.mark.slow
def test_original_layer_table_matches_the_paper():
    model = AlexNet(weights=None)
    shapes = {
        layer.name: layer.output.shape[1:]
        for layer in model.layers
        if layer.name in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "pool5")
    }
    assert shapes == {
        "conv1": (55, 55, 96),
        "pool1": (27, 27, 96),
        "conv2": (27, 27, 256),
        "pool2": (13, 13, 256),
        "conv3": (13, 13, 384),
        "conv4": (13, 13, 384),
        "pool5": (6, 6, 256),
    }
    assert model.get_layer("conv2").kernel.shape == (5, 5, 48, 256)
    assert model.get_layer("conv4").kernel.shape == (3, 3, 192, 384)
    assert model.get_layer("conv5").kernel.shape == (3, 3, 192, 256)
    assert isinstance(model.get_layer("conv2"), GroupedConv2D)
    assert model.get_layer("fc6").kernel.shape == (9216, 4096)


@pytest.mark.slow
def test_random_initialisation_is_the_papers():
    model = AlexNet(weights=None)
    for name in (
        "conv1",
        "conv2",
        "conv3",
        "conv4",
        "conv5",
        "fc6",
        "fc7",
        "predictions",
    ):
        kernel, bias = (to_numpy(w) for w in model.get_layer(name).weights)
        assert abs(kernel.mean()) < 1e-3
        # A sample standard deviation over >= 34,848 draws lies within 2 % of 0.01.
        assert kernel.std() == pytest.approx(0.01, rel=0.02)
        expected_bias = (
            1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        )
        np.testing.assert_array_equal(bias, expected_bias)
    for name in ("norm1", "norm2"):
        layer = model.get_layer(name)
        assert isinstance(layer, LocalResponseNormalization)
        assert (layer.size, layer.bias, layer.alpha, layer.beta) == (5, 2.0, 1e-4, 0.75)


def test_he_initialisation_is_seeded_he_normal_and_glorot_uniform():
    def build(seed):
        return AlexNet(
            weights=None,
            input_shape=(67, 67, 3),
            fc_units=256,
            classes=300,
            initialization="he",
            seed=seed,
        )

    model = build(seed=3)
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"):
        kernel, bias = (to_numpy(w) for w in model.get_layer(name).weights)
        fan_in = np.prod(kernel.shape[:-1])  # grouped: one group's inputs
        # Not truncated: about 0.3 % of draws lie beyond 3 standard deviations.
        assert kernel.std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.05)
        assert np.abs(kernel).max() > 3 * np.sqrt(2 / fan_in)
        assert not bias.any()
    kernel = to_numpy(model.get_layer("predictions").kernel)
    limit = np.sqrt(6 / (256 + 300))
    assert np.abs(kernel).max() <= limit
    assert kernel.std() == pytest.approx(limit / np.sqrt(3), rel=0.05)
    # Preprocessed as bvlc_alexnet (Caffe: spread 255 * 0.226), then scaled.
    assert model.get_layer("input_scale").scale == pytest.approx(1 / (255 * 0.226))
    # The seed fixes every draw, and each layer draws its own.
    again = build(seed=3)
    other = build(seed=4)
    for mine, same, different in zip(
        model.weights, again.weights, other.weights, strict=True
    ):
        np.testing.assert_array_equal(to_numpy(mine), to_numpy(same))
        if "kernel" in mine.path:
            assert not np.array_equal(to_numpy(mine), to_numpy(different))
    conv3, conv4 = (to_numpy(model.get_layer(n).kernel) for n in ("conv3", "conv4"))
    # Same-seeded draws would start alike whatever the shape.
    assert not np.allclose(
        conv3.ravel()[:100] / conv3.std(), conv4.ravel()[:100] / conv4.std()
    )


@pytest.mark.slow
def test_torchvision_layout_details():
    model = AlexNet(weights=None, variant="torchvision")
    assert model.input_shape == (None, 224, 224, 3)
    assert model.get_layer("conv1_pad").padding == ((2, 2), (2, 2))
    assert model.get_layer("conv1").output.shape == (None, 55, 55, 64)
    order = [layer.name for layer in model.layers]
    # torchvision: dropout before fc6 and fc7, adaptive pooling before flatten.
    assert order.index("avgpool") < order.index("flatten")
    assert order.index("drop6") < order.index("fc6") < order.index("drop7")
    assert order.index("drop7") < order.index("fc7")


@pytest.mark.slow
@pytest.mark.parametrize("size", [63, 100, 224, 301])
def test_torchvision_variant_takes_any_input_from_63(size):
    model = AlexNet(
        weights=None, variant="torchvision", input_shape=(size, size + 5, 3)
    )
    assert model.output_shape == (None, 1000)


def test_original_with_top_flattens_pool5_whatever_its_size():
    # fc6 takes pool5 flattened: 6x6x256 from 227 to 258 pixels, 5x5 at 226,
    # 7x7 at 259, 1x1 at 67 (the smallest input).
    for size, pool5 in ((67, 1), (226, 5), (227, 6), (258, 6), (259, 7)):
        model = AlexNet(weights=None, input_shape=(size, size, 3), fc_units=8)
        assert model.output_shape == (None, 1000)
        assert model.get_layer("fc6").kernel.shape == (pool5 * pool5 * 256, 8)
    # A checkpoint's top needs its 6x6 pool5 (refused before any download).
    for size in (226, 259):
        with pytest.raises(ValueError, match=r"pool5 is 6x6.*Received: input_shape"):
            AlexNet(weights="imagenet", input_shape=(size, size, 3))


def test_without_top_any_size_that_survives_the_network():
    model = AlexNet(weights=None, include_top=False, input_shape=(67, 80, 3))
    assert model.output_shape == (None, 1, 1, 256)
    model = AlexNet(weights=None, include_top=False)
    assert model.input_shape == (None, None, None, 3)
    with pytest.raises(ValueError, match=r"at least 67x67.*Received: input_shape"):
        AlexNet(weights=None, include_top=False, input_shape=(66, 100, 3))


def test_input_tensor_is_used_as_the_input():
    tensor = keras.Input((67, 67, 3), name="photo")
    model = AlexNet(weights=None, input_tensor=tensor, include_top=False)
    assert model.inputs[0] is tensor
    assert model.output_shape == (None, 1, 1, 256)


def test_include_preprocessing_takes_raw_pixels(rng):
    from keras_alexnet import preprocess_input

    x = rng.uniform(0, 255, (2, 67, 67, 3)).astype("float32")
    plain = AlexNet(weights=None, **SMALL)
    raw = AlexNet(weights=None, include_preprocessing=True, **SMALL)
    for layer in plain.layers:
        if layer.weights:
            raw.get_layer(layer.name).set_weights(layer.get_weights())
    np.testing.assert_allclose(
        to_numpy(raw(x)), to_numpy(plain(preprocess_input(x))), rtol=1e-4, atol=1e-5
    )


BAD_ARGUMENTS = [
    ({"variant": "caffenet"}, ValueError, r"Received: variant='caffenet'"),
    ({"groups": 3}, ValueError, r"Received: groups=3"),
    (
        {"normalization": "layernorm"},
        ValueError,
        r"Received: normalization='layernorm'",
    ),
    ({"pooling": "sum", "include_top": False}, ValueError, r"Received: pooling='sum'"),
    ({"classes": 0}, ValueError, r"Received: classes=0"),
    ({"classes": 10.0}, ValueError, r"Received: classes=10\.0"),
    ({"dropout": 1.0}, ValueError, r"Received: dropout=1\.0"),
    ({"include_top": "yes"}, TypeError, r"Received: include_top='yes'"),
    ({"weights": "nowhere.h5"}, ValueError, r"Received: weights='nowhere\.h5'"),
    ({"input_shape": (227, 227)}, ValueError, r"Received: input_shape=\(227, 227\)"),
    ({"input_shape": (None, None, 3)}, ValueError, r"Received: input_shape"),
    ({"input_shape": (227, 227, 0)}, ValueError, r"Received: input_shape"),
    ({"fc_units": 0}, ValueError, r"Received: fc_units=0"),
    ({"initialization": "xavier"}, ValueError, r"Received: initialization='xavier'"),
    ({"seed": -1}, ValueError, r"Received: seed=-1"),
    ({"seed": 1.5}, ValueError, r"Received: seed=1\.5"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_ARGUMENTS)
def test_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        AlexNet(**{"weights": None, **kwargs})


def test_pretrained_weights_constrain_the_arguments():
    with pytest.raises(
        ValueError, match=r"`classes` should be 1000\. Received classes=10"
    ):
        AlexNet(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match=r"need groups=2.*Received: groups=1"):
        AlexNet(weights="imagenet", groups=1)
    with pytest.raises(ValueError, match=r"Received: classifier_activation='relu'"):
        AlexNet(weights="imagenet", classifier_activation="relu")
    with pytest.raises(ValueError, match=r"3 input channels.*Received: input_shape"):
        AlexNet(weights="imagenet", include_top=False, input_shape=(227, 227, 1))
    with pytest.raises(ValueError, match=r"`fc_units` should be 4096.*fc_units=512"):
        AlexNet(weights="imagenet", fc_units=512)
    with pytest.raises(ValueError, match=r"weights=None.*initialization='he'"):
        AlexNet(weights="imagenet", include_top=False, initialization="he")


@pytest.mark.backend
def test_channels_first_matches_channels_last(rng):
    x = rng.uniform(-50, 50, (1, 227, 227, 3)).astype("float32")
    model = AlexNet(weights=None, classifier_activation=None)
    keras.config.set_image_data_format("channels_first")
    try:
        first = AlexNet(weights=None, classifier_activation=None)
    finally:
        keras.config.set_image_data_format("channels_last")
    assert first.input_shape == (None, 3, 227, 227)
    assert first.get_layer("pool5").output.shape == (None, 256, 6, 6)
    # The weights are the same arrays in both layouts (Flatten always orders
    # pool5 as H, W, C), so they move between the two unchanged.
    first.set_weights(model.get_weights())
    if keras.backend.backend() == "tensorflow":
        return  # TF's CPU kernels have no NCHW convolution; JAX and torch run it.
    outputs = to_numpy(first(np.transpose(x, (0, 3, 1, 2))))
    np.testing.assert_allclose(outputs, to_numpy(model(x)), rtol=1e-4, atol=1e-5)


def test_keras_file_round_trip(tmp_path, rng):
    # Without the top (plain Dense layers), at a small size: the custom layers
    # and batch normalization are what a round trip can get wrong.
    model = AlexNet(
        weights=None, normalization="batchnorm", groups=2, pooling="avg", **SMALL
    )
    x = rng.uniform(-50, 50, (2, 67, 67, 3)).astype("float32")
    path = tmp_path / "alexnet.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))


SCRIPT = """
import json, sys
import numpy as np, keras
model = keras.models.load_model(sys.argv[1])
x = np.load(sys.argv[2])
print(json.dumps(np.asarray(keras.ops.convert_to_numpy(model(x))).tolist()))
"""


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="saves under TF")
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_saved_under_tensorflow_loads_under_other_backends(tmp_path, rng, backend):
    # `import keras_alexnet` registers the custom layers, and the optimizer and
    # loss a run compiles with: a user of the saved model imports the package,
    # not custom_objects. The convolutional base holds every custom layer
    # (grouped convolutions, LRN); the top adds only Dense.
    from keras_alexnet.training import PaperSGD, ProbabilityCrossentropy

    model = AlexNet(weights=None, include_top=False, input_shape=(67, 67, 3))
    model.compile(PaperSGD(0.01), ProbabilityCrossentropy())
    x = rng.uniform(-50, 50, (2, 67, 67, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import keras_alexnet\n" + SCRIPT,
            str(tmp_path / "m.keras"),
            str(tmp_path / "x.npy"),
        ],
        env={**os.environ, "KERAS_BACKEND": backend},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(outputs, to_numpy(model(x)), rtol=1e-4, atol=1e-4)


@pytest.mark.backend
@pytest.mark.parametrize(
    ("variant", "normalization", "size"),
    [("original", "lrn", 227), ("torchvision", "batchnorm", 95)],
)
def test_fit_decreases_the_loss(rng, variant, normalization, size):
    keras.utils.set_random_seed(1)
    model = AlexNet(
        weights=None,
        variant=variant,
        normalization=normalization,
        groups=2,
        classes=5,
        input_shape=(size, size, 3),
        dropout=0.0,
    )
    model.compile(
        # Plain gradient descent with a step small enough for fc7's 4096 inputs,
        # which the paper's bias of 1 keeps near 1: the loss must go down.
        optimizer=keras.optimizers.SGD(1e-4),
        loss="sparse_categorical_crossentropy",
    )
    x = rng.uniform(-1, 1, (8, size, size, 3)).astype("float32") * 50
    y = np.arange(8) % 5
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert np.all(np.diff(losses) < 0), losses


@pytest.mark.backend
def test_mixed_precision_stays_finite_and_close(rng):
    # Caffe-preprocessed input drives conv1 into the hundreds: LRN's squares would
    # overflow in half precision unless computed in float32.
    x = rng.uniform(-120, 150, (2, 227, 227, 3)).astype("float32")
    reference = AlexNet(weights=None, lrn="caffe", classifier_activation=None)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = AlexNet(weights=None, lrn="caffe", classifier_activation=None)
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.set_weights(reference.get_weights())
    assert mixed.get_layer("norm1").compute_dtype == "bfloat16"
    outputs = to_numpy(keras.ops.cast(mixed(x), "float32"))
    expected = to_numpy(reference(x))
    assert np.all(np.isfinite(outputs))
    scale = np.abs(expected).max()
    np.testing.assert_allclose(outputs, expected, atol=0.05 * scale)


def test_keras_file_weights_keep_the_architecture_they_hold(tmp_path, rng):
    # A .keras file holds its LRN constants: AlexNet(weights=file) must compute
    # what Keras' own loader computes, and refuse constants that contradict it.
    path = os.fspath(tmp_path / "caffe_lrn.keras")
    AlexNet(weights=None, lrn="caffe", **SMALL).save(path)
    x = rng.uniform(-50, 50, (2, 67, 67, 3)).astype("float32")
    reference = keras.saving.load_model(path)
    model = AlexNet(weights=path, **SMALL)
    assert model.get_layer("norm1").get_config()["bias"] == 1.0
    np.testing.assert_allclose(
        to_numpy(model(x)), to_numpy(reference(x)), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match=r"need lrn=\{'size': 5, 'bias': 1\.0"):
        AlexNet(weights=path, lrn="paper", **SMALL)
    with pytest.raises(ValueError, match=r"need groups=2.*Received: groups=1"):
        AlexNet(weights=path, groups=1, **SMALL)


def test_weights_h5_files_follow_the_documented_lrn_rule(tmp_path, rng):
    from keras_alexnet.conversion import save_model_atomically

    caffe_model = AlexNet(weights=None, lrn="caffe", **SMALL)
    x = rng.uniform(-50, 50, (1, 67, 67, 3)).astype("float32")
    # Written by keras-alexnet: the architecture is stamped in, and honoured.
    stamped = os.fspath(tmp_path / "stamped.weights.h5")
    save_model_atomically(caffe_model, stamped)
    model = AlexNet(weights=stamped, **SMALL)
    assert model.get_layer("norm1").get_config()["alpha"] == pytest.approx(2e-5)
    np.testing.assert_allclose(
        to_numpy(model(x)), to_numpy(caffe_model(x)), rtol=1e-5, atol=1e-6
    )
    # Written by model.save_weights: nothing recorded, so the paper's LRN
    # unless told; loaded with lrn="caffe" it reproduces the Caffe model.
    plain = os.fspath(tmp_path / "plain.weights.h5")
    caffe_model.save_weights(plain)
    assert AlexNet(weights=plain, **SMALL).get_layer("norm1").get_config()[
        "bias"
    ] == pytest.approx(2.0)
    told = AlexNet(weights=plain, lrn="caffe", **SMALL)
    np.testing.assert_allclose(
        to_numpy(told(x)), to_numpy(caffe_model(x)), rtol=1e-5, atol=1e-6
    )


def test_full_weights_h5_loads_without_its_top(tmp_path, rng):
    full = AlexNet(weights=None, variant="torchvision", input_shape=(63, 63, 3))
    path = os.fspath(tmp_path / "full.weights.h5")
    full.save_weights(path)
    base = AlexNet(weights=path, variant="torchvision", include_top=False)
    for layer in base.layers:
        for mine, theirs in zip(
            layer.get_weights(), full.get_layer(layer.name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(mine, theirs)


def test_checkpoint_names_and_registry_entries_select_the_weights():
    from keras_alexnet import CHECKPOINTS

    config = resolve_config(weights="IMAGENET1K_V1")
    assert config.weights is CHECKPOINTS["torchvision_imagenet1k_v1"]
    assert (config.variant, config.groups, config.normalization) == (
        "torchvision",
        1,
        "none",
    )
    config = resolve_config(weights=CHECKPOINTS["bvlc_alexnet"])
    assert config.variant == "original" and config.lrn.bias == 1.0
    assert config.preprocessing.crop_size == 227
    with pytest.raises(ValueError, match=r"need variant='torchvision'"):
        resolve_config(weights="IMAGENET1K_V1", variant="original")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"input_shape": (227.0, 227, 3)},
            ValueError,
            r"should hold integers.*Received: input_shape=\(227\.0, 227, 3\)",
        ),
        (
            {"classes": 10**6},
            ValueError,
            r"from 1 to 100000.*Received: classes=1000000",
        ),
        ({"classes": True}, ValueError, r"Received: classes=True"),
        ({"dropout": np.float32(1.5)}, ValueError, r"Received: dropout=.*1\.5"),
    ],
)
def test_builder_rejects_what_it_cannot_build(kwargs, error, match):
    with pytest.raises(error, match=match):
        AlexNet(weights=None, **kwargs)


def test_numpy_numbers_are_accepted_as_python_numbers():
    model = AlexNet(
        weights=None,
        classes=np.int64(10),
        dropout=np.float32(0.5),
        groups=np.int32(1),
        fc_units=np.int64(8),
        input_shape=(np.int64(227), 227, 3),
    )
    assert model.input_shape == (None, 227, 227, 3)
    assert model.output_shape == (None, 10)
    assert model.get_layer("conv2").groups == 1
    rate = model.get_layer("drop6").get_config()["rate"]
    units = model.get_layer("fc6").get_config()["units"]
    assert (rate, units) == (0.5, 8)
    assert type(rate) is float and type(units) is int
    assert type(resolve_config(weights=None, groups=np.int32(2)).groups) is int


def test_input_tensor_shape_is_the_one_checked():
    # input_shape says 227, the tensor 100: fc6 would sit on a 2x2 pool5.
    with pytest.raises(ValueError, match=r"disagree.*input_tensor\.shape="):
        AlexNet(
            weights=None,
            input_shape=(227, 227, 3),
            input_tensor=keras.Input((100, 100, 3)),
        )
    # The tensor's 100 pixels give a 2x2 pool5: 1024 inputs to fc6.
    model = AlexNet(weights=None, input_tensor=keras.Input((100, 100, 3)), fc_units=8)
    assert model.get_layer("fc6").kernel.shape == (2 * 2 * 256, 8)
    with pytest.raises(ValueError, match=r"pool5 is 6x6.*Received: input_shape"):
        AlexNet(weights="imagenet", input_tensor=keras.Input((100, 100, 3)))


def test_bad_weights_files_fail_clearly_before_building(tmp_path):
    folder = tmp_path / "x.pth"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"is a folder.*Received: weights='.*x\.pth'"):
        resolve_config(weights=os.fspath(folder))
    noise = tmp_path / "noise.keras"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=r"noise\.keras.*not a \.keras archive"):
        resolve_config(weights=os.fspath(noise))
    not_hdf5 = tmp_path / "noise.weights.h5"
    not_hdf5.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(ValueError, match=r"noise\.weights\.h5.*not a readable"):
        resolve_config(weights=os.fspath(not_hdf5))


def test_keras_file_naming_another_module_is_refused_without_importing_it(tmp_path):
    import zipfile

    config = {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "layers": [
                {"module": "os", "class_name": "system", "config": {"name": "conv1"}}
            ]
        },
    }
    path = tmp_path / "hostile.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", "{}")
        archive.writestr("model.weights.h5", b"")
    with pytest.raises(ValueError, match=r"hostile\.keras.*class 'system' of module"):
        AlexNet(weights=os.fspath(path))
