"""Unary math (`IUnaryLayer`)."""

from __future__ import annotations

from functools import partial

from trtnet.backend import get_trt
from trtnet.graph import current_graph
from trtnet.ops.core import out
from trtnet.tensor import Tensor


def unary(x: Tensor, op: str) -> Tensor:
    """Apply `trt.UnaryOperation.<op>` elementwise."""
    layer = current_graph().network.add_unary(x.itensor, getattr(get_trt().UnaryOperation, op))
    return out(layer, op.lower())


exp = partial(unary, op="EXP")
log = partial(unary, op="LOG")
sqrt = partial(unary, op="SQRT")
recip = partial(unary, op="RECIP")
abs = partial(unary, op="ABS")  # noqa: A001
neg = partial(unary, op="NEG")
erf = partial(unary, op="ERF")
floor = partial(unary, op="FLOOR")


def rsqrt(x: Tensor) -> Tensor:
    return recip(sqrt(x))
