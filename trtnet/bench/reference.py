"""Published reference figures that the benchmark prints next to its own measurements (and, in its dry run and
budget check, uses as stand-in kernel times).

Source: PaddlePaddle/FastDeploy, `poros/docs/Benchmark.md` ("Benchmark" of Poros, Baidu's TorchScript
compiler on TensorRT 8.4.1.5): mean latency in ms over 1000 inferences, PyTorch 1.12.1 eager vs Poros, on an
NVIDIA A10 (CUDA 11.3, cuDNN 8.3.2, Xeon Platinum 8350C). The document does not state the precision.
Keys are trtnet zoo names; values map batch size -> (PyTorch eager ms, Poros ms). Every figure is copied from
that table; none is estimated.
"""

from __future__ import annotations

SOURCE = "PaddlePaddle/FastDeploy poros/docs/Benchmark.md (NVIDIA A10, TensorRT 8.4, PyTorch 1.12)"

# The input shape the published table states, where it differs from trtnet's: InceptionV3 was measured at
# 224x224 there (torchvision's model is usually run at 299x299).
INPUT_NOTES = {
    "inception_v3": "published at bx3x224x224",
    "bert_base_uncased": "published at bx128",
    "yolov5s": "published at bx3x640x640",
}

POROS_A10: dict[str, dict[int, tuple[float, float]]] = {
    "resnet50": {
        1: (6.17, 1.70),
        2: (6.02, 2.41),
        4: (6.33, 3.23),
        8: (8.55, 4.75),
        16: (16.22, 7.82),
        32: (32.09, 14.00),
    },
    "vgg16": {
        1: (3.20, 2.71),
        2: (4.97, 3.78),
        4: (8.20, 6.09),
        8: (14.64, 10.20),
        16: (27.47, 19.17),
        32: (53.09, 36.47),
    },
    "mobilenet_v2": {
        1: (3.85, 0.65),
        2: (3.75, 0.86),
        4: (3.90, 1.19),
        8: (4.18, 2.08),
        16: (8.43, 3.83),
        32: (16.57, 7.14),
    },
    "inception_v3": {
        1: (10.05, 2.51),
        2: (10.13, 3.22),
        4: (10.08, 3.70),
        8: (10.15, 4.95),
        16: (12.51, 7.11),
        32: (21.43, 11.22),
    },
    "efficientnet_b0": {
        1: (8.28, 1.28),
        2: (8.50, 1.57),
        4: (8.49, 2.29),
        8: (8.83, 3.65),
        16: (10.65, 6.62),
        32: (20.51, 12.51),
    },
    "bert_base_uncased": {
        1: (6.40, 2.02),
        2: (7.14, 2.59),
        4: (11.58, 4.39),
        8: (21.64, 8.41),
        16: (44.20, 16.90),
        32: (92.69, 32.21),
    },
    "vit_b_16": {
        1: (6.38, 3.07),
        2: (10.35, 4.57),
        4: (19.06, 8.37),
        8: (36.71, 16.34),
        16: (73.84, 29.92),
        32: (147.70, 58.11),
    },
    "yolov5s": {
        1: (6.17, 2.22),
        2: (5.93, 3.96),
        4: (10.02, 6.84),
        8: (20.02, 12.86),
        16: (38.17, 24.80),
        32: (77.19, 49.16),
    },
    "swin_t": {
        1: (14.11, 7.68),
        2: (22.73, 11.99),
        4: (42.21, 21.74),
        8: (83.07, 42.18),
        16: (162.34, 78.34),
        32: (317.43, 149.72),
    },
}
