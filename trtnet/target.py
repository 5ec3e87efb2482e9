"""Where trtnet keeps what it builds, and which GPU it builds for: the two facts both the builder and the
runtime need, in a module that needs neither of them (so neither has to ask the other).

Folder: `$TRTNET_CACHE_DIR`, default `~/.cache/trtnet` (`$XDG_CACHE_HOME/trtnet` where that is set).
"""

from __future__ import annotations

import os
from pathlib import Path

from trtnet.errors import EngineError
from trtnet.runtime.cudart import check, compute_capability, cudart, device_problem

__all__ = ["cache_dir", "describe_device", "has_gpu", "target"]


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache folder (not created here). `override` wins over `$TRTNET_CACHE_DIR`. A leading `~` is the home
    folder (an environment file or `cache_dir="~/x"` is not expanded by a shell; a folder named `~` in the current
    one is never what was meant)."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("TRTNET_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "trtnet"


def target() -> str:
    """The GPU an engine is built for: 'sm_90' where a CUDA GPU is visible, else 'aot' (ahead of time)."""
    try:
        return compute_capability() or "aot"
    except EngineError:  # cuda-python absent: no GPU can be used either
        return "aot"


def has_gpu() -> bool:
    """Whether a CUDA GPU is usable here (engines can run, and are built for it)."""
    return device_problem() is None


def describe_device(device: int = 0) -> str:
    """The GPU in words ('NVIDIA H200 (sm_90)'), or why there is none ('no GPU (...)')."""
    problem = device_problem()
    if problem is not None:
        return f"no GPU ({problem})"
    props = check(cudart().cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    return f"{props.name.decode(errors='replace').strip(chr(0))} (sm_{props.major}{props.minor})"
