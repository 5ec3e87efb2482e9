"""Where TensorRT's loops and conditionals lie in a network, and the order their layers run in.

TensorRT marks only the boundary layers of a loop (trip limit, recurrence, iterator, loop output) or of a
conditional (condition, input, output) with the `ILoop`/`IIfConditional` they belong to; the layers between
are found by data dependence, as TensorRT itself does:
- a loop's body is every layer that depends on one of its recurrences or iterators, up to its loop outputs
  (a layer that depends on neither is loop-invariant: it runs once, before the loop, which is the same value);
- a conditional's branches are every layer that depends on one of its inputs, up to its outputs, plus the
  layers whose results only those branches read (constants of a branch, say): those run only when their
  branch is taken, so a branch not taken costs nothing and cannot fail;
- a structure holding a boundary layer of another holds all of it (loops and conditionals nest).

Each structure is then a `Block`: one node of its enclosing region's schedule, with a schedule of its own.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trtnet.backend import get_trt
from trtnet.errors import InterpreterError

LOOP_BOUNDARY = frozenset({"TRIP_LIMIT", "RECURRENCE", "ITERATOR", "LOOP_OUTPUT"})
IF_BOUNDARY = frozenset({"CONDITION", "CONDITIONAL_INPUT", "CONDITIONAL_OUTPUT"})
CONTROL_TYPES = LOOP_BOUNDARY | IF_BOUNDARY
_CLASSES = {
    "TRIP_LIMIT": "ITripLimitLayer",
    "RECURRENCE": "IRecurrenceLayer",
    "ITERATOR": "IIteratorLayer",
    "LOOP_OUTPUT": "ILoopOutputLayer",
    "CONDITION": "IConditionLayer",
    "CONDITIONAL_INPUT": "IIfConditionalInputLayer",
    "CONDITIONAL_OUTPUT": "IIfConditionalOutputLayer",
}


@dataclass(eq=False)
class Block:
    """One loop or conditional: its boundary layers by type, everything inside it, and its own schedule."""

    kind: str  # "loop" or "conditional"
    name: str
    boundary: dict[str, list[int]]  # LayerType name -> step indices
    members: set[int] = field(default_factory=set)  # boundary, body and nested structures
    parent: Block | None = None
    order: list[int | Block] = field(default_factory=list)  # the body's layers and nested blocks, runnable in turn
    needs: set[str] = field(default_factory=set)  # tensors read from outside the block
    # The parts of `order` run apart: a conditional's "true" and "false" branches; a loop's "while" (what its
    # while-condition reads, run first in each iteration) and "rest".
    parts: dict[str, list[int | Block]] = field(default_factory=dict)

    @property
    def what(self) -> str:
        return f"{self.kind} {self.name!r}"

    def exits(self) -> list[int]:
        return self.boundary.get("LOOP_OUTPUT" if self.kind == "loop" else "CONDITIONAL_OUTPUT", [])


@dataclass
class Plan:
    """The network's top-level schedule (layers and outermost blocks) and every block."""

    order: list[int | Block]
    blocks: list[Block]


def has_control_flow(steps: Sequence[Any]) -> bool:
    """Whether any layer is a loop or conditional boundary."""
    return any(step.type_name in CONTROL_TYPES for step in steps)


def plan(steps: Sequence[Any], network_outputs: Iterable[str]) -> Plan:
    """Finds every loop and conditional among `steps` (the interpreter's `_Step`s), nests them, checks that no
    value leaves a structure except through its outputs, and orders each region."""
    produced_by: dict[str, int] = {}
    for index, step in enumerate(steps):
        for name in step.outputs:
            produced_by[name] = index
    consumers: list[list[tuple[int, int]]] = [[] for _ in steps]  # producer -> (consumer, input slot)
    for index, step in enumerate(steps):
        for slot, name in enumerate(step.inputs):
            if name is not None and name in produced_by:
                consumers[produced_by[name]].append((index, slot))
    blocks = _blocks(steps)
    outputs = set(network_outputs)
    _grow(steps, blocks, consumers, outputs)
    _nest(blocks)
    owner: list[Block | None] = [None] * len(steps)
    for block in sorted(blocks, key=lambda b: -len(b.members)):  # inner blocks last, so they win
        for index in block.members:
            owner[index] = block
    for block in blocks:
        _check_escapes(steps, block, consumers, outputs)
        block.needs = {
            name
            for i in block.members
            for name in steps[i].inputs
            if name is not None and (name not in produced_by or produced_by[name] not in block.members)
        }
    for block in blocks:
        block.order = _schedule(steps, block, blocks, owner, produced_by)
        block.parts = _parts(steps, block)
    return Plan(_schedule(steps, None, blocks, owner, produced_by), blocks)


