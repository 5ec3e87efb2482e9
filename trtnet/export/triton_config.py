"""The `config.pbtxt` of a Triton model from an engine's sidecar: its signature (batching, inputs and outputs with
Triton's dims and types), the text (protobuf text format of Triton's `ModelConfig`), and the parameters that
record which TensorRT can load the plan. No files: `trtnet.export.triton` writes the repository.

How the engine's batch becomes Triton's: only an engine whose every input's dim 0 takes the same batch 1..MAX, and
whose every output's dim 0 is that batch (recorded at build: `trtnet.builder.build.batched_outputs`), gets
`max_batch_size: MAX`, the batch left out of the dims, and `dynamic_batching` (preferred sizes: the profile's opt
and max), because Triton then sends any batch from 1 to MAX and splits every output by it. Any other engine gets
`max_batch_size: 0` and full dims (`-1` for a range); asking it for dynamic batching is an `ExportError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trtnet._version import __version__
from trtnet.errors import ExportError

TRITON_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "bool": "TYPE_BOOL",
}
MAX_QUEUE_DELAY_US = 2**63  # exclusive, as the command line's --max-queue-delay-us (Triton's field is a uint64)


@dataclass(frozen=True)
class Signature:
    """What a Triton config promises about an engine: batching, inputs and outputs with Triton's dims."""

    max_batch_size: int
    inputs: tuple[tuple[str, str, tuple[int, ...]], ...]  # (name, TYPE_*, dims)
    outputs: tuple[tuple[str, str, tuple[int, ...]], ...]
    preferred: tuple[int, ...] = ()  # preferred batch sizes (not part of the promise: any profile may differ)
    max_queue_delay_us: int | None = None  # how long Triton's batcher waits to fill a preferred batch

    def promise(self) -> tuple:
        return self.max_batch_size, self.inputs, self.outputs


def signature(meta: dict[str, Any], *, dynamic_batching: bool | None = None, where: str = "the engine") -> Signature:
    """The Triton view of an engine from its sidecar metadata (`Engine.metadata()`), or an `ExportError`.

    `dynamic_batching`: None takes it where the engine allows it; True requires it; False never batches.
    """
    try:
        # min_shape/max_shape: only in sidecars of engines with a dynamic non-batch dim (a sequence length).
        inputs = [
            (
                str(s["name"]),
                list(s["shape"]),
                str(s["dtype"]),
                (int(s["min_batch"]) or s["shape"][0], int(s["max_batch"]) or s["shape"][0]),
                {i for i, (a, b) in enumerate(zip(s.get("min_shape", ()), s.get("max_shape", ()))) if a != b},
            )
            for s in meta["inputs"]
        ]
        # An output's min_batch/max_batch: the batch range when its dim 0 is the batch (set at build; 0 if not).
        outputs = [
            (
                str(s["name"]),
                list(s["shape"]),
                str(s["dtype"]),
                (int(s.get("min_batch", 0)), int(s.get("max_batch", 0))),
            )
            for s in meta["outputs"]
        ]
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ExportError(f"{where}: incomplete engine metadata ({type(e).__name__}: {e})") from e
    if not inputs:
        raise ExportError(f"{where}: an engine without inputs cannot be served")
    lo, hi = inputs[0][3]
    opt = inputs[0][1][0]
    why_not = _why_no_batching(inputs, outputs)
    if dynamic_batching and why_not:
        raise ExportError(
            f"{where}: dynamic batching asked for, but {why_not}. With dynamic batching Triton sends "
            "any batch from 1 to max_batch_size; build the engine with --batch 1:OPT:MAX "
            "(batch_size=(1, opt, max)), or export without dynamic batching"
        )
    batching = not why_not if dynamic_batching is None else bool(dynamic_batching)

    def dims(shape: list[int], ranged: set[int]) -> tuple[int, ...]:
        # An input spec holds its opt sizes: -1 stands for a dim the profile gives a range (batch, length).
        full = tuple(-1 if i in ranged else int(d) for i, d in enumerate(shape))
        return full[1:] if batching else full

    def triton_type(name: str, dtype: str) -> str:
        if dtype not in TRITON_TYPES:
            raise ExportError(
                f"{where}: tensor {name!r} has dtype {dtype}, which has no Triton TYPE_* here "
                f"(known: {', '.join(TRITON_TYPES)})"
            )
        return TRITON_TYPES[dtype]

    preferred = tuple(sorted({opt, hi} - {1})) if batching else ()
    return Signature(
        hi if batching else 0,
        tuple((n, triton_type(n, t), dims(s, r | ({0} if b[0] != b[1] else set()))) for n, s, t, b, r in inputs),
        tuple((n, triton_type(n, t), dims(s, set())) for n, s, t, _ in outputs),
        preferred,
    )


