"""Preparing a network (trtnet/interpreter/prepare.py): the order its layers run in."""

from __future__ import annotations

import numpy as np
import pytest

from tests.interpreter.cases import Net, trt
from trtnet.errors import InterpreterError
from trtnet.interpreter import run_network
from trtnet.interpreter.prepare import execution_order, scan


def _chain() -> tuple[Net, list]:
    """x -> exp (layer 0), x -> abs (layer 1), exp + exp (layer 2), in the order they were added."""
    n = Net()
    x = n.input("x", (2, 3))
    exp = n.net.add_unary(x, trt.UnaryOperation.EXP)
    absolute = n.net.add_unary(x, trt.UnaryOperation.ABS)
    total = n.net.add_elementwise(exp.get_output(0), exp.get_output(0), trt.ElementWiseOperation.SUM)
    n.mark(total.get_output(0))
    return n, [exp, absolute, total]


def test_a_network_built_in_order_runs_in_that_order() -> None:
    n, _ = _chain()
    assert execution_order(scan(n.net)) == [0, 1, 2]


def test_a_layer_rewired_to_a_tensor_made_later_runs_after_it() -> None:
    """set_input points layer 0 at layer 1's output: layer 1 must run first, and the rest keep their order."""
    n, (exp, absolute, _) = _chain()
    exp.set_input(0, absolute.get_output(0))
    assert execution_order(scan(n.net)) == [1, 0, 2]
    x = np.array([[-1.5, 0.0, 2.0], [0.25, -3.0, 1.0]], np.float32)
    (got,) = run_network(n.net, {"x": x}).values()
    np.testing.assert_array_equal(got, (2 * np.exp(np.abs(x.astype(np.float64)))).astype(np.float32))


def test_a_network_with_a_cycle_is_refused_with_a_typed_error() -> None:
    """TensorRT infers no output types in a cyclic network (its DataType reads back as -2): the interpreter says
    so, naming the first layer, rather than failing on the unknown enum value."""
    n, (exp, absolute, total) = _chain()
    absolute.set_input(0, total.get_output(0))
    exp.set_input(0, absolute.get_output(0))  # exp -> total -> abs -> exp
    with pytest.raises(InterpreterError, match=r"layer .* \(UNARY\): TensorRT gives no data type .*a cycle"):
        run_network(n.net, {"x": np.zeros((2, 3), np.float32)})
