"""Preparing a network (trtnet/interpreter/prepare.py): the order its layers run in."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.interpreter.cases import Net, trt
from trtnet.errors import InterpreterError
from trtnet.interpreter import Interpreter, run_network
from trtnet.interpreter.prepare import execution_order, find_cycle, scan


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


def _assert_refused_naming_cycle(n: Net, cycle: list[str]) -> None:
    """run_network refuses n's network naming `cycle` in data-flow order (from any of its layers), closed."""
    with pytest.raises(InterpreterError, match="the network has a cycle: ") as caught:
        run_network(n.net, {"x": np.zeros((2, 3), np.float32)})
    head, _, named = str(caught.value).partition("the network has a cycle: ")
    names = [name.strip("'") for name in named.split(" -> ")]
    assert names[0] == names[-1] and head.startswith(f"layer '{names[0]}' ")
    start = cycle.index(names[0])
    assert names[:-1] == cycle[start:] + cycle[:start]


def test_a_network_with_a_cycle_is_refused_naming_the_cycle() -> None:
    """TensorRT infers no output types in a cyclic network (its DataType reads back as -2): the interpreter names
    the cycle's layers in data-flow order, found from the wiring, rather than failing on the unknown enum value."""
    n, (exp, absolute, total) = _chain()
    for layer, name in ((exp, "exp"), (absolute, "abs"), (total, "total")):
        layer.name = name
    absolute.set_input(0, total.get_output(0))
    exp.set_input(0, absolute.get_output(0))  # exp -> total -> abs -> exp
    _assert_refused_naming_cycle(n, ["exp", "total", "abs"])


def test_a_cycle_is_named_by_its_own_layers_not_by_an_untyped_bystander() -> None:
    """A cycle leaves layers off it untyped too (here the first layer of all): the error names the cycle."""
    n = Net()
    x = n.input("x", (2, 3))
    bystander = n.net.add_unary(x, trt.UnaryOperation.ABS)
    bystander.name = "bystander"
    cast = n.net.add_cast(x, trt.float32)
    cast.name = "cast"
    exp = n.net.add_unary(cast.get_output(0), trt.UnaryOperation.EXP)
    exp.name = "exp"
    cast.set_input(0, exp.get_output(0))
    n.mark(bystander.get_output(0), exp.get_output(0))
    _assert_refused_naming_cycle(n, ["cast", "exp"])


@pytest.mark.parametrize("kind", ["cast reading itself", "shape of a cast of itself"])
def test_cycles_tensorrt_types_are_refused_too(kind: str) -> None:
    """Where TensorRT still types every layer (a CAST's type is its own), the order says there is a cycle: a layer
    reading its own output was run with no value for it, and a SHAPE of a tensor on a cycle failed in TensorRT."""
    n = Net()
    x = n.input("x", (2, 3))
    cast = n.net.add_cast(x, trt.float32)
    cast.name = "cast"
    if kind == "cast reading itself":
        cast.set_input(0, cast.get_output(0))
        cycle = ["cast"]
    else:
        shape = n.net.add_shape(cast.get_output(0))
        shape.name = "shape"
        cast.set_input(0, shape.get_output(0))
        cycle = ["cast", "shape"]
    n.mark(cast.get_output(0))
    _assert_refused_naming_cycle(n, cycle)


def test_a_loop_s_recurrence_is_not_a_cycle() -> None:
    """A recurrence reads the value its loop feeds back (here its own output, carried unchanged): no cycle."""
    n = Net()
    x = n.input("x", (2, 3))
    loop = n.net.add_loop()
    loop.add_trip_limit(n.net.add_constant((), np.array(3, np.int32)).get_output(0), trt.TripLimit.COUNT)
    carried = loop.add_recurrence(x)
    carried.set_input(1, carried.get_output(0))
    n.mark(loop.add_loop_output(carried.get_output(0), trt.LoopOutput.LAST_VALUE).get_output(0))
    assert find_cycle(scan(n.net)) is None
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(next(iter(run_network(n.net, {"x": value}).values())), value)


def test_a_long_cycle_is_refused_promptly_with_a_short_message() -> None:
    """A 20,000-layer chain closed into a ring: past the first untyped layer only the wiring is read (each type read
    costs TensorRT a walk of the whole network there: 74 s when every layer's was read), and the message names
    the cycle's first and last five layers."""
    n = Net()
    tensor = n.input("x", (2, 3))
    chain = []
    for i in range(20_000):
        layer = n.net.add_unary(tensor, trt.UnaryOperation.ABS)
        layer.name = f"u{i}"
        chain.append(layer)
        tensor = layer.get_output(0)
    chain[0].set_input(0, tensor)
    n.mark(tensor)
    start = time.perf_counter()
    with pytest.raises(InterpreterError, match="the network has a cycle") as caught:
        Interpreter(n.net)
    assert time.perf_counter() - start < 15  # a guard against the walk per layer, not a speed claim
    names = str(caught.value).partition("cycle: ")[2].split(" -> ")
    assert len(names) == 11 and names[5] == "... 19991 more" and names[0] == names[-1]
