"""Vectorised special functions numpy lacks, in float64: erf and erfc to about 1e-15 relative error, GELU, and an exp
that spares inputs whose exp is 0.0 numpy's slow underflow path.

erf(x) = x * h(|x|), with h(a) = erf(a) / a even, smooth and 2/sqrt(pi) at 0. On each interval [i/1024, (i+1)/1024]
of [0, 6.0009765625) h is replaced by its degree-3 Chebyshev interpolant, built once at import from `math.erf`
(exact to double precision) and evaluated by Horner in the interval's own coordinate, s in [0, 1]. Tabulating
h rather than erf keeps the relative error small near 0 with no separate series, and the final product carries
the sign (-0.0 included). |x| is clamped to 6, where erf is 1 in float64 (erfc(6) = 2e-17), so +-inf give +-1
and NaN stays NaN.

erfc(a) for a >= 0 is exp(-a^2) * g(a), with g(a) = erfc(a) exp(a^2) smooth and slowly varying (1 at 0, about
1 / (a sqrt(pi)) far out), tabulated the same way from `math.erfc` on [0, 10.5]; its relative error is about
2e-16 a^2, from rounding a^2. It is what GELU needs on its left: 1 + erf(x) for x < 0 is erfc(-x), which
1 + erf would compute by cancellation (at x = -4 the last 6 digits). The tests compare both with `math` on dense
grids. The tables take 24,580 + 13,445 calls of `math`, about 10 ms at import.

An element's four coefficients are one 32-byte record of its table, gathered by a single `take`: four takes of
one float64 each cost 2.8 times as long, which the strided reads of the gathered records do not give back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

# Narrow intervals at a low degree: each degree costs two passes over every element and 8 bytes of each gathered
# record, an interval only table space. For erf, 1/1024 at degree 3 (1.3e-15 relative to math.erf, a table of
# 6,145 x 4 in L2) is 18% faster than 1/256 at degree 4 (1.2e-15), which was 20% faster than 1/32 at degree 6
# (8.9e-16). erfc's g has larger derivatives near 0 (degree 3 at 1/1024: 3.8e-15 there) and serves only GELU's
# left tail, so it keeps 1/256 at degree 4.
_CAP = 6.0  # erf(x) rounds to 1.0 in float64 from 5.93 on
# Past 10.5, erfc(a) < 1e-49: x * erfc(|x| / sqrt 2) / 2 is below every float type's smallest value for any x a
# float type TensorRT has can hold, so GELU's output rounds to -0.0 there. The table stops at it; exp(-a^2) does not.
_ERFC_CAP = 10.5
_CHUNK = 1 << 15  # elements evaluated at a time: the passes of Horner's rule then stay in cache


class _Table(NamedTuple):
    """A function tabulated on intervals of `width` from 0, by polynomials of `degree` in the interval's own
    coordinate: `records` [intervals] holds interval i's degree + 1 power-basis coefficients as one item."""

    records: np.ndarray
    width: float
    degree: int


def _interval_polynomials(fn: Callable[[float], float], cap: float, width: float, degree: int) -> np.ndarray:
    """[intervals, degree + 1]: power-basis coefficients of fn in s = a / width - i, s in [0, 1], on interval i,
    for the intervals that cover [0, cap] (the last one starts at cap).

    Every interval at once, as `chebinterpolate` then `cheb2poly` would make them one by one: fn at the Chebyshev
    points of the first kind, their discrete Chebyshev transform, then the fixed change to the power basis of
    t = 2 s - 1 and from it to that of s (so that evaluating takes no pass to make t: 1.2e-15 against 1.0e-15 in
    t, 10% faster).
    """
    cheb = np.polynomial.chebyshev
    nodes = cheb.chebpts1(degree + 1)
    centres = (np.arange(int(cap / width) + 1) + 0.5) * width
    points = centres[:, None] + width / 2 * nodes[None, :]
    values = np.fromiter(map(fn, points.reshape(-1).tolist()), np.float64, points.size).reshape(points.shape)
    weights = np.full(degree + 1, 2.0 / (degree + 1))
    weights[0] = 1.0 / (degree + 1)
    chebyshev = (values @ cheb.chebvander(nodes, degree)) * weights
    to_power = np.zeros((degree + 1, degree + 1))  # row j: T_j in the power basis of t
    to_s = np.zeros((degree + 1, degree + 1))  # row k: t^k = (2 s - 1)^k in the power basis of s
    for j in range(degree + 1):
        power = cheb.cheb2poly(np.eye(degree + 1)[j])
        to_power[j, : len(power)] = power
        to_s[j] = np.polynomial.polynomial.polypow([-1.0, 2.0], j, maxpower=degree).tolist() + [0.0] * (degree - j)
    return chebyshev @ to_power @ to_s


