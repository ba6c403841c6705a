"""Checks a converted model against its checkpoint run by its own framework.

`parity_report` keeps the modelling difference (the same input tensor in both)
apart from the preprocessing difference (each side's own input pipeline); see
docs/pretrained.md. PyTorch, OpenCV and PIL are imported only there.

References:
    - torchvision `models/alexnet.py` (BSD-3-Clause) and its
      `AlexNet_Weights.IMAGENET1K_V1` transforms.
    - BVLC/caffe `models/bvlc_alexnet/deploy.prototxt` (BSD-2-Clause).
    - keras-hub `tools/checkpoint_conversion/` (Apache-2.0): the two-part check.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_alexnet.conversion import check_source, check_variant
from keras_alexnet.layers import ImagePreprocessing
from keras_alexnet.preprocessing import imagenet_class_index, preprocess_input
from keras_alexnet.resources import sample_images
from keras_alexnet.weights import registry

__all__ = ["LogitsDifference", "ParityReport", "parity_report"]

PARITY_EXTRA = 'pip install "keras-alexnet[parity]"'
# float32 through eight layers: the logits of two correct implementations differ
# by about 1e-6 of their scale; a conversion mistake moves them by far more.
DEFAULT_MODELLING_RTOL = 1e-4


@dataclasses.dataclass(frozen=True)
class LogitsDifference:
    """How far two sets of logits for the same images are apart.

    Attributes:
        max_abs: the largest absolute difference of any logit.
        max_rel: the largest, over images, of the image's largest absolute
            difference divided by the largest absolute reference logit of that
            image: the error relative to the scale of the logits.
        top1_matches: the images whose highest-scoring class is the same.
        count: the number of images.
    """

    max_abs: float
    max_rel: float
    top1_matches: int
    count: int

    @property
    def top1_agreement(self) -> float:
        """The fraction of images whose top-1 class agrees."""
        return self.top1_matches / self.count


@dataclasses.dataclass(frozen=True)
class ParityReport:
    """The result of `parity_report`: modelling and preprocessing, separately.

    Attributes:
        source: the checkpoint that was compared.
        variant: `"original"` or `"torchvision"`.
        reference: the framework that ran the checkpoint, with its version.
        reference_preprocessing: what the reference input pipeline is.
        images: the file names of the images.
        modelling: Keras against the reference, both fed keras-alexnet's
            preprocessed input tensor.
        preprocessing: Keras on keras-alexnet's input against the reference on
            the reference pipeline's input: the end-to-end difference, which
            adds the preprocessing difference to the modelling one.
        pixels_max_abs: the largest absolute difference between the two
            pipelines' crops, in RGB levels of 0 to 255, before normalisation.
        pixels_mean_abs: the mean absolute difference of the crops, likewise.
        keras_top1: per image, the Keras model's top class on its own input.
        reference_top1: per image, the reference's top class on its own input.
    """

    source: str
    variant: str
    reference: str
    reference_preprocessing: str
    images: tuple[str, ...]
    modelling: LogitsDifference
    preprocessing: LogitsDifference
    pixels_max_abs: float
    pixels_mean_abs: float
    keras_top1: tuple[str, ...]
    reference_top1: tuple[str, ...]

    def modelling_ok(self, rtol: float = DEFAULT_MODELLING_RTOL) -> bool:
        """Whether the conversion reproduces the reference.

        Args:
            rtol: the largest acceptable `modelling.max_rel`.

        Returns:
            `True` when the modelling difference is within `rtol` of the logits'
            scale and every image has the same top-1 class.
        """
        return (
            self.modelling.max_rel <= rtol
            and self.modelling.top1_matches == self.modelling.count
        )

    def __str__(self) -> str:
        m, p = self.modelling, self.preprocessing
        width = max(len(name) for name in self.images)
        lines = [
            f"Parity of {os.path.basename(self.source)} (variant {self.variant!r}) "
            f"with {self.reference}, on {len(self.images)} images",
            "Modelling (the same input tensor into both models):",
            f"  max |logit difference|    {m.max_abs:.3g}",
            f"  max relative difference   {m.max_rel:.3g}   (of the largest |logit|)",
            f"  top-1 agreement           {m.top1_matches}/{m.count}",
            "Preprocessing (keras-alexnet's pipeline against "
            f"{self.reference_preprocessing}):",
            f"  max |pixel difference|    {self.pixels_max_abs:.3g} of 255",
            f"  mean |pixel difference|   {self.pixels_mean_abs:.3g} of 255",
            f"  max |logit difference|    {p.max_abs:.3g}",
            f"  max relative difference   {p.max_rel:.3g}",
            f"  top-1 agreement           {p.top1_matches}/{p.count}",
            "Top-1 per image (Keras on keras-alexnet's input | reference on its own):",
        ]
        for name, ours, theirs in zip(
            self.images, self.keras_top1, self.reference_top1, strict=True
        ):
            lines.append(f"  {name:<{width}}  {ours} | {theirs}")
        verdict = "OK" if self.modelling_ok() else "FAILED"
        lines.append(
            f"Modelling parity: {verdict} (relative tolerance "
            f"{DEFAULT_MODELLING_RTOL:g}, same top-1 on every image)"
        )
        return "\n".join(lines)


def parity_report(
    source: str | os.PathLike,
    model: keras.Model,
    images: Sequence[str | os.PathLike] | None = None,
) -> ParityReport:
    """Compares a converted model with its checkpoint run by its own framework.

    The reference for a `.pth` is torchvision's AlexNet as plain `torch.nn`
    with PIL's input pipeline; for a `.caffemodel`, OpenCV's Caffe runtime with
    BVLC's deploy prototxt and OpenCV's input pipeline (docs/pretrained.md).

    Args:
        source: the checkpoint `model` was converted from.
        model: the Keras model, with its top (`include_top=True`), as returned by
            `convert_checkpoint(source)`; with or without
            `include_preprocessing`, with either classifier activation.
        images: paths of JPEG or PNG images; defaults to `sample_images()`.

    Returns:
        A `ParityReport`; `str(report)` formats it for reading.

    Raises:
        ImportError: if PyTorch (for a `.pth`), OpenCV (for a `.caffemodel`) or
            PIL is missing; install the `parity` extra.
        ValueError: if `model` does not match the checkpoint's variant or has no
            top, or an image cannot be read.
    """
    source = check_source(source)
    variant = check_variant(None, source)
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` should be a keras.Model. Received: model={type(model).__name__}"
        )
    checkpoint = registry.imagenet_checkpoint(variant)
    image_size = checkpoint.input_size
    _check_model(model, variant, image_size)
    paths = _check_images(images)

    # The two pipelines' crops, RGB in [0, 255], and the model inputs they give.
    ours_rgb = np.stack([_our_crop(path, checkpoint) for path in paths])
    ours_input = np.asarray(
        preprocess_input(ours_rgb, variant, data_format="channels_last")
    )
    reference: _TorchReference | _OpenCVReference
    if variant == "torchvision":
        reference = _TorchReference(source)
        crops = [_pil_crop(path, image_size) for path in paths]
        reference_preprocessing = "PIL (torchvision's transforms)"
    else:
        reference = _OpenCVReference(source, model.get_layer("predictions").units)
        crops = [_opencv_crop(path, image_size) for path in paths]
        reference_preprocessing = "OpenCV (Caffe's tools)"
    reference_rgb = np.stack([rgb for rgb, _ in crops])
    reference_input = np.stack([x for _, x in crops])

    # Modelling: one input, two models. The Keras model with an
    # ImagePreprocessing layer takes the pixels preprocess_input started from.
    keras_logits = _keras_logits(model, ours_rgb, ours_input)
    reference_on_ours = reference.logits(ours_input.transpose(0, 3, 1, 2))
    reference_on_theirs = reference.logits(reference_input)
    classes = keras_logits.shape[-1]
    if reference_on_ours.shape != keras_logits.shape:
        raise ValueError(
            f"The model has {classes} outputs, but the checkpoint "
            f"{reference_on_ours.shape[-1]}. Received: model={model.name!r}"
        )
    return ParityReport(
        source=source,
        variant=variant,
        reference=reference.name,
        reference_preprocessing=reference_preprocessing,
        images=tuple(os.path.basename(os.fspath(path)) for path in paths),
        modelling=_difference(keras_logits, reference_on_ours),
        preprocessing=_difference(keras_logits, reference_on_theirs),
        pixels_max_abs=float(np.max(np.abs(ours_rgb - reference_rgb))),
        pixels_mean_abs=float(np.mean(np.abs(ours_rgb - reference_rgb))),
        keras_top1=_top1_names(keras_logits),
        reference_top1=_top1_names(reference_on_theirs),
    )


# -- Arguments ---------------------------------------------------------------


def _check_model(model: keras.Model, variant: str, image_size: int) -> None:
    names = {layer.name for layer in model.layers}
    if "predictions" not in names or "conv1" not in names:
        raise ValueError(
            "`model` should be an AlexNet with its top (include_top=True), as "
            f"convert_checkpoint returns. Received: model={model.name!r} with "
            f"layers {sorted(names)}"
        )
    filters = model.get_layer("conv1").filters
    expected = 96 if variant == "original" else 64
    if filters != expected:
        raise ValueError(
            f"The checkpoint holds the {variant!r} variant, whose conv1 has "
            f"{expected} filters; `model`'s has {filters}. Received: "
            f"model={model.name!r}"
        )
    spatial = _spatial_shape(model)
    if any(size not in (None, image_size) for size in spatial):
        raise ValueError(
            f"`model` should take {image_size}x{image_size} images, the size of "
            f"the {variant!r} checkpoint. Received: input_shape={model.input_shape}"
        )


def _check_images(images: Any) -> list[str]:
    if images is None:
        return [os.fspath(path) for path in sample_images()]
    if isinstance(images, (str, os.PathLike)) or not isinstance(images, Sequence):
        raise TypeError(
            f"`images` should be a list of paths. Received: images={images!r}"
        )
    if not images:
        raise ValueError("`images` should name at least one image. Received: []")
    paths = []
    for path in images:
        if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
            raise ValueError(
                f"`images` should hold paths of image files. Received: {path!r}"
            )
        paths.append(os.fspath(path))
    return paths


def _channels_first(model: keras.Model) -> bool:
    return model.get_layer("conv1").data_format == "channels_first"


def _spatial_shape(model: keras.Model) -> tuple[int | None, int | None]:
    shape = model.input_shape
    return tuple(shape[2:4]) if _channels_first(model) else tuple(shape[1:3])


# -- The two pipelines ---------------------------------------------------------


def _our_crop(path: str, checkpoint: registry.Checkpoint) -> np.ndarray:
    """keras-alexnet's evaluation crop (`load_image`), RGB float32 in [0, 255]."""
    # Imported here: `import keras_alexnet` does not load TensorFlow.
    from keras_alexnet.data.images import load_image

    return load_image(path, checkpoint, preprocess=False)


