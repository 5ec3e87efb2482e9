"""`trtnet inspect FILE.plan`: what a saved plan and its sidecar say, as Polygraphy's `inspect model` prints an
engine, without a GPU and without TensorRT deserializing it (the sidecar is checked against the plan's bytes)."""

from __future__ import annotations

import argparse


def cmd_inspect(args: argparse.Namespace) -> int:
    from trtnet.runtime.plan import Plan

    # check_backend=False: a plan built for another TensorRT (a Triton server's) is inspected, not run
    plan = Plan.load(args.plan, check_backend=False)
    print("\n".join(describe(plan, args.plan)))
    return 0


def describe(plan, path: str) -> list[str]:
    """The lines `inspect` prints for `plan` (a loaded `Plan`)."""
    lines = [
        f"plan {shown(path)}: {len(plan.plan):,} bytes ({len(plan.plan) / 2**20:.1f} MiB)",
        f"  backend: {shown(plan.backend)}",
        f"  target: {shown(plan.target)}",
        f"  precision: {shown(plan.precision)}",
        f"  layers: {plan.num_layers}, built in {plan.build_seconds:.1f} s",
        f"  inputs ({len(plan.inputs)}):",
    ]
    for spec in plan.inputs:
        lines.append(f"    {shown(spec.name)}: {shown(spec.dtype)} {list(spec.shape)}")
        low, high = _profile(spec)
        lines.append(f"      profile: min {low}, opt {list(spec.shape)}, max {high}")
    lines.append(f"  outputs ({len(plan.outputs)}):")
    lines += [f"    {shown(spec.name)}: {shown(spec.dtype)} {list(spec.shape)}" for spec in plan.outputs]
    return lines


def shown(text: object) -> str:
    r"""`text` as a terminal can show it: a sidecar is data, and its escape sequences, newlines and lone surrogates
    (which stdout cannot encode: an internal error) are printed as escapes, the rest as it is.

    >>> shown("x\x1b[2J\n入力")
    'x\\x1b[2J\\n入力'
    """
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def _profile(spec) -> tuple[list[int], list[int]]:
    """The smallest and largest shapes the profile takes: whole shapes where the sidecar has them, else the
    opt shape with the batch range."""
    if spec.min_shape and spec.max_shape:
        return list(spec.min_shape), list(spec.max_shape)
    rest = list(spec.shape[1:])
    return [spec.min_batch or spec.shape[0], *rest], [spec.max_batch or spec.shape[0], *rest]
