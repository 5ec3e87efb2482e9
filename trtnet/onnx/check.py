"""`trtnet check MODEL.onnx`: does the TensorRT network parsed from an ONNX file mean what the ONNX model means?

TensorRT's ONNX parser turns the file into a network; the numpy interpreter runs that very network on the CPU
(random inputs, or an .npz), and onnxruntime (optional) runs the ONNX file itself. Agreement proves the
parsed network's meaning, layer types, attributes and weights, without a GPU; it says nothing of the kernels
a GPU would pick, nor of their reduced-precision numerics. With `layerwise`, every intermediate tensor the
two share by name is compared, and the first layer whose output departs beyond tolerance is reported.

    report = check_onnx("model.onnx", layerwise=True)
    print("\n".join(report.lines())); sys.exit(0 if report.ok else 1)
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trtnet.backend import capture_errors, get_trt, logger
from trtnet.errors import CheckError

# Relative error (max |interpreter - onnxruntime| / max |onnxruntime|) accepted per output type: float32 is
# computed by both sides with float32 or better accumulation; half and bfloat16 round every layer's output.
TOLERANCES: dict[str, float] = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}


@dataclass(frozen=True)
class OutputResult:
    """One network output: its interpreter value's shape and, where onnxruntime ran, the error and verdict."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    error: float | None = None
    tolerance: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None or self.tolerance is None or self.error <= self.tolerance


@dataclass(frozen=True)
class Departure:
    """The first layer (in execution order) whose output departs from onnxruntime's beyond tolerance."""

    layer: str
    layer_type: str
    tensor: str
    error: float
    tolerance: float
    input_shapes: tuple[tuple[int, ...], ...]


@dataclass
class CheckReport:
    """What `check_onnx` found; `lines()` is the printed report."""

    path: Path
    layers: int
    outputs: list[OutputResult] = field(default_factory=list)
    compared: bool = False
    note: str = ""
    shared: int = 0  # intermediate tensors compared layer by layer
    departure: Departure | None = None

    @property
    def ok(self) -> bool:
        """Every output within tolerance. A layerwise departure alone does not fail the check: an intermediate
        tensor can depart where a steep function (a sigmoid on large inputs) amplifies rounding differences
        that its consumers then shrink again; it is reported to show where the two sides part."""
        return all(o.ok for o in self.outputs)

    def lines(self) -> list[str]:
        out = [f"{self.path}: {self.layers} TensorRT layers, all supported by the interpreter"]
        if self.note:
            out.append(self.note)
        for o in self.outputs:
            head = f"  output {o.name!r} {o.dtype}{list(o.shape)}"
            if o.error is None:
                out.append(head)
            else:
                verdict = "ok" if o.ok else "FAILS"
                out.append(f"{head}: error {o.error:.2e} (tolerance {o.tolerance:.0e}) {verdict}")
        if self.shared:
            if self.departure is None:
                out.append(f"  layerwise: {self.shared} shared intermediate tensors, all within tolerance")
            else:
                d = self.departure
                shapes = ", ".join(str(list(s)) for s in d.input_shapes)
                out.append(
                    f"  layerwise: first departure at layer {d.layer!r} ({d.layer_type}), tensor {d.tensor!r}: "
                    f"error {d.error:.2e} > {d.tolerance:.0e}; its inputs' shapes {shapes}"
                )
        out.append(
            "within tolerance"
            if self.ok and self.compared
            else "NOT within tolerance"
            if not self.ok
            else "ran (not compared)"
        )
        return out


class ParsedOnnx:
    """A network parsed by TensorRT's ONNX parser, with the builder and parser that own its memory.

    Not `trtnet.onnx.parse_onnx`: that one pins a dynamic batch and refuses other dynamic dims, as an engine
    build needs; `check` runs any file the parser takes, its dynamic dims sized by the inputs given.
    """

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise CheckError(f"{path}: no such file")
        trt = get_trt()
        self.builder = trt.Builder(logger())
        self.network = self.builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        self.parser = trt.OnnxParser(self.network, logger())
        with capture_errors():  # TensorRT's own log of a refusal is in the error raised, not printed too
            if not self.parser.parse_from_file(str(path)):
                errors = "; ".join(str(self.parser.get_error(i).desc()) for i in range(self.parser.num_errors))
                raise CheckError(f"{path}: TensorRT's ONNX parser refused it: {errors or 'not an ONNX model'}")


