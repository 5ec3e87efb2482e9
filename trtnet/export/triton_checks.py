"""The checks of a Triton export against the repository it writes to: the request (name, version, instances),
the version folders already there, and whether their engines fit a new config. Read only: `trtnet.export.triton`
writes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from trtnet.errors import EngineError, ExportError
from trtnet.export.triton_config import Signature, signature
from trtnet.runtime.plan import read_metadata

PLAN_FILE = "model.plan"  # Triton's default_model_filename for platform tensorrt_plan
SIDECAR_FILE = PLAN_FILE + ".json"  # what Engine.save writes beside a plan
CONFIG_FILE = "config.pbtxt"
MAX_CONFIG_BYTES = 1 << 20  # trtnet writes a few kilobytes
STAGING_PREFIX = "trtnet-export-"  # `.trtnet-export-NAME.<host>.<pid>.<random>.tmp` while an export writes
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_VERSION_DIR = re.compile(r"[1-9][0-9]*")  # Triton ignores version folders that are not numbers or start with 0
MAX_VERSION = 2**63 - 1  # Triton reads a version folder's name as an int64
MAX_NAME_BYTES = 255  # one folder name (NAME_MAX on Linux and macOS)


# -- checks before anything is built or written ------------------------------------------------------------------


def check_request(
    repo: str | os.PathLike, name: str, *, version: int | None, instances: int, dynamic_batching: bool | None = None
) -> tuple[Path, int]:
    """Check the repository, model name, version and instance count; returns the repository path and the version
    to write (the next free one when `version` is None). Raises `ExportError` naming what is wrong."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise ExportError(
            f"model name {name!r}: expected one folder name of letters, digits, '_', '.' and '-' "
            "(no path separator, not starting with '.' or '-')"
        )
    if len(name) > MAX_NAME_BYTES:
        raise ExportError(
            f"model name {name[:40]}... ({len(name)} characters): a folder name holds at most {MAX_NAME_BYTES}"
        )
    if not isinstance(repo, (str, os.PathLike)) or not os.fspath(repo):
        raise ExportError(f"repo {repo!r}: expected the model repository's folder path (str or os.PathLike)")
    if isinstance(instances, bool) or not isinstance(instances, int) or not 1 <= instances < 2**31:
        raise ExportError(
            f"instances {instances!r}: expected a whole number >= 1 (model instances per GPU; "
            "Triton's count is an int32)"
        )
    if dynamic_batching is not None and not isinstance(dynamic_batching, bool):  # "no" would be truthy
        raise ExportError(
            f"dynamic_batching {dynamic_batching!r}: expected True, False, or None (where the engine allows it)"
        )
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION
    ):
        raise ExportError(
            f"version {version!r}: expected a whole number >= 1 and <= 2**63 - 1 (Triton's version "
            "folders are positive int64 numbers)"
        )
    repo = Path(repo)
    existing = repo
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # mkdir would fail on it with a bare "File exists"
            raise ExportError(
                f"{repo}: the model repository must be a folder, but {existing} is a symbolic link to "
                f"{os.readlink(existing)!r}, which does not exist"
            )
        existing = existing.parent
    if not existing.is_dir():
        raise ExportError(f"{repo}: the model repository must be a folder, but {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(f"{repo}: the model repository is not writable ({existing}: permission denied)")
    model_dir = repo / name
    if os.path.lexists(model_dir) and not model_dir.is_dir():
        raise ExportError(f"{model_dir}: exists and is not a folder (a Triton model is a folder)")
    if version is None:
        return repo, next_version(model_dir)
    if os.path.lexists(model_dir / str(version)):  # a link to nothing too: the version folder could not be made
        kind = " (a symbolic link to nothing)" if not (model_dir / str(version)).exists() else ""
        raise ExportError(
            f"{model_dir / str(version)}: version {version} of model {name!r} exists{kind}; an existing "
            f"version is never replaced: export as a new version (the next free one is "
            f"{next_version(model_dir)}) or remove that folder yourself"
        )
    return repo, version


def next_version(model_dir: Path) -> int:
    """One more than every version-like name in the model folder, a stray file called `3` included (a version
    folder could not be made beside it); an `ExportError` past Triton's highest version."""
    names = os.listdir(model_dir) if model_dir.is_dir() else []
    highest = max((int(n) for n in names if _VERSION_DIR.fullmatch(n)), default=0)
    if highest >= MAX_VERSION:
        raise ExportError(
            f"{model_dir}: holds version {highest}, so the next would be beyond the highest Triton reads "
            f"(2**63 - 1, an int64): give --version (version=) a free one below it, or export under another --name"
        )
    return highest + 1


def existing_versions(model_dir: Path) -> list[int]:
    """The version folders Triton sees in a model folder."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and _VERSION_DIR.fullmatch(p.name))


def check_existing_versions(model_dir: Path, new: Signature, meta: dict | None = None) -> None:
    """Every existing version's engine must fit the config about to replace the model's, and (given the new
    engine's metadata `meta`) be built by the same TensorRT for the same GPU: one Triton loads plans of its one
    TensorRT on its GPUs, and the config records that backend for all versions. Else `ExportError`."""
    for v in existing_versions(model_dir):
        sidecar = model_dir / str(v) / SIDECAR_FILE
        if not os.path.lexists(sidecar):
            raise ExportError(
                f"{sidecar}: missing, so version {v} cannot be checked against the new {CONFIG_FILE} "
                "(the config is shared by all versions): export under another --name"
            )
        try:  # checked field by field, as Engine.load checks it: the file may be anyone's
            meta_v = read_metadata(sidecar)
        except EngineError as e:  # a missing file here, after lexists: a link to nothing
            why = f"{sidecar}: a link to a missing file" if isinstance(e.__cause__, FileNotFoundError) else e
            raise ExportError(f"version {v} cannot be checked against the new {CONFIG_FILE}: {why}") from None
        try:
            old = signature(meta_v, dynamic_batching=new.max_batch_size > 0, where=str(sidecar))
            fits = old.promise() == new.promise()
        except ExportError:  # it cannot be served the new config's way at all
            fits = False
        if meta is not None:
            for field, what in (("backend", "built by"), ("target", "built for")):
                theirs, ours = str(meta_v.get(field, "")), str(meta.get(field, ""))
                if theirs != ours:
                    raise ExportError(
                        f"{model_dir}: version {v}'s engine was {what} {theirs or '?'}, the new one {what} "
                        f"{ours or '?'}; one Triton serves plans of one TensorRT on one kind of GPU, and one "
                        f"{CONFIG_FILE} records it for every version: export the new engine under another --name, or remove version {v}"
                    )
        if not fits:
            raise ExportError(
                f"{model_dir}: version {v}'s engine ({_describe(signature(meta_v, where=str(sidecar)))}) "
                f"does not fit the new engine's config ({_describe(new)}); one {CONFIG_FILE} serves "
                "every version of a model, so export the new engine under another --name"
            )


def _describe(sig: Signature) -> str:
    tensors = ", ".join(f"{n} {t}{list(d)}" for n, t, d in sig.inputs + sig.outputs)
    return f"max_batch_size {sig.max_batch_size} with {tensors}"
