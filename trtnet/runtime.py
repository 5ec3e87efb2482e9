"""Engines: a serialized plan with the shapes of its inputs and outputs, saved, loaded and run on CUDA streams.

>>> engine = trtnet.build(resnet50(weights=None), batch_size=(1, 8, 32))     # doctest: +SKIP
>>> logits, = engine(np.zeros((4, 3, 224, 224), np.float32))                 # doctest: +SKIP

Every call is checked first (input count, shape, dtype, device, batch against the profile), in plain Python,
before any CUDA call: a bad input is an `EngineError` naming it, what was given and what is allowed. Then the
engine runs on a stream of its own (`Runner`: one execution context, one stream, buffers allocated once and
grown when a larger batch comes). Several runners on one engine run concurrently; one context is never shared
between streams.

Inputs on the host (numpy arrays, CPU tensors) are copied into page-locked buffers and sent with asynchronous
copies; the results come back as new numpy arrays. Inputs already on the GPU (torch CUDA tensors, anything with
`__cuda_array_interface__` or CUDA `__dlpack__`) are used in place, without a copy: the results are written into
the caller's `out=` tensors when given (and those are returned), else into new torch tensors when the inputs are
torch tensors, else into new `DeviceArray`s (which own their memory and expose `__cuda_array_interface__`).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import time
import warnings
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from trtnet.errors import EngineError

FORMAT = "trtnet-engine"
FORMAT_VERSION = 1
_HOST, _DEVICE = "host", "cuda"


@dataclass(frozen=True)
class TensorSpec:
    """A network input or output: name, shape with the opt batch first, dtype name, batch range."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    min_batch: int = 0
    max_batch: int = 0

    def shape_for(self, batch: int) -> tuple[int, ...]:
        """The shape with `batch` in the batch dimension (dim 0)."""
        return (batch, *self.shape[1:])

    def allowed(self) -> str:
        """The shapes this input accepts, in words: `[1..32, 3, 224, 224]`."""
        lo, hi = self.min_batch or self.shape[0], self.max_batch or self.shape[0]
        head = str(lo) if lo == hi else f"{lo}..{hi}"
        return "[" + ", ".join([head, *map(str, self.shape[1:])]) + "]"


# -- plan files ----------------------------------------------------------------------------------------------

