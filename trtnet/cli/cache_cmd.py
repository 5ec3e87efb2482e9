"""`trtnet cache`: the engine cache's entries (most recently used first) and their size; `--prune SIZE` removes
the least recently used ones until the cache holds at most SIZE, `--clear` all of them."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from trtnet.errors import EngineError, TrtnetError
from trtnet.words import counted

EXIT_OK = 0


def add_command(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `cache` to the command line through app.py's `command` helper."""
    sub = command(
        "cache",
        cmd_cache,
        "the engine cache's entries, most recently used first, and its size; --prune or --clear to shrink it",
    )
    sub.add_argument(
        "--dir",
        metavar="DIR",
        help="the cache folder (default: $TRTNET_CACHE_DIR, else $XDG_CACHE_HOME/trtnet, else ~/.cache/trtnet)",
    )
    shrink = sub.add_mutually_exclusive_group()
    shrink.add_argument(
        "--prune",
        type=_size,
        metavar="SIZE",
        help="remove the least recently used entries until the cache holds at most SIZE (20G, 500M; powers of "
        "1024); $TRTNET_CACHE_MAX_SIZE does this after every build",
    )
    shrink.add_argument("--clear", action="store_true", help="remove every entry")


def _size(text: str) -> int:
    from trtnet.builder.cache import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_cache(args: argparse.Namespace) -> int:
    from trtnet.builder.cache import SIZE_VARIABLE, cache_entries, prune_cache, size_limit
    from trtnet.target import cache_dir

    folder = cache_dir(args.dir)
    if folder.exists() and not folder.is_dir():
        raise TrtnetError(f"{folder}: the cache folder is not a folder")
    try:
        if args.prune is not None or args.clear:
            limit = 0 if args.clear else args.prune
            removed = prune_cache(limit, folder)
            left = cache_entries(folder)
            size = sum(e.size for e in left)
            print(
                f"{folder}: removed {counted(len(removed), 'entry', 'entries')} "
                f"({_bytes(sum(e.size for e in removed))}, the least recently used); "
                f"{counted(len(left), 'entry', 'entries')}, {_bytes(size)} left"
                + (f", above {_bytes(limit)}: builds hold the others right now" if size > limit else "")
            )
            return EXIT_OK
        entries = cache_entries(folder)
    except OSError as e:
        raise TrtnetError(f"{folder}: cannot read the cache folder ({e.strerror or e})") from None
    limit = size_limit()
    said = (
        f"pruned to {_bytes(limit)} after each build"
        if limit is not None
        else f"no size limit: {SIZE_VARIABLE} {'is not a size' if os.environ.get(SIZE_VARIABLE, '').strip() else 'is not set'}"
    )
    total = sum(e.size for e in entries)
    print(f"{folder}: {counted(len(entries), 'entry', 'entries')}, {_bytes(total)} ({said})")
    if entries:
        rows = [("last used", "size", "precision", "inputs", "key")]
        rows += [_row(e) for e in entries]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return EXIT_OK


def _row(entry) -> tuple[str, str, str, str, str]:
    from trtnet.cli.inspect_plan import shown
    from trtnet.runtime.plan import read_metadata, sidecar_path
    from trtnet.runtime.sidecar import TensorSpec

    used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
    try:
        if not entry.whole:
            return used, _bytes(entry.size), "?", "(not whole: pruning removes it)", entry.key
        meta = read_metadata(sidecar_path(entry.plan))
    except EngineError:
        return (
            used,
            _bytes(entry.size),
            "?",
            "(metadata unreadable: the next build of its key replaces it)",
            entry.key,
        )
    specs = [TensorSpec(**s) for s in meta["inputs"]]
    inputs = ", ".join(f"{shown(s.name)} {shown(s.dtype)}{s.allowed()}" for s in specs)
    return used, _bytes(entry.size), shown(meta["precision"]) or "?", inputs, entry.key


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
