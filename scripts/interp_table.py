"""The interpreter against the other ways to run a network on the CPU: onnx.reference, onnxruntime, PyTorch.

For each of the nine benchmark models: the zoo's PyTorch source with seeded random weights
(`trtnet.parity.torch_model`), exported to ONNX (opset 17, batch 1), then timed, on the same inputs and in one
process per model:
- onnx.reference: onnx's own pure-numpy `ReferenceEvaluator` on the file, warm (the fastest of --runs after a
  first run);
- onnxruntime on the file (CPU provider, fastest of --runs after a first run);
- trtnet's interpreter on the network TensorRT's ONNX parser makes of the file: a first call (a fresh
  `Interpreter(network).run`, preparation included: what `trtnet check` users wait for; the fastest of --runs
  fresh ones) and warm (the same prepared network run again, fastest of --runs);
- PyTorch eager, fp32 (fastest of --runs).
Each side's error is max |got - exact| / max |exact| over the outputs, against the source run in float64. One
BLAS/OpenMP/torch thread on every side (--threads). The fastest of several runs, because the machine may be
shared: the minimum is the run least disturbed.

    PYTHONPATH=$PWD python scripts/interp_table.py --runs 3 --json table.json [--models resnet50 ...]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from pin_threads import pin_threads  # noqa: E402  (the script's own folder, first on sys.path)

THREADS = pin_threads()
ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402  (after the thread count is set)

from trtnet.bench.reference import POROS_A10  # noqa: E402

NINE = list(POROS_A10)  # the benchmark's nine models, in its order


def _best(fn, runs: int) -> tuple[float, object]:
    """The fastest of `runs` calls of fn, and the last result."""
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def _error(got: list[np.ndarray], exact: list[np.ndarray]) -> float:
    from trtnet.parity import rel_error

    return max(rel_error(np.asarray(g, np.float64), e) for g, e in zip(got, exact))


def _by_keyword(source, names: list[str]):
    """The source with its inputs passed by name and its outputs as a tuple: the exporter passes extra
    arguments positionally (transformers' BertModel then sees `use_cache` twice)."""
    import torch

    class ByKeyword(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = source

        def forward(self, *xs):
            out = self.inner(**dict(zip(names, xs)))
            if hasattr(out, "to_tuple"):
                out = out.to_tuple()
            return out

    # eval(): the exporter restores the wrapper's mode afterwards, and a new module is in training mode (dropout).
    return ByKeyword().eval() if "input_ids" in names else source


def _float64_forward(source, xs: list[np.ndarray]) -> list[np.ndarray]:
    """The source's outputs computed in float64 (torch_forward would round them to float32)."""
    import torch

    with torch.no_grad():
        out = source.double()(*[torch.from_numpy(x.astype(np.float64) if x.dtype == np.float32 else x) for x in xs])
    source.float()
    if hasattr(out, "to_tuple"):
        out = out.to_tuple()
    return [o.detach().numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]


def child(name: str, runs: int, ref_runs: int, interp_only: bool) -> dict:
    """One model's row."""
    import onnx.reference
    import onnxruntime
    import torch

    from trtnet.interpreter import Interpreter
    from trtnet.onnx.parse import parse_onnx
    from trtnet.parity import sample_inputs, torch_forward, torch_model
    from trtnet.zoo.registry import get_entry

    torch.set_num_threads(THREADS)
    source = torch_model(name, seed=0)
    specs = get_entry(name).skeleton().inputs()
    xs = sample_inputs(specs, 1, seed=1)
    feeds = {spec.name: x for spec, x in zip(specs, xs)}
    row: dict = {"model": name}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.onnx"
        with torch.no_grad():
            torch.onnx.export(
                _by_keyword(source, list(feeds)),
                tuple(torch.from_numpy(x) for x in xs),
                str(path),
                input_names=list(feeds),
                opset_version=17,
                dynamo=False,
                do_constant_folding=True,
            )
        row["torch_s"], want = _best(lambda: torch_forward(source, *xs), runs + 1)
        exact = _float64_forward(source, xs)
        row["torch_error"] = _error(want, exact)

        net = parse_onnx(path)
        row["layers"] = net.network.num_layers
        names = [t.name for t in net.outputs]
        first, got = _best(lambda: Interpreter(net.network).run(feeds), runs)
        prepared = Interpreter(net.network)
        prepared.run(feeds)
        row["interp_first_s"] = first
        row["interp_s"], got = _best(lambda: prepared.run(feeds), runs)
        row["interp_error"] = _error([got[n] for n in names], exact)
        if interp_only:
            return row

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        ort_feeds = {k: v for k, v in feeds.items() if k in {i.name for i in session.get_inputs()}}
        session.run(None, ort_feeds)
        row["ort_s"], ort_out = _best(lambda: session.run(None, ort_feeds), runs)
        row["ort_error"] = _error(ort_out, exact)

        ref = onnx.reference.ReferenceEvaluator(str(path))
        ref_feeds = {k: v for k, v in feeds.items() if k in ref.input_names}
        ref.run(None, ref_feeds)
        row["ref_s"], ref_out = _best(lambda: ref.run(None, ref_feeds), ref_runs)
        row["ref_error"] = _error(ref_out, exact)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=NINE)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each side (the fastest is kept)")
    parser.add_argument("--ref-runs", type=int, default=2, help="timed warm runs of onnx.reference (slow)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/torch threads on every side (default 1)")
    parser.add_argument(
        "--baseline", help="a git revision (or a folder holding a trtnet package) whose interpreter is timed too"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--interp-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.runs, args.ref_runs, args.interp_only)))
        return 0
    rows = []
    tmp = tempfile.TemporaryDirectory()
    base = None
    if args.baseline:  # a folder holding a trtnet package, or a git revision of this repository
        base = Path(args.baseline) if Path(args.baseline).is_dir() else tree_of(args.baseline, Path(tmp.name))
    print(
        "| model | layers | onnx.reference warm | onnxruntime | interpreter first call | interpreter warm | PyTorch "
        "| interp / PyTorch | errors vs float64: interp, onnxruntime, onnx.reference, PyTorch |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        cmd = [sys.executable, __file__, "--child", name, "--runs", str(args.runs), "--ref-runs", str(args.ref_runs)]
        proc = subprocess.run(cmd + ["--threads", str(THREADS)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"| {name} | failed: {(proc.stderr.strip().splitlines() or ['?'])[-1][:200]} |", flush=True)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        if base is not None:
            old = subprocess.run(
                cmd + ["--threads", str(THREADS), "--interp-only"],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": f"{base}{os.pathsep}{ROOT}"},
                cwd=tmp.name,
            )
            if old.returncode == 0:
                before = json.loads(old.stdout.strip().splitlines()[-1])
                row["before"] = {k: before[k] for k in ("interp_first_s", "interp_s", "interp_error")}
        rows.append(row)
        print(_line(row), flush=True)
    if rows:
        ratios = [r["interp_s"] / r["torch_s"] for r in rows]
        print(f"\nmedian interpreter warm / PyTorch: {statistics.median(ratios):.2f}x; worst {max(ratios):.2f}x")
        faster = sum(r["interp_first_s"] < r["ref_s"] for r in rows)
        print(f"interpreter first call faster than onnx.reference warm: {faster} of {len(rows)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def tree_of(rev: str, dest: Path) -> Path:
    """The trtnet package of git revision `rev`, extracted under `dest`."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "trtnet"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _line(r: dict) -> str:
    before = r.get("before")
    if before is not None:
        print(
            f"  ({r['model']} before: first call {before['interp_first_s']:.3f} s, warm {before['interp_s']:.3f} s, "
            f"error {before['interp_error']:.1e})",
            file=sys.stderr,
            flush=True,
        )
    return (
        f"| {r['model']} | {r['layers']} | {r['ref_s']:.3f} s | {r['ort_s']:.3f} s | {r['interp_first_s']:.3f} s "
        f"| {r['interp_s']:.3f} s | {r['torch_s']:.3f} s | {r['interp_s'] / r['torch_s']:.1f}x "
        f"| {r['interp_error']:.1e}, {r['ort_error']:.1e}, {r['ref_error']:.1e}, {r['torch_error']:.1e} |"
    )


if __name__ == "__main__":
    sys.exit(main())
