"""The JSON sidecar of a plan file: the tensor specs, and the check of every field a sidecar may hold.

A sidecar is input like any other (a cache folder is shared, a file is copied by hand), so each field is
checked for its type and range before anything uses it: a malformed one is an `EngineError` naming the field,
never a `TypeError` or `OverflowError` from deep inside the loader. No CUDA here, no TensorRT.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

from trtnet.backend import DATA_TYPES
from trtnet.errors import EngineError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_SIDECAR_BYTES",
    "EngineTensor",
    "TensorSpec",
    "check_metadata",
    "disagreement",
]

FORMAT = "trtnet-engine"
FORMAT_VERSION = 1
MAX_SIDECAR_BYTES = 16 * 2**20  # a sidecar lists a few specs: kilobytes; anything near this is not one
MAX_DIMS = 8  # TensorRT's Dims::MAX_DIMS
MAX_DIM = 2**62  # a dimension (or size) numpy and TensorRT can both hold with room to multiply
# An engine's input and output types: the backend's table less FP8, which lives only between Q/DQ layers inside
# a network and which no caller's buffer holds.
DTYPES = tuple(row.name for row in DATA_TYPES if row.member != "FP8")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class TensorSpec:
    """A network input or output: name, shape with the opt batch first, dtype name, batch range.

    An input with other dynamic dims (a sequence length) also carries its whole smallest and largest shapes,
    `min_shape` and `max_shape`; they are empty when only the batch varies, and such a spec's JSON has no such
    fields, as before they existed.
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

    def to_json(self) -> dict:
        """The spec as its sidecar holds it (min_shape/max_shape only where a non-batch dim has a range)."""
        d = {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "min_batch": self.min_batch,
            "max_batch": self.max_batch,
        }
        if self.min_shape:
            d["min_shape"], d["max_shape"] = list(self.min_shape), list(self.max_shape)
        return d


class _Bad(Exception):
    """A field that fails its check: (field path, value, what is allowed)."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(d: dict, key: str, lo: int, hi: int = MAX_DIM, *, default: Any = ...) -> int:
    v = d.get(key, default)
    if v is ...:
        raise _Bad(key, "missing", f"a whole number in [{lo}, {hi}]")
    if not _is_int(v) or not lo <= v <= hi:
        raise _Bad(key, v, f"a whole number in [{lo}, {hi}]")
    return v


def _str(d: dict, key: str, *, default: Any = ..., limit: int = 4096) -> str:
    v = d.get(key, default)
    if v is ...:
        raise _Bad(key, "missing", "a string")
    if not isinstance(v, str) or len(v) > limit:
        raise _Bad(key, v, f"a string of at most {limit} characters")
    return v


# What `Network.precision` can be: a Policy's (trtnet.graph.PRECISIONS, kept equal by a test), or "" where a
# network was built without one (and in sidecars written before the field).
PRECISIONS = ("", "fp32", "tf32", "fp16", "bf16", "int8", "fp8")


def _precision(d: dict) -> str:
    v = _str(d, "precision", default="")
    if v not in PRECISIONS:
        raise _Bad("precision", v, f"one of {', '.join(repr(p) for p in PRECISIONS)}")
    return v


def _spec(d: Any, where: str, is_input: bool) -> dict:
    if not isinstance(d, dict):
        raise _Bad(where, d, "an object (name, shape, dtype, min_batch, max_batch)")
    name = _str(d, "name")
    if not name:
        raise _Bad(f"{where}.name", name, "a non-empty string")
    shape = d.get("shape")
    lowest = 0 if is_input else -1  # an output's dynamic dimensions are -1
    if (
        not isinstance(shape, list)
        or not (1 if is_input else 0) <= len(shape) <= MAX_DIMS
        or not all(_is_int(v) and lowest <= v <= MAX_DIM for v in shape)
    ):
        raise _Bad(
            f"{where}.shape",
            shape,
            f"a list of up to {MAX_DIMS} whole numbers >= {lowest}"
            + (", at least one (the batch)" if is_input else ""),
        )
    dtype = d.get("dtype")
    if dtype not in DTYPES:
        raise _Bad(f"{where}.dtype", dtype, f"one of {', '.join(DTYPES)}")
    lo, hi = _int(d, "min_batch", 0, default=0), _int(d, "max_batch", 0, default=0)
    if (lo or hi) and not (lo <= hi and (not is_input or 1 <= lo <= shape[0] <= hi)):
        rule = "1 <= min_batch <= shape[0] (opt) <= max_batch" if is_input else "min_batch <= max_batch"
        raise _Bad(f"{where}.min_batch/max_batch", [lo, shape[0], hi], rule)
    if is_input and shape[0] < 1:
        raise _Bad(f"{where}.shape", shape, "a batch (shape[0]) >= 1")
    out = {"name": name, "shape": tuple(shape), "dtype": dtype, "min_batch": lo, "max_batch": hi}
    if "min_shape" in d or "max_shape" in d:  # an input with a range in a non-batch dim (a sequence length)
        low, high = d.get("min_shape"), d.get("max_shape")
        rule = (
            f"lists of {len(shape)} whole numbers with min_shape <= shape <= max_shape dim by dim, the batch "
            "dims equal to min_batch and max_batch"
        )
        ok = (
            is_input
            and all(isinstance(v, list) and len(v) == len(shape) and all(map(_is_int, v)) for v in (low, high))
            and all(1 <= a <= b <= c <= MAX_DIM for a, b, c in zip(low, shape, high))
            and [low[0], high[0]] == [lo, hi]
        )
        if not ok:
            raise _Bad(f"{where}.min_shape/max_shape", [low, high], rule)
        out["min_shape"], out["max_shape"] = tuple(low), tuple(high)
    return out


def _specs(meta: dict, key: str, is_input: bool) -> list[dict]:
    v = meta.get(key)
    if not isinstance(v, list):
        raise _Bad(key, v, "a list of tensor specs")
    specs = []
    for i, d in enumerate(v):
        try:
            specs.append(_spec(d, f"{key}[{i}]", is_input))
        except _Bad as e:
            field, value, allowed = e.args
            raise _Bad(field if field.startswith(key) else f"{key}[{i}].{field}", value, allowed) from None
    return specs


def _description(meta: Any) -> dict:
    """One plan's description, checked and normalised (defaults for fields older sidecars lack)."""
    if not isinstance(meta, dict):
        raise _Bad("(top level)", meta, "a JSON object")
    seconds = meta.get("build_seconds", 0.0)
    if (
        not isinstance(seconds, (int, float))
        or isinstance(seconds, bool)
        or not (math.isfinite(seconds) and seconds >= 0)
    ):
        raise _Bad("build_seconds", seconds, "a finite number >= 0")
    sha = meta.get("plan_sha256")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise _Bad("plan_sha256", sha, "64 lowercase hex digits")
    inputs, outputs = _specs(meta, "inputs", True), _specs(meta, "outputs", False)
    names = [d["name"] for d in inputs + outputs]
    if len(set(names)) != len(names):
        raise _Bad("the names of inputs and outputs", names, "names that differ (TensorRT names each tensor once)")
    return {
        "backend": _str(meta, "backend"),
        "target": _str(meta, "target", default="aot"),
        "precision": _precision(meta),
        "num_layers": _int(meta, "num_layers", 0),
        "build_seconds": float(seconds),
        "plan_bytes": _int(meta, "plan_bytes", 1),
        "plan_sha256": sha,
        "inputs": inputs,
        "outputs": outputs,
        "cache_key": _str(meta, "cache_key", default="", limit=256),
    }


