"""Shared pieces of the reference interpreter: dtypes, the layer registry, and small numeric helpers.

Nothing here knows about trtnet's DSL; the interpreter reads everything back from TensorRT itself.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

import ml_dtypes
import numpy as np

from trtnet.backend import DATA_TYPES, get_trt
from trtnet.errors import InterpreterError
from trtnet.interpreter.weightcache import WeightCache

BF16 = np.dtype(ml_dtypes.bfloat16)
T = TypeVar("T")

# TensorRT DataType name -> numpy dtype, from the backend's one table (a table of names, not of computing: what
# the interpreter does with each type is its own). Types outside it are refused by name (np_dtype).
_DTYPES: dict[str, np.dtype] = {row.member: row.numpy for row in DATA_TYPES}
_LOW_PRECISION_FLOATS = (np.dtype(np.float16), BF16)
SUPPORTED_DTYPES = frozenset(_DTYPES)
NUMPY_DTYPES: Mapping[str, np.dtype] = MappingProxyType(_DTYPES)  # read-only, for lookups by name


_ENUM_NAMES: dict[type, dict[int, str]] = {}


def enum_name(value: Any) -> str:
    """`value.name` of a TensorRT enum value, read through its hash: pybind11's `.name` costs ~30 us a call,
    which over the thousands of layers of an ONNX-parsed network adds up to seconds."""
    kind = type(value)
    table = _ENUM_NAMES.get(kind)
    if table is None:
        members = getattr(kind, "__members__", None)
        if members is None:
            return str(getattr(value, "name", value))
        table = {hash(member): name for name, member in members.items()}
        if len(table) != len(members):  # hashes not distinct: never seen, but then stay correct
            return str(value.name)
        _ENUM_NAMES[kind] = table
    return table[hash(value)]


def np_dtype(trt_dtype: Any) -> np.dtype:
    """The numpy dtype for a TensorRT `DataType`; raises `InterpreterError` for unsupported ones."""
    name = enum_name(trt_dtype)
    try:
        return _DTYPES[name]
    except KeyError:
        raise InterpreterError(f"TensorRT data type {name} is not supported by the reference interpreter") from None


def trt_dtype_name(dtype: np.dtype) -> str:
    """The TensorRT DataType name of a numpy dtype (for messages)."""
    for name, candidate in _DTYPES.items():
        if candidate == dtype:
            return name
    return str(dtype)


_FLOATNESS: dict[Any, bool] = {}  # dtype -> is_float: np.issubdtype costs a microsecond, and every layer asks


def is_float(dtype: np.dtype) -> bool:
    """Whether a dtype is one of the float types TensorRT uses (bfloat16 is not a numpy `floating`)."""
    known = _FLOATNESS.get(dtype)
    if known is None:
        known = _FLOATNESS[dtype] = bool(dtype == BF16 or np.issubdtype(dtype, np.floating))
    return known


def compute(x: np.ndarray) -> np.ndarray:
    """The array for one correctly rounded operation (+, -, *, /, sqrt, max...): half and bfloat16 are widened
    to float32, whose result, rounded back, is the correctly rounded one (float32 has over twice the bits)."""
    if x.dtype in _LOW_PRECISION_FLOATS:
        return x.astype(np.float32)
    return x


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype `compute` gives an array of `dtype`."""
    return np.dtype(np.float32) if dtype in _LOW_PRECISION_FLOATS else dtype


def wide(x: np.ndarray) -> np.ndarray:
    """The array for everything else (sums, products of matrices, transcendental functions): every float type
    is widened to float64, so that the layer's only rounding of note is that of its output to its own type.

    A view of network weights comes from the run's `WeightCache` (widened once per prepared network), read-only.
    """
    x = np.asarray(x)
    if is_float(x.dtype) and x.dtype != np.float64:
        cached = cached_wide(x)
        return x.astype(np.float64) if cached is None else cached
    return x


ACTIVE_CACHE: ContextVar[WeightCache | None] = ContextVar("trtnet_interpreter_weight_cache", default=None)


def cached_wide(x: np.ndarray) -> np.ndarray | None:
    """The cached float64 form of weights `x` during a run of a prepared network, else None."""
    cache = ACTIVE_CACHE.get()
    return None if cache is None else cache.lookup(x)


def transient_wide(x: np.ndarray) -> np.ndarray:
    """`wide(x)` of a float32 or float16 matrix for a use that ends before the next call: during a prepared
    network's run it is written into the run's scratch buffer (`WeightCache.scratch`), in the memory order `wide`
    would give it, so that a product of it is the same product bit for bit."""
    cache = ACTIVE_CACHE.get()
    if cache is None or x.ndim != 2 or x.dtype not in (np.float32, np.float16):
        return wide(x)
    row_major = abs(x.strides[0]) >= abs(x.strides[1])  # the order astype keeps ('K': by stride)
    flat = cache.scratch(x.size)[: x.size]
    view = flat.reshape(x.shape) if row_major else flat.reshape(x.shape[::-1]).T
    np.copyto(view, x)
    return view


