"""The benchmark's report: its tables in Markdown on stdout, the results file, the changes against an earlier
run, and the chart of speed-ups. Each function takes the results as the run records them (a dict per model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trtnet.bench.models import have
from trtnet.bench.reference import INPUT_NOTES, POROS_A10
from trtnet.fileio import atomic_write


def print_cpu(name: str, result: dict, precision: str) -> None:
    """One model's CPU-mode table: layers, build time, engine size and peak memory per route and batch."""
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
    """The int8/fp8 network's accuracy against fp32 in the interpreter, an output a line."""
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


def _ms(r: dict | None, key: str = "median_ms") -> str:
    # A route that was timed has every statistic: a missing one is a bug to see, not a dash to print.
    return "-" if r is None else f"{r[key]:.2f}"


def speedup(slow: dict | None, fast: dict | None) -> float | None:
    """How many times faster `fast` is than `slow`, by median latency (None where either is missing)."""
    if not slow or not fast or "median_ms" not in slow or "median_ms" not in fast:
        return None
    return slow["median_ms"] / fast["median_ms"]


def print_gpu(name: str, result: dict, precision: str, torch_precision: str) -> None:
    """One model's GPU table: medians (min and p99 of trtnet too), iterations, speed-ups and Poros's ratio."""
    mode = " (dry run: stand-in kernel times, nothing launched)" if result.get("dry_run") else ""
    print(f"\n### {name}  (trtnet {precision}, PyTorch eager {torch_precision}; median ms, CUDA events){mode}")
    if name in INPUT_NOTES:
        print(f"(reference: {INPUT_NOTES[name]})")
    if "error" in result:
        print(f"failed before timing: {result['error']}")
        return
    print(
        "| batch | PyTorch (ms) | trtnet min / median / p99 (ms) | iters | speed-up | ONNX->TRT (ms) "
        "| Poros A10: PyTorch / Poros (ms) | Poros ratio | ours / Poros ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ref = POROS_A10.get(name, {})
    for batch, row in result["latency"].items():
        t, e, o = row.get("torch"), row.get("trtnet"), row.get("onnx")
        ours = speedup(t, e)
        iters = "/".join(str(r["iters"]) for r in (e, t, o) if r)
        trt = f"{_ms(e, 'min_ms')} / {_ms(e)} / {_ms(e, 'p99_ms')}"
        pe, pp = ref.get(int(batch), (None, None))
        published = f"{pe:.2f} / {pp:.2f} | {pe / pp:.2f}x" if pe and pp else "- | -"
        versus = f"{ours / (pe / pp):.2f}" if ours and pe and pp else "-"
        shown = f"{ours:.2f}x" if ours else "-"
        print(f"| {batch} | {_ms(t)} | {trt} | {iters} | {shown} | {_ms(o)} | {published} | {versus} |")
    if "onnx_error" in result:
        print(f"ONNX route failed: {result['onnx_error']}")
    if "gpu_rel_error" in result:
        print(f"trtnet engine vs PyTorch on the GPU, first batch: rel error {result['gpu_rel_error']:.2e}")


def write_results(results: dict[str, Any], path: Path) -> None:
    """The results file (JSON), written whole or not at all."""
    atomic_write(path, (json.dumps(results, indent=1) + "\n").encode())


def flatten(results: dict) -> dict[str, float]:
    """'model/batch/route/metric' -> number, for comparing two runs."""
    flat: dict[str, float] = {}
    # An earlier run's file (--compare) is input: whatever is not of this shape, at any level, is passed over.
    for name, r in _items(results.get("models")):
        for key in ("routes", "latency"):
            for batch, routes in _items(r.get(key) if isinstance(r, dict) else None):
                for route, m in _items(routes):
                    for metric, v in _items(m):
                        if _number(v) and metric not in ("iters", "streams", "requests"):
                            flat[f"{name}/b{batch}/{route}/{metric}"] = float(v)
        error = r.get("parity") if isinstance(r, dict) else None
        if isinstance(error, dict) and _number(error.get("rel_error")):
            flat[f"{name}/parity/rel_error"] = float(error["rel_error"])
    return flat


def _items(d: Any) -> list[tuple[Any, Any]]:
    return list(d.items()) if isinstance(d, dict) else []


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def compare(old: dict, new: dict) -> None:
    """Print every measure of `new` beside the same in `old`, with the change in percent."""
    a, b = flatten(old), flatten(new)
    meta = old.get("meta") if isinstance(old.get("meta"), dict) else {}
    print(f"\n## Changes against the earlier run ({meta.get('date', '?')})")
    print("| measure | before | now | change |")
    print("|---|---|---|---|")
    for key in sorted(a.keys() & b.keys()):
        before, now = a[key], b[key]
        change = f"{(now - before) / before * 100:+.1f}%" if before else "-"
        print(f"| {key} | {before:.4g} | {now:.4g} | {change} |")
    for key in sorted(b.keys() - a.keys()):
        print(f"| {key} | - | {b[key]:.4g} | new |")


# What matplotlib writes a figure as, by the file's suffix (`savefig`).
CHART_FORMATS = frozenset((".eps", ".jpeg", ".jpg", ".pdf", ".png", ".ps", ".svg", ".svgz", ".tif", ".tiff", ".webp"))


def plot(results: dict, path: Path) -> str:
    """A PNG bar chart of trtnet's speed-up over PyTorch per model and batch; returns what was done, in words."""
    if not have("matplotlib"):
        return "no chart: matplotlib is not installed"
    rows = [
        (name, batch, s)
        for name, m in results["models"].items()
        for batch, r in m.get("latency", {}).items()
        if (s := speedup(r.get("torch"), r.get("trtnet")))
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
        xs = [i + j * width for i in range(len(names))]
        ax.bar(xs, [values.get(n, 0) for n in names], width, label=f"batch {batch}")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=30, ha="right")
    ax.set_ylabel("speed-up over PyTorch eager")
    dry = " (DRY RUN: stand-in times)" if results["meta"].get("dry_run") else ""
    ax.set_title(f"trtnet, {results['meta']['precision']}, {results['meta']['device']}{dry}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"chart: {path}"
