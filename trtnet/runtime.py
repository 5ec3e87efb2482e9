"""Engines: a serialized plan with the shapes of its inputs and outputs, saved, loaded and run."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from trtnet.errors import EngineError


@dataclass(frozen=True)
class TensorSpec:
    """A network input or output: name, shape with the opt batch first, dtype name, batch range."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    min_batch: int = 0
    max_batch: int = 0


@dataclass
class Engine:
    """A built engine. `plan` is the serialized engine; calling the engine runs it on the GPU."""

    plan: bytes
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    backend: str = ""
    num_layers: int = 0
    build_seconds: float = 0.0

    def save(self, path: str | os.PathLike) -> Path:
        """Write the plan to `path` atomically (a temporary file renamed into place)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(self.plan)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def summary(self, label: str = "engine") -> str:
        """One line: layers, build seconds, engine size."""
        return (f"{label}: {self.num_layers} layers, built in {self.build_seconds:.1f} s, "
                f"engine {len(self.plan) / 2**20:.1f} MiB ({self.backend})")

    def __call__(self, *inputs):
        raise EngineError("running an engine needs a CUDA GPU and the runtime (not available yet)")
