"""Activations, elementwise, unary, PReLU/select/scale and casts (trtnet/interpreter/elementwise.py)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from tests.interpreter.cases import CaseTable, Net, check_case, rand, t, torch_or_skip, trt

CASES = CaseTable()


# --- pointwise -----------------------------------------------------------------------------------------


def _activation_refs(x: np.ndarray) -> dict[str, tuple[float, float, np.ndarray]]:
    torch = torch_or_skip()
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


@CASES.case()
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


@CASES.case()
def elementwise_float_ops_broadcast():
    n = Net()
    a, b = rand(2, 1, 4), np.abs(rand(1, 3, 4)) + 0.5
    ai, bi = n.input("a", a.shape), n.input("b", b.shape)
    ops = {
        "SUM": a + b,
        "PROD": a * b,
        "MAX": np.maximum(a, b),
        "MIN": np.minimum(a, b),
        "SUB": a - b,
        "DIV": a / b,
        "POW": np.power(np.abs(a), b),
        "FLOOR_DIV": np.floor(a / b),
        "EQUAL": np.ones(a.shape, bool),
        "GREATER": a > b,
        "LESS": a < b,  # EQUAL compares a with itself
    }
    pa = n.net.add_unary(ai, trt.UnaryOperation.ABS).get_output(0)
    for op in ops:
        left = pa if op == "POW" else ai
        right = ai if op == "EQUAL" else bi
        n.mark(n.net.add_elementwise(left, right, getattr(trt.ElementWiseOperation, op)).get_output(0))
    got = n.run(a=a, b=b)
    return list(zip(got, ops.values()))


@CASES.case()
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


@CASES.case()
def unary_all_ops():
    n = Net()
    x = np.array([[0.3, 0.5, 1.5, 2.5, -0.5, -2.7, 0.9]], np.float32)
    pos = np.array([[1.2, 2.0, 3.5, 1.01, 4.0, 9.0, 1.5]], np.float32)
    xi, pi = n.input("x", x.shape), n.input("pos", pos.shape)
    U = trt.UnaryOperation
    unit = np.clip(x, -0.9, 0.9)
    table = {
        "EXP": (xi, np.exp(x)),
        "LOG": (pi, np.log(pos)),
        "SQRT": (pi, np.sqrt(pos)),
        "RECIP": (pi, 1 / pos),
        "ABS": (xi, np.abs(x)),
        "NEG": (xi, -x),
        "SIN": (xi, np.sin(x)),
        "COS": (xi, np.cos(x)),
        "TAN": (xi, np.tan(x)),
        "SINH": (xi, np.sinh(x)),
        "COSH": (xi, np.cosh(x)),
        "ATAN": (xi, np.arctan(x)),
        "ASINH": (xi, np.arcsinh(x)),
        "ACOSH": (pi, np.arccosh(pos)),
        "CEIL": (xi, np.ceil(x)),
        "FLOOR": (xi, np.floor(x)),
        "SIGN": (xi, np.sign(x)),
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


@CASES.case()
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
    ch = n.net.add_scale_nd(
        n.net.add_unary(xi, trt.UnaryOperation.ABS).get_output(0),
        trt.ScaleMode.CHANNEL,
        n.weights(shift),
        n.weights(scale),
        n.weights(power),
        1,
    )
    uni = n.net.add_scale(
        xi,
        trt.ScaleMode.UNIFORM,
        n.weights(np.array([1.0], np.float32)),
        n.weights(np.array([-2.0], np.float32)),
        trt.Weights(),
    )
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


@CASES.case()
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
        np.array([[1, -1, 0, 2, 0]], np.int32),
        x != 0,
        x.astype(np.float16),
        np.array([[1, -1, 0, 2, 0]], np.int64),
        np.array([[1, -1, 0, 2, 0]], np.float32),
        x,
    ]
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
    return list(zip(got, expected))


@pytest.mark.parametrize("c", CASES, ids=CASES.ids())
def test_layer_against_oracle(c) -> None:
    check_case(c)


def test_square_and_cube_are_the_exact_power_rounded_once() -> None:
    # x ** 2 and x ** 3 (ONNX's LayerNorm and GELU write them) are multiplied out in float64: the float64 value
    # must be the exact power rounded once, which the float32 output then rounds; another exponent goes to pow.
    n = Net()
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((1, 3000)) * rng.choice([1e-3, 1.0, 10.0, 1e4], (1, 3000))).astype(np.float32)
    x[0, :6] = [-0.0, 0.0, np.inf, -np.inf, np.nan, -3.0e38]
    xi = n.input("x", x.shape)
    for p in (2.0, 3.0, 2.5):
        base = n.net.add_unary(xi, trt.UnaryOperation.ABS).get_output(0) if p == 2.5 else xi
        exponent = n.const(np.full((1, 1), p, np.float32))
        n.mark(n.net.add_elementwise(base, exponent, trt.ElementWiseOperation.POW).get_output(0))
    square, cube, other = n.run(x=x)

    def exact(v: float, p: int) -> float:
        return float(Fraction(v) ** p) if math.isfinite(v) and v != 0 else float(np.power(np.float64(v), p))

    with np.errstate(over="ignore"):
        for got, p in ((square, 2), (cube, 3)):
            want = np.array([exact(float(v), p) for v in x[0]]).astype(np.float32)
            np.testing.assert_array_equal(got[0], want, err_msg=f"x ** {p}")
            np.testing.assert_array_equal(np.signbit(got[0]), np.signbit(want), err_msg=f"signs of x ** {p}")
    np.testing.assert_array_equal(other, np.power(np.abs(x).astype(np.float64), 2.5).astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_erf_layer_rounds_math_erf_once_across_chunks(dtype) -> None:
    """A float32 or float16 ERF layer is evaluated a chunk of 32,768 at a time into the output's own type: every
    element, past the first chunk too, is math.erf of the input rounded once, with +-inf, NaN, -0.0 and the clamp
    at 6 among them."""
    n = Net()
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((2, 40_000)) * rng.choice([1e-4, 0.5, 2.0, 5.0], (2, 40_000))).astype(dtype)
    x[1, -8:] = [np.inf, -np.inf, np.nan, -0.0, 0.0, 6.0, -5.99, 7.5]
    xi = n.input("x", x.shape, trt.float16 if dtype == np.float16 else trt.float32)
    n.mark(n.net.add_unary(xi, trt.UnaryOperation.ERF).get_output(0))
    (got,) = n.run(x=x)
    want = np.array([math.erf(float(v)) for v in x.reshape(-1)]).astype(dtype).reshape(x.shape)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_a_batch_norm_of_a_transposed_view_sums_like_one_of_contiguous_values() -> None:
    """A per-channel SCALE writes its output in C order whatever its input's layout, so a reduction after it adds
    in the order it would had the same values come contiguous. Along W: 1e16, 1022 ones, -1e16, where the order
    of a float64 sum shows (it read 0.0 after the transposed view and 1008.0 after the contiguous input)."""
    nhwc = np.ones((1, 4, 1024, 2), np.float32)
    nhwc[:, :, 0], nhwc[:, :, -1] = 1e16, -1e16
    nchw = np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))
    totals = []
    for transposed in (True, False):
        n = Net()
        xi = n.input("x", nhwc.shape if transposed else nchw.shape)
        if transposed:
            shuffle = n.net.add_shuffle(xi)
            shuffle.first_transpose = (0, 3, 1, 2)
            xi = shuffle.get_output(0)
        ones, zeros = np.ones(2, np.float32), np.zeros(2, np.float32)
        bn = n.net.add_scale(xi, trt.ScaleMode.CHANNEL, n.weights(zeros), n.weights(ones), trt.Weights())
        total = n.net.add_reduce(bn.get_output(0), trt.ReduceOperation.SUM, 1 << 3, False)
        n.mark(total.get_output(0), bn.get_output(0))
        got, normed = n.run(x=nhwc if transposed else nchw)
        assert np.array_equal(normed, nchw) and normed.flags.c_contiguous
        totals.append(got)
    assert np.array_equal(totals[0], totals[1])


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_an_integer_cast_to_bfloat16_rounds_once(dtype) -> None:
    """CAST of integers to BF16: by way of float32 (ml_dtypes' own cast), 2^24 + 2^16 + 1 rounded to 2^24 + 2^16,
    a tie, then down to 2^24; rounded once it is 2^24 + 2^17. Past 2^53 an int64 meets float64's rounding too."""
    rng = np.random.default_rng(7)
    big = np.iinfo(dtype).max
    x = rng.integers(-big, big, 30_000, dtype=dtype) >> rng.integers(0, 8 * np.dtype(dtype).itemsize - 2, 30_000)
    edges = [2**24 + 2**16 + 1, -(2**24 + 2**16 + 1), 2**30 + 2**22 + 1, 257, 0, big, -big - 1]
    if dtype == np.int64:
        edges += [2**53 + 1, 2**62 + 2**54 + 1, -(2**62 + 2**54 + 1), 2**56 - 3]
    x = np.concatenate([np.array(edges, dtype), x.astype(dtype)])
    n = Net()
    n.mark(
        n.net.add_cast(n.input("x", x.shape, trt.int32 if dtype == np.int32 else trt.int64), trt.bfloat16).get_output(0)
    )
    (got,) = n.run(x=x)

    def nearest(v: int) -> float:  # 8 significant bits, ties to even, in Python's integers
        shift = abs(v).bit_length() - 8
        if shift <= 0:
            return float(v)
        q, r = divmod(abs(v), 1 << shift)
        q += r > 1 << (shift - 1) or (r == 1 << (shift - 1) and q & 1)
        return math.copysign(float(q << shift), v)

    np.testing.assert_array_equal(got.astype(np.float64), [nearest(int(v)) for v in x])


@pytest.mark.parametrize(
    "src, to, want",
    [
        (np.float32, trt.int32, [0, 2**31 - 1, -(2**31), 2**31 - 1, -(2**31), 2**31 - 1, 2, -2, 0, 16777216]),
        (np.float32, trt.int64, [0, 2**63 - 1, -(2**63), 3 * 10**9, -3 * 10**9, 2**63 - 1, 2, -2, 0, 16777216]),
        (np.float32, trt.uint8, [0, 255, 0, 255, 0, 255, 2, 0, 0, 255]),
        (np.float16, trt.int32, [0, 2**31 - 1, -(2**31), 2**31 - 1, -(2**31), 2**31 - 1, 2, -2, 0, 2**31 - 1]),
    ],
)
def test_float_to_int_casts_saturate_and_send_nan_to_zero(src, to, want) -> None:
    """CAST float -> int as CUDA converts (NVIDIA/TensorRT#4775: NaN -> 0, inf -> INT32_MAX): numpy's cast gave
    x86's INT_MIN for NaN, +-inf and every value out of range."""
    x = np.array([np.nan, np.inf, -np.inf, 3e9, -3e9, 1e19, 2.7, -2.7, -0.5, 16777216.0], np.float64).astype(src)
    n = Net()
    n.mark(n.net.add_cast(n.input("x", x.shape, trt.float32 if src == np.float32 else trt.float16), to).get_output(0))
    (got,) = n.run(x=x)
    assert got.tolist() == want
