"""RESIZE: nearest, (multi)linear and cubic resampling, applied one axis at a time; GRID_SAMPLE."""

from __future__ import annotations

import numpy as np

from trtnet.interpreter._common import (
    LayerCall,
    compute,
    dims,
    enum_name,
    int_vector,
    is_float,
    register,
    rounded,
    wide,
)


def _targets(call: LayerCall, x: np.ndarray) -> tuple[tuple[int, ...], list[float | None]]:
    """Output shape, and per axis the user's scale (None when the output shape was given instead)."""
    layer = call.layer
    given = call.optional(1)
    if given is not None:
        arr = np.asarray(given)
        if is_float(arr.dtype):
            scales = [float(s) for s in compute(arr).reshape(-1)]
        else:
            shape = int_vector(call, arr, "output shape input")
            return shape, [None] * len(shape)
    elif layer.shape is not None and len(layer.scales) == 0:
        shape = dims(layer.shape)
        return shape, [None] * len(shape)
    else:
        scales = [float(s) for s in layer.scales]
    if len(scales) != x.ndim:
        raise call.fail(f"{len(scales)} scales for an input of rank {x.ndim}")
    # Output size is floor(in * scale) in float32 arithmetic, as TensorRT infers it: in float64, 10 x 0.7f is
    # 6.99999988, where float32's product rounds to 7.
    shape = tuple(int(np.floor(np.float32(n) * np.float32(s))) for n, s in zip(x.shape, scales))
    return shape, list(scales)


def _source_coords(call: LayerCall, n_in: int, n_out: int, scale: float | None) -> np.ndarray:
    """Where each output position samples the input, per the coordinate transformation."""
    layer = call.layer
    out = np.arange(n_out, dtype=np.float64)
    s = scale if scale is not None else n_out / n_in
    mode = enum_name(layer.coordinate_transformation)
    if n_out == 1 and enum_name(layer.selector_for_single_pixel) == "UPPER":
        return np.zeros(1)
    if mode == "ALIGN_CORNERS":
        return out * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    if mode == "ASYMMETRIC":
        return out / s
    if mode == "HALF_PIXEL":
        return (out + 0.5) / s - 0.5
    raise call.fail(f"unsupported coordinate transformation {mode}")


def _nearest(call: LayerCall, coords: np.ndarray, n_in: int) -> np.ndarray:
    rounding = enum_name(call.layer.nearest_rounding)
    if rounding == "HALF_UP":
        idx = np.floor(coords + 0.5)
    elif rounding == "HALF_DOWN":
        idx = np.ceil(coords - 0.5)
    elif rounding == "FLOOR":
        idx = np.floor(coords)
    elif rounding == "CEIL":
        idx = np.ceil(coords)
    else:
        raise call.fail(f"unsupported nearest rounding {rounding}")
    return np.clip(idx, 0, n_in - 1).astype(np.int64)


def _linear(x: np.ndarray, axis: int, coords: np.ndarray) -> np.ndarray:
    n_in = x.shape[axis]
    c = np.clip(coords, 0, n_in - 1)
    lo = np.floor(c).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    w = (c - lo).reshape((-1,) + (1,) * (x.ndim - axis - 1))
    return np.take(x, lo, axis=axis) * (1 - w) + np.take(x, hi, axis=axis) * w


def _cubic(call: LayerCall, x: np.ndarray, axis: int, coords: np.ndarray) -> np.ndarray:
    """Keys cubic convolution with coefficient A over the 4 neighbours; edges replicate, or with
    exclude_outside the out-of-range neighbours get weight 0 and the rest are renormalised."""
    a = float(call.layer.cubic_coeff)
    n_in = x.shape[axis]
    base = np.floor(coords)
    t = coords - base
    # Distances of the 4 taps (base-1 .. base+2) from the sample point.
    dist = np.abs(np.stack([t + 1, t, 1 - t, 2 - t], axis=1))
    w = np.where(
        dist <= 1,
        ((a + 2) * dist - (a + 3)) * dist * dist + 1,
        np.where(dist < 2, ((a * dist - 5 * a) * dist + 8 * a) * dist - 4 * a, 0.0),
    )
    taps = base[:, None].astype(np.int64) + np.arange(-1, 3)
    if bool(call.layer.exclude_outside):
        w = np.where((taps >= 0) & (taps < n_in), w, 0.0)
        w = w / w.sum(axis=1, keepdims=True)
    taps = np.clip(taps, 0, n_in - 1)
    out = 0
    for k in range(4):
        wk = w[:, k].reshape((-1,) + (1,) * (x.ndim - axis - 1))
        out = out + np.take(x, taps[:, k], axis=axis) * wk
    return out


