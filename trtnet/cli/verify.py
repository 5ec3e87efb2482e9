"""`trtnet verify`: trtnet's network against the PyTorch source, on the same weights and inputs."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from trtnet.cli.commands import EXIT_CHECK_FAILED, EXIT_OK, _call, _cuda_device, _download, _model, _ref, _require_torch
from trtnet.cli.settings import model_options
from trtnet.errors import TrtnetError
from trtnet.graph import QUANTIZED
from trtnet.words import counted

# The tolerances of `verify`, the same as the parity tests': the interpreter in fp32 against PyTorch fp32,
# an fp32 engine against PyTorch (TF32 off), and an fp16 engine by cosine similarity.
REFERENCE_REL_ERROR = 1e-4
ENGINE_FP32_REL_ERROR = 1e-3
ENGINE_FP16_COSINE = 0.999


def cmd_verify(args: argparse.Namespace) -> int:
    import trtnet
    from trtnet.parity import (
        export_state,
        load_into_source,
        rel_error,
        sample_inputs,
        torch_forward,
        torch_model,
        weight_differences,
    )

    if args.precision != "fp32" and not args.layerwise:
        raise TrtnetError(
            "--precision compares the network in that precision with fp32 module by module: add --layerwise"
        )
    if args.calibration and args.precision not in QUANTIZED:
        raise TrtnetError(f"--calibration is for --precision int8 or fp8, not {args.precision}")
    if args.precision in QUANTIZED and not args.calibration:
        raise TrtnetError(f"--precision {args.precision} needs --calibration FILE (from `trtnet calibrate`)")
    against = args.against_pretrained or args.against_seed is not None
    ref = _ref(args.model)
    entry = ref.require_entry("verify")
    _require_torch("verify")
    options = dict(entry.pretrained_options) if args.against_pretrained else {}
    # --seq-len: the inputs' length, which the source takes as it is; a setting the model lacks is said before the
    # source is built (a 1B decoder's took 47 s)
    options.update(model_options(ref, args))
    seed = args.seed if args.against_seed is None else args.against_seed
    if args.against_pretrained:
        source, what = _download(entry), "published weights"
    else:
        source, what = torch_model(entry.name, seed), f"random weights, seed {seed}"
    with tempfile.TemporaryDirectory(prefix="trtnet-verify-") as tmp:
        weights = args.weights or export_state(source, Path(tmp) / f"{entry.name}.safetensors")
        converted: list[str] = []
        model = _model(ref, weights, args.strict, options=options, layouts=converted)
        if args.weights and not against:
            # The user's question: does trtnet compute what PyTorch computes with these weights?
            layouts = load_into_source(source, model, args.weights, entry.source)
            read_as = f", converted from {', '.join(layouts)} layout" if layouts else ""
            print(f"weights: {args.weights}{read_as}, loaded by trtnet and by PyTorch")
            what = f"weights from {args.weights}"
        elif args.weights:
            read_as = f", converted from {', '.join(converted)} layout" if converted else ""
            print(f"weights: {args.weights}{read_as}, compared with the source's {what}")
            print(f"  weights: {weight_differences(source, model)}")
        if options:
            print(f"trtnet's {_call(entry.name, options)}, as the published weights expect")
        print(f"verify {entry.name}: {entry.source} ({what}) against trtnet, batch {args.batch}")
        inputs = sample_inputs(model, args.batch, args.seed)
        raw = torch_forward(source, *inputs)
        split = _parts(model, model.output_names(len(raw)))
        names, want = split(raw)
        for n, w in zip(names, want):
            if not np.isfinite(w).all():  # both sides' NaN, then "trtnet departs": the weights are the cause
                raise TrtnetError(
                    f"verify {entry.name}: the PyTorch source's {n} holds NaN or inf with {what}: there is nothing "
                    "to compare; check the weights (--strict refuses non-finite ones as they are loaded)"
                )
        other = split(torch_forward(source, *sample_inputs(model, args.batch, args.seed + 1)))[1]
        checks = [_input_dependence(want, other)]
        got = split(trtnet.reference(model, *inputs))[1]
        checks += [
            _check(f"reference fp32 {n}", "rel error", rel_error(g, w), REFERENCE_REL_ERROR)
            for n, g, w in zip(names, got, want)
        ]
        if not all(checks[1:]):
            checks[1:] = _arbitrate(source, inputs, split, got, want, checks[1:])
        checks += _eps(source, model)
        if args.layerwise:
            checks.append(_layerwise(model, source, inputs, args))
        gpu = _cuda_device()
        if gpu is None:
            print(
                "  engine: not run: no CUDA GPU here (cuda-python found no device); the interpreter checked "
                "the exact network the engine is built from"
            )
        else:
            from trtnet.parity import cosine

            for precision in ("fp32", "fp16"):
                engine = trtnet.build(model, args.batch, precision=precision)
                got = split(engine(*inputs))[1]
                for n, g, w in zip(names, got, want):
                    if precision == "fp32":
                        checks.append(_check(f"engine fp32 {n}", "rel error", rel_error(g, w), ENGINE_FP32_REL_ERROR))
                    else:
                        checks.append(
                            _check(
                                f"engine fp16 {n}", "cosine", cosine(g, w), ENGINE_FP16_COSINE, higher_is_better=True
                            )
                        )
    failed = checks.count(False)
    print(
        f"{entry.name}: {'FAILED' if failed else 'passed'} ({len(checks) - failed} of {counted(len(checks), 'check')} passed)"
    )
    return EXIT_CHECK_FAILED if failed else EXIT_OK


def _layerwise(model, source, inputs: list, args: argparse.Namespace) -> bool:
    """`--layerwise`: every module against the source's (fp32), or the network in `precision` against fp32."""
    from trtnet.parity import layerwise, layerwise_precision

    precision = args.precision
    if precision == "fp32":
        report = layerwise(model, source, inputs)
    else:
        report = layerwise_precision(
            model, inputs, precision, calibration=args.calibration, reuse_calibration=args.reuse_calibration
        )
    print("\n".join("  " + line for line in report.text().splitlines()))
    return report.passed or precision != "fp32"  # a reduced precision always departs: the report says where most


