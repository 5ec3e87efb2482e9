"""Windowed layers with weights: CONVOLUTION, DECONVOLUTION (POOLING is in pooling.py)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from trtnet.interpreter import winograd
from trtnet.interpreter._common import (
    BF16,
    LayerCall,
    cached_derived,
    compute,
    compute_dtype,
    dims,
    enum_name,
    pad_trailing,
    register,
    rounded,
    to_bfloat16,
    weights_array,
    wide,
)
from trtnet.interpreter.windows import forward_window, live_taps, padded, wide_padded, windows


def _kernel_and_bias(call: LayerCall, expected_kernel: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The kernel and bias, from the layer's weights or, when those are empty, from inputs 1 and 2."""
    layer = call.layer
    kernel = weights_array(layer.kernel, "kernel")
    if kernel.size == 0:
        kernel = call.input(1).reshape(-1)
    if kernel.size != expected_kernel:
        raise call.fail(f"kernel has {kernel.size} values, expected {expected_kernel}")
    bias = weights_array(layer.bias, "bias")
    if bias.size == 0:
        bias = call.optional(2)
    return compute(kernel), None if bias is None else compute(np.asarray(bias)).reshape(-1)


class _Geometry(NamedTuple):
    nsp: int  # spatial dims
    ksize: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    eff: tuple[int, ...]  # the dilated kernel's extent
    groups: int
    k_out: int
    c_in: int


def _read_geometry(layer: Any) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int, int]:
    return (
        dims(layer.kernel_size_nd),
        dims(layer.stride_nd),
        dims(layer.dilation_nd),
        int(layer.num_groups),
        int(layer.num_output_maps),
    )


def _geometry(call: LayerCall, x: np.ndarray) -> _Geometry:
    """What a (de)convolution layer's shapes say, checked against its input `x`."""
    ksize, stride, dilation, groups, k_out = call.setting("geometry", _read_geometry)
    nsp = len(ksize)
    if x.ndim < nsp + 1:
        raise call.fail(f"input rank {x.ndim} is too small for a {nsp}-D kernel")
    c_in = x.shape[-nsp - 1]
    if c_in % groups or k_out % groups:
        raise call.fail(f"{c_in} input / {k_out} output channels do not split into {groups} groups")
    return _Geometry(
        nsp, ksize, stride, dilation, tuple((k - 1) * d + 1 for k, d in zip(ksize, dilation)), groups, k_out, c_in
    )


# The unfolded input of a convolution is built a band of output rows at a time: about this many float64 values
# (4 MB, so that the copy is still in cache when BLAS reads it), but at least _MIN_POSITIONS output positions
# wide, below which the product itself slows down (both measured on ResNet/YOLO shapes: 10-45% faster than
# unfolding up to 128 MB at once).
_COLUMNS_BUDGET = 1 << 19
_MIN_POSITIONS = 2048
# Below this many output positions an image, a dense convolution's product is made transposed (`_grouped_gemm`).
_FEW_POSITIONS = 64


