"""Pointwise layers: ELEMENTWISE, UNARY, ACTIVATION, PARAMETRIC_RELU, SELECT, SCALE, CAST, IDENTITY."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from trtnet.interpreter._common import (
    BF16,
    LayerCall,
    compute,
    enum_name,
    is_float,
    np_dtype,
    register,
    rounded,
    to_bfloat16,
    weights_array,
    wide,
)
from trtnet.interpreter.special import erf, gelu_erf


def _trunc_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Integer DIV follows C semantics (round toward zero), unlike numpy's floor division.
    q = np.floor_divide(a, b)
    fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return q + fix.astype(q.dtype)


_COMPARISONS = {"EQUAL": np.equal, "GREATER": np.greater, "LESS": np.less}
_LOGICAL = {"AND": np.logical_and, "OR": np.logical_or, "XOR": np.logical_xor}


@register("ELEMENTWISE", "IElementWiseLayer")
def elementwise(call: LayerCall) -> list[np.ndarray]:
    """Binary op with broadcasting of size-1 dims (TensorRT requires equal ranks)."""
    a, b = call.input(0), call.input(1)
    op = call.setting("op", lambda layer: enum_name(layer.op))
    if a.ndim != b.ndim:
        raise call.fail(f"inputs have ranks {a.ndim} and {b.ndim}; TensorRT broadcasts only equal ranks")
    if a.dtype != b.dtype:
        raise call.fail(f"inputs have dtypes {a.dtype} and {b.dtype}; a strongly typed network needs one dtype")
    # Equal ranks (checked above): each pair of dims equal or one of them 1 (np.broadcast_shapes costs 3 us).
    if a.shape != b.shape and any(m != n and m != 1 and n != 1 for m, n in zip(a.shape, b.shape)):
        raise call.fail(f"shapes {a.shape} and {b.shape} do not broadcast")
    if op in _LOGICAL:
        if a.dtype != np.bool_:
            raise call.fail(f"{op} needs BOOL inputs, got {a.dtype}")
        return [_LOGICAL[op](a, b)]
    # +, -, *, /, max and min are correctly rounded in float32, so computing them wider would change nothing.
    x, y = compute(a), compute(b)
    if op in _COMPARISONS:
        return [_COMPARISONS[op](x, y)]
    integer = not is_float(a.dtype)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if op == "SUM":
            r = x + y
        elif op == "PROD":
            r = x * y
        elif op == "SUB":
            r = x - y
        elif op == "MAX":
            r = np.maximum(x, y)
        elif op == "MIN":
            r = np.minimum(x, y)
        elif op == "DIV":
            r = _trunc_div(x, y) if integer else x / y
        elif op == "FLOOR_DIV":
            r = np.floor_divide(x, y) if integer else np.floor(x / y)
        elif op == "POW":
            # Integer powers go through float64 and truncate, so negative exponents give 0 (or +-1).
            r = np.trunc(np.power(x.astype(np.float64), y)) if integer else _power(wide(x), wide(y))
        else:
            raise call.fail(f"unsupported elementwise operation {op}")
    return [rounded(r, a.dtype)]


def _power(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x ** y in float64. A square or cube of a value widened from float32 or narrower (ONNX's LayerNorm and GELU
    write x ** 2 and x ** 3) is multiplied out: x * x is exact, (x * x) * x the cube rounded once, so as close as
    float64 can be and never farther than `pow` (GPT-2's twelve cubes: tens of times faster than libm's pow)."""
    if y.size == 1 and float(y.reshape(-1)[0]) in (2.0, 3.0) and y.ndim == x.ndim:
        square = np.multiply(x, x)
        if float(y.reshape(-1)[0]) == 3.0:
            square *= x
        return np.broadcast_to(square, np.broadcast_shapes(x.shape, y.shape))
    return np.power(x, y)


