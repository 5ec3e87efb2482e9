"""The DSL's dtype names: accepted where a dtype is taken, refused with the list of names where unknown."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import run_ops
from trtnet import dtypes, ops
from trtnet.backend import get_trt
from trtnet.errors import ConfigError, NetworkError
from trtnet.nn.module import Input


@pytest.mark.parametrize(
    "name, member",
    [
        ("float32", "FLOAT"),
        ("float16", "HALF"),
        ("bfloat16", "BF16"),
        ("float8_e4m3", "FP8"),
        ("fp8", "FP8"),
        ("fp16", "HALF"),
        ("int8", "INT8"),
        ("int32", "INT32"),
        ("int64", "INT64"),
        ("bool", "BOOL"),
    ],
)
def test_names_map_to_tensorrt_and_back(name, member):
    trt = get_trt()
    assert dtypes.to_trt(name) == getattr(trt.DataType, member)
    assert dtypes.name_of(dtypes.to_trt(name)) == dtypes.canonical(name)


def test_cast_and_constant_take_dsl_names():
    a = np.array([[0, 2, -1]], np.int32)
    (keep, half) = run_ops(
        lambda t: (ops.cast(t, "bool"), ops.constant(np.ones((1, 3), np.float32), "float16").cast("float32")), a
    )
    np.testing.assert_array_equal(keep, a != 0)
    assert keep.dtype == np.bool_ and half.dtype == np.float32
    np.testing.assert_array_equal(half, np.ones((1, 3), np.float32))


def test_unknown_dtype_names_what_is_allowed():
    with pytest.raises(
        NetworkError,
        match=r"^cast dtype 'half' is not a trtnet dtype; use one of float32, float16, "
        r"bfloat16, float8_e4m3, int8, uint8, int32, int64, bool \(or fp32, fp16, "
        r"bf16, fp8\)$",
    ):
        run_ops(lambda t: ops.cast(t, "half"), np.zeros(2, np.float32))
    # an input lists what a numpy array can feed (bfloat16 and FP8 are refused as inputs)
    with pytest.raises(
        NetworkError,
        match=r"^input 'ids' dtype 'int': an input is one of float32, float16, int8, uint8, int32, int64, bool$",
    ):
        Input("ids", (8,), "int")


def test_unknown_activation_names_what_is_allowed():
    with pytest.raises(
        ConfigError,
        match=r"^Mlp act 'swishy' is not a known activation; use one of gelu, gelu_new, "
        r"gelu_pytorch_tanh, gelu_tanh, hardsigmoid, hardswish, leaky_relu, relu, "
        r"relu6, sigmoid, silu, swish, tanh$",
    ):
        from trtnet import nn

        nn.Mlp(4, 8, act="swishy")
