"""Benchmark trtnet's engines against PyTorch eager (and the ONNX route to the same TensorRT), per zoo model.

    python bench.py --all                        # every benchmark model of the zoo, batches 1..32, fp16
    python bench.py --models resnet50 --batch-sizes 1 8 --precision fp32 --min-seconds 2
    python bench.py --all --dry-run              # every step of the GPU run but the kernel launches, on the CPU

With a CUDA GPU: first the GPU's compute capability, the backend and the targets it lists (on a GPU it does not
list, its targeting for the present GPU is tried once on a tiny network, and a refusal ends the run with the
backend's message). Then each model is built once with a dynamic batch profile covering the batch sizes, and
timed at each with CUDA events, inputs already on the GPU: about --min-seconds per row (at least --min-iters
inferences, at most --iters), inside a --deadline for the whole run; min / median / p99 and the iterations used are
reported. PyTorch eager (fp32 by default, the same inputs) and the ONNX route (`torch.onnx.export` with a dynamic
batch, TensorRT's ONNX parser; at the smallest and largest batch by default) are timed the same way. The published
Poros A10 figures are printed alongside, with their speed-up ("Poros ratio") per row.

--dry-run does all of that without a GPU: engines and the ONNX route are built (ahead of time), PyTorch's model
is loaded on the CPU, and each series "takes" a stand-in time (the published figures) on a fake clock.

Without a GPU (and no --dry-run): every engine is built ahead of time, and each model reports layers, build seconds,
engine size and peak memory for trtnet and for the ONNX route (weights file to serialized engine, each in a
process of its own), and the reference interpreter's error against PyTorch at batch 1 (--no-parity skips it).
Results also go to --json (default bench-results.json); --compare OLD.json prints the changes.

--precision int8 | fp8: each model is first calibrated in the reference interpreter (--calib-samples inputs,
--calib-method, default max as ModelOpt's recipes), and its int8/fp8 network compared with fp32 there on held-out
inputs. Without a GPU, engines are built for fp16 too, beside it. The ONNX route has no quantized export here.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trtnet
from trtnet.bench import report
from trtnet.bench.cpu import cpu_model, quantize_model
from trtnet.bench.gpu import DryRun, GpuOptions, GpuSide, gpu_model, profile_of, series_count
from trtnet.bench.models import TORCH_DTYPES, have, weights_for
from trtnet.bench.reference import POROS_A10, SOURCE
from trtnet.bench.report import CHART_FORMATS
from trtnet.bench.targets import needs_probe, probe_current, target_report
from trtnet.bench.timing import Deadline, RowBudget
from trtnet.cli.values import Repeated, path_given, positive
from trtnet.errors import TrtnetError
from trtnet.fileio import refuse_clobbering, writable_target
from trtnet.fileread import read_json
from trtnet.graph import PRECISIONS, QUANTIZED
from trtnet.quant.calibrate import check_method
from trtnet.quant.ranges import CALIBRATION_METHODS
from trtnet.runtime.cudart import compute_capability
from trtnet.target import describe_device, has_gpu
from trtnet.zoo import REGISTRY

GPU_BATCHES = (1, 2, 4, 8, 16, 32)
RESULTS_LIMIT = 1 << 26  # bytes of an earlier results file (--compare): a full run's is well under 1 MiB


def batch_size(text: str) -> int:
    """argparse's type for a batch size: a positive integer (a batch of 0 builds an engine that takes nothing)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a batch size (a positive integer)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a batch size: it must be 1 or more")
    return value


MAX_CALIB_SAMPLES = 4096  # made and held in memory at once, each run through the interpreter: 4096 images are 2.4 GB


def calib_samples(text: str) -> int:
    """argparse's type for --calib-samples: 1 to `MAX_CALIB_SAMPLES`."""
    value = positive(text)
    if value > MAX_CALIB_SAMPLES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: at most {MAX_CALIB_SAMPLES} (the inputs are made and held in memory at once)"
        )
    return value


