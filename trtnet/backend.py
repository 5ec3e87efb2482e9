"""The one place that imports TensorRT.

Two products share one network API: NVIDIA TensorRT (`tensorrt`, 10.x/11.x) and TensorRT for RTX
(`tensorrt_rtx_bindings` from the PyPI wheels, or `tensorrt_rtx` from NVIDIA's meta-package). Everything
else in trtnet asks this module for the TensorRT module and for what it can do.

Set ``TRTNET_BACKEND`` to ``tensorrt`` or ``tensorrt_rtx`` to force one.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

import ml_dtypes
import numpy as np

from trtnet.errors import BackendError, TrtnetError

# Module names to try, per backend, in order. Data-centre TensorRT first: where both exist, it is the one
# built for the GPU in the machine.
_CANDIDATES: dict[str, tuple[str, ...]] = {
    # `tensorrt` is the meta-package's name; the bindings wheel alone (tensorrt-cu12-bindings) installs
    # `tensorrt_bindings`, as TensorRT for RTX's installs `tensorrt_rtx_bindings`.
    "tensorrt": ("tensorrt", "tensorrt_bindings"),
    "tensorrt_rtx": ("tensorrt_rtx_bindings", "tensorrt_rtx"),
}


@dataclass(frozen=True)
class Backend:
    """The TensorRT module in use and what it offers."""

    trt: ModuleType
    kind: str  # "tensorrt" or "tensorrt_rtx"
    module_name: str
    version: str

    @property
    def is_rtx(self) -> bool:
        return self.kind == "tensorrt_rtx"

    def has(self, feature: str) -> bool:
        """Whether the network or runtime API has `feature` (`add_attention`, `create_runtime_config`...)."""
        trt = self.trt
        return any(hasattr(cls, feature) for cls in (trt.INetworkDefinition, trt.ICudaEngine, trt.IBuilderConfig))

    def builds_layer(self, layer_type: str) -> bool:
        """Whether this backend can build a network holding a layer of `layer_type` (a `LayerType` name).

        A network may be constructed with layers the builder then refuses: TensorRT for RTX accepts `add_nms` but
        its build fails with "[NMS] has no runners that implement it" (measured with TensorRT for RTX 1.7).
        """
        return not (self.is_rtx and layer_type in _RTX_UNBUILDABLE)

    def __str__(self) -> str:
        return f"{self.kind} {self.version}"


# Layer types TensorRT for RTX constructs but cannot build; data-centre TensorRT builds them all.
_RTX_UNBUILDABLE = frozenset({"NMS"})


def _try_import(name: str) -> ModuleType | None:
    try:
        module = importlib.import_module(name)
    except Exception:  # a broken install raises anything from ImportError to OSError; treat as absent
        return None
    return module if hasattr(module, "INetworkDefinition") else None


@functools.cache
def get_backend() -> Backend:
    """The selected backend, imported once. Raises `BackendError` naming what was tried."""
    wanted = os.environ.get("TRTNET_BACKEND", "").strip().lower()
    if wanted and wanted not in _CANDIDATES:
        raise BackendError(f"TRTNET_BACKEND={wanted!r}: expected one of {sorted(_CANDIDATES)}")
    kinds = [wanted] if wanted else list(_CANDIDATES)
    tried = []
    for kind in kinds:
        for name in _CANDIDATES[kind]:
            tried.append(name)
            module = _try_import(name)
            if module is not None:
                return Backend(trt=module, kind=kind, module_name=name, version=module.__version__)
    install = (
        "install NVIDIA TensorRT (`pip install tensorrt`), or leave TRTNET_BACKEND unset"
        if wanted == "tensorrt"
        else "install TensorRT for RTX with `pip install tensorrt-rtx-cu12-bindings tensorrt-rtx-cu12-libs`"
    )
    raise BackendError(f"no TensorRT backend could be imported (tried {', '.join(tried)}); {install}")


def get_trt() -> ModuleType:
    """The TensorRT module itself (`tensorrt` or `tensorrt_rtx_bindings`)."""
    return get_backend().trt


@dataclass(frozen=True)
class DataTypeInfo:
    """One TensorRT `DataType` as trtnet knows it: the one table that the DSL's names (trtnet.dtypes), the
    interpreter's numpy types, the sidecar's checks and the ops' scalar promotion all read."""

    name: str  # trtnet's name for it, in model code, nn.Input and plan sidecars: "float16"
    member: str  # its trt.DataType member: "HALF"
    numpy: np.dtype  # the numpy dtype that holds its values: ml_dtypes' for bfloat16 and FP8 (numpy has neither)
    is_float: bool


