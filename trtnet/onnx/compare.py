"""How `trtnet check` compares: Polygraphy's tolerances, and the float64 arbiter for a disagreement.

Two arrays agree where, elementwise, |a - b| <= atol + rtol * |b| (b the reference: onnxruntime, or outputs loaded
from a file), as Polygraphy's `--atol/--rtol` mean. The default tolerances follow the network's compute type, not
its outputs' type: a `.half()` model with float32 I/O computes in fp16 and is judged by fp16's tolerances.

Where the interpreter and the reference disagree, neither is presumed right: the ONNX model is evaluated again in
float64 by `onnx.reference` (the ONNX project's own numpy implementation of the operators: independent of both
TensorRT's parser with trtnet's interpreter and of onnxruntime's kernels), every float tensor widened to float64,
and each side's error against it is reported. onnxruntime's CPU provider cannot be the arbiter: it has no float64
convolution, pooling or resize kernels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtnet.backend import get_trt
from trtnet.errors import CheckError

# (atol, rtol) per compute type. float32: both sides accumulate in float32 or better, in different orders;
# float16/bfloat16: every layer's output is rounded to 11/8 significant bits.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1e-4, 1e-4),
    "float16": (1e-2, 1e-2),
    "bfloat16": (5e-2, 5e-2),
}

Tolerance = float | Mapping[str, float] | None


def compute_type(network: Any) -> str:
    """The network's float compute type: the narrowest float type any layer computes in ("float32" if none)."""
    trt = get_trt()
    found = set()
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            found.add(layer.get_output(j).dtype)
    if trt.float16 in found:
        return "float16"
    return "bfloat16" if trt.bfloat16 in found else "float32"


def tolerance_for(name: str, given: Tolerance, default: float) -> float:
    """The tolerance of output `name`: a float for all, or a mapping by output name ("" for all others)."""
    if given is None:
        return default
    if isinstance(given, Mapping):
        return float(given.get(name, given.get("", default)))
    return float(given)


def check_tolerance_names(given: Tolerance, outputs: list[str], flag: str) -> None:
    if isinstance(given, Mapping):
        unknown = sorted(n for n in given if n and n not in outputs)
        if unknown:
            raise CheckError(f"{flag} names {unknown}, which are not outputs; the network's outputs are {outputs}")
        bad = [n for n, v in given.items() if not (isinstance(v, (int, float)) and v >= 0)]
        if bad:
            raise CheckError(f"{flag} for {bad}: a tolerance is a number >= 0")
    elif given is not None and not (isinstance(given, (int, float)) and given >= 0):
        raise CheckError(f"{flag} {given!r}: a tolerance is a number >= 0")


@dataclass(frozen=True)
class Agreement:
    """How far `got` is from `want`: the largest absolute and relative differences, and how many elements lie
    beyond atol + rtol * |want|."""

    max_abs: float
    max_rel: float
    beyond: int
    size: int
    reference_shape: tuple[int, ...] | None = None  # set where the shapes differ: then beyond every tolerance

    @property
    def ok(self) -> bool:
        return self.beyond == 0