def _parts(steps: Sequence[Any], block: Block) -> dict[str, list[int | Block]]:
    if block.kind == "conditional":
        outs = block.boundary.get("CONDITIONAL_OUTPUT", [])
        return {
            side: needed(steps, block.order, [steps[i].inputs[slot] for i in outs if steps[i].inputs[slot]])
            for side, slot in (("true", 0), ("false", 1))
        }
    limits = [steps[i] for i in block.boundary.get("TRIP_LIMIT", [])]
    first = needed(steps, block.order, [s.inputs[0] for s in limits if s.inputs[0]])
    taken = {key(n) for n in first}
    return {"while": first, "rest": [n for n in block.order if key(n) not in taken]}


def _blocks(steps: Sequence[Any]) -> list[Block]:
    """One block per ILoop / IIfConditional, keyed by the binding's object (the bindings hand back one Python
    object per C++ loop while it is alive, and `held` keeps each alive until grouping is done)."""
    trt = get_trt()
    by_key: dict[int, Block] = {}
    held = []
    for index, step in enumerate(steps):
        if step.type_name not in CONTROL_TYPES:
            continue
        step.layer.__class__ = getattr(trt, _CLASSES[step.type_name])
        is_loop = step.type_name in LOOP_BOUNDARY
        owner = step.layer.loop if is_loop else step.layer.conditional
        held.append(owner)
        block = by_key.setdefault(id(owner), Block("loop" if is_loop else "conditional", owner.name, {}))
        block.boundary.setdefault(step.type_name, []).append(index)
        block.members.add(index)
    return list(by_key.values())


def _grow(steps: Sequence[Any], blocks: list[Block], consumers: list[list[tuple[int, int]]], outputs: set) -> None:
    """Grows every block to its body, to a fixed point: sets only grow, and each step can enter each block once."""
    boundary_of = {i: b for b in blocks for i in b.members}
    changed = True
    while changed:
        changed = False
        for block in blocks:
            before = len(block.members)
            exits = set(block.exits())
            frontier = [i for i in block.members if i not in exits]
            while frontier:  # forward: whatever depends on the block's values is inside it
                for consumer, _slot in consumers[frontier.pop()]:
                    if consumer not in block.members:
                        block.members.add(consumer)
                        if consumer not in exits:
                            frontier.append(consumer)
            if block.kind == "conditional":
                _absorb_branch_only(steps, block, consumers, outputs, boundary_of)
            # Holding one boundary layer of another block means holding all of it.
            for other in {id(o): o for o in (boundary_of.get(i) for i in block.members) if o is not None}.values():
                if other is not block:
                    block.members |= other.members
            changed |= len(block.members) != before


def _absorb_branch_only(
    steps: Sequence[Any], block: Block, consumers: list[list[tuple[int, int]]], outputs: set, boundary_of: dict
) -> None:
    """Takes into a conditional the plain layers read only by its branches (not by its condition or inputs,
    which are the conditional's own inputs, and not network outputs)."""
    outer_slots = set(block.boundary.get("CONDITION", [])) | set(block.boundary.get("CONDITIONAL_INPUT", []))
    changed = True
    while changed:
        changed = False
        for index in reversed(range(len(steps))):  # consumers mostly follow producers: a chain goes in one pass
            step = steps[index]
            if index in block.members or index in boundary_of or not consumers[index]:
                continue
            if any(name in outputs for name in step.outputs):
                continue
            if all(c in block.members and c not in outer_slots for c, _ in consumers[index]):
                block.members.add(index)
                changed = True


