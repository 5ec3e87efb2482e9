"""Benchmark trtnet's engines against PyTorch eager (and the ONNX route to the same TensorRT), per zoo model.

    python bench.py --all                        # every benchmark model of the zoo, batches 1..32, fp16
    python bench.py --models resnet50 --batch-sizes 1 8 --precision fp32 --iters 200

With a CUDA GPU: for each model and batch size, the mean latency of PyTorch eager (the model's PyTorch source
with the same weights), of trtnet's engine, and of the engine TensorRT's ONNX parser makes from
`torch.onnx.export` of the same model, each over --iters inferences after --warmup, timed with CUDA events,
inputs already on the GPU; median and p99 too. The published Poros A10 figures are printed alongside.

Without one (CI): every engine is still built ahead of time, and each model reports layers, build seconds,
engine size and peak memory for trtnet and for the ONNX route (weights file to serialized engine, each in a
process of its own), and the reference interpreter's error against PyTorch at batch 1 (--no-parity skips it).
Results also go to --json (default bench-results.json); --compare OLD.json prints the changes.

--precision int8 | fp8: each model is first calibrated in the reference interpreter (--calib-samples inputs,
--calib-method, default max as ModelOpt's recipes), and its int8/fp8 network compared with fp32 there on held-out
inputs (cosine, relative error, top-1 agreement for classifiers). Engines are built for fp16 too, beside it, in
CPU mode; PyTorch runs in fp16 as the GPU baseline. The ONNX route has no quantized export here and is skipped.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import trtnet
from bench_reference import INPUT_NOTES, POROS_A10, SOURCE
from trtnet.target import describe_device, has_gpu
from trtnet.zoo import REGISTRY

GPU_BATCHES = (1, 2, 4, 8, 16, 32)
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "float16", "fp8": "float16"}
QUANTIZED = ("int8", "fp8")  # calibrated first; PyTorch's baseline for them is fp16


# -- shared pieces ------------------------------------------------------------------------------------------


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@functools.cache
def declared_inputs(name: str) -> tuple:
    """The zoo model's `inputs()` (name, per-sample shape, dtype of each), read once per process."""
    return tuple(REGISTRY[name].fn(weights=None).inputs())


def make_inputs(name: str, batch: int, seed: int = 0) -> list[np.ndarray]:
    """Inputs for zoo model `name` at `batch`, from its declared `inputs()` and their hints (token ids below
    the vocabulary size, an attention mask with padding): the same inputs `trtnet verify` uses."""
    from trtnet.parity import sample_inputs  # torch-free: only the source-model helpers there import torch

    return sample_inputs(declared_inputs(name), batch, seed)


def weights_for(name: str, weights_dir: Path, scratch: Path) -> tuple[Path | None, str]:
    """The safetensors file both sides load, and how it was chosen (in words)."""
    path = weights_dir / f"{name}.safetensors"
    if path.exists():
        return path, f"weights from {path}"
    if not have("torch"):
        return None, "seeded random weights (trtnet.init_random, seed 0; no torch to compare with)"
    from trtnet.parity import export_state, torch_model

    try:
        source = torch_model(name, seed=0)
    except ImportError as e:  # the source's own package (timm, transformers...) is missing
        return None, f"seeded random weights (trtnet.init_random, seed 0; PyTorch source unavailable: {e})"
    path = export_state(source, scratch / f"{name}.safetensors")
    return path, f"seeded random weights (the PyTorch source's, seed 0; no {weights_dir / (name + '.safetensors')})"


def load_torch(name: str, weights: Path | None):
    """The PyTorch source of `name` in eval mode with the weights of `weights` (safetensors)."""
    from safetensors.torch import load_file

    from trtnet.parity import torch_model

    model = torch_model(name, seed=0)
    if weights is not None:
        model.load_state_dict(load_file(str(weights)), strict=True)
    return model.eval()


def as_list(out) -> list:
    """A PyTorch model's outputs as a list (a tensor, a tuple, or a Hugging Face ModelOutput)."""
    if hasattr(out, "to_tuple"):
        out = out.to_tuple()
    return list(out) if isinstance(out, (list, tuple)) else [out]


