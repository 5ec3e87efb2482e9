"""Winograd's F(2x2, 3x3) convolutions (trtnet/interpreter/winograd.py): exact up to the one rounding of the
output, taken only where it applies, and its transformed kernel kept like the widened weights it comes from."""

from __future__ import annotations

import numpy as np
import pytest

from trtnet.backend import get_trt, logger
from trtnet.interpreter import Interpreter, run_network, winograd

trt = get_trt()


def _conv_network(x_shape, kernel: np.ndarray, bias: np.ndarray | None, **settings):
    """x -> one 3x3 convolution (kernel [K, C, 3, 3]) with the given layer settings -> output "y"."""
    builder = trt.Builder(logger())
    net = builder.create_network(0)
    conv = net.add_convolution_nd(
        net.add_input("x", trt.float32, x_shape),
        kernel.shape[0],
        kernel.shape[2:],
        kernel.reshape(-1),
        trt.Weights() if bias is None else bias,
    )
    for name, value in settings.items():
        setattr(conv, name, value)
    conv.get_output(0).name = "y"
    net.mark_output(conv.get_output(0))
    return builder, net, conv


def _exact(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, pre, post) -> np.ndarray:
    """The convolution in 64-bit-mantissa long double: float32 products are exact there, and the sums of a few
    hundred of them are within 1e-17 relative, so rounding this to float32 is the correctly rounded answer."""
    xp = np.pad(x.astype(np.longdouble), ((0, 0), (0, 0), (pre[0], post[0]), (pre[1], post[1])))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # [N, C, H, W, 3, 3]
    out = np.einsum("nchwij,kcij->nkhw", windows, kernel.astype(np.longdouble))
    if bias is not None:
        out += bias.astype(np.longdouble)[:, None, None]
    return out


@pytest.fixture
def products(monkeypatch) -> list[tuple[int, ...]]:
    """The shapes of the 16-position products Winograd runs (so a test knows the path was taken)."""
    seen: list[tuple[int, ...]] = []
    original = winograd._products

    def spy(u, v, out):
        seen.append(v.shape)
        original(u, v, out)

    monkeypatch.setattr(winograd, "_products", spy)
    return seen