# The types trtnet handles. FP8 is E4M3, the only FP8 TensorRT has; the packed 4-bit types (INT4, FP4) and the
# E8M0 block scales are absent (the interpreter runs block scales of the types above, nothing emits them).
DATA_TYPES: tuple[DataTypeInfo, ...] = (
    DataTypeInfo("float32", "FLOAT", np.dtype(np.float32), True),
    DataTypeInfo("float16", "HALF", np.dtype(np.float16), True),
    DataTypeInfo("bfloat16", "BF16", np.dtype(ml_dtypes.bfloat16), True),
    DataTypeInfo("float8_e4m3", "FP8", np.dtype(ml_dtypes.float8_e4m3fn), True),
    DataTypeInfo("int8", "INT8", np.dtype(np.int8), False),
    DataTypeInfo("uint8", "UINT8", np.dtype(np.uint8), False),
    DataTypeInfo("int32", "INT32", np.dtype(np.int32), False),
    DataTypeInfo("int64", "INT64", np.dtype(np.int64), False),
    DataTypeInfo("bool", "BOOL", np.dtype(np.bool_), False),
)


# What TensorRT logs, beside its real message, whenever an API call fails on a machine without a CUDA driver
# (it probes the driver while reporting the error): "cudaError 35: CUDA driver version is insufficient for
# CUDA runtime version". Building needs no GPU, so on a CPU-only machine that line is noise that hides the real
# reason next to it; it is dropped. Where a GPU is meant to run an engine, the runtime's own CUDA calls report
# a missing or old driver (trtnet.runtime), so nothing is lost.
_CUDA_DRIVER_NOISE = ("cudaError 35", "CUDA driver version is insufficient")


def _is_driver_noise(message: str) -> bool:
    return any(marker in message for marker in _CUDA_DRIVER_NOISE)


def _without_source_location(message: str) -> str:
    """TensorRT's message without the place in TensorRT's own sources (`In validate at /_src/...cpp:199`)."""
    return re.sub(r"\s*In \w+ at /\S+:\d+\)", ")", message).strip()


@functools.cache
def logger():
    """One TensorRT logger for the process (TensorRT wants a single one).

    It prints warnings and errors to stderr as TensorRT's own logger does (`[TRT] [E] ...`), less the CUDA-driver
    line of a CPU-only machine (see `_CUDA_DRIVER_NOISE`). Inside `capture_errors()` it hands errors to the
    caller instead, so that the DSL can put TensorRT's reason into the error it raises.
    """
    trt = get_trt()
    severity = trt.ILogger.Severity
    tags = {severity.INTERNAL_ERROR: "F", severity.ERROR: "E", severity.WARNING: "W", severity.INFO: "I"}

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.min_severity = severity.WARNING
            self.local = threading.local()  # each thread's open capture_errors lists

        def log(self, level, message: str) -> None:
            if _is_driver_noise(message):
                return
            if level == severity.WARNING and getattr(self.local, "quiet", 0):
                return  # trtnet reading a network back (see `quiet_warnings`)
            captures = getattr(self.local, "captures", ())
            if captures and level in (severity.ERROR, severity.INTERNAL_ERROR):
                captures[-1].append(_without_source_location(message))
            elif level <= self.min_severity:  # lower is more severe
                print(f"[TRT] [{tags.get(level, 'V')}] {message}", file=sys.stderr)

    return _Logger()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM inside the block are held and delivered as it ends, to the handlers there were.

    For TensorRT calls that call back into Python, the ONNX parser's: Python runs a signal's handler on entry to
    the next Python code, the logger's `log`, whose exception the bindings print ("Exception caught in log()")
    and drop, so the parse went on and its failure was reported as bad input. Held, the signal still interrupts
    a blocked read (Python's handlers do not restart system calls). Outside the main thread, which alone may set
    handlers, the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    kept = {s: signal.signal(s, lambda signum, _frame: held.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in kept.items():
            signal.signal(s, handler)
        if held:
            signal.raise_signal(held[0])  # to the handler there was: KeyboardInterrupt, trtnet's Terminated


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    """TensorRT's warnings not printed, for this thread, inside the block: for trtnet's own reading of a network
    it made, where an accessor of a layer with dynamic dims warns that it "works only for static size" (a BERT
    build with a sequence range printed 53 such lines, from the engine cache's key)."""
    local = logger().local
    local.quiet = getattr(local, "quiet", 0) + 1
    try:
        yield
    finally:
        local.quiet -= 1


class capture_errors:
    """Collect the errors TensorRT logs inside the block, for this thread, in the list the block gets (without
    the place in TensorRT's own sources that each names).

    If the block raises a `TrtnetError`, it is taken to carry them (it names TensorRT's reason) and they are not
    printed; otherwise they go on at the end of the block: to an enclosing block, or printed as they would have
    been without it.

    >>> with capture_errors() as errors:                                  # doctest: +SKIP
    ...     layer = network.add_elementwise(a, b, op)
    ...     if layer is None:
    ...         raise NetworkError(f"add refused: {'; '.join(errors)}")
    """

    def __enter__(self) -> list[str]:
        local = logger().local
        self.errors: list[str] = []
        local.captures = (*getattr(local, "captures", ()), self.errors)
        return self.errors

    def __exit__(self, kind, value, traceback) -> None:
        local = logger().local
        local.captures = tuple(c for c in local.captures if c is not self.errors)
        if kind is not None and issubclass(kind, TrtnetError):
            return
        if local.captures:  # an enclosing block collects them in turn
            local.captures[-1].extend(self.errors)
            return
        for message in self.errors:
            print(f"[TRT] [E] {message}", file=sys.stderr)
