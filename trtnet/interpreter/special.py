"""Vectorised special functions numpy lacks, in float64: erf and erfc to about 1e-15 relative error, GELU, and an exp
that spares inputs whose exp is 0.0 numpy's slow underflow path.

erf(x) = x * h(|x|), with h(a) = erf(a) / a even, smooth and 2/sqrt(pi) at 0. On each interval [i/256, (i+1)/256]
of [0, 6.00390625) h is replaced by its degree-4 Chebyshev interpolant, built once at import from `math.erf`
(exact to double precision) and evaluated by Horner in the interval's own coordinate, s in [0, 1]. Tabulating
h rather than erf keeps the relative error small near 0 with no separate series, and the final product carries
the sign (-0.0 included). |x| is clamped to 6, where erf is 1 in float64 (erfc(6) = 2e-17), so +-inf give +-1
and NaN stays NaN.

erfc(a) for a >= 0 is exp(-a^2) * g(a), with g(a) = erfc(a) exp(a^2) smooth and slowly varying (1 at 0, about
1 / (a sqrt(pi)) far out), tabulated the same way from `math.erfc` on [0, 10.5]; its relative error is about
2e-16 a^2, from rounding a^2. It is what GELU needs on its left: 1 + erf(x) for x < 0 is erfc(-x), which
1 + erf would compute by cancellation (at x = -4 the last 6 digits). The tests compare both with `math` on dense
grids. The tables take 7,690 + 13,450 calls of `math`, about 10 ms at import.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# Narrow intervals at a low degree: each degree costs a gather and two passes over every element, an interval only
# table space. 1/256 at degree 4 (1.0e-15 relative to math.erf, a table of 1,537 x 5 in L2) is 20% faster than
# 1/32 at degree 6 (8.9e-16), which was 12% faster than 1/16 at degree 7.
_WIDTH = 1 / 256
_DEGREE = 4
_CAP = 6.0  # erf(x) rounds to 1.0 in float64 from 5.93 on
_INTERVALS = int(_CAP / _WIDTH) + 1  # the last one holds only the clamped point 6.0
# Past 10.5, erfc(a) < 1e-49: x * erfc(|x| / sqrt 2) / 2 is below every float type's smallest value for any x a
# float type TensorRT has can hold, so GELU's output rounds to -0.0 there. The table stops at it; exp(-a^2) does not.
_ERFC_CAP = 10.5
_ERFC_INTERVALS = int(_ERFC_CAP / _WIDTH) + 1
_CHUNK = 1 << 15  # elements evaluated at a time: the ~15 passes of Horner's rule then stay in cache


def _interval_polynomials(fn: Callable[[float], float], intervals: int) -> np.ndarray:
    """[intervals, degree + 1]: power-basis coefficients of fn in s = a / width - i, s in [0, 1], on interval i.

    Every interval at once, as `chebinterpolate` then `cheb2poly` would make them one by one: fn at the Chebyshev
    points of the first kind, their discrete Chebyshev transform, then the fixed change to the power basis of
    t = 2 s - 1 and from it to that of s (so that evaluating takes no pass to make t: 1.2e-15 against 1.0e-15 in
    t, 10% faster).
    """
    cheb = np.polynomial.chebyshev
    nodes = cheb.chebpts1(_DEGREE + 1)
    centres = (np.arange(intervals) + 0.5) * _WIDTH
    points = centres[:, None] + _WIDTH / 2 * nodes[None, :]
    values = np.array([[fn(a) for a in row] for row in points])
    weights = np.full(_DEGREE + 1, 2.0 / (_DEGREE + 1))
    weights[0] = 1.0 / (_DEGREE + 1)
    chebyshev = (values @ cheb.chebvander(nodes, _DEGREE)) * weights
    to_power = np.zeros((_DEGREE + 1, _DEGREE + 1))  # row j: T_j in the power basis of t
    to_s = np.zeros((_DEGREE + 1, _DEGREE + 1))  # row k: t^k = (2 s - 1)^k in the power basis of s
    for j in range(_DEGREE + 1):
        power = cheb.cheb2poly(np.eye(_DEGREE + 1)[j])
        to_power[j, : len(power)] = power
        to_s[j] = np.polynomial.polynomial.polypow([-1.0, 2.0], j, maxpower=_DEGREE).tolist() + [0.0] * (_DEGREE - j)
    return chebyshev @ to_power @ to_s


def _erf_table() -> np.ndarray:
    table = _interval_polynomials(lambda a: math.erf(a) / a, _INTERVALS)
    table[-1] = 0.0
    table[-1, 0] = 1 / _CAP  # the clamped point itself: 6 * (1/6) is exactly 1.0 in float64
    return np.ascontiguousarray(table.T)


_TABLE = _erf_table()
_ERFC_TABLE = np.ascontiguousarray(_interval_polynomials(lambda a: math.erfc(a) * math.exp(a * a), _ERFC_INTERVALS).T)


def _horner(table: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The tabulated function at a (>= 0, clamped to the table's range by the caller); NaN stays NaN."""
    s = a * (1 / _WIDTH)
    with np.errstate(invalid="ignore"):
        idx = s.astype(np.intp)  # a NaN's index is whatever the cast makes of it: `take` clips it into the table
    s -= idx  # the interval's own coordinate, in [0, 1]; a NaN s keeps r NaN
    r = table[_DEGREE].take(idx, mode="clip")
    for k in range(_DEGREE - 1, -1, -1):
        r *= s
        r += table[k].take(idx, mode="clip")
    return r


def _chunked(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    flat = x.reshape(-1)
    if flat.size <= _CHUNK:  # a pointwise layer's chunk: no copy through a second buffer
        return fn(flat).reshape(x.shape)
    out = np.empty(flat.shape, np.float64)
    for start in range(0, flat.size, _CHUNK):
        out[start : start + _CHUNK] = fn(flat[start : start + _CHUNK])
    return out.reshape(x.shape)


def erf(x: np.ndarray) -> np.ndarray:
    """Element-wise erf of `x` as float64 (NaN stays NaN)."""
    return _chunked(_erf_chunk, x)


def _erf_chunk(x: np.ndarray) -> np.ndarray:
    xc = np.clip(x, -_CAP, _CAP)  # NaN stays NaN
    r = _horner(_TABLE, np.abs(xc))
    r *= xc
    return r


def erfc_nonnegative(a: np.ndarray) -> np.ndarray:
    """Element-wise erfc of `a` >= 0 as float64; NaN stays NaN. Past 10.5, where erfc is below 1e-49, the table's
    last value stands in for g(a): too large by up to the factor a / 10.5, and 0.0 once exp(-a^2) underflows
    (a > 27.3). GELU needs nothing out there: its outputs round to -0.0 in every float type TensorRT has."""
    return _chunked(_erfc_chunk, a)


def _erfc_chunk(a: np.ndarray) -> np.ndarray:
    r = _horner(_ERFC_TABLE, np.minimum(a, _ERFC_CAP))  # NaN stays NaN
    e = np.square(a)  # exp(-a^2) of the unclamped a: past the table it takes erfc to 0 by itself
    np.negative(e, out=e)
    np.exp(e, out=e)
    r *= e
    return r


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
