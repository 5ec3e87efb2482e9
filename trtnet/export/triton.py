"""A Triton Inference Server model repository from a trtnet engine: `config.pbtxt` plus a versioned plan.

>>> from trtnet.export.triton import export_triton
>>> done = export_triton(resnet18(weights=None), "models", "resnet18", batch_size=(1, 8, 32))  # doctest: +SKIP
>>> str(done.plan)                                                                           # doctest: +SKIP
'models/resnet18/1/model.plan'

Layout written (Triton's own): `REPO/NAME/config.pbtxt` and `REPO/NAME/V/model.plan`, with trtnet's JSON sidecar
beside the plan (`model.plan.json`: Triton ignores it, `trtnet.Engine.load` reads the plan back with it).

The config's text, and how the engine's batch becomes Triton's, are `trtnet.export.triton_config`'s: its module
docstring has the batching rules (and docs/triton.md, Batching).

Writing is atomic: a staging folder inside REPO, renamed into place. Existing versions are never touched; the
config, shared by a model's versions, is replaced only when every existing version's engine (its sidecar) has
the same signature as the new one. Exports commit in turn (a lock on REPO), checking the model again first, so
one that raced another into the same model is refused rather than writing a version the config does not fit.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtnet.backend import get_backend
from trtnet.builder.build import build
from trtnet.errors import EngineError, ExportError
from trtnet.export.triton_checks import (
    CONFIG_FILE,
    MAX_CONFIG_BYTES,
    PLAN_FILE,
    STAGING_PREFIX,
    check_existing_versions,
    check_request,
    next_version,
)
from trtnet.export.triton_config import (
    check_loadable,
    config_parameters,
    render_config,
    signature,
    with_batching,
)
from trtnet.fileio import atomic_write, folder_lock, fsync_folder, is_stale, replace, temporary_name
from trtnet.fileread import read_regular
from trtnet.runtime.plan import Plan

if TYPE_CHECKING:
    from trtnet.nn.module import Module


@dataclass(frozen=True)
class TritonExport:
    """What `export_triton` wrote: the model folder, the version, its plan and config, and what became of it."""

    model_dir: Path
    version: int
    plan: Path
    config: Path
    config_text: str
    config_action: str  # "written" (a new model), "unchanged", or "replaced"
    max_batch_size: int

    def summary(self) -> str:
        batching = (
            f"max_batch_size {self.max_batch_size}, dynamic batching"
            if self.max_batch_size
            else "max_batch_size 0 (clients send whole batches the engine takes)"
        )
        return f"wrote {self.plan} (version {self.version}); {self.config} {self.config_action}; {batching}"


# -- the export ---------------------------------------------------------------------------------------------------


def export_engine(
    engine: Plan,
    repo: str | os.PathLike,
    name: str,
    *,
    version: int | None = None,
    instances: int = 1,
    dynamic_batching: bool | None = None,
    preferred_batch: Sequence[int] | None = None,
    max_queue_delay_us: int | None = None,
    allow_rtx: bool = True,
) -> TritonExport:
    """Write `engine` (a `trtnet.Engine`, or any `Plan`: no GPU needed) into the Triton model repository `repo`
    as model `name`, version `version` (default: the next free one). The batching rules are in
    `trtnet.export.triton_config`'s module docstring; what happens to an existing model is in this module's.

    `preferred_batch` and `max_queue_delay_us` set Triton's dynamic batcher. A plan Triton's TensorRT backend
    cannot load (a TensorRT for RTX one) is written with a warning, or refused with `allow_rtx=False`."""
    if not isinstance(engine, Plan):  # a model here is the likely mistake: export_triton builds one first
        raise ExportError(
            f"export_engine takes an engine (trtnet.build(...) or trtnet.Engine.load(...)), not "
            f"{type(engine).__name__}; export_triton(model, ...) builds the engine for a model"
        )
    explicit_version = version
    repo, version = check_request(repo, name, version=version, instances=instances, dynamic_batching=dynamic_batching)
    meta = engine.metadata()
    sig = signature(meta, dynamic_batching=dynamic_batching, where=f"model {name!r}")
    sig = with_batching(sig, preferred=preferred_batch, max_queue_delay_us=max_queue_delay_us, where=f"model {name!r}")
    parameters = config_parameters(meta)
    if not str(meta.get("backend", "")).startswith("tensorrt "):
        if not allow_rtx:
            check_loadable(str(meta.get("backend", "")), name)
        warnings.warn(f"model {name!r}: {parameters['trtnet_compatibility']}", stacklevel=2)
    text = render_config(name, sig, instances=instances, parameters=parameters)
    model_dir = repo / name
    config = model_dir / CONFIG_FILE
    action = _config_action(config, text)
    if action != "unchanged":
        check_existing_versions(model_dir, sig, meta)
    staging = None
    created: list[Path] = []
    try:
        created = _make_folders(repo)
        _remove_dead_stagings(repo)
        # Named as fileio names temporaries (host, pid), so a later export can tell a dead writer's from a live one.
        staging = temporary_name(repo / f"{STAGING_PREFIX}{name[:32]}")
        staging.mkdir()
        staged = staging / name
        (staged / str(version)).mkdir(parents=True)
        engine.save(staged / str(version) / PLAN_FILE)  # the plan and its sidecar, each flushed to disk
        atomic_write(staged / CONFIG_FILE, text.encode(), "the config")
        # Commits to the repository take turns, so what is checked here still holds at the rename: another export
        # may have made the model, taken the version or replaced the config since the checks before the build.
        with folder_lock(repo):
            new = _free_version(model_dir, version, explicit=explicit_version is not None)
            if new != version:
                os.rename(staged / str(version), staged / str(new))
                version = new
            action = _config_action(config, text)
            if action != "unchanged":
                check_existing_versions(model_dir, sig, meta)
            _commit(staged, model_dir, version, action)
    except OSError as e:  # a name too long for this file system, a full disk: name the model, not the staging
        raise ExportError(f"{model_dir}: cannot write version {version}: {e.strerror or e}") from e
    except EngineError as e:  # Engine.save names the staged plan (a full disk): say the model and version instead
        why = str(e).split(": ", 1)[-1] if staging is not None and str(e).startswith(str(staging)) else str(e)
        raise ExportError(f"{model_dir}: cannot write version {version}: {why}") from e
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(created):  # folders made for a repository that got nothing stay not made
            _remove_if_empty(folder)
    return TritonExport(
        model_dir, version, model_dir / str(version) / PLAN_FILE, config, text, action, sig.max_batch_size
    )


def _remove_dead_stagings(repo: Path) -> None:
    """Staging folders of exports that were killed (SIGKILL, power loss) before their `finally`: Triton would
    list them as models without a config on every poll. Best effort, like `remove_stale_temporaries`."""
    for path in repo.glob(f".{STAGING_PREFIX}*.tmp"):
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink() and is_stale(path.name, path.lstat().st_mtime):
                shutil.rmtree(path)


def _config_action(config: Path, text: str) -> str:
    """What the export does to the model's config: "written" (none yet), "unchanged" or "replaced"."""
    try:  # a regular file of sane size: a FIFO would hang the export, a link to /dev/zero fill memory
        old_text = read_regular(config, MAX_CONFIG_BYTES, "config").decode("utf-8") if os.path.lexists(config) else None
    except (OSError, EngineError, UnicodeDecodeError) as e:
        raise ExportError(f"{config}: the model's config cannot be read ({e}); fix or remove it") from None
    return "written" if old_text is None else "unchanged" if old_text == text else "replaced"


