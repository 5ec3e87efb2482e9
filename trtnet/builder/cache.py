"""The engine cache: serialized engines kept in a user folder, keyed by everything that shapes the plan.

The key hashes the network itself (every layer's type, name, input/output shapes and dtypes, and the
attributes TensorRT exposes on it), the weights (the arrays a `Network` keeps alive for TensorRT; an ONNX
file's bytes), the build options (the whole emission `Policy`, shapes and profile, optimization level), the
backend and its version, and the target GPU (its compute capability when there is one, else "aot"). An
entry is the plan and its JSON sidecar (which records the key), saved as one; builders of one key take a lock
file in turn, so two processes end with one good entry and the second one reuses it. An entry that fails its
checks (or is not a regular file, or records another key) is rebuilt with a warning; a folder that cannot be
used warns and the build goes on without it. The folder is `trtnet.target.cache_dir()`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtnet.backend import get_backend, get_trt, quiet_warnings
from trtnet.errors import EngineError
from trtnet.fileio import file_lock, file_lock_if_free, remove_stale_temporaries
from trtnet.runtime.engine import Engine
from trtnet.runtime.plan import sidecar_path
from trtnet.target import cache_dir, target

# Bumped when the key's recipe, or what a key builds, changes, so old entries are not mistaken for new ones
# (3: fp32 engines are built with TF32 off; entries record their key. 4: a calibration enters as its ranges
# only, not its file path; an input's shape range always; an ONNX file's external weights).
KEY_VERSION = 4


# -- the key -------------------------------------------------------------------------------------------------


def _layer_classes(trt) -> dict[str, type]:
    """LayerType name -> its Python class, found by name (CONVOLUTION -> IConvolutionLayer, TOPK -> ITopKLayer)."""
    classes = {name.lower(): getattr(trt, name) for name in dir(trt) if name.startswith("I") and name.endswith("Layer")}
    return classes


def _plain(value: Any) -> Any:
    """A JSON-able form of a layer attribute, or None for what the key leaves out (weights: hashed apart)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(type(value), "__members__"):  # TensorRT's enums (pybind11): their name says it all
        return str(value)
    if isinstance(value, (tuple, list)) or type(value).__name__.startswith(("Dims", "Permutation")):
        return [_plain(v) for v in value]
    return None  # trt.Weights and other handles


def _tensor_sig(t) -> list | None:
    if t is None:
        return None
    return [t.name, list(t.shape), str(t.dtype)]


def network_fingerprint(network) -> str:
    """sha256 of the network's structure: layers, their tensors and the attributes TensorRT reports."""
    trt = get_trt()
    classes = _layer_classes(trt)
    h = hashlib.sha256()
    with quiet_warnings():  # reading a dynamic layer's static-only attributes warns, one line a layer
        _fingerprint_into(h, network, classes)
    return h.hexdigest()


def _fingerprint_into(h, network, classes: dict[str, type]) -> None:
    for i in range(network.num_inputs):
        h.update(json.dumps(["in", _tensor_sig(network.get_input(i))]).encode())
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        row: list[Any] = [
            str(layer.type),
            layer.name,
            [_tensor_sig(layer.get_input(j)) for j in range(layer.num_inputs)],
            [_tensor_sig(layer.get_output(j)) for j in range(layer.num_outputs)],
        ]
        cls = classes.get(f"i{layer.type.name.replace('_', '').lower()}layer")
        if cls is not None:
            layer.__class__ = cls  # TensorRT hands back the base ILayer; the subclass exposes the attributes
            attrs = {}
            for name in sorted(vars(cls)):
                if name.startswith("_") or not isinstance(vars(cls)[name], property):
                    continue
                try:
                    attrs[name] = _plain(getattr(layer, name))
                except (RuntimeError, TypeError, ValueError, AttributeError):
                    attrs[name] = "?"  # an attribute not set on this layer (e.g. an unused optional one)
            row.append(attrs)
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
    for i in range(network.num_outputs):
        h.update(json.dumps(["out", _tensor_sig(network.get_output(i))]).encode())


