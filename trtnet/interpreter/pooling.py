"""POOLING: max, average and their blend over windows, with the convolutions' padding rules."""

from __future__ import annotations

import numpy as np

from trtnet.interpreter._common import (
    LayerCall,
    compute_dtype,
    dims,
    enum_name,
    is_float,
    register,
    rounded,
    wide,
)
from trtnet.interpreter.windows import forward_window
from trtnet.interpreter.windows import padded as padded_as


def _window_counts(size: int, out: int, k: int, stride: int, pre: int, post: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output position: elements of the window inside the input, and inside input + explicit padding."""
    start = np.arange(out) * stride - pre
    end = start + k
    real = np.minimum(end, size) - np.maximum(start, 0)
    padded = np.minimum(end, size + post) - np.maximum(start, -pre)
    return np.maximum(real, 0), np.maximum(padded, 0)


@register("POOLING", "IPoolingLayer")
def pooling(call: LayerCall) -> list[np.ndarray]:
    """MAX, AVERAGE and MAX_AVERAGE_BLEND pooling over the trailing dims.

    Averages divide by the window's elements inside the input (average_count_excludes_padding) or inside
    input + explicit padding; positions a round-up (ceil) window reaches beyond the padding never count.
    """
    src = call.input(0)
    layer = call.layer
    # Once downcast, IPoolingLayer.type is the PoolingType.
    kind, ksize, stride = call.setting(
        "window", lambda layer: (enum_name(layer.type), dims(layer.window_size_nd), dims(layer.stride_nd))
    )
    nsp = len(ksize)
    sizes = src.shape[-nsp:]
    win = forward_window(call, sizes, ksize, stride)
    end = tuple(max(win.post[i], (win.out[i] - 1) * stride[i] + ksize[i] - sizes[i] - win.pre[i]) for i in range(nsp))
    if kind not in ("MAX", "AVERAGE", "MAX_AVERAGE_BLEND"):
        raise call.fail(f"unsupported pooling type {kind}")
    best: np.ndarray | None = None
    avg: np.ndarray | None = None
    if kind != "AVERAGE":
        # A maximum is exact in the input's own type; padding reads as -inf (an integer type's least value), so it
        # never wins.
        dtype = compute_dtype(src.dtype)
        low = -np.inf if is_float(dtype) else np.iinfo(dtype).min
        padded = padded_as(src, win.pre, end, dtype, low)
        best = _separable(padded, ksize, stride, win.out, np.maximum, padded.dtype)
    if kind != "MAX":
        # Padding adds nothing to a sum; the first pass widens as it adds, so every sum is a float64 one.
        padded = padded_as(src, win.pre, end, compute_dtype(src.dtype))
        total = _separable(padded, ksize, stride, win.out, np.add, np.dtype(np.float64))
        excl = bool(layer.average_count_excludes_padding)
        count = np.ones(win.out, np.float64)
        for i in range(nsp):
            real, incl = _window_counts(sizes[i], win.out[i], ksize[i], stride[i], win.pre[i], win.post[i])
            per_dim = (real if excl else incl).astype(np.float64)
            count = count * per_dim.reshape((-1,) + (1,) * (nsp - i - 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            avg = np.divide(total, count, out=total)
    if kind == "MAX":
        r = best
    elif kind == "AVERAGE":
        r = avg
    else:
        blend = float(layer.blend_factor)
        r = blend * wide(best) + (1 - blend) * avg
    return [rounded(r, src.dtype)]


def _separable(
    x: np.ndarray,
    ksize: tuple[int, ...],
    stride: tuple[int, ...],
    out: tuple[int, ...],
    op: np.ufunc,
    dtype: np.dtype,
) -> np.ndarray:
    """op (maximum or add) over every window of the trailing dims of x (padded far enough), a dim at a time: a
    k x k window then takes 2k - 2 passes instead of k^2 - 1 (Inception-v3's pools: 12.3 ms a run to 7.1,
    YOLOv5s's 5x5 max pools 3.7 to 1.3, ResNet-50's 1.7 to 0.9). A maximum is the same in any order; a sum of
    float32 values in float64 is still rounded only where a float64 sum of them would be, and once more at the end."""
    nsp = len(ksize)
    if 0 in out:  # a window that fits nowhere: the taps' slices would not agree on an empty length
        return np.empty(x.shape[: x.ndim - nsp] + out, dtype)
    for i in range(nsp):
        lead = (slice(None),) * (x.ndim - nsp + i)
        taps = [x[lead + (slice(o, o + (out[i] - 1) * stride[i] + 1, stride[i]),)] for o in range(ksize[i])]
        acc = taps[0].astype(dtype)  # a copy: the other taps are added into it
        for window in taps[1:]:
            op(acc, window, out=acc)
        x = acc
    return x
