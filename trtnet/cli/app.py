"""The command line's frame: the parser, one-line errors and exit statuses; the commands are in commands.py and
verify.py."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence

from trtnet.cli import values
from trtnet.cli.cache_cmd import add_command as add_cache_command
from trtnet.cli.commands import (
    EXIT_BAD_INPUT,
    EXIT_BUG,
    EXIT_OK,
    cmd_build,
    cmd_calibrate,
    cmd_check,
    cmd_convert,
    cmd_export_triton,
    cmd_export_weights,
    cmd_list,
    cmd_summary,
    one_line,
)
from trtnet.cli.generate import add_command as add_generate_command
from trtnet.cli.inspect_plan import cmd_inspect
from trtnet.cli.onnx_route import add_check_options, add_shape_options
from trtnet.cli.settings import add_model_settings
from trtnet.cli.signals import Terminated, exit_now_if_build_cancelled, terminated_raises
from trtnet.cli.verify import cmd_verify
from trtnet.errors import TrtnetError

DESCRIPTION = "The `trtnet` command: export weights from the PyTorch sources, build engines, verify, summarise, list."


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
        # parse_known_args, so that an unknown option is said against its own command: the top-level parser
        # collects what no subparser took, and its --help does not list the subcommand's options.
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            raise UsageError(f"unrecognized arguments: {' '.join(unknown)}", f"trtnet {args.command}")
        if getattr(args, "reuse_calibration", False) and not getattr(args, "calibration", None):  # else ignored
            raise UsageError("--reuse-calibration needs the --calibration FILE it accepts", f"trtnet {args.command}")
    except UsageError as e:
        print(f"trtnet: error: {one_line(str(e))}", file=sys.stderr)
        print(f"trtnet: see `{e.prog} --help`", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SystemExit as e:  # --help and --version have printed what was asked: their status, in-process too
        return e.code if isinstance(e.code, int) else EXIT_OK
    try:
        with warnings.catch_warnings(), terminated_raises():  # both restored when main() is called in-process
            warnings.showwarning = _show_warning
            return args.run(args)
    except BrokenPipeError:  # what reads stdout went away (`trtnet list | head -1`): quiet, as Unix tools are
        _detach_stdout()
        return 141  # 128 + SIGPIPE (13), as a shell reports a writer that SIGPIPE ended
    except KeyboardInterrupt as e:
        # True at any instant: outputs are replaced by a rename, a plan and its sidecar as one (Engine.save).
        print("trtnet: interrupted (no partial output was left behind)", file=sys.stderr)
        status = 143 if isinstance(e, Terminated) else 130  # 128 + the signal, as a shell reports it
        exit_now_if_build_cancelled(status)
        return status
    except Exception as e:  # noqa: BLE001  every error becomes one line; --debug adds the traceback
        if args.debug:  # what is printed changes, never the exit status
            traceback.print_exc(file=sys.stderr)
        status, message = _classify(e)
        print(f"trtnet: error: {one_line(message)}", file=sys.stderr)
        return status


def _detach_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's own flush at exit does not fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # a stdout with no file behind it (main() called in-process)
        pass


def _classify(e: Exception) -> tuple[int, str]:
    """The exit status and message of an error: bad input (ours, or a path the OS refuses) or a bug."""
    if isinstance(e, TrtnetError):
        return EXIT_BAD_INPUT, str(e)
    if isinstance(e, MemoryError):  # shapes or batches too large for this machine (numpy says how large)
        return (
            EXIT_BAD_INPUT,
            f"out of memory: {str(e) or 'an allocation failed'} (smaller shapes or batches need less)",
        )
    if isinstance(e, OSError):  # an output folder that does not exist, a file that cannot be written
        return EXIT_BAD_INPUT, f"{e.filename}: {e.strerror or e}" if e.filename else str(e)
    return EXIT_BUG, f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback; please report it)"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"trtnet: warning: {one_line(str(message))}", file=sys.stderr)


OWN_MODEL_HELP = "a zoo name (see `trtnet list`), or a model of your own: path/to/file.py:NAME or package.module:NAME"
MODEL_HELP = OWN_MODEL_HELP + ", or an ONNX file (model.onnx, sized by --shapes)"


def _reuse_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--reuse-calibration",
        action="store_true",
        help="accept a calibration measured on other input shapes or weights (deliberate reuse)",
    )


def _parser() -> argparse.ArgumentParser:
    from trtnet.graph import PRECISIONS, QUANTIZED, UNQUANTIZED
    from trtnet.quant import CALIBRATION_METHODS

    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error (same exit status)")
    parser = _Parser(
        prog="trtnet",
        description=DESCRIPTION,
        epilog="exit status: 0 ok, 1 a check failed, 2 bad usage or input, 3 a bug",
    )
    from trtnet import __version__

    parser.add_argument("--version", action="version", version=f"trtnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(run=fn)
        return sub

    def weights_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--weights", metavar="FILE", help="a .safetensors state_dict (default: random weights)")
        sub.add_argument(
            "--strict", action="store_true", help="refuse weights holding NaN or infinite values (by default they warn)"
        )

    command("list", cmd_list, "the zoo's models and their PyTorch sources")

    sub = command(
        "export-weights", cmd_export_weights, "write a model's PyTorch source state_dict as safetensors (needs torch)"
    )
    sub.add_argument("model", help=OWN_MODEL_HELP)
    values.add_output(sub, "default: weights/MODEL.safetensors")
    sub.add_argument(
        "--pretrained",
        action="store_true",
        help="the published weights, downloaded by the source library (needs network access)",
    )
    sub.add_argument("--seed", type=values.seed, default=0, help="seed of the random weights (default 0)")

    sub = command("build", cmd_build, "build a TensorRT engine and save its plan")
    sub.add_argument("model", help=MODEL_HELP)
    weights_options(sub)
    sub.add_argument(
        "--batch",
        type=values.batch,
        help="a batch size, or min:opt:max (default 8; for an ONNX file, sizes an input whose only dynamic dim is "
        "the first)",
    )
    sub.add_argument(
        "--precision", choices=PRECISIONS, default="fp16", help="default fp16; int8 and fp8 need --calibration"
    )
    sub.add_argument("--calibration", metavar="FILE", help="activation ranges from `trtnet calibrate` (int8, fp8)")
    _reuse_option(sub)
    sub.add_argument(
        "--keep", nargs="+", action=values.Repeated, default=[], metavar="LAYER", help="int8/fp8: layers left in fp16"
    )
    sub.add_argument(
        "--min-cosine",
        type=float,
        metavar="C",
        help="int8/fp8: keep the fewest layers in fp16 that reach cosine C against fp32 on --data (e.g. 0.99)",
    )
    sub.add_argument(
        "--data",
        metavar="FILE.npz",
        help="sample inputs for --min-cosine (as calibrate --data); ranges are measured on them without --calibration",
    )
    sub.add_argument("--data-batch", type=values.positive, default=8, help="samples per interpreter run (default 8)")
    sub.add_argument("--no-cache", action="store_true", help="always build, and leave the engine cache alone")
    values.add_output(sub, "the plan file (default: MODEL.plan)")
    add_shape_options(sub)
    add_model_settings(sub)

    sub = command(
        "calibrate",
        cmd_calibrate,
        "measure activation ranges for int8/fp8 in the reference interpreter and write them as JSON",
    )
    sub.add_argument("model", help=OWN_MODEL_HELP + ", or an ONNX file (sized by the --data arrays)")
    weights_options(sub)
    sub.add_argument(
        "--data",
        metavar="FILE.npz",
        required=True,
        help="calibration inputs: arrays named after the model's inputs (or one array)",
    )
    sub.add_argument("--batch", type=values.positive, default=8, help="samples per interpreter run (default 8)")
    sub.add_argument("--method", choices=CALIBRATION_METHODS, default="max", help="default max")
    sub.add_argument("--percentile", type=float, help="for --method percentile (default 99.99)")
    sub.add_argument(
        "--precision",
        choices=QUANTIZED,
        default="int8",
        help="the format the ranges are for: mse optimises for it, entropy takes int8 only (default int8)",
    )
    sub.add_argument(
        "--keep",
        nargs="*",
        action=values.Repeated,
        default=["last"],
        metavar="LAYER",
        help="layers left in fp16: first, last, or layer names (default: last)",
    )
    values.add_output(sub, "default: MODEL.calibration.json")
    add_shape_options(sub, hidden=True)  # refused: the arrays of --data give the shapes
    add_model_settings(sub)

    sub = command(
        "export-triton",
        cmd_export_triton,
        "build an engine and add it to a Triton Inference Server "
        "model repository (DIR/NAME/config.pbtxt, DIR/NAME/VERSION/model.plan)",
    )
    sub.add_argument("model", nargs="?", help=MODEL_HELP + " (or --plan)")
    sub.add_argument(
        "--plan", metavar="FILE", help="add this saved plan (any precision, int8/fp8 included) instead of building"
    )
    sub.add_argument("--repo", required=True, metavar="DIR", help="the model repository (created if missing)")
    weights_options(sub)
    sub.add_argument(
        "--batch",
        type=values.batch,
        help="min:opt:max for Triton's dynamic batching (default 1:8:32), or a fixed batch size",
    )
    sub.add_argument("--precision", choices=UNQUANTIZED, help="default fp16")
    sub.add_argument("--instances", type=int, default=1, help="model instances per GPU (default 1)")
    sub.add_argument("--name", type=values.nonempty, help="the model's name in the repository (default: MODEL)")
    sub.add_argument("--version", type=int, help="the version to add (default: the next free one)")
    sub.add_argument(
        "--dynamic-batching",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="require (or refuse) Triton's dynamic batching; by default on where the engine's batch range starts at 1",
    )
    add_shape_options(sub)
    sub.add_argument(
        "--preferred-batch",
        type=values.positive,
        nargs="+",
        action=values.Repeated,
        metavar="N",
        help="the dynamic batcher's preferred batch sizes (default: the profile's opt and max)",
    )
    sub.add_argument(
        "--max-queue-delay-us",
        type=values.whole,
        metavar="US",
        help="how long the dynamic batcher may wait to fill a preferred batch, in microseconds (Triton's default 0)",
    )
    sub.add_argument(
        "--allow-rtx",
        action="store_true",
        help="write a TensorRT for RTX plan, which Triton's tensorrt backend cannot load (by default an error)",
    )
    add_model_settings(sub)

    sub = command(
        "verify",
        cmd_verify,
        "compare trtnet with the PyTorch source on the same weights and inputs "
        "(the interpreter; the engine too where a GPU exists)",
    )
    sub.add_argument("model", help=OWN_MODEL_HELP)
    weights_options(sub)
    sub.add_argument("--batch", type=values.positive, default=2, help="default 2")
    sub.add_argument(
        "--seed",
        type=values.seed,
        default=0,
        help="seed of the inputs, and of the source's random weights without --weights (default 0)",
    )
    against = sub.add_mutually_exclusive_group()
    against.add_argument(
        "--against-seed",
        type=values.seed,
        metavar="N",
        help="PyTorch gets the source's random weights of seed N (as export-weights --seed N writes "
        "them) instead of --weights: checks the file too, and names the tensors that differ",
    )
    against.add_argument(
        "--against-pretrained",
        "--pretrained",
        dest="against_pretrained",
        action="store_true",
        help="PyTorch gets the source's published weights (needs network access); without --weights "
        "trtnet loads them too",
    )
    add_model_settings(sub, only_seq_len=True)  # the PyTorch source is built with its defaults: only inputs vary
    sub.add_argument(
        "--layerwise",
        action="store_true",
        help="compare every module's output with the source's module of the same path, and name the first that "
        "departs (one interpreter run, one PyTorch run with forward hooks)",
    )
    sub.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="with --layerwise: compare the network in this precision with itself in fp32 and name the module "
        "where the error grows most (default fp32: against the PyTorch source)",
    )
    sub.add_argument("--calibration", metavar="FILE", help="with --precision int8/fp8: the ranges to build with")
    _reuse_option(sub)

    sub = command(
        "convert",
        cmd_convert,
        "a PyTorch checkpoint (.pt .pth .pth.tar .ckpt .bin) -> a safetensors file the zoo entry loads (needs torch)",
    )
    sub.add_argument("model", help=OWN_MODEL_HELP)
    sub.add_argument("checkpoint", type=values.path_text, help="the file as you have it (a state_dict or a checkpoint)")
    values.add_output(sub, "default: CHECKPOINT with the suffix .safetensors")
    sub.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow a full unpickle of this file when it holds objects, not only tensors (YOLOv5's .pt): "
        "unpickling runs code the file names, so only for files from a source you trust",
    )
    add_model_settings(sub)  # the sizes the checkpoint has: a decoder's --config, --num-classes

    sub = command(
        "inspect",
        cmd_inspect,
        "what a saved plan and its sidecar say: inputs, outputs, profile, precision, backend, target, size "
        "(no GPU needed)",
    )
    sub.add_argument("plan", metavar="FILE.plan", help="a plan saved by `trtnet build` (with its .json sidecar)")

    sub = command("summary", cmd_summary, "the network as a table: layers, output shapes, parameters, FLOPs")
    sub.add_argument("model", help=MODEL_HELP)
    weights_options(sub)
    sub.add_argument(
        "--batch",
        type=values.positive,
        help="default 1 (for an ONNX file, sizes an input whose only dynamic dim is the first)",
    )
    sub.add_argument(
        "--precision", choices=PRECISIONS, default="fp32", help="default fp32; int8 and fp8 need --calibration"
    )
    sub.add_argument("--calibration", metavar="FILE", help="activation ranges from `trtnet calibrate` (int8, fp8)")
    _reuse_option(sub)
    add_shape_options(sub)
    add_model_settings(sub)

    sub = command(
        "check",
        cmd_check,
        "run the network TensorRT's ONNX parser makes of MODEL.onnx in the interpreter "
        "and compare it with onnxruntime (exit 1 beyond tolerance)",
    )
    sub.add_argument("model", type=values.path_text, help="an ONNX file")
    sub.add_argument("--inputs", metavar="NPZ", help="an .npz named like the network's inputs (default: random)")
    sub.add_argument(
        "--layerwise",
        action="store_true",
        help="compare every intermediate tensor the two share and name the first layer that departs",
    )
    sub.add_argument("--seed", type=values.seed, help="seed of the random inputs (default 0; not with --inputs)")
    add_check_options(sub)

    add_generate_command(command, weights_options)  # trtnet/cli/generate.py
    add_cache_command(command)  # trtnet/cli/cache_cmd.py
    values.refuse_empty_paths(parser)  # `--weights ''` was read as the current folder, `--calibration ''` as none
    return parser
