"""POOLING: max, average and their blend over windows, with the convolutions' padding rules."""

from __future__ import annotations

import itertools

import numpy as np

from trtnet.interpreter._common import LayerCall, compute, dims, enum_name, pad_trailing, register, rounded, wide
from trtnet.interpreter.conv import forward_window, wide_padded


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
    kind = enum_name(layer.type)  # once downcast, IPoolingLayer.type is the PoolingType
    ksize, stride = dims(layer.window_size_nd), dims(layer.stride_nd)
    nsp = len(ksize)
    sizes = src.shape[-nsp:]
    win = forward_window(call, sizes, ksize, stride)
    end = tuple(max(win.post[i], (win.out[i] - 1) * stride[i] + ksize[i] - sizes[i] - win.pre[i]) for i in range(nsp))
    if kind not in ("MAX", "AVERAGE", "MAX_AVERAGE_BLEND"):
        raise call.fail(f"unsupported pooling type {kind}")
    lead = src.shape[:-nsp]
    windows = [
        (Ellipsis,) + tuple(slice(o[i], o[i] + (win.out[i] - 1) * stride[i] + 1, stride[i]) for i in range(nsp))
        for o in itertools.product(*(range(k) for k in ksize))
    ]
    best: np.ndarray | None = None
    avg: np.ndarray | None = None
    if kind != "AVERAGE":
        # A maximum is exact in the input's own type; padding reads as -inf, so it never wins.
        padded = pad_trailing(compute(src), win.pre, end, -np.inf)
        best = np.full(lead + win.out, -np.inf, padded.dtype)
        for window in windows:
            np.maximum(best, padded[window], out=best)
    if kind != "MAX":
        padded = wide_padded(src, win.pre, end)  # padding adds nothing to a float64 sum
        total = np.zeros(lead + win.out, np.float64)
        for window in windows:
            total += padded[window]
        excl = bool(layer.average_count_excludes_padding)
        count = np.ones(win.out, np.float64)
        for i in range(nsp):
            real, incl = _window_counts(sizes[i], win.out[i], ksize[i], stride[i], win.pre[i], win.post[i])
            per_dim = (real if excl else incl).astype(np.float64)
            count = count * per_dim.reshape((-1,) + (1,) * (nsp - i - 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            avg = total / count
    if kind == "MAX":
        r = best
    elif kind == "AVERAGE":
        r = avg
    else:
        blend = float(layer.blend_factor)
        r = blend * wide(best) + (1 - blend) * avg
    return [rounded(r, src.dtype)]