def export_triton(
    model: Module,
    repo: str | os.PathLike,
    name: str,
    *,
    batch_size: int | tuple[int, int, int] = (1, 8, 32),
    precision: str = "fp16",
    version: int | None = None,
    instances: int = 1,
    dynamic_batching: bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    preferred_batch: Sequence[int] | None = None,
    max_queue_delay_us: int | None = None,
    allow_rtx: bool = True,
    **build_options: Any,
) -> TritonExport:
    """Build `model` (or take its engine from the cache) with `trtnet.build`, then `export_engine` it.

    The request is checked before the build, so a bad name, version or repository fails at once.
    """
    check_request(repo, name, version=version, instances=instances, dynamic_batching=dynamic_batching)
    if isinstance(batch_size, int) and dynamic_batching:
        raise ExportError(
            f"model {name!r}: dynamic batching asked for, but batch_size={batch_size} builds a "
            "fixed-batch engine; Triton's batcher sends any batch from 1 to max_batch_size: build "
            "with batch_size=(1, opt, max) (--batch 1:OPT:MAX)"
        )
    if not allow_rtx:  # before a build whose plan could not be used
        check_loadable(str(get_backend()), name)
    engine = build(model, batch_size, precision=precision, cache_dir=cache_dir, **build_options)
    return export_engine(
        engine,
        repo,
        name,
        version=version,
        instances=instances,
        dynamic_batching=dynamic_batching,
        preferred_batch=preferred_batch,
        max_queue_delay_us=max_queue_delay_us,
        allow_rtx=allow_rtx,
    )


def _make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; returns those created, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    made: list[Path] = []
    try:
        for f in reversed(missing):
            f.mkdir()
            made.append(f)
    except BaseException:
        for f in reversed(made):
            _remove_if_empty(f)
        raise
    return made


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _free_version(model_dir: Path, version: int, *, explicit: bool) -> int:
    """The version to commit, under the repository's lock: `version` when asked for and still free, else the next
    free one."""
    if not explicit:
        return next_version(model_dir)
    if os.path.lexists(model_dir / str(version)):
        raise _appeared(model_dir, version)
    return version


def _appeared(model_dir: Path, version: int) -> ExportError:
    return ExportError(f"{model_dir / str(version)}: version {version} appeared while exporting; nothing was written")


def _commit(staged: Path, model_dir: Path, version: int, action: str) -> None:
    """Rename the staged model (or its new version and config) into place.

    Called under the repository's lock. A folder renamed onto an existing non-empty one fails (ENOTEMPTY), so a
    version made meanwhile by a writer that does not take the lock is not overwritten either; versions only ever
    appear complete.
    """
    if not os.path.lexists(model_dir):
        try:
            os.rename(staged, model_dir)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise _appeared(model_dir, version) from None
            raise
        fsync_folder(model_dir.parent)
        return
    target = model_dir / str(version)
    if os.path.lexists(target):
        raise _appeared(model_dir, version)
    try:
        os.rename(staged / str(version), target)
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise _appeared(model_dir, version) from None
        raise
    try:
        if action != "unchanged":
            replace(staged / CONFIG_FILE, model_dir / CONFIG_FILE, "the config")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # the version just added, so the model is as it was
        raise
    fsync_folder(model_dir)
