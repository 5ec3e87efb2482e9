"""Hidden temporary files that become output files by a rename, and the removal of those a dead writer left.

A temporary is `.<target name>.<host>.<pid>.<random>.tmp` in the target's folder (a rename is atomic only
within one file system), the target's name cut to `NAME_CHARS` so that a name near the file system's limit of
255 bytes still has a temporary. A writer that is killed (SIGKILL, power loss) cannot remove its own; the next writer
in the folder removes every one whose process is gone (same host, no such pid) or that is older than
`STALE_SECONDS` (a temporary lives only while it is written: seconds). Errors name the target, never the
temporary.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from trtnet.errors import EngineError, TrtnetError

__all__ = ["STALE_SECONDS", "atomic_write", "remove_stale_temporaries", "replaced", "write_temporary"]

STALE_SECONDS = 3600.0
NAME_CHARS = 100  # of the target's name in its temporary's: 1 + 100 + host 16 + pid + random 8 + dots stays < 255
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:16] or "host"


def temporary_name(target: Path) -> Path:
    return target.with_name(f".{target.name[:NAME_CHARS]}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_temporary(target: Path, data: bytes, what: str = "the file") -> Path:
    """`data` in a new temporary next to `target`, flushed to disk; its path. Removed again on any failure
    (a full disk, an interrupt), raising an `EngineError` that names `target` for an OS error."""
    tmp = temporary_name(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as e:
        raise EngineError(f"{target}: cannot write {what}: {e.strerror or e}") from e
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
            tmp.unlink()
        if isinstance(e, OSError):
            raise EngineError(f"{target}: cannot write {what}: {e.strerror or e}") from e
        raise
    return tmp


def atomic_write(path: Path, data: bytes, what: str = "the file") -> None:
    """Write `data` to `path` through a temporary and a rename: a reader sees the old file or the new one."""
    tmp = write_temporary(path, data, what)
    try:
        os.replace(tmp, path)
    except OSError as e:
        raise EngineError(f"{path}: cannot write {what}: {e.strerror or e}") from e
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def replaced(target: Path, what: str = "the file", error: type[TrtnetError] = EngineError) -> Iterator[Path]:
    """A temporary path for a writer that wants a path (safetensors' `save_file`), renamed onto `target` when
    the block ends without an error and removed otherwise. Leftovers of dead writers of `target` go first; an
    OS error (a missing folder, a full disk, `target` a folder) is an `error` naming `target`."""
    remove_stale_temporaries(target.parent, (target.name,))
    tmp = temporary_name(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as e:
        raise error(f"{target}: cannot write {what}: {e.strerror or e}") from e
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


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
    removed = []
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
