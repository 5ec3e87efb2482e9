"""The interpreter loop: validate inputs, run every layer in dependency order, check what TensorRT inferred."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from trtnet.errors import InterpreterError

# Importing the family modules fills HANDLERS.
from trtnet.interpreter import (  # noqa: F401  (imported for their registrations)
    attention,
    control,
    conv,
    detection,
    elementwise,
    generate,
    indexing,
    matrix,
    norm,
    pooling,
    quantize,
    reduce,
    resize,
)
from trtnet.interpreter import shape as _shape_layers  # noqa: F401  (its registrations; `shape` is a local name below)
from trtnet.interpreter._common import (
    ACTIVE_CACHE,
    HANDLERS,
    SUPPORTED_DTYPES,
    LayerCall,
)
from trtnet.interpreter.checks import check_step, validated_inputs
from trtnet.interpreter.forms import ATTRIBUTE_FORMS
from trtnet.interpreter.prepare import Step, execution_order, foldable, producers, scan
from trtnet.interpreter.regions import Block, has_control_flow, plan
from trtnet.interpreter.weightcache import WeightCache

Trace = Callable[[str, str, list[np.ndarray]], None]

# Layer types that are known but deliberately not interpreted, with the reason given to the user.
_NOT_INTERPRETED: dict[str, str] = {
    "PLUGIN": "plugins are opaque to the interpreter",
    "PLUGIN_V2": "plugins are opaque to the interpreter",
    "PLUGIN_V3": "plugins are opaque to the interpreter",
    "DYNAMIC_QUANTIZE": "dynamic (block) quantization is not modelled",
}


def layer_types_supported() -> set[str]:
    """The names of the TensorRT `LayerType`s the interpreter can run."""
    return set(HANDLERS)


def run_network(
    network: Any,
    inputs: Mapping[str, np.ndarray],
    *,
    check_shapes: bool = True,
    trace: Trace | None = None,
) -> dict[str, np.ndarray]:
    """Runs a TensorRT `INetworkDefinition` in numpy and returns its outputs by name, in network order.

    With `check_shapes`, every layer output is checked against the shape and dtype TensorRT inferred.
    `trace(layer_name, layer_type_name, outputs)` is called after each layer. Each call prepares the network
    afresh; `Interpreter(network)` runs it repeatedly without doing so again.
    """
    return Interpreter(network).run(inputs, check_shapes=check_shapes, trace=trace)


class Interpreter:
    """A network prepared for repeated runs: its layers read and ordered once, its weights widened to float64
    once (small ones on the first run that reads them, large ones on the second: see `WeightCache`), and its
    shape arithmetic on static shapes computed by the first run only (see `prepare.foldable`).

    The weights rule (see `WeightCache`): weights set anew on a layer (a new buffer, as TensorRT references the
    caller's memory) are seen by the next run; weights changed in place in their old buffer are not (but for
    the exception `WeightCache` names): prepare a new `Interpreter` (or call `run_network`) for those, and for
    integer constants set anew, which feed folded shape arithmetic. Layers added to the network after preparing
    are not seen either, nor a layer's settings changed after its first run (see `LayerCall.setting`); an input
    declared anew (another shape or type), or outputs marked or unmarked, are refused; an input rewired
    (`set_input`) is a setting. The network and its weights must stay alive, as TensorRT itself requires.

    Several threads may run it at once: each run keeps its own account of what it read, and what runs learn
    (weights kept widened, shape arithmetic folded) is shared, each change a single dict operation.
    """

    def __init__(self, network: Any) -> None:
        if not all(hasattr(network, a) for a in ("num_layers", "get_layer", "get_input", "num_inputs")):
            hint = "; pass its .network" if hasattr(getattr(network, "network", None), "num_layers") else ""
            raise InterpreterError(
                f"the interpreter runs a TensorRT INetworkDefinition, not {type(network).__name__}{hint}"
            )
        with _collector_paused():
            self._prepare(network)

    def _prepare(self, network: Any) -> None:
        self.network = network
        # What each input was declared as when prepared: folded shape arithmetic and the shapes TensorRT inferred
        # hold for these (see `_refuse_redeclared`).
        self._declared = _declared_inputs(network)
        self._steps = scan(network)
        _refuse_unsupported(self._steps)
        self._outputs = [network.get_output(i).name for i in range(network.num_outputs)]
        self._order: list[int | Block]
        self._fold: set[int] = set()
        # Where each value is let go (see `_last_reads`), in an order without blocks.
        self._drops: dict[int, tuple[str, ...]] | None = None
        if has_control_flow(self._steps):  # loops and conditionals run as blocks, each with its own schedule
            producers(self._steps)  # names must be unique here too
            self._order = plan(self._steps, self._outputs).order
        else:
            order = list(execution_order(self._steps))
            self._order = list(order)
            self._fold = foldable(self._steps, order)
            self._drops = _last_reads(self._steps, order, self._outputs)
        # The outputs of the layers in _fold, computed (and checked) by the first run, then read from here.
        self._folded: dict[int, list[np.ndarray]] = {}
        # Once every folded layer has its outputs: the order without them, the folded values it reads, and where
        # each value is let go in it.
        self._lean: tuple[list[int], dict[str, np.ndarray], dict[int, tuple[str, ...]]] | None = None
        self._cache = WeightCache()

    def run(
        self, inputs: Mapping[str, np.ndarray], *, check_shapes: bool = True, trace: Trace | None = None
    ) -> dict[str, np.ndarray]:
        """The network's outputs by name for `inputs` (see `run_network`)."""
        with _collector_paused():
            return self._run(inputs, check_shapes, trace)

    def _run(self, inputs: Mapping[str, np.ndarray], check_shapes: bool, trace: Trace | None) -> dict[str, np.ndarray]:
        self._refuse_redeclared()
        self._cache.start_run()
        token = ACTIVE_CACHE.set(self._cache)
        try:
            values: dict[str, np.ndarray] = dict(validated_inputs(self.network, inputs))
            runner = _Runner(self._steps, check_shapes, trace, self._fold, self._folded)
            if self._lean is not None and trace is None:  # a trace sees every layer, folded ones too
                order, seed, drops = self._lean
                values.update(seed)
                _run_releasing(order, values, runner, drops)
            elif self._drops is not None:
                _run_releasing(self._order, values, runner, self._drops)  # type: ignore[arg-type]  (flat)
            else:
                control.run_order(self._order, values, runner)
            if self._lean is None and self._fold and len(self._folded) == len(self._fold):
                self._lean = self._without_folded()
            return _results(self._outputs, values)
        except RecursionError:
            if not any(isinstance(node, Block) for node in self._order):
                raise
            raise InterpreterError(
                "the network's loops and conditionals are nested deeper than the interpreter can follow within "
                f"Python's recursion limit ({sys.getrecursionlimit()}, see sys.setrecursionlimit)"
            ) from None
        finally:
            ACTIVE_CACHE.reset(token)

    def _refuse_redeclared(self) -> None:
        """A run after an output was marked or unmarked, or an input given another shape or type, on the network
        since it was prepared is refused: it would return the old outputs, or use the shape arithmetic folded and
        the shapes read for the old input (`x[:, : h // 2] * h` gave 8 columns of 16 for h = 12)."""
        marked = [self.network.get_output(i).name for i in range(self.network.num_outputs)]
        if marked != self._outputs:  # marked or unmarked since: the run would return the old ones
            raise InterpreterError(
                f"the network's outputs changed since it was prepared ({self._outputs} -> {marked}): prepare it again "
                "(Interpreter(network)) or run it with run_network"
            )
        now = _declared_inputs(self.network)
        if now == self._declared:
            return
        changes = [f"{was} -> {new}" for was, new in zip(self._declared, now) if was != new]
        if len(now) != len(self._declared):
            changes.append(f"{len(self._declared)} inputs -> {len(now)}")
        raise InterpreterError(
            f"the network's inputs changed since it was prepared ({'; '.join(changes)}): prepare it again "
            "(Interpreter(network)) or run it with run_network"
        )

    def _without_folded(self) -> tuple[list[int], dict[str, np.ndarray], dict[int, tuple[str, ...]]]:
        order = [i for i in self._order if isinstance(i, int) and i not in self._fold]  # no blocks: see __init__
        read = {n for i in order for n in self._steps[i].inputs} | set(self._outputs)
        seed = {}
        for index, kept in list(self._folded.items()):  # a copy: another thread's first run may add to it
            for name, value in zip(self._steps[index].outputs, kept):
                if name in read:
                    seed[name] = value
        return order, seed, _last_reads(self._steps, order, self._outputs)


