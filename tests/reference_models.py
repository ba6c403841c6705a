"""Independent reference implementations the tests compare keras-alexnet against."""

from __future__ import annotations

import pathlib

import numpy as np
import torch

from tests.caffe_writer import alexnet_deploy_prototxt

# Weight shapes of the two published checkpoints, as their frameworks store them
# (OIHW, or (out, in)); each bias is (out,). Caffe stacks conv2/4/5's two groups
# along the output axis.
BVLC_ALEXNET_WEIGHT_SHAPES = {
    "conv1": (96, 3, 11, 11),
    "conv2": (256, 48, 5, 5),
    "conv3": (384, 256, 3, 3),
    "conv4": (384, 192, 3, 3),
    "conv5": (256, 192, 3, 3),
    "fc6": (4096, 9216),
    "fc7": (4096, 4096),
    "fc8": (1000, 4096),
}
TORCHVISION_WEIGHT_SHAPES = {
    "features.0": (64, 3, 11, 11),
    "features.3": (192, 64, 5, 5),
    "features.6": (384, 192, 3, 3),
    "features.8": (256, 384, 3, 3),
    "features.10": (256, 256, 3, 3),
    "classifier.1": (4096, 9216),
    "classifier.4": (4096, 4096),
    "classifier.6": (1000, 4096),
}


def torchvision_alexnet() -> torch.nn.Module:
    """torchvision's `AlexNet` (models/alexnet.py), rebuilt with torch.nn only.

    The module names give torchvision's exact state-dict keys
    (`features.{0,3,6,8,10}`, `classifier.{1,4,6}`).
    """
    nn = torch.nn
    model = nn.Module()
    model.features = nn.Sequential(
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
    model.avgpool = nn.AdaptiveAvgPool2d((6, 6))
    model.classifier = nn.Sequential(
        nn.Dropout(p=0.5),
        nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(p=0.5),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, 1000),
    )
    return model.eval()


def torchvision_forward(model: torch.nn.Module, x_nchw: np.ndarray) -> np.ndarray:
    """torchvision's `AlexNet.forward`: the logits, in eval mode."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(x_nchw))
        features = model.avgpool(model.features(x))
        return model.classifier(torch.flatten(features, 1)).numpy()


def torchvision_features(model: torch.nn.Module, x_nchw: np.ndarray) -> np.ndarray:
    """The output of torchvision's `features` (pool5), NCHW."""
    with torch.no_grad():
        return model.features(torch.from_numpy(np.ascontiguousarray(x_nchw))).numpy()


def opencv_caffe_forward(
    caffemodel: pathlib.Path, x_nchw: np.ndarray, output: str = "fc8"
) -> np.ndarray:
    """Runs BVLC's deploy.prototxt (ending at fc8) with OpenCV's Caffe runtime."""
    import cv2

    prototxt = pathlib.Path(caffemodel).with_suffix(".prototxt")
    prototxt.write_text(alexnet_deploy_prototxt(batch_size=len(x_nchw), softmax=False))
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setInput(np.ascontiguousarray(x_nchw, dtype=np.float32))
    return net.forward(output)
