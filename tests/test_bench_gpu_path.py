"""The benchmark's GPU path without a GPU: the dry run through the same functions, the time budget of a whole
table on a fake clock, and what the report says about a GPU's compute capability against the backend's targets."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import cuda_device
from trtnet.backend import get_backend
from trtnet.bench import report
from trtnet.bench.gpu import GpuOptions, Simulated, gpu_model, series_count
from trtnet.bench.reference import POROS_A10
from trtnet.bench.targets import backend_targets, needs_probe, probe_current, target_report
from trtnet.bench.timing import Deadline, FakeClock, RowBudget, fake_series, stats, time_series
from trtnet.zoo import REGISTRY

ROOT = Path(__file__).resolve().parents[1]


def _bench_main():
    sys.path.insert(0, str(ROOT))
    try:
        import bench
    finally:
        sys.path.remove(str(ROOT))
    return bench.main


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[dict, str, Path]:
    tmp = tmp_path_factory.mktemp("dry")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRTNET_CACHE_DIR", str(tmp / "cache"))
    out = tmp / "results.json"
    argv = ["--models", "resnet18", "--batch-sizes", "1", "2", "--dry-run", "--weights-dir", str(tmp)]
    argv += ["--json", str(out), "--plot", str(tmp / "speedup.png")]
    import contextlib
    import io

    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            code = _bench_main()(argv)
    finally:
        mp.undo()
    assert code == 0, buf.getvalue()[-3000:]
    return json.loads(out.read_text()), buf.getvalue(), tmp


def test_dry_run_goes_through_every_step_in_order(dry_run):
    results, printed, tmp = dry_run
    meta, model = results["meta"], results["models"]["resnet18"]
    assert meta["dry_run"] is True and meta["profile"] == [1, 2, 2]
    # Engines are built and loaded before they are timed, closed before PyTorch's model takes the memory.
    assert model["steps"] == [
        "build trtnet",
        "load trtnet",
        "time trtnet b1",
        "time trtnet b2",
        "close trtnet",
        "load torch",
        "time torch b1",
        "time torch b2",
        "free torch",
        "build onnx",
        "load onnx",
        "time onnx b1",
        "time onnx b2",
        "close onnx",
    ]
    for batch in ("1", "2"):
        row = model["latency"][batch]
        for route in ("trtnet", "torch", "onnx"):
            r = row[route]
            assert r["min_ms"] <= r["median_ms"] <= r["p99_ms"] and r["iters"] >= 10
            # the fake clock's stand-in (1 ms + 0.5 ms a sample for a model without published figures)
            assert r["median_ms"] == pytest.approx(1.0 + 0.5 * int(batch))
    assert meta["target"]["gpu"] == "sm_90" and meta["target"]["probe"]["outcome"] == "not tried (dry run: no GPU)"
    assert "| 1 | 1.50 | 1.50 / 1.50 / 1.50 |" in printed
    assert (tmp / "speedup.png").stat().st_size > 1000
    assert meta["clock_s"] > 0


def test_a_broken_reporting_step_fails_the_dry_run(dry_run, monkeypatch, tmp_path):
    """The dry run runs the report the GPU run prints: a statistic the report needs but the timing no longer
    gives fails it (the engine comes from the cache the first dry run filled)."""
    import trtnet.bench.gpu as gpu

    _, _, tmp = dry_run
    monkeypatch.setenv("TRTNET_CACHE_DIR", str(tmp / "cache"))
    monkeypatch.setattr(gpu, "stats", lambda t: {"median_ms": float(np.median(t)), "iters": int(t.size)})
    argv = ["--models", "resnet18", "--batch-sizes", "1", "2", "--dry-run", "--no-onnx", "--no-torch"]
    with pytest.raises(KeyError, match="min_ms"):
        _bench_main()([*argv, "--weights-dir", str(tmp), "--json", str(tmp_path / "r.json")])


def test_time_budget_keeps_a_54_row_table_under_8_minutes():
    """Every benchmark model at batch 1..32, with the published PyTorch latencies standing in for every route's
    kernel times (trtnet's engines should be faster) and 10 s standing in for each build and model load."""
    names = [n for n, e in REGISTRY.items() if e.benchmark]
    batches = [1, 2, 4, 8, 16, 32]
    assert sorted(names) == sorted(POROS_A10)
    side = Simulated(stand_in=lambda name, batch, route: POROS_A10[name][batch][0], setup_s=10.0)
    opts = GpuOptions()
    budget = RowBudget()  # the command line's defaults: 1 s a row, 10..1000 inferences, up to 50 warm-up
    deadline = Deadline(side.clock, 420.0, series_count(len(names), batches, opts), len(names))
    rows = 0
    for name in names:
        result = gpu_model(name, batches, side, opts, budget, deadline, weights=None)
        for row in result["latency"].values():
            rows += 1
            assert row["trtnet"]["iters"] >= budget.min_iters and row["torch"]["iters"] >= budget.min_iters
        assert set(result["latency"]["1"]) == set(result["latency"]["32"]) == {"trtnet", "torch", "onnx"}
    assert rows == 54
    assert side.clock.now() < 8 * 60, f"the simulated table took {side.clock.now():.0f} s"
    # The premise: 1000 iterations a row cannot fit (the PyTorch column alone is ~1.6 s an iteration).
    total_torch = sum(ms for m in POROS_A10.values() for ms, _ in m.values()) / 1e3
    assert total_torch == pytest.approx(1.6, abs=0.1)


def test_time_series_sizes_the_count_by_the_budget():
    clock = FakeClock()
    budget = RowBudget(min_seconds=1.0, min_iters=10, max_iters=1000, warmup=50)
    fast = time_series(fake_series(clock, 0.1), budget, 1.0)
    assert fast.size == 1000  # 10000 would fit a second: capped
    slow = time_series(fake_series(clock, 300.0), budget, 1.0)
    assert slow.size == 10  # 3.3 would fit: the floor
    mid = time_series(fake_series(clock, 5.0), budget, 1.0)
    assert mid.size == 200
    s = stats(np.array([1.0, 2.0, 3.0, 100.0]))
    assert s["min_ms"] == 1.0 and s["median_ms"] == 2.5 and s["iters"] == 4 and s["p99_ms"] > 90
    with pytest.raises(ValueError, match="min_iters"):
        RowBudget(min_iters=0)


def test_deadline_shares_what_is_left():
    clock = FakeClock()
    deadline = Deadline(clock, 100.0, series=10, models=2, setup_guess=20.0)
    assert deadline.row_seconds(1.0) == 1.0
    assert deadline.row_seconds(10.0) == pytest.approx((100 - 40) / 10)
    clock.advance(90.0)
    assert deadline.row_seconds(1.0) == 0.0  # what is left is kept for the builds


@pytest.mark.parametrize("capability", [(7, 5), (8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (12, 0), (12, 1), (7, 0)])
def test_target_report_against_the_backends_own_enum(capability):
    backend = get_backend()
    report_ = target_report(capability, backend)
    enum = getattr(backend.trt, "ComputeCapability", None)
    if enum is None:  # data-centre TensorRT builds for the GPU it runs on: nothing to list
        assert report_.targets == () and report_.listed is None and not needs_probe(report_)
        return
    want = f"SM{capability[0]}{capability[1]}" in enum.__members__
    assert report_.listed is want and needs_probe(report_) is (not want)
    assert report_.gpu == f"sm_{capability[0]}{capability[1]}"
    lines = report_.lines()
    assert lines[0].startswith(f"GPU: sm_{capability[0]}{capability[1]}; backend {backend}")
    assert any("not listed" in line for line in lines) is (not want)


@pytest.mark.skipif(get_backend().kind != "tensorrt_rtx", reason="TensorRT for RTX's enum; data-centre has none")
def test_rtx_1_7_lists_no_hopper():
    targets = backend_targets(get_backend())
    assert "sm_86" in targets and "sm_120" in targets
    if get_backend().version.startswith("1.7."):
        assert "sm_90" not in targets and needs_probe(target_report((9, 0)))


def test_no_gpu_report_and_probe_outcome():
    assert target_report(None).listed is None and not needs_probe(target_report(None))
    probe = probe_current()
    if cuda_device() is None:
        assert probe["ok"] is False and probe["outcome"].startswith("refused: EngineError: cannot run the engine")
    else:
        assert probe["ok"] is True and probe["outcome"].startswith("built and ran")


def test_bad_gpu_capability_is_refused():
    proc = subprocess.run(
        [sys.executable, "bench.py", "--models", "resnet18", "--dry-run", "--gpu-capability", "nine"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "GPU capability 'nine': expected MAJOR.MINOR (9.0) or sm_90" in proc.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt_bindings") is None and importlib.util.find_spec("tensorrt") is None,
    reason="data-centre TensorRT (tensorrt / tensorrt_bindings) is not installed here",
)
def test_data_centre_tensorrt_networks_are_strongly_typed():
    code = """
import trtnet
from trtnet.backend import get_backend, get_trt
from trtnet.builder.build import builder_config
from trtnet.zoo import REGISTRY
b = get_backend()
assert b.kind == "tensorrt" and b.module_name in ("tensorrt", "tensorrt_bindings"), b
trt = get_trt()
net = trtnet.emit(REGISTRY["resnet18"].fn(weights=None), (1, 2, 4), precision="fp16")
assert net.network.get_flag(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
config = builder_config(net)
for flag in ("FP16", "BF16", "INT8", "FP8"):  # a strongly typed network takes its types from the network
    if hasattr(trt.BuilderFlag, flag):
        assert not config.get_flag(getattr(trt.BuilderFlag, flag)), flag
print("ok", b)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "TRTNET_BACKEND": "tensorrt"},
    )
    assert proc.returncode == 0 and proc.stdout.startswith("ok tensorrt"), proc.stderr[-2000:]


def test_report_speedup_and_strict_cells():
    assert report.speedup({"median_ms": 4.0}, {"median_ms": 2.0}) == 2.0
    assert report.speedup(None, {"median_ms": 2.0}) is None
