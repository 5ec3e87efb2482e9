"""int8/fp8 for a parsed ONNX network: Q/DQ pairs inserted into the network TensorRT's parser made, by the placement
rules the zoo's networks are written by (trtnet.ops.quantize):

- the inputs of convolutions and of matrix multiplies by a constant (linear layers, Gemm) are quantized:
  activations per tensor with the calibrated range, weights per output channel with the range of each channel;
- an addition one of whose operands is a convolution's output gets a Q/DQ pair on its other operand, so that
  TensorRT fuses the addition into that convolution with an int8/fp8 output;
- everything else computes in fp16 (the network is first reduced by trtnet.onnx.precision, as `Policy` does for
  int8/fp8), and the layers calibration keeps ("last" by default) stay in fp16.

A quantization point is keyed by the name of the layer that reads the tensor, which for a parsed network is the
ONNX node's name (`/layer1/layer1.0/conv1/Conv`); an addition's key ends in `/sum`, which calibration reads as
"not a weighted layer". The network stays strongly typed: weights are float32 constants through a Q/DQ pair whose
DQ writes fp16, as the zoo's are, and TensorRT turns them into int8/fp8 weights at build time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from trtnet.backend import get_trt
from trtnet.errors import NetworkError
from trtnet.onnx.precision import typed
from trtnet.quant.ranges import Calibration

FORMATS: dict[str, float] = {"int8": 127.0, "fp8": 448.0}  # the largest magnitude each format holds
_MIN_AMAX = 1e-6  # a tensor that was all zeros in calibration still needs a positive scale


@dataclass
class Point:
    """One quantization point: the layer reading the tensor, which input it is, and for a weighted layer the
    float32 weights with the axis of their output channels."""

    key: str
    layer: Any
    index: int
    tensor: str
    weights: np.ndarray | None = None  # a convolution's kernel, or a matrix multiply's constant operand
    weight_index: int = 1  # where the weights enter the layer
    axis: int = 0


def find_points(network: Any) -> list[Point]:
    """The quantization points of the fp32 `network`, with copies of their float32 weights (read before the
    network is reduced to fp16, so that weights are quantized from their full values)."""
    trt = get_trt()
    layers = [typed(network.get_layer(i)) for i in range(network.num_layers)]
    producer = {layer.get_output(j).name: layer for layer in layers for j in range(layer.num_outputs)}
    points: list[Point] = []
    conv_outputs: set[str] = set()

    def constant_of(t: Any) -> Any:
        """The constant layer `t` is, or is a reshape of: TensorRT's parser broadcasts a Linear's weight over
        [B, S, H] inputs by a shuffle that only adds leading 1s (a transformer's Linear was never quantized)."""
        layer = producer.get(t.name) if t is not None else None
        if layer is not None and layer.type.name == "SHUFFLE" and _plain_reshape(layer):
            layer = producer.get(layer.get_input(0).name)
        return layer if layer is not None and layer.type.name == "CONSTANT" else None

    for layer in layers:
        kind = layer.type.name
        if kind == "CONVOLUTION":
            x = layer.get_input(0)
            kernel = np.asarray(layer.kernel)
            if x.dtype != trt.float32 or layer.num_inputs > 1 and layer.get_input(1) is not None or not kernel.size:
                continue  # a kernel computed in the graph, or a non-float32 layer: left as it is
            size = tuple(int(k) for k in layer.kernel_size_nd)
            w = kernel.astype(np.float32).reshape(layer.num_output_maps, -1, *size)  # [out, in / groups, *size]
            points.append(Point(layer.name, layer, 0, x.name, w.copy(), 1, 0))
            conv_outputs.add(layer.get_output(0).name)
        elif kind == "MATRIX_MULTIPLY":
            a, b = layer.get_input(0), layer.get_input(1)
            const_b, const_a = constant_of(b), constant_of(a)
            if const_b is not None and const_a is None and a.dtype == trt.float32 and len(b.shape) >= 2:
                # The output channels of B are its last dim, or its second to last when B is transposed.
                transposed = layer.op1 == trt.MatrixOperation.TRANSPOSE
                axis = len(b.shape) - (2 if transposed else 1)
                w = np.asarray(const_b.weights).astype(np.float32).reshape(tuple(b.shape))
                points.append(Point(layer.name, layer, 0, a.name, w.copy(), 1, axis))
    for layer in layers:
        if layer.type.name != "ELEMENTWISE" or layer.op != trt.ElementWiseOperation.SUM or layer.num_inputs != 2:
            continue
        a, b = layer.get_input(0), layer.get_input(1)
        computed = [t is not None and t.name in producer and constant_of(t) is None for t in (a, b)]
        if not all(computed) or a.dtype != trt.float32:
            continue
        if a.name in conv_outputs:
            points.append(Point(f"{layer.name}/sum", layer, 1, b.name))
        elif b.name in conv_outputs:
            points.append(Point(f"{layer.name}/sum", layer, 0, a.name))
    keys = [p.key for p in points]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:  # calibration ranges are keyed by layer name: a name used twice would mix two tensors' ranges
        raise NetworkError(f"layer names {twice} are used twice in the parsed network: its quantization is ambiguous")
    return points


def _plain_reshape(layer: Any) -> bool:
    """A shuffle that reshapes its one input as it is laid out: no transposition, no shape given at run time."""
    identity = list(range(8))
    return (
        layer.num_inputs == 1
        and list(layer.first_transpose) == identity
        and list(layer.second_transpose) == identity
        and layer.reshape_dims is not None
    )


def weights_fingerprint(network: Any) -> str:
    """sha256 over the weights the parser put in the fp32 `network` (each weighted layer's type, field, dtype, shape
    and values, in layer order; not its name, which for a constant is the initializer's): what an ONNX calibration
    was measured with. A re-export of the same weights gives the same fingerprint, its initializers renamed too;
    other weights in the same graph do not."""
    fields = {"CONSTANT": ("weights",), "CONVOLUTION": ("kernel", "bias"), "DECONVOLUTION": ("kernel", "bias")}
    fields["SCALE"] = ("shift", "scale", "power")
    h = hashlib.sha256()
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for name in fields.get(layer.type.name, ()):
            a = np.ascontiguousarray(getattr(typed(layer), name))
            h.update(f"{layer.type.name}.{name}:{a.dtype.str}{a.shape};".encode())
            h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def quantize_network(network: Any, points: list[Point], calibration: Calibration, fmt: str) -> list[np.ndarray]:
    """Insert the Q/DQ pairs of `points` into the (fp16-reduced) `network` with `calibration`'s ranges; returns the
    arrays behind the new constants (TensorRT keeps pointers to them: keep them alive until the engine is built)."""
    trt = get_trt()
    if fmt not in FORMATS:
        raise NetworkError(f"quantized precision must be one of {tuple(FORMATS)}, not {fmt!r}")
    qtype = getattr(trt, fmt)
    calibration.check_layers({p.key for p in points})  # another model's; a kept layer named wrong
    keep: list[np.ndarray] = []
    pairs: dict[tuple[str, float], Any] = {}  # one pair per tensor and range, shared by its consumers
    tensors = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            tensors[layer.get_output(j).name] = layer.get_output(j)
    for i in range(network.num_inputs):
        tensors[network.get_input(i).name] = network.get_input(i)

    def constant(arr: np.ndarray, name: str) -> Any:
        arr = np.ascontiguousarray(arr, np.float32)
        keep.append(arr)
        layer = network.add_constant(arr.shape, trt.Weights(arr))
        layer.name = name
        layer.get_output(0).name = name
        return layer.get_output(0)

    def fake_quantize(x: Any, amax: np.ndarray, name: str, out_dtype: Any, axis: int | None) -> Any:
        scale = constant(np.maximum(np.asarray(amax, np.float64), _MIN_AMAX) / FORMATS[fmt], f"{name}/scale")
        q = network.add_quantize(x, scale, qtype)
        q.name = f"{name}/quantize"
        q.get_output(0).name = q.name
        dq = network.add_dequantize(q.get_output(0), scale, out_dtype)
        dq.name = f"{name}/dequantize"
        dq.get_output(0).name = dq.name
        if axis is not None:
            q.axis = dq.axis = axis
        return dq.get_output(0)

    for p in points:
        amax = calibration.range_of(p.key)  # None: calibration keeps this layer in fp16
        if amax is None:
            continue
        x = p.layer.get_input(p.index)
        if (x.name, amax) not in pairs:
            pairs[(x.name, amax)] = fake_quantize(x, np.float64(amax), f"{p.key}/input", x.dtype, None)
        p.layer.set_input(p.index, pairs[(x.name, amax)])
        if p.weights is None:
            continue
        channels = np.moveaxis(p.weights, p.axis, 0).reshape(p.weights.shape[p.axis], -1)
        w = constant(p.weights, f"{p.key}/weight")
        dq = fake_quantize(w, np.abs(channels.astype(np.float64)).max(axis=1), f"{p.key}/weight", x.dtype, p.axis)
        if p.layer.type.name == "CONVOLUTION":
            keep += _requantized_conv(network, p.layer, pairs[(x.name, amax)], dq)
        else:
            p.layer.set_input(p.weight_index, dq)
    return keep


def _requantized_conv(network: Any, old: Any, x: Any, kernel: Any) -> list[np.ndarray]:
    """A convolution like `old` whose kernel is the tensor `kernel`, put in `old`'s place (its name, its output's
    name and consumers). TensorRT refuses both to empty a convolution's kernel weights and a kernel input beside
    them, and has no way to remove a layer: `old` stays, fed a zero tensor just large enough for its kernel, so
    that it costs nothing (TensorRT's builder drops it as dead; the interpreter runs it on a few pixels)."""
    trt = get_trt()
    empty = trt.Weights(x.dtype)
    bias = old.bias if old.num_inputs < 3 or old.get_input(2) is None else empty
    if np.size(bias) == 0:
        bias = empty
    new = network.add_convolution_nd(x, old.num_output_maps, old.kernel_size_nd, empty, bias)
    new.set_input(1, kernel)
    if old.num_inputs > 2 and old.get_input(2) is not None:
        new.set_input(2, old.get_input(2))
    new.num_groups = old.num_groups
    new.stride_nd, new.dilation_nd = old.stride_nd, old.dilation_nd
    new.pre_padding, new.post_padding = old.pre_padding, old.post_padding
    new.padding_mode = old.padding_mode
    before, after = old.get_output(0), new.get_output(0)
    name, tensor_name = old.name, before.name
    old.name, before.name = f"{name}/replaced", f"{tensor_name}/replaced"
    new.name, after.name = name, tensor_name
    _rewire(network, before, after, skip=new)
    # The dead layer's input: [1, C, *extent], the smallest image its kernel, padding and dilation accept.
    channels = old.get_input(0).shape[1] if old.get_input(0).shape[1] > 0 else kernel.shape[1] * old.num_groups
    extent = [
        max(1, int(d) * (int(k) - 1) + 1 - int(a) - int(b))
        for k, d, a, b in zip(old.kernel_size_nd, old.dilation_nd, old.pre_padding, old.post_padding)
    ]
    zeros = np.zeros((1, int(channels), *extent), np.float16 if x.dtype == trt.float16 else np.float32)
    stub = network.add_constant(zeros.shape, trt.Weights(zeros))
    stub.name = stub.get_output(0).name = f"{name}/replaced_input"
    old.set_input(0, stub.get_output(0))
    return [zeros]


def _rewire(network: Any, before: Any, after: Any, skip: Any) -> None:
    """Every reader of tensor `before` (layers other than `skip`, and the network's outputs) reads `after`."""
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name == skip.name:
            continue
        for j in range(layer.num_inputs):
            t = layer.get_input(j)
            if t is not None and t.name == before.name:
                layer.set_input(j, after)
    outputs = [network.get_output(i) for i in range(network.num_outputs)]
    if any(t.name == before.name for t in outputs):
        for t in outputs:
            network.unmark_output(t)
        for t in outputs:
            network.mark_output(after if t.name == before.name else t)