def _nest(blocks: list[Block]) -> None:
    for block in blocks:
        holders = [o for o in blocks if o is not block and block.members <= o.members]
        if any(block.members == o.members for o in holders):
            other = next(o for o in holders if block.members == o.members)
            raise InterpreterError(f"{block.what} and {other.what} overlap without one holding the other")
        block.parent = min(holders, key=lambda o: len(o.members), default=None)


def _check_escapes(steps: Sequence[Any], block: Block, consumers: list[list[tuple[int, int]]], outputs: set) -> None:
    """Only a loop's or conditional's outputs carry values out of it (TensorRT refuses anything else too)."""
    exits = set(block.exits())
    for index in block.members - exits:
        step = steps[index]
        outside = [c for c, _ in consumers[index] if c not in block.members]
        leaked = [n for n in step.outputs if n in outputs]
        if outside or leaked:
            user = f"layer {steps[outside[0]].layer.name!r} reads" if outside else "the network's outputs read"
            raise InterpreterError(
                f"layer {step.layer.name!r} ({step.type_name}) is inside {block.what}, but {user} its "
                "output from outside it; values leave a loop or conditional only through its output layers"
            )


def _schedule(
    steps: Sequence[Any], region: Block | None, blocks: list[Block], owner: list[Block | None], produced_by: dict
) -> list[int | Block]:
    """The nodes of one region (its own plain layers and its child blocks) in dependency order, insertion
    order where free. A region's own boundary layers are not scheduled: its block's runner sets them."""
    nodes: list[int | Block] = [
        i for i, o in enumerate(owner) if o is region and steps[i].type_name not in CONTROL_TYPES
    ]
    nodes += [b for b in blocks if b.parent is region]
    first = {key(n): (n if isinstance(n, int) else min(n.members)) for n in nodes}  # unique: members are apart

    def node_of(name: str) -> int | Block | None:
        index = produced_by.get(name)
        if index is None:
            return None
        inner = owner[index]
        if inner is region:
            return None if steps[index].type_name in CONTROL_TYPES else index
        while inner is not None and inner.parent is not region:
            inner = inner.parent
        return inner  # None: made outside this region, so already there when it runs

    deps: dict[tuple, set[tuple]] = {}
    by_key = {key(n): n for n in nodes}
    for node in nodes:
        found = (node_of(name) for name in (steps[node].inputs if isinstance(node, int) else node.needs) if name)
        deps[key(node)] = {key(d) for d in found if d is not None} - {key(node)}
    dependents: dict[tuple, list[tuple]] = {}
    for k, ds in deps.items():
        for d in ds:
            dependents.setdefault(d, []).append(k)
    ready = [(first[k], k) for k, ds in deps.items() if not ds]
    heapq.heapify(ready)
    order: list[int | Block] = []
    while ready:
        _, k = heapq.heappop(ready)
        order.append(by_key[k])
        for nxt in dependents.get(k, ()):
            deps[nxt].discard(k)
            if not deps[nxt]:
                heapq.heappush(ready, (first[nxt], nxt))
    if len(order) != len(nodes):
        stuck = next(n for n in nodes if deps[key(n)])
        what = f"layer {steps[stuck].layer.name!r}" if isinstance(stuck, int) else stuck.what
        raise InterpreterError(f"{what}: the network has a cycle through it outside any loop's recurrence")
    return order


def key(node: int | Block) -> tuple:
    """A hashable, comparable name for a schedule node (a step index or a block)."""
    return ("layer", node) if isinstance(node, int) else ("block", id(node))


def needed(steps: Sequence[Any], order: list[int | Block], targets: Iterable[str]) -> list[int | Block]:
    """The part of a region's `order` that computing `targets` needs, in the same order (a conditional's
    branch taken, the part of a loop body its while-condition reads)."""
    made: dict[str, int | Block] = {}
    for node in order:
        for index in [node] if isinstance(node, int) else node.exits():
            for name in steps[index].outputs:
                made[name] = node
    wanted: set[tuple] = set()
    stack = [made[n] for n in targets if n in made]
    while stack:
        node = stack.pop()
        if key(node) in wanted:
            continue
        wanted.add(key(node))
        needs = steps[node].inputs if isinstance(node, int) else node.needs
        stack.extend(made[n] for n in needs if n is not None and n in made)
    return [n for n in order if key(n) in wanted]
