"""Blame in one run: the first module of a trtnet model whose output departs from its PyTorch source.

Every module call is recorded while the network is emitted (`Graph.calls`: the path, which is also the
source's state_dict prefix, and the tensors it took and returned). One interpreter run captures all those
tensors without changing the network; one run of the source, with hooks on the modules of the same paths,
captures theirs. Compared in the order the calls returned (children before their parents), the blame goes where
the error jumps: to the first module whose output error is GROWTH times what reaches it (its inputs' errors and
its submodules'), or, when a module's input already jumps over every error seen before, to the code that made
that input: its producer if that could not be compared, else the enclosing forward's own ops. Rounding that the
two sides accumulate differently grows slowly and is not blamed.

>>> report = trtnet.parity.layerwise(model, source, sample_inputs(model, 1))     # doctest: +SKIP
>>> print(report.text())                                           # doctest: +SKIP
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trtnet.builder.emit import checked_inputs, emit
from trtnet.errors import ParityError
from trtnet.graph import Policy
from trtnet.interpreter.capture import run_network_capture
from trtnet.interpreter.interpreter import Interpreter
from trtnet.nn.module import Module
from trtnet.parity.sides import Side, compare

# The precision a comparison was emitted in -> the relative error (max |a - b| / max |b|) past which a
# module's output departs: fp32 as `trtnet verify`; reduced types by their rounding (2**-11, 2**-8).
TOLERANCE = {"fp32": 1e-4, "tf32": 1e-2, "fp16": 1e-2, "bf16": 5e-2, "int8": 1e-1, "fp8": 1e-1}


@dataclass
class Call:
    """One module call of the network, compared with its counterpart."""

    path: str
    kind: str
    inputs: list[Side]
    outputs: list[Side]
    counterpart: bool = True  # whether the reference has a module of this path (and this many calls of it)
    settled: bool = False  # departs from the source's fp32 output, but the module run in float64 says trtnet is right

    @property
    def name(self) -> str:
        return self.path or "(the whole model)"

    @property
    def error(self) -> float | None:
        errors = [s.error for s in self.outputs if s.error is not None]
        return max(errors) if errors else None

    def departs(self, tolerance: float) -> bool:
        return not self.settled and any(s.departs(tolerance) for s in self.outputs)

    def inputs_agree(self, tolerance: float) -> bool:
        return not any(s.departs(tolerance) for s in self.inputs)


@dataclass
class Layerwise:
    """The comparison of every module call, in the order the calls returned, and the verdict."""

    calls: list[Call]
    tolerance: float
    reference: str  # what the calls were compared with: "the PyTorch source", "fp32"
    blamed: Call | None = None
    why: str = ""
    later: list[Call] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.blamed is None

    def text(self, rows: int = 8) -> str:
        """The report as the command line prints it."""
        n = len(self.calls)
        missing = [c for c in self.calls if not c.counterpart or any(s.error is None for s in c.outputs)]
        lines = [
            f"layerwise: {n} module call{'s' if n != 1 else ''} compared with {self.reference} in execution order "
            f"(departs: rel error > {self.tolerance:g})"
        ]
        settled = [c for c in self.calls if c.settled]
        if settled:
            lines.append(
                f"the source's own fp32 rounding, by its module run in float64: {', '.join(c.name for c in settled[:rows])}"
                f" (trtnet is within tolerance of float64 there, or closer to it)"
            )
        if self.blamed is None:
            drift = [c for c in self.calls if c.departs(self.tolerance)]
            lines.append(
                "no module departs"
                if not drift
                else f"no module departs: {len(drift)} pass the tolerance by rounding carried through the network "
                f"(at most {max(c.error for c in drift):.3g}, never {GROWTH:g}x their inputs')"
            )
        else:
            b = self.blamed
            label = "first departure" if self.reference == "the PyTorch source" else "largest growth"
            lines.append(f"{label}: {b.name} ({b.kind}): {self.why}")
            lines.append("  inputs:  " + (", ".join(_side(s) for s in b.inputs) or "none compared"))
            lines.append("  outputs: " + ", ".join(_side(s) for s in b.outputs))
            if self.later:
                lines.append("then:")
                for c in self.later[:rows]:
                    lines.append(f"  {c.name} ({c.kind}): {', '.join(_side(s) for s in c.outputs)}")
                if len(self.later) > rows:
                    lines.append(f"  ... and {len(self.later) - rows} more")
        if missing:
            lines.append(f"not compared ({len(missing)}): no counterpart or a different layout in the reference:")
            for c in missing[:rows]:
                why = "no module of this path in the reference" if not c.counterpart else c.outputs[0].note
                lines.append(f"  {c.name} ({c.kind}): {why}")
            if len(missing) > rows:
                lines.append(f"  ... and {len(missing) - rows} more")
        return "\n".join(lines)


def _side(s: Side) -> str:
    shape = "x".join(map(str, s.shape)) or "scalar"
    if s.error is None:
        return f"[{shape}] not compared ({s.note})"
    return f"[{shape}] error {s.error:.3g}"


# -- the trtnet side -------------------------------------------------------------------------------------


def _run_calls(
    model: Module, inputs: Sequence[np.ndarray], policy: Policy, reuse_calibration: bool = False
) -> tuple[list[tuple], Links]:
    """Emit `model` for `inputs`, run it once in the interpreter capturing every module call's tensors:
    (path, class name, input arrays, output arrays) per call, in the order the calls returned; and which call
    produced each tensor (the innermost, which returns first) and which tensors each call took."""
    names = [i.name for i in model.inputs()]
    shapes = {n: tuple(np.shape(x)[1:]) for n, x in zip(names, inputs)}
    net = emit(
        model, int(np.shape(inputs[0])[0]), policy=policy, input_shapes=shapes, reuse_calibration=reuse_calibration
    )
    calls = net.owner.calls
    wanted = {t.name for c in calls for t in (*c.inputs, *c.outputs)}
    feeds = {n: np.asarray(x) for n, x in zip(names, inputs)}
    _, captured = run_network_capture(Interpreter(net.network), feeds, wanted)
    records = [
        (c.path, c.kind, [captured[t.name] for t in c.inputs], [captured[t.name] for t in c.outputs]) for c in calls
    ]
    producers: dict[str, int] = {}
    for i, c in enumerate(calls):
        for t in c.outputs:
            producers.setdefault(t.name, i)
    return records, (producers, [[t.name for t in c.inputs] for c in calls])


# -- the PyTorch side ------------------------------------------------------------------------------------


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if hasattr(value, "to_tuple"):  # a Hugging Face ModelOutput
        value = value.to_tuple()
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _source_calls(source: Any, paths: set[str], inputs: Sequence[np.ndarray]) -> dict[str, list[tuple[list, list]]]:
    """Run the PyTorch `source` once, hooking its modules of `paths`: path -> [(inputs, outputs)] per call."""
    import torch

    seen: dict[str, list[tuple[list, list]]] = defaultdict(list)
    pending: dict[str, list[list]] = defaultdict(list)
    hooks = []

    def arrays(value: Any) -> list[np.ndarray]:
        return [t.detach().float().numpy().copy() for t in _tensors(value)]

    for path, module in source.named_modules():
        if path in paths:
            # Inputs are copied before the module runs: an in-place module (ReLU(inplace=True)) overwrites them.
            def before(_module, args, kwargs, path=path):
                pending[path].append(arrays(args) + arrays(kwargs))

            def after(_module, args, kwargs, output, path=path):
                seen[path].append((pending[path].pop(), arrays(output)))

            hooks.append(module.register_forward_pre_hook(before, with_kwargs=True))
            hooks.append(module.register_forward_hook(after, with_kwargs=True))
    try:
        with torch.no_grad():
            source(*[torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
    finally:
        for h in hooks:
            h.remove()
    return seen


# -- the verdict -----------------------------------------------------------------------------------------


def _pair(path: str, kind: str, ins: list, outs: list, ref: tuple[list, list] | None) -> Call:
    if ref is None:
        return Call(path, kind, [Side(np.shape(x), None, "no counterpart") for x in ins],
                    [Side(np.shape(x), None, "no counterpart") for x in outs], counterpart=False)  # fmt: skip
    ref_ins, ref_outs = ref
    sides_in = [compare(g, w) for g, w in zip(ins, ref_ins)]
    sides_out = [compare(g, w) for g, w in zip(outs, ref_outs)]
    sides_out += [Side(np.shape(x), None, "the reference returns fewer tensors") for x in outs[len(ref_outs) :]]
    if sides_in and all(s.error is not None for s in sides_in):
        # Same inputs, another output size (a wrong stride or padding): that departs. With inputs of another
        # size, the DSL computes this module on other data (a class token alone, say): not comparable.
        for s in sides_out:
            if s.resized:
                s.error = float("inf")
    return Call(path, kind, sides_in, sides_out)


Links = tuple[dict[str, int], list[list[str]]]  # tensor name -> the call that produced it; per call, its inputs


# A module's output error this many times its inputs' is an error that arises in the module; below it, the
# rounding the two sides accumulate differently (float32 PyTorch, float64-accumulated interpreter) may carry an
# error past the tolerance deep in a network without any module being wrong. Faults jump by orders of magnitude.
GROWTH = 10.0


def _verdict(report: Layerwise, links: Links) -> Layerwise:
    """Walk the calls in order, keeping the largest error seen so far (the level rounding has reached). The
    first departure that jumps GROWTH times over what reaches it is blamed: on the call whose output jumps
    over its inputs' and its submodules' errors; or, when a call's input already jumps over the level, on the
    code before it: that input's producer if its output could not be compared, else the forward of the call
    that encloses it (ops written between module calls)."""
    tol = report.tolerance
    producers, consumed = links
    level = 0.0
    for i, call in enumerate(report.calls):
        ins = [side.error for side in call.inputs if side.error is not None]
        worst_in = max(ins, default=0.0)
        if worst_in > tol and worst_in > GROWTH * level:
            k = next(k for k, side in enumerate(call.inputs) if side.error == worst_in)
            source = producers.get(consumed[i][k]) if k < len(consumed[i]) else None
            if source is not None and report.calls[source].error is None:
                report.blamed = report.calls[source]
                report.why = f"its output is not compared (no counterpart), and {call.name} receives it departing"
            else:
                report.blamed = _enclosing(report.calls, i) or call
                report.why = f"ops of its own forward (between module calls) feed {call.name} an input that departs"
            report.later = [c for c in report.calls[i:] if c.departs(tol)]
            return report
        inner = [c.error for c in _inside(report.calls, i) if c.error is not None]
        incoming = max(ins + inner, default=0.0)
        if call.departs(tol) and call.error is not None and call.error > GROWTH * incoming:
            report.blamed = call
            report.why = (
                "its output departs while its inputs agree"
                if call.inputs_agree(tol)
                else f"its output's error is {call.error / incoming:.3g} times what reaches it ({incoming:.3g})"
            )
            report.later = [c for c in report.calls[i + 1 :] if c.departs(tol)]
            return report
        level = max([level, *ins, call.error or 0.0])
    return report


def _inside(calls: list[Call], i: int) -> list[Call]:
    """The calls made inside call `i`'s forward: the run of calls just before it whose paths are below its path."""
    prefix = calls[i].path + "." if calls[i].path else ""
    j = i
    while j > 0 and calls[j - 1].path.startswith(prefix) and calls[j - 1].path != calls[i].path:
        j -= 1
    return calls[j:i]