def _pil_crop(path: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's `Resize(256)`, `CenterCrop`, `ToTensor`, `Normalize`, in PIL.

    Returns the RGB crop in [0, 255] and the normalised CHW model input.
    """
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(
            f"The torchvision reference preprocessing needs PIL: {PARITY_EXTRA}"
        ) from error
    with Image.open(path) as image:
        image = image.convert("RGB")
    # torchvision.transforms.functional._compute_resized_output_size.
    resize_size = registry.TORCHVISION_PREPROCESSING.resize_size
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = resize_size, int(resize_size * long / short)
    new_width, new_height = (
        (new_short, new_long) if width <= height else (new_long, new_short)
    )
    image = image.resize((new_width, new_height), Image.BILINEAR)
    # torchvision.transforms.functional.center_crop rounds the offsets (Python's
    # round: half to even), as the registry's crop_rounding="round" says.
    top = int(round((new_height - image_size) / 2.0))
    left = int(round((new_width - image_size) / 2.0))
    image = image.crop((left, top, left + image_size, top + image_size))
    rgb = np.asarray(image, np.float32)
    constants = registry.TORCHVISION_PREPROCESSING
    mean = np.asarray(constants.mean, np.float32)
    std = np.asarray(constants.std, np.float32)
    normalised = (rgb / 255.0 - mean) / std
    return rgb, normalised.transpose(2, 0, 1)


def _opencv_crop(path: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV resize of the shorter side, Caffe's centre crop, BGR mean subtraction.

    Returns the RGB crop in [0, 255] and the BGR CHW model input.
    """
    cv2 = _import_cv2()
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"OpenCV cannot read {path!r} as an image.")
    resize_size = registry.CAFFE_PREPROCESSING.resize_size
    height, width = bgr.shape[:2]
    scale = resize_size / min(height, width)
    size = (
        max(resize_size, round(width * scale)),
        max(resize_size, round(height * scale)),
    )
    bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
    # Caffe's DataTransformer (test phase): offsets rounded down.
    top = (bgr.shape[0] - image_size) // 2
    left = (bgr.shape[1] - image_size) // 2
    bgr = bgr[top : top + image_size, left : left + image_size].astype(np.float32)
    mean_bgr = np.asarray(registry.CAFFE_PREPROCESSING.mean, np.float32)
    return bgr[..., ::-1].copy(), (bgr - mean_bgr).transpose(2, 0, 1)


