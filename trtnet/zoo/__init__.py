"""The model zoo: one module per architecture, each ending in registered entry points.

>>> from trtnet.zoo import resnet50
>>> model = resnet50(weights=None)
"""
from trtnet.zoo.bert import bert_base_uncased
from trtnet.zoo.registry import REGISTRY, ZooEntry, get_entry, register
from trtnet.zoo.resnet import resnet18, resnet34, resnet50, resnet101, resnet152
from trtnet.zoo.swin import swin_b, swin_s, swin_t
from trtnet.zoo.vit import vit_b_16, vit_l_16, vit_s_16

__all__ = ["REGISTRY", "ZooEntry", "bert_base_uncased", "get_entry", "register", "resnet18", "resnet34", "resnet50",
           "resnet101", "resnet152", "swin_b", "swin_s", "swin_t", "vit_b_16", "vit_l_16", "vit_s_16"]