def _parts(model, names: list[str]) -> Callable[[list], tuple[list[str], list]]:
    """(names, arrays) of a model's outputs split into the parts it declares (`output_parts`: YOLOv8's predictions
    as boxes and class scores), each compared on its own scale: judged as one tensor, a score's error hid under
    boxes near 640 pixels, and the boxes' anchor grid made the outputs of two inputs look alike."""
    parts = model.output_parts() if hasattr(model, "output_parts") else {}

    def split(arrays: list) -> tuple[list[str], list]:
        labels, pieces = [], []
        for name, a in zip(names, arrays):
            for label, axis, where in parts.get(name, (("", 0, slice(None)),)):
                labels.append(f"{name}[{label}]" if label else name)
                pieces.append(np.asarray(a)[(slice(None),) * axis + (where,)])
        return labels, pieces

    return split


def _arbitrate(source, inputs: list, split, got: list, want: list, passed: list[bool]) -> list[bool]:
    """Where trtnet and PyTorch fp32 disagree beyond tolerance, the source run in float64 says who departs, as
    `trtnet check`'s arbiter does: an output passes when trtnet is within tolerance of float64 or closer to it than
    PyTorch fp32 (deep random networks amplify each side's float32 rounding: EfficientNet-B3's 2e-3)."""
    from trtnet.parity import rel_error, torch_forward64

    try:
        names, exact = split(torch_forward64(source, *inputs))
    except Exception as e:  # noqa: BLE001  a source without a float64 forward raises whatever its code raises
        print(f"    no float64 arbiter: the source does not run in float64 ({type(e).__name__}: {str(e)[:120]})")
        return passed
    judged = []
    for n, g, w, e, ok in zip(names, got, want, exact, passed):
        if not ok:
            ours, theirs = rel_error(g, e), rel_error(w, e)
            ok = ours <= REFERENCE_REL_ERROR or ours < theirs
            side = "PyTorch fp32 departs: ok" if ok else "trtnet departs: FAILED"
            print(
                f"    {n}: the source in float64 says: trtnet is {ours:.3g} from it, PyTorch fp32 {theirs:.3g}; {side}"
            )
            # Said, not excused: the tolerance is met by neither side, and trtnet is about as far off as PyTorch fp32
            # (much farther is a wrong network or wrong weights, not rounding).
            if not ok and REFERENCE_REL_ERROR < theirs and ours < 10 * theirs:
                print(
                    "    (with these weights the network amplifies float32 rounding past the tolerance on both sides; "
                    "compare on trained weights with --weights)"
                )
        judged.append(ok)
    return judged


def _input_dependence(want: list, other: list) -> bool:
    """A pass must be able to fail: the source's outputs for other inputs differ by far more than the tolerance."""
    from trtnet.errors import ParityError
    from trtnet.parity import check_input_dependence, input_dependence

    try:
        check_input_dependence(want, other, REFERENCE_REL_ERROR)
    except ParityError as e:
        print(f"  inputs: FAILED: {e}")
        return False
    print(f"  inputs: the source's outputs for other inputs differ by {input_dependence(want, other):.3g} ok")
    return True


def _eps(source, model) -> list[bool]:
    """Each normalisation's eps against the source's, by module path: random weights hide an eps of 1e-3 where
    the source has 1e-5 within the output check's tolerance. No check where no eps pairs up."""
    from trtnet.parity.settings import eps_differences, eps_pairs

    pairs, differ = eps_pairs(source, model), eps_differences(source, model)
    if not pairs:
        return []
    if not differ:
        print(f"  normalisation eps: {len(pairs)} compared by module path, each equal to the source's ok")
        return [True]
    listed = ", ".join(f"{path} {mine:g} (the source's {theirs:g})" for path, mine, theirs in differ[:3])
    print(f"  normalisation eps: {len(differ)} of {len(pairs)} differ: {listed}{' ...' if differ[3:] else ''} FAILED")
    return [False]


def _check(label: str, measure: str, value: float, tolerance: float, higher_is_better: bool = False) -> bool:
    ok = value >= tolerance if higher_is_better else value <= tolerance  # NaN fails both ways
    sign = ">=" if higher_is_better else "<="
    print(f"  {label}: {measure} {value:.3g} (need {sign} {tolerance:g}) {'ok' if ok else 'FAILED'}")
    return ok
