"""Plan files: a serialized TensorRT engine with a JSON sidecar saying what it takes and returns. No CUDA here.

The plan file is a plain TensorRT plan (other TensorRT tools can read it); `<plan>.json` next to it carries
the input/output specs, the backend, the GPU target and the plan's size and sha256, so a damaged or mismatched
pair, or a plan from another backend, is caught before TensorRT ever reads it. `Plan.save` replaces a pair as
a whole (see `Plan.save` for how); `Plan.load` reads only regular files, bounded by the sizes the sidecar
states, and checks every sidecar field (trtnet.sidecar).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from trtnet.backend import get_backend
from trtnet.errors import EngineError
from trtnet.fileio import (
    atomic_write,
    folder_lock,
    fsync_folder,
    refuse_special,
    remove_stale_temporaries,
    replace,
    write_temporary,
)
from trtnet.fileread import NotRegularFile, file_kind, read_json, read_regular
from trtnet.runtime.sidecar import FORMAT, FORMAT_VERSION, MAX_SIDECAR_BYTES, TensorSpec, check_metadata
from trtnet.words import counted

_P = TypeVar("_P", bound="Plan")  # Engine.load returns an Engine
_LOAD_ATTEMPTS = 20  # reads of a pair that saves keep replacing (see Plan.load)

__all__ = ["Plan", "TensorSpec", "sidecar_path"]


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where the metadata of the plan at `path` lives: `<path>.json` next to it."""
    path = _file_path(path)
    return path.with_name(path.name + ".json")


def _file_path(path: str | os.PathLike) -> Path:
    """`path` as a Path naming a file: an `EngineError` for "", ".", "/" and the like (or not a path at all)."""
    if not isinstance(path, (str, os.PathLike)):
        raise EngineError(f"a plan path must be a str or os.PathLike, not {type(path).__name__}")
    p = Path(path)
    if p.name in ("", ".", ".."):
        raise EngineError(f"{str(path)!r} names no file: give the plan file's path (e.g. model.plan)")
    return p


def plan_file_kind(path: str | os.PathLike, which: tuple[str, ...] = ("metadata", "plan")) -> str | None:
    """What `path` is when it is one of the two files of a saved plan ("the metadata of the plan X", or "the
    plan X, its metadata beside it"; `which` of the two to look for), so that a writer of anything else refuses
    it; None otherwise (judged by the metadata's `format`: a JSON file that merely sits beside a file of its
    name is not one, a sidecar of another format version or with a damaged field still is)."""
    path = Path(path)
    if not os.path.isfile(path):
        return None
    owner = path.parent / path.name.removesuffix(".json")
    candidates = []
    if "metadata" in which and owner != path:
        candidates.append((path, owner, f"the metadata of the plan {owner.name}"))
    if "plan" in which:
        candidates.append((sidecar_path(path), path, f"the plan {path.name}, its metadata {path.name}.json beside it"))
    for meta, plan, kind in candidates:
        if os.path.isfile(plan) and os.path.isfile(meta):
            try:  # its format says so, whatever else is wrong with it (another version, a damaged field)
                doc = read_json(meta, MAX_SIDECAR_BYTES, "metadata")
            except EngineError:
                continue
            if isinstance(doc, dict) and doc.get("format") == FORMAT:
                return kind
    return None


def refuse_plan_files(path: str | os.PathLike, what: str, error: type[Exception]) -> None:
    """An `error` where `path`, about to be written with `what` (the calibration, the outputs...), is one of a
    saved plan's files (`plan_file_kind`): `-o other.plan.json` made that plan unloadable."""
    kind = plan_file_kind(path)
    if kind is not None:
        raise error(f"{path}: cannot write {what} there: it is {kind}")


def read_metadata(meta_path: Path) -> dict:
    """The checked sidecar at `meta_path` (every field's type and range): an `EngineError` for anything else."""
    return check_metadata(read_json(meta_path, MAX_SIDECAR_BYTES, "metadata"), meta_path)


