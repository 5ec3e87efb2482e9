"""The `trtnet` command: export weights from the PyTorch sources, build engines, verify, summarise, list.

    trtnet list
    trtnet export-weights resnet50 [-o weights/resnet50.safetensors] [--pretrained] [--seed N]
    trtnet build resnet50 [--weights F] [--batch 8 | --batch 1:8:32] [--precision fp16] [-o resnet50.plan]
    trtnet verify resnet50 [--weights F] [--batch 2] [--against-seed N | --against-pretrained]
    trtnet summary resnet50
    trtnet export-triton resnet50 --repo models [--batch 1:8:32] [--instances 2] [--name NAME] [--version V]
    trtnet convert swin_t swin_tiny_patch4_window7_224.pth [-o FILE] [--trust-pickle]

Exit status: 0 success, 1 a check failed, 2 bad usage or bad input, 3 a bug in trtnet (rerun with --debug for
the traceback). Errors are one line on stderr. Torch is imported only by `export-weights`, `verify`, `convert`.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from trtnet.errors import TrtnetError, WeightsError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_BUG = 0, 1, 2, 3

# The tolerances of `verify`, the same as the parity tests': the interpreter in fp32 against PyTorch fp32,
# an fp32 engine against PyTorch (TF32 off), and an fp16 engine by cosine similarity.
REFERENCE_REL_ERROR = 1e-4
ENGINE_FP32_REL_ERROR = 1e-3
ENGINE_FP16_COSINE = 0.999


class UsageError(Exception):
    """Bad usage, as argparse finds it: one line, and the command whose --help would explain."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised (as one line, handled in `main`), not printed as a usage block and
    an exit: `trtnet: error: ...` is the one error format, and main() returns its status in-process too."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message, self.prog)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script passes it to `sys.exit`)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        print(f"trtnet: error: {one_line(str(e))}", file=sys.stderr)
        print(f"trtnet: see `{e.prog} --help`", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        with warnings.catch_warnings():  # restores the caller's warning display when main() is called in-process
            warnings.showwarning = _show_warning
            return args.run(args)
    except KeyboardInterrupt:
        # True at any instant: outputs are replaced by a rename, a plan and its sidecar as one (Engine.save).
        print("trtnet: interrupted (no partial output was left behind)", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001  every error becomes one line; --debug adds the traceback
        if args.debug:  # what is printed changes, never the exit status
            traceback.print_exc(file=sys.stderr)
        status, message = _classify(e)
        print(f"trtnet: error: {one_line(message)}", file=sys.stderr)
        return status


def _classify(e: Exception) -> tuple[int, str]:
    """The exit status and message of an error: bad input (ours, or a path the OS refuses) or a bug."""
    if isinstance(e, TrtnetError):
        return EXIT_BAD_INPUT, str(e)
    if isinstance(e, OSError):  # an output folder that does not exist, a file that cannot be written
        return EXIT_BAD_INPUT, f"{e.filename}: {e.strerror or e}" if e.filename else str(e)
    return EXIT_BUG, f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback; please report it)"


def one_line(message: str, limit: int = 6) -> str:
    """A message of several lines (strict loading lists every key) as one: the first `limit` details, a count."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else message
    head, details = lines[0], lines[1:]
    more = f"; and {len(details) - limit} more" if len(details) > limit else ""
    return f"{head}: " + "; ".join(details[:limit]) + more


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"trtnet: warning: {one_line(str(message))}", file=sys.stderr)


# -- the commands ---------------------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    from trtnet.zoo import REGISTRY

    rows = [(e.name, e.source, "benchmark" if e.benchmark else "") for e in REGISTRY.values()]
    width = [max(len(r[i]) for r in rows + [("model", "PyTorch source", "")]) for i in range(2)]
    print(f"{'model'.ljust(width[0])}  PyTorch source")
    for name, source, mark in rows:
        print(f"{name.ljust(width[0])}  {source.ljust(width[1])}  {mark}".rstrip())
    return EXIT_OK


def cmd_export_weights(args: argparse.Namespace) -> int:
    from trtnet.parity import export_state, torch_model
    from trtnet.weights import load_weights, read_safetensors

    entry = _entry(args.model)
    out = Path(args.output or Path("weights") / f"{entry.name}.safetensors")
    if out.suffix != ".safetensors":
        raise TrtnetError(f"{out}: the output must be a .safetensors file")
    _require_torch("export-weights")
    if args.pretrained:
        source, what = _download(entry), "published weights"
    else:
        source, what = torch_model(entry.name, args.seed), f"random weights, seed {args.seed}"
    out.parent.mkdir(parents=True, exist_ok=True)
    export_state(source, out)
    tensors = len(read_safetensors(out))
    options = entry.pretrained_options if args.pretrained else {}
    # The file is only useful if trtnet's re-expression takes it as it is: check that now, not at build time.
    load_weights(entry.fn(weights=None, **options), out, check_finite="error")
    print(f"wrote {out}: {tensors} tensors, {out.stat().st_size / 2**20:.1f} MiB, {entry.source} with {what}; "
          f"loads strictly into trtnet's {entry.name}")
    if options:
        print(f"the published weights expect {_call(entry.name, options)}: build it that way from Python")
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    from trtnet.convert import convert

    done = convert(args.model, args.checkpoint, args.output, trust_pickle=args.trust_pickle)
    print(done.summary(args.model, Path(args.checkpoint)))
    return EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    import trtnet

    entry = _entry(args.model)
    model = _model(entry, args.weights, args.strict)
    out = Path(args.output or f"{entry.name}.plan")
    engine = trtnet.build(model, args.batch, precision=args.precision)
    engine.save(out)  # atomic: an interrupted build leaves nothing under `out`
    print(f"{engine.summary(f'{entry.name} {args.precision} batch {_batch_text(args.batch)}')} -> {out}")
    return EXIT_OK


def cmd_export_triton(args: argparse.Namespace) -> int:
    from trtnet.triton import check_request, export_triton

    entry = _entry(args.model)
    name = args.name or entry.name
    check_request(args.repo, name, version=args.version, instances=args.instances)  # before loading weights
    model = _model(entry, args.weights, args.strict)
    done = export_triton(model, args.repo, name, batch_size=args.batch, precision=args.precision,
                         version=args.version, instances=args.instances, dynamic_batching=args.dynamic_batching)
    print(f"{entry.name} {args.precision} batch {_batch_text(args.batch)}: {done.summary()}")
    return EXIT_OK


def cmd_summary(args: argparse.Namespace) -> int:
    import trtnet
    from trtnet.summary import summarize

    entry = _entry(args.model)
    model = _model(entry, args.weights, args.strict, quiet=True)
    net = trtnet.emit(model, args.batch, precision=args.precision)
    summary = summarize(net.network)
    print(f"{entry.name} ({entry.source}), batch {args.batch}, {args.precision}; inputs "
          + ", ".join(f"{s.name} {s.dtype}[{'x'.join(map(str, s.shape))}]" for s in net.inputs))
    print(summary.table())
    declared = sum(math.prod(p.shape) for _, p in model.named_parameters())
    print(f"the PyTorch source's state_dict holds {declared:,} parameters (BatchNorms folded into convolutions "
          "and constants the DSL adds make the network's count differ)")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    import trtnet
    from trtnet.parity import (export_state, load_into_source, rel_error, sample_inputs, torch_forward,
                               torch_model, weight_differences)

    against = args.against_pretrained or args.against_seed is not None
    if args.same_file and not args.weights:
        raise TrtnetError("--same-file needs --weights FILE")
    if args.same_file and against:
        raise TrtnetError("--same-file (now the default) and --against-seed/--against-pretrained exclude each other")
    entry = _entry(args.model)
    _require_torch("verify")
    seed = args.seed if args.against_seed is None else args.against_seed
    if args.against_pretrained:
        source, what = _download(entry), "published weights"
    else:
        source, what = torch_model(entry.name, seed), f"random weights, seed {seed}"
    options = entry.pretrained_options if args.against_pretrained else {}
    with tempfile.TemporaryDirectory(prefix="trtnet-verify-") as tmp:
        weights = args.weights or export_state(source, Path(tmp) / f"{entry.name}.safetensors")
        model = _model(entry, weights, args.strict, options=options)
        if args.weights and not against:
            # The user's question: does trtnet compute what PyTorch computes with these weights?
            layouts = load_into_source(source, model, args.weights, entry.source)
            read_as = f", converted from {', '.join(layouts)} layout" if layouts else ""
            print(f"weights: {args.weights}{read_as}, loaded by trtnet and by PyTorch")
            what = f"weights from {args.weights}"
        elif args.weights:
            print(f"weights: {args.weights}, compared with the source's {what}")
            print(f"  weights: {weight_differences(source, model)}")
        if options:
            print(f"trtnet's {_call(entry.name, options)}, as the published weights expect")
        print(f"verify {entry.name}: {entry.source} ({what}) against trtnet, batch {args.batch}")
        inputs = sample_inputs(model, args.batch, args.seed)
        want = torch_forward(source, *inputs)
        names = model.output_names(len(want))
        checks = [_check(f"reference fp32 {n}", "rel error", rel_error(g, w), REFERENCE_REL_ERROR)
                  for n, g, w in zip(names, trtnet.reference(model, *inputs), want)]
        gpu = _cuda_device()
        if gpu is None:
            print("  engine: not run: no CUDA GPU here (cuda-python found no device); the interpreter checked "
                  "the exact network the engine is built from")
        else:
            from trtnet.parity import cosine

            for precision in ("fp32", "fp16"):
                engine = trtnet.build(model, args.batch, precision=precision)
                got = engine(*inputs)
                for n, g, w in zip(names, got, want):
                    if precision == "fp32":
                        checks.append(_check(f"engine fp32 {n}", "rel error", rel_error(g, w), ENGINE_FP32_REL_ERROR))
                    else:
                        checks.append(_check(f"engine fp16 {n}", "cosine", cosine(g, w), ENGINE_FP16_COSINE,
                                             higher_is_better=True))
    failed = checks.count(False)
    print(f"{entry.name}: {'FAILED' if failed else 'passed'} ({len(checks) - failed} of {len(checks)} checks passed)")
    return EXIT_CHECK_FAILED if failed else EXIT_OK


def _check(label: str, measure: str, value: float, tolerance: float, higher_is_better: bool = False) -> bool:
    ok = value >= tolerance if higher_is_better else value <= tolerance  # NaN fails both ways
    sign = ">=" if higher_is_better else "<="
    print(f"  {label}: {measure} {value:.3g} (need {sign} {tolerance:g}) {'ok' if ok else 'FAILED'}")
    return ok


def _call(name: str, options: dict) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in options.items())})"


# -- shared pieces ----------------------------------------------------------------------------------------

def _entry(name: str):
    from trtnet.zoo import get_entry

    return get_entry(name)


def _model(entry, weights: str | os.PathLike | None, strict: bool, quiet: bool = False, options: dict | None = None):
    """The zoo model with `weights` loaded strictly; NaN/inf values warn, or are refused with `strict`."""
    from trtnet.weights import load_weights
    from trtnet.zoo.registry import mismatch_hint

    model = entry.fn(weights=None, **(options or {}))
    if weights is None:
        if not quiet:
            print(f"no --weights: {entry.name} gets seeded random weights (fine for timing, not for predictions)")
    else:
        load_weights(model, weights, check_finite="error" if strict else "warn", hint=mismatch_hint)
    return model


def _require_torch(command: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise TrtnetError(f"`trtnet {command}` needs PyTorch and the model's source library "
                          f"(pip install 'trtnet[test]'): {e}") from None


def _download(entry):
    """The source with its published weights, or a one-line error saying that it needs the network."""
    try:
        return entry.pretrained_model().eval()
    except TrtnetError:
        raise
    # The download stacks (urllib, requests, httpx, huggingface_hub) each raise their own exception types,
    # none of them a common base; whatever they raise means the same thing here.
    except Exception as e:  # noqa: BLE001
        detail = re.sub(r"\s+", " ", f"{type(e).__name__}: {e}")[:300]
        raise WeightsError(f"cannot download the published weights of {entry.name} ({entry.source}): {detail}. "
                           "--pretrained needs network access; elsewhere, run `trtnet export-weights "
                           f"{entry.name} --pretrained` and copy the file here") from e


def _cuda_device() -> str | None:
    """A CUDA device's description, or None where there is none (or no cuda-python)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        return None
    err, count = runtime.cudaGetDeviceCount()
    return f"{count} CUDA device(s)" if int(err) == 0 and count > 0 else None


def _batch(text: str) -> int | tuple[int, int, int]:
    """`8`, or `min:opt:max` for a dynamic batch."""
    parts = text.split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a batch size (8) or min:opt:max (1:8:32)") from None
    if len(values) not in (1, 3) or not all(1 <= v < 2**31 for v in values) or values != sorted(values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a batch size >= 1, or min:opt:max with "
                                         "1 <= min <= opt <= max (at most 2**31 - 1)")
    return values[0] if len(values) == 1 else (values[0], values[1], values[2])


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1 (at most 2**31 - 1)")
    return value


def _seed(text: str) -> int:
    """A seed torch and numpy both take: 0 <= seed < 2**63 (torch refuses more, numpy refuses negatives)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number from 0 to 2**63 - 1")
    return value


def _batch_text(batch: int | tuple[int, int, int]) -> str:
    return str(batch) if isinstance(batch, int) else ":".join(map(str, batch))


def _parser() -> argparse.ArgumentParser:
    from trtnet.graph import PRECISIONS

    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error (same exit status)")
    parser = _Parser(prog="trtnet", description=__doc__.split("\n\n")[0],
                                     epilog="exit status: 0 ok, 1 a check failed, 2 bad usage or input, 3 a bug")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(run=fn)
        return sub

    def weights_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--weights", metavar="FILE", help="a .safetensors state_dict (default: random weights)")
        sub.add_argument("--strict", action="store_true", help="refuse weights holding NaN or infinite values "
                         "(by default they warn)")

    command("list", cmd_list, "the zoo's models and their PyTorch sources")

    sub = command("export-weights", cmd_export_weights,
                  "write a model's PyTorch source state_dict as safetensors (needs torch)")
    sub.add_argument("model", help="a zoo name (see `trtnet list`)")
    sub.add_argument("-o", "--output", metavar="FILE", help="default: weights/MODEL.safetensors")
    sub.add_argument("--pretrained", action="store_true",
                     help="the published weights, downloaded by the source library (needs network access)")
    sub.add_argument("--seed", type=_seed, default=0, help="seed of the random weights (default 0)")

    sub = command("build", cmd_build, "build a TensorRT engine and save its plan")
    sub.add_argument("model", help="a zoo name (see `trtnet list`)")
    weights_options(sub)
    sub.add_argument("--batch", type=_batch, default=8, help="a batch size, or min:opt:max (default 8)")
    sub.add_argument("--precision", choices=PRECISIONS, default="fp16", help="default fp16")
    sub.add_argument("-o", "--output", metavar="FILE", help="the plan file (default: MODEL.plan)")

    sub = command("export-triton", cmd_export_triton, "build an engine and add it to a Triton Inference Server "
                  "model repository (DIR/NAME/config.pbtxt, DIR/NAME/VERSION/model.plan)")
    sub.add_argument("model", help="a zoo name (see `trtnet list`)")
    sub.add_argument("--repo", required=True, metavar="DIR", help="the model repository (created if missing)")
    weights_options(sub)
    sub.add_argument("--batch", type=_batch, default=(1, 8, 32),
                     help="min:opt:max for Triton's dynamic batching (default 1:8:32), or a fixed batch size")
    sub.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp16", help="default fp16")
    sub.add_argument("--instances", type=int, default=1, help="model instances per GPU (default 1)")
    sub.add_argument("--name", help="the model's name in the repository (default: MODEL)")
    sub.add_argument("--version", type=int, help="the version to add (default: the next free one)")
    sub.add_argument("--dynamic-batching", action=argparse.BooleanOptionalAction, default=None,
                     help="require (or refuse) Triton's dynamic batching; by default on where the engine's batch "
                     "range starts at 1")

    sub = command("verify", cmd_verify, "compare trtnet with the PyTorch source on the same weights and inputs "
                  "(the interpreter; the engine too where a GPU exists)")
    sub.add_argument("model", help="a zoo name (see `trtnet list`)")
    weights_options(sub)
    sub.add_argument("--batch", type=_positive, default=2, help="default 2")
    sub.add_argument("--seed", type=_seed, default=0,
                     help="seed of the inputs, and of the source's random weights without --weights (default 0)")
    against = sub.add_mutually_exclusive_group()
    against.add_argument("--against-seed", type=_seed, metavar="N",
                         help="PyTorch gets the source's random weights of seed N (as export-weights --seed N writes "
                         "them) instead of --weights: checks the file too, and names the tensors that differ")
    against.add_argument("--against-pretrained", "--pretrained", dest="against_pretrained", action="store_true",
                         help="PyTorch gets the source's published weights (needs network access); without --weights "
                         "trtnet loads them too")
    sub.add_argument("--same-file", action="store_true",
                     help="kept for old scripts, no effect: PyTorch loads --weights too by default now")

    sub = command("convert", cmd_convert, "a PyTorch checkpoint (.pt .pth .pth.tar .ckpt .bin) -> a safetensors "
                  "file the zoo entry loads (needs torch)")
    sub.add_argument("model", help="a zoo name (see `trtnet list`)")
    sub.add_argument("checkpoint", help="the file as you have it: a state_dict, or a training checkpoint holding one")
    sub.add_argument("-o", "--output", metavar="FILE", help="default: CHECKPOINT with the suffix .safetensors")
    sub.add_argument("--trust-pickle", action="store_true",
                     help="allow a full unpickle of this file when it holds objects, not only tensors (YOLOv5's .pt): "
                     "unpickling runs code the file names, so only for files from a source you trust")

    sub = command("summary", cmd_summary, "the network as a table: layers, output shapes, parameters, FLOPs")
    sub.add_argument("model", help="a zoo name (see `trtnet list`)")
    weights_options(sub)
    sub.add_argument("--batch", type=_positive, default=1, help="default 1")
    sub.add_argument("--precision", choices=PRECISIONS, default="fp32", help="default fp32")
    return parser