def with_batching(
    sig: Signature,
    *,
    preferred: Sequence[int] | None = None,
    max_queue_delay_us: int | None = None,
    where: str = "the engine",
) -> Signature:
    """`sig` with the dynamic batcher's preferred batch sizes and queue delay, or an `ExportError`: both need
    dynamic batching, and a preferred size must be one the engine runs (1 to max_batch_size)."""
    if preferred is None and max_queue_delay_us is None:
        return sig
    if not sig.max_batch_size:
        what = "--preferred-batch" if preferred is not None else "--max-queue-delay-us"
        raise ExportError(
            f"{where}: {what} sets Triton's dynamic batching, which this export does not use (max_batch_size 0): "
            "build with --batch 1:OPT:MAX, or leave it out"
        )
    if preferred is not None:
        bad = [
            b for b in preferred if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= sig.max_batch_size
        ]
        if bad or not preferred:
            raise ExportError(
                f"{where}: preferred batch size {bad[0] if bad else 'list'!r} is not allowed: expected sizes from 1 "
                f"to the engine's max_batch_size {sig.max_batch_size}"
            )
        sig = dataclasses.replace(sig, preferred=tuple(sorted(set(preferred))))
    if max_queue_delay_us is not None:
        delay = max_queue_delay_us
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay < MAX_QUEUE_DELAY_US:
            raise ExportError(
                f"{where}: max_queue_delay_us {delay!r}: expected microseconds >= 0 and < 2**63 "
                "(as --max-queue-delay-us takes them; Triton's field is a uint64)"
            )
        sig = dataclasses.replace(sig, max_queue_delay_us=max_queue_delay_us)
    return sig


def _why_no_batching(inputs: list, outputs: list) -> str:
    """Why Triton's batcher could not drive this engine, or '' when it can: every input's dim 0 takes the same
    batch range 1..MAX, and every output's dim 0 is that batch (as the build found it)."""
    name, (lo, hi) = inputs[0][0], inputs[0][3]
    for other, other_shape, _, batch, _ in inputs[1:]:
        if batch != (lo, hi):
            return (
                f"input {other!r} (shape {other_shape}, dim 0 {_span(batch)}) does not share input {name!r}'s "
                f"batch (dim 0 {_span((lo, hi))}), so not every input has the batch first"
            )
    if lo == hi:
        return f"the engine takes batch {lo} only (a fixed-batch build)"
    if lo != 1:
        return f"the engine's optimization profile starts at batch {lo}, and Triton also sends smaller batches"
    for out, out_shape, _, batch in outputs:
        if batch != (lo, hi) or out_shape[:1] != [-1]:
            return f"output {out!r} (shape {out_shape}) is not known to have the batch first"
    return ""


def _span(batch: tuple[int, int]) -> str:
    return str(batch[0]) if batch[0] == batch[1] else f"{batch[0]}..{batch[1]}"


