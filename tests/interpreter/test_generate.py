"""Fill (trtnet/interpreter/generate.py) against hand-computed sequences."""

from __future__ import annotations

import numpy as np
import pytest

from tests.interpreter.cases import CaseTable, Net, check_case, trt

CASES = CaseTable()


@CASES.case()
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


@pytest.mark.parametrize("c", CASES, ids=CASES.ids())
def test_layer_against_oracle(c) -> None:
    check_case(c)
