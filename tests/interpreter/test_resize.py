"""Resize modes and coordinate transforms (trtnet/interpreter/resize.py) against torch's interpolate."""

from __future__ import annotations

import pytest

from tests.interpreter.cases import CaseTable, Net, check_case, rand, t, torch_or_skip, trt

CASES = CaseTable()


def _resize(n: Net, x, *, mode, coord, shape=None, scales=None, rounding=None):
    layer = n.net.add_resize(x)
    layer.resize_mode = mode
    layer.coordinate_transformation = coord
    if rounding is not None:
        layer.nearest_rounding = rounding
    if shape is not None:
        layer.shape = shape
    else:
        layer.scales = scales
    return layer


@CASES.case()
def resize_modes():
    F = torch_or_skip().nn.functional
    n = Net()
    x = rand(1, 2, 5, 6)
    xi = n.input("x", x.shape)
    I, C = trt.InterpolationMode, trt.ResizeCoordinateTransformation  # noqa: E741  (I for Interpolation reads well in the table below)
    layers = [
        _resize(n, xi, mode=I.NEAREST, coord=C.ASYMMETRIC, scales=[1, 1, 2, 2], rounding=trt.ResizeRoundMode.FLOOR),
        _resize(n, xi, mode=I.NEAREST, coord=C.HALF_PIXEL, shape=(1, 2, 8, 9), rounding=trt.ResizeRoundMode.HALF_UP),
        _resize(n, xi, mode=I.LINEAR, coord=C.ALIGN_CORNERS, shape=(1, 2, 9, 4)),
        _resize(n, xi, mode=I.LINEAR, coord=C.HALF_PIXEL, shape=(1, 2, 11, 3)),
        _resize(n, xi, mode=I.LINEAR, coord=C.HALF_PIXEL, scales=[1, 1, 2, 1.5]),
        _resize(n, xi, mode=I.CUBIC, coord=C.HALF_PIXEL, shape=(1, 2, 10, 12)),
    ]
    n.mark(*(layer.get_output(0) for layer in layers))
    got = n.run(x=x)
    tx = t(x)
    expected = [
        F.interpolate(tx, scale_factor=2, mode="nearest"),
        F.interpolate(tx, size=(8, 9), mode="nearest-exact"),
        F.interpolate(tx, size=(9, 4), mode="bilinear", align_corners=True),
        F.interpolate(tx, size=(11, 3), mode="bilinear", align_corners=False),
        F.interpolate(tx, scale_factor=(2, 1.5), mode="bilinear", align_corners=False),
        F.interpolate(tx, size=(10, 12), mode="bicubic", align_corners=False),
    ]
    return [(g, e.numpy()) for g, e in zip(got, expected)]


@pytest.mark.parametrize("c", CASES, ids=CASES.ids())
def test_layer_against_oracle(c) -> None:
    check_case(c)
