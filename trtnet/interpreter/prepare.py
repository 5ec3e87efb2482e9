"""Preparing a network for the interpreter: one pass over its layers, their order, and what can be folded.

TensorRT's accessors cost microseconds each from Python, and a network parsed from ONNX has thousands of
layers, so everything a run needs to know about a layer's wiring is read here once, into plain Python.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from trtnet.backend import get_trt
from trtnet.errors import InterpreterError
from trtnet.interpreter._common import HANDLERS, NUMPY_DTYPES, dims, enum_name

# Output types of shape arithmetic: a layer making only these from folded inputs is folded too.
_SHAPE_DTYPES = frozenset({"INT32", "INT64", "BOOL"})


@dataclass
class Step:
    """One layer as a single pass over the network reads it."""

    layer: Any
    type_name: str
    inputs: list[str | None]
    outputs: list[str]
    output_dtypes: list[str]  # TensorRT DataType names, as inferred at preparation
    # What TensorRT inferred for the outputs (dims, numpy dtype), read here: every run checks its outputs against
    # it without asking TensorRT again (None when a shape or type cannot be read: the run asks, and says why).
    expected: list[tuple[tuple[int, ...], Any]] | None = None
    cls: Any = None  # the TensorRT class the layer is downcast to (None for a type the interpreter lacks)
    static_input: bool = False  # a SHAPE layer whose input's dims TensorRT knows all of


def scan(network: Any) -> list[Step]:
    """Every layer of `network`, in network order."""
    trt = get_trt()
    layer_type = trt.ILayer.type.__get__
    steps = []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        type_name = enum_name(layer_type(layer))
        inputs = []
        for i in range(layer.num_inputs):
            tensor = layer.get_input(i)  # an optional input that was never set reads back as None
            inputs.append(None if tensor is None else tensor.name)
        outs = [layer.get_output(o) for o in range(layer.num_outputs)]
        entry = HANDLERS.get(type_name)
        try:
            dtypes = [enum_name(t.dtype) for t in outs]
        except KeyError:  # a value outside DataType: TensorRT infers no types in a network with a cycle
            raise InterpreterError(
                f"layer {layer.name!r} ({type_name}): TensorRT gives no data type for its outputs (a cycle in the "
                "network makes it infer none)"
            ) from None
        step = Step(
            layer,
            type_name,
            inputs,
            [t.name for t in outs],
            dtypes,
            expected=_inferred(outs, dtypes),
            cls=None if entry is None else getattr(trt, entry.class_name),
        )
        if type_name == "SHAPE":
            shape = layer.get_input(0).shape
            step.static_input = all(shape[d] >= 0 for d in range(len(shape)))
        steps.append(step)
    return steps


def _inferred(outs: list[Any], dtypes: list[str]) -> list[tuple[tuple[int, ...], Any]] | None:
    """Each output's inferred dims and numpy dtype, or None when TensorRT cannot infer a shape (an invalid layer)
    or a type is one the interpreter does not model: the run's full check then names the layer and the reason."""
    try:
        return [(dims(t.shape), NUMPY_DTYPES[d]) for t, d in zip(outs, dtypes)]
    except (RuntimeError, KeyError):
        return None


def foldable(steps: list[Step], order: list[int]) -> set[int]:
    """The layers whose outputs are the same on every run: shape arithmetic on static shapes.

    A SHAPE layer of a tensor whose dims TensorRT knows, an integer or bool CONSTANT, and any layer making only
    integers or bools from those alone (Swin's ONNX export has 14,535 such layers of 16,653). Float constants are
    left out: their weights may be set anew between runs, and a prepared network sees that.
    """
    static: set[str] = set()
    folded: set[int] = set()
    for index in order:
        step = steps[index]
        if not step.outputs or any(d not in _SHAPE_DTYPES for d in step.output_dtypes):
            continue
        if step.type_name == "SHAPE":
            ok = step.static_input
        elif step.type_name == "CONSTANT":
            ok = True
        else:
            ok = step.type_name in HANDLERS and all(n is None or n in static for n in step.inputs)
        if ok:
            folded.add(index)
            static.update(step.outputs)
    return folded


def producers(steps: list[Step]) -> dict[str, int]:
    """Which step makes each tensor; a name made twice is an error."""
    produced_by: dict[str, int] = {}
    for index, step in enumerate(steps):
        for name in step.outputs:
            if name in produced_by:
                raise InterpreterError(
                    f"layer {step.layer.name!r} ({step.type_name}): output name {name!r} is also produced by layer "
                    f"{steps[produced_by[name]].layer.name!r}; tensor names must be unique"
                )
            produced_by[name] = index
    return produced_by


def _in_order(steps: list[Step], produced_by: dict[str, int]) -> bool:
    """Whether every layer reads only tensors made by layers before it (or by itself, or by none: the network's
    inputs)."""
    for index, step in enumerate(steps):
        for name in step.inputs:
            if name is not None and produced_by.get(name, -1) > index:
                return False
    return True


def execution_order(steps: list[Step]) -> list[int]:
    """Layer indices in an order where every input is computed first (insertion order where possible).

    Networks are usually built in topological order, but `set_input` can rewire a layer to a tensor made later.
    """
    produced_by = producers(steps)
    if _in_order(steps, produced_by):
        return list(range(len(steps)))  # what the sort below gives such a network, without sorting
    waiting_on: list[set[int]] = [
        {produced_by[n] for n in step.inputs if n is not None and n in produced_by} for step in steps
    ]
    dependents: dict[int, list[int]] = {}
    for index, deps in enumerate(waiting_on):
        deps.discard(index)
        for dep in deps:
            dependents.setdefault(dep, []).append(index)
    ready = [i for i, deps in enumerate(waiting_on) if not deps]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for nxt in dependents.get(index, ()):
            waiting_on[nxt].discard(index)
            if not waiting_on[nxt]:
                heapq.heappush(ready, nxt)
    if len(order) != len(steps):
        done = set(order)
        stuck = steps[next(i for i in range(len(steps)) if i not in done)]
        raise InterpreterError(f"layer {stuck.layer.name!r} ({stuck.type_name}): the network has a cycle through it")
    return order