def cached_derived(
    x: np.ndarray, tag: str, make: Callable[[np.ndarray], np.ndarray], keep_twin: bool = True
) -> np.ndarray | None:
    """`make(wide(x))`, kept across a prepared network's runs when x is weights (see `WeightCache.derived`)."""
    cache = ACTIVE_CACHE.get()
    made = None if cache is None else cache.derived(x, tag, make, keep_twin)
    return make(wide(x)) if made is None and keep_twin else made


def rounded(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`y` rounded to the layer's output dtype (a no-op when it already has it)."""
    y = np.asarray(y)
    if y.dtype == dtype:
        return y
    return to_bfloat16(y) if dtype == BF16 and y.dtype == np.float64 else y.astype(dtype)


def to_bfloat16(y: np.ndarray) -> np.ndarray:
    """float64 or integer `y` rounded once to bfloat16, to nearest, ties to even. ml_dtypes' own cast goes by way of
    float32, two roundings: 1 + 2^-8 + 2^-30 became 1.0, not 1 + 2^-7, and 2^24 + 2^16 + 1 became 2^24. Here the way
    to float32 rounds to odd (truncates, and marks an inexact result in its last bit), which keeps the one rounding
    to bfloat16's 8 bits right; an integer past float64's 53 bits is rounded to odd on its way there too."""
    y = np.asarray(y)
    y = _odd_float64(y) if y.dtype.kind in "iu" else np.asarray(y, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        f = y.astype(np.float32)
        away = np.abs(f.astype(np.float64)) > np.abs(y)  # rounded away from zero (NaN: no)
        f = np.where(away, np.nextafter(f, np.float32(0)), f)
        inexact = f.astype(np.float64) != y  # NaN: yes, and a NaN with its last bit set is still NaN
    return (f.view(np.uint32) | inexact.astype(np.uint32)).view(np.float32).astype(BF16)


def _odd_float64(v: np.ndarray) -> np.ndarray:
    """Integers as float64, exactly where they fit in 53 bits, else truncated to 53 bits with the last one set if
    any bit below was (rounded to odd). The integer arithmetic runs on the magnitudes as uint64 (INT64_MIN's
    included)."""
    f = v.astype(np.float64)
    if v.dtype.itemsize < 8 or v.size == 0:
        return f  # 32 bits or fewer: exact
    big = (v > 1 << 53) if v.dtype.kind == "u" else ((v > 1 << 53) | (v < -(1 << 53)))
    if not big.any():
        return f
    m = v[big]
    negative = m < 0
    mag = m.astype(np.uint64)
    mag[negative] = ~mag[negative] + np.uint64(1)  # |m| modulo 2^64
    _, bits = np.frexp(mag.astype(np.float64))  # the bit length, or one more where the cast rounded up to 2^k
    bits = bits.astype(np.uint64)
    bits -= (mag >> (bits - np.uint64(1))) == 0
    shift = bits - np.uint64(53)
    kept = mag >> shift
    kept |= (mag & ((np.uint64(1) << shift) - np.uint64(1))) != 0
    exact = np.ldexp(kept.astype(np.float64), shift.astype(np.int64))  # kept < 2^53: both steps exact
    f[big] = np.where(negative, -exact, exact)
    return f


def dims(d: Any) -> tuple[int, ...]:
    """A TensorRT `Dims` (or any sequence) as a tuple of Python ints (indexed: iterating a Dims is 5x slower)."""
    return tuple(int(d[i]) for i in range(len(d)))


def axes_from_mask(mask: int, rank: int) -> tuple[int, ...]:
    """The axes named by a TensorRT axes bitmask (bit i = axis i)."""
    return tuple(i for i in range(rank) if (int(mask) >> i) & 1)


def normalize_axis(axis: int, rank: int) -> int:
    """A possibly negative axis as a non-negative one."""
    return axis + rank if axis < 0 else axis


def pad_trailing(x: np.ndarray, before: tuple[int, ...], after: tuple[int, ...], value: float) -> np.ndarray:
    """Pads (or, for negative amounts, crops) the trailing len(before) dims of x."""
    lead = x.ndim - len(before)
    crop = [slice(None)] * lead + [
        slice(max(0, -b), x.shape[lead + i] - max(0, -a)) for i, (b, a) in enumerate(zip(before, after))
    ]
    x = x[tuple(crop)]
    widths = [(0, 0)] * lead + [(max(0, b), max(0, a)) for b, a in zip(before, after)]
    return np.pad(x, widths, constant_values=value) if any(w != (0, 0) for w in widths) else x


def weights_array(w: Any, what: str) -> np.ndarray:
    """Weights read back from TensorRT as a flat numpy array.

    The bindings return float/int weights as numpy arrays, but BF16 weights come back as an opaque
    `trt.Weights` with no buffer accessor, so those are read through the pybind11 holder.
    """
    if w is None:
        return np.zeros((0,), np.float32)
    if isinstance(w, np.ndarray):
        flat = w.reshape(-1)
        cache = ACTIVE_CACHE.get()
        if cache is not None and is_float(flat.dtype) and flat.dtype != np.float64:
            cache.register(flat)
        return flat
    trt = get_trt()
    if isinstance(w, trt.Weights):
        if w.size == 0:
            return np.zeros((0,), np_dtype(w.dtype))
        return _raw_weights(w, what)
    raise InterpreterError(f"cannot read {what}: unexpected weights object {type(w).__name__}")


class _TrtWeights(ctypes.Structure):
    # nvinfer1::Weights: {DataType type; void const* values; int64_t count;}
    _fields_ = [("type", ctypes.c_int32), ("values", ctypes.c_void_p), ("count", ctypes.c_int64)]


def _raw_weights(w: Any, what: str) -> np.ndarray:
    """Copies the buffer of a `trt.Weights` the bindings cannot turn into numpy (BF16).

    A pybind11 instance stores a pointer to its C++ value right after the PyObject header; the layout is
    checked against the dtype and count the bindings report, so a different layout fails loudly.
    """
    dtype = np_dtype(w.dtype)
    header = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)  # ob_refcnt, ob_type
    holder = ctypes.c_void_p.from_address(id(w) + header).value
    if holder:
        value = _TrtWeights.from_address(holder)
        if value.type == int(w.dtype) and value.count == w.size and value.values:
            raw = ctypes.string_at(value.values, w.nbytes)
            return np.frombuffer(raw, dtype=dtype).copy()
    raise InterpreterError(f"cannot read {what}: the {w.dtype.name} weights buffer is not reachable from Python")


# ---------------------------------------------------------------------------------------------------------
# Registry


@dataclass
class LayerCall:
    """One layer being run: the downcast layer and its input values (None for an absent optional input)."""

    layer: Any
    inputs: list[np.ndarray | None]
    type_name: str
    settings: dict[str, Any] = field(default_factory=dict)  # see `setting`: the prepared network's, for this layer
    fresh: dict[str, Any] = field(default_factory=dict)  # settings this call read: kept once the layer has run

    def setting(self, key: str, read: Callable[[Any], T]) -> T:
        """`read(layer)`: settings of the layer read from TensorRT by its first run that completes, then kept by the
        prepared network (`key` names them within the layer; the runner keeps what a call read only once the layer
        has run, so that a failed run leaves no half of them behind). TensorRT's accessors cost microseconds each, a
        Dims a call per dim: a SHUFFLE's three read each run took 9 of its 24 us. Weights are not settings: read
        them each run."""
        try:
            return self.settings[key]
        except KeyError:
            pass
        try:
            return self.fresh[key]
        except KeyError:
            value = self.fresh[key] = read(self.layer)
            return value

    def fail(self, message: str) -> InterpreterError:
        """An `InterpreterError` naming this layer; the caller raises it."""
        return InterpreterError(f"layer {self.layer.name!r} ({self.type_name}): {message}")

    def input(self, i: int) -> np.ndarray:
        """Input `i`, which must be present."""
        if i >= len(self.inputs) or self.inputs[i] is None:
            raise self.fail(f"input {i} is missing")
        return self.inputs[i]

    def optional(self, i: int) -> np.ndarray | None:
        """Input `i`, or None when the layer has no such input."""
        return self.inputs[i] if i < len(self.inputs) else None


Handler = Callable[[LayerCall], Sequence[np.ndarray]]


@dataclass(frozen=True)
class Entry:
    """A registered layer handler and the TensorRT class its layers are downcast to."""

    fn: Handler
    class_name: str


HANDLERS: dict[str, Entry] = {}  # LayerType name -> handler; keyed by name so it outlives enum identity


def register(layer_type: str, class_name: str) -> Callable[[Handler], Handler]:
    """Registers `fn` as the implementation of TensorRT layer type `layer_type` (a `LayerType` name)."""

    def wrap(fn: Handler) -> Handler:
        if layer_type in HANDLERS:
            raise RuntimeError(f"layer type {layer_type} registered twice")
        HANDLERS[layer_type] = Entry(fn, class_name)
        return fn

    return wrap


def scalar_int(call: LayerCall, value: np.ndarray, what: str) -> int:
    """A one-element integer tensor (a shape-tensor scalar) as a Python int."""
    arr = np.asarray(value)
    if arr.size != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise call.fail(f"{what} must be a single integer, got {arr.dtype} of shape {arr.shape}")
    return int(arr.reshape(-1)[0])


def int_vector(call: LayerCall, value: np.ndarray, what: str) -> tuple[int, ...]:
    """A 1-D integer tensor (a shape tensor) as a tuple of Python ints."""
    arr = np.asarray(value)
    if arr.ndim > 1 or not np.issubdtype(arr.dtype, np.integer):
        raise call.fail(f"{what} must be a 1-D integer tensor, got {arr.dtype} of shape {arr.shape}")
    return tuple(int(v) for v in arr.reshape(-1))
