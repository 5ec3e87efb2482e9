"""The DSL's own dtype names, and their TensorRT and numpy counterparts.

Model code names dtypes as strings ("float32", "float16", "bfloat16", "float8_e4m3", "int8", "uint8",
"int32", "int64", "bool"), so that it never needs the TensorRT module. Everywhere the DSL takes a dtype
(`ops.cast`, `ops.constant`, `nn.Input`, `Graph.weights`) it goes through `to_trt`, which also accepts a
TensorRT `DataType` or a numpy dtype.

>>> keep = ops.cast(attention_mask, "bool")
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trtnet.backend import DATA_TYPES, DataTypeInfo, get_trt
from trtnet.errors import NetworkError

_INFO: dict[str, DataTypeInfo] = {row.name: row for row in DATA_TYPES}
# "fp8" is an alias: TensorRT's FP8 is E4M3.
ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp8": "float8_e4m3"}
DTYPES: tuple[str, ...] = tuple(_INFO)

# numpy's own types, both ways. bfloat16 and FP8 have only ml_dtypes' (kind "V"), which the DSL does not take
# for a numpy dtype: their weights travel as raw bits (see `graph.to_numpy_dtype`).
_TO_NUMPY = {row.name: row.numpy for row in DATA_TYPES if row.numpy.kind != "V"}
_FROM_NUMPY = {dtype: name for name, dtype in _TO_NUMPY.items()}
NO_NUMPY = frozenset(DTYPES) - set(_TO_NUMPY)  # bfloat16, FP8: their values travel as raw bits


def canonical(name: str, what: str = "dtype") -> str:
    """The DSL name for `name` (an alias such as "fp16" resolved); a NetworkError naming `what` otherwise."""
    name = ALIASES.get(name, name)
    if name not in _INFO:
        raise NetworkError(
            f"{what} {name!r} is not a trtnet dtype; use one of {', '.join(DTYPES)} (or {', '.join(ALIASES)})"
        )
    return name


def name_of(dtype: Any, what: str = "dtype") -> str:
    """The DSL name of a DSL name, a TensorRT DataType or a numpy dtype."""
    if isinstance(dtype, str):
        return canonical(dtype, what)
    trt = get_trt()
    if isinstance(dtype, trt.DataType):
        for row in DATA_TYPES:
            if dtype == getattr(trt.DataType, row.member):
                return row.name
        raise NetworkError(f"{what} {dtype} has no trtnet dtype name")
    try:
        return _FROM_NUMPY[np.dtype(dtype)]
    except (TypeError, KeyError):
        raise NetworkError(f"{what} {dtype!r} is not a trtnet dtype; use one of {', '.join(DTYPES)}") from None


def to_trt(dtype: Any, what: str = "dtype"):
    """The TensorRT DataType of `dtype` (a DSL name, a TensorRT DataType or a numpy dtype)."""
    trt = get_trt()
    if isinstance(dtype, trt.DataType):
        return dtype
    return getattr(trt.DataType, _INFO[name_of(dtype, what)].member)


def numpy_of(dtype: Any) -> np.dtype:
    """The numpy dtype of `dtype` (a DSL name, a TensorRT DataType or a numpy dtype). numpy has no bfloat16 or
    fp8 (their weights travel as raw bits, see `graph.to_numpy_dtype`): those are a NetworkError."""
    name = name_of(dtype)
    if name not in _TO_NUMPY:
        raise NetworkError(f"no numpy dtype for {name}")
    return _TO_NUMPY[name]


def info(dtype: Any, what: str = "dtype") -> DataTypeInfo:
    """The table row of `dtype` (a DSL name, a TensorRT DataType or a numpy dtype): its names, numpy type and
    whether it is a float type."""
    return _INFO[name_of(dtype, what)]
