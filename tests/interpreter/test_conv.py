"""Convolution and deconvolution (trtnet/interpreter/conv.py) against torch.nn.functional."""

from __future__ import annotations

import numpy as np
import pytest

from tests.interpreter.cases import CaseTable, Net, add_conv, check_case, rand, t, torch_or_skip, trt
from trtnet.interpreter import conv

CASES = CaseTable()


# --- convolution -------------------------------------------------------------------------------------


@CASES.case()
def conv_stride2_odd_bias():
    F = torch_or_skip().nn.functional
    n = Net()
    x, w, b = rand(2, 3, 9, 9), rand(4, 3, 3, 3), rand(4)
    layer = add_conv(n, n.input("x", x.shape), w, b, stride_nd=(2, 2), padding_nd=(1, 1))
    n.mark(layer.get_output(0))
    return [(n.run(x=x)[0], F.conv2d(t(x), t(w), t(b), stride=2, padding=1).numpy())]


@CASES.case()
def conv_depthwise_dilated():
    F = torch_or_skip().nn.functional
    n = Net()
    x, w = rand(1, 6, 11, 10), rand(6, 1, 3, 3)
    layer = add_conv(n, n.input("x", x.shape), w, None, num_groups=6, dilation_nd=(2, 2), padding_nd=(2, 1))
    n.mark(layer.get_output(0))
    return [(n.run(x=x)[0], F.conv2d(t(x), t(w), groups=6, dilation=2, padding=(2, 1)).numpy())]


@CASES.case()
def conv_depthwise_5x5_strided_in_channel_blocks():
    # 40 channels of 25 taps x 13 x 13 positions: the unfolded windows go in blocks of 15 channels, per image.
    F = torch_or_skip().nn.functional
    n = Net()
    x, w, b = rand(2, 40, 27, 27), rand(40, 1, 5, 5), rand(40)
    layer = add_conv(n, n.input("x", x.shape), w, b, num_groups=40, stride_nd=(2, 2), padding_nd=(1, 1))
    n.mark(layer.get_output(0))
    return [(n.run(x=x)[0], F.conv2d(t(x), t(w), t(b), groups=40, stride=2, padding=1).numpy())]


@CASES.case()
def conv_groups_asymmetric_padding():
    F = torch_or_skip().nn.functional
    n = Net()
    x, w, b = rand(2, 4, 7, 8), rand(6, 2, 3, 2), rand(6)
    layer = add_conv(
        n, n.input("x", x.shape), w, b, num_groups=2, pre_padding=(1, 0), post_padding=(2, 1), stride_nd=(2, 1)
    )
    n.mark(layer.get_output(0))
    # F.pad takes (left, right, top, bottom).
    ref = F.conv2d(F.pad(t(x), (0, 1, 1, 2)), t(w), t(b), stride=(2, 1), groups=2)
    return [(n.run(x=x)[0], ref.numpy())]


@CASES.case()
def conv_same_upper_and_lower():
    F = torch_or_skip().nn.functional
    n = Net()
    x, w = rand(1, 2, 10, 9), rand(3, 2, 4, 3)
    xin = n.input("x", x.shape)
    up = add_conv(n, xin, w, None, stride_nd=(2, 2), padding_mode=trt.PaddingMode.SAME_UPPER)
    lo = add_conv(n, xin, w, None, stride_nd=(2, 2), padding_mode=trt.PaddingMode.SAME_LOWER)
    n.mark(up.get_output(0), lo.get_output(0))
    got_up, got_lo = n.run(x=x)
    # out = ceil(in / 2): H 10 -> 5 needs 4*2+4-10 = 2 rows; W 9 -> 5 needs 4*2+3-9 = 2 cols (split evenly);
    # kernel 4 over height: pad 2 -> 1/1 either way. Make the odd split visible with a width-4 variant below.
    ref = F.conv2d(F.pad(t(x), (1, 1, 1, 1)), t(w), stride=2).numpy()
    x2, w2 = rand(1, 2, 8, 8), rand(3, 2, 2, 2)
    n2 = Net()
    xin2 = n2.input("x", x2.shape)
    a = add_conv(n2, xin2, w2, None, stride_nd=(1, 1), padding_mode=trt.PaddingMode.SAME_UPPER)
    b = add_conv(n2, xin2, w2, None, stride_nd=(1, 1), padding_mode=trt.PaddingMode.SAME_LOWER)
    n2.mark(a.get_output(0), b.get_output(0))
    got_a, got_b = n2.run(x=x2)
    ref_a = F.conv2d(F.pad(t(x2), (0, 1, 0, 1)), t(w2)).numpy()  # odd pixel at the end
    ref_b = F.conv2d(F.pad(t(x2), (1, 0, 1, 0)), t(w2)).numpy()  # odd pixel at the start
    return [(got_up, ref), (got_lo, ref), (got_a, ref_a), (got_b, ref_b)]