_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "EXP": np.exp,
    "LOG": np.log,
    "SQRT": np.sqrt,
    "RECIP": lambda x: 1 / x,
    "ABS": np.abs,
    "NEG": np.negative,
    "SIN": np.sin,
    "COS": np.cos,
    "TAN": np.tan,
    "SINH": np.sinh,
    "COSH": np.cosh,
    "ASIN": np.arcsin,
    "ACOS": np.arccos,
    "ATAN": np.arctan,
    "ASINH": np.arcsinh,
    "ACOSH": np.arccosh,
    "ATANH": np.arctanh,
    "CEIL": np.ceil,
    "FLOOR": np.floor,
    "ERF": erf,
    "SIGN": np.sign,
    "ROUND": np.rint,  # TensorRT rounds half to even, like rint
}


# Correctly rounded in the input's own precision; the others go through float64.
_EXACT_UNARY = {"RECIP", "ABS", "NEG", "SQRT", "CEIL", "FLOOR", "SIGN", "ROUND"}


@register("UNARY", "IUnaryLayer")
def unary(call: LayerCall) -> list[np.ndarray]:
    """One-input math; NOT works on BOOL, ISINF/ISNAN return BOOL."""
    x = call.input(0)
    op = call.setting("op", lambda layer: enum_name(layer.op))
    if op == "NOT":
        if x.dtype != np.bool_:
            raise call.fail(f"NOT needs a BOOL input, got {x.dtype}")
        return [np.logical_not(x)]
    if op == "ISINF":
        return [np.isinf(compute(x))]
    if op == "ISNAN":
        return [np.isnan(compute(x))]
    fn = _UNARY.get(op)
    if fn is None:
        raise call.fail(f"unsupported unary operation {op}")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if op in _EXACT_UNARY:
            return [rounded(fn(compute(x)), x.dtype)]
        if op == "ERF" and x.dtype in (np.float32, np.float16):  # widened and rounded by erf itself, a chunk at a time
            return [erf(x, out=np.empty(x.shape, x.dtype))]
        return [pointwise(fn, x)]


# Elements a float64 pointwise function is applied to at a time: its temporaries then stay in cache.
_POINTWISE_CHUNK = 1 << 15


def pointwise(fn: Callable[[np.ndarray], np.ndarray], src: np.ndarray) -> np.ndarray:
    """fn over src widened to float64, a chunk at a time, each result rounded straight into src's type."""
    flat = src.reshape(-1)
    out = np.empty(flat.shape, src.dtype)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for start in range(0, flat.size, _POINTWISE_CHUNK):
            r = fn(wide(flat[start : start + _POINTWISE_CHUNK]))
            out[start : start + _POINTWISE_CHUNK] = to_bfloat16(r) if src.dtype == BF16 else r  # else cast as stored
    return out.reshape(src.shape)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    """0.5 x (1 + tanh(u)), u = sqrt(2 / pi) (x + 0.044715 x^3), as x / (1 + exp(-2u)): the same value without
    1 + tanh's cancellation, which left 3% of the float32 outputs of N(0, 3^2) inputs off, all in the left tail."""
    u = x * x
    u *= 0.044715
    u += 1
    u *= x
    u *= -2 * np.sqrt(2 / np.pi)
    np.exp(u, out=u)
    u += 1
    return np.divide(x, u, out=u)


@register("ACTIVATION", "IActivationLayer")
def activation(call: LayerCall) -> list[np.ndarray]:
    """The fourteen ActivationTypes, with the alpha/beta meanings of TensorRT's ActivationType docs."""
    src = call.input(0)
    # Once downcast, IActivationLayer.type is the ActivationType.
    kind, alpha, beta = call.setting(
        "activation", lambda layer: (enum_name(layer.type), float(layer.alpha), float(layer.beta))
    )
    if kind not in _ACTIVATIONS:
        raise call.fail(f"unsupported activation type {kind}")
    if kind in ("RELU", "CLIP"):  # exact in the input's own type
        return [rounded(_activate(kind, compute(src), alpha, beta), src.dtype)]
    if kind == "SIGMOID" and src.dtype in (np.float32, np.float16):
        return [_sigmoid(src)]
    return [pointwise(lambda x: _activate(kind, x, alpha, beta), src)]


