"""Vectorised special functions numpy lacks, in float64: erf, to about 1e-15 relative error.

erf(x) = x * h(|x|), with h(a) = erf(a) / a even, smooth and 2/sqrt(pi) at 0. On each interval [i/256, (i+1)/256]
of [0, 6.00390625) h is replaced by its degree-4 Chebyshev interpolant, built once at import from `math.erf`
(exact to double precision; 7,690 calls, about 3 ms) and evaluated by Horner in the interval's own coordinate. Tabulating h rather than
erf keeps the relative error small near 0 with no separate series, and the final product carries the sign
(-0.0 included). |x| is clamped to 6, where erf is 1 in float64 (erfc(6) = 2e-17), so +-inf give +-1 and NaN
stays NaN. The tests compare it with `math.erf` on a dense grid.
"""

from __future__ import annotations

import math

import numpy as np

# Narrow intervals at a low degree: each degree costs a gather and two passes over every element, an interval only
# table space. 1/256 at degree 4 (1.0e-15 relative to math.erf, a table of 1,537 x 5 in L2) is 20% faster than
# 1/32 at degree 6 (8.9e-16), which was 12% faster than 1/16 at degree 7.
_WIDTH = 1 / 256
_CAP = 6.0  # erf(x) rounds to 1.0 in float64 from 5.93 on
_INTERVALS = int(_CAP / _WIDTH) + 1  # the last one holds only the clamped point 6.0
_DEGREE = 4
_CHUNK = 1 << 15  # elements evaluated at a time: the ~15 passes of Horner's rule then stay in cache


def _interval_polynomials() -> np.ndarray:
    """[degree + 1, intervals]: power-basis coefficients of h in t = (|x| - centre) / (width / 2), t in [-1, 1].

    Every interval at once, as `chebinterpolate` then `cheb2poly` would make them one by one: h at the Chebyshev
    points of the first kind, their discrete Chebyshev transform, then the fixed change to the power basis.
    """
    cheb = np.polynomial.chebyshev
    nodes = cheb.chebpts1(_DEGREE + 1)
    centres = (np.arange(_INTERVALS) + 0.5) * _WIDTH
    points = centres[:, None] + _WIDTH / 2 * nodes[None, :]
    h = np.array([[math.erf(a) / a for a in row] for row in points])
    weights = np.full(_DEGREE + 1, 2.0 / (_DEGREE + 1))
    weights[0] = 1.0 / (_DEGREE + 1)
    chebyshev = (h @ cheb.chebvander(nodes, _DEGREE)) * weights
    to_power = np.zeros((_DEGREE + 1, _DEGREE + 1))  # row j: T_j in the power basis
    for j in range(_DEGREE + 1):
        power = cheb.cheb2poly(np.eye(_DEGREE + 1)[j])
        to_power[j, : len(power)] = power
    table = chebyshev @ to_power
    table[-1] = 0.0
    table[-1, 0] = 1 / _CAP  # the clamped point itself: 6 * (1/6) is exactly 1.0 in float64
    return np.ascontiguousarray(table.T)


_TABLE = _interval_polynomials()


def erf(x: np.ndarray) -> np.ndarray:
    """Element-wise erf of `x` as float64 (NaN stays NaN)."""
    x = np.asarray(x, np.float64)
    flat = x.reshape(-1)
    if flat.size <= _CHUNK:  # a pointwise layer's chunk: no copy through a second buffer
        return _erf_chunk(flat).reshape(x.shape)
    out = np.empty(flat.shape, np.float64)
    for start in range(0, flat.size, _CHUNK):
        out[start : start + _CHUNK] = _erf_chunk(flat[start : start + _CHUNK])
    return out.reshape(x.shape)


def _erf_chunk(x: np.ndarray) -> np.ndarray:
    xc = np.clip(x, -_CAP, _CAP)  # NaN stays NaN
    t = np.abs(xc)
    t *= 1 / _WIDTH
    idx = np.fmin(t, _INTERVALS - 0.5).astype(np.intp)  # fmin: a NaN indexes the last interval
    t -= idx
    t *= 2
    t -= 1  # the interval's own coordinate, in [-1, 1]; a NaN t keeps r NaN
    r = _TABLE[_DEGREE].take(idx)
    for k in range(_DEGREE - 1, -1, -1):
        r *= t
        r += _TABLE[k].take(idx)
    r *= xc
    return r
