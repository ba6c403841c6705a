"""The deploy network definition of Caffe's `bvlc_alexnet`, as prototxt text.

A `.caffemodel` holds only weights; Caffe and OpenCV's Caffe runtime
(`cv2.dnn.readNetFromCaffe`) need this text to know the layers. It reproduces
`models/bvlc_alexnet/deploy.prototxt` of BVLC/caffe (BSD-2-Clause): the paper's
network with groups 2 in conv2, conv4 and conv5, LRN (`local_size: 5`,
`alpha: 0.0001`, `beta: 0.75`, Caffe's `k` default of 1) before pooling, and a
227x227 BGR input. `keras_alexnet.parity.parity_report` runs it in OpenCV as
the independent reference for a converted Caffe checkpoint.
"""

from __future__ import annotations

from keras_alexnet._validation import check_int

__all__ = ["alexnet_deploy_prototxt"]

_LEARNED_PARAMS = """  param {
    lr_mult: 1
    decay_mult: 1
  }
  param {
    lr_mult: 2
    decay_mult: 0
  }
"""


def alexnet_deploy_prototxt(
    batch_size: int = 10, softmax: bool = True, num_classes: int = 1000
) -> str:
    """Returns BVLC's `models/bvlc_alexnet/deploy.prototxt`.

    With the defaults the text is the file in the BVLC/caffe repository (current
    `layer` syntax, input 10x3x227x227).

    Args:
        batch_size: the first dimension of the input shape (OpenCV resizes the
            network to the batch it is given anyway).
        softmax: whether to end with the "prob" Softmax layer; `False` ends at
            the fc8 logits.
        num_classes: the outputs of fc8 (1000 for ImageNet).

    Returns:
        The prototxt text.
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    num_classes = check_int("num_classes", num_classes, minimum=1)
    text = 'name: "AlexNet"\nlayer {\n  name: "data"\n  type: "Input"\n'
    text += '  top: "data"\n'
    text += (
        f"  input_param {{ shape: {{ dim: {batch_size} dim: 3 dim: 227 dim: 227 }} }}\n"
    )
    text += "}\n"
    text += _conv("conv1", "data", 96, 11, stride=4)
    text += _relu("relu1", "conv1") + _lrn("norm1", "conv1")
    text += _max_pool("pool1", "norm1")
    text += _conv("conv2", "pool1", 256, 5, pad=2, group=2)
    text += _relu("relu2", "conv2") + _lrn("norm2", "conv2")
    text += _max_pool("pool2", "norm2")
    text += _conv("conv3", "pool2", 384, 3, pad=1) + _relu("relu3", "conv3")
    text += _conv("conv4", "conv3", 384, 3, pad=1, group=2) + _relu("relu4", "conv4")
    text += _conv("conv5", "conv4", 256, 3, pad=1, group=2) + _relu("relu5", "conv5")
    text += _max_pool("pool5", "conv5")
    text += _inner_product("fc6", "pool5", 4096)
    text += _relu("relu6", "fc6") + _dropout("drop6", "fc6")
    text += _inner_product("fc7", "fc6", 4096)
    text += _relu("relu7", "fc7") + _dropout("drop7", "fc7")
    text += _inner_product("fc8", "fc7", num_classes)
    if softmax:
        text += 'layer {\n  name: "prob"\n  type: "Softmax"\n'
        text += '  bottom: "fc8"\n  top: "prob"\n}\n'
    return text


def _layer(
    name: str,
    layer_type: str,
    bottom: str,
    top: str,
    body: str = "",
    learned: bool = False,
) -> str:
    text = f'layer {{\n  name: "{name}"\n  type: "{layer_type}"\n'
    text += f'  bottom: "{bottom}"\n  top: "{top}"\n'
    if learned:
        text += _LEARNED_PARAMS
    return text + body + "}\n"


def _conv(name: str, bottom: str, num_output: int, kernel: int, **options: int) -> str:
    lines = [f"    num_output: {num_output}"]
    if "pad" in options:
        lines.append(f"    pad: {options['pad']}")
    lines.append(f"    kernel_size: {kernel}")
    if "stride" in options:
        lines.append(f"    stride: {options['stride']}")
    if "group" in options:
        lines.append(f"    group: {options['group']}")
    body = "  convolution_param {\n" + "\n".join(lines) + "\n  }\n"
    return _layer(name, "Convolution", bottom, name, body, learned=True)


def _relu(name: str, blob: str) -> str:
    return _layer(name, "ReLU", blob, blob)


def _lrn(name: str, bottom: str) -> str:
    body = "  lrn_param {\n    local_size: 5\n    alpha: 0.0001\n    beta: 0.75\n  }\n"
    return _layer(name, "LRN", bottom, name, body)


def _max_pool(name: str, bottom: str) -> str:
    body = "  pooling_param {\n    pool: MAX\n    kernel_size: 3\n    stride: 2\n  }\n"
    return _layer(name, "Pooling", bottom, name, body)


def _inner_product(name: str, bottom: str, num_output: int) -> str:
    body = f"  inner_product_param {{\n    num_output: {num_output}\n  }}\n"
    return _layer(name, "InnerProduct", bottom, name, body, learned=True)


def _dropout(name: str, blob: str) -> str:
    body = "  dropout_param {\n    dropout_ratio: 0.5\n  }\n"
    return _layer(name, "Dropout", blob, blob, body)
