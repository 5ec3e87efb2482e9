"""Activation ranges for int8/fp8 networks: what `trtnet.calibrate` measures, as a plain JSON file.

The file is keyed by the names of the layers that consume each quantized tensor, which are module paths
(`layer1.0.conv1/conv`, `encoder.layer.0.attention.self/matmul`). It holds, per key, the range (amax) the
tensor is quantized to, or, under `keep`, why that layer stays in higher precision. Weights need no file:
their per-channel ranges are read from the weights when the network is built.

    {"format": "trtnet-calibration", "version": 1, "model": "ResNet", "method": "max",
     "batches": 4, "samples": 32, "amax": {"conv1/conv": 2.64, ...}, "keep": {"fc/matmul": "last layer"}}
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtnet.errors import CalibrationError, NetworkError
from trtnet.fileio import atomic_write
from trtnet.fileread import parse_json, read_regular
from trtnet.runtime.plan import refuse_plan_files

FORMAT = "trtnet-calibration"
VERSION = 1
MAX_BYTES = 64 << 20  # a range per quantized layer is some 60 bytes: a real file is kilobytes

# How a tensor's range is chosen from what calibration saw (trtnet.quant.calibrate says how each works).
CALIBRATION_METHODS = ("max", "percentile", "entropy", "mse")


@dataclass(frozen=True)
class Calibration:
    """Per-tensor activation ranges by layer name, and the layers kept in higher precision (with why)."""

    amax: dict[str, float]
    keep: dict[str, str] = field(default_factory=dict)
    method: str = "max"
    meta: dict[str, Any] = field(default_factory=dict)  # model, batches, samples, percentile, precision...
    source: str = field(default="", compare=False)  # the file it came from, for messages

    def range_of(self, key: str) -> float | None:
        """The amax of the tensor quantized for layer `key`, or None when that layer stays in higher precision."""
        if key in self.keep:
            return None
        try:
            return self.amax[key]
        except KeyError:
            where = f"calibration file {self.source}" if self.source else "the calibration"
            raise NetworkError(
                f"{where} has no range for layer {key!r}: it was measured on another model or "
                f"configuration; run trtnet.calibrate on this one"
            ) from None

    def check_layers(self, layers: Collection[str]) -> None:
        """A `NetworkError` if the file has ranges for layers that are not among `layers` (the quantized layers of
        the network it is applied to): measured on another model, though one whose layers include all of these
        (ResNet-34's file on a ResNet-18) has a range for each; then `check_keep`."""
        foreign = sorted(set(self.amax) - set(layers))
        if foreign:
            where = f"calibration file {self.source}" if self.source else "the calibration"
            raise NetworkError(
                f"{where} has ranges for layers this network does not have ({', '.join(map(repr, foreign[:3]))}"
                f"{', ...' if len(foreign) > 3 else ''}): it was measured on another model; calibrate this one"
            )
        self.check_keep(layers)

    def check_keep(self, layers: Collection[str]) -> None:
        """A `CalibrationError` if `keep` names a layer that is not one of `layers` (the quantized layers of the
        network it is applied to), as `--keep` is refused: a name edited by hand into the file, or mistyped,
        would otherwise leave the layer it meant to keep quantized, silently."""
        unknown = [k for k in self.keep if k not in layers]
        if not unknown:
            return
        where = f"calibration file {self.source}" if self.source else "the calibration"
        hints = [_did_you_mean(k, layers) for k in unknown[:3]]
        named = ", ".join(repr(k) + h for k, h in zip(unknown, hints)) + (", ..." if unknown[3:] else "")
        which = "which is not a quantized layer" if len(unknown) == 1 else "which are not quantized layers"
        some = "" if any(hints) else f" (those are e.g. {sorted(layers)[:3]})"
        rules = sorted({k for k in unknown[:3] if k in ("first", "last")})  # of the names said
        if rules:  # calibrate's --keep rules, which the file holds resolved: the layers they chose
            one = len(rules) == 1
            some += (
                f"; {' and '.join(map(repr, rules))} {'is a rule' if one else 'are rules'} of calibrate's --keep, "
                f"written into the file as the layers {'it' if one else 'they'} chose: name layers here, or "
                f"calibrate again with --keep {' '.join(rules)}"
            )
        raise CalibrationError(f'{where}: "keep" names {named}, {which} of this network{some}')

    # -- JSON ----------------------------------------------------------------------------------------
    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "version": VERSION,
            **self.meta,
            "method": self.method,
            "amax": self.amax,
            "keep": self.keep,
        }
        return json.dumps(doc, indent=1) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON file atomically (a temporary file renamed into place: never a partial file)."""
        path = Path(path)
        refuse_plan_files(path, "the calibration", CalibrationError)
        atomic_write(path, self.to_json().encode(), "the calibration", CalibrationError)
        return path

    @classmethod
    def from_json(cls, text: str, source: str = "") -> Calibration:
        where = f"calibration file {source}" if source else "calibration"
        try:
            doc = parse_json(text)
        except (ValueError, RecursionError) as e:  # a key twice too: which range counts would be a guess
            raise CalibrationError(f"{where}: not JSON ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise CalibrationError(f'{where}: not a trtnet calibration file (no "format": "{FORMAT}")')
        if doc.get("version") != VERSION or isinstance(doc.get("version"), (bool, float)):  # true == 1 == 1.0
            raise CalibrationError(f"{where}: version {doc.get('version')!r}, this trtnet reads version {VERSION}")
        amax, keep, method = doc.get("amax"), doc.get("keep", {}), doc.get("method")
        if not isinstance(amax, dict) or not isinstance(keep, dict) or not isinstance(method, str):
            raise CalibrationError(f'{where}: "amax" and "keep" must be objects and "method" a string')
        if method not in CALIBRATION_METHODS:
            raise CalibrationError(f'{where}: "method" is {method!r}, not one of {", ".join(CALIBRATION_METHODS)}')
        for key, value in amax.items():
            if not _number(value) or not 0 <= value <= _FLOAT32_MAX:  # a scale is amax / 127 (or / 448) in float32
                raise CalibrationError(f"{where}: amax of {key!r} is {value!r}, not a number from 0 to 3.4e38")
        for key, value in keep.items():
            if not isinstance(value, str):
                raise CalibrationError(f"{where}: keep[{key!r}] must be a string (the reason)")
        meta = {k: v for k, v in doc.items() if k not in ("format", "version", "method", "amax", "keep")}
        _check_records(meta, where)
        return cls({k: float(v) for k, v in amax.items()}, dict(keep), method, meta, source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Calibration:
        """Read a file `save` wrote: a regular file of at most `MAX_BYTES` (a FIFO or a device is refused
        unread), UTF-8 JSON. Anything else is a `CalibrationError` naming the file."""
        raw = read_regular(Path(path), MAX_BYTES, "calibration file", error=CalibrationError)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CalibrationError(f"calibration file {path}: not UTF-8 text (byte {e.start})") from None
        return cls.from_json(text, str(path))


_FLOAT32_MAX = 3.4028234663852886e38


def _did_you_mean(name: str, names: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _number(v: Any) -> bool:
    """A JSON number that is finite (an integer of 400 digits is: math.isfinite raised OverflowError on it)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and (isinstance(v, int) or math.isfinite(v))