def _missing(e: EngineError) -> bool:
    """Whether `e` says the file was not there (read_regular keeps the OS error as the cause)."""
    return isinstance(e.__cause__, FileNotFoundError)


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
    cache_key: str = ""  # the engine cache key it was stored under ("" outside the cache)
    from_cache: bool = field(default=False, compare=False)  # handed out by the engine cache, not built now

    def metadata(self) -> dict:
        """What the sidecar JSON holds: enough to check a plan before TensorRT ever reads it."""
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "backend": self.backend,
            "target": self.target,
            "precision": self.precision,
            "num_layers": self.num_layers,
            "build_seconds": round(self.build_seconds, 3),
            "plan_bytes": len(self.plan),
            "plan_sha256": hashlib.sha256(self.plan).hexdigest(),
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
        }
        if self.cache_key:
            meta["cache_key"] = self.cache_key
        return meta

    def save(self, path: str | os.PathLike) -> Path:
        """Write the plan to `path` and its metadata to `<path>.json`, as one: after a failure or a signal at any
        point, `load(path)` gives the pair that was there before or the new one, never a mixture.

        An `EngineError` naming the file says what failed (a folder that cannot be written, a full disk).
        """
        # The commit, and why it is all-or-nothing. The sidecar is the one record of which plan bytes belong
        # to the pair (size and sha256), and `load` takes the plan at `path` if the sidecar describes it.
        #   1. Both new files are written and fsynced under hidden temporary names: the old pair is untouched.
        #   2. The sidecar is replaced (rename) by one describing the new plan AND the old one ("previous": the
        #      old sidecar's content). The plan at `path` is still the old one, which this sidecar describes.
        #   3. The plan is replaced (rename): the new plan, which the sidecar describes.
        #   4. The sidecar is replaced by one describing the new plan alone (tidiness; a failure here is moot).
        # Each rename is atomic, so at every instant the file at `path` is the old or the new plan and the
        # sidecar describes it; `load` picks the description whose size and sha256 match. A failure before
        # step 2 changes nothing; temporaries are removed on the way out (and those of writers killed before
        # they could remove them, by the next save in the folder). Writers of one folder take turns for
        # steps 2-4 (a lock on the folder), as step 2 reads the pair it is about to replace.
        path = _file_path(path)
        side = sidecar_path(path)
        new_meta = self.metadata()
        for p in (path, side):
            refuse_special(p, "the engine")
        # `build -o other.plan.json` made the plan beside it unloadable, and `-o X` where X.json is a plan
        # wrote this plan's metadata over that one.
        for target, kind in ((path, plan_file_kind(path, ("metadata",))), (side, plan_file_kind(side, ("plan",)))):
            if kind is not None:
                raise EngineError(f"{target}: this is {kind}; give the new plan a name of its own")
        folder = path.parent
        temps: list[Path] = []
        try:
            remove_stale_temporaries(folder, (path.name, side.name))
            temps.append(write_temporary(path, self.plan, what="the plan"))
            with folder_lock(folder):
                previous = _previous_metadata(path, side)
                both = {**new_meta, "previous": previous} if previous else new_meta
                temps.append(write_temporary(side, _json(both), what="the engine metadata"))
                replace(temps[1], side, "it")
                replace(temps[0], path, "it")
                fsync_folder(folder)
                if previous:
                    try:
                        atomic_write(side, _json(new_meta))
                    except EngineError:
                        pass  # the sidecar describes the new plan already (and the old one, now unused)
        finally:
            for t in temps:
                with contextlib.suppress(OSError):
                    t.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls: type[_P], path: str | os.PathLike, *, check_backend: bool = True) -> _P:
        """Read a plan saved by `save` and check it against its metadata and this process's backend.

        Both files must be regular files; the plan's size is checked against the metadata before it is read.
        A truncated or modified plan, a missing, malformed or foreign sidecar, or a plan from another backend
        or version is an `EngineError` saying which and what to do. A plan for another GPU is caught when it is
        first run.
        """
        path = _file_path(path)
        meta_path = sidecar_path(path)
        meta = _metadata_of(path, meta_path)
        for attempt in range(_LOAD_ATTEMPTS):
            try:
                plan, match = _plan_described(path, meta_path, meta)
                break
            except EngineError:
                # A save that committed between our two reads (sidecar, then plan) shows as a mismatch: the
                # sidecar has changed since. Read the pair again, as long as it keeps changing (writers that
                # save in a loop can overtake a reader several times); a mismatch of a sidecar that stayed is
                # final. The bound only stops a reader starved by endless writers.
                again = _metadata_of(path, meta_path)
                if again == meta or attempt == _LOAD_ATTEMPTS - 1:
                    raise
                meta = again
                time.sleep(min(0.001 * 2**attempt, 0.05))
        if check_backend:
            here = str(get_backend())
            if match["backend"] != here:
                raise EngineError(
                    f"{path}: built with {match['backend']}, but this process uses {here}; "
                    "a TensorRT plan only loads in the exact backend and version that built it: "
                    "rebuild it with trtnet.build"
                )
        return cls(
            plan,
            inputs=[TensorSpec(**d) for d in match["inputs"]],
            outputs=[TensorSpec(**d) for d in match["outputs"]],
            backend=match["backend"],
            num_layers=match["num_layers"],
            build_seconds=float(match["build_seconds"]),
            precision=match["precision"],
            target=match["target"],
            cache_key=match["cache_key"],
        )

    def summary(self, label: str = "engine") -> str:
        """One line: layers, build seconds (or that it came from the engine cache), engine size."""
        built = f"built in {self.build_seconds:.1f} s"
        if self.from_cache:  # the time recorded is the original build's, not this call's
            built = f"from the engine cache (first {built})"
        return f"{label}: {counted(self.num_layers, 'layer')}, {built}, engine {len(self.plan) / 2**20:.1f} MiB ({self.backend})"