@pytest.mark.parametrize(
    ("batch", "c_in", "c_out", "size", "pre", "post", "bias"),
    [
        (1, 32, 32, (8, 8), (1, 1), (1, 1), True),  # the smallest that qualifies, even outputs
        (2, 40, 36, (11, 10), (1, 1), (1, 1), True),  # odd height: the last tile row half outside
        (1, 64, 48, (13, 9), (0, 2), (2, 1), False),  # asymmetric padding, odd both ways, no bias
    ],
    ids=["even", "odd-batch2", "asymmetric-nobias"],
)
@pytest.mark.parametrize("banded", [False, True], ids=["whole", "one-tile-row-bands"])
def test_every_output_is_the_exact_convolution_rounded_once(
    monkeypatch, products, batch, c_in, c_out, size, pre, post, bias, banded
) -> None:
    if banded:
        monkeypatch.setattr(winograd, "_BAND_VALUES", 1)
        monkeypatch.setattr(winograd, "_MIN_TILES", 1)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((batch, c_in, *size)).astype(np.float32)
    # Inputs and weights spanning six orders of magnitude: the transforms' sums must stay exact.
    x *= np.exp(rng.uniform(-7, 7, x.shape)).astype(np.float32)
    kernel = (rng.standard_normal((c_out, c_in, 3, 3)) * np.exp(rng.uniform(-7, 7, (c_out, c_in, 3, 3)))).astype(
        np.float32
    )
    b = rng.standard_normal(c_out).astype(np.float32) if bias else None
    _builder, net, _conv = _conv_network(x.shape, kernel, b, pre_padding=pre, post_padding=post)
    got = run_network(net, {"x": x})["y"]
    want = _exact(x, kernel, b, pre, post)
    assert got.shape == want.shape
    assert products, "the convolution did not run as Winograd's"
    tiles = {shape[-1] for shape in products}
    assert (max(tiles) <= -(-want.shape[3] // 2)) if banded else len(products) == batch
    wrong = np.flatnonzero(got != want.astype(np.float32))
    assert wrong.size == 0, f"{wrong.size} of {got.size} outputs not the exact value rounded once"


def test_kernel_transform_is_g_times_kernel_times_g_transposed() -> None:
    rng = np.random.default_rng(2)
    # float32 values, as weights are: their transform is then exact both ways, and the two must agree bit for bit.
    kernel = rng.standard_normal((5, 4, 3, 3)).astype(np.float32).astype(np.float64)
    g = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
    u, reach = winograd._split(winograd._kernel_transform(kernel.reshape(-1), 5), 5)
    assert u.shape == (16, 5, 4)
    for k in range(5):
        for c in range(4):
            np.testing.assert_array_equal(u[:, k, c].reshape(4, 4), g @ kernel[k, c] @ g.T)
    # The error bound's factors: max_c |U| at each of the 16 positions, times (C + 16) 2^-53 / 2^-24, summed over
    # the positions whose |B|-transformed inputs coincide (rows and columns 1 and 2 of a tile's transform).
    merged = {0: 0, 1: 1, 2: 1, 3: 2}
    want = np.zeros((5, 9))
    for a in range(16):
        want[:, 3 * merged[a // 4] + merged[a % 4]] += np.abs(u[a]).max(axis=1) * (4 + 16) * 2.0**-29
    np.testing.assert_allclose(reach, want, rtol=1e-15)


@pytest.mark.parametrize(
    ("change", "applies"),
    [
        ({}, True),
        ({"ksize": (5, 5)}, False),
        ({"stride": (2, 2)}, False),
        ({"dilation": (2, 2)}, False),
        ({"groups": 2}, False),
        ({"c_in": 16}, False),
        ({"k_out": 16}, False),
        ({"out": (7, 40)}, False),
        ({"ksize": (3, 3, 3), "stride": (1, 1, 1), "dilation": (1, 1, 1), "out": (9, 9, 9)}, False),
    ],
)
def test_only_large_dense_3x3_stride_1_convolutions_take_it(change, applies) -> None:
    geometry = {
        "ksize": (3, 3),
        "stride": (1, 1),
        "dilation": (1, 1),
        "groups": 1,
        "c_in": 32,
        "k_out": 32,
        "out": (8, 8),
    }
    geometry.update(change)
    assert winograd.applies(**geometry) is applies


def test_a_prepared_network_keeps_the_transformed_kernel_until_its_weights_are_set_anew(monkeypatch) -> None:
    made: list[int] = []
    original = winograd._kernel_transform

    def counted(w, k_out):
        made.append(k_out)
        return original(w, k_out)

    monkeypatch.setattr(winograd, "_kernel_transform", counted)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 32, 10, 10)).astype(np.float32)
    kernel = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    _builder, net, conv = _conv_network(x.shape, kernel, None, padding_nd=(1, 1))
    prepared = Interpreter(net)
    first = prepared.run({"x": x})["y"]
    np.testing.assert_array_equal(prepared.run({"x": x})["y"], first)
    assert len(made) == 1  # a small kernel is kept from the first run on, and its transform with it
    np.testing.assert_array_equal(first, _exact(x, kernel, None, (1, 1), (1, 1)).astype(np.float32))
    other = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    conv.kernel = other.reshape(-1)  # a new buffer: transformed afresh
    np.testing.assert_array_equal(
        prepared.run({"x": x})["y"], _exact(x, other, None, (1, 1), (1, 1)).astype(np.float32)
    )
    assert len(made) == 2
    run_network(net, {"x": x})  # a one-off run keeps nothing
    run_network(net, {"x": x})
    assert len(made) == 4


def _one_conv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """x through one padded 3x3 convolution of `kernel` (no bias), run once."""
    _builder, net, _conv = _conv_network(x.shape, kernel, None, padding_nd=(1, 1))
    return run_network(net, {"x": x})["y"]


@pytest.mark.parametrize("where", ["input", "kernel"])
def test_an_inf_sends_the_layer_to_the_unfolded_product(products, where) -> None:
    # An inf's transforms meet with both signs (inf - inf): Winograd would make NaN where the answer is +-inf.
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 32, 8, 8)).astype(np.float32)
    kernel = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    if where == "input":
        x[0, 0, 3, 3] = np.inf
    else:
        kernel[0, 0, 1, 1] = np.inf
    got = _one_conv(x, kernel)
    want = _exact(x, kernel, None, (1, 1), (1, 1)).astype(np.float32)
    assert not products
    np.testing.assert_array_equal(got, want)  # inf, -inf and NaN where the exact convolution has them
    assert np.isinf(got).any()