def render_config(name: str, sig: Signature, *, instances: int, parameters: dict[str, str]) -> str:
    """`config.pbtxt` text (protobuf text format of Triton's `ModelConfig`)."""

    def io(kind: str, tensors: Sequence[tuple[str, str, tuple[int, ...]]]) -> list[str]:
        lines = [f"{kind} ["]
        for i, (tensor, dtype, dims) in enumerate(tensors):
            lines += ["  {", f"    name: {_quote(tensor)}", f"    data_type: {dtype}"]
            if dims:
                lines.append(f"    dims: [ {', '.join(map(str, dims))} ]")
            else:  # one value per sample: Triton wants dims [1] reshaped to a scalar
                lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
            lines.append("  }," if i + 1 < len(tensors) else "  }")
        return lines + ["]"]

    lines = [
        f"# Written by trtnet (`trtnet export-triton`) from a {_quote(parameters['trtnet_backend'])[1:-1]} build.",
        "# A plan loads only in the TensorRT version that built it: see trtnet_compatibility below.",
        f"name: {_quote(name)}",
        'platform: "tensorrt_plan"',
        f"max_batch_size: {sig.max_batch_size}",
    ]
    lines += io("input", sig.inputs) + io("output", sig.outputs)
    if sig.max_batch_size:
        lines += ["dynamic_batching {", f"  preferred_batch_size: [ {', '.join(map(str, sig.preferred))} ]"]
        if sig.max_queue_delay_us is not None:
            lines.append(f"  max_queue_delay_microseconds: {sig.max_queue_delay_us}")
        lines.append("}")
    lines += ["instance_group [", "  {", f"    count: {instances}", "    kind: KIND_GPU", "  }", "]"]
    for key, value in parameters.items():
        lines += ["parameters {", f"  key: {_quote(key)}", f"  value: {{ string_value: {_quote(value)} }}", "}"]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """`text` as a protobuf text-format string: printable ASCII as is, every other byte of its UTF-8 octal-escaped
    (JSON's \\uXXXX escapes are not text format; a character past U+FFFF became a surrogate pair it refuses)."""
    escaped = (
        "\\" + chr(b) if chr(b) in '"\\' else chr(b) if 0x20 <= b < 0x7F else f"\\{b:03o}" for b in text.encode("utf-8")
    )
    return '"' + "".join(escaped) + '"'


def check_loadable(backend: str, name: str) -> None:
    """An `ExportError` unless `backend` ("tensorrt 10.13.3.9") makes plans Triton's TensorRT backend loads."""
    if not backend.startswith("tensorrt "):
        raise ExportError(
            f"model {name!r}: a {backend or 'unknown backend'} plan cannot be loaded by Triton's tensorrt backend "
            "(it loads NVIDIA TensorRT plans only); build with NVIDIA TensorRT (pip install tensorrt), or pass "
            "--allow-rtx (allow_rtx=True) to write it anyway"
        )


def config_parameters(meta: dict[str, Any]) -> dict[str, str]:
    """The `parameters` recorded in the config: trtnet's backend and version, and what can load the plan."""
    backend = str(meta.get("backend", ""))
    kind, _, version = backend.partition(" ")
    if kind == "tensorrt":
        note = (
            f"a TensorRT {version} plan: loads in a Triton whose TensorRT is exactly {version} "
            f"(and on the GPU it targets: {meta.get('target', '?')})"
        )
    else:
        note = (
            f"a {backend or 'unknown backend'} plan, NOT a TensorRT plan: Triton's tensorrt backend cannot load "
            "it; rebuild with NVIDIA TensorRT (pip install tensorrt; trtnet prefers it) for Triton"
        )
    return {
        "trtnet_version": __version__,
        "trtnet_backend": backend,
        "trtnet_tensorrt_version": version if kind == "tensorrt" else "none",
        "trtnet_precision": str(meta.get("precision", "")),
        "trtnet_target": str(meta.get("target", "")),
        "trtnet_compatibility": note,
    }
