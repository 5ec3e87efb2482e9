"""Normalisations and softmax. Under fp16/bf16 the policy may keep their arithmetic in fp32."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trtnet.backend import get_trt
from trtnet.errors import NetworkError
from trtnet.graph import current_graph
from trtnet.ops.core import axes_mask, constant, normalize_axis, out, shared_constant
from trtnet.ops.shape import cast
from trtnet.tensor import Tensor


def _fp32_region(x: Tensor) -> tuple[Tensor, object]:
    """Cast `x` to fp32 if the policy keeps normalisations there; return it and the dtype to come back to."""
    trt = get_trt()
    if current_graph().policy.norm_fp32 and x.dtype in (trt.float16, trt.bfloat16):
        return cast(x, trt.float32), x.dtype
    return x, x.dtype


def scale_channels(x: Tensor, scale: np.ndarray | None, shift: np.ndarray | None, axis: int = 1) -> Tensor:
    """x * scale + shift per channel along `axis` (default 1: NCHW), one `IScaleLayer` with the coefficients
    inside it (no constant layers). `None` leaves that coefficient out: an eval-mode BatchNorm, a bias."""
    return _scale(x, "CHANNEL", scale, shift, axis)


def shift_elements(x: Tensor, shift: np.ndarray, axis: int = 1) -> Tensor:
    """x + shift, `shift` broadcast (in numpy) to `x.shape[axis:]`, as one `IScaleLayer` in ELEMENTWISE mode."""
    trail = x.shape[normalize_axis(axis, x.ndim) :]
    if any(d < 0 for d in trail):
        raise NetworkError(f"shift_elements of {x}: dims from axis {axis} on must be static")
    return _scale(x, "ELEMENTWISE", None, np.broadcast_to(shift, trail), axis)


def _scale(x: Tensor, mode: str, scale: np.ndarray | None, shift: np.ndarray | None, axis: int) -> Tensor:
    graph = current_graph()
    trt = get_trt()

    def weights(w: np.ndarray | None):
        return graph.no_weights(x.dtype) if w is None else graph.weights(np.ascontiguousarray(w).ravel(), x.dtype)

    layer = graph.network.add_scale_nd(
        x.itensor,
        getattr(trt.ScaleMode, mode),
        weights(shift),
        weights(scale),
        graph.no_weights(x.dtype),
        normalize_axis(axis, x.ndim),
    )
    return out(layer, "scale" if scale is not None else "bias")


def batch_norm(
    x: Tensor, mean: np.ndarray, var: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float
) -> Tensor:
    """Eval-mode `F.batch_norm` over axis 1, folded in float64 into one per-channel scale and shift."""
    scale = weight.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    shift = bias.astype(np.float64) - mean.astype(np.float64) * scale
    return scale_channels(x, scale.astype(np.float32), shift.astype(np.float32))


def layer_norm(
    x: Tensor, weight: np.ndarray | None, bias: np.ndarray | None, eps: float = 1e-5, axes: int | Sequence[int] = (-1,)
) -> Tensor:
    """`F.layer_norm` over `axes` (any of them: `axes=1` normalises the channels of an NCHW tensor, as timm's
    `LayerNorm2d` and ConvNeXt's channels-last LayerNorm after its permute do), as one `INormalizationLayer`.

    Over one axis (every transformer's and ConvNeXt's case) the normalization gets unit scale and zero shift
    constants shared by the whole network and the affine part follows as one `IScaleLayer` along that axis
    holding its weights: two layers per LayerNorm instead of three, which matters in a network of fifty.

    >>> y = ops.layer_norm(x, w, b, 1e-6, axes=1)      # x [N, C, H, W], w and b [C]   # doctest: +SKIP
    """
    graph = current_graph()
    y, back = _fp32_region(x)
    axes = tuple(sorted({normalize_axis(a, x.ndim) for a in ((axes,) if isinstance(axes, int) else axes)}))
    shape = tuple(x.shape[i] if i in axes else 1 for i in range(x.ndim))
    ones = np.ones(shape, np.float32)
    one_axis = len(axes) == 1
    if one_axis or weight is None:
        gamma = shared_constant(ones, y.dtype, op="unit_scale")
    else:
        gamma = constant(weight.reshape(shape), y.dtype, op="gamma")
    if one_axis or bias is None:
        beta = shared_constant(np.zeros_like(ones), y.dtype, op="zero_shift")
    else:
        beta = constant(bias.reshape(shape), y.dtype, op="beta")
    layer = graph.network.add_normalization(y.itensor, gamma.itensor, beta.itensor, axes_mask(axes, x.ndim))
    layer.epsilon = eps
    y = out(layer, "layer_norm")
    if one_axis and (weight is not None or bias is not None):
        y = scale_channels(y, weight, bias, axis=axes[0])
    return cast(y, back)


def layer_scale(x: Tensor, gamma: np.ndarray, axis: int = -1) -> Tensor:
    """x * gamma, `gamma` one value per position of `axis` (timm's `LayerScale`, ConvNeXt's `gamma`): one
    `IScaleLayer` holding it."""
    return scale_channels(x, gamma, None, axis=axis)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """`F.softmax(x, axis)`."""
    y, back = _fp32_region(x)
    layer = current_graph().network.add_softmax(y.itensor)
    layer.axes = axes_mask(axis, x.ndim)
    return cast(out(layer, "softmax"), back)