def weights_fingerprint(arrays: list[np.ndarray]) -> str:
    """sha256 over the weight arrays in emission order (dtype, shape and bytes of each)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def engine_key(network, keepalive: list[np.ndarray], options: dict[str, Any]) -> str:
    """The cache key of an emitted network built with `options` (precision, shapes, backend...)."""
    parts = {
        "key_version": KEY_VERSION,
        "backend": str(get_backend()),
        "target": target(),
        "network": network_fingerprint(network),
        "weights": weights_fingerprint(keepalive),
        "options": options,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:40]


# -- entries -------------------------------------------------------------------------------------------------


def entry_path(key: str, folder: Path) -> Path:
    return folder / f"{key}.plan"


def _warn(message: str) -> None:
    warnings.warn(f"trtnet engine cache: {message}", stacklevel=4)


def cached(
    key: str,
    folder: Path,
    build: Callable[[], Engine],
    runs_here: Callable[[Engine], bool],
    verbose: bool = False,
    label: str = "engine",
) -> Engine:
    """The engine of `key` from `folder`, or `build()` stored there. Builders of one key take turns (a lock
    file), so the second finds the first one's entry. A folder that cannot be used (a file, read-only, full)
    warns and the engine is built without the cache; an entry that is unusable, or that `runs_here` refuses,
    is rebuilt and replaced."""
    with contextlib.ExitStack() as held:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            held.enter_context(file_lock(folder / f"{key}.lock"))
        except OSError as e:
            why = "not a folder" if folder.exists() and not folder.is_dir() else (e.strerror or str(e))
            _warn(f"{folder} cannot be used ({why}); building without the cache")
            return build()
        engine = load_entry(key, folder)
        if engine is not None and not runs_here(engine):
            remove_entry(key, folder)
            engine = None
        if engine is not None:
            engine.from_cache = True  # its summary says so, rather than the original build's time as if now
            with contextlib.suppress(OSError):
                os.utime(entry_path(key, folder))  # its last use, which pruning goes by
            if verbose:
                print(f"{label}: from the engine cache ({entry_path(key, folder)})", file=sys.stderr)
            return engine
        engine = build()
        store_entry(key, folder, engine)
        limit = size_limit()
        if limit is not None:
            prune_cache(limit, folder, keep=(key,))
        return engine


def load_entry(key: str, folder: Path) -> Engine | None:
    """The cached engine for `key`, None when absent; an entry that is unusable (damaged, malformed, not a
    regular file, stored under another key) is removed with a warning (then None)."""
    path = entry_path(key, folder)
    if not os.path.lexists(path) and not os.path.lexists(sidecar_path(path)):
        return None
    try:
        engine = Engine.load(path)
        if engine.cache_key != key:
            said = f"key {engine.cache_key}" if engine.cache_key else "no key"
            raise EngineError(f"its metadata records {said}: an entry copied from elsewhere")
    except EngineError as e:
        _warn(f"entry {path.name} is unusable ({e}); rebuilding it")
        remove_entry(key, folder)
        return None
    return engine


def store_entry(key: str, folder: Path, engine: Engine) -> Path | None:
    """Save `engine` as the entry of `key` (its sidecar records the key); None, with a warning, where the folder
    refuses it (full, read-only): the engine is still good, only not cached. Removes dead builders' temporaries."""
    engine.cache_key = key
    remove_stale_temporaries(folder)
    try:
        return engine.save(entry_path(key, folder))
    except EngineError as e:
        _warn(f"cannot store entry {entry_path(key, folder).name} ({e}); the engine is built but not cached")
        return None


def remove_entry(key: str, folder: Path) -> None:
    """Remove an entry's plan and sidecar, whatever they are (files, FIFOs, folders); best effort."""
    path = entry_path(key, folder)
    for p in (path, sidecar_path(path)):
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
        except OSError:
            pass  # storing the new entry then fails, with a warning


# -- size ----------------------------------------------------------------------------------------------------

# The largest size the cache may grow to, as `parse_size` reads it ("20G"): after each store, the least recently
# used entries are removed until the cache holds at most that. Unset, the cache only grows.
SIZE_VARIABLE = "TRTNET_CACHE_MAX_SIZE"
_KEY = re.compile(r"[0-9a-f]{40}")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from `text`: a number with an optional unit K, M, G or T (powers of 1024; "B", "iB" after it
    allowed, any case). A `ValueError` says what is wrong.

    >>> parse_size("20G"), parse_size("1.5M"), parse_size("4096"), parse_size("512 MiB")
    (21474836480, 1572864, 4096, 536870912)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?\s*", text, re.IGNORECASE)
    if match is None or (match.group(3) and match.group(3).lower() == "ib" and not match.group(2)):
        raise ValueError(f"{text!r} is not a size: a number of bytes, or one with K, M, G or T (20G, 1.5M)")
    value = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if value >= 2**63:
        raise ValueError(f"{text!r} is more bytes than any disk holds")
    return int(value)