@register("RESIZE", "IResizeLayer")
def resize(call: LayerCall) -> list[np.ndarray]:
    """Resize to a shape or by scales (attributes or input 1), axis by axis."""
    src = call.input(0)
    layer = call.layer
    shape, scales = _targets(call, src)
    if len(shape) != src.ndim:
        raise call.fail(f"output shape {shape} has a different rank from the input {src.shape}")
    mode = enum_name(layer.resize_mode)
    x = src if mode == "NEAREST" else wide(src)
    for axis, (n_in, n_out) in enumerate(zip(src.shape, shape)):
        if n_in == n_out and scales[axis] in (None, 1.0):
            continue
        coords = _source_coords(call, n_in, n_out, scales[axis])
        if mode == "NEAREST":
            x = np.take(x, _nearest(call, coords, n_in), axis=axis)
        elif mode == "LINEAR":
            x = _linear(x, axis, coords)
        elif mode == "CUBIC":
            x = _cubic(call, x, axis, coords)
        else:
            raise call.fail(f"unsupported resize mode {mode}")
    return [rounded(x, src.dtype)]


def _grid_coords(coord: np.ndarray, size: int, align: bool, mode: str) -> np.ndarray:
    """Grid values in [-1, 1] as pixel coordinates, with CLAMP (border) and REFLECT padding applied."""
    pix = (coord + 1) / 2 * (size - 1) if align else ((coord + 1) * size - 1) / 2
    if mode == "CLAMP":
        return np.clip(pix, 0, size - 1)
    if mode == "REFLECT":
        # Reflect about the edge pixels' centres (align_corners) or about their outer edges.
        lo, hi = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
        span = hi - lo
        if span <= 0:
            return np.zeros_like(pix)
        m = np.mod(pix - lo, 2 * span)
        return np.clip(lo + np.where(m > span, 2 * span - m, m), 0, size - 1)
    return pix


@register("GRID_SAMPLE", "IGridSampleLayer")
def grid_sample(call: LayerCall) -> list[np.ndarray]:
    """Samples x [N, C, H, W] at grid [N, Ho, Wo, 2] ((x, y) in [-1, 1]), NEAREST or LINEAR, with FILL (zeros),
    CLAMP (border) or REFLECT padding, as ONNX GridSample and torch.nn.functional.grid_sample define it."""
    src, grid = call.input(0), call.input(1)
    layer = call.layer
    interp, mode, align = enum_name(layer.interpolation_mode), enum_name(layer.sample_mode), bool(layer.align_corners)
    if interp not in ("NEAREST", "LINEAR") or mode not in ("FILL", "CLAMP", "REFLECT"):
        raise call.fail(f"grid sampling {interp} with {mode} padding is not modelled")
    if src.ndim != 4 or grid.ndim != 4 or grid.shape[-1] != 2 or grid.shape[0] != src.shape[0]:
        raise call.fail(f"input {src.shape} and grid {grid.shape} are not [N, C, H, W] and [N, Ho, Wo, 2]")
    x, g = wide(src), wide(grid)
    n, _, h, w = x.shape
    px = _grid_coords(g[..., 0], w, align, mode)
    py = _grid_coords(g[..., 1], h, align, mode)
    batch = np.arange(n).reshape(n, 1, 1)

    def tap(iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
        """x at integer positions [N, Ho, Wo] as [N, C, Ho, Wo]; positions outside read 0."""
        inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        vals = x[batch, :, np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)]  # [N, Ho, Wo, C]
        return np.moveaxis(np.where(inside[..., None], vals, 0.0), -1, 1)

    if interp == "NEAREST":
        r = tap(np.rint(py).astype(np.int64), np.rint(px).astype(np.int64))  # half to even, as nearbyint
    else:
        x0, y0 = np.floor(px), np.floor(py)
        fx, fy = (px - x0)[:, None], (py - y0)[:, None]
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
        r = (1 - fy) * ((1 - fx) * tap(y0, x0) + fx * tap(y0, x0 + 1)) + fy * (
            (1 - fx) * tap(y0 + 1, x0) + fx * tap(y0 + 1, x0 + 1)
        )
    return [rounded(r, src.dtype)]
