"""Vectorised special functions numpy lacks, in float64: erf, to about 1e-15 relative error.

erf(x) = x * h(|x|), with h(a) = erf(a) / a even, smooth and 2/sqrt(pi) at 0. On each interval [i/32, (i+1)/32]
of [0, 6.03125) h is replaced by its degree-6 Chebyshev interpolant, built once at import from `math.erf`
(exact to double precision) and evaluated by Horner in the interval's own coordinate. Tabulating h rather than
erf keeps the relative error small near 0 with no separate series, and the final product carries the sign
(-0.0 included). |x| is clamped to 6, where erf is 1 in float64 (erfc(6) = 2e-17), so +-inf give +-1 and NaN
stays NaN. The tests compare it with `math.erf` on a dense grid.
"""

from __future__ import annotations

import math

import numpy as np

# Half the width of 1/16 at one degree less: as accurate (9e-16 relative to math.erf both ways) and 12% faster,
# one gather and two passes fewer per element (the table, 193 x 7, still fits in L1).
_WIDTH = 1 / 32
_CAP = 6.0  # erf(x) rounds to 1.0 in float64 from 5.93 on
_INTERVALS = int(_CAP / _WIDTH) + 1  # the last one holds only the clamped point 6.0
_DEGREE = 6
_CHUNK = 1 << 15  # elements evaluated at a time: the ~20 passes of Horner's rule then stay in cache


def _interval_polynomials() -> np.ndarray:
    """[degree + 1, intervals]: power-basis coefficients of h in t = (|x| - centre) / (width / 2), t in [-1, 1]."""
    cheb = np.polynomial.chebyshev
    cols = []
    for i in range(_INTERVALS):
        centre = (i + 0.5) * _WIDTH

        def h(t: np.ndarray, c: float = centre) -> np.ndarray:
            return np.array([math.erf(c + _WIDTH / 2 * v) / (c + _WIDTH / 2 * v) for v in t])

        power = cheb.cheb2poly(cheb.chebinterpolate(h, _DEGREE))
        cols.append(np.pad(power, (0, _DEGREE + 1 - len(power))))  # cheb2poly drops trailing zeros
    table = np.array(cols)
    table[-1] = 0.0
    table[-1, 0] = 1 / _CAP  # the clamped point itself: 6 * (1/6) is exactly 1.0 in float64
    return np.ascontiguousarray(table.T)


_TABLE = _interval_polynomials()


def erf(x: np.ndarray) -> np.ndarray:
    """Element-wise erf of `x` as float64 (NaN stays NaN)."""
    x = np.asarray(x, np.float64)
    flat = x.reshape(-1)
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