def _metadata_of(path: Path, meta_path: Path) -> dict:
    try:
        return read_metadata(meta_path)
    except EngineError as e:
        if not _missing(e):
            raise
        if not os.path.lexists(path):
            raise EngineError(f"{path}: cannot read the plan: No such file or directory") from None
        if path.name.endswith(".plan.json") and os.path.isfile(path):
            raise EngineError(
                f"{path}: this is a plan's sidecar; give the plan, {path.name[: -len('.json')]}"
            ) from None
        if not os.path.isfile(path):
            raise EngineError(f"{path}: the plan is {file_kind(os.stat(path).st_mode)}, not a regular file") from None
        raise EngineError(
            f"{path}: no metadata at {meta_path.name}; trtnet reads plans written by "
            "Engine.save (plan + JSON sidecar). Rebuild it with trtnet.build"
        ) from None


def _plan_described(path: Path, meta_path: Path, meta: dict) -> tuple[bytes, dict]:
    """The plan at `path` and the description in `meta` that matches it (size and sha256)."""
    described = [meta, *meta["previous"]]
    sizes = tuple(dict.fromkeys(m["plan_bytes"] for m in described))
    plan = read_regular(path, max(sizes), "plan", sizes)
    digest = hashlib.sha256(plan).hexdigest()
    match = next((m for m in described if m["plan_sha256"] == digest and m["plan_bytes"] == len(plan)), None)
    if match is None:
        raise EngineError(
            f"{path}: the plan does not match its metadata (sha256 differs): modified, or "
            f"{meta_path.name} belongs to another plan"
        )
    return plan, match


def _json(meta: dict) -> bytes:
    return (json.dumps(meta, indent=1) + "\n").encode()


def _previous_metadata(path: Path, side: Path) -> list[dict]:
    """The descriptions, in the sidecar there now, of a plan of the size of the one at `path` (the sha256 is
    left to `load`: hashing the old plan would cost a read of it). Usually one; two when an earlier save
    stopped after its step 2 and both of its plans have that size. Empty when the pair there is unsound: a pair
    that did not load before need not load after a failed save."""
    # An OS error that may pass (too many open files, EIO, EINTR) stops the save before anything changes: the
    # pair there may be sound, and a sidecar written without its description would break it.
    try:
        meta = read_metadata(side)
        size = os.stat(path).st_size
    except (FileNotFoundError, PermissionError):
        return []
    except OSError as e:
        raise EngineError(f"{path}: cannot save the engine: cannot read the plan there now ({e.strerror or e})") from e
    except EngineError as e:
        if isinstance(e.__cause__, OSError) and not isinstance(
            e.__cause__, (FileNotFoundError, PermissionError, NotRegularFile)
        ):
            raise EngineError(f"{path}: cannot save the engine: cannot read the pair there now ({e})") from e
        return []  # missing, unreadable to us, or malformed: the pair there does not load now
    candidates = [{k: v for k, v in meta.items() if k != "previous"}, *meta["previous"]]
    return [m for m in candidates if m["plan_bytes"] == size]