# -- The two models --------------------------------------------------------------


def _keras_logits(
    model: keras.Model, rgb: np.ndarray, preprocessed: np.ndarray
) -> np.ndarray:
    """The logits of `model`, whatever its classifier activation."""
    has_preprocessing = any(isinstance(lay, ImagePreprocessing) for lay in model.layers)
    x = rgb if has_preprocessing else preprocessed
    if _channels_first(model):
        x = x.transpose(0, 3, 1, 2)
    predictions = model.get_layer("predictions")
    # The logits are fc8's pre-activation: run the model up to its input and
    # apply fc8's kernel and bias, so a softmax model needs no rebuilding.
    features = keras.Model(model.input, predictions.input).predict_on_batch(x)
    kernel, bias = predictions.get_weights()
    return np.asarray(keras.ops.convert_to_numpy(features), np.float32) @ kernel + bias


class _TorchReference:
    """torchvision's AlexNet as plain `torch.nn`, loaded from a state dict."""

    def __init__(self, source: str) -> None:
        try:
            import torch
            from torch import nn
        except ImportError as error:
            raise ImportError(
                f"The reference for a .pth checkpoint is PyTorch: {PARITY_EXTRA}"
            ) from error
        state_dict = torch.load(source, map_location="cpu", weights_only=True)
        if not isinstance(state_dict, dict) or "classifier.6.weight" not in state_dict:
            raise ValueError(
                "`source` should hold a torchvision AlexNet state dict. Received: "
                f"source={source!r}"
            )
        classes = state_dict["classifier.6.weight"].shape[0]
        # torchvision/models/alexnet.py, module for module, so that the state
        # dict's keys (features.0, ..., classifier.6) load with strict=True.
        features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        classifier = nn.Sequential(
            nn.Dropout(p=0.5),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, classes),
        )
        self._network = nn.ModuleDict(
            {
                "features": features,
                "avgpool": nn.AdaptiveAvgPool2d((6, 6)),
                "classifier": classifier,
            }
        )
        self._network.load_state_dict(state_dict, strict=True)
        self._network.eval()
        self._torch = torch
        self.name = f"PyTorch {torch.__version__}"

    def logits(self, x_nchw: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(x_nchw, np.float32))
            x = self._network["features"](x)
            x = torch.flatten(self._network["avgpool"](x), 1)
            return self._network["classifier"](x).numpy().astype(np.float32)