def sidecar_path(path: str | os.PathLike) -> Path:
    """Where the metadata of the plan at `path` lives: `<path>.json` next to it."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _spec_from_json(d: dict) -> TensorSpec:
    return TensorSpec(str(d["name"]), tuple(int(v) for v in d["shape"]), str(d["dtype"]), int(d["min_batch"]),
                      int(d["max_batch"]))


@dataclass
class Engine:
    """A built engine. `plan` is the serialized engine; calling the engine runs it on the GPU."""

    plan: bytes = field(repr=False)
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    backend: str = ""
    num_layers: int = 0
    build_seconds: float = 0.0
    precision: str = ""
    target: str = "aot"  # "sm_90" when built for one GPU; "aot" when built with no GPU (TensorRT for RTX)
    device: int = 0
    # Set by the engine cache: deletes the entry and builds again, for a cached plan this GPU rejects.
    rebuild: Callable[[], "Engine"] | None = field(default=None, repr=False, compare=False)
    _loaded: Any = field(default=None, init=False, repr=False, compare=False)
    _default: Any = field(default=None, init=False, repr=False, compare=False)

    # -- files ----------------------------------------------------------------------------------------------
    def metadata(self) -> dict:
        """What the sidecar JSON holds: enough to check a plan before TensorRT ever reads it."""
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "backend": self.backend, "target": self.target,
            "precision": self.precision, "num_layers": self.num_layers,
            "build_seconds": round(self.build_seconds, 3), "plan_bytes": len(self.plan),
            "plan_sha256": hashlib.sha256(self.plan).hexdigest(),
            "inputs": [asdict(s) for s in self.inputs], "outputs": [asdict(s) for s in self.outputs],
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the plan to `path` and its metadata to `<path>.json`, each atomically (temp file + rename).

        The plan file is a plain TensorRT plan (other TensorRT tools can read it); the sidecar carries the
        input/output specs, backend and a hash of the plan, so a damaged or mismatched pair is caught.
        """
        path = Path(path)
        _atomic_write(path, self.plan)
        _atomic_write(sidecar_path(path), (json.dumps(self.metadata(), indent=1) + "\n").encode())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, check_backend: bool = True) -> "Engine":
        """Read a plan saved by `Engine.save` and check it against its metadata and this process's backend.

        A truncated or modified plan, a missing or foreign sidecar, or a plan from another backend or version
        is an `EngineError` saying which and what to do. A plan for another GPU is caught when it is first run.
        """
        path = Path(path)
        meta_path = sidecar_path(path)
        try:
            plan = path.read_bytes()
        except OSError as e:
            raise EngineError(f"{path}: cannot read the plan: {e.strerror or e}") from e
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise EngineError(f"{path}: no metadata at {meta_path.name}; trtnet reads plans written by "
                              "Engine.save (plan + JSON sidecar). Rebuild it with trtnet.build") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise EngineError(f"{meta_path}: unreadable metadata ({e})") from e
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise EngineError(f"{meta_path}: not trtnet engine metadata (format {meta.get('format') if isinstance(meta, dict) else None!r})")
        if meta.get("format_version") != FORMAT_VERSION:
            raise EngineError(f"{meta_path}: metadata format version {meta.get('format_version')}, "
                              f"this trtnet reads version {FORMAT_VERSION}: rebuild the engine")
        want = int(meta.get("plan_bytes", -1))
        if len(plan) != want:
            raise EngineError(f"{path}: truncated or damaged plan: {len(plan)} bytes, its metadata says {want}")
        if hashlib.sha256(plan).hexdigest() != meta.get("plan_sha256"):
            raise EngineError(f"{path}: the plan does not match its metadata (sha256 differs): modified, or "
                              f"{meta_path.name} belongs to another plan")
        if check_backend:
            from trtnet.backend import get_backend

            here = str(get_backend())
            if meta.get("backend") != here:
                raise EngineError(f"{path}: built with {meta.get('backend')}, but this process uses {here}; "
                                  "a TensorRT plan only loads in the exact backend and version that built it: "
                                  "rebuild it with trtnet.build")
        try:
            return cls(plan, inputs=[_spec_from_json(d) for d in meta["inputs"]],
                       outputs=[_spec_from_json(d) for d in meta["outputs"]], backend=str(meta["backend"]),
                       num_layers=int(meta["num_layers"]), build_seconds=float(meta["build_seconds"]),
                       precision=str(meta.get("precision", "")), target=str(meta.get("target", "aot")))
        except (KeyError, TypeError, ValueError) as e:
            raise EngineError(f"{meta_path}: incomplete metadata ({type(e).__name__}: {e})") from e

    def summary(self, label: str = "engine") -> str:
        """One line: layers, build seconds, engine size."""
        return (f"{label}: {self.num_layers} layers, built in {self.build_seconds:.1f} s, "
                f"engine {len(self.plan) / 2**20:.1f} MiB ({self.backend})")

    # -- checking calls (no CUDA) ---------------------------------------------------------------------------
    @property
    def dynamic(self) -> bool:
        return any(s.min_batch != s.max_batch for s in self.inputs)

    def check_inputs(self, inputs: Sequence[Any], out: Sequence[Any] | None = None) -> "Call":
        """Validate a call without touching CUDA; returns what the runner needs. Raises `EngineError`."""
        if len(inputs) != len(self.inputs):
            names = ", ".join(s.name for s in self.inputs)
            raise EngineError(f"the engine takes {len(self.inputs)} input(s) ({names}), got {len(inputs)}")
        arrays = [describe(x, spec.name) for x, spec in zip(inputs, self.inputs)]
        batch = None
        for a, spec in zip(arrays, self.inputs):
            if a.dtype != spec.dtype:
                raise EngineError(f"input {spec.name!r}: dtype {a.dtype} given, the engine takes {spec.dtype}")
            rank_ok = len(a.shape) == len(spec.shape) and tuple(a.shape[1:]) == tuple(spec.shape[1:])
            if not rank_ok:
                raise EngineError(f"input {spec.name!r}: shape {list(a.shape)} given, the engine takes "
                                  f"{spec.allowed()}")
            lo, hi = spec.min_batch or spec.shape[0], spec.max_batch or spec.shape[0]
            if not lo <= a.shape[0] <= hi:
                where = (f"its optimization profile allows batch {lo}..{hi}" if lo != hi
                         else f"it was built for batch {lo} (build with batch_size=(min, opt, max) for a range)")
                raise EngineError(f"input {spec.name!r}: batch {a.shape[0]} given (shape {list(a.shape)}), {where}")
            if batch is not None and a.shape[0] != batch[1]:
                raise EngineError(f"input {spec.name!r}: batch {a.shape[0]}, but input {batch[0]!r} has batch "
                                  f"{batch[1]}: all inputs share the batch size")
            batch = batch or (spec.name, a.shape[0])
        first = arrays[0]
        for a in arrays[1:]:
            if a.device != first.device:
                raise EngineError(f"input {a.name!r} is on {a.where}, but input {first.name!r} is on "
                                  f"{first.where}: pass all inputs on the host or all on the same GPU")
        on_device = first.device != _HOST
        if on_device and first.device != f"{_DEVICE}:{self.device}":
            raise EngineError(f"input {first.name!r} is on {first.where}, but the engine runs on cuda:{self.device}")
        for a in arrays:
            if not a.contiguous:
                raise EngineError(f"input {a.name!r}: not contiguous (strides {a.strides}); pass a contiguous "
                                  "tensor (e.g. .contiguous()): device inputs are used in place, without a copy")
        n = batch[1] if batch else 0
        out_arrays = None
        if out is not None:
            if not on_device:
                raise EngineError("out= takes GPU tensors, for GPU inputs; host inputs return new numpy arrays")
            if len(out) != len(self.outputs):
                names = ", ".join(s.name for s in self.outputs)
                raise EngineError(f"out= needs {len(self.outputs)} tensor(s) ({names}), got {len(out)}")
            out_arrays = [describe(o, f"out[{s.name}]") for o, s in zip(out, self.outputs)]
            for o, s in zip(out_arrays, self.outputs):
                # A dynamic output has -1 for its batch (dim 0); a static one states its shape in full.
                want = s.shape_for(n) if s.shape[0] == -1 else tuple(s.shape)
                if o.device != first.device:
                    raise EngineError(f"output {s.name!r}: out= tensor on {o.where}, the inputs are on {first.where}")
                if o.dtype != s.dtype:
                    raise EngineError(f"output {s.name!r}: out= tensor has dtype {o.dtype}, the engine writes {s.dtype}")
                if tuple(o.shape) != want and -1 not in s.shape[1:]:
                    raise EngineError(f"output {s.name!r}: out= tensor has shape {list(o.shape)}, the engine "
                                      f"writes {list(want)} at batch {n}")
                if not o.contiguous:
                    raise EngineError(f"output {s.name!r}: out= tensor is not contiguous")
        return Call(arrays, n, on_device, out_arrays)

    # -- running --------------------------------------------------------------------------------------------
    def __call__(self, *inputs: Any, out: Sequence[Any] | None = None) -> list:
        """Run the engine once on its default runner and wait for the results (see the module docstring).

        The default runner serves one caller at a time: threads or concurrent streams each take a `runner()`.
        """
        call = self.check_inputs(inputs, out)
        if self._default is None:
            self._default = self.runner()
        return self._default.run(call)

    def runner(self, cuda_graph: bool = False) -> "Runner":
        """A new execution context on a new CUDA stream. Use one runner per concurrent stream of requests.

        `cuda_graph=True` captures the enqueue into a CUDA graph after one ordinary run for each batch size
        and set of buffer addresses, and replays it after that.
        """
        from trtnet.cudart import require_device

        require_device()
        return Runner(self, cuda_graph=cuda_graph)

    def throughput(self, *inputs: Any, streams: int = 2, requests: int = 100,
                   cuda_graph: bool = False) -> dict[str, float]:
        """Keep `streams` requests in flight (one runner each) for `requests` requests; inferences per second."""
        call = self.check_inputs(inputs)
        runners = [self.runner(cuda_graph) for _ in range(streams)]
        try:
            for r in runners:  # warm-up: first runs compile and allocate
                r.run(call)
            t0 = time.perf_counter()
            for i in range(requests):
                r = runners[i % streams]
                if r.busy:
                    r.wait()
                r.submit(call)
            for r in runners:
                if r.busy:
                    r.wait()
            seconds = time.perf_counter() - t0
        finally:
            for r in runners:
                r.close()
        batch = call.batch
        return {"streams": streams, "requests": requests, "seconds": seconds,
                "inferences_per_second": requests * batch / seconds, "requests_per_second": requests / seconds}

    def loaded(self) -> "_Loaded":
        """The deserialized engine (deserialized on first use; needs a GPU)."""
        if self._loaded is None:
            self._loaded = _Loaded.create(self)
        return self._loaded

    def close(self) -> None:
        """Free the GPU resources (runners, contexts, engine) and save the runtime cache."""
        if self._default is not None:
            self._default.close()
            self._default = None
        if self._loaded is not None:
            self._loaded.save_runtime_cache()
            self._loaded = None


