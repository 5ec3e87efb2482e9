"""Window geometry shared by the windowed layers (convolution, pooling): padding and output sizes by the layer's
padding mode, every window of an input as a strided view, and inputs padded (and widened) in one pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trtnet.interpreter._common import LayerCall, dims, enum_name, pad_trailing


@dataclass(frozen=True)
class Window:
    """Per-spatial-dim geometry of a convolution or pooling window."""

    pre: tuple[int, ...]
    post: tuple[int, ...]
    out: tuple[int, ...]


def forward_window(
    call: LayerCall, sizes: tuple[int, ...], eff_kernel: tuple[int, ...], stride: tuple[int, ...]
) -> Window:
    """Padding and output size of a convolution/pooling, following the layer's padding mode."""
    mode = call.setting("padding_mode", lambda layer: enum_name(layer.padding_mode))
    n = len(sizes)
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        # Explicit paddings are ignored: pad so that out = ceil(in / stride); the odd pixel goes to the end
        # for SAME_UPPER and to the start for SAME_LOWER.
        out = tuple(-(-sizes[i] // stride[i]) for i in range(n))
        total = [max(0, (out[i] - 1) * stride[i] + eff_kernel[i] - sizes[i]) for i in range(n)]
        small = tuple(t // 2 for t in total)
        big = tuple(t - t // 2 for t in total)
        pre, post = (small, big) if mode == "SAME_UPPER" else (big, small)
        return Window(pre, post, out)
    pre, post = call.setting("padding", lambda layer: (dims(layer.pre_padding), dims(layer.post_padding)))
    if len(pre) != n or len(post) != n:
        raise call.fail(f"padding has {len(pre)}/{len(post)} dims for {n} spatial dims")
    span = [sizes[i] + pre[i] + post[i] - eff_kernel[i] for i in range(n)]
    if mode == "EXPLICIT_ROUND_UP":
        out = tuple(-(-span[i] // stride[i]) + 1 for i in range(n))
    elif mode == "EXPLICIT_ROUND_DOWN":
        out = tuple(span[i] // stride[i] + 1 for i in range(n))
    else:
        raise call.fail(f"unsupported padding mode {mode}")
    if min(out) < 0:
        raise call.fail(f"window {eff_kernel} does not fit input {sizes} padded by {pre}/{post}")
    return Window(pre, post, out)


def windows(
    x: np.ndarray,
    nsp: int,
    ksize: tuple[int, ...],
    step: tuple[int, ...],
    dilation: tuple[int, ...],
    out: tuple[int, ...],
) -> np.ndarray:
    """A strided view [..., *ksize, *out] of the trailing `nsp` dims of x: every window of every output (no copy)."""
    lead = x.shape[:-nsp]
    strides = x.strides[-nsp:]
    return np.lib.stride_tricks.as_strided(
        x,
        shape=lead + ksize + out,
        strides=x.strides[:-nsp]
        + tuple(s * d for s, d in zip(strides, dilation))
        + tuple(s * t for s, t in zip(strides, step)),
        writeable=False,
    )


def wide_padded(x: np.ndarray, pre: tuple[int, ...], post: tuple[int, ...]) -> np.ndarray:
    """x as float64 with its trailing dims zero-padded, in one pass (widening, then padding, would be two)."""
    return padded(x, pre, post, np.dtype(np.float64))


def padded(
    x: np.ndarray, pre: tuple[int, ...], post: tuple[int, ...], dtype: np.dtype, fill: float = 0.0
) -> np.ndarray:
    """x as `dtype` (which holds its values exactly) with its trailing dims padded with `fill`, in one pass: only
    the border is filled (np.pad costs 45 us a call more, on each of MobileNet's 17 depthwise convolutions)."""
    if min(pre + post, default=0) < 0:  # negative padding crops
        return pad_trailing(x.astype(dtype, copy=False), pre, post, fill)
    if not any(pre) and not any(post):  # most 1x1 convolutions: the widening is the only pass
        return x.astype(dtype, copy=False)
    n = len(pre)
    lead = x.shape[: x.ndim - n]
    sizes = x.shape[x.ndim - n :]
    out = np.empty(lead + tuple(sizes[i] + pre[i] + post[i] for i in range(n)), dtype)
    for i in range(n):
        before = (Ellipsis, slice(0, pre[i])) + (slice(None),) * (n - 1 - i)
        after = (Ellipsis, slice(pre[i] + sizes[i], None)) + (slice(None),) * (n - 1 - i)
        out[before] = fill
        out[after] = fill
    out[(Ellipsis,) + tuple(slice(pre[i], pre[i] + sizes[i]) for i in range(n))] = x
    return out


def live_taps(
    sizes: tuple[int, ...],
    pre: tuple[int, ...],
    out: tuple[int, ...],
    ksize: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[slice, ...] | None:
    """Per spatial dim, the span of kernel offsets whose windows read the input somewhere: an offset outside it
    reads padding only, for every output. None when the spans hold every offset (or some dim's hold none)."""
    spans = []
    for size, p, o, k, s, d in zip(sizes, pre, out, ksize, stride, dilation):
        live = [t for t in range(k) if _reads_input(t * d - p, o, s, size)]
        if not live:
            return None
        spans.append(slice(live[0], live[-1] + 1))
    return None if all(span.stop - span.start == k for span, k in zip(spans, ksize)) else tuple(spans)


def _reads_input(first: int, count: int, step: int, size: int) -> bool:
    """Whether some first + o * step, 0 <= o < count, lies in [0, size)."""
    o = max(0, -(first // step))  # the first o reaching 0
    return o < count and first + o * step < size