def check_onnx(
    path: str | Path,
    inputs: str | Path | None = None,
    *,
    layerwise: bool = False,
    seed: int = 0,
    parsed: ParsedOnnx | None = None,
) -> CheckReport:
    """Parse, refuse what the interpreter cannot run, run, compare with onnxruntime (see the module docstring).

    `parsed` is the network to check when the caller has parsed (or edited) it already. Raises `CheckError`
    for a bad model or inputs file and `InterpreterError` for unsupported layers, before anything runs.
    """
    from trtnet.errors import InterpreterError
    from trtnet.interpreter import run_network, unsupported

    path = Path(path)
    parsed = parsed or ParsedOnnx(path)
    network = parsed.network
    reasons = unsupported(network)
    if reasons:
        raise InterpreterError(
            f"{path}: the interpreter cannot run {len(reasons)} layer form(s):\n  " + "\n  ".join(reasons)
        )
    feeds = load_inputs(Path(inputs), network) if inputs is not None else random_inputs(network, seed)
    report = CheckReport(path=path, layers=network.num_layers)
    producers = _producers(network) if layerwise else {}
    kept: dict[str, np.ndarray] = {}
    shapes: dict[str, tuple[int, ...]] = {k: v.shape for k, v in feeds.items()}

    def trace(layer_name: str, _type: str, outs: list[np.ndarray]) -> None:
        for name, value in zip(producers.get(layer_name, ()), outs):
            shapes[name] = value.shape
            kept[name] = value

    results = run_network(network, feeds, trace=trace if layerwise else None)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        report.note = "onnxruntime is not installed: the network was only run, not compared (pip install onnxruntime)"
        report.outputs = [OutputResult(k, v.shape, _dtype_name(v)) for k, v in results.items()]
        return report
    wanted = list(results)
    shared: list[str] = []
    if layerwise:
        shared, model_bytes = _with_intermediate_outputs(path, set(kept) - set(results))
        reference = _run_onnxruntime(path, model_bytes, feeds, wanted + shared)
    else:
        reference = _run_onnxruntime(path, str(path), feeds, wanted)
    report.compared = True
    for name, value in results.items():
        want = reference[name]
        tol = TOLERANCES.get(_dtype_name(value))
        report.outputs.append(OutputResult(name, value.shape, _dtype_name(value), _error(value, want), tol))
    if layerwise:
        report.shared = len(shared)
        report.departure = _first_departure(
            network, producers, kept, reference, shapes, set(shared) | set(wanted), results
        )
    return report


def _dtype_name(value: np.ndarray) -> str:
    return "bfloat16" if value.dtype.name == "bfloat16" else value.dtype.name


def _error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want| (exact comparison for integers and booleans: 0 or 1)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return float("inf")
    if not np.issubdtype(want.dtype, np.floating):
        return 0.0 if np.array_equal(got, want) else 1.0
    g, w = got.astype(np.float64), want.astype(np.float64)
    scale = np.abs(w).max() if w.size else 0.0
    if not np.all(np.isfinite(w) == np.isfinite(g)):
        return float("inf")
    finite = np.isfinite(w)
    diff = np.abs(g[finite] - w[finite]).max() if finite.any() else 0.0
    return float(diff / (scale if np.isfinite(scale) and scale > 0 else 1.0))


