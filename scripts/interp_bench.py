"""Interpreter speed against PyTorch's CPU fp32 eager, on the nine benchmark models, at batch 1.

For each model: the PyTorch source with seeded random weights (trtnet.parity.torch_model), those weights saved
as safetensors and loaded into the zoo model, the network emitted once, then `run_network` timed against
`model(x)` under torch.no_grad(), both on the same input, in the same process, interleaved (the fastest of
--runs: the machine is shared, and the minimum is the run least disturbed). The interpreter runs a prepared
network (`Interpreter(network).run`, after one warm-up run that widens its weights to float64), as PyTorch runs
a model whose weights are already in memory in their compute format; revisions without `Interpreter` are
timed through `run_network`.
With --baseline REV the same is measured for the interpreter of git revision REV, in a child process whose
PYTHONPATH is that revision's tree, between this process's runs of the same model: the figures of one run.

    PYTHONPATH=$PWD python scripts/interp_bench.py --runs 3 --baseline dd48913 --json out.json [--threads 1]
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


from trtnet.bench.reference import POROS_A10  # noqa: E402

NINE = list(POROS_A10)  # the benchmark's nine models, in its order
ROOT = Path(__file__).resolve().parents[1]


def measure(name: str, runs: int, torch_too: bool) -> dict:
    """Seconds per run (median) of the interpreter and, with torch_too, of PyTorch; the error between them."""
    import torch

    from trtnet.parity import export_state, rel_error, sample_inputs, torch_forward, torch_model
    from trtnet.zoo.registry import get_entry

    try:
        from trtnet.builder.emit import emit
        from trtnet.interpreter import run_network
    except ImportError:  # a --baseline revision from before the builder.py and interpreter/ renames
        from trtnet.build import emit
        from trtnet.reference import run_network
    try:
        from trtnet.interpreter import Interpreter
    except ImportError:  # a --baseline revision from before prepared networks: each run prepares afresh
        Interpreter = None

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    source = torch_model(name, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_state(source, Path(tmp) / f"{name}.safetensors")
        model = get_entry(name).fn(weights=path)
    xs = sample_inputs(model, 1, seed=1)
    net = emit(model, 1)
    feeds = {i.name: x for i, x in zip(model.inputs(), xs)}
    want = torch_forward(source, *xs)  # also the warm-up of PyTorch
    if Interpreter is None:

        def run(values: dict) -> dict:
            return run_network(net.network, values)
    else:
        run = Interpreter(net.network).run
        run(feeds)  # the warm-up: weights widened to float64 once, as PyTorch's are in memory in float32
    interp, eager = [], []
    got = None
    for _ in range(runs):
        t0 = time.perf_counter()
        got = list(run(feeds).values())
        interp.append(time.perf_counter() - t0)
        if torch_too:
            t0 = time.perf_counter()
            torch_forward(source, *xs)
            eager.append(time.perf_counter() - t0)
    out = {
        "model": name,
        "layers": net.network.num_layers,
        "interp_s": min(interp),
        "error": rel_error(got[0], want[0]),
    }
    if torch_too:
        out["torch_s"] = min(eager)
    return out


def tree_of(rev: str, dest: Path) -> Path:
    """The trtnet package of git revision `rev`, extracted under `dest`."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "trtnet"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=NINE)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", help="a git revision whose interpreter is measured too")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/torch threads on both sides (default 1)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.runs, torch_too=False)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = tree_of(args.baseline, Path(tmp)) if args.baseline else None
        for name in args.models:
            row = measure(name, args.runs, torch_too=True)
            if base is not None:
                env = {**os.environ, "PYTHONPATH": str(base)}
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", name, "--runs", str(args.runs), "--threads", str(THREADS)],
                    env=env,
                    capture_output=True,
                    text=True,
                    cwd=tmp,
                )
                if proc.returncode == 0:
                    old = json.loads(proc.stdout.strip().splitlines()[-1])
                    row["before_s"], row["before_error"] = old["interp_s"], old["error"]
                else:
                    row["before_error_msg"] = proc.stderr.strip().splitlines()[-1][:200]
            rows.append(row)
            print(_line(row), flush=True)
    ratios = [r["interp_s"] / r["torch_s"] for r in rows]
    print(f"median interpreter/PyTorch: {statistics.median(ratios):.2f}x")
    if base is not None and all("before_s" in r for r in rows):
        print(f"median before/PyTorch: {statistics.median(r['before_s'] / r['torch_s'] for r in rows):.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def _line(r: dict) -> str:
    before = (
        f"  before {r['before_s']:.3f}s ({r['before_s'] / r['torch_s']:.1f}x, err {r['before_error']:.1e})"
        if "before_s" in r
        else ""
    )
    return (
        f"{r['model']:18s} layers {r['layers']:5d}  torch {r['torch_s']:.3f}s  interp {r['interp_s']:.3f}s "
        f"({r['interp_s'] / r['torch_s']:.1f}x, err {r['error']:.1e}){before}"
    )


if __name__ == "__main__":
    sys.exit(main())
