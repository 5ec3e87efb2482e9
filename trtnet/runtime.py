"""Engines on CUDA: a plan deserialized once, run by runners that each own a context, a stream and buffers.

>>> engine = trtnet.build(resnet50(weights=None), batch_size=(1, 8, 32))     # doctest: +SKIP
>>> logits, = engine(np.zeros((4, 3, 224, 224), np.float32))                 # doctest: +SKIP

Every call is checked first, in plain Python (`trtnet.calls`). Host inputs go through page-locked buffers and
come back as numpy arrays; GPU inputs (torch CUDA tensors, `__cuda_array_interface__`, CUDA `__dlpack__`) are
used in place, the results going into `out=`, new torch tensors, or new `DeviceArray`s (README: Runtime).
Several runners on one engine run concurrently; one context is never shared between streams.

A plan this GPU refuses raises `PlanRejected` when first loaded. The runtime knows plans, not models: it never
rebuilds anything (the builder asks before it hands out a cached plan; see `trtnet.build`).
"""
from __future__ import annotations

import hashlib
import time
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trtnet.backend import get_backend, get_trt, logger
from trtnet.calls import Array, Call, check_call
from trtnet.cudart import (DeviceArray, DeviceBuffer, Event, Graph, HostBuffer, Stream, check, compute_capability,
                           cudart, memcpy_async, require_device)
from trtnet.errors import EngineError
from trtnet.plan import Plan, TensorSpec, atomic_write
from trtnet.target import cache_dir

__all__ = ["DeviceArray", "Engine", "PlanRejected", "Runner"]


class PlanRejected(EngineError):
    """TensorRT (or the plan's metadata) says this GPU cannot run the plan: rebuild it here."""


@dataclass
class Engine(Plan):
    """A built engine: a `Plan` (save, load, summary) that runs on the GPU when called."""

    device: int = 0
    _loaded: Any = field(default=None, init=False, repr=False, compare=False)
    _default: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def dynamic(self) -> bool:
        return any(s.min_batch != s.max_batch or s.min_shape != s.max_shape for s in self.inputs)

    def check_inputs(self, inputs: Sequence[Any], out: Sequence[Any] | None = None) -> Call:
        """Validate a call without touching CUDA; returns what the runner needs. Raises `EngineError`."""
        return check_call(self.inputs, self.outputs, self.device, inputs, out)

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

        `cuda_graph=True` captures the enqueue into a CUDA graph after one ordinary run for each set of input shapes
        and set of buffer addresses, and replays it after that.
        """
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
        path = cache_dir() / "runtime" / f"{hashlib.sha256(self.engine.plan).hexdigest()[:32]}.rtcache"
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
            atomic_write(self.cache_path, bytes(memoryview(blob)))
            self.saved = True


def _reject(engine: Engine, why: str) -> PlanRejected:
    return PlanRejected(f"this GPU cannot run the plan: {why}; rebuild it with trtnet.build")


class Runner:
    """One execution context on one CUDA stream, with its own buffers (and CUDA graphs when asked)."""

    _GRAPHS_KEPT = 8  # captured graphs per runner; each is bound to the input shapes and buffer addresses

    def __init__(self, engine: Engine, cuda_graph: bool = False) -> None:
        self.engine = engine
        self.loaded = engine.loaded()
        self.context = self.loaded.context()
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
        return self.device.setdefault(name, DeviceBuffer()).ensure(nbytes)

    def _host_buffer(self, name: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
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
        self._enqueue((tuple(a.shape for a in call.arrays), *addresses))
        if not call.on_device:
            for s in self.engine.outputs:
                staged = self._host_buffer(s.name, out_shapes[s.name], s.dtype)
                memcpy_async(staged.ctypes.data, self.device[s.name].ptr, staged.nbytes, "d2h", self.stream)
            results = [(s.name, out_shapes[s.name], s.dtype) for s in self.engine.outputs]
        self.pending, self.results = call, results

    def _upload(self, spec: TensorSpec, a: Array) -> int:
        """Stage host input `a` in page-locked memory and queue its copy to this runner's device buffer."""

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

        call = self.engine.check_inputs(inputs)
        out_shapes = self._set_shapes(call)
        addresses = []
        for a, spec in zip(call.arrays, self.engine.inputs):
            ptr = a.ptr if call.on_device else self._upload(spec, a)
            self.context.set_tensor_address(spec.name, ptr)
            addresses.append(ptr)
        addresses += self._bind_own_outputs(out_shapes)
        self.stream.synchronize()
        key = (tuple(a.shape for a in call.arrays), *addresses)
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