def _table(coefficients: np.ndarray, width: float) -> _Table:
    degree = coefficients.shape[1] - 1
    record = np.dtype((np.void, 8 * (degree + 1)))
    return _Table(np.ascontiguousarray(coefficients).view(record).reshape(-1), width, degree)


def _erf_table(width: float, degree: int) -> _Table:
    coefficients = _interval_polynomials(lambda a: math.erf(a) / a, _CAP, width, degree)
    coefficients[-1] = 0.0
    coefficients[-1, 0] = 1 / _CAP  # the clamped point itself: 6 * (1/6) is exactly 1.0 in float64
    return _table(coefficients, width)


_ERF = _erf_table(1 / 1024, 3)
_ERFC = _table(_interval_polynomials(lambda a: math.erfc(a) * math.exp(a * a), _ERFC_CAP, 1 / 256, 4), 1 / 256)
_MAX_DEGREE = max(_ERF.degree, _ERFC.degree)  # the scratch's records fit either table's


class _Scratch:
    """float64 buffers for evaluating up to `size` elements at a time: made once a call, reused by every chunk."""

    def __init__(self, size: int) -> None:
        self.x = np.empty(size, np.float64)
        self.a = np.empty(size, np.float64)
        self.r = np.empty(size, np.float64)
        self.idx = np.empty(size, np.int32)  # an interval's index: below 2^31 for every table here
        self.coef = np.empty(size * (_MAX_DEGREE + 1), np.float64)


def _tabulated(table: _Table, a: np.ndarray, scratch: _Scratch) -> np.ndarray:
    """The tabulated function at a (>= 0, clamped to the table's range by the caller; NaN stays NaN), in
    scratch.r[: a.size]. `a` is overwritten."""
    n, degree = a.size, table.degree
    idx, r = scratch.idx[:n], scratch.r[:n]
    coef = scratch.coef[: n * (degree + 1)].reshape(n, degree + 1)
    a *= 1 / table.width
    np.floor(a, out=r)  # float to float, then an int32 cast: half the cost of a float-to-intp cast and a
    with np.errstate(invalid="ignore"):  # mixed-type subtraction (erf 5% faster, 6.15 ns an element; the same results)
        idx[...] = r  # a NaN's index is whatever the cast makes of it: `take` clips it into the table
    a -= r  # the interval's own coordinate, in [0, 1]; a NaN keeps r NaN
    table.records.take(idx, out=coef.view(table.records.dtype).reshape(-1), mode="clip")
    np.multiply(coef[:, degree], a, out=r)
    for k in range(degree - 1, 0, -1):
        r += coef[:, k]
        r *= a
    r += coef[:, 0]
    return r


