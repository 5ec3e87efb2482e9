"""A network as a table: every layer with its type, output shape, weight count and FLOPs, read back from TensorRT.

The counts come from the emitted `INetworkDefinition`, not from the module tree, so they describe what the
engine holds: a BatchNorm folded into its convolution adds no weights of its own, and constants count.

>>> from trtnet.zoo import resnet18
>>> print(summarize(trtnet.emit(resnet18(weights=None), 1)).table())   # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trtnet.backend import get_trt
from trtnet.errors import NetworkError
from trtnet.words import counted

# LayerType name -> (TensorRT class the layer is downcast to, the attributes holding its weights).
_WEIGHTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "CONVOLUTION": ("IConvolutionLayer", ("kernel", "bias")),
    "DECONVOLUTION": ("IDeconvolutionLayer", ("kernel", "bias")),
    "CONSTANT": ("IConstantLayer", ("weights",)),
    "SCALE": ("IScaleLayer", ("shift", "scale", "power")),
}


@dataclass(frozen=True)
class LayerRow:
    """One layer: its name (`<module path>/<op>`), type, first output's shape, weights held and FLOPs."""

    name: str
    type: str
    shape: tuple[int, ...]
    params: int
    flops: int | None  # None: a product whose shapes are dynamic, so its count is not known before it runs


@dataclass(frozen=True)
class Summary:
    rows: list[LayerRow]

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def flops(self) -> int:
        """The FLOPs of the layers that can be counted (see `uncounted`)."""
        return sum(r.flops or 0 for r in self.rows)

    @property
    def uncounted(self) -> int:
        """Products (convolutions, matrix multiplies, attention) whose dynamic shapes leave their FLOPs unknown."""
        return sum(r.flops is None for r in self.rows)

    def table(self) -> str:
        """The rows as aligned text, then the totals."""
        head = ("layer", "type", "output shape", "params")
        body = [(r.name, r.type, "x".join(map(str, r.shape)), f"{r.params:,}") for r in self.rows]
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(4)]
        lines = [
            "  ".join([c.ljust(w) for c, w in zip(row[:3], widths)] + [row[3].rjust(widths[3])])
            for row in [head, *body]
        ]
        lines.insert(1, "-" * len(lines[0]))
        lines.append("-" * len(lines[0]))
        lines.append(
            f"total: {counted(len(self.rows), 'layer')}, {self.params:,} parameters, "
            f"{self.flops / 1e9:.2f} GFLOPs (conv, matmul and attention; a multiply-add counted as 2)"
        )
        if self.uncounted:
            lines.append(
                f"not counted: {counted(self.uncounted, 'product')} of dynamic shape (their FLOPs depend on the "
                "shapes given at run time; summarize fixed shapes to count them)"
            )
        return "\n".join(lines)


def summarize(network) -> Summary:
    """Read every layer of `network` (a `trtnet.Network`, emitted or parsed from ONNX, or the
    `INetworkDefinition` inside one) back into a `Summary`."""
    trt = get_trt()
    network = getattr(network, "network", network)  # a trtnet.Network holds the INetworkDefinition
    if not hasattr(network, "num_layers") or not hasattr(network, "get_layer"):
        raise NetworkError(
            f"summarize takes a network (trtnet.emit(model, batch) or trtnet.parse_onnx(path)), not "
            f"{type(network).__name__}"
        )
    rows = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        type_name = layer.type.name
        shape = tuple(layer.get_output(0).shape) if layer.num_outputs else ()
        rows.append(
            LayerRow(layer.name, type_name, shape, _params(trt, layer, type_name), _flops(trt, layer, type_name))
        )
    return Summary(rows)


def _params(trt, layer, type_name: str) -> int:
    if type_name not in _WEIGHTS:
        return 0
    class_name, attributes = _WEIGHTS[type_name]
    layer.__class__ = getattr(trt, class_name)  # the network hands back base ILayers; the bindings allow this
    return sum(int(getattr(w, "size", 0)) for w in (getattr(layer, a) for a in attributes) if w is not None)


def _flops(trt, layer, type_name: str) -> int | None:
    """Multiply-adds x 2 for convolutions, matrix multiplies and fused attention (None where a dynamic shape
    leaves that unknown); 0 for layers whose cost is memory, not math (elementwise, normalisation and softmax
    arithmetic is not counted)."""
    if type_name not in ("CONVOLUTION", "DECONVOLUTION", "MATRIX_MULTIPLY", "ATTENTION_INPUT"):
        return 0
    out = tuple(layer.get_output(0).shape) if layer.num_outputs else ()
    ins = [tuple(layer.get_input(i).shape) for i in range(layer.num_inputs) if layer.get_input(i) is not None]
    if any(d < 0 for shape in (out, *ins) for d in shape):
        return None  # a dynamic shape (of the output, or of a contracted dim): nothing to count until it runs
    if type_name in ("CONVOLUTION", "DECONVOLUTION"):
        layer.__class__ = getattr(trt, _WEIGHTS[type_name][0])
        cin = layer.get_input(0).shape[1]
        window = math.prod(tuple(layer.kernel_size_nd))
        # Each output (convolution) or input (deconvolution) element is a dot product over cin/groups x window.
        elements = math.prod(out) if type_name == "CONVOLUTION" else math.prod(tuple(layer.get_input(0).shape))
        per = (cin if type_name == "CONVOLUTION" else out[1]) // layer.num_groups * window
        return 2 * elements * per
    if type_name == "MATRIX_MULTIPLY":
        layer.__class__ = trt.IMatrixMultiplyLayer
        a = tuple(layer.get_input(0).shape)
        k = a[-2] if layer.op0 == trt.MatrixOperation.TRANSPOSE else a[-1]  # VECTOR and NONE: the last dim
        return 2 * math.prod(out) * k
    if type_name == "ATTENTION_INPUT":  # a fused attention's two products (q k^T, then by v), counted at its input
        q, k, v = ins[:3]
        return 2 * math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])
    return 0
