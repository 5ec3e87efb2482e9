"""What a calibration was measured on (the inputs' shapes and dtypes, the weights' fingerprint, the format its
method chose ranges for), checked against the network it is used for: `emit` and the ONNX parser refuse one
measured on something else, unless it is reused on purpose."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from trtnet.errors import CalibrationError
from trtnet.nn.module import Module
from trtnet.ops.quantize import FORMATS
from trtnet.quant.ranges import Calibration


def weights_fingerprint(model: Module) -> str:
    """sha256 over the model's parameters (path, dtype, shape, values): what a calibration was measured with."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda item: item[0]):
        a = np.ascontiguousarray(p.data)
        h.update(f"{name}:{a.dtype.str}{a.shape};".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def check_calibration(
    cal: Calibration, model: Module, inputs: Sequence[Any], reuse: bool = False, precision: str | None = None
) -> None:
    """Refuse a calibration measured on other inputs (names, per-sample shapes outside the network's range, dtypes)
    or weights than the network `model` is built into (`inputs`: its TensorSpecs), or whose mse or entropy ranges
    are for another `precision`, naming what differs; `reuse=True` accepts it. Files without these records pass."""
    check_measured(cal, inputs, lambda: weights_fingerprint(model), reuse, precision)


def check_measured(
    cal: Calibration,
    inputs: Sequence[Any],
    fingerprint: Callable[[], str],
    reuse: bool = False,
    precision: str | None = None,
) -> None:
    """`check_calibration` for any network: `fingerprint()` gives the weights' fingerprint as the calibration
    recorded it (called only when it recorded one), `inputs` the network's TensorSpecs, batch first."""
    if reuse:
        return
    where = f"calibration file {cal.source}" if cal.source else "the calibration"
    # max and percentile ranges do not depend on the format; mse's clipping is chosen for its grid, entropy's for int8's
    made_for = {"mse": cal.meta.get("precision"), "entropy": "int8"}.get(cal.method)
    if precision in FORMATS and made_for in FORMATS and made_for != precision:
        raise CalibrationError(
            f"{where}: the {cal.method} method chose its ranges for {made_for}, this network is {precision}; calibrate "
            f"for {precision} ({'--method max, percentile or mse' if cal.method == 'entropy' else '--method mse'} "
            f"--precision {precision}), or pass reuse_calibration=True (--reuse-calibration)"
        )
    fix = "calibrate this model on inputs like these, or pass reuse_calibration=True (--reuse-calibration)"
    recorded = cal.meta.get("inputs")
    if isinstance(recorded, dict) and recorded:
        specs = {s.name: s for s in inputs}
        if set(recorded) != set(specs):
            raise CalibrationError(
                f"{where} was measured on inputs {sorted(recorded)}, the network takes {sorted(specs)}; {fix}"
            )
        for name, seen in recorded.items():
            spec = specs[name]
            lo, hi = (s[1:] for s in spec.shape_range())
            for shape in seen.get("shapes", []):
                if len(shape) != len(lo) or not all(a <= d <= b for a, d, b in zip(lo, shape, hi)):
                    want = list(lo) if lo == hi else f"{list(lo)} to {list(hi)}"
                    raise CalibrationError(
                        f"{where} was measured on input {name!r} of per-sample shape {shape}; the network takes "
                        f"{want}: its ranges describe other activations. {fix}"
                    )
            if seen.get("dtype") not in (None, spec.dtype):
                raise CalibrationError(
                    f"{where} was measured on input {name!r} of dtype {seen.get('dtype')}, the network takes "
                    f"{spec.dtype}; {fix}"
                )
    recorded_weights = cal.meta.get("weights")
    if isinstance(recorded_weights, str) and recorded_weights and recorded_weights != (these := fingerprint()):
        raise CalibrationError(
            f"{where} was measured on other weights than these (fingerprint {recorded_weights[:12]}..., "
            f"these {these[:12]}...) of model {cal.meta.get('model', '?')}; calibrate this model with these weights, "
            "or pass reuse_calibration=True (--reuse-calibration)"
        )