def size_limit() -> int | None:
    """`$TRTNET_CACHE_MAX_SIZE` in bytes; None when unset, or (with a warning) when it is not a size."""
    text = os.environ.get(SIZE_VARIABLE, "")
    if not text.strip():
        return None
    try:
        return parse_size(text)
    except ValueError as e:
        _warn(f"{SIZE_VARIABLE}: {e}; the cache is not pruned")
        return None


@dataclass(frozen=True)
class CacheEntry:
    """An entry of the cache folder: its key, its plan, the bytes it holds (plan and sidecar), when it was last
    stored or used (the plan's modification time, set anew at each hit), and whether its plan and its sidecar are
    both regular files (an entry that is not whole, such as a plan without its sidecar, loads nowhere: the next
    build of its key replaces it, and pruning removes it)."""

    key: str
    plan: Path
    size: int
    last_used: float
    whole: bool = True


def cache_entries(folder: str | os.PathLike | None = None) -> list[CacheEntry]:
    """The entries in `folder` (default: the cache folder), most recently used first; none where it is missing.
    An `OSError` where it cannot be read."""
    folder = cache_dir(folder)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    keys = {n.partition(".")[0] for n in names if n.partition(".")[2] in ("plan", "plan.json")}
    found = [e for e in (_entry(folder, key) for key in keys if _KEY.fullmatch(key)) if e is not None]
    return sorted(found, key=lambda e: (-e.last_used, e.key))


def _entry(folder: Path, key: str) -> CacheEntry | None:
    """The entry of `key` as its files are now (lstat: links and special files are not followed or opened)."""
    plan = entry_path(key, folder)
    stats = []
    for p in (plan, sidecar_path(plan)):
        try:
            stats.append(os.lstat(p))
        except OSError:
            stats.append(None)
    if stats == [None, None]:  # removed meanwhile
        return None
    size = sum(s.st_size for s in stats if s is not None and stat.S_ISREG(s.st_mode))
    stamp = next(s for s in stats if s is not None).st_mtime  # the plan's, or an orphan sidecar's
    whole = all(s is not None and stat.S_ISREG(s.st_mode) for s in stats)  # a plan and a sidecar, both files
    return CacheEntry(key, plan, size, stamp, whole)


def prune_cache(max_bytes: int, folder: str | os.PathLike | None = None, keep: Iterable[str] = ()) -> list[CacheEntry]:
    """Remove the least recently used entries of `folder` (default: the cache folder) until the others hold at
    most `max_bytes`, and every entry that is not whole; `prune_cache(0)` empties it. Left in place: the keys in
    `keep`, and an entry that a build holds right now (storing or loading it) or that was used since it was
    listed. Returns the entries removed. The empty lock files stay: removing one could let two builders of its
    key run at once."""
    folder = cache_dir(folder)
    entries = cache_entries(folder)
    total = sum(e.size for e in entries)
    removed = []
    for entry in reversed(entries):  # the least recently used first
        if entry.key in keep or (entry.whole and total <= max_bytes):
            continue
        with file_lock_if_free(folder / f"{entry.key}.lock") as free:
            unused = free and _entry(folder, entry.key) == entry  # not used (nor replaced) since it was listed
            if unused:
                _remove_runtime_cache(entry.plan, folder)
                remove_entry(entry.key, folder)
        if unused and _entry(folder, entry.key) is None:
            total -= entry.size
            removed.append(entry)
    return removed


def _remove_runtime_cache(plan: Path, folder: Path) -> None:
    """The kernels TensorRT for RTX compiled when the entry's engine first ran, kept under `runtime/` by the
    plan's hash (see `Engine`): they serve no other plan. Only a regular file is read (never a link: it could
    lead to another entry's plan, or to a device), a plan without its sidecar too."""
    runtime = folder / "runtime"
    if not runtime.is_dir():
        return
    with contextlib.suppress(OSError):
        if not stat.S_ISREG(os.lstat(plan).st_mode):  # a FIFO would block the read, a device never end it
            return
        digest = hashlib.sha256()
        with open(plan, "rb", opener=lambda p, flags: os.open(p, flags | getattr(os, "O_NOFOLLOW", 0))) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        (runtime / f"{digest.hexdigest()[:32]}.rtcache").unlink(missing_ok=True)
