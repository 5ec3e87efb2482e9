"""The one place that imports TensorRT.

Two products share one network API: NVIDIA TensorRT (`tensorrt`, 10.x/11.x) and TensorRT for RTX
(`tensorrt_rtx_bindings` from the PyPI wheels, or `tensorrt_rtx` from NVIDIA's meta-package). Everything
else in trtnet asks this module for the TensorRT module and for what it can do.

Set ``TRTNET_BACKEND`` to ``tensorrt`` or ``tensorrt_rtx`` to force one.
"""
from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from types import ModuleType

from trtnet.errors import BackendError

# Module names to try, per backend, in order. Data-centre TensorRT first: where both exist, it is the one
# built for the GPU in the machine.
_CANDIDATES: dict[str, tuple[str, ...]] = {
    "tensorrt": ("tensorrt",),
    "tensorrt_rtx": ("tensorrt_rtx_bindings", "tensorrt_rtx"),
}


@dataclass(frozen=True)
class Backend:
    """The TensorRT module in use and what it offers."""

    trt: ModuleType
    kind: str  # "tensorrt" or "tensorrt_rtx"
    module_name: str
    version: str

    @property
    def is_rtx(self) -> bool:
        return self.kind == "tensorrt_rtx"

    def has(self, feature: str) -> bool:
        """Whether the network or runtime API has `feature` (`add_attention`, `create_runtime_config`...)."""
        trt = self.trt
        return any(hasattr(cls, feature) for cls in (trt.INetworkDefinition, trt.ICudaEngine, trt.IBuilderConfig))

    def __str__(self) -> str:
        return f"{self.kind} {self.version}"


def _try_import(name: str) -> ModuleType | None:
    try:
        module = importlib.import_module(name)
    except Exception:  # a broken install raises anything from ImportError to OSError; treat as absent
        return None
    return module if hasattr(module, "INetworkDefinition") else None


@functools.cache
def get_backend() -> Backend:
    """The selected backend, imported once. Raises `BackendError` naming what was tried."""
    wanted = os.environ.get("TRTNET_BACKEND", "").strip().lower()
    if wanted and wanted not in _CANDIDATES:
        raise BackendError(f"TRTNET_BACKEND={wanted!r}: expected one of {sorted(_CANDIDATES)}")
    kinds = [wanted] if wanted else list(_CANDIDATES)
    tried = []
    for kind in kinds:
        for name in _CANDIDATES[kind]:
            tried.append(name)
            module = _try_import(name)
            if module is not None:
                return Backend(trt=module, kind=kind, module_name=name, version=module.__version__)
    raise BackendError(
        f"no TensorRT backend could be imported (tried {', '.join(tried)}); "
        "install TensorRT for RTX with `pip install tensorrt-rtx-cu12-bindings tensorrt-rtx-cu12-libs`"
    )


def get_trt() -> ModuleType:
    """The TensorRT module itself (`tensorrt` or `tensorrt_rtx_bindings`)."""
    return get_backend().trt


@functools.cache
def logger():
    """One TensorRT logger for the process (TensorRT wants a single one)."""
    trt = get_trt()
    return trt.Logger(trt.Logger.WARNING)
