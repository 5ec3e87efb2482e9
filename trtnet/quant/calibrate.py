"""Calibration on the CPU: the fp32 network run in the reference interpreter over sample batches.

Every tensor an int8/fp8 network quantizes (`trtnet.ops.quantize` records them while the network is written)
is measured, and its range (amax) chosen by one of:
- "max": the largest magnitude seen;
- "percentile": that percentile (default 99.99) of the magnitudes, from a histogram;
- "entropy": TensorRT's entropy calibration: the clipping that minimises the KL divergence between the
  histogram and its 128-level quantized version (defined for int8);
- "mse": the clipping that minimises the mean squared error of quantizing the histogram to the target format
  (int8 or fp8), as NVIDIA ModelOpt's MSE calibrator does for its candidates.
Histograms cover [0, max |x|] in bins of one fixed width; a later batch with a larger value adds bins of the same
width (past `histogram.MAX_BINS`, adjacent bins merge and the width doubles), so the result depends only on the
batches and their order: calibration is deterministic.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trtnet.errors import CalibrationError
from trtnet.fileread import read_npz
from trtnet.nn.module import Module
from trtnet.ops.quantize import FORMATS
from trtnet.quant.edges import edge_layers
from trtnet.quant.histogram import Histogram, choose_amax
from trtnet.quant.measured import weights_fingerprint
from trtnet.quant.ranges import CALIBRATION_METHODS, Calibration

KEEP_RULES = ("first", "last")


def _feeds(model: Module, batch: Any) -> dict[str, np.ndarray]:
    """One batch as {input name: array}: an array (one-input models), a sequence in input order, or a mapping."""
    declared = [i.name for i in model.inputs()]
    if isinstance(batch, Mapping):
        arrays = [batch[n] if n in batch else None for n in declared]
        if any(a is None for a in arrays) or len(batch) != len(declared):
            raise CalibrationError(
                f"a calibration batch names inputs {sorted(batch)}; {type(model).__name__} takes {declared}"
            )
    elif isinstance(batch, np.ndarray):
        arrays = [batch]
    else:
        arrays = list(batch)
    if len(arrays) != len(declared):
        raise CalibrationError(
            f"a calibration batch has {len(arrays)} arrays; {type(model).__name__} takes "
            f"{len(declared)} inputs ({', '.join(declared)})"
        )
    from trtnet.builder.emit import checked_inputs

    feeds = dict(zip(declared, checked_inputs(model, arrays, CalibrationError)))  # as an engine call is checked
    if len({a.shape[0] if a.ndim else None for a in feeds.values()}) != 1 or any(a.ndim == 0 for a in feeds.values()):
        raise CalibrationError(
            f"calibration batch inputs disagree on the batch size: { {n: a.shape for n, a in feeds.items()} }"
        )
    return feeds


@dataclass
class RangeStats:
    """What one pass over the calibration batches measured; `calibration()` turns it into ranges by a method."""

    model: str
    network: Any  # the fp32 network (for finding first and last layers)
    points: dict[str, str]  # key -> tensor name
    stats: dict[str, Histogram]  # tensor name -> its statistics
    batches: int
    samples: int
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> per-sample shape(s) seen, dtype
    weights: str = ""  # weights_fingerprint of the model measured

    def calibration(
        self,
        method: str = "max",
        *,
        percentile: float = 99.99,
        precision: str = "int8",
        keep: Sequence[str] = ("last",),
    ) -> Calibration:
        check_method(method, precision, percentile)
        if method != "max" and any(h.counts is None and h.amax > 0 for h in self.stats.values()):
            raise CalibrationError(f"method {method!r} needs histograms: measure with histograms=True")
        by_tensor = {name: choose_amax(h, method, percentile, precision) for name, h in self.stats.items()}
        amax = {key: by_tensor[name] for key, name in self.points.items()}
        meta = {
            "model": self.model,
            "batches": self.batches,
            "samples": self.samples,
            "precision": precision,
            "inputs": self.inputs,
            "weights": self.weights,
        }
        if method == "percentile":
            meta["percentile"] = percentile
        return Calibration(amax, _kept(self.network, self.points, keep), method, meta)


def check_method(method: str, precision: str, percentile: float) -> None:
    """Refuse a method, format or percentile that calibration does not take (before any measuring)."""
    if method not in CALIBRATION_METHODS:
        raise CalibrationError(f"calibration method must be one of {CALIBRATION_METHODS}, not {method!r}")
    if precision not in FORMATS:
        raise CalibrationError(f"calibration precision must be int8 or fp8, not {precision!r}")
    if method == "entropy" and precision != "int8":  # TensorRT's entropy calibrator is an int8 one
        raise CalibrationError(
            "the entropy method chooses ranges for int8's 128 levels; for fp8 use max, percentile or mse"
        )
    if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real) or not 0 < percentile <= 100:
        raise CalibrationError(f"percentile must be a number in (0, 100], not {percentile!r}")


def measure(model: Module, batches: Iterable[Any], *, histograms: bool = True, bins: int = 2048) -> RangeStats:
    """Run the fp32 network of `model` in the interpreter over `batches`, recording every quantized tensor."""
    from trtnet.builder.emit import emit
    from trtnet.interpreter import Interpreter, run_network_capture
    from trtnet.ops.quantize import quant_points

    stats: dict[str, Histogram] = {}
    nets: dict[tuple, Any] = {}
    prepared: dict[tuple, Any] = {}  # one Interpreter per network: weights widened once, not per batch
    points: dict[str, str] = {}
    inputs: dict[str, dict[str, Any]] = {}  # name -> the per-sample shapes and dtype fed
    count = samples = 0
    for batch in batches:
        feeds = _feeds(model, batch)
        shapes = tuple((n, a.shape) for n, a in feeds.items())
        if shapes not in nets:
            nets[shapes] = emit(
                model, next(iter(feeds.values())).shape[0], precision="fp32", input_shapes={n: s[1:] for n, s in shapes}
            )
            prepared[shapes] = Interpreter(nets[shapes].network)
        net = nets[shapes]
        points = quant_points(net.owner)
        _, tensors = run_network_capture(prepared[shapes], feeds, set(points.values()))
        for name, value in tensors.items():
            if name not in stats:
                stats[name] = Histogram(bins, with_hist=histograms)
            try:
                stats[name].add(value)
            except CalibrationError as e:
                key = next(k for k, v in points.items() if v == name)
                raise CalibrationError(f"batch {count}: the input of layer {key!r}: {e}") from None
        count += 1
        samples += next(iter(feeds.values())).shape[0]
        for n, a in feeds.items():
            seen = inputs.setdefault(n, {"shapes": [], "dtype": str(a.dtype)})
            if list(a.shape[1:]) not in seen["shapes"]:
                seen["shapes"].append(list(a.shape[1:]))
    if count == 0:
        raise CalibrationError("no calibration batches were given")
    network = next(iter(nets.values())).network
    return RangeStats(
        type(model).__name__, network, dict(points), stats, count, samples, inputs, weights_fingerprint(model)
    )


def calibrate(
    model: Module,
    batches: Iterable[Any],
    method: str = "max",
    *,
    percentile: float = 99.99,
    precision: str = "int8",
    keep: Sequence[str] = ("last",),
    bins: int = 2048,
) -> Calibration:
    """Measure the ranges of the tensors an int8/fp8 network of `model` quantizes, over `batches`.

    Each batch is an array (one-input models), a sequence of arrays in input order, or {input name: array}.
    `keep` names layers to leave in fp16: "first" / "last" (the weighted layers next to the network's float
    inputs / outputs) and exact layer names. `precision` is the format "mse" optimises for.

    >>> cal = trtnet.calibrate(resnet50(weights=w), [images[i:i + 8] for i in range(0, 64, 8)], "percentile")
    >>> cal.save("resnet50.int8.json"); trtnet.build(model, 8, precision="int8", calibration=cal)  # doctest: +SKIP
    """
    check_method(method, precision, percentile)
    if not isinstance(model, Module):
        raise CalibrationError(f"calibrate takes a trtnet model (a Module), not {type(model).__name__}")
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins < 1:
        raise CalibrationError(f"bins must be a whole number >= 1, not {bins!r}")
    if isinstance(batches, (str, bytes)) or not isinstance(batches, Iterable):
        raise CalibrationError(
            f"batches must be an iterable of batches (arrays or dicts), not {type(batches).__name__}"
        )
    keep = _keep_names(keep)  # before the measurement, not after it
    stats = measure(model, batches, histograms=method != "max", bins=bins)
    return stats.calibration(method, percentile=percentile, precision=precision, keep=keep)


def _keep_names(keep: Any) -> tuple[str, ...]:
    """`keep` as a tuple of names: one string is one name ("last", not the names l, a, s, t); a generator is
    read once."""
    keep = (keep,) if isinstance(keep, str) else tuple(keep) if isinstance(keep, Iterable) else keep
    if not isinstance(keep, tuple) or not all(isinstance(k, str) for k in keep):
        raise CalibrationError(f"keep must be layer names or rules {KEEP_RULES}, not {keep!r:.80}")
    return keep


def _kept(network: Any, points: Mapping[str, str], keep: Sequence[str]) -> dict[str, str]:
    keep = _keep_names(keep)
    weighted = [k for k in points if not k.rsplit("/", 1)[-1].startswith("sum")]
    rules = {k for k in keep if k in KEEP_RULES}
    names = [k for k in keep if k not in KEEP_RULES]
    unknown = [n for n in names if n not in points]
    if unknown:
        raise CalibrationError(
            f"keep names {unknown}, which are not quantized layers of this model "
            f"(those are e.g. {weighted[:3]}) nor one of {KEEP_RULES}"
        )
    kept = {k: f"{label} layer" for k, label in edge_layers(network, weighted).items() if label in rules}
    kept.update({n: "kept by name" for n in names})
    return {k: kept[k] for k in points if k in kept}


def calibrate_file(model: Module, data: str | os.PathLike, batch: int = 8, **options: Any) -> Calibration:
    """`calibrate` over the arrays of an .npz file (named by the model's inputs, or one unnamed array), in
    batches of `batch` samples."""
    return calibrate(model, load_batches(model, data, batch), **options)


def load_batches(model: Module, data: str | os.PathLike, batch: int = 8) -> list[dict[str, np.ndarray]]:
    """The arrays of an .npz file (named by the model's inputs, or one unnamed array) in batches of `batch`
    samples, each array checked against the model's declared per-sample shapes as the engine would."""
    arrays = read_npz(Path(data), "calibration data", CalibrationError)
    names = [i.name for i in model.inputs()]
    if len(arrays) == 1 and len(names) == 1:
        arrays = {names[0]: next(iter(arrays.values()))}
    missing, extra = [n for n in names if n not in arrays], sorted(set(arrays) - set(names))
    if missing or extra:  # an extra array is a name mistyped, or data the calibration would leave unseen
        raise CalibrationError(f"calibration data {data}: has arrays {sorted(arrays)}, the model takes {names}")
    flat = [k for k in names if arrays[k].ndim == 0]
    if flat:
        raise CalibrationError(f"calibration data {data}: array {flat[0]!r} is a single value, not a batch of samples")
    counts = {k: len(arrays[k]) for k in names}
    if len(set(counts.values())) > 1:  # the longer ones' tail would go unmeasured
        raise CalibrationError(f"calibration data {data}: the arrays hold different numbers of samples: {counts}")
    n = min(counts.values())
    declared = {i.name: i for i in model.inputs()}
    for k in names:  # as the engine would check them: the model's declared per-sample shapes (ranges included)
        lo, _, hi = declared[k].shape_range()
        shape = arrays[k].shape[1:]
        if len(shape) != len(lo) or not all(a <= d <= b for a, d, b in zip(lo, shape, hi)):
            want = list(lo) if lo == hi else f"{list(lo)} to {list(hi)}"
            raise CalibrationError(
                f"calibration data {data}: array {k!r} has samples of shape {list(shape)}, "
                f"{type(model).__name__} takes {want}"
            )
    return [{k: arrays[k][i : i + batch] for k in names} for i in range(0, n, batch)]