def random_inputs(network: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal floats, 0/1 integers (valid token ids and masks alike), random booleans; a dynamic
    dim (-1) is taken as 1. Give real inputs with an .npz where the model needs them."""
    from trtnet.interpreter._common import np_dtype

    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(d if d >= 0 else 1 for d in (int(v) for v in tensor.shape))
        dtype = np_dtype(tensor.dtype)
        if dtype == np.bool_:
            feeds[tensor.name] = rng.integers(0, 2, shape).astype(bool)
        elif np.issubdtype(dtype, np.integer):
            feeds[tensor.name] = rng.integers(0, 2, shape).astype(dtype)
        else:
            feeds[tensor.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def load_inputs(path: Path, network: Any) -> dict[str, np.ndarray]:
    """The arrays of an .npz named as the network's inputs, checked against their declared shapes and types."""
    from trtnet.interpreter._common import np_dtype

    if not path.is_file():
        raise CheckError(f"{path}: no such inputs file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise CheckError(f"{path}: not a readable .npz of arrays: {e}") from None
    declared = {network.get_input(i).name: network.get_input(i) for i in range(network.num_inputs)}
    missing = [n for n in declared if n not in arrays]
    extra = [n for n in arrays if n not in declared]
    if missing or extra:
        raise CheckError(
            f"{path}: the network takes inputs {list(declared)}; the file lacks {missing} and has unknown {extra}"
        )
    for name, tensor in declared.items():
        want = tuple(int(d) for d in tensor.shape)
        got = arrays[name].shape
        if len(got) != len(want) or any(w >= 0 and w != g for w, g in zip(want, got)):
            raise CheckError(f"{path}: input {name!r} has shape {got}, the network declares {want}")
        dtype = np_dtype(tensor.dtype)
        if arrays[name].dtype != dtype:
            raise CheckError(f"{path}: input {name!r} has dtype {arrays[name].dtype}, the network declares {dtype}")
    return arrays


def _producers(network: Any) -> dict[str, list[str]]:
    """Layer name -> its output tensor names."""
    out: dict[str, list[str]] = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        out[layer.name] = [layer.get_output(o).name for o in range(layer.num_outputs)]
    return out


def _with_intermediate_outputs(path: Path, names: set[str]) -> tuple[list[str], bytes]:
    """The ONNX model with every intermediate tensor in `names` whose type is known made a graph output."""
    try:
        import onnx
    except ImportError:
        raise CheckError(
            "--layerwise needs the onnx package (pip install onnx) to expose intermediate tensors"
        ) from None
    model = onnx.load(str(path))
    inferred = onnx.shape_inference.infer_shapes(model)
    typed = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    existing = {o.name for o in model.graph.output}
    produced = [o for node in model.graph.node for o in node.output]
    shared = [n for n in produced if n in names and n in typed and n not in existing]
    model.graph.output.extend(typed[n] for n in shared)
    return shared, model.SerializeToString()


def _run_onnxruntime(
    path: Path, model: str | bytes, feeds: Mapping[str, np.ndarray], names: list[str]
) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        taken = {i.name for i in session.get_inputs()}
        values = session.run(names, {k: v for k, v in feeds.items() if k in taken})
    except Exception as e:  # noqa: BLE001  onnxruntime raises its own types; the run has nothing to compare
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckError(f"{path}: onnxruntime cannot run it, so there is nothing to compare with: {first}") from e
    return dict(zip(names, values))


def _first_departure(
    network: Any,
    producers: dict[str, list[str]],
    kept: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    shapes: dict[str, tuple[int, ...]],
    compared: set[str],
    results: dict[str, np.ndarray],
) -> Departure | None:
    from trtnet.interpreter.interpreter import layer_type_name

    layers = {network.get_layer(i).name: network.get_layer(i) for i in range(network.num_layers)}
    for layer_name, outputs in producers.items():
        if layer_name not in layers:
            continue
        for name in outputs:
            if name not in compared or name not in reference:
                continue
            value = kept.get(name, results.get(name))
            if value is None:
                continue
            tol = TOLERANCES.get(_dtype_name(value), 0.0)
            err = _error(value, reference[name])
            if err > tol:
                layer = layers[layer_name]
                inputs = [layer.get_input(i) for i in range(layer.num_inputs)]
                in_shapes = tuple(shapes.get(t.name, tuple(int(d) for d in t.shape)) for t in inputs if t is not None)
                return Departure(layer_name, layer_type_name(layer), name, err, tol, in_shapes)
    return None
