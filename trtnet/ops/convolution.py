"""Convolution (`IConvolutionLayer`) with PyTorch's arguments."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trtnet.errors import NetworkError
from trtnet.graph import current_graph
from trtnet.ops.core import out
from trtnet.ops.quantize import mark_conv_output, weighted_inputs
from trtnet.tensor import Tensor


def pair(v: int | Sequence[int], n: int = 2) -> tuple[int, ...]:
    return (v,) * n if isinstance(v, int) else tuple(v)


def conv2d(
    x: Tensor,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> Tensor:
    """`torch.nn.functional.conv2d` with constant weights [out, in/groups, kh, kw] (symmetric padding)."""
    graph = current_graph()
    if x.ndim != 4:
        raise NetworkError(f"conv2d at {graph.path or 'top level'}: input {x} is not NCHW")
    cout, cin_g, kh, kw = weight.shape
    if x.shape[1] != cin_g * groups:
        raise NetworkError(
            f"conv2d at {graph.path}: input has {x.shape[1]} channels, weight expects {cin_g} x {groups} groups"
        )
    x, kernel = weighted_inputs(x, weight, "conv")  # int8/fp8: Q/DQ on the input, and the kernel as a tensor
    layer = graph.network.add_convolution_nd(
        x.itensor,
        cout,
        (kh, kw),
        graph.weights(weight) if kernel is None else graph.no_weights(),
        graph.weights(bias) if bias is not None else graph.no_weights(),
    )
    if kernel is not None:
        layer.set_input(1, kernel.itensor)
    layer.stride_nd = pair(stride)
    layer.padding_nd = pair(padding)
    layer.dilation_nd = pair(dilation)
    layer.num_groups = groups
    return mark_conv_output(out(layer, "conv"))
