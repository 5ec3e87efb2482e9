"""`python bench.py` as users run it: one small model end to end, its JSON, and comparing two runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cuda_device
from trtnet.bench import report

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def resnet18_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict, Path]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    # Short on a GPU (one batch, few iterations); on the CPU this builds both routes and checks parity.
    proc = bench(
        "--models",
        "resnet18",
        "--batch-sizes",
        "1",
        "--iters",
        "20",
        "--warmup",
        "5",
        "--weights-dir",
        str(out.parent),
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text()), out


@pytest.mark.slow  # builds both routes in child processes and checks parity: ~100 s on 2 shared cores
def test_bench_reports_resnet18(resnet18_run):
    proc, results, _ = resnet18_run
    meta, model = results["meta"], results["models"]["resnet18"]
    assert meta["precision"] == "fp16" and "precision fp16 (the default is fp16)" in proc.stdout
    assert "seeded random weights (the PyTorch source's, seed 0" in model["weights"]
    if cuda_device() is None:
        assert meta["gpu"] is False and "latency columns need a GPU" in proc.stdout
        trt, onnx = model["routes"]["1"]["trtnet"], model["routes"]["1"]["onnx"]
        assert 50 <= trt["layers"] <= 60  # 20 convolutions (BN folded), pooling, the head, input/output casts
        assert abs(onnx["layers"] - trt["layers"]) <= 5
        for route in (trt, onnx):
            assert route["build_s"] > 0 and route["pipeline_s"] >= route["build_s"]
            assert 20 < route["engine_mib"] < 30  # 11.7M parameters in fp16
            assert route["peak_rss_mib"] > 100
        assert model["parity"]["rel_error"] <= 1e-4
    else:
        row = model["latency"]["1"]
        for side in ("torch", "trtnet"):
            assert row[side]["iters"] <= 20 and 0 < row[side]["min_ms"] <= row[side]["median_ms"] <= row[side]["p99_ms"]
        assert model["gpu_rel_error"] <= 5e-2  # fp16 on both sides


@pytest.mark.slow  # takes the run above
def test_compare_prints_changes(resnet18_run, capsys):
    from trtnet.bench import report as bench_module

    _, results, _ = resnet18_run
    older = json.loads(json.dumps(results))
    for routes in older["models"]["resnet18"].get("routes", {}).values():
        routes["trtnet"]["build_s"] *= 2
    for row in older["models"]["resnet18"].get("latency", {}).values():
        row["trtnet"]["mean_ms"] *= 2
    flat_old, flat_new = bench_module.flatten(older), bench_module.flatten(results)
    changed = [k for k in flat_new if flat_old[k] != flat_new[k]]
    assert changed and all(k.startswith("resnet18/b1/trtnet/") for k in changed)
    assert all(abs(flat_new[k] / flat_old[k] - 0.5) < 1e-9 for k in changed)
    bench_module.compare(older, results)
    printed = capsys.readouterr().out
    rows = printed.splitlines()
    assert all(any(r.startswith(f"| {k} |") and r.endswith("| -50.0% |") for r in rows) for k in changed)


def test_unknown_model_is_refused():
    proc = bench("--models", "resnet_nope", timeout=120)
    assert proc.returncode == 2 and "unknown model(s) ['resnet_nope']" in proc.stderr


def test_needs_models_or_all():
    proc = bench(timeout=120)
    assert proc.returncode == 2 and "name --models or pass --all" in proc.stderr


@pytest.mark.skipif(
    cuda_device() is not None, reason="checks CPU mode's report (builds and accuracy); GPU mode times the same engine"
)
@pytest.mark.slow  # calibrates and builds twice: ~60 s
def test_bench_int8_reports_builds_beside_fp16_and_accuracy(tmp_path):
    out = tmp_path / "results.json"
    proc = bench(
        "--models",
        "resnet18",
        "--precision",
        "int8",
        "--calib-samples",
        "2",
        "--no-parity",
        "--weights-dir",
        str(tmp_path),
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    model = json.loads(out.read_text())["models"]["resnet18"]
    int8, fp16 = model["routes"]["1"]["trtnet"], model["routes"]["1"]["trtnet fp16"]
    assert int8["layers"] > fp16["layers"]  # the Q/DQ pairs and their scales are layers of the network
    assert int8["engine_mib"] < fp16["engine_mib"]  # int8 weights
    acc = model["quant_accuracy"]
    assert acc["method"] == "max" and acc["kept"] == ["fc/matmul"] and acc["calibration_samples"] == 2
    assert acc["outputs"]["logits"]["cosine"] > 0.999
    assert model["onnx_skipped"] == "no quantized ONNX export here"
    assert "| trtnet int8 | 1 |" in proc.stdout and "| trtnet fp16 | 1 |" in proc.stdout
    assert "int8 vs fp32 in the interpreter, logits (2 held-out inputs, ranges by max over 2)" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--compare", "nosuch.json"], "nosuch.json: cannot read the results file (--compare): No such file"),
        (["--compare", "bench.py"], "bench.py: unreadable results file (--compare) (JSONDecodeError"),
        (["--json", "/nonexistent/dir/x.json"], "/nonexistent/dir/x.json: cannot write the results (--json): no fol"),
        (["--plot", "/nonexistent/dir/x.png"], "/nonexistent/dir/x.png: cannot write the chart (--plot): no folder"),
        (["--batch-sizes", "0"], "argument --batch-sizes: '0' is not a batch size: it must be 1 or more"),
        (["--batch-sizes", "2", "-3"], "argument --batch-sizes: '-3' is not a batch size: it must be 1 or more"),
        (["--opt-batch", "0", "--dry-run"], "argument --opt-batch: '0' is not a batch size: it must be 1 or more"),
        (["--opt-batch", "8", "--batch-sizes", "1", "2"], "--opt-batch 8 is outside the batch sizes 1..2"),
        (["--opt-batch", "64"], "--opt-batch 64 is outside the batch sizes 1..32"),
        (["--onnx-batches", "64", "--dry-run"], "--onnx-batches 64: not among the batch sizes [1, 2, 4, 8, 16, 32]"),
        (["--onnx-batches", "1", "3", "--batch-sizes", "1", "2"], "--onnx-batches 3: not among the batch sizes [1, 2]"),
        (["--plot", "r.json"], "--plot r.json: a chart is written as .eps, .jpeg"),  # matplotlib refused it at the end
        (["--plot", ""], "argument --plot: an empty path"),  # said as `--plot .`
        (["--batch-sizes", "1", "2", "1"], "--batch-sizes names 1 more than once"),  # timed twice, as two rows
        (["--onnx-batches", "2", "2", "--batch-sizes", "1", "2"], "--onnx-batches names 2 more than once"),
        (["--weights-dir", "nosuch"], "--weights-dir nosuch: no such folder"),
        (["--models", "resnet18", "resnet18"], "--models names resnet18 more than once"),
        (
            ["--precision", "fp8", "--calib-method", "entropy"],
            "--calib-method entropy --precision fp8: the entropy",
        ),  # every model ran on random weights
        (["--weights-dir", "bench.py"], "--weights-dir bench.py: not a folder"),
        (
            ["--calib-samples", "0", "--precision", "int8"],
            "argument --calib-samples: '0': expected a whole number >= 1",
        ),
        (["--deadline", "nan"], "argument --deadline: 'nan': a time must be a finite number of seconds above 0"),
        (["--calib-samples", "2147483647"], "argument --calib-samples: '2147483647': at most 4096 (the inputs are"),
        (["--iters", "100000000000"], "time budget: need min_seconds > 0, 1 <= min_iters <= max_iters <= 10,000,000"),
        (["--gpu-capability", "0.0", "--dry-run"], "GPU capability '0.0': expected MAJOR.MINOR (9.0) or sm_90"),
        (["--deadline", "0"], "argument --deadline: '0': a time must be a finite number of seconds above 0"),
        (["--min-seconds", "inf"], "argument --min-seconds: 'inf': a time must be a finite number of seconds above"),
        (["--gpu-capability", "9.0.1", "--dry-run"], "GPU capability '9.0.1': expected MAJOR.MINOR (9.0) or sm_90"),
        (
            ["--json", "same.png", "--plot", "same.png"],
            "same.png: cannot write the chart (--plot) there: it is the results (--json) too",
        ),
    ],
)
def test_arguments_are_checked_before_any_work(args, message):
    # The same with a GPU, in a dry run and without either: a command line a GPU run refuses is refused everywhere.
    proc = bench("--models", "resnet18", *args, timeout=120)
    last = proc.stderr.splitlines()[-1]
    assert proc.returncode == 2 and last.startswith(f"bench.py: error: {message}"), proc.stderr
    assert "trtnet benchmark:" not in proc.stdout  # nothing was started


def test_compare_refuses_json_that_is_no_results_file(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    proc = bench("--models", "resnet18", "--compare", str(tmp_path / "list.json"), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[-1].endswith(
        'list.json: not a results file of bench.py (--compare): no "models" object'
    )


@pytest.mark.parametrize(
    "earlier",
    [
        {"meta": "old", "models": {"resnet18": []}},
        {"models": {"resnet18": {"latency": {"1": {"trtnet": {"ms": "fast"}}}, "parity": {"rel_error": "small"}}}},
    ],
    ids=["a-model-that-is-a-list", "no-numbers"],
)
def test_compare_refuses_a_results_file_with_nothing_to_compare_before_any_work(tmp_path, earlier):
    """Such files passed the first check, and the run crashed after its work (AttributeError in report.compare)."""
    (tmp_path / "old.json").write_text(json.dumps(earlier))
    proc = bench("--models", "resnet18", "--compare", str(tmp_path / "old.json"), timeout=120)
    assert proc.returncode == 2 and "holds no measurements to compare with" in proc.stderr, proc.stderr
    assert "trtnet benchmark:" not in proc.stdout


def test_compare_reads_what_it_can_of_an_odd_results_file(capsys):
    old = {"meta": [], "models": {"a": {"parity": {"rel_error": 1e-6}, "latency": "none"}, "b": 3}}
    report.compare(old, {"models": {"a": {"parity": {"rel_error": 2e-6}}}})
    assert "| a/parity/rel_error | 1e-06 | 2e-06 | +100.0% |" in capsys.readouterr().out


def test_cpu_mode_says_gpu_options_are_ignored_and_prints_results_it_cannot_save(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT))
    try:
        import bench as bench_script
    finally:
        sys.path.remove(str(ROOT))
    out = tmp_path / "gone" / "results.json"
    out.parent.mkdir()
    figures = {"layers": 3, "build_s": 0.5, "pipeline_s": 1.0, "engine_mib": 0.1, "peak_rss_mib": 200.0}

    def built(name, batches, args, weights, calibration):  # the folder goes while the benchmark runs
        out.parent.rmdir()
        return {"routes": {str(b): {"trtnet": dict(figures)} for b in batches}, "onnx_skipped": "--no-onnx"}

    monkeypatch.setattr(bench_script, "has_gpu", lambda: False)
    monkeypatch.setattr(bench_script, "weights_for", lambda name, folder, scratch: (None, "seeded random weights"))
    monkeypatch.setattr(bench_script, "cpu_model", built)
    code = bench_script.main(
        ["--models", "resnet18", "--opt-batch", "8", "--onnx-batches", "1", "32", "--json", str(out)]
    )
    printed = capsys.readouterr()
    assert code == 1
    assert "bench: --opt-batch and --onnx-batches ignored: no GPU and no --dry-run" in printed.out
    assert f"{out}: cannot write" in printed.err and not out.exists()
    saved = json.loads(printed.out.split("):\n", 1)[1].rsplit("\n}\n", 1)[0] + "\n}")
    assert saved["models"]["resnet18"]["routes"]["1"]["trtnet"] == figures


def test_weights_found_in_a_relative_folder_are_handed_on_absolute(tmp_path, monkeypatch):
    """The builds run in child processes started from the package's folder: `weights/resnet50.safetensors`,
    found from another working folder, was then read from the wrong one and every row failed."""
    from trtnet.bench.models import weights_for

    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "resnet18.safetensors").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    path, said = weights_for("resnet18", Path("weights"), tmp_path)
    assert path == tmp_path / "weights" / "resnet18.safetensors" and path.is_absolute()
    assert said == "weights from weights/resnet18.safetensors"