def test_a_tap_far_above_its_channel_sends_the_layer_to_the_unfolded_product(products) -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 32, 8, 8)).astype(np.float32)
    kernel = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    kernel[0, 0, 0, 0] = 1e3  # hundreds of times the median: Winograd keeps every output right
    np.testing.assert_array_equal(_one_conv(x, kernel), _exact(x, kernel, None, (1, 1), (1, 1)).astype(np.float32))
    assert products
    products.clear()
    # 1e10 times the rest: where the tap meets the zero padding its rounding would land in the outputs beside
    # (359 float32 ulps off, measured), so the layer goes unfolded and every output stays the exact one rounded.
    kernel[0, 0, 0, 0] = 1e10
    np.testing.assert_array_equal(_one_conv(x, kernel), _exact(x, kernel, None, (1, 1), (1, 1)).astype(np.float32))
    assert not products


def test_two_layers_sharing_one_kernel_buffer_in_other_shapes_each_get_their_own_transform(products) -> None:
    # One buffer read as [32, 64, 3, 3] by the first layer and [64, 32, 3, 3] by the second: the transformed
    # kernel is kept per buffer and output channel count, so neither takes the other's.
    rng = np.random.default_rng(10)
    flat = rng.standard_normal(32 * 64 * 9).astype(np.float32)
    builder = trt.Builder(logger())
    net = builder.create_network(0)
    first = net.add_convolution_nd(net.add_input("x", trt.float32, (1, 64, 8, 8)), 32, (3, 3), flat, trt.Weights())
    first.padding_nd = (1, 1)
    second = net.add_convolution_nd(first.get_output(0), 64, (3, 3), flat, trt.Weights())
    second.padding_nd = (1, 1)
    second.get_output(0).name = "y"
    net.mark_output(second.get_output(0))
    x = rng.standard_normal((1, 64, 8, 8)).astype(np.float32)
    prepared = Interpreter(net)
    for _ in range(2):
        got = prepared.run({"x": x})["y"]
        middle = _exact(x, flat.reshape(32, 64, 3, 3), None, (1, 1), (1, 1)).astype(np.float32)
        np.testing.assert_array_equal(
            got, _exact(middle, flat.reshape(64, 32, 3, 3), None, (1, 1), (1, 1)).astype(np.float32)
        )
    assert len(products) == 4


@pytest.fixture
def recomputed(monkeypatch) -> list[int]:
    """How many outputs each Winograd band computed again directly."""
    counts: list[int] = []
    original = winograd._direct

    def spy(image, weights, k, i, j):
        counts.append(k.size)
        return original(image, weights, k, i, j)

    monkeypatch.setattr(winograd, "_direct", spy)
    return counts


