"""The commands of the `trtnet` command line but `verify` (verify.py), and the pieces they share. Each takes the
parsed arguments and returns an exit status; errors are raised and made one line by app.main."""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path

from trtnet.cli.outputs import refuse_overwriting_inputs
from trtnet.errors import TrtnetError, WeightsError
from trtnet.fileio import output_folder
from trtnet.words import counted

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_BUG = 0, 1, 2, 3


def one_line(message: str, limit: int = 6) -> str:
    """A message of several lines (strict loading lists every key) as one: the first `limit` details, a count."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else message
    head, details = lines[0], lines[1:]
    more = f"; and {len(details) - limit} more" if len(details) > limit else ""
    return f"{head.rstrip(':')}: " + "; ".join(details[:limit]) + more  # a head may end in its own colon


def cmd_check(args: argparse.Namespace) -> int:
    from trtnet.cli.onnx_route import check

    return check(args)  # trtnet/cli/onnx_route.py


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
    from trtnet.weights import load_weights

    ref = _ref(args.model)
    entry = ref.require_entry("export-weights")
    out = Path(args.output or Path("weights") / f"{entry.name}.safetensors")
    if out.suffix != ".safetensors":
        raise TrtnetError(f"{out}: the output must be a .safetensors file")
    _require_torch("export-weights")
    output_folder(out, "the weights", WeightsError)  # before a download or a build the output could not hold
    if args.pretrained:
        source, what = _download(entry), "published weights"
    else:
        source, what = torch_model(entry.name, args.seed), f"random weights, seed {args.seed}"
    options = entry.pretrained_options if args.pretrained else {}

    def loads(written: Path) -> None:  # the file is only useful if trtnet's re-expression takes it as it is
        try:
            load_weights(ref.make(**options), written, check_finite="error")
        except WeightsError as e:  # said of the output, not of its temporary
            raise WeightsError(str(e).replace(str(written), str(out))) from None

    export_state(source, out, check=loads)  # a file that does not load is not left under `out`, nor replaces it
    tensors = len(source.state_dict())
    print(
        f"wrote {out}: {counted(tensors, 'tensor')}, {out.stat().st_size / 2**20:.1f} MiB, {entry.source} with {what}; "
        f"loads strictly into trtnet's {entry.name}"
    )
    if options:
        print(f"the published weights expect {_call(entry.name, options)}: build it that way from Python")
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    from trtnet.cli.settings import model_options
    from trtnet.export.convert import convert

    ref = _ref(args.model)
    name = ref.require_entry("convert").name  # a user's file registers its entry as it runs
    options = model_options(ref, args)  # the sizes the checkpoint was trained at (a decoder's config.json)
    done = convert(name, args.checkpoint, args.output, trust_pickle=args.trust_pickle, options=options)
    print(done.summary(name, Path(args.checkpoint)))
    return EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    import trtnet
    from trtnet.cli.onnx_route import build_onnx, is_onnx, require_no_shapes
    from trtnet.quant.calibrate import load_batches
    from trtnet.runtime.plan import sidecar_path

    if is_onnx(args.model):  # the ONNX route: trtnet/cli/onnx_route.py
        if args.keep or args.min_cosine is not None or args.data:
            raise TrtnetError(f"{args.model}: --keep, --min-cosine and --data work on trtnet models, not ONNX files")
        return build_onnx(args)
    require_no_shapes(args)
    ref = _ref(args.model)
    model = _configured(ref, args)
    batch = 8 if args.batch is None else args.batch
    out = Path(args.output or f"{ref.name}.plan")
    refuse_overwriting_inputs(args, {"the plan": out, "the engine metadata": sidecar_path(out)})
    if args.min_cosine is not None and not args.data:
        raise TrtnetError(f"--min-cosine {args.min_cosine:g} needs --data FILE.npz (sample inputs to measure on)")
    if args.data and args.min_cosine is None:
        raise TrtnetError(f"--data {args.data} is for --min-cosine (ranges alone: `trtnet calibrate --data`)")
    if (args.keep or args.min_cosine is not None) and args.precision not in ("int8", "fp8"):
        option = "--keep" if args.keep else "--min-cosine"
        raise TrtnetError(f"{option}: --precision {args.precision} quantizes no layer (only int8 and fp8 do)")
    if args.precision in ("int8", "fp8") and not args.calibration and args.min_cosine is None:
        raise TrtnetError(
            f"--precision {args.precision} needs --calibration FILE (from `trtnet calibrate`), or --min-cosine C "
            "with --data FILE.npz"
        )
    _require_calibration(args.precision, args.calibration, needed=False)
    output_folder(out, "the plan")
    engine = trtnet.build(
        model,
        batch,
        precision=args.precision,
        calibration=args.calibration,
        reuse_calibration=args.reuse_calibration,
        cache=not args.no_cache,
        keep=tuple(args.keep),
        min_cosine=args.min_cosine,
        calibration_data=None if args.data is None else load_batches(model, args.data, args.data_batch),
    )
    engine.save(out)  # atomic: an interrupted build leaves nothing under `out`
    print(f"{engine.summary(f'{ref.name} {args.precision} batch {_batch_text(batch)}')} -> {out}")
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from trtnet.cli.onnx_route import calibrate_onnx, is_onnx, percentile_of, require_no_shapes
    from trtnet.quant.calibrate import calibrate_file, check_method

    check_method(args.method, args.precision, percentile_of(args))  # before the model and the data are read
    if is_onnx(args.model):  # the ONNX route: trtnet/cli/onnx_route.py
        return calibrate_onnx(args)
    require_no_shapes(args)
    ref = _ref(args.model)
    model = _configured(ref, args)
    out = Path(args.output or f"{ref.name}.calibration.json")
    refuse_overwriting_inputs(args, {"the calibration": out})
    out = output_folder(out, "the calibration")
    cal = calibrate_file(
        model,
        args.data,
        args.batch,
        method=args.method,
        percentile=percentile_of(args),
        precision=args.precision,
        keep=tuple(args.keep),
    )
    cal.save(out)  # atomic
    print(
        f"{ref.name}: {counted(len(cal.amax), 'range')} ({cal.method}) from {counted(cal.meta['samples'], 'sample')} "
        f"in {counted(cal.meta['batches'], 'batch', 'batches')}; {counted(len(cal.keep), 'layer')} kept in fp16 -> {out}"
    )
    return EXIT_OK


def cmd_export_triton(args: argparse.Namespace) -> int:
    from trtnet.cli.onnx_route import export_triton_onnx, is_onnx, require_no_shapes
    from trtnet.export.triton import check_request, export_triton

    batching = dict(
        version=args.version,
        instances=args.instances,
        dynamic_batching=args.dynamic_batching,
        preferred_batch=args.preferred_batch,
        max_queue_delay_us=args.max_queue_delay_us,
        allow_rtx=args.allow_rtx,
    )
    if args.plan is not None:
        return _export_plan(args, batching)
    if args.model is None:
        raise TrtnetError("export-triton needs a MODEL to build, or --plan FILE (a saved plan)")
    if is_onnx(args.model):  # the ONNX route: trtnet/cli/onnx_route.py
        return export_triton_onnx(args, batching)
    require_no_shapes(args)
    ref = _ref(args.model)
    name = args.name or ref.name
    check_request(args.repo, name, version=args.version, instances=args.instances)  # before loading weights
    if not args.allow_rtx:
        from trtnet.backend import get_backend
        from trtnet.cli.settings import model_options
        from trtnet.export.triton import check_loadable

        model_options(ref, args)  # a bad setting is named first; then the backend's limits, before any weights
        check_loadable(str(get_backend()), name)
    model = _configured(ref, args)
    batch, precision = args.batch or (1, 8, 32), args.precision or "fp16"
    done = export_triton(model, args.repo, name, batch_size=batch, precision=precision, **batching)
    print(f"{ref.name} {precision} batch {_batch_text(batch)}: {done.summary()}")
    return EXIT_OK


def _export_plan(args: argparse.Namespace, batching: dict) -> int:
    """`export-triton --plan FILE`: a saved plan as it is (no GPU, no build), so nothing that builds may be given."""
    from trtnet.export.triton import export_engine
    from trtnet.runtime.plan import Plan

    building = [
        option
        for option, value in (
            ("MODEL", args.model),
            ("--weights", args.weights),
            ("--batch", args.batch),
            ("--precision", args.precision),
            ("--config", args.config),
            ("--seq-len", args.seq_len),
            ("--image-size", args.image_size),
            ("--num-classes", args.num_classes),
            ("--transform-input", args.transform_input),
            ("--set", args.settings or None),
            ("--strict", args.strict or None),
            ("--shapes", args.shapes or None),
            ("--min-shapes", args.min_shapes or None),
            ("--opt-shapes", args.opt_shapes or None),
            ("--max-shapes", args.max_shapes or None),
        )
        if value is not None
    ]
    if building:
        raise TrtnetError(
            f"--plan {args.plan}: the plan is exported as it was built; {', '.join(building)} would build "
            "another (leave them out, or build with MODEL instead of --plan)"
        )
    plan = Plan.load(args.plan, check_backend=False)  # built elsewhere, for the TensorRT of the Triton that serves it
    name = args.name or Path(args.plan).name.split(".")[0]
    done = export_engine(plan, args.repo, name, **batching)
    print(f"{args.plan} ({plan.precision}, {plan.backend}): {done.summary()}")
    return EXIT_OK


def cmd_summary(args: argparse.Namespace) -> int:
    import trtnet
    from trtnet.cli.onnx_route import is_onnx, require_no_shapes, summary_onnx
    from trtnet.summary import summarize

    if is_onnx(args.model):  # the ONNX route: trtnet/cli/onnx_route.py
        return summary_onnx(args)
    require_no_shapes(args)
    ref = _ref(args.model)
    _require_calibration(args.precision, args.calibration)
    model = _configured(ref, args, quiet=True)
    batch = 1 if args.batch is None else args.batch
    net = trtnet.emit(
        model, batch, precision=args.precision, calibration=args.calibration, reuse_calibration=args.reuse_calibration
    )
    summary = summarize(net.network)
    print(
        f"{ref.name} ({ref.source}), batch {batch}, {args.precision}{_ranges_text(net)}; inputs "
        + ", ".join(f"{s.name} {s.dtype}[{'x'.join(map(str, s.shape))}]" for s in net.inputs)
    )
    print(summary.table())
    declared = sum(math.prod(p.shape) for _, p in model.named_parameters())
    print(
        f"its weights, named by the PyTorch source's state_dict keys, hold {declared:,} values (BatchNorms folded "
        "into convolutions and constants the DSL adds make the network's count differ)"
    )
    return EXIT_OK


def _ranges_text(net) -> str:
    cal = net.policy.calibration if net.policy is not None else None
    if cal is None:
        return ""
    return f" ({counted(len(cal.amax), 'range')} from {cal.source or 'a calibration'}, {counted(len(cal.keep), 'layer')} kept in fp16)"


def _require_calibration(precision: str, calibration: str | None, needed: bool = True) -> None:
    """Refuse --calibration with a precision that uses no ranges, and (`needed`) int8/fp8 without it."""
    if needed and precision in ("int8", "fp8") and not calibration:
        raise TrtnetError(f"--precision {precision} needs --calibration FILE (from `trtnet calibrate`)")
    if calibration and precision not in ("int8", "fp8"):
        raise TrtnetError(
            f"--calibration {calibration}: --precision {precision} uses no activation ranges "
            "(only int8 and fp8 do); drop --calibration or choose --precision int8"
        )


def _call(name: str, options: dict) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in options.items())})"


# -- shared pieces ----------------------------------------------------------------------------------------


def _ref(spec: str):
    """What MODEL names: a zoo entry, FILE.py:NAME or package.module:NAME (see trtnet/cli/model_ref.py)."""
    from trtnet.cli.model_ref import resolve

    return resolve(spec)


def _model(
    ref,
    weights: str | os.PathLike | None,
    strict: bool,
    quiet: bool = False,
    options: dict | None = None,
    layouts: list[str] | None = None,
):
    """The model with `weights` loaded strictly; NaN/inf values warn, or are refused with `strict`. The layouts
    the file was converted from are appended to `layouts` when given."""
    from trtnet.weights import load_weights
    from trtnet.zoo.registry import mismatch_hint

    model = ref.make(**(options or {}))
    if weights is None:
        if not quiet:
            what = "seeded random weights" if ":" not in ref.spec else f"the weights {ref.name}(weights=None) gives"
            print(f"no --weights: {ref.name} gets {what} (fine for timing, not for predictions)")
    else:
        if Path(weights).suffix.lower() in (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".tar"):
            raise WeightsError(  # the line to run, with this model's name (load_weights cannot know it)
                f"{weights}: {Path(weights).suffix} files are pickles, which trtnet never loads; convert it with "
                f"`trtnet convert {ref.spec} {weights}` and pass the .safetensors file it writes"
            )
        read_as = load_weights(model, weights, check_finite="error" if strict else "warn", hint=mismatch_hint)
        if layouts is not None:
            layouts.extend(read_as)
    return model


def _configured(ref, args: argparse.Namespace, quiet: bool = False):
    """The model with the command line's model settings (trtnet/cli/settings.py) and `--weights` loaded."""
    from trtnet.cli.settings import apply_image_size, model_options

    options = model_options(ref, args)  # checked before anything is built or read
    model = _model(ref, args.weights, args.strict, quiet=quiet, options=options)
    apply_image_size(ref, model, args, options)
    return model


def _require_torch(command: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise TrtnetError(
            f"`trtnet {command}` needs PyTorch and the model's source library (pip install 'trtnet[test]'): {e}"
        ) from None


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
        raise WeightsError(
            f"cannot download the published weights of {entry.name} ({entry.source}): {detail}. "
            "--pretrained needs network access; elsewhere, run `trtnet export-weights "
            f"{entry.name} --pretrained` and copy the file here"
        ) from e


def _cuda_device() -> str | None:
    """A CUDA device's description, or None where there is none (or no cuda-python)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        return None
    err, count = runtime.cudaGetDeviceCount()
    return f"{count} CUDA device(s)" if int(err) == 0 and count > 0 else None


def _batch_text(batch: int | tuple[int, int, int]) -> str:
    return str(batch) if isinstance(batch, int) else ":".join(map(str, batch))
