"""A thin layer over cuda-python's runtime API (`cuda.bindings.runtime`): checked calls, buffers, streams.

cuda-python returns `(error, *values)` from every call; `check` turns a non-zero error into an `EngineError`
naming the call. cuda-python imports on a machine with no GPU (its calls then return an error code), so
`device_problem()` can say plainly why nothing can run.
"""

from __future__ import annotations

import ctypes
import functools
import weakref
from types import ModuleType

import numpy as np

from trtnet.errors import EngineError


@functools.cache
def cudart() -> ModuleType:
    """`cuda.bindings.runtime`, or an `EngineError` saying how to install it."""
    try:
        from cuda.bindings import runtime
    except ImportError as e:
        raise EngineError(
            "running an engine needs cuda-python: pip install 'trtnet[cuda]' "
            f"(or `pip install cuda-python`); import failed: {e}"
        ) from e
    return runtime


def error_name(err) -> str:
    rt = cudart()
    code, name = rt.cudaGetErrorName(err)
    return name.decode() if int(code) == 0 and isinstance(name, bytes) else str(err)


def check(result, call: str = "CUDA call"):
    """Unpack a cuda-python result `(err, *values)`: the value(s), or an `EngineError` naming `call`."""
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if int(err) != 0:
        raise EngineError(f"{call} failed: {error_name(err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


@functools.cache
def device_problem() -> str | None:
    """None when a CUDA GPU is usable; otherwise why not, in words (cached: asked once per process)."""
    try:
        rt = cudart()
    except EngineError as e:
        return str(e)
    err, count = rt.cudaGetDeviceCount()
    if int(err) != 0:
        return f"no CUDA GPU is usable: cudaGetDeviceCount says {error_name(err)}"
    if count == 0:
        return "no CUDA GPU: cudaGetDeviceCount found 0 devices"
    return None


def require_device() -> None:
    problem = device_problem()
    if problem is not None:
        raise EngineError(
            f"cannot run the engine: {problem}. trtnet builds engines without a GPU "
            "(trtnet.build, Engine.save), but running one needs a CUDA GPU"
        )


def compute_capability(device: int = 0) -> str | None:
    """'sm_90' for the GPU `device`, or None when there is no usable GPU."""
    if device_problem() is not None:
        return None
    props = check(cudart().cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    return f"sm_{props.major}{props.minor}"


class Stream:
    """A CUDA stream of our own (never the legacy default stream, which makes TensorRT synchronise)."""

    def __init__(self) -> None:
        rt = cudart()
        # Blocking w.r.t. the legacy default stream on purpose: work a caller queued there on tensors it
        # hands us (PyTorch's default stream) is then ordered before ours without an explicit event.
        self.handle = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamDefault), "cudaStreamCreateWithFlags")

    def __int__(self) -> int:
        return int(self.handle)

    def synchronize(self) -> None:
        check(cudart().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def wait_for(self, other_stream: int) -> None:
        """Order this stream after the work queued so far on `other_stream` (a raw handle)."""
        rt = cudart()
        event = Event(timing=False)
        check(rt.cudaEventRecord(event.handle, other_stream), "cudaEventRecord")
        check(rt.cudaStreamWaitEvent(self.handle, event.handle, 0), "cudaStreamWaitEvent")
        event.close()

    def close(self) -> None:
        if self.handle is not None:
            cudart().cudaStreamDestroy(self.handle)
            self.handle = None


class Event:
    def __init__(self, timing: bool = True) -> None:
        rt = cudart()
        flags = rt.cudaEventDefault if timing else rt.cudaEventDisableTiming
        self.handle = check(rt.cudaEventCreateWithFlags(flags), "cudaEventCreateWithFlags")

    def record(self, stream: Stream) -> None:
        check(cudart().cudaEventRecord(self.handle, stream.handle), "cudaEventRecord")

    def synchronize(self) -> None:
        check(cudart().cudaEventSynchronize(self.handle), "cudaEventSynchronize")

    def since(self, start: Event) -> float:
        """Milliseconds from `start` to this event (both recorded and complete)."""
        return float(check(cudart().cudaEventElapsedTime(start.handle, self.handle), "cudaEventElapsedTime"))

    def close(self) -> None:
        if self.handle is not None:
            cudart().cudaEventDestroy(self.handle)
            self.handle = None


class DeviceBuffer:
    """Device memory that grows to the largest size asked for and is then reused."""

    _alloc, _free = "cudaMalloc", "cudaFree"  # cuda-python runtime calls; HostBuffer uses the pinned pair

    def __init__(self) -> None:
        self.ptr = 0
        self.nbytes = 0

    def ensure(self, nbytes: int) -> int:
        if nbytes > self.nbytes:
            self.close()
            alloc = getattr(cudart(), self._alloc)
            self.ptr = int(check(alloc(max(nbytes, 1)), f"{self._alloc}({nbytes} bytes)"))
            self.nbytes = nbytes
        return self.ptr

    def close(self) -> None:
        if self.ptr:
            getattr(cudart(), self._free)(self.ptr)
            self.ptr, self.nbytes = 0, 0


class HostBuffer(DeviceBuffer):
    """Page-locked host memory (so copies are truly asynchronous), seen as numpy arrays."""

    _alloc, _free = "cudaMallocHost", "cudaFreeHost"

    def view(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        raw = (ctypes.c_ubyte * max(n, 1)).from_address(self.ptr)
        return np.frombuffer(raw, dtype=np.uint8, count=n).view(dtype).reshape(shape)


def memcpy_async(dst: int, src: int, nbytes: int, kind: str, stream: Stream) -> None:
    """Copy `nbytes` on `stream`; `kind` is 'h2d', 'd2h' or 'd2d'."""
    rt = cudart()
    kinds = {
        "h2d": rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
        "d2h": rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
        "d2d": rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice,
    }
    if nbytes:
        check(rt.cudaMemcpyAsync(dst, src, nbytes, kinds[kind], stream.handle), f"cudaMemcpyAsync({kind})")


class Graph:
    """A CUDA graph captured from the work queued on a stream (here: one TensorRT enqueue)."""

    def __init__(self, stream: Stream, enqueue) -> None:
        rt = cudart()
        check(
            rt.cudaStreamBeginCapture(stream.handle, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
            "cudaStreamBeginCapture",
        )
        try:
            enqueue()
        finally:
            graph = check(rt.cudaStreamEndCapture(stream.handle), "cudaStreamEndCapture")
        self.graph = graph
        self.exec = check(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")

    def launch(self, stream: Stream) -> None:
        check(cudart().cudaGraphLaunch(self.exec, stream.handle), "cudaGraphLaunch")

    def close(self) -> None:
        rt = cudart()
        if self.exec is not None:
            rt.cudaGraphExecDestroy(self.exec)
            self.exec = None
        if self.graph is not None:
            rt.cudaGraphDestroy(self.graph)
            self.graph = None


class DeviceArray:
    """GPU memory holding one result, for device inputs that are not torch tensors and came without `out=`.

    Exposes `__cuda_array_interface__` (so cupy, numba or torch can take it without a copy) and `numpy()`.
    """

    def __init__(self, shape: tuple[int, ...], dtype: str) -> None:
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.nbytes = int(np.prod(shape, dtype=np.int64)) * self.dtype.itemsize
        self._buffer = DeviceBuffer()
        self.ptr = self._buffer.ensure(self.nbytes)
        weakref.finalize(self, self._buffer.close)  # the memory lives as long as this object

    @property
    def __cuda_array_interface__(self) -> dict:
        return {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "data": (self.ptr, False),
            "version": 3,
            "strides": None,
            "stream": None,
        }

    def numpy(self) -> np.ndarray:
        host = np.empty(self.shape, self.dtype)
        rt = cudart()
        check(
            rt.cudaMemcpy(host.ctypes.data, self.ptr, self.nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost),
            "cudaMemcpy(d2h)",
        )
        return host
