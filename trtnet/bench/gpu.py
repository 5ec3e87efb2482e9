"""The benchmark on a GPU, and the same steps dry: each model built once with a dynamic batch profile, loaded,
timed at every batch (CUDA events, a time budget per row), then PyTorch eager and the ONNX route timed the same
way. A `GpuSide` launches the work; `DryRun` does every step but the kernel launches, on a fake clock advanced by
stand-in kernel times, and `Simulated` also stands in for the builds (the budget check of a 54-row run)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtnet.bench.models import TORCH_DTYPES, build_onnx, export_onnx, load_torch, make_inputs
from trtnet.bench.reference import POROS_A10
from trtnet.bench.timing import Deadline, FakeClock, RowBudget, WallClock, fake_series, stats, time_series
from trtnet.builder.build import build
from trtnet.errors import TrtnetError
from trtnet.runtime.engine import Engine
from trtnet.zoo import REGISTRY

StandIn = Callable[[str, int, str], float]  # (model, batch, route) -> ms per inference


@dataclass
class GpuOptions:
    """What `gpu_model` needs from the command line."""

    precision: str = "fp16"
    torch_precision: str = "fp32"
    opt_batch: int | None = None  # the profile's opt; None: the middle batch size
    onnx_batches: tuple[int, ...] = (1, 32)
    onnx: bool = True
    torch: bool = True
    cache: bool = True
    cuda_graph: bool = False


class GpuSide:
    """Launches the benchmark's work on the GPU; every latency comes from CUDA events."""

    dry = False

    def __init__(self, cuda_graph: bool = False) -> None:
        self.clock: Any = WallClock()
        self.cuda_graph = cuda_graph

    def build(self, name: str, weights: Path | None, profile: tuple[int, int, int], opts: GpuOptions, cal) -> Any:
        model = REGISTRY[name].fn(weights=weights)
        return build(model, batch_size=profile, precision=opts.precision, calibration=cal, cache=opts.cache)

    def build_onnx(self, name: str, weights: Path | None, profile: tuple[int, int, int], precision: str) -> Any:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.onnx"
            export_onnx(name, weights, min(2, profile[2]), precision, path, dynamic=True)
            return build_onnx(path, profile)

    def inputs(self, name: str, batch: int) -> list[np.ndarray]:
        return make_inputs(name, batch)

    def load(self, engine: Engine) -> None:
        engine.loaded()  # deserialized on the GPU now, so that a refusal comes before any timing

    def time_engine(self, engine: Engine, xs: list[np.ndarray], key: tuple, budget: RowBudget, s: float):
        runner = engine.runner(cuda_graph=self.cuda_graph)
        try:
            return time_series(lambda n, w: runner.time(*xs, iters=n, warmup=w), budget, s)
        finally:
            runner.close()

    def engine_outputs(self, engine: Engine, xs: list[np.ndarray]) -> list[np.ndarray] | None:
        return engine(*xs)

    def close(self, engine: Engine) -> None:
        engine.close()

    def torch_model(self, name: str, weights: Path | None, precision: str) -> Any:
        import torch

        return load_torch(name, weights).cuda().to(getattr(torch, TORCH_DTYPES[precision]))

    def _torch_args(self, xs: list[np.ndarray], precision: str) -> list:
        import torch

        dtype = getattr(torch, TORCH_DTYPES[precision])
        args = [torch.from_numpy(x).cuda() for x in xs]
        return [a.to(dtype) if a.is_floating_point() else a for a in args]

    def torch_outputs(self, model: Any, xs: list[np.ndarray], precision: str) -> list[np.ndarray] | None:
        import torch

        from trtnet.bench.models import as_list

        with torch.inference_mode():
            return [o.float().cpu().numpy() for o in as_list(model(*self._torch_args(xs, precision)))]

    def time_torch(self, model: Any, xs: list[np.ndarray], precision: str, key: tuple, budget: RowBudget, s: float):
        import torch

        args = self._torch_args(xs, precision)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def run(iters: int, warmup: int) -> np.ndarray:
            times = np.empty(iters, np.float64)
            with torch.inference_mode():
                for _ in range(warmup):
                    model(*args)
                torch.cuda.synchronize()
                for i in range(iters):
                    start.record()
                    model(*args)
                    end.record()
                    end.synchronize()
                    times[i] = start.elapsed_time(end)
            return times

        return time_series(run, budget, s)

    def free_torch(self, model: Any) -> None:
        import torch

        del model
        torch.cuda.empty_cache()


