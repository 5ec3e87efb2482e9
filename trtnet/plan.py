"""Plan files: a serialized TensorRT engine with a JSON sidecar saying what it takes and returns. No CUDA here.

The plan file is a plain TensorRT plan (other TensorRT tools can read it); `<plan>.json` next to it carries
the input/output specs, the backend, the GPU target and a hash of the plan, so a damaged or mismatched pair,
or a plan from another backend, is caught before TensorRT ever reads it. Both are written atomically.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Self

from trtnet.backend import get_backend
from trtnet.errors import EngineError

__all__ = ["Plan", "TensorSpec", "atomic_write", "sidecar_path"]

FORMAT = "trtnet-engine"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TensorSpec:
    """A network input or output: name, shape with the opt batch first, dtype name, batch range.

    An input with other dynamic dims (a sequence length) also carries its whole smallest and largest shapes,
    `min_shape` and `max_shape` (empty when only the batch varies: the sidecars of such engines stay as
    they were before these fields existed).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    min_batch: int = 0
    max_batch: int = 0
    min_shape: tuple[int, ...] = ()
    max_shape: tuple[int, ...] = ()

    def shape_for(self, batch: int) -> tuple[int, ...]:
        """The shape with `batch` in the batch dimension (dim 0)."""
        return (batch, *self.shape[1:])

    def batch_range(self) -> tuple[int, int]:
        """The smallest and largest batch this tensor takes (both the built batch for a static one)."""
        return self.min_batch or self.shape[0], self.max_batch or self.shape[0]

    def shape_range(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The smallest and the largest shape this input takes, dim by dim."""
        if self.min_shape:
            return tuple(self.min_shape), tuple(self.max_shape)
        lo, hi = self.batch_range()
        return (lo, *self.shape[1:]), (hi, *self.shape[1:])

    def allowed(self) -> str:
        """The shapes this input accepts, in words: `[1..32, 3, 224, 224]`, `[2, 16..512]`."""
        lo, hi = self.shape_range()
        return "[" + ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in zip(lo, hi)) + "]"


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where the metadata of the plan at `path` lives: `<path>.json` next to it."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file and a rename: a reader sees the old file or the new one."""
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
    # min_shape/max_shape are absent from sidecars written before dynamic sequence lengths, and from any whose
    # only dynamic dim is the batch.
    return TensorSpec(str(d["name"]), tuple(int(v) for v in d["shape"]), str(d["dtype"]), int(d["min_batch"]),
                      int(d["max_batch"]), tuple(int(v) for v in d.get("min_shape", ())),
                      tuple(int(v) for v in d.get("max_shape", ())))


def _spec_json(spec: TensorSpec) -> dict:
    d = asdict(spec)
    if not spec.min_shape:  # only the batch varies (or nothing): the sidecar as before
        del d["min_shape"], d["max_shape"]
    return d


@dataclass
class Plan:
    """A serialized engine and what it takes and returns. `trtnet.Engine` is a `Plan` that can also run."""

    plan: bytes = field(repr=False)
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    backend: str = ""
    num_layers: int = 0
    build_seconds: float = 0.0
    precision: str = ""
    target: str = "aot"  # "sm_90" when built for one GPU; "aot" when built with no GPU (TensorRT for RTX)

    def metadata(self) -> dict:
        """What the sidecar JSON holds: enough to check a plan before TensorRT ever reads it."""
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "backend": self.backend, "target": self.target,
            "precision": self.precision, "num_layers": self.num_layers,
            "build_seconds": round(self.build_seconds, 3), "plan_bytes": len(self.plan),
            "plan_sha256": hashlib.sha256(self.plan).hexdigest(),
            "inputs": [_spec_json(s) for s in self.inputs], "outputs": [_spec_json(s) for s in self.outputs],
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the plan to `path` and its metadata to `<path>.json`, each atomically (temp file + rename)."""
        path = Path(path)
        atomic_write(path, self.plan)
        atomic_write(sidecar_path(path), (json.dumps(self.metadata(), indent=1) + "\n").encode())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, check_backend: bool = True) -> Self:
        """Read a plan saved by `save` and check it against its metadata and this process's backend.

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
