"""Normalisations and softmax. Under fp16/bf16 the policy may keep their arithmetic in fp32."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from trtnet.backend import get_trt
from trtnet.graph import current_graph
from trtnet.ops.core import axes_mask, constant, normalize_axis, out
from trtnet.ops.shape import cast
from trtnet.tensor import Tensor


def _fp32_region(x: Tensor) -> tuple[Tensor, object]:
    """Cast `x` to fp32 if the policy keeps normalisations there; return it and the dtype to come back to."""
    trt = get_trt()
    if current_graph().policy.norm_fp32 and x.dtype in (trt.float16, trt.bfloat16):
        return cast(x, trt.float32), x.dtype
    return x, x.dtype


def scale_channels(x: Tensor, scale: np.ndarray, shift: np.ndarray) -> Tensor:
    """x * scale + shift per channel (axis 1), one `IScaleLayer`: what an eval-mode BatchNorm computes."""
    graph = current_graph()
    trt = get_trt()
    layer = graph.network.add_scale_nd(x.trt, trt.ScaleMode.CHANNEL, graph.weights(shift, x.dtype),
                                       graph.weights(scale, x.dtype), graph.no_weights(x.dtype), 1)
    return out(layer, "scale")


def batch_norm(x: Tensor, mean: np.ndarray, var: np.ndarray, weight: np.ndarray, bias: np.ndarray,
               eps: float) -> Tensor:
    """Eval-mode `F.batch_norm` over axis 1, folded in float64 into one per-channel scale and shift."""
    scale = weight.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    shift = bias.astype(np.float64) - mean.astype(np.float64) * scale
    return scale_channels(x, scale.astype(np.float32), shift.astype(np.float32))


def layer_norm(x: Tensor, weight: np.ndarray | None, bias: np.ndarray | None, eps: float = 1e-5,
               axes: Sequence[int] = (-1,)) -> Tensor:
    """`F.layer_norm` over the trailing `axes`, as one `INormalizationLayer`."""
    graph = current_graph()
    y, back = _fp32_region(x)
    axes = tuple(normalize_axis(a, x.ndim) for a in axes)
    shape = tuple(x.shape[i] if i in axes else 1 for i in range(x.ndim))
    ones = np.ones(shape, np.float32)
    gamma = constant(ones if weight is None else weight.reshape(shape), y.dtype, op="gamma")
    beta = constant(np.zeros_like(ones) if bias is None else bias.reshape(shape), y.dtype, op="beta")
    layer = graph.network.add_normalization(y.trt, gamma.trt, beta.trt, axes_mask(axes, x.ndim))
    layer.epsilon = eps
    return cast(out(layer, "layer_norm"), back)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """`F.softmax(x, axis)`."""
    y, back = _fp32_region(x)
    layer = current_graph().network.add_softmax(y.trt)
    layer.axes = axes_mask(axis, x.ndim)
    return cast(out(layer, "softmax"), back)
