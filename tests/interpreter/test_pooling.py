"""Pooling (trtnet/interpreter/pooling.py) against torch.nn.functional."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.interpreter.cases import CaseTable, Net, check_case, rand, t, torch_or_skip, trt

CASES = CaseTable()


# --- pooling -----------------------------------------------------------------------------------------


def _pool(n: Net, x, kind, window, **attrs):
    layer = n.net.add_pooling_nd(x, kind, window)
    for k, v in attrs.items():
        setattr(layer, k, v)
    return layer


@CASES.case()
def pool_max_padded_strided():
    F = torch_or_skip().nn.functional
    n = Net()
    x = rand(2, 3, 8, 9)
    layer = _pool(n, n.input("x", x.shape), trt.PoolingType.MAX, (3, 3), stride_nd=(2, 2), padding_nd=(1, 1))
    n.mark(layer.get_output(0))
    return [(n.run(x=x)[0], F.max_pool2d(t(x), 3, 2, 1).numpy())]


@CASES.case()
def pool_avg_ceil_mode_variants():
    F = torch_or_skip().nn.functional
    n = Net()
    x = rand(1, 2, 7, 8)
    xin = n.input("x", x.shape)
    up = trt.PaddingMode.EXPLICIT_ROUND_UP
    a = _pool(
        n, xin, trt.PoolingType.AVERAGE, (2, 2), stride_nd=(2, 2), padding_mode=up, average_count_excludes_padding=False
    )
    b = _pool(
        n,
        xin,
        trt.PoolingType.AVERAGE,
        (3, 3),
        stride_nd=(2, 2),
        padding_nd=(1, 1),
        padding_mode=up,
        average_count_excludes_padding=False,
    )
    c = _pool(n, xin, trt.PoolingType.AVERAGE, (3, 3), stride_nd=(2, 2), padding_nd=(1, 1), padding_mode=up)
    d = _pool(n, xin, trt.PoolingType.MAX, (3, 3), stride_nd=(2, 2), padding_mode=up)
    n.mark(*(layer.get_output(0) for layer in (a, b, c, d)))
    got = n.run(x=x)
    ref = [
        F.avg_pool2d(t(x), 2, 2, ceil_mode=True, count_include_pad=True),
        F.avg_pool2d(t(x), 3, 2, 1, ceil_mode=True, count_include_pad=True),
        F.avg_pool2d(t(x), 3, 2, 1, ceil_mode=True, count_include_pad=False),
        F.max_pool2d(t(x), 3, 2, ceil_mode=True),
    ]
    return [(g, r.numpy()) for g, r in zip(got, ref)]


@CASES.case()
def pool_avg_excluding_padding_and_blend():
    F = torch_or_skip().nn.functional
    n = Net()
    x = rand(2, 2, 9, 6)
    xin = n.input("x", x.shape)
    avg = _pool(n, xin, trt.PoolingType.AVERAGE, (3, 2), stride_nd=(2, 2), padding_nd=(1, 1))
    blend = _pool(
        n, xin, trt.PoolingType.MAX_AVERAGE_BLEND, (3, 2), stride_nd=(2, 2), padding_nd=(1, 1), blend_factor=0.25
    )
    n.mark(avg.get_output(0), blend.get_output(0))
    got_avg, got_blend = n.run(x=x)
    ref_avg = F.avg_pool2d(t(x), (3, 2), 2, 1, count_include_pad=False).numpy()
    ref_max = F.max_pool2d(t(x), (3, 2), 2, 1).numpy()
    return [(got_avg, ref_avg), (got_blend, 0.25 * ref_max + 0.75 * ref_avg)]


@CASES.case()
def pool_same_upper_3d():
    F = torch_or_skip().nn.functional
    n = Net()
    x = rand(1, 2, 5, 6, 7)
    layer = _pool(
        n,
        n.input("x", x.shape),
        trt.PoolingType.MAX,
        (2, 2, 2),
        stride_nd=(2, 2, 2),
        padding_mode=trt.PaddingMode.SAME_UPPER,
    )
    n.mark(layer.get_output(0))
    # out = ceil(in / 2) = (3, 3, 4): pad (1, 0, 1) at the end; -inf padding never wins a max.
    ref = F.max_pool3d(F.pad(t(x), (0, 1, 0, 0, 0, 1), value=-math.inf), 2, 2).numpy()
    return [(n.run(x=x)[0], ref)]


@CASES.case()
def pool_avg_sums_in_float64():
    """A window whose float32 sum loses its small values (2^25 + 1 is 2^25 in float32), in each dim's pass of the
    separable sum: the average must be the float64 one, rounded once."""
    torch = torch_or_skip()
    n = Net()
    x = np.zeros((1, 1, 6, 6), np.float32)
    x[0, 0, 0, :3] = [2.0**25, 1.0, -(2.0**25)]  # along a row: the first pass
    x[0, 0, 3:, 4] = [2.0**25, 3.0, -(2.0**25)]  # along a column: the second
    layer = _pool(n, n.input("x", x.shape), trt.PoolingType.AVERAGE, (3, 3), stride_nd=(3, 3))
    n.mark(layer.get_output(0))
    ref = torch.nn.functional.avg_pool2d(torch.from_numpy(x.astype(np.float64)), 3, 3).numpy().astype(np.float32)
    got = n.run(x=x)[0]
    assert got[0, 0, 0, 0] == np.float32(1 / 9) and got[0, 0, 1, 1] == np.float32(3 / 9)
    return [(got, ref)]


@pytest.mark.parametrize("kind", ["MAX", "AVERAGE", "MAX_AVERAGE_BLEND"])
def test_a_window_that_fits_nowhere_makes_an_empty_output(kind) -> None:
    """Window 4 at stride 3 over 3 columns: TensorRT infers 0 outputs there (a stride past the window's end once
    made the taps' slices disagree on their lengths)."""
    n = Net()
    x = np.arange(12, dtype=np.float32).reshape(1, 1, 4, 3)
    layer = _pool(n, n.input("x", x.shape), getattr(trt.PoolingType, kind), (1, 4), stride_nd=(1, 3))
    n.mark(layer.get_output(0))
    assert tuple(layer.get_output(0).shape) == (1, 1, 4, 0)
    (got,) = n.run(x=x)
    assert got.shape == (1, 1, 4, 0) and got.dtype == np.float32


def test_int8_max_pooling_pads_with_the_type_s_least_value() -> None:
    """-inf has no integer form (numpy raised OverflowError): the padding is INT8's least value, which a window of
    least values ties and no other value loses to. (TensorRT infers no output for INT32 pooling.)"""
    n = Net()
    dtype, low = np.int8, np.iinfo(np.int8).min
    x = np.array([[[[low, low, 5], [-7, low, 3], [low, 2, low]]]], dtype)
    layer = _pool(n, n.input("x", x.shape, trt.int8), trt.PoolingType.MAX, (2, 2))
    layer.padding_nd = (1, 1)
    n.mark(layer.get_output(0))
    (got,) = n.run(x=x)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=low)
    expected = np.max(np.lib.stride_tricks.sliding_window_view(padded, (2, 2), axis=(2, 3)), axis=(4, 5))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("c", CASES, ids=CASES.ids())
def test_layer_against_oracle(c) -> None:
    check_case(c)
