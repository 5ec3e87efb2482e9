"""Preparing a network for the interpreter: one pass over its layers, their order, and what can be folded.

TensorRT's accessors cost microseconds each from Python, and a network parsed from ONNX has thousands of
layers, so everything a run needs to know about a layer's wiring is read here once, into plain Python.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
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
    settings: dict[str, Any] = field(default_factory=dict)  # what its handler read of it: `LayerCall.setting`


def scan(network: Any) -> list[Step]:
    """Every layer of `network`, in network order."""
    trt = get_trt()
    layer_type = trt.ILayer.type.__get__
    steps = []
    untyped = None  # the first layer whose output types TensorRT cannot say
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        type_name = enum_name(layer_type(layer))
        inputs = []
        for i in range(layer.num_inputs):
            tensor = layer.get_input(i)  # an optional input that was never set reads back as None
            inputs.append(None if tensor is None else tensor.name)
        outs = [layer.get_output(o) for o in range(layer.num_outputs)]
        entry = HANDLERS.get(type_name)
        dtypes = []
        if untyped is None:  # past an untyped layer only the wiring is read: each type read costs TensorRT O(layers)
            try:
                dtypes = [enum_name(t.dtype) for t in outs]
            except KeyError:  # a value outside DataType: TensorRT infers no types in a network with a cycle
                untyped = index
        step = Step(
            layer,
            type_name,
            inputs,
            [t.name for t in outs],
            dtypes,
            expected=_inferred(outs, dtypes) if dtypes else None,
            cls=None if entry is None else getattr(trt, entry.class_name),
        )
        if type_name == "SHAPE" and untyped is None:
            step.static_input = _known_dims(layer.get_input(0))
        steps.append(step)
    if untyped is not None:
        # A cycle anywhere leaves layers off it untyped too: the wiring, not the first untyped layer, says where.
        _refuse_cycle(steps)
        step = steps[untyped]
        raise InterpreterError(
            f"layer {step.layer.name!r} ({step.type_name}): TensorRT gives no data type for its outputs"
        )
    return steps


def _known_dims(tensor: Any) -> bool:
    """Whether TensorRT knows every dim of `tensor` (it cannot say on a cycle: then no)."""
    try:
        shape = tensor.shape
    except RuntimeError:
        return False
    return all(shape[d] >= 0 for d in range(len(shape)))


def find_cycle(steps: list[Step]) -> list[int] | None:
    """The layers of one cycle in the network's wiring, each feeding the next and the last the first (None: there
    is none). A recurrence's second input, the value a loop feeds back to it, is the loop's own and not an edge."""
    made_by = {name: index for index, step in enumerate(steps) for name in step.outputs}
    reads = [
        [
            made_by[name]
            for i, name in enumerate(step.inputs)
            if name in made_by and not (i == 1 and step.type_name == "RECURRENCE")
        ]
        for step in steps
    ]
    state = [0] * len(steps)  # 0: not reached, 1: on the current path, 2: no cycle through it
    for root in range(len(steps)):
        if state[root]:
            continue
        path, pending = [root], [iter(reads[root])]
        state[root] = 1
        while path:
            source = next(pending[-1], None)
            if source is None:
                state[path.pop()] = 2
                pending.pop()
            elif state[source] == 1:  # path[k] reads path[k + 1] ... reads path[-1] reads source = path[k]
                return path[path.index(source) :][::-1]
            elif state[source] == 0:
                state[source] = 1
                path.append(source)
                pending.append(iter(reads[source]))
    return None


def _refuse_cycle(steps: list[Step]) -> None:
    """Raises an InterpreterError naming a cycle's layers in data-flow order, where the network has one."""
    cycle = find_cycle(steps)
    if cycle is not None:
        first = steps[cycle[0]]
        names = [repr(steps[i].layer.name) for i in cycle + cycle[:1]]
        if len(names) > _NAMED + 2:  # a long cycle: its start and its end
            names[_NAMED // 2 : -_NAMED // 2] = [f"... {len(names) - _NAMED} more"]
        loop = " -> ".join(names)
        raise InterpreterError(f"layer {first.layer.name!r} ({first.type_name}): the network has a cycle: {loop}")


_NAMED = 10  # the most layers of a cycle an error names


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
    """Whether every layer reads only tensors made by layers before it (or by none: the network's inputs)."""
    for index, step in enumerate(steps):
        for name in step.inputs:
            if name is not None and produced_by.get(name, -1) >= index:
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
        _refuse_cycle(steps)
        raise AssertionError("layers left unordered without a cycle")  # unreachable: Kahn's sort stops only there
    return order
