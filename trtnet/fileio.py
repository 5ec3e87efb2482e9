"""File output: the one place that writes, syncs and locks files, so every output of trtnet has the same
guarantees (docs/file-io.md); reading is `trtnet.fileread`'s.

Writes. An output is written to a hidden temporary `.<target name>.<host>.<pid>.<random>.tmp` in the target's
folder (a rename is atomic only within one file system), flushed to disk, renamed onto the target, and the
folder synced: a reader sees the old file or the new one, never a part. Files are created with mode 0666 less
the umask (0644 usually), as `open()` would. The target's name is cut to `NAME_CHARS` in its temporary's, so a
name near the file system's limit of 255 bytes still has one. A writer that is killed (SIGKILL, power loss)
cannot remove its temporary; the next writer of that target removes every one whose process is gone (same
host, no such pid) or that is older than `STALE_SECONDS`. Errors name the target, never the temporary.

Locks. `folder_lock` and `file_lock` serialize writers with `flock` where the OS has it; the OS frees the lock
when its holder dies.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from trtnet.errors import EngineError, TrtnetError
from trtnet.fileread import file_kind

__all__ = [
    "STALE_SECONDS",
    "atomic_write",
    "file_lock",
    "folder_lock",
    "fsync_folder",
    "is_stale",
    "output_folder",
    "refuse_clobbering",
    "refuse_special",
    "remove_stale_temporaries",
    "replace",
    "replaced",
    "temporary_name",
    "writable_target",
    "write_temporary",
]

STALE_SECONDS = 3600.0
NAME_CHARS = 100  # of the target's name in its temporary's: 1 + 100 + host 16 + pid + random 8 + dots stays < 255
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:16] or "host"

Error = type[TrtnetError]

# -- writing ---------------------------------------------------------------------------------------------------


def temporary_name(target: Path) -> Path:
    """A fresh hidden name next to `target` for its temporary (the host and pid tell a dead writer's)."""
    return target.with_name(f".{target.name[:NAME_CHARS]}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _cannot_write(target: Path, what: str, e: OSError, error: Error) -> TrtnetError:
    return error(f"{target}: cannot write {what}: {e.strerror or e}")


def _write_file(path: Path, data: bytes, target: Path, what: str, error: Error) -> None:
    """A new file at `path` holding `data`, flushed to disk; removed again on any failure (a full disk, an
    interrupt), an OS error raised as an `error` naming `target`."""
    try:  # 0o666: the umask makes it what any other output of the user's would be (not mkstemp's 0600)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as e:
        raise _cannot_write(target, what, e, error) from e
    try:
        view = memoryview(data).cast("B")
        while view:  # os.write may write less than asked (a signal, a pipe-like file system)
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = -1
    except BaseException as e:
        with contextlib.suppress(OSError):
            if fd >= 0:
                os.close(fd)
            path.unlink()
        if isinstance(e, OSError):
            raise _cannot_write(target, what, e, error) from e
        raise


def write_temporary(target: Path, data: bytes, what: str = "the file", error: Error = EngineError) -> Path:
    """`data` in a new temporary next to `target`, flushed to disk; its path, for the caller to `replace`
    onto `target`. Nothing is left on a failure; an OS error is an `error` naming `target`."""
    tmp = temporary_name(target)
    _write_file(tmp, data, target, what, error)
    return tmp


def output_folder(out: Path, what: str, error: Error = TrtnetError) -> Path:
    """`out`, its folder made before the work that fills it (a build, a calibration), or an `error` saying why it
    cannot be: said of the output, not as "weights: File exists" of a file in the folder's way."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise error(f"{out}: cannot write {what}: cannot make the folder {out.parent} ({e.strerror or e})") from None
    writable_target(out, what, error)  # a build of minutes is not spent on a plan with nowhere to go
    return out


def writable_target(target: Path, what: str, error: Error = TrtnetError) -> None:
    """An `error` now, before the work that makes an output, if `target` could not be written: its folder missing
    or not writable (access() says EROFS for a read-only mount even to root), or `target` not a regular file."""
    folder = target.parent
    if not folder.is_dir():
        raise error(f"{target}: cannot write {what}: no folder {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise error(f"{target}: cannot write {what}: the folder {folder} is not writable")
    refuse_special(target, what, error)


def refuse_special(target: Path, what: str, error: Error = EngineError) -> None:
    """An `error` if `target` (after symlinks) is there but is no regular file: a rename would put the output in
    place of a device, a FIFO or a folder (as root, `--save-outputs /dev/null` replaced /dev/null)."""
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        raise error(f"{target}: cannot write {what} there: it is {file_kind(mode)}")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them is not there yet: the same path after symlinks and ".."
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_clobbering(
    writes: dict[str, str | os.PathLike | None], reads: dict[str, str | os.PathLike | None], error: Error = TrtnetError
) -> None:
    """An `error`, before any work, if an output (`writes`: what it is -> path) would land on a file the same run
    reads (`reads`) or on another of its outputs: the run would read what it had just written (a check against
    its own saved outputs passes), or the user's model would be gone. Paths that are None are left out."""
    outs = [(what, Path(p)) for what, p in writes.items() if p is not None]
    ins = [(what, Path(p)) for what, p in reads.items() if p is not None]
    for i, (what, target) in enumerate(outs):
        for other, source in ins + outs[:i]:
            if _same_file(target, source):
                raise error(f"{target}: cannot write {what} there: it is {other} too")


def replace(tmp: Path, target: Path, what: str = "the file", error: Error = EngineError) -> None:
    """Rename `tmp` onto `target` (atomic: a reader sees one or the other), which must be a regular file if it
    is there; an OS error is an `error` naming `target`."""
    refuse_special(target, what, error)
    try:
        os.replace(tmp, target)
    except OSError as e:
        raise _cannot_write(target, what, e, error) from e


def fsync_folder(folder: Path) -> None:
    """Make the renames in `folder` durable (POSIX). Best effort: where folders cannot be opened (Windows) or
    synced (some network file systems), the files themselves were synced already."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, what: str = "the file", error: Error = EngineError) -> None:
    """Write `data` to `path` through a synced temporary and a rename: a reader sees the old file or the new
    one. Leftovers of dead writers of `path` go first; an OS error is an `error` naming `path`."""
    with replaced(path, what, error) as tmp:
        _write_file(tmp, data, path, what, error)


def _output_mode() -> int:
    """The mode the process's umask gives a new file (0o644 under the usual 022): Linux says the umask in
    /proc/self/status; elsewhere it is set and put back at once, the one way POSIX has to read it."""
    try:
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def replaced(target: Path, what: str = "the file", error: Error = EngineError) -> Iterator[Path]:
    """A temporary path for a writer that wants a path (safetensors' `save_file`), renamed onto `target` and
    the folder synced when the block ends without an error, removed otherwise. Leftovers of dead writers of
    `target` go first; an OS error (a missing folder, a full disk, `target` a folder) is an `error` naming
    `target`."""
    target = Path(target)
    refuse_special(target, what, error)  # before the writer's work
    remove_stale_temporaries(target.parent, (target.name,))
    tmp = temporary_name(target)
    try:
        yield tmp
        os.chmod(tmp, _output_mode())  # as any output's: safetensors' save_file makes its file 0600
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:  # the writer may not have synced what it wrote: a rename of unsynced data can leave an empty file
            os.fsync(fd)
        finally:
            os.close(fd)
        replace(tmp, target, what, error)
        fsync_folder(target.parent)
    except OSError as e:
        raise _cannot_write(target, what, e, error) from e
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


# -- stale temporaries -----------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill would terminate it there; age alone decides
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's process, alive
        return True
    return True


def is_stale(name: str, mtime: float, now: float | None = None) -> bool:
    """Whether the temporary called `name` (modified at `mtime`) belongs to a writer that is gone."""
    if (now if now is not None else time.time()) - mtime > STALE_SECONDS:
        return True
    parts = name[1 : -len(".tmp")].rsplit(".", 3)
    if len(parts) == 4 and parts[1] == _HOST and parts[2].isdigit():
        return not _alive(int(parts[2]))
    return False


def remove_stale_temporaries(folder: Path, targets: tuple[str, ...] | None = None) -> list[str]:
    """Remove the temporaries dead writers left in `folder` (of the `targets` names only, when given); the
    names removed. Best effort: a folder that cannot be listed, or a file that cannot be removed, is left."""
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    prefixes = tuple(f".{t[:NAME_CHARS]}." for t in targets) if targets is not None else (".",)
    for name in names:
        if not (name.startswith(prefixes) and name.endswith(".tmp")):
            continue
        path = folder / name
        try:
            st = os.lstat(path)
            if os.path.isdir(path) or not is_stale(name, st.st_mtime):
                continue
            path.unlink()
            removed.append(name)
        except OSError:
            continue
    return removed


# -- locks -----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _flocked(fd: int) -> Iterator[None]:
    """An exclusive flock on `fd` for the block, closing `fd` after (closing releases it)."""
    try:
        try:
            import fcntl
        except ImportError:  # Windows: atomic replacement alone keeps every file whole
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Writers in `folder` take turns for the block (a lock on the folder itself: no file is left behind). Best
    effort: where the folder cannot be opened (Windows) the block runs unlocked."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    with _flocked(fd):
        yield


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Holders of the lock file `path` (created when missing) take turns for the block. A lock path that is
    not a regular file (a folder, a FIFO, a link) would refuse every holder for good: it is removed first. An
    OS error opening it (a read-only folder) is raised, for the caller to do without."""
    with contextlib.suppress(OSError):
        mode = os.lstat(path).st_mode
        if not stat.S_ISREG(mode):
            shutil.rmtree(path) if stat.S_ISDIR(mode) else path.unlink()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    with _flocked(fd):
        yield


@contextlib.contextmanager
def file_lock_if_free(path: Path) -> Iterator[bool]:
    """`file_lock` without the wait: True inside the block when the lock was free (and is now held), False when
    another holder has it or the lock file cannot be opened. Where flock does not exist (Windows), True."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError:
        yield False
        return
    try:
        try:
            import fcntl
        except ImportError:
            yield True
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