def _check_records(meta: dict[str, Any], where: str) -> None:
    """What the file records of its measurement, where it says it: of the right kind, or a `CalibrationError`
    naming the field. Absent fields are a file from before them (its inputs and weights are then not checked
    against the network); a field of the wrong kind would have skipped that check as silently."""
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v < 2**63  # noqa: E731
    shape = lambda v: isinstance(v, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v)  # noqa: E731
    seen = lambda v: (  # noqa: E731
        isinstance(v, dict)
        and isinstance(v.get("shapes"), list)
        and v["shapes"]
        and all(shape(s) for s in v["shapes"])
        and isinstance(v.get("dtype", ""), str)
    )
    rules = {
        "model": ("a string", lambda v: isinstance(v, str)),
        "precision": ("int8 or fp8", lambda v: v in ("int8", "fp8")),
        "samples": ("a whole number >= 1", whole),
        "batches": ("a whole number >= 1", whole),
        "percentile": ("a number in (0, 100]", lambda v: _number(v) and 0 < v <= 100),
        # An empty record skipped the check as silently as a missing one: a file is refused for it.
        "weights": ("a fingerprint (64 hex digits)", lambda v: isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v)),
        "inputs": (
            'an object of {"shapes": [[dims], ...], "dtype": "..."} by input name',
            lambda v: isinstance(v, dict) and v and all(isinstance(k, str) and seen(s) for k, s in v.items()),
        ),
    }
    for key, (what, ok) in rules.items():
        if key in meta and not ok(meta[key]):
            raise CalibrationError(f'{where}: "{key}" is {json.dumps(meta[key])[:80]}, not {what}')


def as_calibration(value: Calibration | str | os.PathLike | None) -> Calibration | None:
    """A `Calibration`, loading it when given a path."""
    if value is None or isinstance(value, Calibration):
        return value
    if isinstance(value, (str, os.PathLike)):
        return Calibration.load(value)
    raise CalibrationError(f"calibration must be a Calibration or a path to its JSON file, not {type(value).__name__}")
