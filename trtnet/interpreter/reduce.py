"""Layers that reduce or rank along axes: REDUCE, SOFTMAX, TOPK, CUMULATIVE."""

from __future__ import annotations

import numpy as np

from trtnet.interpreter._common import (
    LayerCall,
    axes_from_mask,
    compute,
    enum_name,
    is_float,
    normalize_axis,
    np_dtype,
    register,
    rounded,
    scalar_int,
    wide,
)
from trtnet.interpreter.special import exp_in_place


@register("REDUCE", "IReduceLayer")
def reduce(call: LayerCall) -> list[np.ndarray]:
    """SUM, PROD, MAX, MIN or AVG over the axes bitmask, keeping the reduced dims as 1 with keep_dims."""
    src = call.input(0)
    op, mask, keep = call.setting("reduce", lambda layer: (enum_name(layer.op), int(layer.axes), bool(layer.keep_dims)))
    # Sums, products and means accumulate in float64; a maximum or minimum is exact in the input's own type.
    x = compute(src) if op in ("MAX", "MIN") else wide(src)
    axes = axes_from_mask(mask, x.ndim)
    # Integer sums stay in the input's type (numpy would widen int32 to int64).
    acc = None if is_float(x.dtype) else x.dtype
    if op == "SUM":
        r = np.sum(x, axis=axes, keepdims=keep, dtype=acc)
    elif op == "PROD":
        r = np.prod(x, axis=axes, keepdims=keep, dtype=acc)
    elif op in ("MAX", "MIN"):
        if x.size == 0:
            raise call.fail(f"{op} reduction of an empty tensor has no value")
        r = (np.max if op == "MAX" else np.min)(x, axis=axes, keepdims=keep)
    elif op == "AVG":
        r = np.mean(x, axis=axes, keepdims=keep)
        if acc is not None:
            r = np.trunc(r)
    else:
        raise call.fail(f"unsupported reduce operation {op}")
    return [rounded(np.asarray(r), src.dtype)]


def softmax_over(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Numerically stable softmax of `x` over `axes`, computed in float64 (x widened, then shifted by its maximum,
    which is exact in x's own type: one array is written, then updated in place). An empty x has an empty result."""
    x = compute(x)
    if x.size == 0:  # no row to normalise (np.max refuses an empty axis)
        return np.empty(x.shape, np.float64)
    peak = np.max(x, axis=axes, keepdims=True)
    # Two passes, not one subtract that widens as it broadcasts: numpy runs that as a buffered loop, twice the time
    # (GPT-2's 12 x 128 x 128: 0.25 ms against 0.13); the same values either way.
    e = x.astype(np.float64)
    e -= peak
    # Only a spread past 745 can leave a shifted input whose exp underflows (a mask's -inf or float32 min).
    exp_in_place(e, float(np.max(peak)) - float(np.min(x)) > 745.0)
    e /= np.sum(e, axis=axes, keepdims=True)
    return e


@register("SOFTMAX", "ISoftMaxLayer")
def softmax(call: LayerCall) -> list[np.ndarray]:
    """Softmax over the axis named by the `axes` bitmask (exactly one bit)."""
    src = call.input(0)
    mask = call.setting("axes", lambda layer: int(layer.axes))
    axes = axes_from_mask(mask, src.ndim)
    if len(axes) != 1:
        raise call.fail(f"softmax axes bitmask {mask:#b} must name exactly one axis of {src.ndim}")
    return [rounded(softmax_over(src, axes), src.dtype)]


@register("TOPK", "ITopKLayer")
def topk(call: LayerCall) -> list[np.ndarray]:
    """The k largest (MAX) or smallest (MIN) values along one axis, and their indices; ties keep index order."""
    src = call.input(0)
    layer = call.layer
    axes = axes_from_mask(layer.axes, src.ndim)
    if len(axes) != 1:
        raise call.fail(f"topk axes bitmask {int(layer.axes):#b} must name exactly one axis")
    axis = axes[0]
    k_in = call.optional(1)
    k = scalar_int(call, k_in, "k input") if k_in is not None else int(layer.k)
    if not 0 <= k <= src.shape[axis]:
        raise call.fail(f"k={k} exceeds axis {axis} of shape {src.shape}")
    key = compute(src)
    # Integers rank as themselves (int64 values past 2^53 are not all distinct in float64), largest first as ~x:
    # -x overflows at the type's least value, ~x = -x - 1 does not and keeps the order (and ties) reversed.
    key = key.astype(np.float64) if is_float(key.dtype) else key
    if enum_name(layer.op) == "MAX":
        key = -key if is_float(key.dtype) else np.invert(key)
    elif enum_name(layer.op) != "MIN":
        raise call.fail(f"unsupported topk operation {enum_name(layer.op)}")
    order = np.argsort(key, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    values = np.take_along_axis(src, idx, axis=axis)
    return [values, idx.astype(np_dtype(layer.indices_type))]


@register("CUMULATIVE", "ICumulativeLayer")
def cumulative(call: LayerCall) -> list[np.ndarray]:
    """Cumulative SUM along the axis given by input 1, optionally exclusive and/or reversed."""
    src = call.input(0)
    layer = call.layer
    axis = normalize_axis(scalar_int(call, call.input(1), "axis input"), src.ndim)
    if enum_name(layer.op) != "SUM":
        raise call.fail(f"unsupported cumulative operation {enum_name(layer.op)}")
    x = wide(src)
    if layer.reverse:
        x = np.flip(x, axis=axis)
    r = np.cumsum(x, axis=axis, dtype=None if is_float(x.dtype) else x.dtype)
    if layer.exclusive:  # the inclusive sums moved one along, not r - x (which an inf, a NaN or a huge x spoils)
        moved = np.zeros_like(np.moveaxis(r, axis, -1))
        moved[..., 1:] = np.moveaxis(r, axis, -1)[..., :-1]
        r = np.moveaxis(moved, -1, axis)
    if layer.reverse:
        r = np.flip(r, axis=axis)
    return [rounded(r, src.dtype)]