def agreement(got: np.ndarray, want: np.ndarray, atol: float, rtol: float) -> Agreement:
    """Polygraphy's comparison of `got` with the reference `want` (exact for integers and booleans). NaN agrees
    only with NaN, an infinity only with itself."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:  # beyond however few values there are: [0, 2] against [0, 0] passed as 0 of 0
        count = max(got.size, want.size, 1)
        return Agreement(float("inf"), float("inf"), count, count, tuple(want.shape))
    if not np.issubdtype(want.dtype, np.floating) and want.dtype.name != "bfloat16":
        beyond = int(np.count_nonzero(got != want))
        return Agreement(float(beyond > 0), float(beyond > 0), beyond, want.size)
    g, w = got.astype(np.float64), want.astype(np.float64)
    same = (g == w) | (np.isnan(g) & np.isnan(w))  # equal infinities too
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        diff = np.where(same, 0.0, np.abs(g - w))
        diff = np.where(np.isnan(diff), np.inf, diff)
        rel = np.where(same, 0.0, diff / np.abs(w))
        # Within tolerance: equal, or both finite and close. A NaN or an infinity on either side that the other does
        # not share is beyond any tolerance (an infinite reference made atol + rtol * |ref| infinite, and a NaN one
        # made the comparison false: both passed).
        within = same | (np.isfinite(g) & np.isfinite(w) & (diff <= atol + rtol * np.abs(w)))
        beyond = int(within.size - np.count_nonzero(within))
    return Agreement(
        float(diff.max()) if diff.size else 0.0,
        float(np.nan_to_num(rel, nan=np.inf, posinf=np.inf).max()) if rel.size else 0.0,  # not float64 max
        beyond,
        want.size,
    )


def float64_reference(path: Path, feeds: Mapping[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """The outputs `names` of the ONNX model at `path` evaluated by `onnx.reference` with every float tensor
    (inputs, initializers, constants, casts) widened to float64. A `CheckError` says why it could not run."""
    try:
        import onnx
        from onnx import numpy_helper
        from onnx.reference import ReferenceEvaluator
    except ImportError:
        raise CheckError("the float64 arbiter needs the onnx package (pip install onnx)") from None
    model = onnx.load(str(path))
    _widen_graph(model.graph, onnx, numpy_helper)
    wide = {k: v.astype(np.float64) if _is_float(v) else v for k, v in feeds.items()}
    try:
        values = ReferenceEvaluator(model).run(names, wide)
    except Exception as e:  # noqa: BLE001  onnx.reference raises whatever its operators raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckError(f"{path}: onnx.reference cannot evaluate it in float64: {first}") from e
    return dict(zip(names, (np.asarray(v) for v in values)))


def _is_float(v: np.ndarray) -> bool:
    return np.issubdtype(v.dtype, np.floating) or v.dtype.name == "bfloat16"


def _widen_graph(graph: Any, onnx: Any, numpy_helper: Any) -> None:
    """Every float type of `graph` (and its subgraphs) made DOUBLE, in place."""
    tp = onnx.TensorProto
    floats = {tp.FLOAT, tp.FLOAT16, tp.BFLOAT16}

    def widen_tensor(t: Any) -> None:
        if t.data_type in floats:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))

    for t in graph.initializer:
        widen_tensor(t)
    for v in list(graph.input) + list(graph.output) + list(graph.value_info):
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type in floats:
            v.type.tensor_type.elem_type = tp.DOUBLE
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "to" and node.op_type == "Cast" and attr.i in floats:
                attr.i = tp.DOUBLE
            elif attr.type == onnx.AttributeProto.TENSOR:
                widen_tensor(attr.t)
            elif attr.type == onnx.AttributeProto.GRAPH:
                _widen_graph(attr.g, onnx, numpy_helper)
            elif attr.name == "dtype" and attr.type == onnx.AttributeProto.INT and attr.i in floats:
                attr.i = tp.DOUBLE  # RandomNormal, EyeLike and the like


def run_onnxruntime(
    path: Path, model: str | bytes, feeds: Mapping[str, np.ndarray], names: list[str]
) -> dict[str, np.ndarray]:
    """The outputs `names` of the model (a path, or its bytes) by onnxruntime's CPU provider, as written: no graph
    optimisations. A `CheckError` says why it could not run."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # No graph optimisations, with or without --layerwise: exposing intermediates changes which fusions
    # onnxruntime makes, and so its rounding; the model as written is what the interpreter is compared with.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        taken = {i.name for i in session.get_inputs()}
        values = session.run(names, {k: v for k, v in feeds.items() if k in taken})
    except Exception as e:  # noqa: BLE001  onnxruntime raises its own types; the run has nothing to compare
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckError(f"{path}: onnxruntime cannot run it, so there is nothing to compare with: {first}") from e
    return dict(zip(names, values))