def peak_rss_mib() -> float:
    """This process's peak resident memory. On Linux from VmHWM, which starts afresh at exec: getrusage's
    maxrss is inherited from the parent across fork and exec, so a child would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return _rusage_peak_mib()


def _rusage_peak_mib() -> float:
    """This process's peak resident memory (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if platform.system() == "Darwin" else 2**10)


def stats(times_ms: np.ndarray) -> dict[str, float]:
    return {
        "mean_ms": float(np.mean(times_ms)),
        "median_ms": float(np.median(times_ms)),
        "p99_ms": float(np.percentile(times_ms, 99)),
        "iters": int(times_ms.size),
    }


# -- the ONNX route -----------------------------------------------------------------------------------------


def export_onnx(name: str, weights: Path | None, batch: int, precision: str, path: Path) -> float:
    """`torch.onnx.export` (opset 18) of the PyTorch source at `batch`; returns the seconds of the eager
    warm-up pass before the export, which the CPU report leaves out of the route's time.

    TensorRT networks are strongly typed in trtnet, and a strongly typed network parsed from ONNX takes its
    types from the ONNX graph: so for fp16/bf16 the PyTorch model is converted (`.half()`) before export,
    inside a wrapper that casts the float32 inputs in and the outputs back, like trtnet's own engines.
    """
    import torch

    model = load_torch(name, weights)
    if hasattr(getattr(model, "config", None), "_attn_implementation"):
        # Hugging Face models default to SDPA, whose TorchScript export leaves a float32 tensor in an fp16
        # graph (TensorRT's parser then refuses BERT's first LayerNorm); the eager attention exports cleanly.
        model.config._attn_implementation = "eager"
    dtype = getattr(torch, TORCH_DTYPES[precision])
    names = [i.name for i in declared_inputs(name)]

    class Fp32IO(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner.to(dtype)

        def forward(self, *xs):
            xs = [x.to(dtype) if x.is_floating_point() else x for x in xs]
            return tuple(o.float() for o in as_list(self.inner(*xs)))

    wrapped = Fp32IO(model).eval()
    args = tuple(torch.from_numpy(x) for x in make_inputs(name, batch))
    with torch.no_grad():
        # One eager pass first: models that cache shape-dependent constants (YOLOv5's Detect grids) then trace
        # them as constants; traced in fp16, their torch.arange fails to export.
        t_warm = time.perf_counter()
        wrapped(*args)
        warmup_s = time.perf_counter() - t_warm
        # The TorchScript exporter: the dynamo one needs onnxscript, which trtnet does not require.
        torch.onnx.export(
            wrapped, args, str(path), input_names=names, opset_version=18, dynamo=False, do_constant_folding=True
        )
    return warmup_s


def build_onnx(path: Path) -> trtnet.Engine:
    """The ONNX route's engine: TensorRT's ONNX parser (`trtnet.parse_onnx`) and the same build path, GPU
    targeting and backend as trtnet's own engines (not cached: each route is timed from the file)."""
    return trtnet.build(trtnet.parse_onnx(path), cache=False)


# -- CPU mode: one process per route, so that peak memory is that route's alone ------------------------------


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
    else:
        t_import = time.perf_counter()
        import torch  # noqa: F401  (timed apart: the ONNX route cannot do without it)

        import_s = time.perf_counter() - t_import
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = Path(tmp) / f"{name}.onnx"
            t_export = time.perf_counter()
            warmup_s = export_onnx(name, weights, batch, precision, onnx_path)
            export_s = time.perf_counter() - t_export - warmup_s
            engine = build_onnx(onnx_path)
        result = {
            "layers": engine.num_layers,
            "build_s": engine.build_seconds,
            "export_s": export_s,
            "torch_import_s": import_s,
            "pipeline_s": time.perf_counter() - t0 - warmup_s,
            "engine_mib": len(engine.plan) / 2**20,
            "peak_rss_mib": peak_rss_mib(),
        }
    return result


def parity(name: str, model, weights: Path | None) -> dict[str, Any]:
    """The reference interpreter (fp32) against the PyTorch source (fp32, CPU) at batch 1."""
    from trtnet.parity import rel_error, torch_forward

    xs = make_inputs(name, 1, seed=1)
    t0 = time.perf_counter()
    got = trtnet.reference(model, *xs)
    want = torch_forward(load_torch(name, weights), *xs)
    errors = [rel_error(g, w) for g, w in zip(got, want)]
    return {"rel_error": max(errors), "seconds": time.perf_counter() - t0, "batch": 1}


def quantize_model(name: str, weights: Path | None, args, scratch: Path) -> tuple[Path, dict[str, Any]]:
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
    for out_name, f, q in zip(outputs, fp32, quant):
        row = {"cosine": cosine(q, f), "rel_error": rel_error(q, f)}
        if out_name == "logits":
            row["top1_agree"] = float(np.mean(f.argmax(-1) == q.argmax(-1)))
        acc["outputs"][out_name] = row
    return path, acc


def run_child(job: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit code {proc.returncode}"}
    return json.loads(lines[-1])


def cpu_model(name: str, batches: list[int], args, weights: Path | None, calibration: Path | None = None) -> dict:
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


def print_cpu(name: str, result: dict, precision: str) -> None:
    print(f"\n### {name}  (no CUDA device: latency needs a GPU; engines built ahead of time, {precision})")
    print("| route | batch | layers | build (s) | weights->engine (s) | engine (MiB) | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|")
    # weights->engine: the whole pipeline in a fresh process (ONNX: with torch's import, export and parse).
    for batch, routes in result["routes"].items():
        for route, r in routes.items():
            label = {"trtnet": f"trtnet {precision}", "onnx": "ONNX -> TensorRT"}.get(route, route)
            if "error" in r:
                print(f"| {label} | {batch} | failed: {r['error'][:120]} |||||")
                continue
            print(
                f"| {label} | {batch} | {r['layers']} | {r['build_s']:.1f} | {r['pipeline_s']:.1f} | "
                f"{r['engine_mib']:.1f} | {r['peak_rss_mib']:.0f} |"
            )
    if "onnx_skipped" in result:
        print(f"ONNX route skipped: {result['onnx_skipped']}")
    if "parity" in result:
        p = result["parity"]
        print(
            f"parity, reference interpreter fp32 vs PyTorch fp32 at batch 1: rel error {p['rel_error']:.2e} "
            f"({p['seconds']:.1f} s)"
        )
    print_accuracy(result.get("quant_accuracy"), precision)
    ref = POROS_A10.get(name)
    if ref:
        row = ", ".join(f"b{b} {e:.2f}/{p:.2f}" for b, (e, p) in ref.items())
        print(f"published Poros A10, PyTorch/Poros ms: {row}")


def print_accuracy(acc: dict | None, precision: str) -> None:
    if not acc:
        return
    for out_name, r in acc["outputs"].items():
        top1 = f", top-1 agreement {r['top1_agree']:.0%}" if "top1_agree" in r else ""
        print(
            f"{precision} vs fp32 in the interpreter, {out_name} ({acc['held_out']} held-out inputs, ranges by "
            f"{acc['method']} over {acc['calibration_samples']}): cosine {r['cosine']:.5f}, rel error "
            f"{r['rel_error']:.2e}{top1}; {acc['quantized']} Q/DQ points, kept in fp16: "
            f"{', '.join(acc['kept']) or 'none'}"
        )


# -- GPU mode -----------------------------------------------------------------------------------------------


def time_torch(model, xs: list[np.ndarray], precision: str, iters: int, warmup: int) -> np.ndarray:
    import torch

    dtype = getattr(torch, TORCH_DTYPES[precision])
    args = [torch.from_numpy(x).cuda() for x in xs]
    args = [a.to(dtype) if a.is_floating_point() else a for a in args]
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = np.empty(iters, np.float64)
    with torch.inference_mode():
        for _ in range(warmup):
            model(*args)
        torch.cuda.synchronize()
        for i in range(iters):
            start.record()
            model(*args)
            end.record()
            end.synchronize()
            times[i] = start.elapsed_time(end)
    return times


def time_engine(engine: trtnet.Engine, xs: list[np.ndarray], iters: int, warmup: int, cuda_graph: bool) -> np.ndarray:
    runner = engine.runner(cuda_graph=cuda_graph)
    try:
        return runner.time(*xs, iters=iters, warmup=warmup)
    finally:
        runner.close()


def gpu_model(
    name: str, batches: list[int], args, weights: Path | None, weights_text: str, calibration: Path | None = None
) -> dict:
    out: dict[str, Any] = {"latency": {}}
    torch_model = None
    if weights is not None and have("torch"):  # no weights here means no PyTorch source to load
        import torch

        dtype = getattr(torch, TORCH_DTYPES[args.precision])
        torch_model = load_torch(name, weights).cuda().to(dtype)
    onnx = not args.no_onnx and args.precision not in QUANTIZED and have("onnx") and torch_model is not None
    for batch in batches:
        xs = make_inputs(name, batch)
        row: dict[str, Any] = {}
        model = REGISTRY[name].fn(weights=weights)
        engine = trtnet.build(
            model, batch_size=batch, precision=args.precision, calibration=calibration, cache=not args.no_cache
        )
        row["trtnet"] = stats(time_engine(engine, xs, args.iters, args.warmup, args.cuda_graph))
        row["trtnet"]["build_s"] = engine.build_seconds
        if args.streams > 1:  # throughput: one request in flight per stream, a context each
            row["throughput"] = engine.throughput(
                *xs, streams=args.streams, requests=args.iters, cuda_graph=args.cuda_graph
            )
        if batch == batches[0] and torch_model is not None:
            from trtnet.parity import rel_error

            got = engine(*xs)
            with torch.inference_mode():
                want = torch_model(
                    *[
                        torch.from_numpy(x).cuda().to(dtype) if x.dtype.kind == "f" else torch.from_numpy(x).cuda()
                        for x in xs
                    ]
                )
            want = as_list(want)
            out["gpu_rel_error"] = max(rel_error(g, w.float().cpu().numpy()) for g, w in zip(got, want))
        engine.close()
        if torch_model is not None:
            row["torch"] = stats(time_torch(torch_model, xs, args.precision, args.iters, args.warmup))
        if onnx:
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / f"{name}.onnx"
                    export_onnx(name, weights, batch, args.precision, path)
                    onnx_engine = build_onnx(path)
                row["onnx"] = stats(time_engine(onnx_engine, xs, args.iters, args.warmup, args.cuda_graph))
                onnx_engine.close()
            except (trtnet.TrtnetError, RuntimeError) as e:  # an exporter or parser gap: say so, keep going
                row["onnx"] = {"error": str(e).splitlines()[0][:200]}
        out["latency"][str(batch)] = row
    out["weights"] = weights_text
    return out


def _ms(r: dict | None) -> str:
    return f"{r['mean_ms']:.2f}" if r and "mean_ms" in r else "-"


def print_gpu(name: str, result: dict, precision: str) -> None:
    print(f"\n### {name}  ({precision}; mean ms over the iterations; median / p99 in the JSON)")
    if name in INPUT_NOTES:
        print(f"(reference: {INPUT_NOTES[name]})")
    print(
        "| Batch size | PyTorch (ms) | trtnet (ms) | speed-up | ONNX->TRT (ms) | trtnet vs ONNX "
        "| Poros A10: PyTorch (ms) | Poros (ms) | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ref = POROS_A10.get(name, {})
    notes: list[str] = []
    for batch, row in result["latency"].items():
        t, e, o = row.get("torch"), row.get("trtnet"), row.get("onnx")
        speed = f"{t['mean_ms'] / e['mean_ms']:.2f}x" if t and e else "-"
        versus = f"{o['mean_ms'] / e['mean_ms']:.2f}x" if o and "mean_ms" in o and e else "-"
        pe, pp = ref.get(int(batch), (None, None))
        published = f"{pe:.2f} | {pp:.2f} | {pe / pp:.2f}x" if pe else "- | - | -"
        print(f"| {batch} | {_ms(t)} | {_ms(e)} | {speed} | {_ms(o)} | {versus} | {published} |")
        if o and "error" in o:
            notes.append(f"ONNX route at batch {batch} failed: {o['error']}")
        if "throughput" in row:
            tp = row["throughput"]
            notes.append(
                f"batch {batch}: {tp['inferences_per_second']:.0f} inferences/s with {tp['streams']} "
                "streams in flight (host copies included)"
            )
    for note in notes:
        print(note)
    if "gpu_rel_error" in result:
        print(
            f"trtnet engine vs PyTorch on the GPU (both {precision}), first batch: rel error "
            f"{result['gpu_rel_error']:.2e}"
        )


# -- comparing runs, plotting --------------------------------------------------------------------------------


def flatten(results: dict) -> dict[str, float]:
    """'model/batch/route/metric' -> number, for comparing two runs."""
    flat: dict[str, float] = {}
    for name, r in results.get("models", {}).items():
        for key in ("routes", "latency"):
            for batch, routes in r.get(key, {}).items():
                for route, m in routes.items():
                    for metric, v in m.items():
                        if isinstance(v, (int, float)) and metric not in ("iters", "streams", "requests"):
                            flat[f"{name}/b{batch}/{route}/{metric}"] = float(v)
        if "parity" in r:
            flat[f"{name}/parity/rel_error"] = r["parity"]["rel_error"]
    return flat


def compare(old: dict, new: dict) -> None:
    a, b = flatten(old), flatten(new)
    print(f"\n## Changes against the earlier run ({old.get('meta', {}).get('date', '?')})")
    print("| measure | before | now | change |")
    print("|---|---|---|---|")
    for key in sorted(a.keys() & b.keys()):
        before, now = a[key], b[key]
        change = f"{(now - before) / before * 100:+.1f}%" if before else "-"
        print(f"| {key} | {before:.4g} | {now:.4g} | {change} |")
    for key in sorted(b.keys() - a.keys()):
        print(f"| {key} | - | {b[key]:.4g} | new |")


def plot(results: dict, path: Path) -> str:
    if not have("matplotlib"):
        return "no chart: matplotlib is not installed"
    rows = [
        (name, batch, r["torch"]["mean_ms"] / r["trtnet"]["mean_ms"])
        for name, m in results["models"].items()
        for batch, r in m.get("latency", {}).items()
        if "torch" in r and "trtnet" in r
    ]
    if not rows:
        return "no chart: speed-ups need GPU latencies"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r[0] for r in rows))
    batches = sorted({int(r[1]) for r in rows})
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names)), 4))
    width = 0.8 / len(batches)
    for j, batch in enumerate(batches):
        values = {r[0]: r[2] for r in rows if int(r[1]) == batch}
        ax.bar(
            [i + j * width for i in range(len(names))], [values.get(n, 0) for n in names], width, label=f"batch {batch}"
        )
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=30, ha="right")
    ax.set_ylabel("speed-up over PyTorch eager")
    ax.set_title(f"trtnet, {results['meta']['precision']}, {results['meta']['device']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return f"chart: {path}"


# -- main ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="every benchmark model of the zoo")
    parser.add_argument("--models", nargs="+", default=None, help="zoo names (any registered model)")
    parser.add_argument(
        "--batch-sizes", nargs="+", type=int, default=None, help="default 1 2 4 8 16 32 on a GPU, 1 without one"
    )
    parser.add_argument(
        "--precision",
        default="fp16",
        choices=["fp32", "fp16", "bf16", *QUANTIZED],
        help="default fp16; int8 and fp8 are calibrated in the interpreter first",
    )
    parser.add_argument("--calib-samples", type=int, default=4, help="calibration inputs for int8/fp8 (default 4)")
    parser.add_argument(
        "--calib-method",
        default="max",
        choices=["max", "percentile", "entropy", "mse"],
        help="how int8/fp8 ranges are chosen (default max)",
    )
    parser.add_argument("--iters", type=int, default=1000, help="timed inferences (default 1000, as published)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed inferences first (default 50)")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"), help="results file")
    parser.add_argument("--compare", type=Path, default=None, help="an earlier --json file: print the changes")
    parser.add_argument("--plot", type=Path, default=None, help="PNG chart of the speed-ups (needs matplotlib)")
    parser.add_argument(
        "--weights-dir",
        type=Path,
        default=Path("weights"),
        help="<name>.safetensors here if present, else seeded random weights",
    )
    parser.add_argument("--no-parity", action="store_true", help="skip the interpreter's parity check (CPU mode)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX route")
    parser.add_argument("--no-cache", action="store_true", help="always build engines (GPU mode)")
    parser.add_argument("--cuda-graph", action="store_true", help="replay engines as CUDA graphs (GPU mode)")
    parser.add_argument(
        "--streams",
        type=int,
        default=0,
        help="also measure throughput with this many requests in flight, one stream each (GPU mode)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.models:
        unknown = [n for n in args.models if n not in REGISTRY]
        if unknown:
            parser.error(f"unknown model(s) {unknown}; known: {', '.join(sorted(REGISTRY))}")
        names = args.models
    elif args.all:
        names = [n for n, e in REGISTRY.items() if e.benchmark]
    else:
        parser.error("name --models or pass --all")

    gpu = has_gpu()
    batches = args.batch_sizes or (list(GPU_BATCHES) if gpu else [1])
    device = describe_device()
    print(
        f"trtnet benchmark: {len(names)} model(s), batch sizes {batches}, precision {args.precision} "
        f"(the default is fp16), backend {trtnet.backend.get_backend()}"
    )
    print(f"device: {device}")
    if gpu:
        print(
            f"latency: mean of {args.iters} inferences after {args.warmup} warm-up, CUDA events, inputs on the "
            f"GPU{', CUDA graphs' if args.cuda_graph else ''}"
        )
    else:
        print("CPU mode: engines are built ahead of time; latency columns need a GPU")
    print(f"reference figures: {SOURCE}")
    results: dict[str, Any] = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "device": device,
            "gpu": gpu,
            "precision": args.precision,
            "batches": batches,
            "iters": args.iters,
            "warmup": args.warmup,
            "backend": str(trtnet.backend.get_backend()),
            "python": platform.python_version(),
        },
        "models": {},
        "reference": {"source": SOURCE, "poros_a10": POROS_A10},
    }
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            t0 = time.perf_counter()
            weights, weights_text = weights_for(name, args.weights_dir, Path(scratch))
            print(f"\n{name}: {weights_text}", flush=True)
            calibration, accuracy = None, None
            if args.precision in QUANTIZED:
                calibration, accuracy = quantize_model(name, weights, args, Path(scratch))
            if gpu:
                result = gpu_model(name, batches, args, weights, weights_text, calibration)
                print_gpu(name, result, args.precision)
                print_accuracy(accuracy, args.precision)
            else:
                result = cpu_model(name, batches, args, weights, calibration)
                result["weights"] = weights_text
                print_cpu(name, result | {"quant_accuracy": accuracy}, args.precision)
            if accuracy:
                result["quant_accuracy"] = accuracy
            result["seconds"] = time.perf_counter() - t0
            results["models"][name] = result
            sys.stdout.flush()
    results["meta"]["seconds"] = time.perf_counter() - t_all
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nresults: {args.json} ({results['meta']['seconds']:.0f} s in all)")
    if args.plot:
        print(plot(results, args.plot))
    if args.compare:
        compare(json.loads(args.compare.read_text()), results)
    # A failed trtnet build fails the run; an ONNX-route failure (an exporter or parser gap) is only reported.
    failed = [
        f"{n}/b{b}"
        for n, m in results["models"].items()
        for b, routes in m.get("routes", {}).items()
        if "error" in routes.get("trtnet", {})
    ]
    if failed:
        print(f"trtnet failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