# -- describing inputs (no CUDA) -----------------------------------------------------------------------------

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
        return f"the host ({self.kind})" if self.device == _HOST else f"{self.device} ({self.kind})"


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
_DLPACK_DTYPES = {(0, 8): "int8", (0, 16): "int16", (0, 32): "int32", (0, 64): "int64", (1, 8): "uint8",
                  (2, 16): "float16", (2, 32): "float32", (2, 64): "float64", (4, 16): "bfloat16", (6, 8): "bool"}


def describe(x: Any, name: str) -> Array:
    """Shape, dtype, device and address of `x` (numpy, CPU/CUDA torch tensor, CUDA array interface, DLPack).

    Reads only Python attributes: no CUDA call is made here.
    """
    kind = f"{type(x).__module__.split('.')[0]}.{type(x).__name__}"
    if isinstance(x, np.ndarray):
        return Array(name, tuple(x.shape), x.dtype.name, _HOST, kind, host=x, obj=x)
    cai = _cuda_array_interface(x, name)
    if cai is not None:
        shape = tuple(int(d) for d in cai["shape"])
        dtype = np.dtype(cai["typestr"])
        strides = tuple(cai["strides"]) if cai.get("strides") is not None else None
        return Array(name, shape, dtype.name, f"{_DEVICE}:{_device_index(x)}", kind, ptr=int(cai["data"][0]),
                     contiguous=_c_contiguous(shape, strides, dtype.itemsize), strides=strides,
                     stream=cai.get("stream"), obj=x)
    if hasattr(x, "__dlpack_device__"):
        dev_type, dev_id = x.__dlpack_device__()
        if int(dev_type) == _DLPACK_CPU:
            try:
                host = np.from_dlpack(x.detach() if hasattr(x, "detach") else x)
            except (TypeError, BufferError, RuntimeError, ValueError) as e:
                raise EngineError(f"input {name!r}: a {kind} numpy cannot read ({e})") from e
            return Array(name, tuple(host.shape), host.dtype.name, _HOST, kind, host=host, obj=x)
        if int(dev_type) == _DLPACK_CUDA:
            return _dlpack_device_array(x, name, kind, int(dev_id))
        raise EngineError(f"input {name!r}: a {kind} on DLPack device type {int(dev_type)}; trtnet takes host "
                          "arrays or CUDA device tensors")
    if hasattr(x, "__array__") and hasattr(x, "shape"):
        host = np.asarray(x)
        return Array(name, tuple(host.shape), host.dtype.name, _HOST, kind, host=host, obj=x)
    raise EngineError(f"input {name!r}: expected a numpy array or a CUDA tensor (torch, __cuda_array_interface__, "
                      f"__dlpack__), got {kind}")


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
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


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
    return Array(name, shape, dtype, f"{_DEVICE}:{dev_id}", kind, ptr=int(t.data or 0) + int(t.byte_offset),
                 contiguous=_c_contiguous(shape, strides, itemsize), strides=strides, obj=x, keep=capsule)