def poros_stand_in(name: str, batch: int, route: str) -> float:
    """Stand-in kernel times: the published Poros A10 figures (PyTorch eager for the torch route, Poros for the
    engines); 1 ms + 0.5 ms per sample for a model the table does not have."""
    published = POROS_A10.get(name, {}).get(batch)
    if published is None:
        return 1.0 + 0.5 * batch
    return published[0] if route == "torch" else published[1]


class DryRun(GpuSide):
    """Every step of the GPU run but the kernel launches: engines and the ONNX route are built for real (ahead of
    time), the PyTorch source is loaded on the CPU, and each series 'takes' its stand-in time on a fake clock."""

    dry = True

    def __init__(self, stand_in: StandIn = poros_stand_in) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.stand_in = stand_in

    def _on_clock(self, fn: Callable[[], Any]) -> Any:
        # What the CPU spent building stands in for what the GPU machine would: builds are mostly host work.
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.clock.advance(time.perf_counter() - t0)

    def build(self, name, weights, profile, opts, cal):
        return self._on_clock(lambda: super(DryRun, self).build(name, weights, profile, opts, cal))

    def build_onnx(self, name, weights, profile, precision):
        return self._on_clock(lambda: super(DryRun, self).build_onnx(name, weights, profile, precision))

    def load(self, engine: Engine) -> None:
        pass  # deserializing needs the GPU

    def time_engine(self, engine, xs, key, budget, s):
        return time_series(fake_series(self.clock, self.stand_in(*key)), budget, s)

    def engine_outputs(self, engine, xs):
        return None  # running the engine is a kernel launch

    def close(self, engine) -> None:
        if isinstance(engine, Engine):
            engine.close()

    def torch_model(self, name, weights, precision):
        import torch

        dtype = getattr(torch, TORCH_DTYPES[precision])
        return self._on_clock(lambda: load_torch(name, weights).to(dtype))

    def torch_outputs(self, model, xs, precision):
        return None

    def time_torch(self, model, xs, precision, key, budget, s):
        return time_series(fake_series(self.clock, self.stand_in(*key)), budget, s)

    def free_torch(self, model) -> None:
        pass


class Simulated(DryRun):
    """The dry run with the builds and loads standing in too (`setup_s` seconds for each engine, ONNX route and
    PyTorch model): what a whole table costs in time, without the CPU time of building it."""

    def __init__(self, stand_in: StandIn = poros_stand_in, setup_s: float = 10.0) -> None:
        super().__init__(stand_in)
        self.setup_s = setup_s

    def build(self, name, weights, profile, opts, cal):
        self.clock.advance(self.setup_s)
        return f"{name} engine"

    def build_onnx(self, name, weights, profile, precision):
        self.clock.advance(self.setup_s)
        return f"{name} ONNX engine"

    def torch_model(self, name, weights, precision):
        self.clock.advance(self.setup_s)
        return f"{name} PyTorch model"

    def inputs(self, name, batch):
        return []  # nothing is built or launched to take them


