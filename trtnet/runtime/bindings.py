"""What a call of an engine is given, described and checked in plain Python before any CUDA call. No CUDA here.

`describe` reads the shape, dtype, device and address of whatever the caller passes (numpy arrays, CPU or CUDA
torch tensors, objects with `__cuda_array_interface__` or `__dlpack__`) from Python attributes alone;
`check_call` holds them against the engine's specs (count, dtype, shape, batch range, device, contiguity).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trtnet.errors import EngineError
from trtnet.runtime.plan import TensorSpec

__all__ = ["Array", "Call", "check_call", "check_inputs", "describe", "graph_key", "output_binding", "producer_streams"]

HOST, DEVICE = "host", "cuda"


@dataclass
class Array:
    """What the runner needs to know about one input or output tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    device: str  # "host" or "cuda:N"
    kind: str  # the Python type, for messages
    ptr: int = 0  # device pointer (device arrays)
    host: np.ndarray | None = None  # host arrays
    contiguous: bool = True
    strides: tuple[int, ...] | None = None
    stream: int | None = None  # the producer's stream (`__cuda_array_interface__` v3)
    obj: Any = None  # the caller's object (kept alive while in use)
    keep: Any = None  # a DLPack capsule that must outlive the call

    @property
    def where(self) -> str:
        return f"the host ({self.kind})" if self.device == HOST else f"{self.device} ({self.kind})"


@dataclass
class Call:
    arrays: list[Array]
    batch: int
    on_device: bool
    out: list[Array] | None = None


def _c_contiguous(shape: Sequence[int], strides: Sequence[int] | None, itemsize: int) -> bool:
    if strides is None:
        return True
    expect = itemsize
    for dim, stride in zip(reversed(shape), reversed(strides)):
        if dim != 1 and stride != expect:
            return False
        expect *= dim
    return True


_DLPACK_CPU, _DLPACK_CUDA = 1, 2
_DLPACK_DTYPES = {
    (0, 8): "int8",
    (0, 16): "int16",
    (0, 32): "int32",
    (0, 64): "int64",
    (1, 8): "uint8",
    (2, 16): "float16",
    (2, 32): "float32",
    (2, 64): "float64",
    (4, 16): "bfloat16",
    (6, 8): "bool",
}


def describe(x: Any, name: str) -> Array:
    """Shape, dtype, device and address of `x` (numpy, CPU/CUDA torch tensor, CUDA array interface, DLPack).

    Reads only Python attributes: no CUDA call is made here.
    """
    kind = f"{type(x).__module__.split('.')[0]}.{type(x).__name__}"
    if isinstance(x, np.ndarray):
        return Array(name, tuple(x.shape), x.dtype.name, HOST, kind, host=x, obj=x)
    cai = _cuda_array_interface(x, name)
    if cai is not None:
        shape = tuple(int(d) for d in cai["shape"])
        dtype = np.dtype(cai["typestr"])
        strides = tuple(cai["strides"]) if cai.get("strides") is not None else None
        return Array(
            name,
            shape,
            dtype.name,
            f"{DEVICE}:{_device_index(x)}",
            kind,
            ptr=int(cai["data"][0]),
            contiguous=_c_contiguous(shape, strides, dtype.itemsize),
            strides=strides,
            stream=cai.get("stream"),
            obj=x,
        )
    if hasattr(x, "__dlpack_device__"):
        dev_type, dev_id = x.__dlpack_device__()
        if int(dev_type) == _DLPACK_CPU:
            try:
                host = np.from_dlpack(x.detach() if hasattr(x, "detach") else x)
            except (TypeError, BufferError, RuntimeError, ValueError) as e:
                raise EngineError(f"input {name!r}: a {kind} numpy cannot read ({e})") from e
            return Array(name, tuple(host.shape), host.dtype.name, HOST, kind, host=host, obj=x)
        if int(dev_type) == _DLPACK_CUDA:
            return _dlpack_device_array(x, name, kind, int(dev_id))
        raise EngineError(
            f"input {name!r}: a {kind} on DLPack device type {int(dev_type)}; trtnet takes host "
            "arrays or CUDA device tensors"
        )
    if hasattr(x, "__array__") and hasattr(x, "shape"):
        host = np.asarray(x)
        return Array(name, tuple(host.shape), host.dtype.name, HOST, kind, host=host, obj=x)
    raise EngineError(
        f"input {name!r}: expected a numpy array or a CUDA tensor (torch, __cuda_array_interface__, "
        f"__dlpack__), got {kind}"
    )


