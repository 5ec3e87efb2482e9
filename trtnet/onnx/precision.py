"""fp16/bf16 for a parsed ONNX network: the fp32 network TensorRT's parser made, rewritten in place into the
reduced one by the rules the DSL's `Policy` emits by (trtnet.graph, trtnet.ops.normalization):

- float32 weights (constants, convolution kernels and biases, scale coefficients) are stored in the compute type;
- casts to float32 inside the graph (and fills of float32) produce the compute type instead;
- normalisation and softmax layers compute in float32 (a cast on each side), as `Policy.norm_fp32` keeps them;
- the inputs and outputs keep the types the file declares: a cast after each float32 input, and one before each
  float32 output, which keeps its name.

The network stays strongly typed: every other layer's type follows from its inputs, so no builder precision flag is
involved, and the interpreter runs exactly what TensorRT builds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trtnet.backend import capture_errors, get_trt
from trtnet.errors import NetworkError
from trtnet.graph import to_numpy_dtype

REDUCED = ("fp16", "bf16")
# The layers Policy(norm_fp32=True) keeps in float32 (trtnet.ops.normalization._fp32_region).
_SENSITIVE = ("NORMALIZATION", "SOFTMAX")


def reduce_precision(network: Any, precision: str, where: str = "network") -> list[np.ndarray]:
    """Rewrite the strongly typed fp32 `network` into `precision` ("fp16" or "bf16") in place; returns the arrays
    behind the new weights (TensorRT keeps pointers to them: keep them alive until the engine is built)."""
    trt = get_trt()
    if precision not in REDUCED:
        raise NetworkError(f"precision {precision!r}: an ONNX network is reduced to one of {REDUCED}")
    low = trt.float16 if precision == "fp16" else trt.bfloat16
    keep: list[np.ndarray] = []

    def weights(w: Any) -> Any:
        arr = np.ascontiguousarray(to_numpy_dtype(np.asarray(w, np.float32), low))
        keep.append(arr)
        return trt.Weights(low, arr.ctypes.data, arr.size) if low == trt.bfloat16 else trt.Weights(arr)

    layers = [typed(network.get_layer(i)) for i in range(network.num_layers)]
    outputs = [(network.get_output(i), network.get_output(i).dtype) for i in range(network.num_outputs)]
    consumers: dict[str, list[tuple[Any, int]]] = {}
    for layer in layers:
        for j in range(layer.num_inputs):
            t = layer.get_input(j)
            if t is not None:
                consumers.setdefault(t.name, []).append((layer, j))

    def cast_after(tensor: Any, dtype: Any, suffix: str) -> Any:
        """A cast of `tensor` to `dtype` that all of `tensor`'s consumers read instead."""
        cast = network.add_cast(tensor, dtype)
        cast.name = f"{tensor.name}/{suffix}"
        out = cast.get_output(0)
        out.name = cast.name
        for layer, j in consumers.get(tensor.name, []):
            layer.set_input(j, out)
        return out

    for i in range(network.num_inputs):
        t = network.get_input(i)
        if t.dtype == trt.float32:
            cast_after(t, low, precision)
    sensitive = [layer for layer in layers if layer.type.name in _SENSITIVE]
    fp32_only = _constants_read_only_by(sensitive, layers, consumers)
    for layer in layers:
        kind = layer.type.name
        if kind == "CONSTANT" and layer.get_output(0).dtype == trt.float32 and layer.name not in fp32_only:
            layer.weights = weights(layer.weights)
        elif kind in ("CONVOLUTION", "DECONVOLUTION"):
            for attr in ("kernel", "bias"):
                w = getattr(layer, attr)
                if w is not None and np.size(w) and np.asarray(w).dtype == np.float32:
                    setattr(layer, attr, weights(w))
        elif kind == "SCALE":
            for attr in ("shift", "scale", "power"):
                w = getattr(layer, attr)
                if w is not None and np.size(w) and np.asarray(w).dtype == np.float32:
                    setattr(layer, attr, weights(w))
        elif kind == "CAST" and layer.to_type == trt.float32:
            layer.to_type = low
        elif kind == "FILL" and getattr(layer, "to_type", None) == trt.float32:
            layer.to_type = low
    for layer in sensitive:  # after the rest: their inputs' types are now the reduced ones
        for j in range(layer.num_inputs):
            t = layer.get_input(j)
            if t is not None and t.dtype == low:
                cast = network.add_cast(t, trt.float32)
                cast.name = f"{layer.name}/input{j}_fp32"
                layer.set_input(j, cast.get_output(0))
        out = layer.get_output(0)
        if out.dtype == trt.float32:
            cast_after(out, low, precision)
    _restore_outputs(network, outputs, trt.float32)
    check_consistent(network, where, f"the {precision} network")
    return keep


def typed(layer: Any) -> Any:
    """The layer as its own class (get_layer hands out ILayer), so its attributes can be read and set."""
    trt = get_trt()
    name = {
        "CONVOLUTION": "IConvolutionLayer",
        "DECONVOLUTION": "IDeconvolutionLayer",
        "MATRIX_MULTIPLY": "IMatrixMultiplyLayer",
        "ELEMENTWISE": "IElementWiseLayer",
        "CONSTANT": "IConstantLayer",
        "SCALE": "IScaleLayer",
        "CAST": "ICastLayer",
        "FILL": "IFillLayer",
        "SHUFFLE": "IShuffleLayer",
    }.get(layer.type.name)
    if name is not None:
        layer.__class__ = getattr(trt, name)
    return layer


def _constants_read_only_by(sensitive: list, layers: list, consumers: dict) -> set[str]:
    """Constant layers whose every reader is a layer kept in float32 (a LayerNorm's scale and bias): their
    weights stay float32 rather than being rounded and widened again."""
    kept = {id(layer) for layer in sensitive}
    out = set()
    for layer in layers:
        if layer.type.name != "CONSTANT":
            continue
        readers = consumers.get(layer.get_output(0).name, [])
        if readers and all(id(r) in kept for r, _ in readers):
            out.add(layer.name)
    return out


def _restore_outputs(network: Any, outputs: list[tuple[Any, Any]], fp32: Any) -> None:
    """Each output that was float32 and is now reduced gets a cast back, which takes its name; order is kept."""
    final = []
    for t, dtype in outputs:
        if dtype == fp32 and t.dtype != fp32:
            name = t.name
            t.name = f"{name}/reduced"
            cast = network.add_cast(t, fp32)
            cast.name = f"{name}/to_fp32"
            out = cast.get_output(0)
            out.name = name
            final.append(out)
        else:
            final.append(t)
    for t, _ in outputs:
        network.unmark_output(t)
    for t in final:
        network.mark_output(t)


def check_consistent(network: Any, where: str, what: str) -> None:
    """Every layer's output type and shape can be inferred (a float32 tensor left meeting a reduced one would not
    be; nor a reshape that given input shapes make impossible): a NetworkError naming the first layer that cannot,
    with TensorRT's reason; `what` names the network ("the fp16 network")."""
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        with capture_errors() as errors:
            try:
                for j in range(layer.num_outputs):
                    _ = layer.get_output(j).dtype, layer.get_output(j).shape
            except RuntimeError:
                reason = "; ".join(errors) or "no reason logged"
                raise NetworkError(
                    f"{where}: {what} is not consistent at layer {layer.name!r} ({layer.type.name}): {reason}"
                ) from None
