"""`trtnet check MODEL.onnx`: does the TensorRT network parsed from an ONNX file mean what the ONNX model means?

TensorRT's ONNX parser turns the file into a network; the numpy interpreter runs that very network on the CPU
(random inputs, or an .npz), and onnxruntime runs the ONNX file itself (or outputs saved elsewhere are loaded).
Agreement proves the parsed network's meaning, layer types, attributes and weights, without a GPU; it says nothing
of the kernels a GPU would pick. Outputs agree by Polygraphy's rule, elementwise |a - b| <= atol + rtol * |b|, with
tolerances from the network's compute type by default (trtnet/onnx/compare.py). Where they do not, the model is
evaluated in float64 by an independent implementation (`onnx.reference`) and the side farther from it is named: a
network does not fail because onnxruntime is the less accurate party. With `layerwise`, every intermediate tensor
the two share by name is compared, and the first layer whose output departs beyond tolerance is reported.

    report = check_onnx("model.onnx", shapes={"x": (1, 3, 224, 224)}, layerwise=True)
    print("\n".join(report.lines())); sys.exit(0 if report.ok else 1)
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from trtnet.backend import capture_errors, get_trt, logger, signals_deferred
from trtnet.errors import CheckError, NetworkError
from trtnet.fileio import refuse_clobbering, writable_target
from trtnet.fileread import file_kind
from trtnet.onnx.compare import (
    DEFAULT_TOLERANCES,
    Agreement,
    Tolerance,
    agreement,
    check_tolerance_names,
    compute_type,
    float64_reference,
    run_onnxruntime,
    tolerance_for,
)
from trtnet.onnx.feeds import (
    external_data_files,
    file_inputs,
    load_inputs,
    load_outputs,
    onnx_named,
    random_inputs,
    renamed_inputs,
    save_npz_files,
)
from trtnet.onnx.layerwise import Departure, first_departure, producers, random_sources, with_intermediate_outputs
from trtnet.onnx.refusal import parser_refusal, refuse_special_external_data
from trtnet.onnx.shapes import ShapesArg, check_names, resolve_profile

__all__ = ["CheckReport", "OutputResult", "ParsedOnnx", "check_onnx", "load_inputs", "random_inputs"]

# Relative error (max |a - b| / max |b|) accepted per tensor type in the layerwise walk over intermediates.
TOLERANCES: dict[str, float] = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}


@dataclass(frozen=True)
class Arbitration:
    """Each side's distance from the float64 evaluation of the model, for an output where the two disagree."""

    interpreter: Agreement
    reference: Agreement

    @property
    def departs(self) -> str:
        """Which side departs: "interpreter" (the check fails) or "reference"."""
        # A reference within tolerance is right where the interpreter is not, whatever its largest error (float32's
        # rounding of a 1e8 element); where neither is, the closer, a tie (a NaN on each side) the interpreter's.
        if self.interpreter.ok or (not self.reference.ok and self.interpreter.max_abs < self.reference.max_abs):
            return "reference"
        return "interpreter"