def _declared_inputs(network: Any) -> list[tuple[str, tuple[int, ...], str]]:
    """Each input's name, declared dims (-1 dynamic) and type, as the network says now."""
    return [(t.name, tuple(t.shape), t.dtype.name) for t in (network.get_input(i) for i in range(network.num_inputs))]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a network is prepared or run: the tens of thousands of small
    objects a network of thousands of layers makes would otherwise set off full collections of everything the
    process holds (Swin-T's ONNX import beside a loaded PyTorch model: 0.2-0.4 s of its first call). It runs again
    afterwards, and was never paused when it was off already."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _last_reads(steps: list[Step], order: list[int], keep: list[str]) -> dict[int, tuple[str, ...]]:
    """For each layer of a flat order, the values it is the last to read (or makes and nobody reads), those in
    `keep` (the network's outputs) apart: dropped once it has run, so that their memory is reused by the layers
    that follow while it is still in cache, rather than held to the end of the run."""
    last: dict[str, int] = {}
    for index in order:
        for name in steps[index].inputs:
            if name is not None:
                last[name] = index
        for name in steps[index].outputs:
            last.setdefault(name, index)
    kept = set(keep)
    drops: dict[int, list[str]] = {}
    for name, index in last.items():
        if name not in kept:
            drops.setdefault(index, []).append(name)
    return {index: tuple(names) for index, names in drops.items()}


def _run_releasing(
    order: list[int], values: dict[str, np.ndarray], runner: _Runner, drops: dict[int, tuple[str, ...]]
) -> None:
    """A flat order's layers, each value dropped after its last reader (see `_last_reads`). Holding every value to
    the end of the run made each layer write fresh memory, long out of cache."""
    for index in order:
        runner.layer(index, values)
        for name in drops.get(index, ()):
            values.pop(name, None)


def _results(names: list[str], values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    result: dict[str, np.ndarray] = {}
    for name in names:
        if name not in values:
            raise InterpreterError(f"network output {name!r} was never computed")
        value = values[name]
        # A view (of a constant's weights, of an input, of another output) or a folded value kept for the next
        # runs is copied: outputs are the caller's.
        result[name] = value if value.base is None and value.flags.writeable else value.copy()
    return result


class _Runner:
    """How one run executes a layer and records a layer's outputs (shared with the loops and conditionals,
    whose boundary layers' outputs are recorded the same way)."""

    def __init__(
        self,
        steps: list[Step],
        check_shapes: bool,
        trace: Trace | None,
        fold: set[int] | None = None,
        folded: dict[int, list[np.ndarray]] | None = None,
    ) -> None:
        self.steps = steps
        self.check_shapes = check_shapes
        self.trace = trace
        self.fold = fold or set()
        self.folded = {} if folded is None else folded

    def layer(self, index: int, values: dict[str, np.ndarray]) -> None:
        step = self.steps[index]
        kept = self.folded.get(index)
        if kept is not None:  # shape arithmetic on static shapes: computed and checked by the first run
            for name, value in zip(step.outputs, kept):
                values[name] = value
            if self.trace is not None:
                self.trace(step.layer.name, step.type_name, kept)
            return
        entry = HANDLERS[step.type_name]  # looked up each time: a test may stand in for a handler
        step.layer.__class__ = step.cls
        call = LayerCall(step.layer, _layer_inputs(step, values), step.type_name, step.settings)
        outputs = list(entry.fn(call))
        if len(outputs) != len(step.outputs):
            raise call.fail(f"the interpreter produced {len(outputs)} outputs, TensorRT declares {len(step.outputs)}")
        self.emit(index, outputs, values)
        if call.fresh:  # the layer ran: what it read of its settings is kept
            step.settings.update(call.fresh)
        if index in self.fold:
            # Owned, read-only copies: a constant's values are a view of weights the caller may replace.
            kept = [np.array(v) for v in outputs]
            for v in kept:
                v.flags.writeable = False
            self.folded[index] = kept

    def emit(self, index: int, outputs: list[np.ndarray], values: dict[str, np.ndarray]) -> None:
        step = self.steps[index]
        if self.check_shapes:
            check_step(step, outputs)
        for name, value in zip(step.outputs, outputs):
            values[name] = value
        if self.trace is not None:
            self.trace(step.layer.name, step.type_name, outputs)


def unsupported(network: Any) -> list[str]:
    """Every reason the interpreter cannot run `network`, one per layer and attribute, without running anything.

    A layer is unsupported for its type, for an output dtype the interpreter does not model (FP8, INT4...),
    or for an attribute form its handler refuses (see `ATTRIBUTE_FORMS`).
    """
    return _unsupported(scan(network))


def _unsupported(steps: list[Step]) -> list[str]:
    # A layer's name is read only for a layer with a problem: reading 16,653 names cost Swin-T's ONNX import 27 ms.
    return [f"layer {step.layer.name!r} ({step.type_name}): {problem}" for step in steps for problem in _problems(step)]


def _problems(step: Step) -> list[str]:
    """What keeps the interpreter from running one layer (see `unsupported`)."""
    type_name = step.type_name
    if type_name not in HANDLERS:
        return [f"unsupported layer type: {_NOT_INTERPRETED.get(type_name, 'no reference implementation')}"]
    found = [
        f"output {o} has data type {dtype}, which the interpreter does not model"
        for o, dtype in enumerate(step.output_dtypes)
        if dtype not in SUPPORTED_DTYPES
    ]
    check = ATTRIBUTE_FORMS.get(type_name)
    if check is not None:
        step.layer.__class__ = step.cls
        found.extend(check(step.layer))
    return found


def _refuse_unsupported(steps: list[Step]) -> None:
    """Fails before any work, naming every layer and attribute the interpreter cannot run."""
    reasons = _unsupported(steps)
    if len(reasons) == 1:
        raise InterpreterError(reasons[0])
    if reasons:
        raise InterpreterError(
            f"the interpreter cannot run {len(reasons)} layer forms of this network:\n  " + "\n  ".join(reasons)
        )


def _layer_inputs(step: Step, values: Mapping[str, np.ndarray]) -> list[np.ndarray | None]:
    try:
        return [None if name is None else values[name] for name in step.inputs]
    except KeyError:
        i, name = next((i, n) for i, n in enumerate(step.inputs) if n is not None and n not in values)
        raise InterpreterError(
            f"layer {step.layer.name!r} ({step.type_name}): input {i} ({name!r}) has no value"
        ) from None
