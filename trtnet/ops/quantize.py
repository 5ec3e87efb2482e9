"""Quantization: `IQuantizeLayer`/`IDequantizeLayer`, and where an int8 or fp8 network puts them.

Placement follows TensorRT's recommendations for explicitly quantized networks (developer guide, "Explicit
Quantization", Q/DQ layer placement):
- Quantize the inputs of weighted layers, convolutions and matrix multiplies by weights (linear layers):
  activations per tensor, weights per output channel (axis 0). TensorRT fuses the DQ into the layer and the Q
  of the next quantized layer into its output, so the layer runs in int8/fp8 from end to end.
- Quantize the residual input of an addition that follows a convolution, so that TensorRT fuses the addition
  into the convolution and the fused layer can write int8 (the precision of the add's other input decides
  the precision of the fused output).
- Leave the rest in the compute type (fp16): softmax, normalisations, attention, pooling and activations are
  fused with or run between the quantized layers; quantizing them adds Q/DQ pairs that break fusions.
Calibration chooses, by the same keys, which quantizable layers stay in fp16 (by default the last ones).

Each quantization point is recorded on the graph, `key -> tensor name`, whatever the precision: the fp32
network that calibration runs in the interpreter names the tensors to measure by the keys the int8 network
looks their ranges up by. A key is the name of the layer that consumes the tensor (`layer1.0.conv1/conv`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from trtnet.backend import get_trt
from trtnet.graph import Graph, current_graph
from trtnet.ops.core import constant, out
from trtnet.tensor import Tensor


class Format(NamedTuple):
    """How a quantized precision stores a tensor: the TensorRT type (`trt.int8`, `trt.fp8`) and its largest
    magnitude, which amax maps onto (the calibrator's own arithmetic reads the same numbers)."""

    dtype: str
    qmax: float


# One per graph.QUANTIZED precision. FP8 is E4M3, whose largest finite value is 448.
FORMATS: dict[str, Format] = {"int8": Format("int8", 127.0), "fp8": Format("fp8", 448.0)}
_MIN_AMAX = 1e-6  # a tensor that was all zeros in calibration still needs a positive scale


def quantize(x: Tensor, scale: float | np.ndarray | Tensor, dtype, axis: int | None = None) -> Tensor:
    """`IQuantizeLayer`: round(x / scale) saturated to `dtype` (trt.int8 or trt.fp8). A 1-D `scale` is per channel
    along `axis`. Scales are float32 constants (TensorRT requires float32 scales for FP8)."""
    layer = current_graph().network.add_quantize(x.itensor, _scale(scale).itensor, dtype)
    if axis is not None:
        layer.axis = axis
    return out(layer, "quantize")


def dequantize(x: Tensor, scale: float | np.ndarray | Tensor, dtype, axis: int | None = None) -> Tensor:
    """`IDequantizeLayer`: x * scale in `dtype` (the compute type)."""
    layer = current_graph().network.add_dequantize(x.itensor, _scale(scale).itensor, dtype)
    if axis is not None:
        layer.axis = axis
    return out(layer, "dequantize")


def _scale(scale: float | np.ndarray | Tensor) -> Tensor:
    if isinstance(scale, Tensor):
        return scale
    arr = np.asarray(scale, np.float32)
    return constant(arr.reshape(()) if arr.size == 1 and arr.ndim <= 1 else arr, get_trt().float32, op="scale")


def fake_quantize(x: Tensor, amax: float | np.ndarray, fmt: str, axis: int | None = None, dtype=None) -> Tensor:
    """A Q/DQ pair mapping [-amax, amax] onto `fmt` ("int8" or "fp8"), back in `dtype` (default: x's dtype)."""
    trt = get_trt()
    name, top = FORMATS[fmt]
    scale = _scale(np.maximum(np.asarray(amax, np.float64), _MIN_AMAX) / top)  # one constant for the pair
    return dequantize(quantize(x, scale, getattr(trt, name), axis), scale, x.dtype if dtype is None else dtype, axis)


# -- placement ---------------------------------------------------------------------------------------


def quant_points(graph: Graph) -> dict[str, str]:
    """The quantization points emitted so far: key (the consuming layer's name) -> the quantized tensor's name."""
    return graph.memo.quant_points


def _quantizing(graph: Graph) -> bool:
    return graph.policy.precision in FORMATS


def _point(graph: Graph, op: str, x: Tensor) -> str:
    key = graph.peek_name(op)
    quant_points(graph)[key] = x.name
    return key


def _activation(graph: Graph, key: str, x: Tensor) -> Tensor | None:
    """`x` through the Q/DQ pair of point `key`, or None when this point stays in higher precision."""
    if not _quantizing(graph):
        return None
    amax = graph.policy.calibration.range_of(key)
    if amax is None:
        return None
    key = (x.name, graph.policy.precision, float(amax))  # one pair per tensor, shared by its consumers
    if key not in graph.memo.qdq:
        graph.memo.qdq[key] = fake_quantize(x, amax, graph.policy.precision)
    return graph.memo.qdq[key]


def weighted_inputs(
    x: Tensor, weight: np.ndarray, op: str, shape: Sequence[int] | None = None
) -> tuple[Tensor, Tensor | None]:
    """The input and weights of the weighted layer about to be emitted as `<module path>/<op>`.

    Under int8/fp8, unless calibration keeps this layer in higher precision, the input goes through a per-tensor
    Q/DQ pair and the weights come back as a tensor of `shape` (default: the weight's): a float32 constant with a
    Q/DQ pair per output channel (`weight`'s first dim), which TensorRT turns into int8/fp8 weights at build.
    Otherwise the weights are None and the caller emits them as it always does.
    """
    graph = current_graph()
    key = _point(graph, op, x)
    qx = _activation(graph, key, x)
    if qx is None:
        return x, None
    rows = weight.reshape(weight.shape[0], -1).astype(np.float64)
    amax = np.abs(rows).max(axis=1)
    shape = weight.shape if shape is None else tuple(shape)
    # Quantize the output channels where they sit in `shape`, so that no layer stands between the DQ and its
    # consumer (a linear's [1, 1, out, in]: axis 2); only when they span two axes ([1, heads, d, in]) is the
    # [out, in] weight reshaped after its DQ.
    axis = next((a for a in range(len(shape)) if shape[a] == weight.shape[0] and math.prod(shape[:a]) == 1), None)
    f32 = get_trt().float32
    if axis is not None:
        w = constant(weight.astype(np.float32).reshape(shape), f32, op="weight")
        return qx, fake_quantize(w, amax, graph.policy.precision, axis=axis, dtype=qx.dtype)
    w = constant(weight.astype(np.float32), f32, op="weight")
    return qx, fake_quantize(w, amax, graph.policy.precision, axis=0, dtype=qx.dtype).reshape(shape)


def mark_conv_output(y: Tensor) -> Tensor:
    """Remember that `y` is a convolution's output, whose following add TensorRT can fuse into it."""
    current_graph().memo.conv_outputs.add(y.name)
    return y


def residual_operands(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """The operands of an addition: when one is a convolution's output, the other (the residual input) goes
    through a Q/DQ pair, so that TensorRT fuses the addition into that convolution with an int8/fp8 output."""
    graph = current_graph()
    convs = graph.memo.conv_outputs
    if a.name in convs:
        key = _point(graph, "sum", b)
        qb = _activation(graph, key, b)
        return a, (b if qb is None else qb)
    if b.name in convs:
        key = _point(graph, "sum", a)
        qa = _activation(graph, key, a)
        return (a if qa is None else qa), b
    return a, b
