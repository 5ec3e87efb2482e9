"""The interpreter against the other ways to run a network on the CPU: onnx.reference, onnxruntime, PyTorch.

For each of the nine benchmark models (the zoo's PyTorch source with seeded random weights,
`trtnet.parity.torch_model`, exported to ONNX at opset 17) and, with --sweep, each architecture of
scripts/interp_sweep.py (built and exported as that script does, opset 18), at batch 1, timed on the same inputs
and in one process per model:
- onnx.reference: onnx's own pure-numpy `ReferenceEvaluator` on the file, warm (the fastest of --runs after a
  first run);
- onnxruntime on the file (CPU provider, fastest of --runs after a first run);
- trtnet's interpreter on the network TensorRT's ONNX parser makes of the file: a first call (a fresh
  `Interpreter(network).run`, preparation included: what `trtnet check` users wait for), timed twice: in a new
  process that has done nothing but import trtnet and parse the file (the faster of two such processes: a user's
  `trtnet check`, whose memory is all fresh), and in the model's own process (the fastest of --runs fresh ones,
  and of it the preparation alone: `Interpreter(network)`); and warm (the same prepared network run again after
  two untimed runs, fastest of --runs);
- PyTorch eager, fp32 (fastest of --runs);
- of the interpreter's warm run, the time inside its float64 products (convolutions' and matrix products' BLAS
  calls, Winograd's 16 products among them, and depthwise sums), from one more run with those functions timed:
  what no other change can remove.
Each side's error is max |got - exact| / max |exact| over the outputs, against the source run in float64. One
BLAS/OpenMP/torch thread on every side (--threads). The fastest of several runs, because the machine may be
shared: the minimum is the run least disturbed. The header names the BLAS library and the kernel it runs
(threadpoolctl), which sets the products' speed: see docs/interpreter.md.

    PYTHONPATH=$PWD python scripts/interp_table.py --runs 3 --json table.json [--models resnet50 ...] [--sweep]
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


def _flat(out) -> list[np.ndarray]:
    """A module's outputs as arrays in their own dtype (float64 ones stay float64), in the ONNX export's order."""
    from interp_sweep import flat_outputs

    return [t.detach().numpy() for t in flat_outputs(out)]


def _forward(model, xs: list[np.ndarray]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        return _flat(model(*[torch.from_numpy(np.ascontiguousarray(x)) for x in xs]))


def _float64_forward(model, xs: list[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs computed in float64: the exact answer every side is measured against."""
    out = _forward(model.double(), [x.astype(np.float64) if x.dtype == np.float32 else x for x in xs])
    model.float()
    return out


def _source(name: str, sweep: bool):
    """The PyTorch module (taking its inputs positionally), its inputs by name, and the opset to export at."""
    if sweep:
        import interp_sweep

        model, feeds = interp_sweep.build(name)
        return model, feeds, 18
    from trtnet.parity import sample_inputs, torch_model
    from trtnet.zoo.registry import get_entry

    specs = get_entry(name).skeleton().inputs()
    xs = sample_inputs(specs, 1, seed=1)
    names = [spec.name for spec in specs]
    return _by_keyword(torch_model(name, seed=0), names), dict(zip(names, xs)), 17


def _file_float64(path: Path, feeds: dict) -> list[np.ndarray]:
    """The ONNX file's own answer in float64: every float tensor, cast and type of the graph widened to double,
    run by onnx.reference. The exporter rounds what it folds (BatchNorm into convolution weights) to float32, so
    the file is not quite the model; this is what the sides that compute the file should be measured against."""
    import onnx
    import onnx.reference
    from onnx import AttributeProto, TensorProto, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph

    def widen(tensor) -> None:
        if tensor.data_type == TensorProto.FLOAT:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float64), tensor.name))

    for tensor in graph.initializer:
        widen(tensor)
    for info in [*graph.input, *graph.output, *graph.value_info]:
        if info.type.tensor_type.elem_type == TensorProto.FLOAT:
            info.type.tensor_type.elem_type = TensorProto.DOUBLE
    for node in graph.node:
        for attribute in node.attribute:
            if node.op_type == "Cast" and attribute.name == "to" and attribute.i == TensorProto.FLOAT:
                attribute.i = TensorProto.DOUBLE
            if attribute.type == AttributeProto.TENSOR:
                widen(attribute.t)
    ref = onnx.reference.ReferenceEvaluator(model)
    wide = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in feeds.items() if k in ref.input_names}
    return ref.run(None, wide)