class DeviceArray:
    """GPU memory holding one result, for device inputs that are not torch tensors and came without `out=`.

    Exposes `__cuda_array_interface__` (so cupy, numba or torch can take it without a copy) and `numpy()`.
    """

    def __init__(self, shape: tuple[int, ...], dtype: str) -> None:
        from trtnet.cudart import DeviceBuffer

        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.nbytes = int(np.prod(shape, dtype=np.int64)) * self.dtype.itemsize
        self._buffer = DeviceBuffer()
        self.ptr = self._buffer.ensure(self.nbytes)
        weakref.finalize(self, self._buffer.close)  # the memory lives as long as this object

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False), "version": 3,
                "strides": None, "stream": None}

    def numpy(self) -> np.ndarray:
        from trtnet.cudart import check, cudart

        host = np.empty(self.shape, self.dtype)
        rt = cudart()
        check(rt.cudaMemcpy(host.ctypes.data, self.ptr, self.nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost),
              "cudaMemcpy(d2h)")
        return host



# -- on the GPU ----------------------------------------------------------------------------------------------

def runtime_cache_dir() -> Path:
    from trtnet.cache import cache_dir

    return cache_dir() / "runtime"


@dataclass
class _Loaded:
    """The deserialized engine, shared by the runners of one `Engine` (each has its own context)."""

    engine: Engine
    trt_runtime: Any
    cuda_engine: Any
    runtime_cache: Any = None
    cache_path: Path | None = None
    saved: bool = False
    configs: list = field(default_factory=list)  # runtime configs stay alive as long as their contexts

    @classmethod
    def create(cls, engine: Engine) -> "_Loaded":
        from trtnet.backend import get_backend, get_trt, logger
        from trtnet.cudart import check, compute_capability, cudart, require_device

        require_device()
        check(cudart().cudaSetDevice(engine.device), f"cudaSetDevice({engine.device})")
        here = compute_capability(engine.device)
        # TensorRT for RTX judges portability itself (below); a data-centre TensorRT plan is tied to its GPU.
        if not get_backend().is_rtx and engine.target not in ("aot", "", here):
            raise _reject(engine, f"it was built for a {engine.target} GPU and this GPU is {here}")
        trt = get_trt()
        runtime = trt.Runtime(logger())
        if hasattr(runtime, "get_engine_validity"):
            validity, diagnostics = runtime.get_engine_validity(engine.plan)
            if validity == trt.EngineValidity.INVALID:
                reasons = [n.lower().replace("_", " ") for n, v in trt.EngineInvalidityDiagnostics.__members__.items()
                           if int(diagnostics) & int(v)]
                raise _reject(engine, f"{get_backend()} says the plan is invalid here "
                                      f"({', '.join(reasons) or 'no reason given'})")
        cuda_engine = runtime.deserialize_cuda_engine(engine.plan)
        if cuda_engine is None:
            raise _reject(engine, f"{get_backend()} could not deserialize it (another TensorRT version, another "
                                  "GPU, or a damaged plan; see TensorRT's log above)")
        loaded = cls(engine, runtime, cuda_engine)
        if get_backend().has("create_runtime_config") and hasattr(trt.IRuntimeConfig, "create_runtime_cache"):
            loaded._open_runtime_cache()
        return loaded

    def _open_runtime_cache(self) -> None:
        """TensorRT for RTX compiles kernels when an engine first runs; its runtime cache keeps that work.

        One cache file per plan in the cache folder; a cache from another driver or GPU is refused by
        TensorRT itself (deserialize returns False) and simply rebuilt.
        """
        config = self.cuda_engine.create_runtime_config()
        cache = config.create_runtime_cache()
        path = runtime_cache_dir() / f"{hashlib.sha256(self.engine.plan).hexdigest()[:32]}.rtcache"
        if path.exists():
            if not cache.deserialize(path.read_bytes()):
                warnings.warn(f"{path}: runtime cache made for another GPU, driver or TensorRT version; "
                              "kernels are compiled again", stacklevel=3)
        self.runtime_cache, self.cache_path = cache, path
        self.configs.append(config)

    def context(self):
        """A new execution context (with the shared runtime cache under TensorRT for RTX)."""
        if self.runtime_cache is None:
            return self.cuda_engine.create_execution_context()
        config = self.cuda_engine.create_runtime_config()
        config.set_runtime_cache(self.runtime_cache)
        self.configs.append(config)
        return self.cuda_engine.create_execution_context(config)

    def save_runtime_cache(self) -> None:
        if self.runtime_cache is None or self.cache_path is None:
            return
        blob = self.runtime_cache.serialize()
        if blob is not None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(self.cache_path, bytes(memoryview(blob)))
            self.saved = True


