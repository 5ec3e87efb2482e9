"""File input: the one place that reads files trtnet is given, so every input has the same guarantees
(docs/file-io.md); writing is `trtnet.fileio`'s.

Only regular files are read (a FIFO would block, `/dev/zero` would fill the memory), opened without blocking, and
never more than the size checked before reading (`read_regular`). JSON objects with a key twice are refused
(`parse_json`): which value counts would be a guess. Arrays come from .npz files only, never pickles (`read_npz`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from trtnet.errors import EngineError, TrtnetError

__all__ = [
    "DuplicateKey",
    "NotRegularFile",
    "file_kind",
    "open_regular",
    "parse_json",
    "read_json",
    "read_npz",
    "read_regular",
]

_CHUNK = 1 << 24

Error = type[TrtnetError]


class NotRegularFile(OSError):
    """A path that is there but is not a regular file; `kind` says what it is ("a FIFO")."""

    def __init__(self, path: Path, kind: str) -> None:
        folder = kind == "a directory"  # said as the OS says it of a folder opened as a file
        super().__init__(errno.EISDIR if folder else errno.EINVAL, "Is a directory" if folder else "not a regular file")
        self.filename, self.kind = str(path), kind


def file_kind(mode: int) -> str:
    """What a file of `mode` is, in words: "a FIFO", "a directory"..."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


@contextlib.contextmanager
def open_regular(path: Path) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """The regular file at `path` (after symlinks) open for reading, unbuffered, and its stat taken from the
    open file (no stat-then-open race). Anything else raises `NotRegularFile` before a byte is read, an OS
    error its OSError; a FIFO is refused, never waited on."""
    # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever; regular files ignore it.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:  # checked before a file object wraps it: FileIO refuses a folder with an error of its own
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, file_kind(st.st_mode))
    except BaseException:
        os.close(fd)
        raise
    with open(fd, "rb", buffering=0) as f:
        yield f, st


def read_regular(
    path: Path, limit: int, what: str = "file", sizes: tuple[int, ...] = (), error: Error = EngineError
) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them and, when `sizes` is given, one of those
    sizes; else an `error` naming it, the OS error as its `__cause__`. The size is checked before any read."""
    path = Path(path)
    try:
        with open_regular(path) as (f, st):
            if sizes and st.st_size not in sizes:
                said = " or ".join(map(str, sizes))
                raise error(f"{path}: truncated or damaged {what}: {st.st_size} bytes, its metadata says {said}")
            if st.st_size > limit:
                raise error(f"{path}: the {what} is {st.st_size} bytes, more than the {limit} a {what} can be")
            chunks, left = [], st.st_size + 1  # one byte more: a file that grew while read is caught below
            while left > 0 and (chunk := f.read(min(left, _CHUNK))):
                chunks.append(chunk)
                left -= len(chunk)
    except NotRegularFile as e:
        raise error(f"{path}: the {what} is {e.kind}, not a regular file") from e
    except OSError as e:
        raise error(f"{path}: cannot read the {what}: {e.strerror or e}") from e
    data = b"".join(chunks)
    if len(data) != st.st_size:
        raise error(f"{path}: the {what} changed while it was read ({st.st_size} bytes, then {len(data)})")
    return data


def read_npz(path: Path, what: str, error: Error) -> dict[str, np.ndarray]:
    """The named arrays of the .npz at `path` (a regular file: a FIFO is refused, never waited on; no pickles),
    or an `error` naming it and `what` it is ("inputs file"): missing, not a regular file, one unnamed .npy
    array, not an .npz."""
    try:
        with open_regular(Path(path)) as (f, _):
            head = f.read(6)
            if not head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):  # numpy said "pickled data"
                kind = f"starts with {head!r}" if head else "is empty"
                raise error(f"{path}: the {what} is not an .npz (the file {kind}): write it with np.savez")
            f.seek(0)
            loaded = np.load(f, allow_pickle=False)
            if isinstance(loaded, np.lib.npyio.NpzFile):
                with loaded:
                    arrays = {name: loaded[name] for name in loaded.files}
                odd = next((name for name, a in arrays.items() if not isinstance(a, np.ndarray)), None)
                if odd is None:
                    return arrays
                raise error(f"{path}: the {what} holds {odd!r}, which is not a numpy array (not an .npy member)")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except NotRegularFile as e:
        raise error(f"{path}: the {what} is {e.kind}, not a regular file") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise error(f"{path}: the {what} is not a readable .npz of arrays: {e}") from None
    raise error(f"{path}: the {what} is a .npy array, not an .npz: write it with np.savez, named after the input")


class DuplicateKey(ValueError):
    """A JSON object with `key` twice."""

    def __init__(self, key: str) -> None:
        shown = repr(key) if len(key) <= 80 else repr(key[:80]) + "..."  # a hostile key may be megabytes
        super().__init__(f"the key {shown} appears twice in one object")
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        raise DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return out


def parse_json(data: bytes | str) -> Any:
    """The JSON value in `data` (UTF-8 when bytes), refusing an object with a key twice (`DuplicateKey`).
    Raises UnicodeDecodeError, ValueError (json.JSONDecodeError, an integer too long) or RecursionError."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
    return json.loads(text, object_pairs_hook=_unique)


def read_json(path: Path, limit: int, what: str = "file", error: Error = EngineError) -> Any:
    """`parse_json` of the regular file `path` of at most `limit` bytes; any failure is an `error` naming it."""
    raw = read_regular(path, limit, what, error=error)
    try:
        return parse_json(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, DuplicateKey; nesting
        name = "ValueError" if isinstance(e, DuplicateKey) else type(e).__name__
        raise error(f"{path}: unreadable {what} ({name}: {str(e)[:200]})") from None
