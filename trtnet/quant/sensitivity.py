"""Which quantized layers to keep in fp16 so that an int8/fp8 network meets a target cosine against fp32.

Everything runs in the reference interpreter on the CPU, on sample batches (`calibration_data`):
1. Sensitivity: for each quantized point, the network with only that point quantized (every other one kept in
   fp16) is compared with fp32. Measured alone, a layer's effect is not blurred by the others' rounding, does
   not depend on the order layers are tried in, and is what the report can state plainly ("alone it gives
   cosine 0.981"). The other choice, all quantized but that one, measures each layer against the noise of the
   rest: with many layers each gain is a small difference of two noisy numbers.
2. Selection: layers are kept greedily, most sensitive first, until the whole network (every other layer
   quantized) reaches the target on held-out batches, which the sensitivities and the ranges trtnet measures
   never saw. Greedy by sensitivity keeps few layers where a few dominate the error (activation outliers,
   which is when int8 misses); it is not a proof of the fewest.

The score of a network is its cosine against fp32: per output, the mean over samples of the cosine of each
sample's flattened output, and the least of these over the outputs.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from trtnet.errors import CalibrationError
from trtnet.nn.module import Module
from trtnet.quant.calibrate import _feeds, _kept, calibrate
from trtnet.quant.ranges import Calibration


@dataclass(frozen=True)
class KeptLayer:
    """One layer the selection kept in fp16, and why: its measured effect."""

    name: str
    alone: float  # the network's cosine vs fp32 with only this layer quantized (sensitivity batches)
    after: float  # the held-out cosine once this layer and those kept before it are in fp16


@dataclass(frozen=True)
class Selection:
    """What `keep_for_cosine` chose: the calibration to build with (its `keep` extended) and the evidence."""

    calibration: Calibration
    target: float
    before: float  # held-out cosine with the calibration's own keeps only
    after: float  # held-out cosine with the selected layers kept as well
    kept: tuple[KeptLayer, ...]
    sensitivity: dict[str, float]  # every candidate layer: cosine with only it quantized
    held_out: int  # samples the target was checked on

    def report(self) -> str:
        """Lines for a person: the target, what plain quantization reached, each layer kept and its effect."""
        head = (
            f"min_cosine {self.target:g}: cosine vs fp32 on {self.held_out} held-out samples {self.before:.5f} with "
            f"{len(self.sensitivity)} quantized layers"
        )
        if not self.kept:
            return head + "; no layer needs fp16"
        lines = [head + f"; keeping {len(self.kept)} in fp16 reaches {self.after:.5f}:"]
        lines += [
            f"  {k.name}: alone it gives cosine {k.alone:.5f}; kept, the network reaches {k.after:.5f}"
            for k in self.kept
        ]
        return "\n".join(lines)


def score(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> float:
    """The least over outputs of the mean per-sample cosine between `got` and `want` (batch first)."""
    worst = math.inf
    for g, w in zip(got, want, strict=True):
        a = np.asarray(g, np.float64).reshape(len(g), -1)
        b = np.asarray(w, np.float64).reshape(len(w), -1)
        norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300)
        worst = min(worst, float(np.mean(np.sum(a * b, axis=1) / norms)))
    return worst


class _Runner:
    """Runs `model` in the interpreter on fixed batches, at fp32 once and then under any set of kept layers."""

    def __init__(self, model: Module, batches: list[dict[str, np.ndarray]], precision: str, reuse: bool) -> None:
        self.model, self.batches, self.precision, self.reuse = model, batches, precision, reuse
        self.fp32 = [self._run(b, precision="fp32") for b in batches]

    def _run(self, feeds: dict[str, np.ndarray], **options: Any) -> list[np.ndarray]:
        from trtnet.builder.emit import emit
        from trtnet.interpreter import run_network

        first = next(iter(feeds.values()))
        shapes = {n: a.shape[1:] for n, a in feeds.items()}
        net = emit(self.model, first.shape[0], input_shapes=shapes, **options)
        return list(run_network(net.network, feeds).values())

    def cosine(self, cal: Calibration) -> float:
        got = [
            self._run(b, precision=self.precision, calibration=cal, reuse_calibration=self.reuse) for b in self.batches
        ]
        return score([np.concatenate(o) for o in zip(*got)], [np.concatenate(o) for o in zip(*self.fp32)])


def _with_keep(cal: Calibration, keep: dict[str, str]) -> Calibration:
    return replace(cal, keep={**cal.keep, **keep})


def keep_for_cosine(
    model: Module,
    calibration_data: Iterable[Any],
    min_cosine: float,
    *,
    calibration: Calibration | None = None,
    precision: str = "int8",
    keep: Sequence[str] = (),
    reuse_calibration: bool = False,
) -> Selection:
    """Keep the fewest quantized layers of `model` in fp16 (greedy, most sensitive first) for the int8/fp8
    network to reach cosine `min_cosine` against fp32 on held-out batches of `calibration_data`.

    The last third of the batches (at least one) is held out; the rest measures each layer's sensitivity and,
    when `calibration` is None, the ranges (method max, no layer kept by rule). The layers `keep` names (as
    `calibrate` takes them) stay in fp16 before any is chosen. A target that even every layer
    in fp16 misses is a `CalibrationError`. A `calibration` measured on other inputs or weights is refused, as
    `build` refuses it, unless `reuse_calibration`.

    >>> sel = keep_for_cosine(model, batches, 0.99, calibration=cal)        # doctest: +SKIP
    >>> print(sel.report()); trtnet.build(model, 8, precision="int8", calibration=sel.calibration)  # doctest: +SKIP
    """
    _check_target(min_cosine)
    batches = [_feeds(model, b) for b in calibration_data]
    if len(batches) < 2:
        raise CalibrationError(
            f"min_cosine needs at least 2 calibration batches (one to measure, one held out to check the "
            f"target), got {len(batches)}"
        )
    held = max(1, len(batches) // 3)
    measure, check = batches[:-held], batches[-held:]
    if calibration is None:
        calibration = calibrate(model, measure, precision=precision, keep=())
    if keep:
        calibration = keep_named(model, calibration, keep)
    candidates = [k for k in calibration.amax if k not in calibration.keep]
    reuse = bool(reuse_calibration)
    on_measure, on_check = _Runner(model, measure, precision, reuse), _Runner(model, check, precision, reuse)

    others = "another layer is measured alone"
    sensitivity = {
        k: on_measure.cosine(_with_keep(calibration, {o: others for o in candidates if o != k})) for k in candidates
    }
    before = on_check.cosine(calibration)
    kept: list[KeptLayer] = []
    current, reached = calibration, before
    for name in sorted(candidates, key=lambda k: sensitivity[k]):
        if reached >= min_cosine:
            break
        current = _with_keep(
            current, {name: f"min_cosine {min_cosine:g}: alone it gives cosine {sensitivity[name]:.5f}"}
        )
        reached = on_check.cosine(current)
        kept.append(KeptLayer(name, sensitivity[name], reached))
    if reached < min_cosine:
        raise CalibrationError(
            f"min_cosine {min_cosine:g} is out of reach: with all {len(candidates)} quantized layers in fp16 the "
            f"network's cosine vs fp32 on the held-out batches is {reached:.5f} (fp16 rounding); lower the target"
        )
    meta = {**current.meta, "min_cosine": min_cosine, "held_out_cosine": round(reached, 6)}
    return Selection(
        replace(current, meta=meta),
        min_cosine,
        before,
        reached,
        tuple(kept),
        sensitivity,
        sum(len(next(iter(b.values()))) for b in check),
    )


def _check_target(min_cosine: Any) -> None:
    if isinstance(min_cosine, bool) or not isinstance(min_cosine, numbers.Real) or not 0 < float(min_cosine) <= 1:
        raise CalibrationError(f"min_cosine {min_cosine!r}: expected a number in (0, 1], e.g. 0.99")


def keep_named(model: Module, calibration: Calibration, keep: Sequence[str], batch: int = 1) -> Calibration:
    """`calibration` with the layers `keep` names (layer names, or "first" / "last") kept in fp16 as well."""
    from trtnet.builder.emit import emit
    from trtnet.ops.quantize import quant_points

    net = emit(model, batch, precision="fp32")
    return _with_keep(calibration, _kept(net.network, quant_points(net.owner), keep))
