"""TensorRT's loops (`ILoop`) and conditionals (`IIfConditional`), run over the blocks `regions.plan` finds.

A conditional runs its condition's branch only. A loop runs its body once per iteration: recurrences hold
their initial value, then the value the previous iteration fed back; iterators hand out one slice of their
input a turn (from the end when reversed); a while trip limit is read at the start of each iteration, from
the part of the body it needs alone, so the body proper never runs on the iteration that stops the loop.
Loop outputs: LAST_VALUE of a recurrence is its value after the last iteration (its initial value when none
ran); CONCATENATE and REVERSE stack each iteration's value along a new axis of the length their second input
gives, iteration i at index i (REVERSE: length-1-i); where the loop ran fewer iterations than that length
TensorRT leaves the rest undefined, and the interpreter leaves zeros.

Boundary layers are not run by the scheduler but here; their outputs go through the same shape checks and
trace as any layer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from trtnet.backend import get_trt
from trtnet.errors import InterpreterError
from trtnet.interpreter._common import HANDLERS, LayerCall, dims, enum_name, normalize_axis, np_dtype, register
from trtnet.interpreter.regions import Block


class Runner(Protocol):
    """What the interpreter's scheduler lends a block: its steps, running a plain layer, and recording the
    outputs of a boundary layer (checked against TensorRT's shapes, stored, traced)."""

    steps: Sequence[Any]

    def layer(self, index: int, values: dict[str, np.ndarray]) -> None: ...

    def emit(self, index: int, outputs: list[np.ndarray], values: dict[str, np.ndarray]) -> None: ...


def _boundary(call: LayerCall) -> list[np.ndarray]:
    raise call.fail("a loop or conditional boundary layer runs as part of its loop or conditional, not alone")


for _type, _class in (
    ("TRIP_LIMIT", "ITripLimitLayer"),
    ("RECURRENCE", "IRecurrenceLayer"),
    ("ITERATOR", "IIteratorLayer"),
    ("LOOP_OUTPUT", "ILoopOutputLayer"),
    ("CONDITION", "IConditionLayer"),
    ("CONDITIONAL_INPUT", "IIfConditionalInputLayer"),
    ("CONDITIONAL_OUTPUT", "IIfConditionalOutputLayer"),
):
    register(_type, _class)(_boundary)


def run_order(order: Sequence[int | Block], values: dict[str, np.ndarray], runner: Runner) -> None:
    """Runs one region's schedule: plain layers through the runner, nested blocks here."""
    for node in order:
        if isinstance(node, int):
            runner.layer(node, values)
        elif node.kind == "loop":
            _run_loop(node, values, runner)
        else:
            _run_conditional(node, values, runner)


def _call(runner: Runner, index: int, values: dict[str, np.ndarray]) -> LayerCall:
    """The layer at `index`, downcast, with its inputs (None where absent or not computed)."""
    step = runner.steps[index]
    step.layer.__class__ = getattr(get_trt(), HANDLERS[step.type_name].class_name)
    inputs = [None if name is None else values.get(name) for name in step.inputs]
    return LayerCall(step.layer, inputs, step.type_name, step.settings)


def _flag(call: LayerCall, value: np.ndarray, what: str) -> bool:
    arr = np.asarray(value)
    if arr.dtype != np.bool_ or arr.size != 1:
        raise call.fail(f"{what} must be a single bool, got {arr.dtype} of shape {arr.shape}")
    return bool(arr.reshape(-1)[0])


def _count(call: LayerCall, value: np.ndarray) -> int:
    arr = np.asarray(value)
    if arr.size != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise call.fail(f"the trip count must be a single integer, got {arr.dtype} of shape {arr.shape}")
    return int(arr.reshape(-1)[0])


def _run_conditional(block: Block, values: dict[str, np.ndarray], runner: Runner) -> None:
    conditions = block.boundary.get("CONDITION", [])
    if len(conditions) != 1:
        raise InterpreterError(f"{block.what} has {len(conditions)} conditions; it needs exactly one")
    call = _call(runner, conditions[0], values)
    taken = _flag(call, call.input(0), "the condition")
    for index in block.boundary.get("CONDITIONAL_INPUT", []):
        runner.emit(index, [_call(runner, index, values).input(0)], values)
    run_order(block.parts["true" if taken else "false"], values, runner)
    for index in block.boundary.get("CONDITIONAL_OUTPUT", []):
        runner.emit(index, [_call(runner, index, values).input(0 if taken else 1)], values)


class _Iterator:
    """One iterator: its input tensor, the axis it walks and which way."""

    def __init__(self, index: int, call: LayerCall) -> None:
        self.index = index
        self.call = call
        self.tensor = call.input(0)
        self.axis = normalize_axis(int(call.layer.axis), self.tensor.ndim)
        if not 0 <= self.axis < self.tensor.ndim:
            raise call.fail(f"axis {call.layer.axis} is out of range for an input of rank {self.tensor.ndim}")
        self.reverse = bool(call.layer.reverse)
        self.length = self.tensor.shape[self.axis]

    def slice(self, trip: int) -> np.ndarray | None:
        if trip >= self.length:
            return None
        return np.take(self.tensor, self.length - 1 - trip if self.reverse else trip, axis=self.axis)

    def overrun(self, trip: int) -> InterpreterError:
        return self.call.fail(
            f"iteration {trip} runs past the end of its input (length {self.length} on axis "
            f"{self.axis}); TensorRT leaves such iterations undefined"
        )


def _run_loop(block: Block, values: dict[str, np.ndarray], runner: Runner) -> None:
    steps = runner.steps
    count: int | None = None
    condition: int | None = None  # the WHILE trip limit's step
    for index in block.boundary.get("TRIP_LIMIT", []):
        call = _call(runner, index, values)
        if enum_name(call.layer.kind) == "COUNT":
            trips = max(0, _count(call, call.input(0)))
            count = trips if count is None else min(count, trips)
        else:
            condition = index
    if count is None and condition is None:
        raise InterpreterError(f"{block.what} has no trip limit, so it would never end")
    recurrences = block.boundary.get("RECURRENCE", [])
    state: dict[int, np.ndarray] = {}
    for index in recurrences:
        call = _call(runner, index, values)
        if len(steps[index].inputs) < 2 or steps[index].inputs[1] is None:
            raise call.fail("the recurrence has no next value (set its input 1 to the value of the next iteration)")
        state[index] = call.input(0)
    iterators = [_Iterator(i, _call(runner, i, values)) for i in block.boundary.get("ITERATOR", [])]
    outputs = block.boundary.get("LOOP_OUTPUT", [])
    seen: dict[int, list[np.ndarray]] = {i: [] for i in outputs}
    # LAST_VALUE outputs keep only the latest value (and read a recurrence's final state, not what they saw).
    last_only = {i for i in outputs if enum_name(_call(runner, i, values).layer.kind) == "LAST_VALUE"}
    trip = 0
    while count is None or trip < count:
        for index in recurrences:
            runner.emit(index, [state[index]], values)
        for it in iterators:
            piece = it.slice(trip)
            if piece is None and condition is None:
                raise it.overrun(trip)
            if piece is None:  # a while loop may still stop here; nothing may read this iterator before it does
                values.pop(steps[it.index].outputs[0], None)
            else:
                runner.emit(it.index, [piece], values)
        if condition is not None:
            run_order(block.parts["while"], values, runner)
            call = _call(runner, condition, values)  # its input changes every iteration
            if not _flag(call, call.input(0), "the while condition"):
                break
            overrun = next((it for it in iterators if trip >= it.length), None)
            if overrun is not None:
                raise overrun.overrun(trip)
        run_order(block.parts["rest"], values, runner)
        for index in outputs:
            value = _call(runner, index, values).input(0)
            if index in last_only:
                seen[index] = [value]
            else:
                seen[index].append(value)
        state = {index: _call(runner, index, values).input(1) for index in recurrences}
        trip += 1
    for index in outputs:
        runner.emit(index, [_loop_output(index, values, runner, state, seen[index], trip)], values)


def _loop_output(
    index: int,
    values: dict[str, np.ndarray],
    runner: Runner,
    state: dict[int, np.ndarray],
    seen: list[np.ndarray],
    trips: int,
) -> np.ndarray:
    """A loop output's value once the loop is done, from the recurrences' final `state` and what it `seen`."""
    call = _call(runner, index, values)
    kind = enum_name(call.layer.kind)
    source = runner.steps[index].inputs[0]
    if kind == "LAST_VALUE":
        for rec, value in state.items():
            if runner.steps[rec].outputs[0] == source:
                return value
        if seen:
            return seen[-1]
        raise call.fail(
            "LAST_VALUE of a tensor that is not a recurrence's has no value when the loop runs no iteration"
        )
    length = _count(call, call.input(1))
    if length < 0:  # an int64 count past 2^31 - 1 arrives so from ONNX, whose parser casts it to int32
        raise call.fail(
            f"the output's length is {length}, below 0 (an int64 count beyond int32's range wraps to one when the "
            "ONNX parser casts it to int32)"
        )
    if trips > length:
        raise call.fail(f"the loop ran {trips} iterations, more than the output's length {length}")
    if seen:
        item_shape, dtype = seen[0].shape, seen[0].dtype
    else:
        tensor = call.layer.get_input(0)
        item_shape, dtype = dims(tensor.shape), np_dtype(tensor.dtype)
        if any(d < 0 for d in item_shape):
            raise call.fail(f"the loop ran no iteration and its input's shape {item_shape} is not known")
    axis = normalize_axis(int(call.layer.axis), len(item_shape) + 1)
    if not 0 <= axis <= len(item_shape):
        raise call.fail(f"axis {call.layer.axis} is out of range for an output of rank {len(item_shape) + 1}")
    out = np.zeros((*item_shape[:axis], length, *item_shape[axis:]), dtype)
    lead = (slice(None),) * axis
    for trip, value in enumerate(seen):
        if value.shape != item_shape:
            raise call.fail(f"iteration {trip} gives shape {value.shape}, iteration 0 gave {item_shape}")
        out[(*lead, trip if kind == "CONCATENATE" else length - 1 - trip)] = value
    return out
