"""int8 and fp8 against fp32, in the reference interpreter, for the zoo's benchmark models; and their CPU builds.

    python scripts/quant_accuracy.py                       # the nine benchmark models, random weights
    python scripts/quant_accuracy.py --models resnet18 --calib-batches 2 --eval-batches 2 --batch 2

Per model: one fp32 pass of the interpreter over the calibration batches (seeds 1..N) measures every quantized
tensor; int8 takes its ranges by --int8-method (default percentile 99.99), fp8 by --fp8-method (default max,
as ModelOpt's FP8 recipe). Held-out batches (other seeds) then run in fp32, int8 and fp8 in the interpreter:
cosine similarity and relative error (||q - f|| / ||f||) of every output over all held-out samples, and for
classifiers (a `logits` output) the share of samples whose top-1 class agrees with fp32; for YOLOv5 also over the
objectness and class scores alone (its box coordinates, in pixels, would hide any error). Then fp16, int8 and
fp8 engines are built on the CPU at --build-batch (no engine cache): layers, build seconds, plan size.
Results go to --out (JSON, one entry per model, written as each model finishes) and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import trtnet
from trtnet.parity import sample_inputs
from trtnet.quant.calibrate import measure
from trtnet.zoo import REGISTRY


def metrics(fp32: list[np.ndarray], q: list[np.ndarray], names: list[str]) -> dict:
    out = {}
    pairs = list(zip(names, fp32, q))
    if "predictions" in names:  # YOLOv5: box coordinates (grid offsets in pixels) swamp the scores; compare both
        _, f, g = pairs[names.index("predictions")]
        pairs.insert(0, ("predictions[..., 4:] (scores)", f[..., 4:], g[..., 4:]))
    for name, f, g in pairs:
        f64, g64 = f.astype(np.float64).ravel(), g.astype(np.float64).ravel()
        row = {
            "cosine": float(f64 @ g64 / (np.linalg.norm(f64) * np.linalg.norm(g64))),
            "rel_error": float(np.linalg.norm(g64 - f64) / np.linalg.norm(f64)),
        }
        if name == "logits":
            row["top1_agree"] = float(np.mean(f.argmax(-1) == g.argmax(-1)))
        out[name] = row
    return out


def run_model(name: str, args: argparse.Namespace) -> dict:
    model = REGISTRY[name].fn(weights=None)
    t0 = time.perf_counter()
    calib = [sample_inputs(model, args.batch, seed=1 + i) for i in range(args.calib_batches)]
    stats = measure(model, calib)
    cals = {
        "int8": stats.calibration(args.int8_method, precision="int8"),
        "fp8": stats.calibration(args.fp8_method, precision="fp8"),
    }
    calib_s = time.perf_counter() - t0
    results: dict = {
        "model": name,
        "calibration_seconds": round(calib_s, 1),
        "samples": {"calibration": stats.samples, "held_out": args.eval_batches * args.batch},
        "methods": {p: c.method for p, c in cals.items()},
        "quantized_layers": {p: len(c.amax) - len(c.keep) for p, c in cals.items()},
        "kept": cals["int8"].keep,
    }
    outs: dict[str, list[list[np.ndarray]]] = {"fp32": [], "int8": [], "fp8": []}
    for i in range(args.eval_batches):
        x = sample_inputs(model, args.batch, seed=100 + i)
        outs["fp32"].append(trtnet.reference(model, *x))
        for p in ("int8", "fp8"):
            outs[p].append(trtnet.reference(model, *x, precision=p, calibration=cals[p]))
    net = trtnet.emit(model, 1)
    names = [o.name for o in net.outputs]
    joined = {p: [np.concatenate([b[j] for b in v]) for j in range(len(names))] for p, v in outs.items()}
    results["accuracy"] = {p: metrics(joined["fp32"], joined[p], names) for p in ("int8", "fp8")}
    results["reference_seconds"] = round(time.perf_counter() - t0 - calib_s, 1)
    builds = {}
    for p in ("fp16", "int8", "fp8"):
        t = time.perf_counter()
        engine = trtnet.build(model, args.build_batch, precision=p, calibration=cals.get(p), cache=False)
        builds[p] = {
            "layers": engine.num_layers,
            "build_seconds": round(time.perf_counter() - t, 2),
            "plan_mib": round(len(engine.plan) / 2**20, 2),
        }
    results["builds"] = builds
    return results


def table(rows: list[dict]) -> str:
    lines = [
        "| model | int8 cosine | int8 rel. error | int8 top-1 | fp8 cosine | fp8 rel. error | fp8 top-1 | "
        "quantized / kept | layers fp16 / int8 / fp8 | build s fp16 / int8 / fp8 | plan MiB fp16 / int8 / fp8 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        first = next(iter(r["accuracy"]["int8"]))
        a8, f8 = r["accuracy"]["int8"][first], r["accuracy"]["fp8"][first]
        top = lambda m: f"{m['top1_agree']:.0%}" if "top1_agree" in m else "-"  # noqa: E731
        b = r["builds"]
        lines.append(
            f"| {r['model']} ({first}) | {a8['cosine']:.4f} | {a8['rel_error']:.3f} | {top(a8)} | {f8['cosine']:.4f} | "
            f"{f8['rel_error']:.3f} | {top(f8)} | {r['quantized_layers']['int8']} / {len(r['kept'])} | "
            + " / ".join(str(b[p]["layers"]) for p in ("fp16", "int8", "fp8"))
            + " | "
            + " / ".join(f"{b[p]['build_seconds']:.1f}" for p in ("fp16", "int8", "fp8"))
            + " | "
            + " / ".join(f"{b[p]['plan_mib']:.1f}" for p in ("fp16", "int8", "fp8"))
            + " |"
        )
    return "\n".join(lines)


def main() -> int:
    benchmark = [e.name for e in REGISTRY.values() if e.benchmark]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", default=benchmark)
    ap.add_argument("--batch", type=int, default=2, help="samples per interpreter run (default 2)")
    ap.add_argument("--calib-batches", type=int, default=2)
    ap.add_argument("--eval-batches", type=int, default=2)
    ap.add_argument("--build-batch", type=int, default=8)
    ap.add_argument("--int8-method", default="percentile")
    ap.add_argument("--fp8-method", default="max")
    ap.add_argument("--out", default="quant-results.json")
    args = ap.parse_args()
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.exists() else []
    done = {r["model"] for r in rows}
    for name in args.models:
        if name in done:
            continue
        print(f"{name} ...", file=sys.stderr, flush=True)
        rows.append(run_model(name, args))
        out.write_text(json.dumps(rows, indent=1))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table([r for r in rows if r["model"] in args.models]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