def _cuda_array_interface(x: Any, name: str) -> dict | None:
    try:
        return x.__cuda_array_interface__
    except AttributeError:  # torch raises AttributeError for CPU tensors; others simply lack it
        return None
    except RuntimeError as e:  # torch: a tensor that requires grad
        raise EngineError(f"input {name!r}: its CUDA array interface cannot be read ({e}); pass .detach()") from e


def _device_index(x: Any) -> int:
    device = getattr(x, "device", None)  # torch, cupy
    index = getattr(device, "index", None)
    if index is None:
        index = getattr(device, "id", None)
    return int(index) if isinstance(index, int) else 0


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


def _dlpack_device_array(x: Any, name: str, kind: str, dev_id: int) -> Array:
    """Read a CUDA DLPack capsule (the DLTensor at the head of DLManagedTensor) without consuming it."""
    capsule = x.__dlpack__()
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    t = _DLTensor.from_address(get(capsule, b"dltensor"))
    shape = tuple(t.shape[i] for i in range(t.ndim))
    dtype = _DLPACK_DTYPES.get((t.dtype.code, t.dtype.bits))
    if dtype is None or t.dtype.lanes != 1:
        raise EngineError(f"input {name!r}: DLPack dtype code {t.dtype.code}, {t.dtype.bits} bits is not supported")
    itemsize = t.dtype.bits // 8
    strides = tuple(t.strides[i] * itemsize for i in range(t.ndim)) if t.strides else None
    return Array(
        name,
        shape,
        dtype,
        f"{DEVICE}:{dev_id}",
        kind,
        ptr=int(t.data or 0) + int(t.byte_offset),
        contiguous=_c_contiguous(shape, strides, itemsize),
        strides=strides,
        obj=x,
        keep=capsule,
    )


def check_inputs(
    specs: Sequence[TensorSpec],
    inputs: Sequence[Any],
    *,
    taker: str = "the engine",
    error: type[Exception] = EngineError,
    any_size: bool = False,
) -> tuple[list[Array], int]:
    """The inputs of a call of `taker` (count, dtype, shape within each spec's range, one batch size), described;
    and the batch. `any_size` checks the rank but not the per-sample sizes (the interpreter emits a network for
    the sizes it is given), still refusing a channels-last image where channels first are taken. The engine, the
    reference interpreter and calibration all check inputs here, so that they say the same."""
    if len(inputs) != len(specs):
        names = ", ".join(s.name for s in specs)
        raise error(f"{taker} takes {len(specs)} input(s) ({names}), got {len(inputs)}")
    arrays = [describe(x, spec.name) for x, spec in zip(inputs, specs)]
    batch = None
    for a, spec in zip(arrays, specs):
        if a.dtype != spec.dtype:
            raise error(f"input {spec.name!r}: dtype {a.dtype} given, {taker} takes {spec.dtype} {spec.allowed()}")
        (lo_shape, hi_shape) = spec.shape_range()
        rank_ok = len(a.shape) == len(spec.shape) and (
            any_size or all(lo <= d <= hi for d, lo, hi in zip(a.shape[1:], lo_shape[1:], hi_shape[1:]))
        )
        channels_last = len(a.shape) == 4 == len(spec.shape) and a.shape[3] == lo_shape[1] == hi_shape[1] != a.shape[1]
        if not rank_ok or channels_last:
            hint = " (channels last? it takes channels first: x.transpose(0, 3, 1, 2))" if channels_last else ""
            raise error(f"input {spec.name!r}: shape {list(a.shape)} given, {taker} takes {spec.allowed()}{hint}")
        lo, hi = spec.batch_range()
        if not lo <= a.shape[0] <= hi:
            where = (
                f"its optimization profile allows batch {lo}..{hi}"
                if lo != hi
                else f"it was built for batch {lo} (build with batch_size=(min, opt, max) for a range)"
            )
            raise error(f"input {spec.name!r}: batch {a.shape[0]} given (shape {list(a.shape)}), {where}")
        if batch is not None and a.shape[0] != batch[1]:
            raise error(
                f"input {spec.name!r}: batch {a.shape[0]}, but input {batch[0]!r} has batch "
                f"{batch[1]}: all inputs share the batch size"
            )
        batch = batch or (spec.name, a.shape[0])
    return arrays, batch[1] if batch else 0