class PlanRejected(EngineError):
    """TensorRT (or the plan's metadata) says this GPU cannot run the plan."""


def _reject(engine: Engine, why: str) -> PlanRejected:
    hint = " (a cached engine: it is rebuilt)" if engine.rebuild else "; rebuild it with trtnet.build"
    return PlanRejected(f"this GPU cannot run the plan: {why}{hint}")


class Runner:
    """One execution context on one CUDA stream, with its own buffers (and CUDA graphs when asked)."""

    _GRAPHS_KEPT = 8  # captured graphs per runner; each is bound to a batch size and buffer addresses

    def __init__(self, engine: Engine, cuda_graph: bool = False) -> None:
        from trtnet.cudart import Stream

        self.engine = engine
        try:
            loaded = engine.loaded()
        except PlanRejected:
            if engine.rebuild is None:
                raise
            warnings.warn("the cached engine does not run on this GPU; building it again", stacklevel=3)
            fresh = engine.rebuild()
            engine.plan, engine.target, engine.build_seconds = fresh.plan, fresh.target, fresh.build_seconds
            engine.rebuild = None
            engine._loaded = None
            loaded = engine.loaded()
        self.loaded = loaded
        self.context = loaded.context()
        if self.context is None:
            raise EngineError("TensorRT could not create an execution context (out of GPU memory?)")
        self.stream = Stream()
        self.cuda_graph = cuda_graph
        self.graphs: dict[tuple, Any] = {}
        self.device: dict[str, Any] = {}
        self.host: dict[str, Any] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.pending: Call | None = None
        self.results: list | None = None
        # Frees the GPU resources when the runner is dropped or the process ends, if close() was not called.
        self._free = weakref.finalize(self, _free_runner, self.graphs, self.device, self.host, self.stream)

    @property
    def busy(self) -> bool:
        return self.pending is not None

    # -- buffers --------------------------------------------------------------------------------------------
    def _device_buffer(self, name: str, nbytes: int) -> int:
        from trtnet.cudart import DeviceBuffer

        return self.device.setdefault(name, DeviceBuffer()).ensure(nbytes)

    def _host_buffer(self, name: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        from trtnet.cudart import HostBuffer

        buf = self.host.setdefault(name, HostBuffer())
        buf.ensure(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
        return buf.view(shape, dtype)

    def _set_shapes(self, call: Call) -> dict[str, tuple[int, ...]]:
        """Input shapes into the context (only when they change); the output shapes TensorRT infers."""
        for a, spec in zip(call.arrays, self.engine.inputs):
            if self.shapes.get(spec.name) != a.shape:
                if not self.context.set_input_shape(spec.name, a.shape):
                    raise EngineError(f"input {spec.name!r}: TensorRT refused shape {list(a.shape)}")
                self.shapes[spec.name] = a.shape
        return {s.name: tuple(self.context.get_tensor_shape(s.name)) for s in self.engine.outputs}

    # -- one inference --------------------------------------------------------------------------------------
    def submit(self, call: Call) -> None:
        """Queue one inference on this runner's stream (no wait). `call` comes from `Engine.check_inputs`."""
        from trtnet.cudart import memcpy_async

        if self.pending is not None:
            raise EngineError("this runner has a request in flight: call wait() first, or use another runner")
        out_shapes = self._set_shapes(call)
        for o, s in zip(call.out or (), self.engine.outputs):
            if tuple(o.shape) != out_shapes[s.name]:  # only reached for outputs with non-batch dynamic dims
                raise EngineError(f"output {s.name!r}: out= tensor has shape {list(o.shape)}, the engine "
                                  f"writes {list(out_shapes[s.name])}")
        addresses: list[int] = []
        if call.on_device:
            for a in call.arrays:
                if a.stream not in (None, 0, 1, 2):  # a producer's own stream: order our work after it
                    self.stream.wait_for(int(a.stream))
                self.context.set_tensor_address(a.name, a.ptr)
                addresses.append(a.ptr)
            outs = self._device_outputs(call, out_shapes)
            for s, (ptr, _) in zip(self.engine.outputs, outs):
                self.context.set_tensor_address(s.name, ptr)
                addresses.append(ptr)
            results = [obj for _, obj in outs]
        else:
            for a, spec in zip(call.arrays, self.engine.inputs):
                ptr = self._upload(spec, a)
                self.context.set_tensor_address(spec.name, ptr)
                addresses.append(ptr)
            addresses += self._bind_own_outputs(out_shapes)
            results = None
        self._enqueue((call.batch, *addresses))
        if not call.on_device:
            for s in self.engine.outputs:
                staged = self._host_buffer(s.name, out_shapes[s.name], s.dtype)
                memcpy_async(staged.ctypes.data, self.device[s.name].ptr, staged.nbytes, "d2h", self.stream)
            results = [(s.name, out_shapes[s.name], s.dtype) for s in self.engine.outputs]
        self.pending, self.results = call, results

    def _upload(self, spec: TensorSpec, a: Array) -> int:
        """Stage host input `a` in page-locked memory and queue its copy to this runner's device buffer."""
        from trtnet.cudart import memcpy_async

        staged = self._host_buffer(spec.name, a.shape, spec.dtype)
        np.copyto(staged, a.host)
        ptr = self._device_buffer(spec.name, staged.nbytes)
        memcpy_async(ptr, staged.ctypes.data, staged.nbytes, "h2d", self.stream)
        return ptr

    def _bind_own_outputs(self, shapes: dict[str, tuple[int, ...]]) -> list[int]:
        """Point every output at this runner's own device buffer (grown to `shapes`); their addresses."""
        addresses = []
        for s in self.engine.outputs:
            nbytes = int(np.prod(shapes[s.name], dtype=np.int64)) * np.dtype(s.dtype).itemsize
            ptr = self._device_buffer(s.name, nbytes)
            self.context.set_tensor_address(s.name, ptr)
            addresses.append(ptr)
        return addresses

    def _device_outputs(self, call: Call, shapes: dict[str, tuple[int, ...]]) -> list[tuple[int, Any]]:
        if call.out is not None:
            return [(o.ptr, o.obj) for o in call.out]
        first = call.arrays[0].obj
        if type(first).__module__.split(".")[0] == "torch":
            import torch  # the caller's own tensors are torch: answer in kind

            made = [torch.empty(shapes[s.name], dtype=getattr(torch, s.dtype), device=first.device)
                    for s in self.engine.outputs]
            return [(t.data_ptr(), t) for t in made]
        made = [DeviceArray(shapes[s.name], s.dtype) for s in self.engine.outputs]
        return [(d.ptr, d) for d in made]

    def _enqueue(self, key: tuple) -> None:
        from trtnet.cudart import Graph

        if self.cuda_graph:
            graph = self.graphs.get(key)
            if graph is not None:
                graph.launch(self.stream)
                return
        if not self.context.execute_async_v3(int(self.stream)):
            raise EngineError("TensorRT failed to enqueue the inference (see its log above)")
        if self.cuda_graph:
            # The ordinary run above is the warm-up TensorRT needs after a shape change; capture the next.
            if len(self.graphs) >= self._GRAPHS_KEPT:
                old = next(iter(self.graphs))
                self.graphs.pop(old).close()
            self.stream.synchronize()
            capturable = getattr(self.context, "is_stream_capturable", None)
            if capturable is not None and not capturable(int(self.stream)):
                warnings.warn("TensorRT says this stream cannot be captured; running without a CUDA graph",
                              stacklevel=3)
                self.cuda_graph = False
                return
            self.graphs[key] = Graph(self.stream, self._execute)

    def _execute(self) -> None:
        if not self.context.execute_async_v3(int(self.stream)):
            raise EngineError("TensorRT failed to enqueue the inference (see its log above)")

    def wait(self) -> list:
        """Wait for the request in flight; its outputs (numpy arrays for host inputs)."""
        if self.pending is None:
            raise EngineError("no request in flight on this runner")
        self.stream.synchronize()
        call, results = self.pending, self.results
        self.pending = self.results = None
        if not self.loaded.saved:
            self.loaded.save_runtime_cache()
        if call.on_device:
            return results
        return [self._host_buffer(name, shape, dtype).copy() for name, shape, dtype in results]

    def run(self, call: Call) -> list:
        self.submit(call)
        return self.wait()

    def __call__(self, *inputs: Any, out: Sequence[Any] | None = None) -> list:
        return self.run(self.engine.check_inputs(inputs, out))

    def time(self, *inputs: Any, iters: int = 1000, warmup: int = 50) -> np.ndarray:
        """Per-inference latency in ms, timed with CUDA events; inputs are put on the GPU once, beforehand."""
        from trtnet.cudart import Event

        call = self.engine.check_inputs(inputs)
        out_shapes = self._set_shapes(call)
        addresses = []
        for a, spec in zip(call.arrays, self.engine.inputs):
            ptr = a.ptr if call.on_device else self._upload(spec, a)
            self.context.set_tensor_address(spec.name, ptr)
            addresses.append(ptr)
        addresses += self._bind_own_outputs(out_shapes)
        self.stream.synchronize()
        key = (call.batch, *addresses)
        start, end = Event(), Event()
        times = np.empty(iters, np.float64)
        try:
            for _ in range(warmup):
                self._enqueue(key)
            self.stream.synchronize()
            for i in range(iters):
                start.record(self.stream)
                self._enqueue(key)
                end.record(self.stream)
                end.synchronize()
                times[i] = end.since(start)
        finally:
            start.close()
            end.close()
        if not self.loaded.saved:
            self.loaded.save_runtime_cache()
        return times

    def close(self) -> None:
        """Free this runner's graphs, buffers, stream and context."""
        if self.pending is not None:
            self.stream.synchronize()
            self.pending = None
        self._free()
        self.context = None


def _free_runner(graphs: dict, device: dict, host: dict, stream) -> None:
    for g in graphs.values():
        g.close()
    graphs.clear()
    for buf in (*device.values(), *host.values()):
        buf.close()
    device.clear()
    host.clear()
    stream.close()