def profile_of(batches: list[int], opt: int | None) -> tuple[int, int, int]:
    """The dynamic batch profile (min, opt, max) covering `batches`; opt defaults to the middle batch size."""
    lo, hi = min(batches), max(batches)
    opt = sorted(batches)[len(batches) // 2] if opt is None else opt
    if not lo <= opt <= hi:
        raise ValueError(f"--opt-batch {opt} is outside the batch sizes {lo}..{hi}")
    return lo, opt, hi


def series_count(models: int, batches: list[int], opts: GpuOptions) -> int:
    """How many series a run times: trtnet and PyTorch at every batch, the ONNX route at its batches."""
    onnx = len([b for b in opts.onnx_batches if b in batches]) if opts.onnx else 0
    return models * (len(batches) * (1 + opts.torch) + onnx)


def _timed(side: GpuSide, deadline: Deadline, budget: RowBudget, fn: Callable[[float], np.ndarray]) -> dict:
    seconds = deadline.row_seconds(budget.min_seconds)
    row = stats(fn(seconds))
    row["row_seconds"] = seconds  # below --min-seconds where the deadline cut it
    deadline.series_done()
    return row


def gpu_model(
    name: str,
    batches: list[int],
    side: GpuSide,
    opts: GpuOptions,
    budget: RowBudget,
    deadline: Deadline,
    weights: Path | None,
    calibration: Path | None = None,
) -> dict[str, Any]:
    """Time `name` at each of `batches` on `side`. The result's "steps" lists what was done, in order."""
    from trtnet.parity import rel_error

    steps: list[str] = []
    out: dict[str, Any] = {"latency": {str(b): {} for b in batches}, "steps": steps}
    profile = profile_of(batches, opts.opt_batch)
    out["profile"] = list(profile)
    t_setup = side.clock.now()
    setup = 0.0
    try:
        steps.append("build trtnet")
        engine = side.build(name, weights, profile, opts, calibration)
        steps.append("load trtnet")
        side.load(engine)
    except TrtnetError as e:
        out["error"] = f"{type(e).__name__}: {e}"
        return out
    if not side.dry and hasattr(engine, "build_seconds"):
        out["build_s"] = engine.build_seconds
    setup += side.clock.now() - t_setup
    got = None
    for batch in batches:
        xs = side.inputs(name, batch)
        steps.append(f"time trtnet b{batch}")
        row = _timed(
            side,
            deadline,
            budget,
            lambda s, xs=xs, b=batch: side.time_engine(engine, xs, (name, b, "trtnet"), budget, s),
        )
        out["latency"][str(batch)]["trtnet"] = row
        if batch == batches[0]:
            got = side.engine_outputs(engine, xs)
    steps.append("close trtnet")
    side.close(engine)  # its GPU memory back before PyTorch's model arrives
    if opts.torch:
        t0 = side.clock.now()
        steps.append("load torch")
        model = side.torch_model(name, weights, opts.torch_precision)
        setup += side.clock.now() - t0
        for batch in batches:
            xs = side.inputs(name, batch)
            steps.append(f"time torch b{batch}")
            out["latency"][str(batch)]["torch"] = _timed(
                side,
                deadline,
                budget,
                lambda s, xs=xs, b=batch: side.time_torch(
                    model, xs, opts.torch_precision, (name, b, "torch"), budget, s
                ),
            )
            if batch == batches[0]:
                want = side.torch_outputs(model, xs, opts.torch_precision)
                if got is not None and want is not None:
                    out["gpu_rel_error"] = max(rel_error(g, w) for g, w in zip(got, want, strict=True))
        steps.append("free torch")
        side.free_torch(model)
    onnx_batches = [b for b in opts.onnx_batches if b in batches] if opts.onnx else []
    if onnx_batches:
        t0 = side.clock.now()
        lo, hi = min(onnx_batches), max(onnx_batches)
        try:
            steps.append("build onnx")
            onnx_profile = (lo, min(max(profile[1], lo), hi), hi)  # the same opt as trtnet's engine where it can
            onnx_engine = side.build_onnx(name, weights, onnx_profile, opts.precision)
            steps.append("load onnx")
            side.load(onnx_engine)
        except (TrtnetError, RuntimeError) as e:  # an exporter or parser gap: say so, keep going
            out["onnx_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
            onnx_engine = None
            for _ in onnx_batches:
                deadline.series_done()
        setup += side.clock.now() - t0
        if onnx_engine is not None:
            for batch in onnx_batches:
                xs = side.inputs(name, batch)
                steps.append(f"time onnx b{batch}")
                out["latency"][str(batch)]["onnx"] = _timed(
                    side,
                    deadline,
                    budget,
                    lambda s, xs=xs, b=batch: side.time_engine(onnx_engine, xs, (name, b, "onnx"), budget, s),
                )
            steps.append("close onnx")
            side.close(onnx_engine)
    deadline.model_set_up(setup)
    out["setup_s"] = setup
    return out