def check_call(
    specs: Sequence[TensorSpec],
    out_specs: Sequence[TensorSpec],
    device: int,
    inputs: Sequence[Any],
    out: Sequence[Any] | None = None,
) -> Call:
    """Check one call of an engine taking `specs` and writing `out_specs` on GPU `device`, without touching
    CUDA; returns what the runner needs. A bad input is an `EngineError` naming it, what was given and what
    the engine allows."""
    arrays, n = check_inputs(specs, inputs)
    first = arrays[0]
    for a in arrays[1:]:
        if a.device != first.device:
            raise EngineError(
                f"input {a.name!r} is on {a.where}, but input {first.name!r} is on "
                f"{first.where}: pass all inputs on the host or all on the same GPU"
            )
    on_device = first.device != HOST
    if on_device and first.device != f"{DEVICE}:{device}":
        raise EngineError(f"input {first.name!r} is on {first.where}, but the engine runs on cuda:{device}")
    for a in arrays:
        if not a.contiguous:
            raise EngineError(
                f"input {a.name!r}: not contiguous (strides {a.strides}); pass a contiguous "
                "tensor (e.g. .contiguous()): device inputs are used in place, without a copy"
            )
    out_arrays = None
    if out is not None:
        if not on_device:
            raise EngineError("out= takes GPU tensors, for GPU inputs; host inputs return new numpy arrays")
        if len(out) != len(out_specs):
            names = ", ".join(s.name for s in out_specs)
            raise EngineError(f"out= needs {len(out_specs)} tensor(s) ({names}), got {len(out)}")
        out_arrays = [describe(o, f"out[{s.name}]") for o, s in zip(out, out_specs)]
        for o, s in zip(out_arrays, out_specs):
            # A dynamic output has -1 for its batch (dim 0); a static one states its shape in full.
            want = s.shape_for(n) if s.shape[0] == -1 else tuple(s.shape)
            if o.device != first.device:
                raise EngineError(f"output {s.name!r}: out= tensor on {o.where}, the inputs are on {first.where}")
            if o.dtype != s.dtype:
                raise EngineError(f"output {s.name!r}: out= tensor has dtype {o.dtype}, the engine writes {s.dtype}")
            if tuple(o.shape) != want and -1 not in s.shape[1:]:
                raise EngineError(
                    f"output {s.name!r}: out= tensor has shape {list(o.shape)}, the engine "
                    f"writes {list(want)} at batch {n}"
                )
            if not o.contiguous:
                raise EngineError(f"output {s.name!r}: out= tensor is not contiguous")
    return Call(arrays, n, on_device, out_arrays)


# -- how a runner binds a call (pure functions: the decisions, apart from the CUDA calls) ----------------------

LEGACY_STREAM, PER_THREAD_STREAM = 1, 2  # CUDA's handles of the default streams (cudaStreamLegacy, PerThread)


def output_binding(call: Call, cuda_graph: bool) -> str:
    """Where a run writes its outputs: "out" (the caller's out= tensors), "own" (the runner's own buffers,
    reused call after call: for host calls, whose results are copied to the host, and for CUDA graph runs
    without out=, copied into new tensors after the replay, so that the graph's addresses stay the same and
    one graph is replayed), or "new" (new tensors, written in place: no copy)."""
    if call.out is not None:
        return "out"
    return "own" if cuda_graph or not call.on_device else "new"


def graph_key(call: Call, input_ptrs: Sequence[int], output_ptrs: Sequence[int]) -> tuple:
    """What a captured CUDA graph is bound to: every input's shape (the batch, and a sequence length where the
    engine takes a range of them) and every address it reads or writes."""
    return (tuple(tuple(a.shape) for a in call.arrays), *input_ptrs, *output_ptrs)


def producer_streams(arrays: Sequence[Array], torch_stream: int | None = None) -> list[int]:
    """The streams a runner waits on (an event each) before reading device inputs `arrays` in place.

    `torch_stream` is the caller's current PyTorch stream (torch tensors). A `__cuda_array_interface__` v3
    names its producer's stream (None: nothing to wait for; 0, which the protocol forbids, is read as the
    legacy stream); DLPack capsules are taken with no stream, which the protocol makes the legacy default
    stream. The legacy default stream is left out: the runner's stream is a blocking stream, ordered after it
    already. The calling thread's per-thread default stream is always in: no other stream is ordered after it.
    """
    if not arrays or arrays[0].device == HOST:
        return []
    wanted: list[int] = []
    for a in arrays:
        if a.kind.startswith("torch."):
            s = torch_stream
        elif a.stream is not None:
            s = int(a.stream)
        else:
            s = None  # v2 interface or DLPack: the producer's work is on (or visible to) the legacy stream
        if s is not None and s not in (0, LEGACY_STREAM) and s not in wanted:
            wanted.append(s)
    if PER_THREAD_STREAM not in wanted:
        wanted.append(PER_THREAD_STREAM)
    return wanted