@dataclass(frozen=True)
class OutputResult:
    """One network output: its interpreter value's shape and, where compared, how it agrees and who departs."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    agreement: Agreement | None = None
    atol: float = 0.0
    rtol: float = 0.0
    arbitration: Arbitration | None = None
    arbiter_note: str = ""  # why no float64 arbiter ran, where it could not
    random_from: str = ""  # the random layer the output depends on: not compared
    # Whether a disagreement the arbiter pins on the reference passes: yes for onnxruntime, a stand-in for the
    # model's meaning; no for outputs loaded from elsewhere (a GPU engine's), which are what is being checked too.
    excusable: bool = True

    @property
    def error(self) -> float | None:
        return None if self.agreement is None else self.agreement.max_abs

    @property
    def ok(self) -> bool:
        if self.agreement is None or self.agreement.ok:
            return True
        return self.excusable and self.arbitration is not None and self.arbitration.departs == "reference"


@dataclass
class CheckReport:
    """What `check_onnx` found; `lines()` is the printed report."""

    path: Path
    layers: int
    compute: str = "float32"
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    outputs: list[OutputResult] = field(default_factory=list)
    compared: bool = False
    against: str = "onnxruntime"
    note: str = ""
    shared: int = 0  # intermediate tensors compared layer by layer
    departure: Departure | None = None

    @property
    def ok(self) -> bool:
        """Every output within tolerance, or closer to float64 than the reference is. A layerwise departure alone
        does not fail the check: a steep function (a sigmoid on large inputs) can amplify rounding differences
        that its consumers shrink again; it is reported to show where the two sides part."""
        return all(o.ok for o in self.outputs)

    def lines(self) -> list[str]:
        shapes = ", ".join(f"{k}[{'x'.join(map(str, v))}]" for k, v in self.inputs.items())
        out = [
            f"{self.path}: {self.layers} TensorRT layers, all supported by the interpreter",
            f"  compute type {self.compute}; inputs {shapes or 'none'}",
        ]
        if self.note:
            out.append(self.note)
        for o in self.outputs:
            head = f"  output {o.name!r} {o.dtype}{list(o.shape)}"
            a = o.agreement
            if a is None:
                why = f": not compared, it depends on the random layer {o.random_from!r}" if o.random_from else ""
                out.append(head + why)
                continue
            verdict = "ok" if o.ok else "FAILS"
            if a.reference_shape is not None:
                out.append(f"{head}: the shape differs from {self.against}'s {list(a.reference_shape)} {verdict}")
                continue
            out.append(
                f"{head}: max abs {a.max_abs:.2e}, max rel {a.max_rel:.2e} against {self.against}; {a.beyond} of "
                f"{a.size} beyond atol {o.atol:.0e} + rtol {o.rtol:.0e}*|ref| {verdict}"
            )
            if o.arbitration is not None:
                i, r = o.arbitration.interpreter, o.arbitration.reference
                side = "the interpreter" if o.arbitration.departs == "interpreter" else self.against
                out.append(
                    f"    float64 arbiter (onnx.reference): interpreter max abs {i.max_abs:.2e} ({i.beyond} beyond), "
                    f"{self.against} max abs {r.max_abs:.2e} ({r.beyond} beyond): {side} departs"
                )
            elif o.arbiter_note:
                out.append(f"    no float64 arbiter: {o.arbiter_note}")
        if self.shared:
            if self.departure is None:
                out.append(f"  layerwise: {self.shared} shared intermediate tensors, all within tolerance")
            else:
                d = self.departure
                shapes = ", ".join(str(list(s)) for s in d.input_shapes)
                node = f" from ONNX node {d.onnx_node}" if d.onnx_node else ""
                out.append(
                    f"  layerwise: first departure at layer {d.layer!r} ({d.layer_type}){node}, tensor {d.tensor!r}: "
                    f"error {d.error:.2e} > {d.tolerance:.0e}; its inputs' shapes {shapes}"
                )
        skipped = sum(bool(o.random_from) for o in self.outputs)
        out.append(
            f"within tolerance{f' ({skipped} of {len(self.outputs)} outputs not compared)' if skipped else ''}"
            if self.ok and self.compared
            else "NOT within tolerance"
            if not self.ok
            else "ran (not compared)"
        )
        return out


class ParsedOnnx:
    """A network parsed by TensorRT's ONNX parser, with the builder and parser that own its memory.

    Not `trtnet.onnx.parse.parse_onnx`: that one makes a network to build (a profile, a precision); `check` runs the
    file's own network at one shape per input.
    """

    def __init__(self, path: Path) -> None:
        if not path.is_file():  # a FIFO would block the parser's read: refused here, with what it is
            if not path.exists():
                raise CheckError(f"{path}: no such file")
            raise CheckError(f"{path}: the ONNX file is {file_kind(path.stat().st_mode)}, not a regular file")
        if path.stat().st_size == 0:
            raise CheckError(f"{path}: the ONNX file is empty")
        refuse_special_external_data(path, CheckError)
        trt = get_trt()
        self.builder = trt.Builder(logger())
        self.network = self.builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        self.parser = trt.OnnxParser(self.network, logger())
        # TensorRT's own log of a refusal is in the error raised, not printed too; Ctrl-C is delivered after it
        with signals_deferred(), capture_errors():
            if not self.parser.parse_from_file(str(path)):
                raise CheckError(f"{path}: TensorRT's ONNX parser refused it: {parser_refusal(self.parser, path)}")
        if self.network.num_outputs == 0:  # protobuf reads most bytes as some message, of an empty graph
            raise CheckError(
                f"{path}: TensorRT's ONNX parser found no graph outputs in it: not an ONNX model, or one that "
                "computes nothing"
            )


def _fix_shapes(path: Path, network: Any, shapes: ShapesArg | None, given: dict[str, np.ndarray] | None) -> None:
    """Give every input its one shape: from `shapes`, else from the given arrays, else the file's static shape."""
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    try:
        check_names(str(path), shapes, [t.name for t in tensors])
        for t in tensors:
            value = (shapes or {}).get(t.name)
            if value is None and given is not None and any(d < 0 for d in t.shape):
                value = given[t.name].shape  # a static input keeps its shape (load_inputs checked the array's)
                if any(d == 0 and want < 0 for d, want in zip(value, t.shape)):  # said as the inputs', not --shapes'
                    raise CheckError(
                        f"{path}: input {t.name!r}: the inputs hold {'x'.join(map(str, value))}; a dim the file "
                        "leaves open must be at least 1 (TensorRT's profiles take no empty dims)"
                    )
            lo, opt, hi = resolve_profile(str(path), t, value)
            if lo != hi:
                raise CheckError(
                    f"{path}: input {t.name!r}: check runs one shape; give a fixed shape with --shapes, not a range"
                )
            if given is not None and given[t.name].shape != opt:
                raise CheckError(
                    f"{path}: input {t.name!r}: --shapes says {'x'.join(map(str, opt))}, the inputs hold "
                    f"{'x'.join(map(str, given[t.name].shape))}"
                )
            t.shape = opt
    except NetworkError as e:
        raise CheckError(str(e)) from None


