"""Engines on CUDA: a plan deserialized once, run by runners that each own a context, a stream and buffers.

>>> engine = trtnet.build(resnet50(weights=None), batch_size=(1, 8, 32))     # doctest: +SKIP
>>> logits, = engine(np.zeros((4, 3, 224, 224), np.float32))                 # doctest: +SKIP

Every call is checked first, in plain Python (`trtnet.runtime.bindings`). Host inputs go through page-locked buffers and
come back as numpy arrays; GPU inputs (torch CUDA tensors, `__cuda_array_interface__`, CUDA `__dlpack__`) are
used in place, the results going into `out=`, new torch tensors, or new `DeviceArray`s (README: Runtime).
Several runners on one engine run concurrently; one context is never shared between streams.

A plan this GPU refuses raises `PlanRejected` when first loaded. The runtime knows plans, not models: it never
rebuilds anything (the builder asks before it hands out a cached plan; see `trtnet.build`).
"""

from __future__ import annotations

import hashlib
import numbers
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtnet.backend import get_backend, get_trt, logger
from trtnet.dtypes import name_of
from trtnet.errors import EngineError, TrtnetError
from trtnet.fileio import atomic_write
from trtnet.fileread import read_regular
from trtnet.runtime.bindings import Call, check_call
from trtnet.runtime.cudart import DeviceArray, check, compute_capability, cudart, require_device
from trtnet.runtime.plan import Plan
from trtnet.runtime.runner import Runner
from trtnet.runtime.sidecar import EngineTensor, disagreement
from trtnet.target import cache_dir

__all__ = ["DeviceArray", "Engine", "PlanRejected", "Runner"]

_RUNTIME_CACHE_LIMIT = 2**32  # compiled kernels of one engine: megabytes; a file this size is not one


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

    def runner(self, cuda_graph: bool = False) -> Runner:
        """A new execution context on a new CUDA stream. Use one runner per concurrent stream of requests.

        `cuda_graph=True` captures the enqueue into a CUDA graph after one ordinary run for each set of input
        shapes and buffer addresses, and replays it after that.
        """
        require_device()
        return Runner(self, cuda_graph=cuda_graph)

    def throughput(
        self, *inputs: Any, streams: int = 2, requests: int = 100, cuda_graph: bool = False
    ) -> dict[str, float]:
        """Keep `streams` requests in flight (one runner each) for `requests` requests; inferences per second."""
        for name, value in (("streams", streams), ("requests", requests)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise EngineError(f"throughput: {name} {value!r}: expected a whole number >= 1")
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
        return {
            "streams": streams,
            "requests": requests,
            "seconds": seconds,
            "inferences_per_second": requests * batch / seconds,
            "requests_per_second": requests / seconds,
        }

    def loaded(self) -> _Loaded:
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
    def create(cls, engine: Engine) -> _Loaded:
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
                reasons = [
                    n.lower().replace("_", " ")
                    for n, v in trt.EngineInvalidityDiagnostics.__members__.items()
                    if int(diagnostics) & int(v)
                ]
                raise _reject(
                    engine, f"{get_backend()} says the plan is invalid here ({', '.join(reasons) or 'no reason given'})"
                )
        cuda_engine = runtime.deserialize_cuda_engine(engine.plan)
        if cuda_engine is None:
            raise _reject(
                engine,
                f"{get_backend()} could not deserialize it (another TensorRT version, another "
                "GPU, or a damaged plan; see TensorRT's log above)",
            )
        mismatch = disagreement(engine.inputs, engine.outputs, _engine_tensors(cuda_engine))
        if mismatch:
            raise EngineError(
                f"the plan's metadata does not describe it: {mismatch}. Rebuild it, or restore the metadata (.json) "
                "saved with it"
            )
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
        blob = None
        if os.path.lexists(path):
            try:
                blob = read_regular(path, _RUNTIME_CACHE_LIMIT, "runtime cache")
            except (OSError, TrtnetError) as e:
                warnings.warn(f"trtnet: the runtime cache is not read ({e}); kernels are compiled again", stacklevel=3)
        if blob is not None:
            if not cache.deserialize(blob):
                warnings.warn(
                    f"{path}: runtime cache made for another GPU, driver or TensorRT version; "
                    "kernels are compiled again",
                    stacklevel=3,
                )
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
            self.saved = True  # tried once: a cache folder that refuses it is not asked again every run
            try:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.cache_path, bytes(memoryview(blob)), what="the runtime cache")
            except (OSError, TrtnetError) as e:
                warnings.warn(
                    f"trtnet: the runtime cache is not saved ({e}); kernels are compiled again by the next process",
                    stacklevel=3,
                )


def _engine_tensors(cuda_engine: Any) -> list[EngineTensor]:
    """The deserialized engine's inputs and outputs, as `sidecar.disagreement` compares them with the metadata."""
    trt = get_trt()
    tensors = []
    for i in range(cuda_engine.num_io_tensors):
        name = cuda_engine.get_tensor_name(i)
        is_input = cuda_engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        shape = tuple(cuda_engine.get_tensor_shape(name))
        profile = None
        if is_input and -1 in shape:
            profile = tuple(tuple(dims) for dims in cuda_engine.get_tensor_profile_shape(name, 0))
        tensors.append(EngineTensor(name, is_input, name_of(cuda_engine.get_tensor_dtype(name)), shape, profile))
    return tensors


def _reject(engine: Engine, why: str) -> PlanRejected:
    return PlanRejected(f"this GPU cannot run the plan: {why}; rebuild it with trtnet.build")
