"""The model zoo: one module per architecture, each ending in registered entry points.

>>> from trtnet.zoo import resnet50
>>> model = resnet50(weights=None)
"""
from trtnet.zoo.bert import bert_base_uncased
from trtnet.zoo.registry import REGISTRY, ZooEntry, get_entry, register
from trtnet.zoo.resnet import resnet18, resnet34, resnet50, resnet101, resnet152

__all__ = ["REGISTRY", "ZooEntry", "bert_base_uncased", "get_entry", "register", "resnet18", "resnet34", "resnet50", "resnet101",
           "resnet152"]
