"""Special functions of the interpreter (trtnet/interpreter/special.py) that no other test module covers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trtnet.interpreter.special import erf, exp_in_place


@pytest.mark.parametrize("may_underflow", [True, False])
def test_exp_in_place_is_numpy_s_exp_bit_for_bit(may_underflow) -> None:
    """Around the point where exp reaches 0.0 (subnormal results down to -745.13), at a mask's values and at the
    special values: the inputs left out are exactly those whose exp is 0.0."""
    x = np.concatenate(
        [
            np.linspace(-760.0, -700.0, 6001),
            np.nextafter(-746.0, [-np.inf, np.inf]),
            [-746.0, -745.2, -745.1, -3.4028234663852886e38, -np.inf, np.nan, 0.0, -0.0, 1.5, -1e-300],
        ]
    )
    with np.errstate(under="ignore"):
        expected = np.exp(x)
        got = exp_in_place(x.copy(), may_underflow)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got.view(np.int64), expected.view(np.int64))


def test_erf_refuses_an_out_it_could_not_write_through() -> None:
    """`out` is written through a flat view of itself: a transposed or misshapen array would have taken the results
    in a copy, leaving `out` as it was."""
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    for out, why in ((np.empty((4, 3), np.float32).T, "not C-contiguous"), (np.empty((4, 3), np.float32), r"\(4, 3\)")):
        with pytest.raises(ValueError, match=why):
            erf(x, out=out)
    out = np.empty((3, 4), np.float32)
    assert np.shares_memory(erf(x, out=out), out) and out[0, 0] == np.float32(math.erf(-1.0))