@CASES.case()
def conv_round_up_reads_zeros_past_padding():
    F = torch_or_skip().nn.functional
    n = Net()
    x, w = rand(1, 1, 8, 8), rand(1, 1, 3, 3)
    layer = add_conv(
        n, n.input("x", x.shape), w, None, stride_nd=(2, 2), padding_mode=trt.PaddingMode.EXPLICIT_ROUND_UP
    )
    n.mark(layer.get_output(0))
    # ceil((8 - 3) / 2) + 1 = 4 outputs; the last window needs one zero row/col beyond the input.
    return [(n.run(x=x)[0], F.conv2d(F.pad(t(x), (0, 1, 0, 1)), t(w), stride=2).numpy())]


@CASES.case()
def conv_kernel_and_bias_as_tensors():
    F = torch_or_skip().nn.functional
    n = Net()
    x, w, b = rand(2, 3, 6, 6), rand(5, 3, 3, 3), rand(5)
    layer = n.net.add_convolution_nd(n.input("x", x.shape), 5, (3, 3), trt.Weights(), trt.Weights())
    layer.set_input(1, n.const(w))
    layer.set_input(2, n.const(b))
    n.mark(layer.get_output(0))
    return [(n.run(x=x)[0], F.conv2d(t(x), t(w), t(b)).numpy())]


@CASES.case()
def conv3d_strided():
    F = torch_or_skip().nn.functional
    n = Net()
    x, w = rand(1, 2, 5, 6, 7), rand(3, 2, 2, 3, 3)
    layer = add_conv(n, n.input("x", x.shape), w, None, stride_nd=(2, 1, 2), padding_nd=(1, 1, 0))
    n.mark(layer.get_output(0))
    return [(n.run(x=x)[0], F.conv3d(t(x), t(w), stride=(2, 1, 2), padding=(1, 1, 0)).numpy())]


@CASES.case()
def deconv_stride2_groups_padding():
    F = torch_or_skip().nn.functional
    n = Net()
    x, w, b = rand(2, 4, 5, 6), rand(4, 3, 3, 3), rand(6)  # [C, K/groups, kh, kw]
    layer = n.net.add_deconvolution_nd(n.input("x", x.shape), 6, (3, 3), n.weights(w), n.weights(b))
    layer.stride_nd, layer.padding_nd, layer.num_groups = (2, 2), (1, 1), 2
    n.mark(layer.get_output(0))
    return [(n.run(x=x)[0], F.conv_transpose2d(t(x), t(w), t(b), stride=2, padding=1, groups=2).numpy())]


@CASES.case()
def deconv_asymmetric_crop_dilated():
    F = torch_or_skip().nn.functional
    n = Net()
    x, w = rand(1, 2, 4, 5), rand(2, 3, 3, 2)
    layer = n.net.add_deconvolution_nd(n.input("x", x.shape), 3, (3, 2), n.weights(w), trt.Weights())
    layer.stride_nd, layer.dilation_nd = (2, 3), (2, 1)
    layer.pre_padding, layer.post_padding = (1, 0), (0, 2)
    n.mark(layer.get_output(0))
    full = F.conv_transpose2d(t(x), t(w), stride=(2, 3), dilation=(2, 1)).numpy()
    return [(n.run(x=x)[0], full[:, :, 1:, : full.shape[3] - 2])]


@pytest.mark.parametrize("c", CASES, ids=CASES.ids())
def test_layer_against_oracle(c) -> None:
    check_case(c)


# --- kernel offsets that read only padding -------------------------------------------------------------


def _dilated(x, w, b, **attrs):
    n = Net()
    layer = add_conv(n, n.input("x", x.shape), w, b, **attrs)
    n.mark(layer.get_output(0))
    return n


def _float64_conv(x, w, b, **kwargs):
    torch = torch_or_skip()
    bias = None if b is None else torch.from_numpy(b.astype(np.float64))
    y = torch.nn.functional.conv2d(
        torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)), bias, **kwargs
    )
    return y.numpy().astype(np.float32)