def _sigmoid(src: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) in float64, as `_activate` computes it, a chunk at a time: the input widened as it is
    negated and the quotient rounded as it is stored, two passes fewer than widening and rounding on their own
    (YOLOv5s's SiLUs: 15% less time)."""
    flat = src.reshape(-1)
    out = np.empty(flat.shape, src.dtype)
    buffer = np.empty(min(flat.size, _POINTWISE_CHUNK), np.float64)
    with np.errstate(over="ignore"):
        for start in range(0, flat.size, _POINTWISE_CHUNK):
            part = flat[start : start + _POINTWISE_CHUNK]
            r = buffer[: part.size]
            np.negative(part, out=r, dtype=np.float64)
            np.exp(r, out=r)
            r += 1
            np.divide(1.0, r, out=out[start : start + _POINTWISE_CHUNK], dtype=np.float64, casting="same_kind")
    return out.reshape(src.shape)


_ACTIVATIONS = frozenset(
    {
        "RELU",
        "SIGMOID",
        "TANH",
        "LEAKY_RELU",
        "ELU",
        "SELU",
        "SOFTSIGN",
        "SOFTPLUS",
        "CLIP",
        "HARD_SIGMOID",
        "SCALED_TANH",
        "THRESHOLDED_RELU",
        "GELU_ERF",
        "GELU_TANH",
    }
)


def _activate(kind: str, x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        if kind == "RELU":
            r = np.maximum(x, 0)
        elif kind == "SIGMOID":
            r = np.negative(x)  # 1 / (1 + exp(-x)), in place in one fresh array
            np.exp(r, out=r)
            r += 1
            np.reciprocal(r, out=r)
        elif kind == "TANH":
            r = np.tanh(x)
        elif kind == "LEAKY_RELU":
            r = np.where(x >= 0, x, alpha * x)
        elif kind == "ELU":  # expm1: exp(x) - 1 cancels for x near 0 (a sixth of the float32 outputs off there)
            r = np.where(x >= 0, x, alpha * np.expm1(x))
        elif kind == "SELU":
            r = np.where(x > 0, beta * x, beta * (alpha * np.expm1(x)))
        elif kind == "SOFTSIGN":
            r = x / (1 + np.abs(x))
        elif kind == "SOFTPLUS":
            r = alpha * np.logaddexp(beta * x, 0)
        elif kind == "CLIP":
            r = np.minimum(beta, x)  # then in place: one fresh array, not two (same operand order: same zeros' signs)
            np.maximum(alpha, r, out=r)
        elif kind == "HARD_SIGMOID":
            r = np.maximum(0, np.minimum(1, alpha * x + beta))
        elif kind == "SCALED_TANH":
            r = alpha * np.tanh(beta * x)
        elif kind == "THRESHOLDED_RELU":
            # NvInfer.h: x > alpha ? x : 0 (the operator page's max(0, x - alpha) contradicts the header)
            r = np.where(x > alpha, x, 0)
        elif kind == "GELU_ERF":
            r = gelu_erf(x)  # 1 + erf(x / sqrt 2) as an erfc: no cancellation in the left tail
        else:
            r = _gelu_tanh(x)
    return r


@register("PARAMETRIC_RELU", "IParametricReLULayer")
def parametric_relu(call: LayerCall) -> list[np.ndarray]:
    """x >= 0 ? x : slope * x, with the slope broadcast against x."""
    src, slope = call.input(0), call.input(1)
    x, s = wide(src), wide(slope)
    return [rounded(np.where(x >= 0, x, s * x), src.dtype)]


@register("SELECT", "ISelectLayer")
def select(call: LayerCall) -> list[np.ndarray]:
    """where(condition, then, else) with broadcasting."""
    cond, a, b = call.input(0), call.input(1), call.input(2)
    if cond.dtype != np.bool_:
        raise call.fail(f"condition must be BOOL, got {cond.dtype}")
    if a.dtype != b.dtype:
        raise call.fail(f"then/else dtypes differ: {a.dtype} vs {b.dtype}")
    return [np.where(cond, a, b)]


@register("SCALE", "IScaleLayer")
def scale(call: LayerCall) -> list[np.ndarray]:
    """(x * scale + shift) ** power, coefficients uniform, per channel, or per element from channel_axis on."""
    src = call.input(0)
    x = src  # shape and rank only: the arithmetic below widens
    layer = call.layer
    mode, axis = call.setting("mode", lambda layer: (enum_name(layer.mode), int(layer.channel_axis)))
    if axis < 0:
        axis += x.ndim

    def coeff(w: object, what: str, default: float) -> np.ndarray | float:
        arr = wide(weights_array(w, f"scale layer {what}"))
        if arr.size == 0:
            return default
        if mode == "UNIFORM":
            want: tuple[int, ...] = ()
        elif mode == "CHANNEL":
            want = (x.shape[axis],) + (1,) * (x.ndim - axis - 1)
        else:
            want = x.shape[axis:]
        if arr.size != math.prod(want):
            raise call.fail(f"{what} has {arr.size} values, {mode} mode needs {math.prod(want)}")
        return arr.reshape(want)

    shift = coeff(layer.shift, "shift", 0.0)
    mul = coeff(layer.scale, "scale", 1.0)
    power = coeff(layer.power, "power", 1.0)
    # float32/float16 meet the float64 coefficients in the ufunc itself (exact widening, one pass fewer); a
    # default coefficient is skipped: most SCALE layers are a bias add after a product.
    operand = src if src.dtype in (np.float32, np.float16) else wide(src)
    plain = isinstance(power, float) and power == 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        if plain and operand is src and not isinstance(shift, float) and not isinstance(mul, float):
            # A batch norm: widened, then scaled and shifted in place. A ufunc that widens as it broadcasts runs a
            # buffered loop: 13-25% slower on DenseNet's and ResNet's maps, the same values. In C order, as the
            # other paths' outputs are, whatever the input's layout: a later sum then adds in the same order.
            r = src.astype(np.float64, order="C")
            r *= mul
            r += shift
            return [r.astype(src.dtype)]
        if plain and operand is src and not isinstance(shift, float):
            # The last step computed in float64 and rounded once straight into the output: one pass, not two.
            out = np.empty(np.broadcast_shapes(src.shape, np.shape(shift), np.shape(mul)), src.dtype)
            r = operand if isinstance(mul, float) and mul == 1.0 else np.multiply(operand, mul, dtype=np.float64)
            np.add(r, shift, out=out, dtype=np.float64, casting="same_kind")
            return [out]
        if isinstance(mul, float) and mul == 1.0:
            r = src.astype(np.float64) if isinstance(shift, float) else np.add(operand, shift, dtype=np.float64)
            if isinstance(shift, float) and shift != 0.0:
                r += shift
        else:
            r = np.multiply(operand, mul, dtype=np.float64)
            if not isinstance(shift, float) or shift != 0.0:
                r += shift
        if not (isinstance(power, float) and power == 1.0):
            r = np.power(r, power)
    return [rounded(r, src.dtype)]


def _cast(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if x.dtype == dtype:
        return x.copy()
    if dtype == np.bool_:
        return compute(x) != 0
    if np.issubdtype(dtype, np.integer) and is_float(x.dtype):
        # Float to int truncates toward zero and saturates, NaN giving 0, as CUDA's conversions do (TensorRT:
        # NaN -> 0, inf -> INT32_MAX; NVIDIA/TensorRT#4775). numpy's own cast gives x86's INT_MIN for all three.
        info = np.iinfo(dtype)
        with np.errstate(invalid="ignore"):
            v = np.trunc(compute(x))
            low, high = v <= info.min, v >= info.max  # compared in float: int64's max rounds up to 2**63
            r = np.where(low | high | np.isnan(v), 0, v).astype(dtype)
        r[low], r[high] = info.min, info.max
        return r
    if dtype == BF16 and not is_float(x.dtype):
        return to_bfloat16(x)  # ml_dtypes' integer cast goes by way of float32: two roundings past 2^24
    return compute(x).astype(dtype) if is_float(dtype) else x.astype(dtype)


@register("CAST", "ICastLayer")
def cast(call: LayerCall) -> list[np.ndarray]:
    """Conversion to `to_type`."""
    return [_cast(call.input(0), call.setting("to_type", lambda layer: np_dtype(layer.to_type)))]


@register("IDENTITY", "IIdentityLayer")
def identity(call: LayerCall) -> list[np.ndarray]:
    """A copy; in a weakly typed network TensorRT may give it another output type, so convert to that."""
    return [_cast(call.input(0), call.setting("dtype", lambda layer: np_dtype(layer.get_output(0).dtype)))]
