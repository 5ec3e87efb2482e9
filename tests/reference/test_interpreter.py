"""The reference interpreter against independent oracles (numpy, torch.nn.functional), layer type by layer type.

Each case builds a tiny network with the raw TensorRT API, runs it through `run_network`, and compares the
result with a computation that shares no code with the interpreter. Tolerances: float32 networks 1e-5
relative / 1e-4 absolute; float16 2e-2 and bfloat16 5e-2 (relative and absolute), since those round every
layer's output.
"""
from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from trtnet.backend import get_trt, logger
from trtnet.errors import InterpreterError
from trtnet.reference import layer_types_supported, run_network
from trtnet.reference.interpreter import check_layer_outputs

trt = get_trt()
RNG = np.random.default_rng(1234)
F32_TOL = dict(rtol=1e-5, atol=1e-4)


def _torch():
    """torch for the rows whose natural oracle is torch.nn.functional; skips the row, with why, without it."""
    return pytest.importorskip("torch", reason="torch is the oracle for this row and is not installed")


class Net:
    """A fresh network plus the numpy buffers its weights point into (TensorRT does not copy them)."""

    builder = None

    def __init__(self) -> None:
        if Net.builder is None:
            Net.builder = trt.Builder(logger())
        self.net = Net.builder.create_network(0)
        self.keep: list[np.ndarray] = []

    def input(self, name: str, shape: tuple[int, ...], dtype=None) -> object:
        return self.net.add_input(name, dtype or trt.float32, shape)

    def weights(self, arr: np.ndarray) -> object:
        arr = np.ascontiguousarray(arr)
        self.keep.append(arr)
        if arr.dtype == ml_dtypes.bfloat16:
            return trt.Weights(trt.DataType.BF16, arr.ctypes.data, arr.size)
        return trt.Weights(arr)

    def const(self, arr: np.ndarray) -> object:
        arr = np.asarray(arr)
        return self.net.add_constant(arr.shape, self.weights(arr)).get_output(0)

    def mark(self, *tensors: object) -> None:
        for t in tensors:
            self.net.mark_output(t)

    def run(self, **inputs: np.ndarray) -> list[np.ndarray]:
        outs = run_network(self.net, inputs)
        return list(outs.values())


