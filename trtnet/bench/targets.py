"""Which GPUs the backend can build for, said before anything is built: the GPU's compute capability, the backend,
and the targets the backend lists (TensorRT for RTX's `ComputeCapability` enum). On a GPU the backend does not
list, the backend's own targeting for the present GPU (`ComputeCapability.CURRENT`, the same config the
builder uses) is tried once on a tiny network, and its outcome is reported in words instead of a traceback."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from trtnet.backend import Backend, get_backend
from trtnet.errors import TrtnetError


@dataclass(frozen=True)
class TargetReport:
    """What the benchmark says about the GPU and the backend before building."""

    gpu: str | None  # "sm_90", or None with no GPU
    backend: str  # "tensorrt_rtx 1.7.1.116"
    targets: tuple[str, ...]  # what the backend lists ("sm_75", ...); empty where it builds for the present GPU
    listed: bool | None  # whether `gpu` is among `targets`; None where nothing is listed or there is no GPU
    probe: dict[str, Any] = field(default_factory=dict)  # the outcome of building and running for this GPU

    def lines(self) -> list[str]:
        """The report in words, a line each."""
        if self.targets:
            can = f"lists {', '.join(self.targets)}"
        else:
            can = "builds for the GPU it runs on (it lists no targets)"
        out = [f"GPU: {self.gpu or 'none'}; backend {self.backend} {can}"]
        if self.gpu is not None and self.listed is False:
            out.append(f"{self.gpu} is not listed by {self.backend}: trying its targeting for the present GPU once")
        if self.probe:
            out.append(f"probe ({self.probe['what']}): {self.probe['outcome']}")
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def sm_name(capability: tuple[int, int]) -> str:
    major, minor = capability
    return f"sm_{major}{minor}"


def backend_targets(backend: Backend) -> tuple[str, ...]:
    """The compute capabilities `backend` names as build targets: TensorRT for RTX's `ComputeCapability` members
    SM75, SM80... as sm_75, sm_80...; data-centre TensorRT has no such list (it builds for the GPU present)."""
    enum = getattr(backend.trt, "ComputeCapability", None)
    if enum is None:
        return ()
    return tuple(f"sm_{name[2:]}" for name in enum.__members__ if name.startswith("SM"))


def target_report(capability: tuple[int, int] | None, backend: Backend | None = None) -> TargetReport:
    """The report for a GPU of `capability` ((9, 0) for an H100, None for no GPU) under `backend` (the selected
    one by default); no probe is run here (see `probe_current`)."""
    backend = backend or get_backend()
    targets = backend_targets(backend)
    gpu = sm_name(capability) if capability is not None else None
    listed = (gpu in targets) if (gpu is not None and targets) else None
    return TargetReport(gpu, str(backend), targets, listed)


def needs_probe(report: TargetReport) -> bool:
    """Whether the GPU is one the backend does not list, so that only trying tells whether it builds and runs."""
    return report.gpu is not None and report.listed is False


def probe_current() -> dict[str, Any]:
    """Build a tiny network for the present GPU (the builder's own targeting) and run it once. Returns what
    happened: {"ok": True, "outcome": "built and ran ..."} or {"ok": False, "outcome": the backend's message}."""
    from trtnet.builder.build import build
    from trtnet.nn.layers import Linear
    from trtnet.nn.module import Input
    from trtnet.random_init import init_random

    class Probe(Linear):
        def inputs(self) -> list[Input]:
            return [Input("x", (8,))]

    model = Probe(8, 8)
    init_random(model, seed=0)
    x = np.ones((1, 8), np.float32)
    what = "a Linear(8, 8) network built with cache=False for the present GPU, run once"
    t0 = time.perf_counter()
    try:
        engine = build(model, batch_size=1, cache=False)
        try:
            (out,) = engine(x)
        finally:
            engine.close()
    except TrtnetError as e:  # the backend refused: its message is the answer
        return {"what": what, "ok": False, "outcome": f"refused: {type(e).__name__}: {e}"}
    want = x @ model.weight.data.T + model.bias.data
    err = float(np.max(np.abs(out - want)))
    ok = bool(err < 1e-2)  # fp32 Linear of 8: anything above this is a wrong engine, not rounding
    ran = f"built and ran in {time.perf_counter() - t0:.2f} s; max abs error vs numpy {err:.1e}"
    return {"what": what, "ok": ok, "outcome": ran if ok else f"{ran}: WRONG RESULT"}
