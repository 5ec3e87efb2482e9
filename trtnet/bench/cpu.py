"""The benchmark without a GPU: every engine is still built ahead of time, each route in a process of its own so that
its peak memory is its own (`python -m trtnet.bench.cpu JOB` is that process), and the reference interpreter is
compared with PyTorch at batch 1. Quantized precisions are calibrated in the interpreter first."""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

import numpy as np

import trtnet
from trtnet.bench.models import build_onnx, export_onnx, have, load_torch, make_inputs
from trtnet.graph import QUANTIZED
from trtnet.zoo import REGISTRY

_PACKAGE_ROOT = Path(trtnet.__file__).resolve().parents[1]


def peak_rss_mib() -> float:
    """This process's peak resident memory. On Linux from VmHWM, which starts afresh at exec: getrusage's
    maxrss is inherited from the parent across fork and exec, so a child would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux reports KiB, macOS bytes
    return rss / (2**20 if platform.system() == "Darwin" else 2**10)


def worker(job: dict) -> dict:
    """Run one CPU-mode job (in a child process) and return its figures."""
    name, route, batch, precision = job["model"], job["route"], job["batch"], job["precision"]
    weights = Path(job["weights"]) if job["weights"] else None
    t0 = time.perf_counter()
    if route == "trtnet":
        model = REGISTRY[name].fn(weights=weights)
        engine = trtnet.build(
            model, batch_size=batch, precision=precision, calibration=job.get("calibration"), cache=False
        )
        result = {
            "layers": engine.num_layers,
            "build_s": engine.build_seconds,
            "pipeline_s": time.perf_counter() - t0,
            "engine_mib": len(engine.plan) / 2**20,
            "peak_rss_mib": peak_rss_mib(),
        }  # before the parity check, which loads torch
        if job["parity"]:
            result["parity"] = parity(name, model, weights)
        return result
    t_import = time.perf_counter()
    import torch  # noqa: F401  (timed apart: the ONNX route cannot do without it)

    import_s = time.perf_counter() - t_import
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / f"{name}.onnx"
        t_export = time.perf_counter()
        warmup_s = export_onnx(name, weights, batch, precision, onnx_path)
        export_s = time.perf_counter() - t_export - warmup_s
        engine = build_onnx(onnx_path)
    return {
        "layers": engine.num_layers,
        "build_s": engine.build_seconds,
        "export_s": export_s,
        "torch_import_s": import_s,
        "pipeline_s": time.perf_counter() - t0 - warmup_s,
        "engine_mib": len(engine.plan) / 2**20,
        "peak_rss_mib": peak_rss_mib(),
    }


def parity(name: str, model: Any, weights: Path | None) -> dict[str, Any]:
    """The reference interpreter (fp32) against the PyTorch source (fp32, CPU) at batch 1."""
    from trtnet.parity import rel_error, torch_forward

    xs = make_inputs(name, 1, seed=1)
    t0 = time.perf_counter()
    got = trtnet.reference(model, *xs)
    want = torch_forward(load_torch(name, weights), *xs)
    errors = [rel_error(g, w) for g, w in zip(got, want, strict=True)]
    return {"rel_error": max(errors), "seconds": time.perf_counter() - t0, "batch": 1}


def quantize_model(name: str, weights: Path | None, args: Namespace, scratch: Path) -> tuple[Path, dict[str, Any]]:
    """Calibrate `name` for args.precision in the interpreter; its accuracy against fp32 on held-out inputs."""
    from trtnet.parity import cosine, rel_error
    from trtnet.quant.calibrate import measure

    model = REGISTRY[name].fn(weights=weights)
    t0 = time.perf_counter()
    batch = 2
    stats = measure(
        model,
        [make_inputs(name, batch, seed=1000 + i) for i in range(-(-args.calib_samples // batch))],
        histograms=args.calib_method != "max",
    )
    cal = stats.calibration(args.calib_method, precision=args.precision)
    path = cal.save(scratch / f"{name}.{args.precision}.calibration.json")
    xs = make_inputs(name, batch, seed=2000)
    fp32 = trtnet.reference(model, *xs)
    quant = trtnet.reference(model, *xs, precision=args.precision, calibration=cal)
    outputs = [s.name for s in trtnet.emit(model, batch).outputs]
    acc: dict[str, Any] = {
        "method": cal.method,
        "calibration_samples": stats.samples,
        "held_out": batch,
        "quantized": len(cal.amax) - len(cal.keep),
        "kept": sorted(cal.keep),
        "seconds": time.perf_counter() - t0,
        "outputs": {},
    }
    for out_name, f, q in zip(outputs, fp32, quant, strict=True):
        row = {"cosine": cosine(q, f), "rel_error": rel_error(q, f)}
        if out_name == "logits":
            row["top1_agree"] = float(np.mean(f.argmax(-1) == q.argmax(-1)))
        acc["outputs"][out_name] = row
    return path, acc


def run_child(job: dict) -> dict:
    """`worker(job)` in a fresh Python process; its figures, or {"error": the last lines it printed}."""
    proc = subprocess.run(
        [sys.executable, "-m", "trtnet.bench.cpu", json.dumps(job)],
        capture_output=True,
        text=True,
        cwd=_PACKAGE_ROOT,  # the trtnet this process runs, also when it is not installed
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit code {proc.returncode}"}
    return json.loads(lines[-1])


def cpu_model(name: str, batches: list[int], args: Namespace, weights: Path | None, calibration: Path | None) -> dict:
    """Every route of `name` built at each of `batches`, each in a child process."""
    out: dict[str, Any] = {"routes": {}}
    quantized = args.precision in QUANTIZED
    onnx = not args.no_onnx and not quantized and have("torch") and have("onnx") and weights is not None
    for batch in batches:
        job = {
            "model": name,
            "batch": batch,
            "precision": args.precision,
            "calibration": str(calibration) if calibration else None,
            "weights": str(weights) if weights else None,
            "parity": not args.no_parity and batch == batches[0] and have("torch") and weights is not None,
        }
        routes = {"trtnet": run_child({**job, "route": "trtnet"})}
        if quantized:  # the same model's fp16 engine, built in the same run, for comparison
            routes["trtnet fp16"] = run_child(
                {**job, "route": "trtnet", "precision": "fp16", "calibration": None, "parity": False}
            )
        if onnx:
            routes["onnx"] = run_child({**job, "route": "onnx", "parity": False})
        out["routes"][str(batch)] = routes
        if "parity" in routes["trtnet"]:
            out["parity"] = routes["trtnet"].pop("parity")
    if not onnx:
        out["onnx_skipped"] = (
            "--no-onnx"
            if args.no_onnx
            else "no quantized ONNX export here"
            if quantized
            else "needs torch, onnx and the PyTorch source"
        )
    return out


if __name__ == "__main__":  # the child process of run_child
    print(json.dumps(worker(json.loads(sys.argv[1]))))
