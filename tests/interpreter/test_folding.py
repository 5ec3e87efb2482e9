"""A prepared network computes shape arithmetic on static shapes once (its first run), and no longer after."""

from __future__ import annotations

import numpy as np
import pytest

from tests.interpreter.cases import Net, rand, trt
from trtnet.errors import InterpreterError
from trtnet.interpreter import Interpreter, _common, run_network


def _flatten_by_shape(n: Net, shape: tuple[int, ...]):
    """y = x reshaped to [d0, d1 * d2 * d3], its target computed from SHAPE(x) by gathers and a product (as ONNX
    exports write a flatten), then scaled by 2; returns the scale layer's output."""
    x = n.input("x", shape)
    dims = n.net.add_shape(x).get_output(0)
    first = n.net.add_gather(dims, n.const(np.array([0], np.int64)), 0).get_output(0)
    rest = n.net.add_gather(dims, n.const(np.array([1, 2, 3], np.int64)), 0).get_output(0)
    prod = n.net.add_reduce(rest, trt.ReduceOperation.PROD, 1, True).get_output(0)
    target = n.net.add_concatenation([first, prod]).get_output(0)
    flat = n.net.add_shuffle(x)
    flat.set_input(1, target)
    two = n.const(np.full((1, 1), 2.0, np.float32))
    return n.net.add_elementwise(flat.get_output(0), two, trt.ElementWiseOperation.PROD).get_output(0)


def _refusing(entry: _common.Entry) -> _common.Entry:
    def refuse(call: _common.LayerCall) -> list[np.ndarray]:
        raise call.fail("ran again")

    return _common.Entry(refuse, entry.class_name)


@pytest.mark.parametrize("layer_type", ["SHAPE", "GATHER", "REDUCE", "CONCATENATION"])
def test_shape_arithmetic_on_a_static_shape_runs_on_the_first_run_only(layer_type):
    n = Net()
    n.mark(_flatten_by_shape(n, (2, 3, 4, 5)))
    prepared = Interpreter(n.net)
    x = rand(2, 3, 4, 5)
    want = [2 * x.reshape(2, 60)]
    np.testing.assert_array_equal(list(prepared.run({"x": x}).values()), want)
    entry = _common.HANDLERS[layer_type]
    _common.HANDLERS[layer_type] = _refusing(entry)
    try:
        for seed in (1, 2):  # new values, the same static shape: the folded target is read, not recomputed
            x = np.random.default_rng(seed).standard_normal((2, 3, 4, 5)).astype(np.float32)
            np.testing.assert_array_equal(list(prepared.run({"x": x}).values()), [2 * x.reshape(2, 60)])
        # A fresh preparation runs them again (and here meets the stand-in that refuses).
        with pytest.raises(InterpreterError, match="ran again"):
            run_network(n.net, {"x": x})
    finally:
        _common.HANDLERS[layer_type] = entry


def test_shape_arithmetic_on_a_dynamic_shape_runs_every_time():
    n = Net()
    n.mark(_flatten_by_shape(n, (-1, 3, 4, 5)))
    prepared = Interpreter(n.net)
    for batch in (2, 3):
        x = rand(batch, 3, 4, 5)
        np.testing.assert_array_equal(list(prepared.run({"x": x}).values()), [2 * x.reshape(batch, 60)])
    entry = _common.HANDLERS["SHAPE"]
    _common.HANDLERS["SHAPE"] = _refusing(entry)
    try:
        with pytest.raises(InterpreterError, match="ran again"):
            prepared.run({"x": rand(4, 3, 4, 5)})
    finally:
        _common.HANDLERS["SHAPE"] = entry


def test_a_folded_network_output_is_the_caller_s_own_array():
    n = Net()
    x = n.input("x", (2, 3))
    n.mark(n.net.add_shape(x).get_output(0))
    prepared = Interpreter(n.net)
    outs = [next(iter(prepared.run({"x": rand(2, 3)}).values())) for _ in range(3)]
    for out in outs:
        np.testing.assert_array_equal(out, [2, 3])
        assert out.flags.writeable
    outs[1][0] = 7  # the caller's to change: the next run's answer is not
    np.testing.assert_array_equal(next(iter(prepared.run({"x": rand(2, 3)}).values())), [2, 3])


def test_a_trace_still_sees_every_layer_of_a_prepared_network():
    n = Net()
    n.mark(_flatten_by_shape(n, (2, 3, 4, 5)))
    prepared = Interpreter(n.net)
    x = rand(2, 3, 4, 5)
    prepared.run({"x": x})
    prepared.run({"x": x})
    seen: list[str] = []
    prepared.run({"x": x}, trace=lambda name, type_name, outputs: seen.append(type_name))
    assert len(seen) == n.net.num_layers
    assert {"SHAPE", "GATHER", "REDUCE", "CONCATENATION", "SHUFFLE", "ELEMENTWISE"} <= set(seen)


def test_runs_after_the_first_visit_only_the_layers_left_unfolded(monkeypatch):
    """Once every folded layer has its value, a run goes through the order without them: the flatten's seven layers
    of shape arithmetic (SHAPE, two index constants, two gathers, a product, a concatenation) are not visited
    at all, only the reshape, the float constant and the product."""
    from trtnet.interpreter import interpreter as loop

    n = Net()
    n.mark(_flatten_by_shape(n, (2, 3, 4, 5)))
    prepared = Interpreter(n.net)
    visited: list[int] = []
    real = loop._Runner.layer
    monkeypatch.setattr(
        loop._Runner, "layer", lambda self, index, values: visited.append(index) or real(self, index, values)
    )
    x = rand(2, 3, 4, 5)
    for want in (n.net.num_layers, 3, 3):
        visited.clear()
        np.testing.assert_array_equal(list(prepared.run({"x": x}).values()), [2 * x.reshape(2, 60)])
        assert len(visited) == want
