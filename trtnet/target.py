"""Where trtnet keeps what it builds, and which GPU it builds for: the two facts both the builder and the
runtime need, in a module that needs neither of them (so neither has to ask the other).

Folder: `$TRTNET_CACHE_DIR`, default `~/.cache/trtnet` (`$XDG_CACHE_HOME/trtnet` where that is set).
"""
from __future__ import annotations

import os
from pathlib import Path

from trtnet.cudart import compute_capability
from trtnet.errors import EngineError


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache folder (not created here). `override` wins over `$TRTNET_CACHE_DIR`."""
    if override is not None:
        return Path(override)
    env = os.environ.get("TRTNET_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "trtnet"


def target() -> str:
    """The GPU an engine is built for: 'sm_90' where a CUDA GPU is visible, else 'aot' (ahead of time)."""
    try:
        return compute_capability() or "aot"
    except EngineError:  # cuda-python absent: no GPU can be used either
        return "aot"
