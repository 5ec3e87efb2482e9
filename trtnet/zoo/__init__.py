"""The model zoo: one module per architecture, each ending in registered entry points.

>>> from trtnet.zoo import resnet50
>>> model = resnet50(weights=None)
"""

from trtnet.zoo.bert import bert_base_uncased
from trtnet.zoo.convnext import convnext_base, convnext_small, convnext_tiny
from trtnet.zoo.efficientnet import efficientnet_b0, efficientnet_b1, efficientnet_b2, efficientnet_b3
from trtnet.zoo.gpt2 import gpt2, gpt2_large, gpt2_medium, gpt2_xl
from trtnet.zoo.gpt2_lm import gpt2_lm, gpt2_medium_lm
from trtnet.zoo.inception import inception_v3
from trtnet.zoo.llama import llama, qwen2
from trtnet.zoo.mobilenet import mobilenet_v2
from trtnet.zoo.registry import REGISTRY, ZooEntry, get_entry, register, register_variant
from trtnet.zoo.resnet import resnet18, resnet34, resnet50, resnet101, resnet152
from trtnet.zoo.sources import he_init  # public: a user source may redraw its random weights too
from trtnet.zoo.swin import swin_b, swin_s, swin_t
from trtnet.zoo.vgg import vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn
from trtnet.zoo.vit import vit_b_16, vit_l_16, vit_s_16
from trtnet.zoo.yolov5 import yolov5l, yolov5m, yolov5n, yolov5s
from trtnet.zoo.yolov8 import yolo11m, yolo11n, yolo11s, yolov8m, yolov8n, yolov8s

__all__ = [
    "REGISTRY",
    "he_init",
    "ZooEntry",
    "get_entry",
    "register",
    "register_variant",
    "bert_base_uncased",
    "convnext_base",
    "convnext_small",
    "convnext_tiny",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "gpt2",
    "gpt2_large",
    "gpt2_lm",
    "gpt2_medium",
    "gpt2_medium_lm",
    "gpt2_xl",
    "inception_v3",
    "llama",
    "mobilenet_v2",
    "qwen2",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "swin_b",
    "swin_s",
    "swin_t",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "vit_b_16",
    "vit_l_16",
    "vit_s_16",
    "yolov5l",
    "yolov5m",
    "yolov5n",
    "yolov5s",
    "yolov8m",
    "yolov8n",
    "yolov8s",
    "yolo11m",
    "yolo11n",
    "yolo11s",
]