def _enclosing(calls: list[Call], i: int) -> Call | None:
    """The call whose forward made call `i`: the first later call whose path is a proper prefix of its path."""
    path = calls[i].path
    for c in calls[i + 1 :]:
        if c.path == "" or path.startswith(c.path + "."):
            return c
    return None


def layerwise(model: Module, source: Any, inputs: Sequence[np.ndarray], *, tolerance: float | None = None) -> Layerwise:
    """Compare every module call of `model` (fp32, in the interpreter) with the PyTorch `source`'s module of
    the same path, on `inputs`; name the first module whose output departs."""
    if not callable(getattr(source, "named_modules", None)):
        raise ParityError(f"layerwise's source is the PyTorch model (a torch.nn.Module), not {type(source).__name__}")
    if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float))):
        raise ParityError(f"tolerance must be a number, not {tolerance!r:.60}")
    inputs = checked_inputs(model, inputs, ParityError)  # cast for both sides: float64 reached the source as is
    # BatchNorms stay apart from their convolutions here, so that each module has an output of its own to
    # compare (the folded pair is checked as a whole by the output comparison of `trtnet verify`).
    policy = Policy(precision="fp32", fold_bn=False)
    ours, links = _run_calls(model, inputs, policy)
    theirs = _source_calls(source, {p for p, *_ in ours}, inputs)
    count: dict[str, int] = defaultdict(int)
    calls, pairs = [], []
    for path, kind, ins, outs in ours:
        k = count[path]
        count[path] += 1
        refs = theirs.get(path, [])
        pairs.append((path, ins, outs, refs[k] if k < len(refs) else None))
        calls.append(_pair(path, kind, *pairs[-1][1:]))
    report = _verdict(
        Layerwise(calls, TOLERANCE["fp32"] if tolerance is None else tolerance, "the PyTorch source"), links
    )
    modules = dict(source.named_modules())
    while report.blamed is not None:  # the source's own fp32 rounding is not trtnet's departure: float64 says whose
        path, ins, outs, ref = pairs[report.calls.index(report.blamed)]
        if ref is None or not _float64_settles(modules.get(path), (ins, outs), ref, report.tolerance):
            break
        report.blamed.settled = True
        report = _verdict(Layerwise(report.calls, report.tolerance, report.reference), links)
    return report


