"""NORMALIZATION: LayerNorm, InstanceNorm and GroupNorm as TensorRT's INormalizationLayer computes them."""

from __future__ import annotations

import numpy as np

from trtnet.interpreter._common import LayerCall, axes_from_mask, register, rounded, wide


def _affine(call: LayerCall, p: np.ndarray, channels: int, groups: int, rank: int) -> np.ndarray:
    """Scale/bias ready to broadcast: per channel, or (legacy add_normalization GroupNorm) per group."""
    p = wide(p)
    if p.ndim != rank:
        raise call.fail(f"scale/bias rank {p.ndim} differs from input rank {rank}")
    if groups > 1 and p.shape[1] == groups and groups != channels:
        # add_normalization (v1) takes GroupNorm scale/bias as [1, G, 1, ...]: one value per group.
        p = np.repeat(p, channels // groups, axis=1)
    return p


@register("NORMALIZATION", "INormalizationLayer")
def normalization(call: LayerCall) -> list[np.ndarray]:
    """(x - mean) / sqrt(var + epsilon) * scale + bias over the `axes` bitmask.

    With num_groups G > 1 the channel dim (1) is split into G groups, and each group's channels are
    normalised together with the masked axes (GroupNorm); G = 1 is LayerNorm/InstanceNorm by the mask.
    """
    src, scale, bias = call.input(0), call.input(1), call.input(2)
    x = wide(src)
    mask, groups, eps = call.setting(
        "norm", lambda layer: (int(layer.axes), int(layer.num_groups), float(layer.epsilon))
    )
    axes = axes_from_mask(mask, x.ndim)
    if not axes:
        raise call.fail("normalization axes bitmask is empty")
    if groups > 1:
        if x.ndim < 2 or x.shape[1] % groups:
            raise call.fail(f"{groups} groups do not split channel dim of shape {x.shape}")
        channels = x.shape[1]
        grouped = x.reshape((x.shape[0], groups, channels // groups) + x.shape[2:])
        # Axis a >= 2 of x is axis a + 1 of the grouped view; axis 2 there is the channels of one group.
        red = tuple(sorted({2} | {a + 1 for a in axes if a >= 2} | {a for a in axes if a == 0}))
        mean = grouped.mean(axis=red, keepdims=True)
        var = ((grouped - mean) ** 2).mean(axis=red, keepdims=True)
        y = ((grouped - mean) / np.sqrt(var + eps)).reshape(x.shape)
    else:
        channels = x.shape[1] if x.ndim > 1 else 1
        # The same arithmetic as the grouped branch, in place in one fresh array: fewer passes over the tensor.
        y = x - x.mean(axis=axes, keepdims=True)
        var = np.square(y).mean(axis=axes, keepdims=True)
        y /= np.sqrt(var + eps)
        mul, add = _affine(call, scale, channels, groups, x.ndim), _affine(call, bias, channels, groups, x.ndim)
        if src.dtype in (np.float32, np.float16) and np.broadcast_shapes(y.shape, mul.shape, add.shape) == y.shape:
            # * scale + bias in float64, rounded once straight into the output.
            y *= mul
            out = np.empty(y.shape, src.dtype)
            np.add(y, add, out=out, casting="same_kind")
            return [out]
        return [rounded(y * mul + add, src.dtype)]
    y = y * _affine(call, scale, channels, groups, x.ndim) + _affine(call, bias, channels, groups, x.ndim)
    return [rounded(y, src.dtype)]
