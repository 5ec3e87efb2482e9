"""Reductions (`IReduceLayer`)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from trtnet.backend import get_trt
from trtnet.graph import current_graph
from trtnet.ops.core import axes_mask, out
from trtnet.tensor import Tensor


def reduce(x: Tensor, axis: int | Sequence[int], keepdim: bool = False, op: str = "SUM") -> Tensor:
    """Reduce over `axis` with `trt.ReduceOperation.<op>`."""
    layer = current_graph().network.add_reduce(
        x.itensor, getattr(get_trt().ReduceOperation, op), axes_mask(axis, x.ndim), keepdim
    )
    return out(layer, op.lower())


sum = partial(reduce, op="SUM")  # noqa: A001
mean = partial(reduce, op="AVG")
amax = partial(reduce, op="MAX")
amin = partial(reduce, op="MIN")
