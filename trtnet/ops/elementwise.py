"""Binary elementwise ops (`IElementWiseLayer`), with broadcasting and scalar operands."""

from __future__ import annotations

from functools import partial

from trtnet.backend import get_trt
from trtnet.graph import current_graph
from trtnet.ops.arrays import ConstantArray, as_operand, scale_by_constant
from trtnet.ops.core import TensorLike, broadcast_pair, out
from trtnet.ops.quantize import residual_operands
from trtnet.tensor import Tensor


def elementwise(a: TensorLike | ConstantArray, b: TensorLike | ConstantArray, op: str) -> Tensor:
    """`a <op> b` with numpy broadcasting; `op` names a `trt.ElementWiseOperation` (`"SUM"`, `"PROD"`...).

    Either operand may be a `trtnet.nn.Parameter` (or a view of one): a per-channel one scales or shifts in one
    `IScaleLayer`, any other becomes a constant (see `trtnet.ops.arrays`)."""
    scaled = scale_by_constant(a, b, op)
    if scaled is not None:
        return scaled
    a = as_operand(a, b)
    b = as_operand(b, a)
    a, b = broadcast_pair(a, b)
    layer = current_graph().network.add_elementwise(a.itensor, b.itensor, getattr(get_trt().ElementWiseOperation, op))
    return out(layer, op.lower())


def add(a: TensorLike, b: TensorLike) -> Tensor:
    """a + b. Under int8/fp8, an addition after a convolution quantizes its other (residual) input."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        a, b = residual_operands(a, b)
    return elementwise(a, b, "SUM")


sub = partial(elementwise, op="SUB")
mul = partial(elementwise, op="PROD")
div = partial(elementwise, op="DIV")
pow = partial(elementwise, op="POW")  # noqa: A001 - the op's own name
maximum = partial(elementwise, op="MAX")
minimum = partial(elementwise, op="MIN")
equal = partial(elementwise, op="EQUAL")
greater = partial(elementwise, op="GREATER")
less = partial(elementwise, op="LESS")