@pytest.mark.parametrize(
    "attrs, kwargs, taps",
    [
        # An ASPP branch on a map smaller than its dilation: the 8 outer taps read only padding.
        (dict(dilation_nd=(24, 24), padding_nd=(24, 24)), dict(dilation=24, padding=24), (1, 1)),
        # Rows only: dilation 6 reaches the input from the top and middle taps; columns keep all 3.
        (dict(dilation_nd=(6, 1), pre_padding=(6, 1), post_padding=(0, 1)), dict(dilation=(6, 1)), (2, 3)),
        # Stride 3 over a 2-row input: the bottom tap's rows 2 and 5 lie past it.
        (dict(stride_nd=(3, 1), pre_padding=(0, 0), post_padding=(4, 0)), dict(stride=(3, 1)), (2, 3)),
    ],
)
def test_offsets_reading_only_padding_are_left_out(monkeypatch, attrs, kwargs, taps) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 2 if "stride" in kwargs else 7, 6)).astype(np.float32)
    w, b = rng.standard_normal((4, 5, 3, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    seen = []
    original = conv._unfolded
    monkeypatch.setattr(conv, "_unfolded", lambda *a: (seen.append(a[3]), original(*a))[1])
    got = _dilated(x, w, b, **attrs).run(x=x)[0]
    assert seen == [taps]
    if "pre_padding" in attrs:  # the test's own padding, torch's way (left, right, top, bottom)
        pre, post = attrs["pre_padding"], attrs["post_padding"]
        x = np.pad(x, ((0, 0), (0, 0), (pre[0], post[0]), (pre[1], post[1])))
        kwargs = {k: v for k, v in kwargs.items() if k != "padding"}
    np.testing.assert_allclose(got, _float64_conv(x, w, b, **kwargs), rtol=2**-23, atol=1e-7)


def test_an_inf_tap_over_padding_still_makes_nan() -> None:
    """inf x a padding zero is NaN in every framework: an inf kernel keeps all its offsets."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    w[1, 0, 0, 0] = np.inf  # a corner tap, which reads only padding at dilation 12
    got = _dilated(x, w, None, dilation_nd=(12, 12), padding_nd=(12, 12)).run(x=x)[0]
    assert np.isnan(got[0, 1]).all() and np.isfinite(got[0, [0, 2]]).all()


def test_one_kernel_buffer_trimmed_for_two_geometries_is_trimmed_for_each() -> None:
    """Two layers read one 36-value buffer as 3 x 6 and as 6 x 3 kernels, each with live taps (0:2, 0:2): the
    trimmed kernels differ, and each layer must get its own (a cache key without the kernel's shape mixed them)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    w = rng.standard_normal(36).astype(np.float32)
    n = Net()
    xin, weights = n.input("x", x.shape), n.weights(w)
    geometries = (((3, 6), (2, 8)), ((6, 3), (8, 2)))
    for ksize, post in geometries:
        layer = n.net.add_convolution_nd(xin, 2, ksize, weights, trt.Weights())
        layer.dilation_nd, layer.pre_padding, layer.post_padding = (2, 2), (0, 0), post
        n.mark(layer.get_output(0))
    for got, (ksize, post) in zip(n.run(x=x), geometries):
        padded = np.pad(x, ((0, 0), (0, 0), (0, post[0]), (0, post[1])))
        np.testing.assert_allclose(got, _float64_conv(padded, w.reshape((2, 1) + ksize), None, dilation=2), rtol=2**-23)


@pytest.mark.parametrize(
    "size, pre, post", [((3, 3), (4, 4), (2, 2)), ((3, 5), (4, 4), (2, 1)), ((2, 2), (4, 4), (3, 3))]
)
def test_a_kernel_trimmed_to_one_tap_with_uneven_padding(size, pre, post) -> None:
    """Dilation 4 leaves only the centre tap reading the input; the padding past the last window must be cropped
    for the 1 x 1 product, which reads the input as the output's own grid."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2) + size).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    got = _dilated(x, w, None, dilation_nd=(4, 4), pre_padding=pre, post_padding=post).run(x=x)[0]
    padded = np.pad(x, ((0, 0), (0, 0), (pre[0], post[0]), (pre[1], post[1])))
    np.testing.assert_allclose(got, _float64_conv(padded, w, None, dilation=4), rtol=2**-23, atol=1e-7)


def test_a_deconvolution_of_an_empty_map_is_its_bias_over_the_kernel_s_extent() -> None:
    """An input row count of 0: no input pixel contributes, so the output, (0 - 1) + 3 = 2 rows as TensorRT infers,
    is the bias alone (numpy refused the reshape of the empty input with a ValueError that named no layer)."""
    n = Net()
    bias = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
    layer = n.net.add_deconvolution_nd(
        n.input("x", (1, 8, -1, 6)), 4, (3, 3), n.weights(np.ones((8, 4, 3, 3), np.float32)), n.weights(bias)
    )
    n.mark(layer.get_output(0))
    (got,) = n.run(x=np.ones((1, 8, 0, 6), np.float32))
    np.testing.assert_array_equal(got, np.broadcast_to(bias.reshape(1, 4, 1, 1), (1, 4, 2, 8)))


@pytest.mark.parametrize("shape", [(1, 4, 5, 0), (1, 4, 0, 0), (2, 4, 0, 3)])
@pytest.mark.parametrize("stride", [1, 2])
def test_a_1x1_convolution_of_an_empty_map_is_empty(shape, stride) -> None:
    """A spatial size of 0 with no padding leaves nothing to unfold: the output has TensorRT's shape and no values
    (the reshape of the empty input with a -1 raised a ValueError that named no layer)."""
    n = Net()
    layer = n.net.add_convolution_nd(
        n.input("x", (-1, 4, -1, -1)), 3, (1, 1), n.weights(np.ones((3, 4, 1, 1), np.float32)), trt.Weights()
    )
    layer.stride_nd = (stride, stride)
    n.mark(layer.get_output(0))
    (got,) = n.run(x=np.ones(shape, np.float32))
    want = (shape[0], 3) + tuple(-(-d // stride) for d in shape[2:])
    assert got.shape == want and got.dtype == np.float32