def _float64_settles(module: Any, ours: tuple[list, list], theirs: tuple[list, list], tolerance: float) -> bool:
    """Whether the source's `module`, run in float64 on each side's own inputs, finds trtnet's outputs within
    `tolerance` of it or closer to it than the source's fp32 outputs are (ResNet-152's centred `fc`: PyTorch's fp32
    sums 1.5e-4 from float64, and `verify --layerwise` blamed `fc`); False where it cannot be run so."""
    import copy

    import torch

    if module is None:
        return False
    wide = copy.deepcopy(module).double()

    def error(side: tuple[list, list]) -> list[float | None]:
        ins, outs = side
        args = [torch.from_numpy(np.asarray(x, np.float64) if np.asarray(x).dtype.kind == "f" else x) for x in ins]
        with torch.no_grad():
            exact = [t.numpy() for t in _tensors(wide(*args))]
        if len(exact) != len(outs):
            raise ValueError("another count of outputs")
        return [compare(got, want).error for got, want in zip(outs, exact)]

    try:
        mine, source = error(ours), error(theirs)
    except Exception:  # noqa: BLE001  (keyword inputs, buffers of other types: not arbitrated, the blame stands)
        return False
    return all(m is not None and s is not None and (m <= tolerance or m <= s) for m, s in zip(mine, source))