def rand(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def t(x: np.ndarray):
    return _torch().from_numpy(np.ascontiguousarray(x))


# ------------------------------------------------------------------------------------------------------
# Table of cases: each builds a network, runs it, and returns (got, expected, tolerance) pairs.


@dataclass
class Case:
    name: str
    fn: Callable[[], list[tuple[np.ndarray, np.ndarray]]]
    tol: dict


CASES: list[Case] = []


def case(*, tol: dict | None = None):
    """Registers a case; rows needing torch call `_torch()`, which skips them with a reason if it is absent."""

    def wrap(fn):
        CASES.append(Case(fn.__name__, fn, tol or F32_TOL))
        return fn

    return wrap


# --- convolution -------------------------------------------------------------------------------------


def _conv(n: Net, x, w: np.ndarray, b: np.ndarray | None, **attrs):
    bias = n.weights(b) if b is not None else trt.Weights()
    layer = n.net.add_convolution_nd(x, w.shape[0], w.shape[2:], n.weights(w), bias)
    for k, v in attrs.items():
        setattr(layer, k, v)
    return layer


@case()
def conv_stride2_odd_bias():
    F = _torch().nn.functional
    n = Net()
    x, w, b = rand(2, 3, 9, 9), rand(4, 3, 3, 3), rand(4)
    layer = _conv(n, n.input("x", x.shape), w, b, stride_nd=(2, 2), padding_nd=(1, 1))
    n.mark(layer.get_output(0))
    return [(n.run(x=x)[0], F.conv2d(t(x), t(w), t(b), stride=2, padding=1).numpy())]


@case()
def conv_depthwise_dilated():
    F = _torch().nn.functional
    n = Net()
    x, w = rand(1, 6, 11, 10), rand(6, 1, 3, 3)
    layer = _conv(n, n.input("x", x.shape), w, None, num_groups=6, dilation_nd=(2, 2), padding_nd=(2, 1))
    n.mark(layer.get_output(0))
    return [(n.run(x=x)[0], F.conv2d(t(x), t(w), groups=6, dilation=2, padding=(2, 1)).numpy())]


@case()
def conv_groups_asymmetric_padding():
    F = _torch().nn.functional
    n = Net()
    x, w, b = rand(2, 4, 7, 8), rand(6, 2, 3, 2), rand(6)
    layer = _conv(n, n.input("x", x.shape), w, b, num_groups=2, pre_padding=(1, 0), post_padding=(2, 1),
                  stride_nd=(2, 1))
    n.mark(layer.get_output(0))
    # F.pad takes (left, right, top, bottom).
    ref = F.conv2d(F.pad(t(x), (0, 1, 1, 2)), t(w), t(b), stride=(2, 1), groups=2)
    return [(n.run(x=x)[0], ref.numpy())]


@case()
def conv_same_upper_and_lower():
    F = _torch().nn.functional
    n = Net()
    x, w = rand(1, 2, 10, 9), rand(3, 2, 4, 3)
    xin = n.input("x", x.shape)
    up = _conv(n, xin, w, None, stride_nd=(2, 2), padding_mode=trt.PaddingMode.SAME_UPPER)
    lo = _conv(n, xin, w, None, stride_nd=(2, 2), padding_mode=trt.PaddingMode.SAME_LOWER)
    n.mark(up.get_output(0), lo.get_output(0))
    got_up, got_lo = n.run(x=x)
    # out = ceil(in / 2): H 10 -> 5 needs 4*2+4-10 = 2 rows; W 9 -> 5 needs 4*2+3-9 = 2 cols (split evenly);
    # kernel 4 over height: pad 2 -> 1/1 either way. Make the odd split visible with a width-4 variant below.
    ref = F.conv2d(F.pad(t(x), (1, 1, 1, 1)), t(w), stride=2).numpy()
    x2, w2 = rand(1, 2, 8, 8), rand(3, 2, 2, 2)
    n2 = Net()
    xin2 = n2.input("x", x2.shape)
    a = _conv(n2, xin2, w2, None, stride_nd=(1, 1), padding_mode=trt.PaddingMode.SAME_UPPER)
    b = _conv(n2, xin2, w2, None, stride_nd=(1, 1), padding_mode=trt.PaddingMode.SAME_LOWER)
    n2.mark(a.get_output(0), b.get_output(0))
    got_a, got_b = n2.run(x=x2)
    ref_a = F.conv2d(F.pad(t(x2), (0, 1, 0, 1)), t(w2)).numpy()  # odd pixel at the end
    ref_b = F.conv2d(F.pad(t(x2), (1, 0, 1, 0)), t(w2)).numpy()  # odd pixel at the start
    return [(got_up, ref), (got_lo, ref), (got_a, ref_a), (got_b, ref_b)]


@case()
def conv_round_up_reads_zeros_past_padding():
    F = _torch().nn.functional
    n = Net()
    x, w = rand(1, 1, 8, 8), rand(1, 1, 3, 3)
    layer = _conv(n, n.input("x", x.shape), w, None, stride_nd=(2, 2), padding_mode=trt.PaddingMode.EXPLICIT_ROUND_UP)
    n.mark(layer.get_output(0))
    # ceil((8 - 3) / 2) + 1 = 4 outputs; the last window needs one zero row/col beyond the input.
    return [(n.run(x=x)[0], F.conv2d(F.pad(t(x), (0, 1, 0, 1)), t(w), stride=2).numpy())]


@case()
def conv_kernel_and_bias_as_tensors():
    F = _torch().nn.functional
    n = Net()
    x, w, b = rand(2, 3, 6, 6), rand(5, 3, 3, 3), rand(5)
    layer = n.net.add_convolution_nd(n.input("x", x.shape), 5, (3, 3), trt.Weights(), trt.Weights())
    layer.set_input(1, n.const(w))
    layer.set_input(2, n.const(b))
    n.mark(layer.get_output(0))
    return [(n.run(x=x)[0], F.conv2d(t(x), t(w), t(b)).numpy())]


@case()
def conv3d_strided():
    F = _torch().nn.functional
    n = Net()
    x, w = rand(1, 2, 5, 6, 7), rand(3, 2, 2, 3, 3)
    layer = _conv(n, n.input("x", x.shape), w, None, stride_nd=(2, 1, 2), padding_nd=(1, 1, 0))
    n.mark(layer.get_output(0))
    return [(n.run(x=x)[0], F.conv3d(t(x), t(w), stride=(2, 1, 2), padding=(1, 1, 0)).numpy())]


@case()
def deconv_stride2_groups_padding():
    F = _torch().nn.functional
    n = Net()
    x, w, b = rand(2, 4, 5, 6), rand(4, 3, 3, 3), rand(6)  # [C, K/groups, kh, kw]
    layer = n.net.add_deconvolution_nd(n.input("x", x.shape), 6, (3, 3), n.weights(w), n.weights(b))
    layer.stride_nd, layer.padding_nd, layer.num_groups = (2, 2), (1, 1), 2
    n.mark(layer.get_output(0))
    return [(n.run(x=x)[0], F.conv_transpose2d(t(x), t(w), t(b), stride=2, padding=1, groups=2).numpy())]


@case()
def deconv_asymmetric_crop_dilated():
    F = _torch().nn.functional
    n = Net()
    x, w = rand(1, 2, 4, 5), rand(2, 3, 3, 2)
    layer = n.net.add_deconvolution_nd(n.input("x", x.shape), 3, (3, 2), n.weights(w), trt.Weights())
    layer.stride_nd, layer.dilation_nd = (2, 3), (2, 1)
    layer.pre_padding, layer.post_padding = (1, 0), (0, 2)
    n.mark(layer.get_output(0))
    full = F.conv_transpose2d(t(x), t(w), stride=(2, 3), dilation=(2, 1)).numpy()
    return [(n.run(x=x)[0], full[:, :, 1:, : full.shape[3] - 2])]


# --- pooling -----------------------------------------------------------------------------------------


def _pool(n: Net, x, kind, window, **attrs):
    layer = n.net.add_pooling_nd(x, kind, window)
    for k, v in attrs.items():
        setattr(layer, k, v)
    return layer


@case()
def pool_max_padded_strided():
    F = _torch().nn.functional
    n = Net()
    x = rand(2, 3, 8, 9)
    layer = _pool(n, n.input("x", x.shape), trt.PoolingType.MAX, (3, 3), stride_nd=(2, 2), padding_nd=(1, 1))
    n.mark(layer.get_output(0))
    return [(n.run(x=x)[0], F.max_pool2d(t(x), 3, 2, 1).numpy())]


@case()
def pool_avg_ceil_mode_variants():
    F = _torch().nn.functional
    n = Net()
    x = rand(1, 2, 7, 8)
    xin = n.input("x", x.shape)
    up = trt.PaddingMode.EXPLICIT_ROUND_UP
    a = _pool(n, xin, trt.PoolingType.AVERAGE, (2, 2), stride_nd=(2, 2), padding_mode=up,
              average_count_excludes_padding=False)
    b = _pool(n, xin, trt.PoolingType.AVERAGE, (3, 3), stride_nd=(2, 2), padding_nd=(1, 1), padding_mode=up,
              average_count_excludes_padding=False)
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


@case()
def pool_avg_excluding_padding_and_blend():
    F = _torch().nn.functional
    n = Net()
    x = rand(2, 2, 9, 6)
    xin = n.input("x", x.shape)
    avg = _pool(n, xin, trt.PoolingType.AVERAGE, (3, 2), stride_nd=(2, 2), padding_nd=(1, 1))
    blend = _pool(n, xin, trt.PoolingType.MAX_AVERAGE_BLEND, (3, 2), stride_nd=(2, 2), padding_nd=(1, 1),
                  blend_factor=0.25)
    n.mark(avg.get_output(0), blend.get_output(0))
    got_avg, got_blend = n.run(x=x)
    ref_avg = F.avg_pool2d(t(x), (3, 2), 2, 1, count_include_pad=False).numpy()
    ref_max = F.max_pool2d(t(x), (3, 2), 2, 1).numpy()
    return [(got_avg, ref_avg), (got_blend, 0.25 * ref_max + 0.75 * ref_avg)]


@case()
def pool_same_upper_3d():
    F = _torch().nn.functional
    n = Net()
    x = rand(1, 2, 5, 6, 7)
    layer = _pool(n, n.input("x", x.shape), trt.PoolingType.MAX, (2, 2, 2), stride_nd=(2, 2, 2),
                  padding_mode=trt.PaddingMode.SAME_UPPER)
    n.mark(layer.get_output(0))
    # out = ceil(in / 2) = (3, 3, 4): pad (1, 0, 1) at the end; -inf padding never wins a max.
    ref = F.max_pool3d(F.pad(t(x), (0, 1, 0, 0, 0, 1), value=-math.inf), 2, 2).numpy()
    return [(n.run(x=x)[0], ref)]


# --- pointwise -----------------------------------------------------------------------------------------


def _activation_refs(x: np.ndarray) -> dict[str, tuple[float, float, np.ndarray]]:
    torch = _torch()
    F = torch.nn.functional
    tx = t(x)
    return {
        "RELU": (0, 0, F.relu(tx).numpy()),
        "SIGMOID": (0, 0, torch.sigmoid(tx).numpy()),
        "TANH": (0, 0, torch.tanh(tx).numpy()),
        "LEAKY_RELU": (0.1, 0, F.leaky_relu(tx, 0.1).numpy()),
        "ELU": (0.7, 0, F.elu(tx, 0.7).numpy()),
        "SELU": (1.6732632423543772, 1.0507009873554805, F.selu(tx).numpy()),
        "SOFTSIGN": (0, 0, F.softsign(tx).numpy()),
        "SOFTPLUS": (0.5, 2.0, (0.5 * F.softplus(tx, beta=2.0) * 2.0).numpy()),  # alpha*log(1+exp(beta x))
        "CLIP": (-0.5, 0.8, torch.clamp(tx, -0.5, 0.8).numpy()),
        "HARD_SIGMOID": (0.2, 0.5, torch.clamp(0.2 * tx + 0.5, 0, 1).numpy()),
        "SCALED_TANH": (1.5, 0.5, (1.5 * torch.tanh(0.5 * tx)).numpy()),
        "THRESHOLDED_RELU": (0.3, 0, F.threshold(tx, 0.3, 0.0).numpy()),
        "GELU_ERF": (0, 0, F.gelu(tx).numpy()),
        "GELU_TANH": (0, 0, F.gelu(tx, approximate="tanh").numpy()),
    }


@case()
def activations_all_types():
    n = Net()
    x = rand(3, 17) * 3
    xin = n.input("x", x.shape)
    refs = _activation_refs(x)
    assert set(refs) == set(trt.ActivationType.__members__)
    for kind, (alpha, beta, _) in refs.items():
        layer = n.net.add_activation(xin, getattr(trt.ActivationType, kind))
        layer.alpha, layer.beta = alpha, beta
        n.mark(layer.get_output(0))
    return list(zip(n.run(x=x), (r for _, _, r in refs.values())))


@case()
def elementwise_float_ops_broadcast():
    n = Net()
    a, b = rand(2, 1, 4), np.abs(rand(1, 3, 4)) + 0.5
    ai, bi = n.input("a", a.shape), n.input("b", b.shape)
    ops = {
        "SUM": a + b, "PROD": a * b, "MAX": np.maximum(a, b), "MIN": np.minimum(a, b), "SUB": a - b,
        "DIV": a / b, "POW": np.power(np.abs(a), b), "FLOOR_DIV": np.floor(a / b),
        "EQUAL": np.ones(a.shape, bool), "GREATER": a > b, "LESS": a < b,  # EQUAL compares a with itself
    }
    pa = n.net.add_unary(ai, trt.UnaryOperation.ABS).get_output(0)
    for op in ops:
        left = pa if op == "POW" else ai
        right = ai if op == "EQUAL" else bi
        n.mark(n.net.add_elementwise(left, right, getattr(trt.ElementWiseOperation, op)).get_output(0))
    got = n.run(a=a, b=b)
    return list(zip(got, ops.values()))


@case()
def elementwise_int_and_logical():
    n = Net()
    a = np.array([[7, -7, 6, -1, 0]], np.int32)
    b = np.array([[2, 2, -4, 3, 5]], np.int32)
    p = np.array([[True, False, True, False, True]])
    q = np.array([[True, True, False, False, True]])
    ai, bi = n.input("a", a.shape, trt.int32), n.input("b", b.shape, trt.int32)
    pi, qi = n.input("p", p.shape, trt.bool), n.input("q", q.shape, trt.bool)
    E = trt.ElementWiseOperation
    outs = [n.net.add_elementwise(ai, bi, op).get_output(0) for op in (E.DIV, E.FLOOR_DIV, E.SUM, E.POW)]
    outs += [n.net.add_elementwise(pi, qi, op).get_output(0) for op in (E.AND, E.OR, E.XOR)]
    n.mark(*outs)
    got = n.run(a=a, b=b, p=p, q=q)
    trunc = np.array([[3, -3, -1, 0, 0]], np.int32)  # C-style division rounds toward zero
    pow_ = np.array([[49, 49, 0, -1, 0]], np.int32)  # integer 6**-4 truncates to 0
    expected = [trunc, a // b, a + b, pow_, p & q, p | q, p ^ q]
    assert got[0].dtype == np.int32 and got[4].dtype == np.bool_
    return list(zip(got, expected))


@case()
def unary_all_ops():
    n = Net()
    x = np.array([[0.3, 0.5, 1.5, 2.5, -0.5, -2.7, 0.9]], np.float32)
    pos = np.array([[1.2, 2.0, 3.5, 1.01, 4.0, 9.0, 1.5]], np.float32)
    xi, pi = n.input("x", x.shape), n.input("pos", pos.shape)
    U = trt.UnaryOperation
    unit = np.clip(x, -0.9, 0.9)
    table = {
        "EXP": (xi, np.exp(x)), "LOG": (pi, np.log(pos)), "SQRT": (pi, np.sqrt(pos)), "RECIP": (pi, 1 / pos),
        "ABS": (xi, np.abs(x)), "NEG": (xi, -x), "SIN": (xi, np.sin(x)), "COS": (xi, np.cos(x)),
        "TAN": (xi, np.tan(x)), "SINH": (xi, np.sinh(x)), "COSH": (xi, np.cosh(x)), "ATAN": (xi, np.arctan(x)),
        "ASINH": (xi, np.arcsinh(x)), "ACOSH": (pi, np.arccosh(pos)), "CEIL": (xi, np.ceil(x)),
        "FLOOR": (xi, np.floor(x)), "SIGN": (xi, np.sign(x)),
        "ROUND": (xi, np.array([[0, 0, 2, 2, -0, -3, 1]], np.float32)),  # half to even
        "ERF": (xi, np.array([[math.erf(v) for v in x[0]]], np.float32)),
    }
    clipped = n.const(unit)
    table["ASIN"] = (clipped, np.arcsin(unit))
    table["ACOS"] = (clipped, np.arccos(unit))
    table["ATANH"] = (clipped, np.arctanh(unit))
    for op, (src, _) in table.items():
        n.mark(n.net.add_unary(src, getattr(U, op)).get_output(0))
    b = np.array([[True, False]])
    bi = n.input("b", b.shape, trt.bool)
    n.mark(n.net.add_unary(bi, U.NOT).get_output(0))
    special = np.array([[np.inf, np.nan, 1.0]], np.float32)
    si = n.input("s", special.shape)
    n.mark(n.net.add_unary(si, U.ISINF).get_output(0), n.net.add_unary(si, U.ISNAN).get_output(0))
    got = n.run(x=x, pos=pos, b=b, s=special)
    expected = [r for _, r in table.values()] + [~b, np.array([[True, False, False]]), np.array([[False, True, False]])]
    assert len(table) + 3 == len(U.__members__)
    return list(zip(got, expected))


@case()
def prelu_select_scale():
    n = Net()
    x, slope = rand(2, 3, 4), np.array([0.1, 0.2, 0.3], np.float32).reshape(1, 3, 1)
    xi = n.input("x", x.shape)
    pr = n.net.add_parametric_relu(xi, n.const(slope))
    cond = x > 0
    sel = n.net.add_select(n.input("c", x.shape, trt.bool), xi, n.const(np.zeros_like(x)))
    shift = np.array([0.5, 1.0, 2.0], np.float32)
    scale = np.array([2.0, 3.0, 0.5], np.float32)
    power = np.array([2, 1, 2], np.float32)
    ch = n.net.add_scale_nd(n.net.add_unary(xi, trt.UnaryOperation.ABS).get_output(0), trt.ScaleMode.CHANNEL,
                            n.weights(shift), n.weights(scale), n.weights(power), 1)
    uni = n.net.add_scale(xi, trt.ScaleMode.UNIFORM, n.weights(np.array([1.0], np.float32)),
                          n.weights(np.array([-2.0], np.float32)), trt.Weights())
    elem_w = rand(3, 4)
    el = n.net.add_scale_nd(xi, trt.ScaleMode.ELEMENTWISE, trt.Weights(), n.weights(elem_w), trt.Weights(), 1)
    n.mark(pr.get_output(0), sel.get_output(0), ch.get_output(0), uni.get_output(0), el.get_output(0))
    got = n.run(x=x, c=cond)
    return [
        (got[0], np.where(x >= 0, x, slope * x)),
        (got[1], np.where(cond, x, 0)),
        (got[2], (np.abs(x) * scale.reshape(3, 1) + shift.reshape(3, 1)) ** power.reshape(3, 1)),
        (got[3], x * -2 + 1),
        (got[4], x * elem_w),
    ]


@case()
def cast_identity():
    n = Net()
    x = np.array([[1.7, -1.7, 0.0, 2.5, -0.2]], np.float32)
    xi = n.input("x", x.shape)
    outs = [n.net.add_cast(xi, dt).get_output(0) for dt in (trt.int32, trt.bool, trt.float16, trt.int64)]
    ints = n.net.add_cast(xi, trt.int8).get_output(0)
    outs.append(n.net.add_cast(ints, trt.float32).get_output(0))
    outs.append(n.net.add_identity(xi).get_output(0))
    n.mark(*outs)
    got = n.run(x=x)
    expected = [
        np.array([[1, -1, 0, 2, 0]], np.int32), x != 0, x.astype(np.float16), np.array([[1, -1, 0, 2, 0]], np.int64),
        np.array([[1, -1, 0, 2, 0]], np.float32), x,
    ]
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
    return list(zip(got, expected))


# --- shape manipulation -----------------------------------------------------------------------------


@case()
def shuffle_transpose_reshape_transpose():
    n = Net()
    x = rand(2, 3, 4, 5)
    layer = n.net.add_shuffle(n.input("x", x.shape))
    layer.first_transpose = (0, 2, 1, 3)
    layer.reshape_dims = (0, 0, -1)
    layer.second_transpose = (2, 0, 1)
    n.mark(layer.get_output(0))
    ref = np.transpose(np.transpose(x, (0, 2, 1, 3)).reshape(2, 4, 15), (2, 0, 1))
    return [(n.run(x=x)[0], ref)]


@case()
def shuffle_dynamic_reshape_and_batch():
    n = Net()
    x = rand(3, 4, 6)
    xi = n.input("x", (-1, 4, 6))
    shape = n.net.add_shape(xi).get_output(0)  # [B, 4, 6] as INT64
    head = n.net.add_slice(shape, (0,), (1,), (1,)).get_output(0)
    target = n.net.add_concatenation([head, n.const(np.array([2, 12], np.int64))]).get_output(0)
    layer = n.net.add_shuffle(xi)
    layer.set_input(1, target)
    flat = n.net.add_shuffle(xi)
    flat.reshape_dims = (-1,)
    n.mark(layer.get_output(0), shape, flat.get_output(0))
    got = n.run(x=x)
    assert tuple(n.net.get_output(0).shape) == (-1, 2, 12)
    return [(got[0], x.reshape(3, 2, 12)), (got[1], np.array([3, 4, 6], np.int64)), (got[2], x.reshape(-1))]


@case()
def concat_pad_squeeze_unsqueeze():
    n = Net()
    a, b = rand(2, 3, 4), rand(2, 1, 4)
    ai, bi = n.input("a", a.shape), n.input("b", b.shape)
    cat = n.net.add_concatenation([ai, bi, ai])
    cat.axis = 1
    a4 = rand(1, 2, 3, 4)
    pad = n.net.add_padding_nd(n.input("a4", a4.shape), (1, -1), (2, 1))
    sq = n.net.add_squeeze(bi, n.const(np.array([1], np.int64)))
    unsq = n.net.add_unsqueeze(ai, n.const(np.array([0, -1], np.int64)))
    n.mark(cat.get_output(0), pad.get_output(0), sq.get_output(0), unsq.get_output(0))
    got = n.run(a=a, b=b, a4=a4)
    padded = np.pad(a4, ((0, 0), (0, 0), (1, 2), (0, 1)))[..., 1:]
    return [
        (got[0], np.concatenate([a, b, a], axis=1)), (got[1], padded), (got[2], b[:, 0]),
        (got[3], a[None, ..., None]),
    ]


@case()
def slice_static_and_modes():
    n = Net()
    x = rand(4, 5)
    xi = n.input("x", x.shape)
    outs = [n.net.add_slice(xi, (1, 0), (2, 3), (2, 2)), n.net.add_slice(xi, (3, 4), (3, 2), (-1, -2))]
    for mode, start in ((trt.SampleMode.WRAP, (-2, 3)), (trt.SampleMode.CLAMP, (-2, 3)),
                        (trt.SampleMode.FILL, (-2, 3)), (trt.SampleMode.REFLECT, (-2, 3))):
        layer = n.net.add_slice(xi, start, (7, 6), (1, 1))
        layer.mode = mode
        outs.append(layer)
    fill = n.net.add_slice(xi, (-1, -1), (6, 7), (1, 1))
    fill.mode = trt.SampleMode.FILL
    fill.set_input(4, n.const(np.array(9.0, np.float32)))
    outs.append(fill)
    n.mark(*(layer.get_output(0) for layer in outs))
    got = n.run(x=x)
    rows, cols = np.arange(-2, 5), np.arange(3, 9)

    def reflect(i, size):
        period = 2 * (size - 1)
        m = np.mod(i, period)
        return np.where(m < size, m, period - m)

    in_rows, in_cols = (rows >= 0) & (rows < 4), (cols >= 0) & (cols < 5)
    filled = np.where(in_rows[:, None] & in_cols[None], x[np.ix_(np.clip(rows, 0, 3), np.clip(cols, 0, 4))], 0)
    padded9 = np.pad(x, ((1, 1), (1, 1)), constant_values=9.0)
    expected = [
        x[1:4:2, 0:5:2],
        x[3:0:-1, 4:0:-2],
        x[np.ix_(np.mod(rows, 4), np.mod(cols, 5))],
        x[np.ix_(np.clip(rows, 0, 3), np.clip(cols, 0, 4))],
        filled,
        x[np.ix_(reflect(rows, 4), reflect(cols, 5))],
        padded9,
    ]
    return list(zip(got, expected))


@case()
def slice_dynamic_inputs_and_axes():
    n = Net()
    x = rand(3, 6, 8)
    xi = n.input("x", x.shape)
    layer = n.net.add_slice(xi, (0, 0, 0), (1, 1, 1), (1, 1, 1))
    layer.set_input(1, n.const(np.array([1, 1, 7], np.int64)))
    layer.set_input(2, n.const(np.array([2, 2, 3], np.int64)))
    layer.set_input(3, n.const(np.array([1, 3, -2], np.int64)))
    by_axes = n.net.add_slice(xi, (0,), (1,), (1,))
    by_axes.set_input(1, n.const(np.array([2], np.int64)))
    by_axes.set_input(2, n.const(np.array([3], np.int64)))
    by_axes.set_input(3, n.const(np.array([2], np.int64)))
    by_axes.set_input(5, n.const(np.array([-1], np.int64)))
    n.mark(layer.get_output(0), by_axes.get_output(0))
    got = n.run(x=x)
    return [(got[0], x[1:3, 1:5:3, 7:1:-2]), (got[1], x[:, :, 2:7:2])]


# --- reductions, softmax, topk, cumulative ------------------------------------------------------------


@case()
def softmax_reduce():
    torch = _torch()
    n = Net()
    x = rand(2, 3, 4, 5)
    xi = n.input("x", x.shape)
    sm1 = n.net.add_softmax(xi)
    sm1.axes = 1 << 1
    sm3 = n.net.add_softmax(xi)
    sm3.axes = 1 << 3
    R = trt.ReduceOperation
    reds = [
        n.net.add_reduce(xi, R.SUM, 0b1010, True), n.net.add_reduce(xi, R.AVG, 0b0110, False),
        n.net.add_reduce(xi, R.MAX, 0b1000, False), n.net.add_reduce(xi, R.MIN, 0b0001, True),
        n.net.add_reduce(xi, R.PROD, 0b0100, False),
    ]
    ints = np.arange(12, dtype=np.int32).reshape(3, 4)
    isum = n.net.add_reduce(n.input("i", ints.shape, trt.int32), R.SUM, 0b10, False)
    n.mark(sm1.get_output(0), sm3.get_output(0), *(r.get_output(0) for r in reds), isum.get_output(0))
    got = n.run(x=x, i=ints)
    tx = t(x)
    expected = [
        torch.softmax(tx, 1).numpy(), torch.softmax(tx, 3).numpy(), x.sum(axis=(1, 3), keepdims=True),
        x.mean(axis=(1, 2)), x.max(axis=3), x.min(axis=0, keepdims=True), x.prod(axis=2),
        ints.sum(axis=1).astype(np.int32),
    ]
    assert got[-1].dtype == np.int32
    return list(zip(got, expected))


@case()
def topk_cumulative_onehot():
    n = Net()
    x = np.array([[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]], np.float32)
    xi = n.input("x", x.shape)
    top = n.net.add_topk(xi, trt.TopKOperation.MAX, 3, 1 << 1)
    low = n.net.add_topk(xi, trt.TopKOperation.MIN, 2, 1 << 1)
    axis = n.const(np.array(1, np.int32))
    cum = n.net.add_cumulative(xi, axis, trt.CumulativeOperation.SUM, True, True)
    plain = n.net.add_cumulative(xi, axis, trt.CumulativeOperation.SUM, False, False)
    idx = np.array([[0, 2], [-1, 5]], np.int32)
    oh = n.net.add_one_hot(n.input("idx", idx.shape, trt.int32), n.const(np.array([0.5, 2.0], np.float32)),
                           n.const(np.array(4, np.int32)), 1)
    n.mark(*(top.get_output(i) for i in range(2)), *(low.get_output(i) for i in range(2)), cum.get_output(0),
           plain.get_output(0), oh.get_output(0))
    got = n.run(x=x, idx=idx)
    rev_excl = np.flip(np.cumsum(np.flip(x, 1), 1), 1) - x
    hot = np.full((2, 4, 2), 0.5, np.float32)
    hot[0, 0, 0] = hot[0, 2, 1] = hot[1, 3, 0] = 2.0  # -1 is depth-1; 5 is out of range: all off
    return [
        (got[0], np.array([[9, 6, 5]], np.float32)), (got[1], np.array([[5, 7, 4]], np.int32)),
        (got[2], np.array([[1, 1]], np.float32)), (got[3], np.array([[1, 3]], np.int32)),
        (got[4], rev_excl), (got[5], np.cumsum(x, 1)), (got[6], hot),
    ]


# --- products -------------------------------------------------------------------------------------------


@case()
def matmul_transposes_broadcast_vectors():
    n = Net()
    M = trt.MatrixOperation
    a, b = rand(2, 1, 3, 4), rand(1, 5, 4, 6)
    ai, bi = n.input("a", a.shape), n.input("b", b.shape)
    plain = n.net.add_matrix_multiply(ai, M.NONE, bi, M.NONE)
    at, bt = rand(2, 4, 3), rand(2, 6, 4)
    tt = n.net.add_matrix_multiply(n.input("at", at.shape), M.TRANSPOSE, n.input("bt", bt.shape), M.TRANSPOSE)
    v, mat = rand(2, 4), rand(2, 4, 3)
    vm = n.net.add_matrix_multiply(n.input("v", v.shape), M.VECTOR, n.input("m", mat.shape), M.NONE)
    mv = n.net.add_matrix_multiply(n.input("m2", (2, 3, 4)), M.NONE, n.input("v2", v.shape), M.VECTOR)
    m2 = rand(2, 3, 4)
    vv = n.net.add_matrix_multiply(n.input("v3", v.shape), M.VECTOR, n.input("v4", v.shape), M.VECTOR)
    e1, e2 = rand(2, 3, 4), rand(4, 5)
    ein = n.net.add_einsum([n.input("e1", e1.shape), n.input("e2", e2.shape)], "bij,jk->bki")
    n.mark(*(layer.get_output(0) for layer in (plain, tt, vm, mv, vv, ein)))
    got = n.run(a=a, b=b, at=at, bt=bt, v=v, m=mat, m2=m2, v2=v, v3=v, v4=v, e1=e1, e2=e2)
    f64 = lambda z: z.astype(np.float64)  # noqa: E731
    return [
        (got[0], f64(a) @ f64(b)),
        (got[1], np.swapaxes(f64(at), 1, 2) @ np.swapaxes(f64(bt), 1, 2)),
        (got[2], np.einsum("bk,bkn->bn", f64(v), f64(mat))),
        (got[3], np.einsum("bmk,bk->bm", f64(m2), f64(v))),
        (got[4], np.sum(f64(v) * f64(v), axis=1)),
        (got[5], np.einsum("bij,jk->bki", f64(e1), f64(e2))),
    ]


# --- gather, resize, fill -------------------------------------------------------------------------------


@case()
def gather_modes():
    n = Net()
    data = rand(3, 4, 5)
    di = n.input("d", data.shape)
    idx = np.array([[0, 3], [-1, 1]], np.int32)
    g_default = n.net.add_gather(di, n.input("i", idx.shape, trt.int32), 1)
    per_batch = np.array([[1, 0], [3, 3], [2, 0]], np.int32)
    g_batch = n.net.add_gather(di, n.input("pb", per_batch.shape, trt.int32), 2)
    g_batch.num_elementwise_dims = 1
    el_idx = RNG.integers(0, 4, size=(3, 2, 5)).astype(np.int32)
    g_el = n.net.add_gather_v2(di, n.input("e", el_idx.shape, trt.int32), trt.GatherMode.ELEMENT)
    g_el.axis = 1
    nd_idx = np.array([[[1, 2], [3, 0]], [[0, 4], [2, 2]], [[3, 3], [1, 1]]], np.int32)  # [3 batch, 2, 2 coords]
    g_nd = n.net.add_gather_v2(di, n.input("nd", nd_idx.shape, trt.int32), trt.GatherMode.ND)
    g_nd.num_elementwise_dims = 1
    nd0 = np.array([[2, 1], [0, 3]], np.int64)
    g_nd0 = n.net.add_gather_v2(di, n.input("nd0", nd0.shape, trt.int64), trt.GatherMode.ND)
    n.mark(*(layer.get_output(0) for layer in (g_default, g_batch, g_el, g_nd, g_nd0)))
    got = n.run(d=data, i=idx, pb=per_batch, e=el_idx, nd=nd_idx, nd0=nd0)
    batch_ref = np.stack([data[b][:, per_batch[b]] for b in range(3)])
    nd_ref = np.stack([np.stack([data[b, c[0], c[1]] for c in nd_idx[b]]) for b in range(3)])
    return [
        (got[0], data[:, [[0, 3], [3, 1]]]),
        (got[1], batch_ref),
        (got[2], np.take_along_axis(data, el_idx, axis=1)),
        (got[3], nd_ref),
        (got[4], np.stack([data[2, 1], data[0, 3]])),
    ]


def _resize(n: Net, x, *, mode, coord, shape=None, scales=None, rounding=None):
    layer = n.net.add_resize(x)
    layer.resize_mode = mode
    layer.coordinate_transformation = coord
    if rounding is not None:
        layer.nearest_rounding = rounding
    if shape is not None:
        layer.shape = shape
    else:
        layer.scales = scales
    return layer


@case()
def resize_modes():
    F = _torch().nn.functional
    n = Net()
    x = rand(1, 2, 5, 6)
    xi = n.input("x", x.shape)
    I, C = trt.InterpolationMode, trt.ResizeCoordinateTransformation
    layers = [
        _resize(n, xi, mode=I.NEAREST, coord=C.ASYMMETRIC, scales=[1, 1, 2, 2], rounding=trt.ResizeRoundMode.FLOOR),
        _resize(n, xi, mode=I.NEAREST, coord=C.HALF_PIXEL, shape=(1, 2, 8, 9), rounding=trt.ResizeRoundMode.HALF_UP),
        _resize(n, xi, mode=I.LINEAR, coord=C.ALIGN_CORNERS, shape=(1, 2, 9, 4)),
        _resize(n, xi, mode=I.LINEAR, coord=C.HALF_PIXEL, shape=(1, 2, 11, 3)),
        _resize(n, xi, mode=I.LINEAR, coord=C.HALF_PIXEL, scales=[1, 1, 2, 1.5]),
        _resize(n, xi, mode=I.CUBIC, coord=C.HALF_PIXEL, shape=(1, 2, 10, 12)),
    ]
    n.mark(*(layer.get_output(0) for layer in layers))
    got = n.run(x=x)
    tx = t(x)
    expected = [
        F.interpolate(tx, scale_factor=2, mode="nearest"),
        F.interpolate(tx, size=(8, 9), mode="nearest-exact"),
        F.interpolate(tx, size=(9, 4), mode="bilinear", align_corners=True),
        F.interpolate(tx, size=(11, 3), mode="bilinear", align_corners=False),
        F.interpolate(tx, scale_factor=(2, 1.5), mode="bilinear", align_corners=False),
        F.interpolate(tx, size=(10, 12), mode="bicubic", align_corners=False),
    ]
    return [(g, e.numpy()) for g, e in zip(got, expected)]


@case()
def fill_linspace():
    n = Net()
    f = n.net.add_fill((4,), trt.FillOperation.LINSPACE, trt.float32)
    f.alpha, f.beta = 1.5, 0.5
    f2 = n.net.add_fill((2, 3), trt.FillOperation.LINSPACE, trt.int32)
    f2.set_input(1, n.const(np.array(10, np.int32)))
    f2.set_input(2, n.const(np.array([100, 1], np.int32)))
    n.mark(f.get_output(0), f2.get_output(0))
    got = n.run()
    return [
        (got[0], np.array([1.5, 2, 2.5, 3], np.float32)),
        (got[1], np.array([[10, 11, 12], [110, 111, 112]], np.int32)),
    ]


# --- normalization -------------------------------------------------------------------------------------


@case()
def normalization_layer_instance_group():
    F = _torch().nn.functional
    n = Net()
    x = rand(2, 4, 3, 5)
    xi = n.input("x", x.shape)
    g_last, b_last = rand(1, 1, 1, 5), rand(1, 1, 1, 5)
    ln = n.net.add_normalization(xi, n.const(g_last), n.const(b_last), 1 << 3)
    ln.epsilon = 1e-3
    g_c, b_c = rand(1, 4, 1, 1), rand(1, 4, 1, 1)
    inorm = n.net.add_normalization(xi, n.const(g_c), n.const(b_c), 0b1100)
    gn = n.net.add_normalization_v2(xi, n.const(g_c), n.const(b_c), 0b1100)
    gn.num_groups = 2
    g_g, b_g = rand(1, 2, 1, 1), rand(1, 2, 1, 1)
    gn1 = n.net.add_normalization(xi, n.const(g_g), n.const(b_g), 0b1100)
    gn1.num_groups = 2
    n.mark(ln.get_output(0), inorm.get_output(0), gn.get_output(0), gn1.get_output(0))
    got = n.run(x=x)
    tx = t(x)
    ref_ln = F.layer_norm(tx, (5,), t(g_last.reshape(5)), t(b_last.reshape(5)), eps=1e-3).numpy()
    ref_in = F.instance_norm(tx, weight=t(g_c.reshape(4)), bias=t(b_c.reshape(4)), eps=1e-5).numpy()
    ref_gn = F.group_norm(tx, 2, t(g_c.reshape(4)), t(b_c.reshape(4)), eps=1e-5).numpy()
    # Legacy add_normalization takes one scale/bias value per group for GroupNorm.
    ref_gn1 = F.group_norm(tx, 2, t(np.repeat(g_g.reshape(2), 2)), t(np.repeat(b_g.reshape(2), 2)), eps=1e-5).numpy()
    return [(got[0], ref_ln), (got[1], ref_in), (got[2], ref_gn), (got[3], ref_gn1)]


# --- dynamic shapes and low precision ------------------------------------------------------------------


@case()
def dynamic_batch_conv_pool_dense():
    F = _torch().nn.functional
    n = Net()
    x, w, fc = rand(5, 3, 8, 8), rand(4, 3, 3, 3), rand(4, 2)
    xi = n.input("x", (-1, 3, -1, -1))
    conv = _conv(n, xi, w, None, padding_nd=(1, 1))
    relu = n.net.add_activation(conv.get_output(0), trt.ActivationType.RELU)
    gap = n.net.add_reduce(relu.get_output(0), trt.ReduceOperation.AVG, 0b1100, False)
    M = trt.MatrixOperation
    dense = n.net.add_matrix_multiply(gap.get_output(0), M.NONE, n.const(fc), M.NONE)
    n.mark(dense.get_output(0))
    assert tuple(dense.get_output(0).shape) == (-1, 2)
    ref = F.relu(F.conv2d(t(x), t(w), padding=1)).mean(dim=(2, 3)).numpy() @ fc
    return [(n.run(x=x)[0], ref)]


@case(tol=dict(rtol=2e-2, atol=2e-2))
def fp16_network():
    torch = _torch()
    F = torch.nn.functional
    n = Net()
    x, w, m = rand(2, 3, 6, 6), rand(4, 3, 3, 3) * 0.3, rand(36, 5) * 0.2
    xi = n.input("x", x.shape, trt.float16)
    conv = _conv(n, xi, w.astype(np.float16), None, padding_nd=(1, 1))
    flat = n.net.add_shuffle(conv.get_output(0))
    flat.reshape_dims = (2, 4, 36)
    mm = n.net.add_matrix_multiply(flat.get_output(0), trt.MatrixOperation.NONE, n.const(m.astype(np.float16)[None]),
                                   trt.MatrixOperation.NONE)
    sm = n.net.add_softmax(mm.get_output(0))
    sm.axes = 1 << 1
    n.mark(sm.get_output(0))
    out = n.run(x=x)[0]
    assert out.dtype == np.float16
    xh = x.astype(np.float16).astype(np.float64)
    wh = w.astype(np.float16).astype(np.float64)
    mh = m.astype(np.float16).astype(np.float64)
    conv_ref = F.conv2d(torch.from_numpy(xh), torch.from_numpy(wh), padding=1).numpy().reshape(2, 4, 36)
    return [(out, torch.softmax(torch.from_numpy(conv_ref @ mh), 1).numpy())]


@case(tol=dict(rtol=5e-2, atol=5e-2))
def bf16_network():
    n = Net()
    bf = ml_dtypes.bfloat16
    x, w = rand(3, 8), rand(8, 4)
    xi = n.input("x", x.shape, trt.DataType.BF16)
    mm = n.net.add_matrix_multiply(xi, trt.MatrixOperation.NONE, n.const(w.astype(bf)), trt.MatrixOperation.NONE)
    gamma, beta = np.ones((1, 4)), np.zeros((1, 4))
    ln = n.net.add_normalization(mm.get_output(0), n.const(gamma.astype(bf)), n.const(beta.astype(bf)), 1 << 1)
    act = n.net.add_activation(ln.get_output(0), trt.ActivationType.GELU_ERF)
    img, k = rand(1, 2, 5, 5), rand(3, 2, 3, 3)
    conv = _conv(n, n.input("img", img.shape, trt.DataType.BF16), k.astype(bf), np.ones(3).astype(bf))
    n.mark(act.get_output(0), conv.get_output(0))
    out, conv_out = n.run(x=x.astype(bf), img=img)
    assert out.dtype == bf and conv_out.dtype == bf
    y = x.astype(bf).astype(np.float64) @ w.astype(bf).astype(np.float64)
    y = (y - y.mean(1, keepdims=True)) / np.sqrt(y.var(1, keepdims=True) + 1e-5)
    gelu = 0.5 * y * (1 + np.vectorize(math.erf)(y / math.sqrt(2)))
    # A valid 3x3 convolution as a sum of shifted products, in float64 from the bf16-rounded values.
    i64, k64 = img.astype(bf).astype(np.float64), k.astype(bf).astype(np.float64)
    conv_ref = np.ones((1, 3, 3, 3))
    for dy in range(3):
        for dx in range(3):
            conv_ref += np.einsum("nchw,kc->nkhw", i64[:, :, dy:dy + 3, dx:dx + 3], k64[:, :, dy, dx])
    return [(out, gelu), (conv_out, conv_ref)]


# --- attention -------------------------------------------------------------------------------------------


def _sdpa(q, k, v, mask=None, causal_offset=None):
    """Independent numpy attention: softmax(q k^T + mask) v without any scale, GQA by head repetition."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    rep = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, rep, 1), np.repeat(v, rep, 1)
    s = np.einsum("bhqd,bhkd->bhqk", q, k)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    if causal_offset is not None:
        sq, sk = s.shape[-2:]
        s = np.where(np.arange(sk)[None] <= np.arange(sq)[:, None] + causal_offset, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


@case()
def attention_plain_bool_float_masks():
    n = Net()
    q, k, v = rand(2, 4, 5, 8) * 0.5, rand(2, 4, 7, 8) * 0.5, rand(2, 4, 7, 8)
    bmask = RNG.random((2, 1, 5, 7)) > 0.3
    bmask[..., 0] = True  # every query attends to something
    fmask = rand(1, 4, 5, 7)
    qi, ki, vi = n.input("q", q.shape), n.input("k", k.shape), n.input("v", v.shape)
    plain = n.net.add_attention(qi, ki, vi, trt.AttentionNormalizationOp.SOFTMAX, False)
    with_bool = n.net.add_attention(qi, ki, vi, trt.AttentionNormalizationOp.SOFTMAX, False)
    with_bool.mask = n.input("bm", bmask.shape, trt.bool)
    with_float = n.net.add_attention(qi, ki, vi, trt.AttentionNormalizationOp.SOFTMAX, False)
    with_float.mask = n.input("fm", fmask.shape)
    n.mark(plain.get_output(0), with_bool.get_output(0), with_float.get_output(0))
    got = n.run(q=q, k=k, v=v, bm=bmask, fm=fmask)
    return [(got[0], _sdpa(q, k, v)), (got[1], _sdpa(q, k, v, bmask)), (got[2], _sdpa(q, k, v, fmask))]


@case()
def attention_gqa_causal_kinds():
    n = Net()
    q, k, v = rand(1, 4, 3, 8) * 0.5, rand(1, 2, 6, 8) * 0.5, rand(1, 2, 6, 8)
    qi, ki, vi = n.input("q", q.shape), n.input("k", k.shape), n.input("v", v.shape)
    upper = n.net.add_attention_v2(qi, ki, vi, trt.AttentionNormalizationOp.SOFTMAX, trt.CausalMaskKind.UPPER_LEFT)
    lower = n.net.add_attention_v2(qi, ki, vi, trt.AttentionNormalizationOp.SOFTMAX, trt.CausalMaskKind.LOWER_RIGHT)
    legacy = n.net.add_attention(qi, ki, vi, trt.AttentionNormalizationOp.SOFTMAX, True)
    padded = n.net.add_attention_v2(qi, ki, vi, trt.AttentionNormalizationOp.SOFTMAX, trt.CausalMaskKind.NONE)
    padded.key_value_lengths = n.input("lengths", (1,), trt.int32)
    n.mark(upper.get_output(0), lower.get_output(0), legacy.get_output(0), padded.get_output(0))
    got = n.run(q=q, k=k, v=v, lengths=np.array([4], np.int32))
    first4 = np.broadcast_to(np.arange(6) < 4, (1, 1, 3, 6))  # keys past the batch's length are padding
    return [(got[0], _sdpa(q, k, v, causal_offset=0)), (got[1], _sdpa(q, k, v, causal_offset=3)),
            (got[2], _sdpa(q, k, v, causal_offset=0)), (got[3], _sdpa(q, k, v, first4))]


@case(tol=dict(rtol=2e-2, atol=2e-2))
def attention_fp16_against_torch_sdpa():
    torch = _torch()
    n = Net()
    q, k, v = rand(2, 2, 6, 16) * 0.25, rand(2, 2, 6, 16), rand(2, 2, 6, 16)
    mask = np.tril(np.ones((6, 6), bool))[None, None]
    att = n.net.add_attention(n.input("q", q.shape, trt.float16), n.input("k", k.shape, trt.float16),
                              n.input("v", v.shape, trt.float16), trt.AttentionNormalizationOp.SOFTMAX, False)
    att.mask = n.const(mask)
    n.mark(att.get_output(0))
    out = n.run(q=q.astype(np.float16), k=k.astype(np.float16), v=v.astype(np.float16))[0]
    assert out.dtype == np.float16
    h = lambda a: torch.from_numpy(a.astype(np.float16).astype(np.float32))  # noqa: E731
    sdpa = torch.nn.functional.scaled_dot_product_attention
    ref = sdpa(h(q), h(k), h(v), attn_mask=torch.from_numpy(mask), scale=1.0)
    return [(out, ref.numpy())]


# --- a raw network from TensorRT's ONNX parser -----------------------------------------------------------


@case()
def onnx_parsed_network():
    onnx = pytest.importorskip("onnx", reason="onnx builds the model this row parses and is not installed")
    from onnx import TensorProto, helper, numpy_helper

    F = _torch().nn.functional
    w, b, fc, fb = rand(4, 3, 3, 3), rand(4), rand(4, 5), rand(5)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["g"]),
            helper.make_node("Flatten", ["g"], ["f"]),
            helper.make_node("Gemm", ["f", "fc", "fb"], ["y"]),
            helper.make_node("Softmax", ["y"], ["out"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 9, 9])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(a, name) for a, name in ((w, "w"), (b, "b"), (fc, "fc"), (fb, "fb"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    n = Net()
    parser = trt.OnnxParser(n.net, logger())
    assert parser.parse(model.SerializeToString()), [parser.get_error(i).desc() for i in range(parser.num_errors)]
    x = rand(2, 3, 9, 9)
    got = run_network(n.net, {"x": x})["out"]
    z = F.relu(F.conv2d(t(x), t(w), t(b), stride=2, padding=1)).mean(dim=(2, 3)).numpy() @ fc + fb
    return [(got, _torch().softmax(t(z.astype(np.float32)), 1).numpy())]


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_layer_against_oracle(c: Case) -> None:
    pairs = c.fn()
    assert pairs, "a case must compare something"
    for i, (got, expected) in enumerate(pairs):
        expected = np.asarray(expected)
        assert got.shape == expected.shape, f"pair {i}: shape {got.shape} vs {expected.shape}"
        if expected.dtype == np.bool_ or np.issubdtype(expected.dtype, np.integer):
            np.testing.assert_array_equal(got, expected, err_msg=f"pair {i}")
        else:
            np.testing.assert_allclose(
                np.asarray(got, np.float64), expected.astype(np.float64), err_msg=f"pair {i}", **c.tol
            )


# ------------------------------------------------------------------------------------------------------
# The interpreter's own checks


def _conv_net() -> tuple[Net, object]:
    n = Net()
    w = rand(2, 1, 3, 3)
    layer = _conv(n, n.input("image", (-1, 1, 6, 6)), w, None)
    layer.name = "the_conv"
    n.mark(layer.get_output(0))
    return n, layer


def test_unsupported_layer_names_layer_and_type() -> None:
    n = Net()
    lrn = n.net.add_lrn(n.input("x", (1, 4, 3, 3)), 3, 1e-4, 0.75, 1.0)
    lrn.name = "my_lrn"
    n.mark(lrn.get_output(0))
    with pytest.raises(InterpreterError, match=r"my_lrn.*LRN.*unsupported"):
        run_network(n.net, {"x": rand(1, 4, 3, 3)})
    assert "LRN" not in layer_types_supported()


def test_loops_are_refused_clearly() -> None:
    n = Net()
    x = n.input("x", (2,))
    loop = n.net.add_loop()
    loop.add_trip_limit(n.const(np.array(3, np.int32)), trt.TripLimit.COUNT)
    rec = loop.add_recurrence(x)
    rec.set_input(1, n.net.add_elementwise(rec.get_output(0), x, trt.ElementWiseOperation.SUM).get_output(0))
    n.mark(loop.add_loop_output(rec.get_output(0), trt.LoopOutput.LAST_VALUE).get_output(0))
    with pytest.raises(InterpreterError, match="loops are not supported"):
        run_network(n.net, {"x": np.ones(2, np.float32)})


@pytest.mark.parametrize(
    ("inputs", "pattern"),
    [
        ({"image": np.zeros((2, 1, 6, 7), np.float32)}, r"input 'image': dim 3 is 7"),
        ({"image": np.zeros((1, 6, 6), np.float32)}, r"input 'image': expected rank 4"),
        ({}, r"missing network input\(s\): 'image'"),
        ({"image": np.zeros((1, 1, 6, 6), np.float32), "other": np.zeros(1)}, r"unknown network input\(s\): 'other'"),
        ({"image": np.zeros((1, 1, 6, 6), np.int32)}, r"input 'image': dtype int32"),
    ],
    ids=["wrong-dim", "wrong-rank", "missing", "extra", "wrong-dtype"],
)
def test_bad_inputs_name_the_input(inputs: dict, pattern: str) -> None:
    n, _ = _conv_net()
    with pytest.raises(InterpreterError, match=pattern):
        run_network(n.net, inputs)


def test_float64_input_is_cast_and_batch_is_free() -> None:
    n, _ = _conv_net()
    out = run_network(n.net, {"image": np.ones((3, 1, 6, 6), np.float64)})
    (value,) = out.values()
    assert value.shape == (3, 2, 4, 4) and value.dtype == np.float32


def test_shape_checker_names_layer() -> None:
    n, layer = _conv_net()
    good = np.zeros((7, 2, 4, 4), np.float32)  # batch is dynamic (-1): any size passes
    check_layer_outputs(layer, [good])
    with pytest.raises(InterpreterError, match=r"'the_conv' \(CONVOLUTION\).*shape \(7, 2, 5, 4\).*\(-1, 2, 4, 4\)"):
        check_layer_outputs(layer, [np.zeros((7, 2, 5, 4), np.float32)])
    with pytest.raises(InterpreterError, match=r"'the_conv' \(CONVOLUTION\).*dtype HALF.*FLOAT"):
        check_layer_outputs(layer, [good.astype(np.float16)])
    # A layer object of a subclass whose `.type` is its own enum still reports its LayerType.
    act = n.net.add_activation(layer.get_output(0), trt.ActivationType.RELU)
    act.name = "the_relu"
    with pytest.raises(InterpreterError, match=r"'the_relu' \(ACTIVATION\).*rank|'the_relu' \(ACTIVATION\).*shape"):
        check_layer_outputs(act, [np.zeros((2, 4, 4), np.float32)])


def test_trace_sees_every_layer() -> None:
    n, _ = _conv_net()
    seen = []
    run_network(
        n.net,
        {"image": np.ones((1, 1, 6, 6), np.float32)},
        trace=lambda name, kind, outs: seen.append((name, kind, outs[0].shape)),
    )
    assert seen == [("the_conv", "CONVOLUTION", (1, 2, 4, 4))]


def test_supported_types_cover_the_brief() -> None:
    wanted = {
        "CONVOLUTION", "DECONVOLUTION", "POOLING", "ACTIVATION", "ELEMENTWISE", "UNARY", "SCALE", "SHUFFLE",
        "CONCATENATION", "SOFTMAX", "REDUCE", "MATRIX_MULTIPLY", "CONSTANT", "CAST", "IDENTITY", "SLICE", "GATHER",
        "RESIZE", "NORMALIZATION", "SELECT", "PADDING", "SHAPE", "SQUEEZE", "UNSQUEEZE", "FILL", "TOPK", "EINSUM",
        "PARAMETRIC_RELU", "CUMULATIVE", "ONE_HOT", "ATTENTION_INPUT", "ATTENTION_OUTPUT",
    }
    assert wanted <= layer_types_supported()
    assert layer_types_supported() <= set(trt.LayerType.__members__)


def test_interpreter_imports_nothing_of_the_dsl() -> None:
    """The interpreter must not share code with the network builder, nor import TensorRT by name."""
    package = Path(__file__).resolve().parents[2] / "trtnet" / "reference"
    allowed = {"trtnet.backend", "trtnet.errors"}
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not name.startswith("tensorrt"), f"{path.name} imports {name}"
                if name.startswith("trtnet"):
                    ok = name in allowed or name == "trtnet.reference" or name.startswith("trtnet.reference.")
                    assert ok, f"{path.name} imports {name}"