def seconds(text: str) -> float:
    """argparse's type for a time: a finite number of seconds above 0 (NaN and inf were written to the results
    as JSON that is not JSON; 0 ran nothing)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r}: a time must be a finite number of seconds above 0")
    return value


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--all", action="store_true", help="every benchmark model of the zoo")
    p.add_argument("--models", nargs="+", action=Repeated, default=None, help="zoo names (any registered model)")
    p.add_argument(
        "--batch-sizes",
        nargs="+",
        action=Repeated,
        type=batch_size,
        default=None,
        help="default 1 2 4 8 16 32 (GPU, dry run), 1 without",
    )
    p.add_argument(
        "--precision", default="fp16", choices=PRECISIONS, help="default fp16; int8/fp8 are calibrated first"
    )
    p.add_argument("--torch-precision", default="fp32", choices=("fp32", "fp16", "bf16"), help="PyTorch eager's (fp32)")
    p.add_argument("--calib-samples", type=calib_samples, default=4, help="calibration inputs for int8/fp8 (default 4)")
    p.add_argument(
        "--calib-method", default="max", choices=CALIBRATION_METHODS, help="how int8/fp8 ranges are chosen (max)"
    )
    p.add_argument("--min-seconds", type=seconds, default=1.0, help="timed seconds per row and route (default 1)")
    p.add_argument("--min-iters", type=int, default=10, help="timed inferences per row at least (default 10)")
    p.add_argument("--iters", type=int, default=1000, help="timed inferences per row at most (default 1000)")
    p.add_argument("--warmup", type=int, default=50, help="untimed inferences first, at most (default 50)")
    p.add_argument("--deadline", type=seconds, default=420.0, help="seconds for the whole GPU run (default 420)")
    p.add_argument(
        "--opt-batch", type=batch_size, default=None, help="the profile's tuned batch (default: the middle one)"
    )
    p.add_argument(
        "--onnx-batches",
        nargs="+",
        action=Repeated,
        type=batch_size,
        default=None,
        help="default: smallest and largest batch",
    )
    p.add_argument("--json", type=path_given, default=Path("bench-results.json"), help="results file")
    p.add_argument("--compare", type=path_given, default=None, help="an earlier --json file: print the changes")
    p.add_argument("--plot", type=path_given, default=None, help="PNG chart of the speed-ups (needs matplotlib)")
    p.add_argument(
        "--weights-dir", type=path_given, default=None, help="<name>.safetensors here, else seeded random (weights/)"
    )
    p.add_argument("--no-parity", action="store_true", help="skip the interpreter's parity check (CPU mode)")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX route")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch eager (GPU mode)")
    p.add_argument("--no-cache", action="store_true", help="always build engines (GPU mode)")
    p.add_argument("--cuda-graph", action="store_true", help="replay engines as CUDA graphs (GPU mode)")
    p.add_argument("--dry-run", action="store_true", help="the GPU run's steps on the CPU, nothing launched")
    p.add_argument("--gpu-capability", default="9.0", help="the GPU a dry run reports on (default 9.0, an H100)")
    return p.parse_args(argv), p


def capability_of(text: str) -> tuple[int, int]:
    """'9.0' or 'sm_90' -> (9, 0); '12.0' or 'sm_120' -> (12, 0)."""
    match = re.fullmatch(r"(\d+)\.(\d)|sm_(\d+)(\d)", text)  # '9.0.1' was read as sm_901
    major, minor = (int(g) for g in match.groups() if g is not None) if match else (0, 0)
    if major < 1:
        raise ValueError(f"GPU capability {text!r}: expected MAJOR.MINOR (9.0) or sm_90")
    return major, minor


def run_gpu(names: list[str], batches: list[int], args: argparse.Namespace, results: dict, scratch: Path) -> bool:
    """The GPU table (or its dry run) into `results`; False where the backend refused this GPU."""
    dry = args.dry_run
    cc = capability_of(args.gpu_capability) if dry else capability_of(compute_capability() or "")
    target = target_report(cc)
    for line in target.lines():
        print(line)
    probe: dict[str, Any] = {}
    if needs_probe(target):
        probe = {"what": "dry run", "ok": True, "outcome": "not tried (dry run: no GPU)"} if dry else probe_current()
        print(f"probe: {probe['outcome']}")
    results["meta"]["target"] = target.to_json() | {"probe": probe}
    if probe and not probe["ok"]:
        print(f"bench: the backend {target.backend} cannot run engines on this {target.gpu} GPU; no table")
        return False
    opts = GpuOptions(
        precision=args.precision,
        torch_precision=args.torch_precision,
        opt_batch=args.opt_batch,
        onnx_batches=tuple(args.onnx_batches or (min(batches), max(batches))),
        onnx=not args.no_onnx and args.precision not in QUANTIZED and have("torch") and have("onnx"),
        torch=not args.no_torch and have("torch"),
        cache=not args.no_cache,
        cuda_graph=args.cuda_graph,
    )
    budget = RowBudget(args.min_seconds, args.min_iters, args.iters, args.warmup)
    side = DryRun() if dry else GpuSide(args.cuda_graph)
    deadline = Deadline(side.clock, args.deadline, series_count(len(names), batches, opts), len(names))
    results["meta"] |= {
        "budget": vars(budget),
        "deadline_s": args.deadline,
        "profile": profile_of(batches, args.opt_batch),
    }
    for name in names:
        weights, weights_text = weights_for(name, args.weights_dir, scratch)
        print(f"\n{name}: {weights_text}", flush=True)
        calibration, accuracy = None, None
        if args.precision in QUANTIZED:
            calibration, accuracy = quantize_model(name, weights, args, scratch)
        t0 = time.perf_counter()
        result = gpu_model(name, batches, side, opts, budget, deadline, weights, calibration)
        result |= {"weights": weights_text, "dry_run": dry, "seconds": time.perf_counter() - t0}
        if accuracy:
            result["quant_accuracy"] = accuracy
        report.print_gpu(name, result, args.precision, args.torch_precision)
        report.print_accuracy(accuracy, args.precision)
        results["models"][name] = result
        sys.stdout.flush()
    results["meta"]["clock_s"] = side.clock.now() - deadline.start  # the fake clock's total in a dry run
    return True


def check_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict | None:
    """Every argument checked before any work, the same way with a GPU, in a dry run and without either (a command
    line that a GPU run would refuse is refused everywhere); returns the earlier results of --compare, if given."""
    try:
        capability_of(args.gpu_capability)
        RowBudget(args.min_seconds, args.min_iters, args.iters, args.warmup)
    except ValueError as e:
        parser.error(str(e))
    for flag in ("batch_sizes", "onnx_batches", "models"):  # one given twice was timed twice, as two rows
        given = getattr(args, flag) or []
        if len(set(given)) != len(given):
            twice = sorted({b for b in given if given.count(b) > 1})
            parser.error(f"--{flag.replace('_', '-')} names {', '.join(map(str, twice))} more than once")
    if args.precision in QUANTIZED:
        try:
            check_method(args.calib_method, args.precision, 99.99)  # entropy is int8's: refused before any work
        except TrtnetError as e:
            parser.error(f"--calib-method {args.calib_method} --precision {args.precision}: {e}")
    timed = args.batch_sizes or list(GPU_BATCHES)  # what a GPU run or a dry run builds its profile over
    lo, hi = min(timed), max(timed)
    if args.opt_batch is not None and not lo <= args.opt_batch <= hi:
        parser.error(f"--opt-batch {args.opt_batch} is outside the batch sizes {lo}..{hi}")
    stray = [b for b in args.onnx_batches or () if b not in timed]
    if stray:
        parser.error(f"--onnx-batches {' '.join(map(str, stray))}: not among the batch sizes {timed}")
    if args.weights_dir is not None and not args.weights_dir.is_dir():  # a mistyped folder: every model random
        parser.error(
            f"--weights-dir {args.weights_dir}: {'not a folder' if args.weights_dir.exists() else 'no such folder'}"
        )
    args.weights_dir = args.weights_dir or Path("weights")
    if args.plot is not None and Path(args.plot).suffix.lower() not in CHART_FORMATS:
        parser.error(f"--plot {args.plot}: a chart is written as {', '.join(sorted(CHART_FORMATS))} (by its suffix)")
    earlier = None
    try:  # a results file with nowhere to go, or an earlier one that cannot be read, found after a long run
        for target, what in ((args.json, "the results (--json)"), (args.plot, "the chart (--plot)")):
            if target is not None:
                writable_target(target, what)
        reads = {"the results (--json)": args.json, "the earlier results (--compare)": args.compare}
        refuse_clobbering({"the chart (--plot)": args.plot}, reads)
        if args.compare is not None:
            earlier = read_json(args.compare, RESULTS_LIMIT, "results file (--compare)", TrtnetError)
    except TrtnetError as e:
        parser.error(str(e))
    if earlier is not None and not (isinstance(earlier, dict) and isinstance(earlier.get("models"), dict)):
        parser.error(f'{args.compare}: not a results file of bench.py (--compare): no "models" object')
    if earlier is not None and not report.flatten(earlier):
        parser.error(f"{args.compare}: the results file (--compare) holds no measurements to compare with")
    return earlier


def save_results(results: dict[str, Any], path: Path) -> bool:
    """The results file written; where it cannot be (its folder gone since the start), the results are printed
    instead, never lost, and False returned."""
    try:
        report.write_results(results, path)
    except TrtnetError as e:
        print(f"\nresults (not saved: {e}):\n{json.dumps(results, indent=1)}")
        print(f"bench: {e}", file=sys.stderr)
        return False
    print(f"\nresults: {path} ({results['meta']['seconds']:.0f} s in all)")
    return True


def main(argv: list[str] | None = None) -> int:
    args, parser = parse_args(argv)
    if args.models:
        unknown = [n for n in args.models if n not in REGISTRY]
        if unknown:
            parser.error(f"unknown model(s) {unknown}; known: {', '.join(sorted(REGISTRY))}")
        names = args.models
    elif args.all:
        names = [n for n, e in REGISTRY.items() if e.benchmark]
    else:
        parser.error("name --models or pass --all")
    earlier = check_args(args, parser)
    gpu = has_gpu()
    timed = gpu or args.dry_run
    batches = args.batch_sizes or (list(GPU_BATCHES) if timed else [1])
    if not timed and (args.opt_batch is not None or args.onnx_batches):
        given = " and ".join(
            f for f, v in (("--opt-batch", args.opt_batch), ("--onnx-batches", args.onnx_batches)) if v
        )
        print(f"bench: {given} ignored: no GPU and no --dry-run, so each batch is built as an engine of its own")
    device = describe_device()
    print(
        f"trtnet benchmark: {len(names)} model(s), batch sizes {batches}, precision {args.precision} "
        f"(the default is fp16), backend {trtnet.backend.get_backend()}"
    )
    print(f"device: {device}")
    if timed:
        print(
            f"latency: CUDA events, inputs on the GPU{', CUDA graphs' if args.cuda_graph else ''}; about "
            f"{args.min_seconds:g} s per row and route ({args.min_iters}..{args.iters} inferences, up to {args.warmup} "
            f"warm-up), {args.deadline:g} s for the whole run; PyTorch eager in "
            f"{args.torch_precision} ({TORCH_DTYPES[args.torch_precision]})"
        )
        if args.dry_run:
            print("DRY RUN: nothing is launched; latencies are stand-ins (the published figures) on a fake clock")
    else:
        print("CPU mode: engines are built ahead of time; latency columns need a GPU")
    print(f"reference figures: {SOURCE}")
    results: dict[str, Any] = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "device": device,
            "gpu": gpu,
            "dry_run": args.dry_run,
            "precision": args.precision,
            "torch_precision": args.torch_precision,
            "batches": batches,
            "backend": str(trtnet.backend.get_backend()),
            "python": platform.python_version(),
        },
        "models": {},
        "reference": {"source": SOURCE, "poros_a10": POROS_A10},
    }
    t_all = time.perf_counter()
    ran = True
    with tempfile.TemporaryDirectory() as scratch:
        if timed:
            ran = run_gpu(names, batches, args, results, Path(scratch))
        else:
            for name in names:
                t0 = time.perf_counter()
                weights, weights_text = weights_for(name, args.weights_dir, Path(scratch))
                print(f"\n{name}: {weights_text}", flush=True)
                calibration, accuracy = None, None
                if args.precision in QUANTIZED:
                    calibration, accuracy = quantize_model(name, weights, args, Path(scratch))
                result = cpu_model(name, batches, args, weights, calibration)
                result["weights"] = weights_text
                if accuracy:
                    result["quant_accuracy"] = accuracy
                report.print_cpu(name, result, args.precision)
                result["seconds"] = time.perf_counter() - t0
                results["models"][name] = result
                sys.stdout.flush()
    results["meta"]["seconds"] = time.perf_counter() - t_all
    saved = save_results(results, args.json)
    if args.plot:
        print(report.plot(results, args.plot))
    if earlier is not None:
        report.compare(earlier, results)
    # A failed trtnet build fails the run; an ONNX-route failure (an exporter or parser gap) is only reported.
    failed = [n for n, m in results["models"].items() if "error" in m] + [
        f"{n}/b{b}"
        for n, m in results["models"].items()
        for b, routes in m.get("routes", {}).items()
        if "error" in routes.get("trtnet", {})
    ]
    if failed:
        print(f"trtnet failed: {', '.join(failed)}")
    return 0 if ran and saved and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
