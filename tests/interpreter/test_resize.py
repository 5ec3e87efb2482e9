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


def test_a_resize_by_scales_has_the_size_tensorrt_infers() -> None:
    """floor(n * scale) in float32, as TensorRT sizes the output: in float64 the float32 scale 0.7 times 10 is
    6.99999988 and floored to 6, where TensorRT's 7 (and 5 x 1.4, 10 x 0.9, 10 x 1.3, 5 x 2.6 the same way)."""
    n = Net()
    scales = [round(0.1 * k, 1) for k in range(1, 31)]
    layers = []
    for size in (5, 10):
        xi = n.input(f"x{size}", (1, 1, size, 3))
        for s in scales:
            layer = n.net.add_resize(xi)
            layer.scales = [1.0, 1.0, s, 1.0]
            layer.resize_mode = trt.InterpolationMode.NEAREST
            n.mark(layer.get_output(0))
            layers.append(layer)
    got = n.run(x5=rand(1, 1, 5, 3), x10=rand(1, 1, 10, 3))
    inferred = [tuple(layer.get_output(0).shape) for layer in layers]
    assert [g.shape for g in got] == inferred
    assert (1, 1, 7, 3) in inferred and (1, 1, 7, 3) == inferred[30 + 6]  # 10 x 0.7