def _grouped_gemm(w: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """out[n, g] = w[g] @ cols[n, g]: w [G, M, K], cols [N, G, K, P], one BLAS call per image and group (a
    stacked product: RegNet's 55 groups at P = 49 ran at 22 GFLOP/s as a Python loop, 47 so).

    With one group and few positions, w is the kernel transposed, [K, M], and each image's product is made as
    cols^T @ w (a transposed view of out): measured 20-25% faster at P = 25 and 49 (Inception-v3's and
    ResNet-50's last stages), no faster from P = 64 on."""
    n, groups, _, p = cols.shape
    if groups == 1 and w.ndim == 2:
        out_t = np.empty((n, 1, p, w.shape[1]), np.float64)
        for i in range(n):
            np.matmul(cols[i, 0].T, w, out=out_t[i, 0])
        return out_t.swapaxes(2, 3)
    out = np.empty((n, groups, w.shape[1], p), np.float64)
    for i in range(n):
        np.matmul(w, cols[i], out=out[i])  # numpy's loop over the groups calls BLAS for each
    return out


@register("CONVOLUTION", "IConvolutionLayer")
def convolution(call: LayerCall) -> list[np.ndarray]:
    """N-D grouped, strided, dilated convolution; kernel [K, C/groups, *k], accumulated in float64.

    Dense and grouped convolutions unfold the input (im2col) into one float64 BLAS product per group;
    depthwise-like ones (a few input channels per group) sum the kernel taps elementwise instead; large dense 3x3
    ones of stride 1 run as Winograd's F(2x2, 3x3) (trtnet/interpreter/winograd.py).
    """
    src = call.input(0)
    nsp, ksize, stride, dilation, eff, groups, k_out, c_in = _geometry(call, src)
    kernel, bias = _kernel_and_bias(call, k_out * (c_in // groups) * math.prod(ksize))
    sizes = src.shape[-nsp:]
    win = forward_window(call, sizes, eff, stride)
    cg, kg = c_in // groups, k_out // groups
    pre, post = win.pre, win.post
    spans = live_taps(sizes, pre, win.out, ksize, stride, dilation)
    live = None if spans is None else _live_kernel(kernel, k_out, cg, ksize, spans)
    if live is not None:
        # Kernel offsets whose windows read only padding add zeros to every output (an ASPP's dilation 24 and 36
        # on a 14 x 14 map: 8 of 9 taps): the layer runs as the convolution by the others, its padding shifted.
        kernel = live
        pre = tuple(p - span.start * d for p, span, d in zip(pre, spans, dilation))
        ksize = tuple(span.stop - span.start for span in spans)
        eff = tuple((k - 1) * d + 1 for k, d in zip(ksize, dilation))
    # Pad far enough for the last window; round-up modes can read past the declared post padding (zeros). Trimmed
    # offsets pad (or crop) to just that: a 1 x 1 product reads the input as the output's own grid.
    need = tuple((win.out[i] - 1) * stride[i] + eff[i] - sizes[i] - pre[i] for i in range(nsp))
    end = need if live is not None else tuple(max(p, e) for p, e in zip(post, need))
    lead = src.shape[: -nsp - 1]
    tapwise = cg == 1 and groups > 1
    u = None
    if winograd.applies(ksize, stride, dilation, groups, c_in, k_out, win.out) and winograd.finite(src):
        u = winograd.transformed(kernel, k_out)
    if u is not None:
        end = winograd.padded_end(end, win.out, sizes, pre)
    if tapwise:
        # Depthwise-like paths widen their windows (or per-tap products) themselves, so the input is padded in
        # its own type: half the bytes to read.
        x = padded(src, pre, end, compute_dtype(src.dtype))
    else:
        x = wide_padded(src, pre, end)
    x = x.reshape((math.prod(lead), groups, cg) + x.shape[-nsp:])  # not -1: sizes may hold a 0
    n = x.shape[0]
    shape = (n, groups, kg) + win.out
    wide_bias = None if bias is None else wide(bias)
    output = Output(shape, src.dtype, None if wide_bias is None else wide_bias.reshape((groups, kg) + (1,) * nsp))
    if n * k_out * math.prod(win.out) == 0:
        pass  # nothing to compute
    elif u is not None:
        winograd.convolve(x, u, k_out, win.out, output.store, wide_bias)
    elif tapwise:
        output.store(
            (Ellipsis,),
            _tapwise(x, wide(kernel).reshape((groups, kg, cg) + ksize), nsp, ksize, stride, dilation, win.out),
        )
    else:
        wm = None
        if groups == 1 and math.prod(win.out) < _FEW_POSITIONS:
            wm = cached_derived(
                kernel, f"transposed/{k_out}", lambda w: np.ascontiguousarray(w.reshape(k_out, -1).T), False
            )
        if wm is None:
            wm = wide(kernel).reshape(groups, kg, -1)
        _unfolded(x, wm, nsp, ksize, stride, dilation, win.out, output.store)
    return [output.array.reshape(lead + (k_out,) + win.out)]


def _live_kernel(
    kernel: np.ndarray, k_out: int, cg: int, ksize: tuple[int, ...], spans: tuple[slice, ...]
) -> np.ndarray | None:
    """The kernel's taps within `spans`, flat; None where it holds an inf or NaN (times a padding zero: NaN)."""

    def trim(w: np.ndarray) -> np.ndarray:
        if not np.isfinite(w).all():
            return np.empty(0)
        return np.ascontiguousarray(w.reshape((k_out, cg) + ksize)[(Ellipsis,) + spans]).reshape(-1)

    made = cached_derived(kernel, f"live-taps/{k_out}x{cg}x{ksize}/{spans}", trim, False)  # one buffer, two shapes
    made = trim(kernel) if made is None else made  # a first run keeps no large kernel: trimmed in its own type
    return made if made.size else None


class Output:
    """A convolution's output [N, G, K/G, *out] in its own type. Its float64 results are stored a block at a time,
    each block given its bias and rounded into the output while it is still in cache: a float64 result of the
    whole layer, then a pass adding the bias and one rounding it, cost YOLOv5s's convolutions 27 ms a run."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, bias: np.ndarray | None) -> None:
        self.array = np.empty(shape, dtype)
        self._bias = None if bias is None else np.broadcast_to(bias, shape)  # a view: no copy

    def store(self, index: tuple, values: np.ndarray) -> None:
        """array[index] = values + bias, rounded once; `values` (float64, the caller's scratch) is changed."""
        if self._bias is not None:
            values += self._bias[index]
        self.array[index] = to_bfloat16(values) if self.array.dtype == BF16 else values


# Values of the output a depthwise convolution sums its taps into at a time: 1 MB, so its passes stay in cache.
_TAPWISE_BLOCK = 1 << 17
# Values of the unfolded windows of a plain depthwise convolution at a time (512 KB), measured best of 2^14..2^18.
_UNFOLD_BLOCK = 1 << 16


def _tapwise(
    x: np.ndarray,
    w: np.ndarray,
    nsp: int,
    ksize: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    out_size: tuple[int, ...],
) -> np.ndarray:
    """Depthwise-like convolution: one elementwise multiply-add per kernel tap and input channel of a group,
    a block of groups at a time."""
    n, groups, cg = x.shape[:3]
    kg = w.shape[1]
    out = np.zeros((n, groups, kg) + out_size, np.float64)
    view = windows(x, nsp, ksize, stride, dilation, out_size)  # [N, G, cg, *k, *out]
    if cg == 1 and kg == 1:
        # Plain depthwise: per block of channels, the windows unfolded in float64 [c, taps, P] and one stacked
        # product [c, 1, taps] @ [c, taps, P]: measured 1.5-2x faster than a multiply-add per tap (3x3) or
        # einsum over the window view (5x5), with the block sized to stay in cache.
        taps, positions = math.prod(ksize), math.prod(out_size)
        wm = w.reshape(groups, 1, taps)
        flat = out.reshape(n, groups, 1, positions)
        step = max(1, _UNFOLD_BLOCK // (taps * positions))
        for b in range(n):
            for g0 in range(0, groups, step):
                cols = view[b, g0 : g0 + step, 0].astype(np.float64, order="C").reshape(-1, taps, positions)
                np.matmul(wm[g0 : g0 + step], cols, out=flat[b, g0 : g0 + step])
        return out
    step = max(1, _TAPWISE_BLOCK // max(1, kg * math.prod(out_size)))
    offsets = list(itertools.product(*(range(k) for k in ksize)))
    for b in range(n):
        for g0 in range(0, groups, step):
            block = out[b, g0 : g0 + step]  # [g, kg, *out], a view
            tmp = np.empty_like(block)
            for offset in offsets:
                for c in range(cg):
                    patch = view[(b, slice(g0, g0 + step), slice(c, c + 1)) + offset]  # [g, 1, *out]
                    tap = w[(slice(g0, g0 + step), slice(None), c) + offset].reshape((block.shape[0], kg) + (1,) * nsp)
                    np.multiply(patch, tap, out=tmp)
                    block += tmp
    return out


def _unfolded(
    x: np.ndarray,
    wm: np.ndarray,
    nsp: int,
    ksize: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    out_size: tuple[int, ...],
    store: Callable[[tuple, np.ndarray], None],
) -> None:
    """im2col: the windows as columns [N, G, cg * prod(k), rows], then BLAS; a band of output rows at a time,
    each stored as it is made. wm: the kernel [G, K/G, cg * prod(k)], or transposed (see `_grouped_gemm`)."""
    n, groups, cg = x.shape[:3]
    kg = wm.shape[-1] if wm.ndim == 2 else wm.shape[1]
    taps = cg * math.prod(ksize)
    if all(k == 1 for k in ksize) and all(s == 1 for s in stride) and x.shape[3:] == out_size:
        cols = x.reshape(n, groups, taps, -1)  # a 1x1 convolution is the product itself
        store((Ellipsis,), _grouped_gemm(wm, cols).reshape((n, groups, kg) + out_size))
        return
    inner = math.prod(out_size[1:])
    band = max(
        1,
        min(
            out_size[0], max(_COLUMNS_BUDGET // max(1, n * groups * taps * inner), -(-_MIN_POSITIONS // max(1, inner)))
        ),
    )
    for r0 in range(0, out_size[0], band):
        rows = min(band, out_size[0] - r0)
        part = x[(slice(None),) * 3 + (slice(r0 * stride[0], None),)]
        view = windows(part, nsp, ksize, stride, dilation, (rows,) + out_size[1:])
        cols = view.reshape(n, groups, taps, rows * inner)  # the copy: im2col
        res = _grouped_gemm(wm, cols)
        store((slice(None),) * 3 + (slice(r0, r0 + rows),), res.reshape((n, groups, kg, rows) + out_size[1:]))


@register("DECONVOLUTION", "IDeconvolutionLayer")
def deconvolution(call: LayerCall) -> list[np.ndarray]:
    """Transposed convolution; kernel [C, K/groups, *k] (PyTorch's ConvTranspose layout), in float64.

    One BLAS product per group gives every input pixel's kernel-weighted contribution (col2im's columns); each
    kernel tap then scatter-adds its plane into a full output of size (in-1)*stride + eff_kernel, which is
    cropped by the padding (SAME modes crop as the adjoint of the matching forward convolution).
    """
    src = call.input(0)
    layer = call.layer
    nsp, ksize, stride, dilation, eff, groups, k_out, c_in = _geometry(call, src)
    kernel, bias = _kernel_and_bias(call, c_in * (k_out // groups) * math.prod(ksize))
    sizes = src.shape[-nsp:]
    full = tuple((sizes[i] - 1) * stride[i] + eff[i] for i in range(nsp))
    mode = enum_name(layer.padding_mode)
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        # Crop towards out = in * stride; when the kernel is narrower than the stride TensorRT keeps the
        # whole (in - 1) * stride + kernel output instead of padding it.
        total = [max(0, full[i] - sizes[i] * stride[i]) for i in range(nsp)]
        small = tuple(t // 2 for t in total)
        big = tuple(t - t // 2 for t in total)
        pre, post = (small, big) if mode == "SAME_UPPER" else (big, small)
    else:
        pre, post = dims(layer.pre_padding), dims(layer.post_padding)
    lead = src.shape[: -nsp - 1]
    cg, kg = c_in // groups, k_out // groups
    x = wide(src).reshape((math.prod(lead), groups, cg, math.prod(sizes)))  # not -1: sizes may hold a 0
    n = x.shape[0]
    # [G, cg, kg * prod(k)] -> [G, kg * prod(k), cg]: each tap's weights against the input channels.
    wt = np.ascontiguousarray(np.swapaxes(wide(kernel).reshape(groups, cg, kg * math.prod(ksize)), 1, 2))
    contrib = _grouped_gemm(wt, np.ascontiguousarray(x)).reshape((n, groups, kg) + ksize + sizes)
    out = np.zeros((n, groups, kg) + full, np.float64)
    for offset in itertools.product(*(range(k) for k in ksize)):
        window = tuple(
            slice(offset[i] * dilation[i], offset[i] * dilation[i] + (sizes[i] - 1) * stride[i] + 1, stride[i])
            for i in range(nsp)
        )
        out[(slice(None), slice(None), slice(None)) + window] += contrib[(slice(None),) * 3 + offset]
    # Cropping by the padding is padding by its negative.
    out = pad_trailing(out, tuple(-p for p in pre), tuple(-p for p in post), 0.0)
    out = out.reshape(lead + (k_out,) + out.shape[-nsp:])
    if bias is not None:
        out = out + wide(bias).reshape((k_out,) + (1,) * nsp)
    return [rounded(out, src.dtype)]