def erf(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Element-wise erf of `x` (any float type, widened exactly) as float64, or rounded once into `out` (a
    contiguous array of x's shape and a narrower float type). NaN stays NaN.

    >>> float(erf(np.array([0.5]))[0]) == math.erf(0.5)
    True
    """
    x = np.asarray(x)
    flat = x.reshape(-1)
    if out is not None and (out.shape != x.shape or not out.flags.c_contiguous):
        got = f"shape {out.shape}" if out.shape != x.shape else "one that is not C-contiguous"
        raise ValueError(f"erf: out must be a C-contiguous array of shape {x.shape}, got {got}")
    result = np.empty(flat.shape, np.float64) if out is None else out.reshape(-1)
    scratch = _Scratch(min(flat.size, _CHUNK))
    for start in range(0, flat.size, _CHUNK):
        part = flat[start : start + _CHUNK]
        xc, a = scratch.x[: part.size], scratch.a[: part.size]
        np.copyto(xc, part)
        np.clip(xc, -_CAP, _CAP, out=xc)  # NaN stays NaN
        np.absolute(xc, out=a)
        r = _tabulated(_ERF, a, scratch)
        np.multiply(r, xc, out=result[start : start + part.size], casting="same_kind")
    return result.reshape(x.shape)


def erfc_nonnegative(a: np.ndarray) -> np.ndarray:
    """Element-wise erfc of `a` >= 0 as float64; NaN stays NaN. Past 10.5, where erfc is below 1e-49, the table's
    last value stands in for g(a): too large by up to the factor a / 10.5, and 0.0 once exp(-a^2) underflows
    (a > 27.3). GELU needs nothing out there: its outputs round to -0.0 in every float type TensorRT has."""
    a = np.asarray(a, np.float64)
    flat = a.reshape(-1)
    result = np.empty(flat.shape, np.float64)
    scratch = _Scratch(min(flat.size, _CHUNK))
    for start in range(0, flat.size, _CHUNK):
        part = flat[start : start + _CHUNK]
        e = result[start : start + part.size]
        np.minimum(part, _ERFC_CAP, out=scratch.a[: part.size])  # NaN stays NaN
        r = _tabulated(_ERFC, scratch.a[: part.size], scratch)
        np.square(part, out=e)  # exp(-a^2) of the unclamped a: past the table it takes erfc to 0 by itself
        np.negative(e, out=e)
        np.exp(e, out=e)
        e *= r
    return result.reshape(a.shape)


# Below x = -2, 1 + erf(x / sqrt 2) < 0.046 and computing it as such loses more than a digit to cancellation
# (at x = -6 all of float32's); from there on it is taken as erfc(|x| / sqrt 2) instead, on those elements only.
_GELU_TAIL = -2.0


def gelu_erf(x: np.ndarray) -> np.ndarray:
    """x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2 in float64, 1 + erf taken as erfc(|x| / sqrt 2) in the left tail,
    so that every output keeps its relative accuracy (with 1 + erf alone, 2.5% of the float32 outputs of
    N(0, 3^2) inputs were off, all below x = -3)."""
    x = np.asarray(x, np.float64)
    c = erf(x * math.sqrt(0.5))
    c += 1
    tail = x < _GELU_TAIL  # NaN is not in it, and stays NaN
    if tail.any():
        c[tail] = erfc_nonnegative(x[tail] * -math.sqrt(0.5))
    c *= x
    c *= 0.5
    return c


# exp(x) is 0.0 in float64 from x = -746 down (below half the least subnormal). numpy's vectorised exp takes a slow path
# for every input whose result underflows, five times a normal input's time, and a causal or padding mask makes up to
# half of a softmax's inputs so (GPT-2's: 6.0 ns an element, 3.3 with those inputs left out).
_EXP_ZERO = -746.0


def exp_in_place(e: np.ndarray, may_underflow: bool) -> np.ndarray:
    """e = exp(e), elementwise (float64); with `may_underflow`, the inputs whose exp is 0.0 are set so without
    calling exp on them. The result is the same either way (NaN stays NaN)."""
    if not may_underflow:
        return np.exp(e, out=e)
    zero = e <= _EXP_ZERO
    np.exp(e, out=e, where=~zero)
    e[zero] = 0.0
    return e