def check_metadata(meta: Any, where: str | os.PathLike) -> dict:
    """`meta` (parsed sidecar JSON) checked field by field and normalised; an `EngineError` naming the file,
    the field, the value and what is allowed for anything else. `previous` holds the descriptions of the plan
    a save in progress replaces (see `Plan.save`); they are checked the same way."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise EngineError(f"{where}: not trtnet engine metadata (format {_short(fmt)})")
    if meta.get("format_version") != FORMAT_VERSION or not _is_int(meta.get("format_version")):
        raise EngineError(
            f"{where}: metadata format version {_short(meta.get('format_version'))}, "
            f"this trtnet reads version {FORMAT_VERSION}: rebuild the engine"
        )
    try:
        out = _description(meta)
        previous = meta.get("previous", [])
        if not isinstance(previous, list) or len(previous) > 2:
            raise _Bad("previous", previous, "a list of at most 2 plan descriptions")
        descriptions = []
        for i, p in enumerate(previous):
            try:
                descriptions.append(_description(p))
            except _Bad as e:
                raise _Bad(f"previous[{i}].{e.args[0]}", *e.args[1:]) from None
        out["previous"] = descriptions
    except _Bad as e:
        field, value, allowed = e.args
        raise EngineError(
            f"{where}: malformed metadata: {field} is {_short(value)}, expected {allowed}; rebuild the engine"
        ) from None
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = value if value == "missing" else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class EngineTensor:
    """An input or output as the deserialized engine declares it (its dtype by trtnet's name, -1 for a dim that
    varies; for an input that has such dims, its (min, opt, max) shapes in the first optimization profile)."""

    name: str
    is_input: bool
    dtype: str
    shape: tuple[int, ...]
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None


def disagreement(inputs: list[TensorSpec], outputs: list[TensorSpec], tensors: list[EngineTensor]) -> str | None:
    """What the sidecar's specs say that the engine they came with does not, in words (the first such thing), or
    None. Every check before a run rests on the specs, which are JSON anyone may edit; the plan's checksum covers
    the plan only.

    >>> x = TensorSpec("x", (8, 3), "float32", 1, 8)
    >>> disagreement([x], [], [EngineTensor("x", True, "float32", (-1, 3), ((1, 3), (8, 3), (8, 3)))]) is None
    True
    """
    for kind, specs, is_input in (("input", inputs, True), ("output", outputs, False)):
        declared = {t.name: t for t in tensors if t.is_input == is_input}
        said = {s.name: s for s in specs}
        for name in declared.keys() - said.keys():
            return f"the engine has {kind} {name!r}, which the metadata does not list"
        for name in said.keys() - declared.keys():
            return f"the metadata lists {kind} {name!r}, which the engine does not have"
        for s in specs:
            t = declared[s.name]
            if s.dtype != t.dtype:
                return f"{kind} {s.name!r} is {t.dtype} in the engine, {s.dtype} in the metadata"
            if len(s.shape) != len(t.shape) or any(a != b for a, b in zip(s.shape, t.shape) if a >= 0 and b >= 0):
                return f"{kind} {s.name!r} has shape {list(t.shape)} in the engine, {list(s.shape)} in the metadata"
            if is_input:
                low, high = s.shape_range()
                lo, opt, hi = t.profile or (t.shape, t.shape, t.shape)
                if (tuple(low), tuple(s.shape), tuple(high)) != (tuple(lo), tuple(opt), tuple(hi)):
                    return (
                        f"input {s.name!r} takes {list(lo)} to {list(hi)} (best at {list(opt)}) in the engine, "
                        f"{list(low)} to {list(high)} (best at {list(s.shape)}) in the metadata"
                    )
    return None
