"""Windowed layers: CONVOLUTION, DECONVOLUTION, POOLING."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from trtnet.interpreter._common import (
    LayerCall,
    compute,
    dims,
    pad_trailing,
    register,
    rounded,
    weights_array,
)


@dataclass(frozen=True)
class Window:
    """Per-spatial-dim geometry of a convolution or pooling window."""

    pre: tuple[int, ...]
    post: tuple[int, ...]
    out: tuple[int, ...]


def _forward_window(
    call: LayerCall, sizes: tuple[int, ...], eff_kernel: tuple[int, ...], stride: tuple[int, ...]
) -> Window:
    """Padding and output size of a convolution/pooling, following the layer's padding mode."""
    layer = call.layer
    mode = layer.padding_mode.name
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
    pre, post = dims(layer.pre_padding), dims(layer.post_padding)
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


def _geometry(call: LayerCall, x: np.ndarray) -> _Geometry:
    """What a (de)convolution layer's shapes say, checked against its input `x`."""
    layer = call.layer
    ksize = dims(layer.kernel_size_nd)
    nsp = len(ksize)
    if x.ndim < nsp + 1:
        raise call.fail(f"input rank {x.ndim} is too small for a {nsp}-D kernel")
    stride, dilation = dims(layer.stride_nd), dims(layer.dilation_nd)
    groups, k_out = int(layer.num_groups), int(layer.num_output_maps)
    c_in = x.shape[-nsp - 1]
    if c_in % groups or k_out % groups:
        raise call.fail(f"{c_in} input / {k_out} output channels do not split into {groups} groups")
    return _Geometry(nsp, ksize, stride, dilation, tuple((k - 1) * d + 1 for k, d in zip(ksize, dilation)),
                     groups, k_out, c_in)


@register("CONVOLUTION", "IConvolutionLayer")
def convolution(call: LayerCall) -> list[np.ndarray]:
    """N-D grouped, strided, dilated convolution; kernel [K, C/groups, *k], accumulating in float32."""
    src = call.input(0)
    nsp, ksize, stride, dilation, eff, groups, k_out, c_in = _geometry(call, src)
    kernel, bias = _kernel_and_bias(call, k_out * (c_in // groups) * math.prod(ksize))
    sizes = src.shape[-nsp:]
    win = _forward_window(call, sizes, eff, stride)
    # Pad far enough for the last window; round-up modes can read past the declared post padding (zeros).
    end = tuple(max(win.post[i], (win.out[i] - 1) * stride[i] + eff[i] - sizes[i] - win.pre[i]) for i in range(nsp))
    x = pad_trailing(compute(src), win.pre, end, 0.0)
    lead = src.shape[: -nsp - 1]
    x = x.reshape((-1, groups, c_in // groups) + x.shape[-nsp:])
    w = kernel.reshape((groups, k_out // groups, c_in // groups) + ksize)
    out = np.zeros((x.shape[0], groups, k_out // groups) + win.out, np.float32)
    for offset in itertools.product(*(range(k) for k in ksize)) if out.size else ():
        window = tuple(
            slice(offset[i] * dilation[i], offset[i] * dilation[i] + (win.out[i] - 1) * stride[i] + 1, stride[i])
            for i in range(nsp)
        )
        patch = x[(slice(None), slice(None), slice(None)) + window]
        out += np.einsum("ngc...,gkc->ngk...", patch, w[(slice(None), slice(None), slice(None)) + offset])
    out = out.reshape(lead + (k_out,) + win.out)
    if bias is not None:
        out = out + bias.reshape((k_out,) + (1,) * nsp)
    return [rounded(out, src.dtype)]


@register("DECONVOLUTION", "IDeconvolutionLayer")
def deconvolution(call: LayerCall) -> list[np.ndarray]:
    """Transposed convolution; kernel [C, K/groups, *k] (PyTorch's ConvTranspose layout).

    Each input pixel scatters kernel * value into a full output of size (in-1)*stride + eff_kernel, which is
    then cropped by the padding (SAME modes crop as the adjoint of the matching forward convolution).
    """
    src = call.input(0)
    layer = call.layer
    nsp, ksize, stride, dilation, eff, groups, k_out, c_in = _geometry(call, src)
    kernel, bias = _kernel_and_bias(call, c_in * (k_out // groups) * math.prod(ksize))
    sizes = src.shape[-nsp:]
    full = tuple((sizes[i] - 1) * stride[i] + eff[i] for i in range(nsp))
    mode = layer.padding_mode.name
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
    x = compute(src).reshape((-1, groups, c_in // groups) + sizes)
    w = kernel.reshape((groups, c_in // groups, k_out // groups) + ksize)
    out = np.zeros((x.shape[0], groups, k_out // groups) + full, np.float32)
    for offset in itertools.product(*(range(k) for k in ksize)):
        window = tuple(
            slice(offset[i] * dilation[i], offset[i] * dilation[i] + (sizes[i] - 1) * stride[i] + 1, stride[i])
            for i in range(nsp)
        )
        contrib = np.einsum("ngc...,gck->ngk...", x, w[(slice(None), slice(None), slice(None)) + offset])
        out[(slice(None), slice(None), slice(None)) + window] += contrib
    # Cropping by the padding is padding by its negative.
    out = pad_trailing(out, tuple(-p for p in pre), tuple(-p for p in post), 0.0)
    out = out.reshape(lead + (k_out,) + out.shape[-nsp:])
    if bias is not None:
        out = out + bias.reshape((k_out,) + (1,) * nsp)
    return [rounded(out, src.dtype)]


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
    kind = layer.type.name  # once downcast, IPoolingLayer.type is the PoolingType
    ksize, stride = dims(layer.window_size_nd), dims(layer.stride_nd)
    nsp = len(ksize)
    sizes = src.shape[-nsp:]
    win = _forward_window(call, sizes, ksize, stride)
    end = tuple(max(win.post[i], (win.out[i] - 1) * stride[i] + ksize[i] - sizes[i] - win.pre[i]) for i in range(nsp))
    x = compute(src)
    lead = x.shape[:-nsp]
    # Padding reads as -inf for MAX and 0 for sums, so it never wins a max and adds nothing.
    padded_max = pad_trailing(x, win.pre, end, -np.inf)
    padded_sum = pad_trailing(x, win.pre, end, 0.0)
    best = np.full(lead + win.out, -np.inf, np.float32)
    total = np.zeros(lead + win.out, np.float32)
    for offset in itertools.product(*(range(k) for k in ksize)):
        window = (Ellipsis,) + tuple(
            slice(offset[i], offset[i] + (win.out[i] - 1) * stride[i] + 1, stride[i]) for i in range(nsp)
        )
        best = np.maximum(best, padded_max[window])
        total += padded_sum[window]
    excl = bool(layer.average_count_excludes_padding)
    count = np.ones(win.out, np.float32)
    for i in range(nsp):
        real, incl = _window_counts(sizes[i], win.out[i], ksize[i], stride[i], win.pre[i], win.post[i])
        per_dim = (real if excl else incl).astype(np.float32)
        count = count * per_dim.reshape((-1,) + (1,) * (nsp - i - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = total / count
    if kind == "MAX":
        r = best
    elif kind == "AVERAGE":
        r = avg
    elif kind == "MAX_AVERAGE_BLEND":
        blend = float(layer.blend_factor)
        r = blend * best + (1 - blend) * avg
    else:
        raise call.fail(f"unsupported pooling type {kind}")
    return [rounded(r, src.dtype)]
