"""Runners: one execution context on one CUDA stream each, with its own buffers and CUDA graphs.

Stream order. Device inputs are read in place, so the work that produced them must come first. The runner's
stream is a blocking stream: work the caller queued on the legacy default stream (PyTorch's default stream)
comes first without anything more (and recording on the legacy stream would wait for every other runner's
work too). Every other producer stream is waited on with an event before the inference is queued: the
caller's current PyTorch stream for torch tensors, the stream a `__cuda_array_interface__` v3 names, and the
calling thread's per-thread default stream, which no blocking stream orders itself after (`producer_streams`).
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from trtnet.errors import EngineError
from trtnet.runtime.bindings import Array, Call, graph_key, output_binding, producer_streams
from trtnet.runtime.cudart import DeviceArray, DeviceBuffer, Event, Graph, HostBuffer, Stream, memcpy_async
from trtnet.runtime.plan import TensorSpec

__all__ = ["Runner"]


class Runner:
    """One execution context on one CUDA stream, with its own buffers (and CUDA graphs when asked)."""

    _GRAPHS_KEPT = 8  # captured graphs per runner; each is bound to the input shapes and buffer addresses

    def __init__(self, engine: Any, cuda_graph: bool = False) -> None:
        # `engine` is a trtnet.runtime.Engine (not imported: runtime imports this module; one way only)
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
                raise EngineError(
                    f"output {s.name!r}: out= tensor has shape {list(o.shape)}, the engine "
                    f"writes {list(out_shapes[s.name])}"
                )
        binding = output_binding(call, self.cuda_graph)
        if call.on_device:
            self._wait_for_producers(call)
            in_ptrs = []
            for a in call.arrays:
                self.context.set_tensor_address(a.name, a.ptr)
                in_ptrs.append(a.ptr)
        else:
            in_ptrs = []
            for a, spec in zip(call.arrays, self.engine.inputs):
                ptr = self._upload(spec, a)
                self.context.set_tensor_address(spec.name, ptr)
                in_ptrs.append(ptr)
        if binding == "own":
            out_ptrs = self._bind_own_outputs(out_shapes)
            outs = None
        else:  # the caller's out= tensors, or new ones written in place
            outs = [(o.ptr, o.obj) for o in call.out] if call.out is not None else self._new_outputs(call, out_shapes)
            for s, (ptr, _) in zip(self.engine.outputs, outs):
                self.context.set_tensor_address(s.name, ptr)
            out_ptrs = [ptr for ptr, _ in outs]
        self._enqueue(graph_key(call, in_ptrs, out_ptrs))
        if not call.on_device:
            for s in self.engine.outputs:
                staged = self._host_buffer(s.name, out_shapes[s.name], s.dtype)
                memcpy_async(staged.ctypes.data, self.device[s.name].ptr, staged.nbytes, "d2h", self.stream)
            results: list = [(s.name, out_shapes[s.name], s.dtype) for s in self.engine.outputs]
        else:
            if outs is None:  # a graph run: its own buffers (fixed addresses) copied into new tensors
                outs = self._new_outputs(call, out_shapes)
                for s, (ptr, _) in zip(self.engine.outputs, outs):
                    nbytes = int(np.prod(out_shapes[s.name], dtype=np.int64)) * np.dtype(s.dtype).itemsize
                    memcpy_async(ptr, self.device[s.name].ptr, nbytes, "d2d", self.stream)
            results = [obj for _, obj in outs]
        self.pending, self.results = call, results

    def _wait_for_producers(self, call: Call) -> None:
        """Order this runner's stream after the streams that may still be writing the device inputs."""
        torch_stream = None
        first = call.arrays[0].obj
        if type(first).__module__.split(".")[0] == "torch":
            import torch  # the caller's tensors are torch: its current stream is where their producers ran

            torch_stream = int(torch.cuda.current_stream(first.device).cuda_stream)
        for handle in producer_streams(call.arrays, torch_stream):
            self.stream.wait_for(handle)

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

    def _new_outputs(self, call: Call, shapes: dict[str, tuple[int, ...]]) -> list[tuple[int, Any]]:
        """New device tensors for the outputs: torch tensors for torch inputs, else `DeviceArray`s."""
        first = call.arrays[0].obj
        if type(first).__module__.split(".")[0] == "torch":
            import torch  # the caller's own tensors are torch: answer in kind

            made = [
                torch.empty(shapes[s.name], dtype=getattr(torch, s.dtype), device=first.device)
                for s in self.engine.outputs
            ]
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
                warnings.warn(
                    "TensorRT says this stream cannot be captured; running without a CUDA graph", stacklevel=3
                )
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
        if call.on_device:
            self._wait_for_producers(call)
        addresses = []
        for a, spec in zip(call.arrays, self.engine.inputs):
            ptr = a.ptr if call.on_device else self._upload(spec, a)
            self.context.set_tensor_address(spec.name, ptr)
            addresses.append(ptr)
        key = graph_key(call, addresses, self._bind_own_outputs(out_shapes))
        self.stream.synchronize()
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