def check_onnx(
    path: str | Path,
    inputs: str | Path | Mapping[str, np.ndarray] | None = None,
    *,
    shapes: ShapesArg | None = None,
    atol: Tolerance = None,
    rtol: Tolerance = None,
    layerwise: bool = False,
    seed: int = 0,
    parsed: ParsedOnnx | None = None,
    save_inputs: str | Path | None = None,
    save_outputs: str | Path | None = None,
    load_outputs_from: str | Path | None = None,
    arbitrate: bool = True,
) -> CheckReport:
    """Parse, refuse what the interpreter cannot run, run, compare (see the module docstring).

    `shapes` sizes dynamic inputs (one shape each); `atol`/`rtol` are a number, or a mapping by output name ("" for
    the rest); `load_outputs_from` compares with outputs saved elsewhere instead of onnxruntime. `parsed` is the
    network to check when the caller has parsed (or edited) it already. Raises `CheckError` for a bad model, shape,
    tolerance or inputs file, and `InterpreterError` for unsupported layers, before anything runs.
    """
    from trtnet.errors import InterpreterError
    from trtnet.interpreter import run_network, unsupported

    path = Path(path)
    from_file = inputs is not None and not isinstance(inputs, Mapping)
    saves = {"the inputs": save_inputs, "the outputs": save_outputs}
    reads = {"the model": path, "the inputs file": inputs if from_file else None, "the outputs file": load_outputs_from}
    refuse_clobbering(saves, {**reads, **external_data_files(path, saves)}, CheckError)
    for what, target in saves.items():
        if target is not None:
            writable_target(Path(target), what, CheckError)  # before the run, not after it
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:  # numpy's integers too
        raise CheckError(f"seed {seed!r}: expected an integer >= 0")
    if layerwise and load_outputs_from is not None:
        raise CheckError(
            f"{path}: layerwise compares intermediates with onnxruntime's; outputs loaded from {load_outputs_from} "
            "have none"
        )
    parsed = parsed or ParsedOnnx(path)
    network = parsed.network
    named = file_inputs(path, network)
    given = None if inputs is None else load_inputs(Path(inputs) if from_file else inputs, network, named)
    if isinstance(shapes, Mapping):  # the file's name of an input the parser renamed (x for __x) is taken too
        ours = {theirs: name for name, theirs in renamed_inputs(network, named).items() if name not in shapes}
        shapes = {ours.get(k, k): v for k, v in shapes.items()}
    _fix_shapes(path, network, shapes, given)
    reasons = unsupported(network)
    if reasons:
        raise InterpreterError(
            f"{path}: the interpreter cannot run {len(reasons)} layer form(s):\n  " + "\n  ".join(reasons)
        )
    names = [network.get_output(i).name for i in range(network.num_outputs)]
    check_tolerance_names(atol, names, "--atol")
    check_tolerance_names(rtol, names, "--rtol")
    random = random_sources(network)
    if names and all(n in random for n in names):
        raise CheckError(
            f"{path}: every output depends on random values (layer(s) {sorted({random[n] for n in names})}), which "
            "cannot match another run's: there is nothing to compare"
        )
    feeds = given if given is not None else random_inputs(network, seed)
    outside = onnx_named(network, feeds, named)  # for onnxruntime and the arbiter, which read the file's own names
    compute = compute_type(network)
    report = CheckReport(path, network.num_layers, compute, {k: v.shape for k, v in feeds.items()})
    layer_outputs = producers(network) if layerwise else {}
    kept: dict[str, np.ndarray] = {}
    seen: dict[str, tuple[int, ...]] = {k: v.shape for k, v in feeds.items()}

    def trace(layer_name: str, _type: str, outs: list[np.ndarray]) -> None:
        for name, value in zip(layer_outputs.get(layer_name, ()), outs):
            seen[name] = value.shape
            kept[name] = value

    try:
        results = run_network(network, feeds, trace=trace if layerwise else None)
    except (InterpreterError, IndexError) as e:
        ints = [k for k, v in feeds.items() if not np.issubdtype(v.dtype, np.floating)]
        if inputs is None and ints:  # random 0/1 integers: ids or indices the model needs in another range
            raise CheckError(
                f"{path}: the network failed on random integer input(s) {ints} ({str(e).splitlines()[0]}): give "
                "values in the range the model expects with --inputs FILE.npz"
            ) from e
        raise
    # Saved once the check has run to the end, together: an error or an interrupt leaves neither file.
    saves = [
        (p, arrays, what)
        for p, arrays, what in ((save_inputs, outside, "the inputs"), (save_outputs, results, "the outputs"))
        if p is not None
    ]
    if load_outputs_from is not None:
        reference = load_outputs(Path(load_outputs_from), results)
        report.against = Path(load_outputs_from).name
    else:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            report.note = (
                "onnxruntime is not installed: the network was only run, not compared (pip install onnxruntime)"
            )
            report.outputs = [OutputResult(k, v.shape, _dtype_name(v)) for k, v in results.items()]
            save_npz_files(saves)
            return report
        shared: list[str] = []
        wanted = list(results)
        if layerwise:
            shared, model_bytes, writers = with_intermediate_outputs(path, set(kept) - set(results) - set(random))
            reference = run_onnxruntime(path, model_bytes, outside, wanted + shared)
            report.shared = len(shared)
            compared = set(shared) | set(wanted) - set(random)
            report.departure = first_departure(
                network, layer_outputs, kept, reference, seen, compared, results, TOLERANCES
            )
            if report.departure is not None:
                report.departure = replace(report.departure, onnx_node=writers.get(report.departure.tensor, ""))
        else:
            reference = run_onnxruntime(path, str(path), outside, wanted)
    report.compared = True
    default_atol, default_rtol = DEFAULT_TOLERANCES[compute]
    for name, value in results.items():
        if name in random:
            report.outputs.append(OutputResult(name, value.shape, _dtype_name(value), random_from=random[name]))
            continue
        a_tol, r_tol = tolerance_for(name, atol, default_atol), tolerance_for(name, rtol, default_rtol)
        agreed = agreement(value, reference[name], a_tol, r_tol)
        excusable = load_outputs_from is None
        report.outputs.append(
            OutputResult(name, value.shape, _dtype_name(value), agreed, a_tol, r_tol, excusable=excusable)
        )
    disputed = [i for i, o in enumerate(report.outputs) if not o.ok]
    if disputed and arbitrate:
        _arbitrate(path, report, disputed, outside, results, reference)
    save_npz_files(saves)
    return report


def _arbitrate(path, report, disputed, feeds, results, reference) -> None:
    """Each disputed output's float64 evaluation, and each side's distance from it (same tolerances)."""
    from dataclasses import replace

    names = [report.outputs[i].name for i in disputed]
    try:
        exact = float64_reference(path, feeds, names)
    except CheckError as e:
        for i in disputed:
            report.outputs[i] = replace(report.outputs[i], arbiter_note=str(e))
        return
    for i in disputed:
        o = report.outputs[i]
        judged = Arbitration(
            agreement(results[o.name], exact[o.name], o.atol, o.rtol),
            agreement(reference[o.name], exact[o.name], o.atol, o.rtol),
        )
        report.outputs[i] = replace(o, arbitration=judged)


def _dtype_name(value: np.ndarray) -> str:
    return "bfloat16" if value.dtype.name == "bfloat16" else value.dtype.name
