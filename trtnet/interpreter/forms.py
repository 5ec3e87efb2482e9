"""Attribute forms of supported layer types that the interpreter's handlers refuse, checked before a run.

Each check reads one layer's settings back from TensorRT and names every form its handler does not implement;
every other enum value of those settings the handlers do implement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trtnet.interpreter._common import enum_name


def _reduce_forms(layer: Any) -> list[str]:
    op = enum_name(layer.op)
    return [f"unsupported reduce operation {op}"] if op == "NONE" else []


def _attention_forms(layer: Any) -> list[str]:
    att = layer.attention
    problems = []
    forms = f"{enum_name(att.query_form)}/{enum_name(att.key_value_form)}"
    if forms != "PADDED_BHND/PADDED_BHND":
        problems.append(f"attention forms {forms}: only PADDED_BHND is supported")
    if att.normalization_quantize_scale is not None:
        problems.append("quantized attention normalization is not modelled")
    if enum_name(att.norm_op) not in ("SOFTMAX", "NONE"):
        problems.append(f"unsupported attention normalization {enum_name(att.norm_op)}")
    return problems


def _grid_sample_forms(layer: Any) -> list[str]:
    problems = []
    if enum_name(layer.interpolation_mode) == "CUBIC":
        problems.append("CUBIC grid sampling is not modelled")
    if enum_name(layer.sample_mode) not in ("FILL", "CLAMP", "REFLECT"):
        problems.append(f"grid sample mode {enum_name(layer.sample_mode)} is not modelled")
    return problems


# Per layer type: the check of its attribute forms.
ATTRIBUTE_FORMS: dict[str, Callable[[Any], list[str]]] = {
    "REDUCE": _reduce_forms,
    "ATTENTION_INPUT": _attention_forms,
    "GRID_SAMPLE": _grid_sample_forms,
}