def layerwise_precision(
    model: Module,
    inputs: Sequence[np.ndarray],
    precision: str,
    *,
    calibration: Any = None,
    reuse_calibration: bool = False,
) -> Layerwise:
    """The same comparison of `model` emitted in `precision` against itself in fp32; the blamed module is
    where the error grows most from its inputs to its output (where keeping fp16 helps most). A calibration is
    checked against the inputs and weights it was measured on, as `build` checks it (`reuse_calibration`)."""
    inputs = checked_inputs(model, inputs, ParityError)  # the count, dtypes (float64 cast as the interpreter's)
    reduced = Policy(precision=precision, calibration=calibration)
    ours, _ = _run_calls(model, inputs, reduced, reuse_calibration)
    ref, _ = _run_calls(model, inputs, Policy(precision="fp32"))
    calls = [
        _pair(p, kind, ins, outs, (r_ins, r_outs)) for (p, kind, ins, outs), (_, _, r_ins, r_outs) in zip(ours, ref)
    ]
    report = Layerwise(calls, TOLERANCE.get(precision, 1e-2), f"the same network in fp32 ({precision} here)")
    growth = [
        (c.error - max([s.error for s in c.inputs if s.error is not None], default=0.0), i)
        for i, c in enumerate(calls)
        if c.error is not None and c.path
    ]
    if growth:
        best, i = max(growth)
        if best > 0:
            report.blamed = calls[i]
            report.why = f"the error grows most here: by {best:.3g} from its inputs to its output"
            report.later = sorted((c for c in calls if c.error is not None and c.path), key=lambda c: -c.error)[:8]
    return report
