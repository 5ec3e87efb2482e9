"""Matrix products (`IMatrixMultiplyLayer`) and the linear layer built on them."""

from __future__ import annotations

import numpy as np

from trtnet.backend import get_trt
from trtnet.graph import current_graph
from trtnet.ops.core import constant, expand_rank, out
from trtnet.ops.normalization import scale_channels
from trtnet.ops.quantize import weighted_inputs
from trtnet.tensor import Tensor


def matmul(a: Tensor, b: Tensor, transpose_a: bool = False, transpose_b: bool = False) -> Tensor:
    """`torch.matmul` for rank >= 2 operands, batch dims broadcast; optional transposes of the last two dims."""
    trt = get_trt()
    rank = max(a.ndim, b.ndim)
    a, b = expand_rank(a, rank), expand_rank(b, rank)
    op = lambda t: trt.MatrixOperation.TRANSPOSE if t else trt.MatrixOperation.NONE  # noqa: E731
    layer = current_graph().network.add_matrix_multiply(a.itensor, op(transpose_a), b.itensor, op(transpose_b))
    return out(layer, "matmul")


def linear(x: Tensor, weight: np.ndarray, bias: np.ndarray | None = None) -> Tensor:
    """`F.linear`: x @ weight.T + bias, weight [out, in] as PyTorch stores it.

    The bias is an `IScaleLayer` over the last axis, which holds its weights, rather than a constant layer
    and an add: one layer fewer per linear.
    """
    shape = (1,) * (x.ndim - 2) + weight.shape
    x, w = weighted_inputs(x, weight, "matmul", shape)  # int8/fp8: Q/DQ on the input and the weights
    if w is None:
        w = constant(weight.reshape(shape), op="weight")
    y = matmul(x, w, transpose_b=True)
    return y if bias is None else scale_channels(y, None, bias, axis=-1)
