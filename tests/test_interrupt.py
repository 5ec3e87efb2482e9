"""Interrupts a build obeys (issue 20): SIGINT or SIGTERM sent to a real `trtnet build` process while TensorRT is
building stops it promptly, exit 130 / 143, no plan and no cache entry left behind. Before the fix TensorRT
swallowed the KeyboardInterrupt raised in trtnet's log callback and the build finished, exit 0, plan written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# A model of its own whose TensorRT build takes seconds on a CPU: many small convolutions, a batch range.
DEEP_MODEL = """
import trtnet
from trtnet import nn


class Deep(nn.Module):
    def __init__(self, depth=1500):
        self.convs = [nn.Conv2d(16 + i % 7, 16 + (i + 1) % 7, 3, padding=1) for i in range(depth)]

    def inputs(self):
        return [nn.Input("x", (16, 32, 32))]

    def output_names(self, n):
        return ["y"]

    def forward(self, x):
        for conv in self.convs:
            x = conv(x).relu()
        return x


def deep(weights=None, **config):
    model = Deep(**config)
    trtnet.init_random(model)
    return model
"""


def _start(tmp_path: Path, cache: Path, plan: Path) -> subprocess.Popen:
    (tmp_path / "deep.py").write_text(DEEP_MODEL)
    env = {**os.environ, "TRTNET_CACHE_DIR": str(cache)}
    args = [sys.executable, "-m", "trtnet", "build", "deep.py:deep", "--batch", "1:4:8", "-o", str(plan)]
    return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _building(proc: subprocess.Popen, cache: Path, timeout: float = 120.0) -> None:
    """Wait until the build has reached TensorRT: the cache takes its lock file just before it builds."""
    deadline = time.monotonic() + timeout
    while not list(cache.glob("*.lock")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the build never started"
        time.sleep(0.02)
    time.sleep(0.5)  # inside build_serialized_network by now (emission and the builder config are done)


@pytest.mark.slow
def test_a_signal_stops_a_build_promptly_leaving_nothing(tmp_path: Path) -> None:
    # The uninterrupted build first: it succeeds, writes a plan and a cache entry, and says how long TensorRT takes.
    cache, plan = tmp_path / "cache", tmp_path / "deep.plan"
    proc = _start(tmp_path, cache, plan)
    _building(proc, cache)
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=600)
    rest = time.monotonic() - t0  # what the build still had to do when a signal would have been sent
    assert proc.returncode == 0, err
    assert plan.is_file() and list(cache.glob("*.plan")), (out, err)
    assert rest > 3.0, f"the build took only {rest:.1f} s after starting: too short to test an interrupt"

    for signum, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        cache, plan = tmp_path / f"cache-{signum}", tmp_path / f"deep-{signum}.plan"
        proc = _start(tmp_path, cache, plan)
        _building(proc, cache)
        t0 = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=600)
        took = time.monotonic() - t0
        assert proc.returncode == status, (signum, proc.returncode, err)
        assert "trtnet: interrupted" in err, err
        assert "Exception caught" not in err, err  # nothing raised inside TensorRT's callbacks
        assert took < min(2.0, rest / 2), f"signal {signum}: exit {took:.1f} s after it (the whole build: {rest:.1f} s)"
        assert not plan.exists() and not list(tmp_path.glob(f"deep-{signum}.plan*")), "a plan was written"
        assert not list(cache.glob("*.plan*")), f"a cache entry was stored: {sorted(cache.iterdir())}"