def test_a_masked_kernel_over_a_black_region_keeps_its_exact_zeros(products, recomputed) -> None:
    # A PixelCNN-style mask (5 of 9 taps, none below the centre) over an image black above row 7: row 6 sees only
    # black through the mask, so it is exactly 0. Winograd's tiles also hold row 7, whose products cancel there
    # only up to float64 rounding (1e-13 was left), so those outputs must be computed again, directly.
    rng = np.random.default_rng(12)
    mask = np.array([[1, 1, 1], [1, 1, 0], [0, 0, 0]], np.float32)
    kernel = (rng.standard_normal((32, 32, 3, 3)) * 0.05).astype(np.float32) * mask
    x = np.zeros((1, 32, 16, 16), np.float32)
    x[:, :, 7:] = rng.uniform(0, 255, (1, 32, 9, 16)).astype(np.float32)
    got = _one_conv(x, kernel)
    want = _exact(x, kernel, None, (1, 1), (1, 1)).astype(np.float32)
    assert products and sum(recomputed) > 0
    assert not got[:, :, :7].any()  # rows 0-6: exact zeros, +0.0 as the direct sum makes them
    np.testing.assert_array_equal(got, want)


def test_a_large_pixel_behind_zero_taps_leaves_no_residue(products, recomputed) -> None:
    # Channel 0's filters have a zero right column (3 taps of 288 a filter: the tap check passes) and channel 0
    # one pixel 1e10 times the rest. Where only zero taps meet the pixel, the direct sum never sees it; Winograd's
    # U mixes every tap of a filter, so the pixel's products enter and cancel only up to float64 rounding
    # (120 float32 ulps off, measured) unless those outputs are computed again.
    rng = np.random.default_rng(13)
    x = rng.standard_normal((1, 32, 12, 12)).astype(np.float32)
    x[0, 0, 5, 5] = 1e10
    kernel = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    kernel[:, 0, :, 2] = 0.0
    got = _one_conv(x, kernel)
    assert products and 0 < sum(recomputed) < got.size // 4  # the outputs beside it, not the layer
    np.testing.assert_array_equal(got, _exact(x, kernel, None, (1, 1), (1, 1)).astype(np.float32))


def test_a_bias_that_cancels_an_output_is_part_of_its_check(products) -> None:
    # The bound must be below 2^-24 of the output the bias makes: checked before the bias, an output that the bias
    # cancels kept Winograd's float64 residue (1e-9 where the answer is 0, millions of ulps where it is 1e-6).
    rng = np.random.default_rng(15)
    x = (rng.integers(256, 512, (1, 32, 8, 8)) / 256).astype(np.float32)  # multiples of 1/256 in [1, 2)
    kernel = (rng.integers(16, 96, (32, 32, 3, 3)) / 64).astype(np.float32)  # multiples of 1/64: exact sums
    # Full 24-bit taps where output (0, 0) meets only the zero padding: its exact value stays a float32, but
    # Winograd's products of these taps (they meet the other outputs' inputs) round.
    kernel[:, :, 0, :] = rng.uniform(0.5, 1.5, (32, 32, 3)).astype(np.float32)
    kernel[:, :, :, 0] = rng.uniform(0.5, 1.5, (32, 32, 3)).astype(np.float32)
    kernel[:, 0, :, 2] = 0.0  # channel 0's right column is zero ...
    x[0, 0, 0, 1] = 1e6  # ... and meets this pixel in output (0, 0)'s window: no product of the direct sum
    exact = _exact(x, kernel, None, (1, 1), (1, 1))[0, :, 0, 0]
    assert (exact.astype(np.float32) == exact).all()  # a float32 each: a float32 bias cancels it exactly
    bias = (-exact).astype(np.float32)
    _builder, net, _conv = _conv_network(x.shape, kernel, bias, padding_nd=(1, 1))
    got = run_network(net, {"x": x})["y"]
    assert products
    assert not got[0, :, 0, 0].any()  # the exact answer, 0, in every channel
    np.testing.assert_array_equal(got, _exact(x, kernel, bias, (1, 1), (1, 1)).astype(np.float32))


def test_the_tap_check_samples_every_tap_position(products) -> None:
    # At 64 input channels a median of every 9th tap would see only one position: large corner taps passed.
    rng = np.random.default_rng(14)
    x = rng.standard_normal((1, 64, 10, 10)).astype(np.float32)
    kernel = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    kernel[:, :, 0, 0] = 1e10
    np.testing.assert_array_equal(_one_conv(x, kernel), _exact(x, kernel, None, (1, 1), (1, 1)).astype(np.float32))
    assert not products