class _OpenCVReference:
    """OpenCV's Caffe runtime running BVLC's deploy prototxt, up to fc8."""

    def __init__(self, source: str, classes: int) -> None:
        from keras_alexnet.weights.caffe_prototxt import alexnet_deploy_prototxt

        cv2 = _import_cv2()
        prototxt = alexnet_deploy_prototxt(
            batch_size=1, softmax=False, num_classes=classes
        )
        with tempfile.TemporaryDirectory() as folder:
            prototxt_path = os.path.join(folder, "deploy.prototxt")
            with open(prototxt_path, "w", encoding="utf-8") as f:
                f.write(prototxt)
            self._net = cv2.dnn.readNetFromCaffe(prototxt_path, source)
        self._net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self._net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self.name = f"OpenCV {cv2.__version__} (Caffe runtime)"

    def logits(self, x_nchw: np.ndarray) -> np.ndarray:
        self._net.setInput(np.ascontiguousarray(x_nchw, np.float32))
        return np.asarray(self._net.forward("fc8"), np.float32).reshape(len(x_nchw), -1)


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as error:
        raise ImportError(
            f"The Caffe reference is OpenCV's dnn module: {PARITY_EXTRA}"
        ) from error
    if not hasattr(cv2.dnn, "readNetFromCaffe"):
        raise ImportError(
            f"OpenCV {cv2.__version__} has no Caffe importer (OpenCV 5 removed "
            'it): pip install "opencv-python-headless>=4.8,<5"'
        )
    return cv2


# -- Comparison ------------------------------------------------------------------


def _difference(logits: np.ndarray, reference: np.ndarray) -> LogitsDifference:
    logits = np.asarray(logits, np.float64)
    reference = np.asarray(reference, np.float64)
    diff = np.abs(logits - reference)
    scale = np.maximum(np.max(np.abs(reference), axis=-1), np.finfo(np.float32).tiny)
    return LogitsDifference(
        max_abs=float(diff.max()),
        max_rel=float(np.max(diff.max(axis=-1) / scale)),
        top1_matches=int(
            np.sum(np.argmax(logits, axis=-1) == np.argmax(reference, axis=-1))
        ),
        count=len(logits),
    )


def _top1_names(logits: np.ndarray) -> tuple[str, ...]:
    best = np.argmax(logits, axis=-1)
    if logits.shape[-1] != len(imagenet_class_index()):
        return tuple(f"class {i}" for i in best)
    return tuple(" ".join(imagenet_class_index()[i]) for i in best)
