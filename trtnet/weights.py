"""Weights: safetensors files read with numpy (copied into memory, no torch), loaded strictly into a module tree.

The safetensors format: an 8-byte little-endian header length N, N bytes of JSON `{key: {"dtype": "F32", "shape":
[..], "data_offsets": [begin, end]}, "__metadata__": {...}}`, then the data.
This reader checks every claim the header makes before trusting it, so a damaged or hostile file gives a
`WeightsError` that names the file and the key, never a crash or a silent misread. Nothing is unpickled, and
nothing stays mapped: what was read and checked cannot change when the file does.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trtnet.errors import ConfigError, WeightsError
from trtnet.fileio import replaced
from trtnet.fileread import DuplicateKey, open_regular, parse_json
from trtnet.layouts import adapt_checkpoint
from trtnet.random_init import init_random, is_module  # noqa: F401  (init_random: still importable from here)
from trtnet.runtime.plan import refuse_plan_files

if TYPE_CHECKING:
    from trtnet.nn.module import Module

# safetensors dtype -> numpy dtype. BF16 is widened to float32 on read (numpy has no bfloat16).
_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_MAX_HEADER = 100 * 1024 * 1024  # the format's own limit
_MAX_DIMS = 64 if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else 32  # NumPy 2.0 raised NPY_MAXDIMS to 64
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".tar")
# (model, the file's key -> shape before any conversion) -> one line of advice, or None.
MismatchHint = Callable[["Module", dict[str, tuple[int, ...]]], "str | None"]


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a read-only numpy array in the process's own memory (BF16 becomes
    float32).

    The data is copied, not memory-mapped: a mapping of the file (shared or MAP_PRIVATE alike) dies of SIGBUS
    when the file is truncated later (`cp new.safetensors w.safetensors` does that), and shows later writes to
    pages not yet touched, which would let NaN written after the finite check reach an engine. A copy costs the
    file's size in memory and one read of it (README, Bad input, has the numbers for VGG16).

    >>> state = read_safetensors("weights/resnet50.safetensors")   # doctest: +SKIP
    >>> state["conv1.weight"].shape
    (64, 3, 7, 7)
    """
    ConfigError.check("path", path, "a path (str or os.PathLike)", _is_path, source="read_safetensors")
    path = Path(path)
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise WeightsError(
            f"{path}: {path.suffix} files are pickles, which trtnet never loads; convert it with `trtnet convert "
            f"MODEL {path}` to a .safetensors file (or write one with `trtnet export-weights`)"
        )
    try:  # a FIFO or a device is refused unread (NotRegularFile: "not a regular file", "Is a directory")
        with open_regular(path) as (f, before):
            return _read_open(path, f, before)
    except OSError as e:
        raise WeightsError(f"{path}: cannot read: {e.strerror or e}") from e


