"""Backend selection: whichever TensorRT is importable, forced by TRTNET_BACKEND, with clear errors."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from trtnet.backend import DATA_TYPES, get_backend

PROBE = (
    "import trtnet; from trtnet.zoo import resnet18; b = trtnet.backend.get_backend(); "
    "e = trtnet.build(resnet18(weights=None), 1, precision='fp16', input_shapes={'x': (3, 64, 64)}); "
    "print(b.kind, b.version, len(e.plan) > 0)"
)


def _run(env_value: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TRTNET_BACKEND=env_value)
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)


def _importable(kind: str) -> bool:
    names = {"tensorrt": ["tensorrt"], "tensorrt_rtx": ["tensorrt_rtx_bindings", "tensorrt_rtx"]}[kind]
    return any(importlib.util.find_spec(n) is not None for n in names)


def test_default_backend_is_found():
    b = get_backend()
    assert b.kind in ("tensorrt", "tensorrt_rtx") and b.version[0].isdigit()
    assert b.has("add_normalization") and not b.has("add_no_such_layer")


@pytest.mark.parametrize("kind", ["tensorrt", "tensorrt_rtx"])
def test_each_backend_builds_or_says_why_not(kind):
    result = _run(kind)
    if _importable(kind):
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split()[0] == kind and result.stdout.split()[2] == "True"
    else:  # not installed here (the data-centre package cannot be on PyPI-only machines): a clear error
        assert result.returncode != 0
        assert "BackendError: no TensorRT backend could be imported (tried" in result.stderr
        # the package that was asked for is the one to install (TensorRT for RTX was suggested for either)
        wanted = "`pip install tensorrt`" if kind == "tensorrt" else "`pip install tensorrt-rtx-cu12-bindings"
        assert wanted in result.stderr


def test_unknown_backend_name_is_refused():
    result = _run("tensorflow")
    assert "BackendError: TRTNET_BACKEND='tensorflow': expected one of ['tensorrt', 'tensorrt_rtx']" in result.stderr


def test_the_data_type_table_agrees_with_tensorrt():
    # The one dtype table (DSL names, interpreter, sidecar, ops) held against TensorRT's own word: the member
    # exists, its size is the numpy type's, and where TensorRT names a numpy type (not for BF16, FP8) it is ours.
    trt = get_backend().trt
    assert len({row.name for row in DATA_TYPES}) == len({row.member for row in DATA_TYPES}) == len(DATA_TYPES)
    for row in DATA_TYPES:
        member = getattr(trt.DataType, row.member)
        assert member.itemsize == row.numpy.itemsize, row
        if row.member not in ("BF16", "FP8"):
            assert np.dtype(trt.nptype(member)) == row.numpy, row
            assert row.is_float == np.issubdtype(row.numpy, np.floating), row
    floats = {row.member for row in DATA_TYPES if row.is_float}
    assert floats == {"FLOAT", "HALF", "BF16", "FP8"}


def test_a_signal_inside_a_tensorrt_call_is_delivered_as_the_call_ends():
    """Ctrl-C while TensorRT's parser waits reached the logger's `log`, whose exception the bindings print and drop:
    the parse went on. Held for the block (the parse), the signal is delivered to the handler there was at its end."""
    import signal
    import time

    from trtnet.backend import signals_deferred

    before = signal.getsignal(signal.SIGINT)
    reached = False
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # Python runs its handler here: held, not raised
            reached = True
    assert reached and signal.getsignal(signal.SIGINT) is before
    with signals_deferred():  # nothing held: nothing delivered
        pass
