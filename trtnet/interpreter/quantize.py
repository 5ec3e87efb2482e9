"""QUANTIZE and DEQUANTIZE, computed exactly as TensorRT defines them.

IQuantizeLayer: output = clamp(round(input / scale)), rounding to nearest with ties to even; the clamp is to
[-128, 127] for INT8 and to [-448, 448] for FP8 (E4M3, which has no infinity: an out-of-range value saturates
instead of becoming NaN). IDequantizeLayer: output = input * scale, rounded to the output type. Both are
computed in float32, the type of the scale TensorRT requires for FP8 and allows for INT8. The scale is a scalar
(per tensor), a 1-D tensor along the layer's `axis` (per channel), or a tensor of the input's rank (per block:
element i takes scale[i // block], each dim of the input a whole number of blocks of the scale's); the zero point,
when given, must be zero (TensorRT supports only symmetric quantization).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from trtnet.interpreter._common import LayerCall, normalize_axis, np_dtype, register, rounded

FP8 = np.dtype(ml_dtypes.float8_e4m3fn)
_FP8_MAX = 448.0


def _scale(call: LayerCall, x: np.ndarray) -> np.ndarray:
    """The scale, shaped to broadcast against `x` (per tensor, per channel along the layer's axis, or per block)."""
    scale = np.asarray(call.input(1))
    if scale.size == 1 and scale.ndim <= 1:
        s = scale.reshape(()).astype(np.float32)
    elif scale.ndim == 1:
        axis = normalize_axis(int(call.layer.axis), x.ndim)
        if not 0 <= axis < x.ndim or x.shape[axis] != scale.shape[0]:
            raise call.fail(
                f"per-channel scale of {scale.shape[0]} values does not match axis {call.layer.axis} "
                f"of input shape {x.shape}"
            )
        shape = [1] * x.ndim
        shape[axis] = scale.shape[0]
        s = scale.astype(np.float32).reshape(shape)
    elif scale.ndim == x.ndim and all(0 < b <= n and n % b == 0 for b, n in zip(scale.shape, x.shape)):
        s = scale.astype(np.float32)
        for axis, (b, n) in enumerate(zip(scale.shape, x.shape)):
            s = np.repeat(s, n // b, axis=axis) if b not in (1, n) else s
    else:
        raise call.fail(
            f"scale of shape {scale.shape} is neither per tensor, per channel nor in whole blocks of input {x.shape}"
        )
    if np.any(~(s > 0)) or not np.all(np.isfinite(s)):
        raise call.fail("every scale must be finite and strictly positive")
    zero = call.optional(2)
    if zero is not None and np.any(np.asarray(zero).astype(np.float32) != 0):
        raise call.fail("the zero point must be zero: TensorRT quantizes symmetrically")
    return s


def quantize_values(x: np.ndarray, scale: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """round(x / scale) clamped to `dtype` (INT8 or FP8 E4M3), rounding to nearest, ties to even."""
    y = np.asarray(x).astype(np.float32) / scale
    if dtype == np.int8:
        # NaN quantizes to 0, as CUDA's saturating float-to-int conversion gives.
        return np.clip(np.rint(np.nan_to_num(y, nan=0.0)), -128, 127).astype(np.int8)
    if dtype == FP8:
        # Clamping before the cast is the same as after it: 448 is E4M3's largest finite value, and every value
        # between it and the clamp rounds down to it. ml_dtypes casts float32 with round-to-nearest-even.
        return np.clip(y, -_FP8_MAX, _FP8_MAX).astype(FP8)
    raise ValueError(f"no quantized type {dtype}")


@register("QUANTIZE", "IQuantizeLayer")
def quantize(call: LayerCall) -> list[np.ndarray]:
    x = call.input(0)
    out = np_dtype(call.layer.get_output(0).dtype)
    if out not in (np.dtype(np.int8), FP8):
        raise call.fail(f"quantizing to {call.layer.get_output(0).dtype.name} is not supported by the interpreter")
    return [quantize_values(x, _scale(call, x), out)]


@register("DEQUANTIZE", "IDequantizeLayer")
def dequantize(call: LayerCall) -> list[np.ndarray]:
    x = call.input(0)
    out = np_dtype(call.layer.get_output(0).dtype)
    y = np.asarray(x).astype(np.float32) * _scale(call, x)
    return [rounded(y, out)]