def _products_time(prepared, feeds: dict) -> float:
    """Seconds one warm run spends in the interpreter's float64 products: convolutions' BLAS calls and depthwise
    sums, matrix products and einsums (those functions wrapped with a timer for this one run)."""
    from trtnet.interpreter import conv, matrix, winograd
    from trtnet.interpreter._common import HANDLERS, Entry

    spent = [0.0]

    def timed(fn):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t0

        return run

    named = [(conv, "_grouped_gemm"), (conv, "_tapwise"), (winograd, "_products"), (matrix, "_matmul")]
    originals = [getattr(module, fn_name) for module, fn_name in named]
    einsum = HANDLERS["EINSUM"]  # a handler: looked up by the interpreter on each layer
    for (module, fn_name), fn in zip(named, originals):
        setattr(module, fn_name, timed(fn))
    HANDLERS["EINSUM"] = Entry(timed(einsum.fn), einsum.class_name)
    try:
        prepared.run(feeds)
    finally:
        for (module, fn_name), fn in zip(named, originals):
            setattr(module, fn_name, fn)
        HANDLERS["EINSUM"] = einsum
    return spent[0]


def child(name: str, runs: int, ref_runs: int, interp_only: bool, sweep: bool, file_exact: bool = False) -> dict:
    """One model's row."""
    import onnx.reference
    import onnxruntime
    import torch

    from trtnet.interpreter import Interpreter
    from trtnet.onnx.parse import parse_onnx

    torch.set_num_threads(THREADS)
    source, feeds, opset = _source(name, sweep)
    xs = list(feeds.values())
    row: dict = {"model": name}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.onnx"
        with torch.no_grad():
            torch.onnx.export(
                source,
                tuple(torch.from_numpy(x) for x in xs),
                str(path),
                input_names=list(feeds),
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        row["torch_s"], want = _best(lambda: _forward(source, xs), runs + 1)
        exact = _float64_forward(source, xs)
        row["torch_error"] = _error(want, exact)

        row["interp_new_process_s"] = _new_process_first_call(path, feeds)
        net = parse_onnx(path)
        row["layers"] = net.network.num_layers
        names = [t.name for t in net.outputs]
        feeds = {k: v for k, v in feeds.items() if k in {t.name for t in net.inputs}}
        first, got = _best(lambda: Interpreter(net.network).run(feeds), runs)
        prepared = Interpreter(net.network)
        prepared.run(feeds)
        prepared.run(feeds)  # the run that keeps its large weights widened (see WeightCache): warm from here on
        row["interp_first_s"] = first
        row["prepare_s"], _ = _best(lambda: Interpreter(net.network), runs)  # the first call's preparation alone
        row["interp_s"], got = _best(lambda: prepared.run(feeds), runs)
        row["interp_error"] = _error([got[n] for n in names], exact)
        try:
            row["products_s"] = _products_time(prepared, feeds)
        except (AttributeError, ImportError, KeyError):  # a --baseline interpreter laid out otherwise
            row["products_s"] = None
        if interp_only:
            return row

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        ort_feeds = {k: v for k, v in feeds.items() if k in {i.name for i in session.get_inputs()}}
        session.run(None, ort_feeds)
        row["ort_s"], ort_out = _best(lambda: session.run(None, ort_feeds), runs)
        row["ort_error"] = _error(ort_out, exact)
        if file_exact:  # each side against what it computes: the file (interpreter, onnxruntime), the model (PyTorch)
            own = _file_float64(path, feeds)
            row["file_vs_model"] = _error(own, exact)
            row["interp_error_file"] = _error([got[n] for n in names], own)
            row["ort_error_file"] = _error(ort_out, own)

        # The row so far, should onnx.reference take the process down (DeepLabV3's file: out of memory).
        print(
            json.dumps(
                {**row, "ref_s": None, "ref_error": None, "ref_failed": "Killed: the process ended while it ran"}
            ),
            flush=True,
        )
        try:
            ref = onnx.reference.ReferenceEvaluator(str(path))
            ref_feeds = {k: v for k, v in feeds.items() if k in ref.input_names}
            ref.run(None, ref_feeds)
        except Exception as err:  # noqa: BLE001  (onnx.reference cannot run every file: its row says why)
            row["ref_s"] = row["ref_error"] = None
            row["ref_failed"] = f"{type(err).__name__}: {err}"[:200]
            return row
        row["ref_s"], ref_out = _best(lambda: ref.run(None, ref_feeds), ref_runs)
        row["ref_error"] = _error(ref_out, exact)
    return row


# New processes timed for a first call each (the faster is kept): one such call varies by a third or more run to
# run, with how fast the kernel hands the process fresh memory.
NEW_PROCESSES = 2


def _new_process_first_call(path: Path, feeds: dict) -> float:
    """Seconds of `Interpreter(network).run(feeds)` in a new process that has only imported trtnet and parsed
    `path` (the faster of NEW_PROCESSES such processes)."""
    stored = path.with_suffix(".npz")
    np.savez(stored, **feeds)
    times = []
    for _ in range(NEW_PROCESSES):
        cmd = [sys.executable, __file__, "--threads", str(THREADS), "--first-call", str(path), str(stored)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        times.append(float(proc.stdout.strip().splitlines()[-1]))
    return min(times)


def first_call(path: Path, stored: Path) -> float:
    """The `--first-call` child: one `Interpreter(network).run` on the parsed file, timed."""
    from trtnet.interpreter import Interpreter
    from trtnet.onnx.parse import parse_onnx

    net = parse_onnx(path)
    with np.load(stored) as data:
        feeds = {name: data[name] for name in data.files}
    feeds = {k: v for k, v in feeds.items() if k in {t.name for t in net.inputs}}
    t0 = time.perf_counter()
    Interpreter(net.network).run(feeds)
    return time.perf_counter() - t0


def blas() -> str:
    """The BLAS library numpy runs and the kernel it chose (threadpoolctl), and any OPENBLAS_* override."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS: unknown (threadpoolctl is not installed)"
    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    said = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')} kernels)" for i in libs]
    forced = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")]
    return "BLAS: " + (", ".join(said) or "none found") + ("; set: " + ", ".join(forced) if forced else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=NINE, help="benchmark models (default: the nine)")
    parser.add_argument("--sweep", nargs="*", help="sweep architectures too (none named: all of interp_sweep.SWEEP)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each side (the fastest is kept)")
    parser.add_argument("--ref-runs", type=int, default=2, help="timed warm runs of onnx.reference (slow)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/torch threads on every side (default 1)")
    parser.add_argument(
        "--baseline", help="a git revision (or a folder holding a trtnet package) whose interpreter is timed too"
    )
    parser.add_argument(
        "--file-exact",
        action="store_true",
        help="also measure the interpreter and onnxruntime against the ONNX file's own float64 answer",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-sweep", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--interp-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first-call", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_call:
        print(first_call(*args.first_call))
        return 0
    if args.child:
        row = child(args.child, args.runs, args.ref_runs, args.interp_only, args.child_sweep, args.file_exact)
        print(json.dumps(row))
        return 0
    sweep: list[str] = []
    if args.sweep is not None:
        import interp_sweep

        sweep = args.sweep or list(interp_sweep.SWEEP)
        unknown = [n for n in sweep if n not in interp_sweep.SWEEP]
        if unknown:
            parser.error(f"not in interp_sweep.SWEEP: {', '.join(unknown)}")
    tmp = tempfile.TemporaryDirectory()
    base = None
    if args.baseline:  # a folder holding a trtnet package, or a git revision of this repository
        base = Path(args.baseline) if Path(args.baseline).is_dir() else tree_of(args.baseline, Path(tmp.name))
    print(f"{blas()}; {THREADS} thread(s) on every side; fastest of {args.runs} (onnx.reference: {args.ref_runs})")
    tables = {"benchmark": [(n, False) for n in args.models], "sweep": [(n, True) for n in sweep]}
    result: dict = {"blas": blas(), "threads": THREADS}
    for title, models in tables.items():
        if not models:
            continue
        print(f"\n{title}\n")
        print(
            "| model | layers | onnx.reference warm | onnxruntime | interpreter first call: new process, in process "
            "(of which preparation) | interpreter warm "
            "| of which products | PyTorch | warm / PyTorch | products / PyTorch "
            "| errors vs float64: interp, onnxruntime, onnx.reference, PyTorch |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        rows = result[title] = []
        for name, is_sweep in models:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                name,
                "--runs",
                str(args.runs),
                "--ref-runs",
                str(args.ref_runs),
            ]
            cmd += ["--threads", str(THREADS)] + (["--child-sweep"] if is_sweep else [])
            cmd += ["--file-exact"] if args.file_exact else []
            proc = subprocess.run(cmd, capture_output=True, text=True)
            said = [line for line in proc.stdout.splitlines() if line.startswith("{")]
            if proc.returncode != 0 and not said:
                print(f"| {name} | failed: {(proc.stderr.strip().splitlines() or ['?'])[-1][:200]} |", flush=True)
                continue
            row = json.loads(said[-1])
            if proc.returncode != 0:
                row["ref_failed"] = f"Killed: exit status {proc.returncode} while onnx.reference ran"
            if base is not None:
                old = subprocess.run(
                    cmd + ["--interp-only"],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONPATH": f"{base}{os.pathsep}{ROOT}{os.pathsep}{ROOT / 'scripts'}"},
                    cwd=tmp.name,
                )
                if old.returncode == 0:
                    before = json.loads(old.stdout.strip().splitlines()[-1])
                    kept = ("interp_new_process_s", "interp_first_s", "interp_s", "interp_error")
                    row["before"] = {k: before[k] for k in kept if k in before}
            rows.append(row)
            print(_line(row), flush=True)
        if rows:
            ratios = [r["interp_s"] / r["torch_s"] for r in rows]
            floors = [r["products_s"] / r["torch_s"] for r in rows if r.get("products_s") is not None]
            raced = [r for r in rows if r["ref_s"] is not None]
            faster = sum(r["interp_first_s"] < r["ref_s"] for r in raced)
            fresh = sum(r["interp_new_process_s"] < r["ref_s"] for r in raced)
            print(
                f"\n{title}: interpreter warm / PyTorch median {statistics.median(ratios):.2f}x, worst "
                f"{max(ratios):.2f}x; its products alone / PyTorch median "
                f"{statistics.median(floors) if floors else float('nan'):.2f}x; first call faster than "
                f"onnx.reference warm on {fresh} (new process) and {faster} (in process) of the {len(raced)} it runs"
            )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


def tree_of(rev: str, dest: Path) -> Path:
    """The trtnet package of git revision `rev`, extracted under `dest`."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "trtnet"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _aside(text: str) -> None:
    """A line about a row that is not part of the table, on stderr."""
    print(f"  ({text})", file=sys.stderr, flush=True)


def _line(r: dict) -> str:
    before = r.get("before")
    if before is not None:
        fresh = before.get("interp_new_process_s")
        _aside(
            f"{r['model']} before: first call {'-' if fresh is None else f'{fresh:.3f} s'} (new process), "
            f"{before['interp_first_s']:.3f} s (in process), warm {before['interp_s']:.3f} s, "
            f"error {before['interp_error']:.1e}"
        )
    failed = r.get("ref_failed")
    ref = f"fails ({failed.split(':')[0]})" if failed else f"{r['ref_s']:.3f} s"
    ref_error = "-" if failed else f"{r['ref_error']:.1e}"
    if failed:
        _aside(f"{r['model']}: onnx.reference: {failed}")
    if "file_vs_model" in r:
        _aside(
            f"{r['model']}: the file's float64 answer is {r['file_vs_model']:.1e} from the model's; against it "
            f"the interpreter is {r['interp_error_file']:.1e}, onnxruntime {r['ort_error_file']:.1e}"
        )
    products = r.get("products_s")
    spent, floor = ("-", "-") if products is None else (f"{products:.3f} s", f"{products / r['torch_s']:.1f}x")
    return (
        f"| {r['model']} | {r['layers']} | {ref} | {r['ort_s']:.3f} s | {r['interp_new_process_s']:.3f} s, "
        f"{r['interp_first_s']:.3f} s "
        f"({r['prepare_s']:.3f} s) "
        f"| {r['interp_s']:.3f} s | {spent} | {r['torch_s']:.3f} s "
        f"| {r['interp_s'] / r['torch_s']:.1f}x | {floor} "
        f"| {r['interp_error']:.1e}, {r['ort_error']:.1e}, {ref_error}, {r['torch_error']:.1e} |"
    )


if __name__ == "__main__":
    sys.exit(main())
