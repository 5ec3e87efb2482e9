"""The command line's ONNX route: wherever a MODEL is taken, `path/model.onnx` is one. Its dynamic dims are sized
by trtexec's flags (`--shapes`, `--min-shapes/--opt-shapes/--max-shapes`, see trtnet/onnx/shapes.py), its
precision by `--precision` (fp32, tf32, fp16, bf16: see trtnet/onnx/precision.py; int8, fp8 with the --calibration
that `trtnet calibrate model.onnx --data FILE.npz` writes: see trtnet/onnx/quantize.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from trtnet.cli.outputs import refuse_overwriting_inputs
from trtnet.cli.values import Repeated
from trtnet.errors import TrtnetError
from trtnet.fileio import output_folder
from trtnet.onnx.shapes import quote_name

SHAPES_HELP = "an ONNX MODEL's input shapes, trtexec's spelling: NAME:1x3x640x640[,NAME2:...], 'NAME,WITH,COMMAS':1x3"


def is_onnx(spec: str) -> bool:
    """Whether a MODEL argument names an ONNX file (by its suffix, as trtexec's --onnx= does by flag)."""
    return spec.lower().endswith(".onnx")


class _Joined(argparse.Action):
    """A shapes flag given again adds its inputs to the first's (`--shapes a:1x3 --shapes b:1x4`), as one list
    joined by ',' would; the last one alone was kept before, the others dropped without a word."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        before = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, values if before is None else f"{before},{values}")


def add_shape_options(sub: argparse.ArgumentParser, profile: bool = True, hidden: bool = False) -> None:
    """--shapes, and with `profile` --min-shapes/--opt-shapes/--max-shapes; `hidden`: taken (so that the command
    can say why it refuses them) but not listed in --help. Each may be given more than once (see `_Joined`)."""
    sub.add_argument(
        "--shapes",
        action=_Joined,
        metavar="SHAPES",
        help=argparse.SUPPRESS if hidden else SHAPES_HELP + " (fixed shapes)",
    )
    if profile:
        for which in ("min", "opt", "max"):
            said = f"the profile's {which} shapes of an ONNX MODEL's inputs"
            sub.add_argument(
                f"--{which}-shapes", action=_Joined, metavar="SHAPES", help=argparse.SUPPRESS if hidden else said
            )


def shapes_of(args: argparse.Namespace):
    """The `shapes` mapping the flags give (None when none was given)."""
    from trtnet.onnx.shapes import shapes_from_flags

    return shapes_from_flags(
        args.shapes,
        getattr(args, "min_shapes", None),
        getattr(args, "opt_shapes", None),
        getattr(args, "max_shapes", None),
    )


def refuse_model_options(args: argparse.Namespace) -> None:
    """Options that belong to trtnet's own models (their weights) mean nothing for an ONNX file: refused, not
    silently ignored."""
    if getattr(args, "weights", None):
        raise TrtnetError(f"{args.model}: --weights is for trtnet's models; an ONNX file holds its own weights")
    settings = [
        "--" + name.replace("_", "-")
        for name in ("config", "seq_len", "image_size", "num_classes", "transform_input")
        if getattr(args, name, None) is not None
    ] + (["--set"] if getattr(args, "settings", None) else [])
    if settings:
        raise TrtnetError(f"{args.model}: {', '.join(settings)} configure trtnet's models; an ONNX file is as exported")


def require_no_shapes(args: argparse.Namespace) -> None:
    """A zoo or DSL model is sized by --batch: shape flags given to one are refused."""
    given = [f for f in ("shapes", "min_shapes", "opt_shapes", "max_shapes") if getattr(args, f, None)]
    if given:
        flags = ", ".join("--" + f.replace("_", "-") for f in given)
        raise TrtnetError(f"{args.model}: {flags} size an ONNX file's inputs; a zoo or DSL model takes --batch")


def onnx_network(args: argparse.Namespace, precision: str):
    from trtnet.onnx.parse import parse_onnx

    refuse_model_options(args)
    calibration = getattr(args, "calibration", None)
    if precision in ("int8", "fp8") and not calibration:
        raise TrtnetError(
            f"{args.model}: --precision {precision} needs --calibration FILE (from `trtnet calibrate {args.model} "
            "--data FILE.npz`)"
        )
    if calibration and precision not in ("int8", "fp8"):
        raise TrtnetError(f"{args.model}: --calibration is for --precision int8 or fp8, not {precision}")
    batch = getattr(args, "batch", None)  # given: the short form of --shapes for a dynamic first dim only
    return parse_onnx(
        args.model,
        batch,
        shapes=shapes_of(args),
        precision=precision,
        calibration=calibration,
        reuse_calibration=getattr(args, "reuse_calibration", False),
    )


def _profile_text(net) -> str:
    parts = []
    for s in net.inputs:
        lo, hi = s.shape_range()
        shape = "x".join(map(str, s.shape))
        name = quote_name(s.name)  # as --shapes reads it back
        parts.append(
            f"{name}:{shape}" if lo == hi else f"{name}:{'x'.join(map(str, lo))}..{shape}..{'x'.join(map(str, hi))}"
        )
    return ",".join(parts)


def build_onnx(args: argparse.Namespace) -> int:
    import trtnet
    from trtnet.runtime.plan import sidecar_path

    out = Path(args.output or Path(args.model).with_suffix(".plan").name)
    # Before the parse and the build: `-o model.onnx` replaced the model with the plan.
    refuse_overwriting_inputs(args, {"the plan": out, "the engine metadata": sidecar_path(out)})
    net = onnx_network(args, args.precision)
    out = output_folder(out, "the plan")
    engine = trtnet.build(net, cache=not args.no_cache)
    engine.save(out)  # atomic: an interrupted build leaves nothing under `out`
    print(f"{engine.summary(f'{Path(args.model).name} {args.precision} {_profile_text(net)}')} -> {out}")
    return 0


def summary_onnx(args: argparse.Namespace) -> int:
    from trtnet.summary import summarize

    net = onnx_network(args, args.precision)
    print(
        f"{args.model} (ONNX), {args.precision}; inputs "
        + ", ".join(f"{s.name} {s.dtype}[{s.allowed()[1:-1].replace(', ', 'x')}]" for s in net.inputs)
    )
    print(summarize(net.network).table())
    return 0


def export_triton_onnx(args: argparse.Namespace, batching: dict) -> int:
    """`export-triton MODEL.onnx`: the file built at its shapes (default fp16, as for trtnet's models)."""
    import trtnet
    from trtnet.backend import get_backend
    from trtnet.export.triton import check_loadable, check_request, export_engine

    name = args.name or Path(args.model).stem
    check_request(args.repo, name, version=args.version, instances=args.instances)
    if not args.allow_rtx:
        check_loadable(str(get_backend()), name)
    if args.batch is not None:
        raise TrtnetError(f"{args.model}: --batch sizes trtnet's models; an ONNX file's inputs take --shapes")
    precision = args.precision or "fp16"
    net = onnx_network(args, precision)
    engine = trtnet.build(net)
    done = export_engine(engine, args.repo, name, **batching)
    print(f"{Path(args.model).name} {precision} {_profile_text(net)}: {done.summary()}")
    return 0


def calibrate_onnx(args: argparse.Namespace) -> int:
    from trtnet.onnx.calibrate import calibrate_onnx as measure

    refuse_model_options(args)
    given = [f for f in ("shapes", "min_shapes", "opt_shapes", "max_shapes") if getattr(args, f, None)]
    if given:
        raise TrtnetError(
            f"{args.model}: calibrate takes its shapes from the arrays of --data, not from --{given[0].replace('_', '-')}"
        )
    out = Path(args.output or Path(args.model).with_suffix(".calibration.json").name)
    refuse_overwriting_inputs(args, {"the calibration": out})
    out = output_folder(out, "the calibration")
    cal = measure(
        args.model,
        args.data,
        batch=args.batch,
        method=args.method,
        percentile=percentile_of(args),
        precision=args.precision,
        keep=tuple(args.keep),
    )
    cal.save(out)  # atomic
    print(
        f"{Path(args.model).name}: {len(cal.amax)} ranges ({cal.method}) from {cal.meta['samples']} samples in "
        f"{cal.meta['batches']} batches; {len(cal.keep)} layers kept in fp16 -> {out}"
    )
    return 0


def percentile_of(args: argparse.Namespace) -> float:
    """`--percentile`, which only `--method percentile` reads: given with another method it would be ignored."""
    if args.percentile is None:
        return 99.99
    if args.method != "percentile":
        raise TrtnetError(f"--percentile {args.percentile:g} is for --method percentile, not --method {args.method}")
    return args.percentile


def tolerances(items: list[str] | None, flag: str) -> dict[str, float] | None:
    """Polygraphy's spelling: `--rtol 1e-3` for every output, `--rtol out0:1e-2` for one; "" keys the default."""
    if not items:
        return None
    out: dict[str, float] = {}
    for item in items:
        name, colon, value = item.rpartition(":")
        if colon and not name:  # ":0.1" is not the default's spelling ("0.1" is): an output's name left out
            raise TrtnetError(
                f"{flag} {item!r}: the output's name before ':' is empty (a bare number is every output's)"
            )
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not number >= 0 or number == float("inf"):
            raise TrtnetError(f"{flag} {item!r}: expected a number >= 0 (1e-3), or OUTPUT:NUMBER (out0:1e-3)")
        if name in out:
            raise TrtnetError(f"{flag} gives {'output ' + repr(name) if name else 'the default'} twice")
        out[name] = number
    return out


def add_check_options(sub: argparse.ArgumentParser) -> None:
    """check's Polygraphy-like options: shapes, tolerances, saved arrays."""
    add_shape_options(sub, profile=False)
    for flag, what in (("--atol", "absolute"), ("--rtol", "relative")):
        sub.add_argument(
            flag,
            nargs="+",
            action=Repeated,
            metavar="[OUTPUT:]TOL",
            help=f"{what} tolerance, elementwise |a-b| <= atol + rtol*|b| (Polygraphy's meaning); per output as "
            "OUTPUT:TOL; default from the network's compute type",
        )
    sub.add_argument("--save-inputs", metavar="NPZ", help="write the inputs used as an .npz")
    sub.add_argument("--save-outputs", metavar="NPZ", help="write the interpreter's outputs as an .npz")
    sub.add_argument(
        "--load-outputs",
        metavar="NPZ",
        help="compare with these outputs (a GPU engine's, another runtime's) instead of onnxruntime",
    )
    sub.add_argument(
        "--no-arbiter",
        dest="arbitrate",
        action="store_false",
        help="where the two disagree, do not evaluate the model in float64 to say which side departs",
    )


def check(args: argparse.Namespace) -> int:
    from trtnet.onnx.check import check_onnx
    from trtnet.onnx.shapes import parse_shapes_text

    if args.seed is not None and args.inputs is not None:  # the seed would draw nothing: say so, not ignore it
        raise TrtnetError(f"--seed draws random inputs and --inputs {args.inputs} gives them: use one or the other")
    report = check_onnx(
        args.model,
        args.inputs,
        shapes=parse_shapes_text(args.shapes) if args.shapes else None,
        atol=tolerances(args.atol, "--atol"),
        rtol=tolerances(args.rtol, "--rtol"),
        layerwise=args.layerwise,
        seed=0 if args.seed is None else args.seed,
        save_inputs=args.save_inputs,
        save_outputs=args.save_outputs,
        load_outputs_from=args.load_outputs,
        arbitrate=args.arbitrate,
    )
    print("\n".join(report.lines()))
    return 0 if report.ok else 1