# The magic bytes of the files most often given as weights by mistake.
_MAGIC = (
    (b"PK\x03\x04", "a zip archive (a numpy .npz, or a PyTorch checkpoint written by torch.save)"),
    (b"\x93NUMPY", "a numpy .npy array"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (Keras .h5)"),
    (b"\x1f\x8b", "a gzip file (a .tar.gz?)"),
    (b"\x80", "a Python pickle (a PyTorch .pt/.pth of the old format)"),
    (b"\x08", "a protobuf message (an ONNX model? `trtnet check model.onnx` runs those)"),
)


def _sniff(prefix: bytes) -> str | None:
    return next((what for magic, what in _MAGIC if prefix.startswith(magic)), None)


def _read_open(path: Path, f, before: os.stat_result) -> dict[str, np.ndarray]:
    size = before.st_size
    prefix = f.read(9) or b""  # the header's length, and its first byte
    if len(prefix) < 8:
        raise WeightsError(f"{path}: truncated file ({size} bytes): no safetensors header")
    n = int.from_bytes(prefix[:8], "little")
    if n > _MAX_HEADER or 8 + n > size:
        # A plausible length before a header's "{" is a safetensors file cut short, whatever its first byte
        # (a header of 0x7080 bytes begins as a pickle does): only other files are named by their magic bytes.
        what = None if n <= _MAX_HEADER and prefix[8:] in (b"{", b"") else _sniff(prefix)  # b"": cut at 8 bytes
        if what:  # a huge "header length" is another format's magic bytes: say which format
            raise WeightsError(
                f"{path}: not a safetensors file: its first bytes are those of {what}; trtnet reads weights "
                "from .safetensors files only (`trtnet export-weights`, or `trtnet convert MODEL FILE` for a "
                "PyTorch checkpoint)"
            )
        raise WeightsError(
            f"{path}: header length {n} does not fit in the file ({size} bytes): truncated or not a safetensors file"
        )
    raw = bytearray(n)
    _read_into(path, f, memoryview(raw), 8)
    header = _parse_header(path, raw)
    metadata = header.pop("__metadata__", {})
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise WeightsError(f"{path}: corrupted header: __metadata__ must map strings to strings")
    data_size = size - 8 - n
    entries = [(key, *_check_entry(path, key, info, data_size)) for key, info in header.items()]
    _check_layout(path, entries, data_size)
    out: dict[str, np.ndarray] = {}
    for key, dtype_name, shape, begin, _end in sorted(entries, key=lambda e: e[3]):  # in file order
        arr = np.empty(shape, _DTYPES[dtype_name])  # its own allocation, aligned for its dtype
        _read_into(path, f, memoryview(arr.reshape(-1).view(np.uint8)), 8 + n + begin)
        arr = _bf16_to_f32(arr) if dtype_name == "BF16" else arr
        arr.flags.writeable = False
        out[key] = arr
    after = os.fstat(f.fileno())
    # Best effort (mtime has a coarse clock): a writer at work while we read can leave tensors of two versions.
    if (after.st_size, after.st_mtime_ns) != (size, before.st_mtime_ns):
        raise WeightsError(f"{path}: the file changed while it was being read; load it again once it is written")
    return {key: out[key] for key, *_ in entries}  # the header's order, as before


def _read_into(path: Path, f, buf: memoryview, offset: int) -> None:
    """Fill `buf` from `offset`; a file that ends early was cut short since its size was taken."""
    f.seek(offset)
    while len(buf):
        got = f.readinto(buf)
        if not got:
            raise WeightsError(
                f"{path}: the file changed while it was being read (it ends early); load it again once it is written"
            )
        buf = buf[got:]


def _parse_header(path: Path, raw: bytearray) -> dict:
    try:
        header = parse_json(raw)
    except DuplicateKey as e:  # json keeps the last silently; the safetensors library refuses the file
        raise WeightsError(f"{path}: corrupted header: key {_clip(e.key)} appears twice") from None
    # ValueError covers JSONDecodeError and integers longer than Python's digit limit; a deeply nested
    # header exhausts the JSON decoder's recursion.
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise WeightsError(f"{path}: corrupted header: not valid JSON ({_clip(e, 120, str)})") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: corrupted header: expected a JSON object")
    return header


def _check_entry(path: Path, key: str, info, data_size: int) -> tuple[str, tuple[int, ...], int, int]:
    key = _clip(key)  # only for messages from here on
    if not isinstance(info, dict):
        raise WeightsError(f"{path}: key {key}: header entry is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not (isinstance(dtype, str) and dtype in _DTYPES):  # a list or an object is unhashable
        raise WeightsError(f"{path}: key {key}: unsupported dtype {_clip(dtype)} (supported: {', '.join(_DTYPES)})")
    if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
        raise WeightsError(f"{path}: key {key}: bad shape {_clip(shape)}")
    if len(shape) > _MAX_DIMS:
        raise WeightsError(
            f"{path}: key {key}: shape has {len(shape)} dimensions; numpy {np.__version__} allows at most {_MAX_DIMS}"
        )
    # numpy refuses a shape whose nonzero dimensions multiply out, in bytes, past its index type, even when
    # another dimension is 0 and the array holds nothing.
    if math.prod(d for d in shape if d) * _DTYPES[dtype].itemsize > np.iinfo(np.intp).max:
        raise WeightsError(f"{path}: key {key}: shape {_clip(shape)} is too large for numpy to represent")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise WeightsError(f"{path}: key {key}: bad data_offsets {_clip(offsets)}")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise WeightsError(
            f"{path}: key {key}: data_offsets {_clip(offsets)} lie outside the data "
            f"({data_size} bytes): the file is truncated or its header lies"
        )
    expected = math.prod(shape) * _DTYPES[dtype].itemsize
    if end - begin != expected:
        raise WeightsError(f"{path}: key {key}: {end - begin} bytes for {dtype} {_clip(shape)}, which needs {expected}")
    return dtype, tuple(shape), begin, end


def _clip(value, limit: int = 80, how=repr) -> str:
    """repr (or `how`) of a header value for a message, cut short: a hostile header can hold megabytes."""
    text = how(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_layout(path: Path, entries: list, data_size: int) -> None:
    """Tensors must not overlap (the format also says they tile the data exactly; writers all do that)."""
    spans = sorted((begin, end, key) for key, _, _, begin, end in entries)
    for (_b0, e0, k0), (b1, _e1, k1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise WeightsError(f"{path}: keys {_clip(k0)} and {_clip(k1)} overlap in the data: corrupted header")


def _bf16_to_f32(arr: np.ndarray) -> np.ndarray:
    return (arr.astype(np.uint32) << np.uint32(16)).view(np.float32)


# -- loading into a module tree ---------------------------------------------------------------------------


def load_weights(
    model: Module,
    source: str | os.PathLike | Mapping[str, np.ndarray],
    *,
    check_finite: str = "warn",
    hint: MismatchHint | None = None,
) -> list[str]:
    """Load `source` (a safetensors path or a key->array mapping) into `model`, strictly.

    The file's layout is converted first (`trtnet.layouts.adapt_checkpoint`: DataParallel prefixes, the
    layouts modules declare). Every parameter must then be present with its exact shape and no key may be
    left over, except those a module declares as skipped on purpose (`num_batches_tracked`, ...). All problems
    are reported in one `WeightsError`: up to ten keys of each kind with the counts, and the line `hint` gives
    for the file's key shapes (the zoo's: which other model or layout the file looks like). `check_finite` is
    "warn", "error" or "off" for NaN/inf values. Returns the layouts the file was converted from ([] for none).
    """
    ConfigError.check("model", model, "a trtnet model (an nn.Module)", is_module, source="load_weights")
    modes = ("warn", "error", "off")
    ConfigError.check(
        "check_finite", check_finite, "'warn', 'error' or 'off'", modes.__contains__, source="load_weights"
    )
    ConfigError.check(
        "weights",
        source,
        "a safetensors file's path, or a mapping of key -> array",
        lambda v: isinstance(v, (str, os.PathLike, Mapping)),
        source="load_weights",
    )
    origin = str(source) if isinstance(source, (str, os.PathLike)) else "state dict"
    state = dict(read_safetensors(source) if isinstance(source, (str, os.PathLike)) else source)
    odd_keys = [k for k in state if not isinstance(k, str)]
    if odd_keys:  # layouts and messages work on key names
        raise WeightsError(
            f"{origin}: key {odd_keys[0]!r} is not a string ({type(odd_keys[0]).__name__})"
            + (f" (and {len(odd_keys) - 1} more keys)" if len(odd_keys) > 1 else "")
        )
    original = state
    try:
        state, layouts = adapt_checkpoint(model, state)
    except WeightsError as e:  # a module's own refusal (a head that differs from the embedding it is tied to)
        raise WeightsError(f"{origin}: {e}") from None
    expected = dict(model.named_parameters())
    skipped, unused = _declared(model, state)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and k not in skipped and k not in unused]
    wrong = [
        f"{k}: expected {tuple(p.shape)}, file has {tuple(np.shape(state[k]))}"
        for k, p in expected.items()
        if k in state and tuple(np.shape(state[k])) != tuple(p.shape)
    ]
    if missing or unexpected or wrong:
        read_as = f" (read as {', '.join(layouts)})" if layouts else ""
        lines = [
            f"{origin}: weights do not fit {type(model).__name__}{read_as}",
            *_listed("missing key", "missing keys", missing, ", "),
            *_listed("unexpected key", "unexpected keys", unexpected, ", "),
            *_listed("shape mismatch", "shape mismatches", wrong, "; "),
        ]
        advice = hint(model, {k: tuple(np.shape(v)) for k, v in original.items()}) if hint else None
        raise WeightsError("\n".join(lines + ([f"  {advice}"] if advice else [])))
    if unused:
        warnings.warn(
            f"{origin}: {len(unused)} keys not used by {type(model).__name__} were skipped (e.g. {sorted(unused)[0]})",
            stacklevel=2,
        )
    values = {key: np.asarray(state[key]) for key in expected}
    # A mapping from Python may hold anything array-like; numpy would cast complex, strings or objects to
    # float32 later, silently (dropping an imaginary part, parsing "0.5").
    odd = [
        f"{key!r} ({value.dtype})"
        for key, value in values.items()
        if value.dtype.kind not in "biuf" and not _ml_dtype(value.dtype)
    ]
    if odd:
        raise WeightsError(
            f"{origin}: key {odd[0]} does not hold real numbers (bool, integer or float)"
            + (f" (and {len(odd) - 1} more keys)" if len(odd) > 1 else "")
        )
    bad = [
        key
        for key, value in values.items()
        if check_finite != "off" and value.dtype.kind == "f" and not _all_finite(value)
    ]
    wide = [
        key
        for key, value in values.items()
        if check_finite != "off" and value.dtype.kind == "f" and key not in bad and _beyond_float32(value)
    ]
    if wide and not bad:  # said as such: the file holds no inf, the network would (a float64 1e300)
        bad, what = wide, "values beyond float32's range (infinite in the network)"
    else:
        what = "NaN or infinite values"
    if bad:
        message = f"{origin}: key {bad[0]!r} holds {what}" + (
            f" (and {len(bad) - 1} more keys: {', '.join(bad[1:4])}{'...' if len(bad) > 4 else ''})"
            if len(bad) > 1
            else ""
        )
        if check_finite == "error":
            raise WeightsError(message)
        warnings.warn(message, stacklevel=2)
    # Assigned only once everything is checked, so a refused file leaves the model as it was.
    for key, param in expected.items():
        param.value = values[key]
    return layouts


def _is_path(v: object) -> bool:
    return isinstance(v, (str, os.PathLike))


def _ml_dtype(dtype: np.dtype) -> bool:
    """ml_dtypes' real types (bfloat16, float8_*, int4), which numpy reports as kind 'V' but casts to float32."""
    return dtype.kind == "V" and dtype.type.__module__.startswith("ml_dtypes")


def _listed(one: str, many: str, items: list[str], sep: str, limit: int = 10) -> list[str]:
    """One line per kind of problem: `missing key: k`, or `235 missing keys: k1, ..., k10 and 225 more`."""
    if len(items) <= 1:
        return [f"  {one}: {k}" for k in items]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return [f"  {len(items)} {many}: {sep.join(items[:limit])}{more}"]


def _all_finite(value: np.ndarray, chunk: int = 1 << 20, dtype: type | None = None) -> bool:
    """np.isfinite(value).all() (cast to `dtype` first, if given) in slices, so the check needs a megabyte, not a
    mask as large as the tensor."""
    flat = value.reshape(-1)  # a copy only for a non-contiguous array handed in by the caller
    with np.errstate(over="ignore"):
        return all(
            np.isfinite(flat[i : i + chunk].astype(dtype or flat.dtype, copy=False)).all()
            for i in range(0, flat.size, chunk)
        )


def _beyond_float32(value: np.ndarray) -> bool:
    """Whether a finite float64 array holds values that are infinite as the float32 the network holds them in."""
    return value.dtype.itemsize > 4 and not _all_finite(value, dtype=np.float32)


def _declared(model: Module, state: Mapping[str, np.ndarray]) -> tuple[set[str], set[str]]:
    """Keys of `state` that modules declare as skipped on purpose, and those they declare unused."""
    skipped, unused = set(), set()
    for prefix, module in model.named_modules():
        for patterns, into in ((module.skip_keys, skipped), (module.unused_keys, unused)):
            for pattern in patterns:
                full = f"{prefix}.{pattern}" if prefix else pattern
                into.update(k for k in state if fnmatch.fnmatchcase(k, full))
    return skipped, unused


def save_safetensors(
    state: Mapping[str, np.ndarray], path: str | os.PathLike, metadata: Mapping[str, str] | None = None
) -> None:
    """Write `state` as a safetensors file, atomically; keys and metadata are strings, not `__metadata__`."""
    refuse_plan_files(path := Path(path), "the weights", WeightsError)
    if not isinstance(metadata, Mapping | None) or not isinstance(state, Mapping):  # `dict()` read "ab" as {a: b}
        raise WeightsError(f"{path}: the state and any metadata are mappings (of names to arrays, strings)")
    for what, items in (("key", list(state)), ("metadata entry", [*(metadata or {}).items()])):
        bad = [i for i in items if not all(isinstance(v, str) for v in (i if isinstance(i, tuple) else [i]))]
        if bad or "__metadata__" in items:
            why = "safetensors takes strings only" if bad else "the name is the format's own, for its metadata"
            raise WeightsError(f"{path}: {what} {_clip((bad or ['__metadata__'])[0])}: {why}")
    codes = {v: k for k, v in _DTYPES.items() if k != "BF16"}
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    arrays, offset = [], 0
    for key, value in state.items():
        arr = np.ascontiguousarray(value)
        arr = arr.astype(arr.dtype.newbyteorder("<")) if arr.dtype.byteorder == ">" else arr
        code = codes.get(arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype)
        if code is None:
            raise WeightsError(f"{path}: key {key!r}: dtype {arr.dtype} cannot be written to safetensors")
        header[key] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        arrays.append(arr)
        offset += arr.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # pad to 8 bytes so the data stays aligned
    with replaced(path, "the weights", WeightsError) as tmp, open(tmp, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for arr in arrays:
            f.write(arr.tobytes())
