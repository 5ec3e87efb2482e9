"""`trtnet check --layerwise`: the intermediate tensors the parsed network and the ONNX model share by name, and
the first layer (in execution order) whose output departs beyond tolerance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtnet.backend import get_trt
from trtnet.errors import CheckError


@dataclass(frozen=True)
class Departure:
    """The first layer (in execution order) whose output departs from onnxruntime's beyond tolerance."""

    layer: str
    layer_type: str
    tensor: str
    error: float
    tolerance: float
    input_shapes: tuple[tuple[int, ...], ...]
    onnx_node: str = ""  # the ONNX node that wrote the tensor, "name (OpType)": where to look in the exporter's graph


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
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


def producers(network: Any) -> dict[str, list[str]]:
    """Layer name -> its output tensor names."""
    out: dict[str, list[str]] = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        out[layer.name] = [layer.get_output(o).name for o in range(layer.num_outputs)]
    return out


def with_intermediate_outputs(path: Path, names: set[str]) -> tuple[list[str], bytes, dict[str, str]]:
    """The ONNX model with every intermediate tensor in `names` whose type is known made a graph output; and
    which node wrote each tensor ("name (OpType)")."""
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
    writers = {o: f"{node.name or '(unnamed)'} ({node.op_type})" for node in model.graph.node for o in node.output}
    return shared, model.SerializeToString(), writers


def first_departure(
    network: Any,
    layer_outputs: dict[str, list[str]],
    kept: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    shapes: dict[str, tuple[int, ...]],
    compared: set[str],
    results: dict[str, np.ndarray],
    tolerances: dict[str, float],
) -> Departure | None:
    from trtnet.interpreter.checks import layer_type_name

    layers = {network.get_layer(i).name: network.get_layer(i) for i in range(network.num_layers)}
    for layer_name, outputs in layer_outputs.items():
        if layer_name not in layers:
            continue
        for name in outputs:
            if name not in compared or name not in reference:
                continue
            value = kept.get(name, results.get(name))
            if value is None:
                continue
            tol = tolerances.get("bfloat16" if value.dtype.name == "bfloat16" else value.dtype.name, 0.0)
            err = relative_error(value, reference[name])
            if err > tol:
                layer = layers[layer_name]
                inputs = [layer.get_input(i) for i in range(layer.num_inputs)]
                in_shapes = tuple(shapes.get(t.name, tuple(int(d) for d in t.shape)) for t in inputs if t is not None)
                return Departure(layer_name, layer_type_name(layer), name, err, tol, in_shapes)
    return None


def random_sources(network: Any) -> dict[str, str]:
    """Tensor name -> the random FILL layer (RandomNormal/Uniform[Like] in ONNX) its value depends on, for every
    tensor that depends on one: the interpreter's draws cannot match onnxruntime's, nor an engine's, so no such
    tensor can be compared (its shape apart). Passes over the layers until nothing changes: a loop's back edge can
    carry a draw to layers listed before the one that makes it.

    >>> random_sources(type("N", (), {"num_layers": 0})())
    {}
    """
    trt = get_trt()
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    found: dict[str, str] = {}
    for layer in layers:
        if layer.type == trt.LayerType.FILL:
            layer.__class__ = trt.IFillLayer  # get_layer hands back the base class
            if layer.operation in (trt.FillOperation.RANDOM_UNIFORM, trt.FillOperation.RANDOM_NORMAL):
                found.update((layer.get_output(o).name, layer.name) for o in range(layer.num_outputs))
    grew = bool(found)
    while grew:
        grew = False
        for layer in layers:
            if layer.type == trt.LayerType.SHAPE:  # a draw's shape is not drawn
                continue
            inputs = (layer.get_input(i) for i in range(layer.num_inputs))
            source = next((found[t.name] for t in inputs if t is not None and t.name in found), None)
            if source is None:
                continue
            for o in range(layer.num_outputs):
                name = layer.get_output(o).name
                if name not in found:
                    found[name] = source
                    grew = True
    return found
