"""The interpreter is the most accurate party in a comparison: float64 accumulation, one rounding per layer.

Oracles: `math.erf` and `math.erfc` for the vectorised erf, erfc and GELU, 60-digit `decimal` arithmetic for the
activations that cancel in float64, and torch in float64 for networks (the interpreter shares no code
with either). A float32 framework (torch in float32) is the bar the interpreter must beat.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import ml_dtypes
import numpy as np
import pytest

from trtnet.backend import get_trt, logger
from trtnet.interpreter import _common, run_network
from trtnet.interpreter import conv as conv_module
from trtnet.interpreter.elementwise import _activate
from trtnet.interpreter.special import erf, erfc_nonnegative, gelu_erf

trt = get_trt()
torch = pytest.importorskip("torch", reason="torch in float64 is the oracle of these tests")
F = torch.nn.functional


def test_erf_matches_math_erf_to_a_few_ulps() -> None:
    xs = np.concatenate(
        [
            np.linspace(-7, 7, 400_001),
            np.geomspace(1e-300, 1, 20_000),
            -np.geomspace(1e-30, 5.9, 20_000),
            [0.0, -0.0, 6.0, 1e308, -1e308],
        ]
    )
    want = np.array([math.erf(v) for v in xs])
    got = erf(xs)
    rel = np.abs(got - want) / np.maximum(np.abs(want), 1e-300)
    assert rel.max() <= 4e-15, f"worst at x={xs[rel.argmax()]}: {rel.max()}"
    assert np.signbit(erf(np.array([-0.0])))[0]
    special = erf(np.array([np.inf, -np.inf, np.nan]))
    assert special[0] == 1.0 and special[1] == -1.0 and np.isnan(special[2])


def test_erfc_matches_math_erfc_to_its_rounding_of_a_squared() -> None:
    a = np.concatenate([np.linspace(0, 10.4, 200_001), np.geomspace(1e-300, 1, 10_000)])
    want = np.array([math.erfc(v) for v in a])
    rel = np.abs(erfc_nonnegative(a) - want) / want
    # exp(-a^2) of a rounded a^2 is off by up to a^2 ulps of 1, with the table's and exp's own few ulps beside:
    # 3e-16 (a^2 + 8) is 2.4e-15 at 0, 1.3e-14 at a = 6 and 3.5e-14 at the table's end (measured: 1.2e-15, 4.4e-15
    # around a = 4, 1.8e-14 at a = 8.6).
    bound = 3e-16 * (a * a + 8)
    assert np.all(rel <= bound), f"worst at a={a[np.argmax(rel / bound)]}: {rel[np.argmax(rel / bound)]}"
    edges = erfc_nonnegative(np.array([0.0, 27.5, np.inf, np.nan]))
    assert abs(edges[0] - 1.0) <= 2.4e-15 and edges[1] == 0.0 and edges[2] == 0.0 and np.isnan(edges[3])


def test_gelu_rounds_every_float32_output_right_in_its_left_tail_too() -> None:
    # x (1 + erf(x / sqrt 2)) / 2 with 1 + erf computed as such cancels below x = -3: from N(0, 3^2) inputs, one
    # float32 output in 40 came out wrong. math.erfc has no cancellation: the oracle rounds its answer once.
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(200_000) * 3).astype(np.float32).astype(np.float64)
    want = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in x]).astype(np.float32)
    np.testing.assert_array_equal(gelu_erf(x).astype(np.float32), want)
    with np.errstate(invalid="ignore"):
        edges = gelu_erf(np.array([np.inf, np.nan, 0.0, -0.0, -40.0, 40.0]))
    assert edges[0] == np.inf and np.isnan(edges[1]) and edges[5] == 40.0
    assert edges[2] == 0.0 and edges[3] == 0.0 and np.signbit(edges[3]) and edges[4] == 0.0 and np.signbit(edges[4])


def _decimal_activation(kind: str, v: float) -> float:
    """GELU_TANH or ELU (alpha 1) of one value, in 60-digit decimal arithmetic: an oracle with no cancellation."""
    d = Decimal(v)
    if kind == "ELU":
        return v if v >= 0 else float(d.exp() - 1)
    pi = Decimal("3.14159265358979323846264338327950288419716939937510582097494459")
    u = (2 / pi).sqrt() * (d + Decimal("0.044715") * d**3)
    return float(d / (1 + (-2 * u).exp()))


@pytest.mark.parametrize("kind", ["GELU_TANH", "ELU"])
def test_tanh_gelu_and_elu_round_every_float32_output_right(kind: str) -> None:
    # 1 + tanh(u) cancels in GELU_TANH's left tail (3% of N(0, 3^2)'s float32 outputs came out off), exp(x) - 1 in
    # ELU near 0 (a sixth of them for x in -[1e-12, 1e-3]); the oracle computes in 60 digits and rounds once.
    rng = np.random.default_rng(6)
    x = (rng.standard_normal(10_000) * 3).astype(np.float32).astype(np.float64)
    if kind == "ELU":
        x = np.concatenate([x, -np.geomspace(1e-12, 1e-3, 10_000).astype(np.float32).astype(np.float64)])
    with localcontext() as context:
        context.prec = 60
        want = np.array([_decimal_activation(kind, float(v)) for v in x]).astype(np.float32)
    np.testing.assert_array_equal(_activate(kind, x, 1.0, 0.0).astype(np.float32), want)


class _Net:
    def __init__(self) -> None:
        self.builder = trt.Builder(logger())
        self.net = self.builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        self.keep: list[np.ndarray] = []

    def weights(self, arr: np.ndarray):
        arr = np.ascontiguousarray(arr, np.float32)
        self.keep.append(arr)
        return trt.Weights(arr)


def _deep_net(depth: int, channels: int, rng: np.random.Generator):
    """depth x (3x3 conv, channels -> channels, then sigmoid * 4 - 2): rounding errors compound through it."""
    n = _Net()
    x = n.net.add_input("x", trt.float32, (1, channels, 12, 12))
    t = x
    kernels = []
    for _ in range(depth):
        w = (rng.standard_normal((channels, channels, 3, 3)) * (3.0 / math.sqrt(9 * channels))).astype(np.float32)
        kernels.append(w)
        conv = n.net.add_convolution_nd(t, channels, (3, 3), n.weights(w), trt.Weights())
        conv.padding_nd = (1, 1)
        s = n.net.add_activation(conv.get_output(0), trt.ActivationType.SIGMOID)
        scale = n.net.add_scale(
            s.get_output(0),
            trt.ScaleMode.UNIFORM,
            n.weights(np.array([-2.0])),
            n.weights(np.array([4.0])),
            trt.Weights(),
        )
        t = scale.get_output(0)
    n.net.mark_output(t)
    return n, kernels


def _torch_deep(x: np.ndarray, kernels: list[np.ndarray], dtype) -> np.ndarray:
    t = torch.from_numpy(x).to(dtype)
    for w in kernels:
        t = torch.sigmoid(F.conv2d(t, torch.from_numpy(w).to(dtype), padding=1)) * 4 - 2
    return t.double().numpy()


def test_deep_network_is_closer_to_exact_than_float32_torch() -> None:
    rng = np.random.default_rng(7)
    n, kernels = _deep_net(depth=16, channels=48, rng=rng)
    x = rng.standard_normal((1, 48, 12, 12)).astype(np.float32)
    got = run_network(n.net, {"x": x})
    (out,) = got.values()
    assert out.dtype == np.float32
    exact = _torch_deep(x, kernels, torch.float64)
    f32 = _torch_deep(x, kernels, torch.float32)
    err_interp = np.abs(out - exact).max()
    err_f32 = np.abs(f32 - exact).max()
    # One rounding per layer output against float32 accumulation inside every layer (measured: 8x apart).
    assert err_interp < err_f32 / 4, (err_interp, err_f32)


@pytest.mark.parametrize(
    ("groups", "c_in", "c_out", "stride", "dilation", "kernel"),
    [
        (1, 6, 8, 1, 1, 3),
        (2, 6, 8, 2, 1, 3),
        (6, 6, 12, 1, 2, 3),
        (6, 6, 6, 2, 1, 5),
        (3, 6, 6, 1, 1, 1),
        (1, 5, 4, 3, 1, 1),
    ],
    ids=[
        "dense",
        "grouped-strided",
        "depthwise-multiplier-dilated",
        "depthwise-5x5-strided",
        "grouped-1x1",
        "strided-1x1",
    ],
)
@pytest.mark.parametrize("banded", [False, True], ids=["whole", "banded"])
def test_convolution_forms_match_float64_torch(
    monkeypatch, groups, c_in, c_out, stride, dilation, kernel, banded
) -> None:
    if banded:  # the unfolded input built a few output rows at a time, depthwise taps a few groups at a time
        monkeypatch.setattr(conv_module, "_COLUMNS_BUDGET", 200)
        monkeypatch.setattr(conv_module, "_TAPWISE_BLOCK", 40)
    rng = np.random.default_rng(3)
    n = _Net()
    x = rng.standard_normal((2, c_in, 11, 10)).astype(np.float32)
    w = rng.standard_normal((c_out, c_in // groups, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    layer = n.net.add_convolution_nd(
        n.net.add_input("x", trt.float32, x.shape), c_out, (kernel, kernel), n.weights(w), n.weights(b)
    )
    layer.num_groups, layer.stride_nd, layer.dilation_nd = groups, (stride, stride), (dilation, dilation)
    layer.padding_nd = (kernel // 2, kernel // 2)
    n.net.mark_output(layer.get_output(0))
    (got,) = run_network(n.net, {"x": x}).values()
    want = F.conv2d(
        torch.from_numpy(x).double(),
        torch.from_numpy(w).double(),
        torch.from_numpy(b).double(),
        stride=stride,
        padding=kernel // 2,
        dilation=dilation,
        groups=groups,
    ).numpy()
    assert got.shape == want.shape
    # Exact up to the one rounding of the output to float32.
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=0, atol=np.abs(want).max() * 2**-23)


@pytest.mark.parametrize(("groups", "stride"), [(1, 2), (2, 2), (4, 1)], ids=["dense", "grouped", "depthwise"])
def test_deconvolution_matches_float64_torch(groups, stride) -> None:
    rng = np.random.default_rng(4)
    n = _Net()
    x = rng.standard_normal((1, 4, 5, 6)).astype(np.float32)
    w = rng.standard_normal((4, 8 // groups if groups != 4 else 1, 3, 3)).astype(np.float32)
    c_out = w.shape[1] * groups
    layer = n.net.add_deconvolution_nd(
        n.net.add_input("x", trt.float32, x.shape), c_out, (3, 3), n.weights(w), trt.Weights()
    )
    layer.num_groups, layer.stride_nd, layer.padding_nd = groups, (stride, stride), (1, 1)
    n.net.mark_output(layer.get_output(0))
    (got,) = run_network(n.net, {"x": x}).values()
    want = F.conv_transpose2d(
        torch.from_numpy(x).double(), torch.from_numpy(w).double(), stride=stride, padding=1, groups=groups
    ).numpy()
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=0, atol=np.abs(want).max() * 2**-23)


def test_matmul_and_gelu_match_float64_torch() -> None:
    rng = np.random.default_rng(5)
    n = _Net()
    a = rng.standard_normal((2, 3, 17, 300)).astype(np.float32)
    b = rng.standard_normal((300, 40)).astype(np.float32) / 17
    mm = n.net.add_matrix_multiply(
        n.net.add_input("a", trt.float32, a.shape),
        trt.MatrixOperation.NONE,
        n.net.add_constant((1, 1, 300, 40), n.weights(b)).get_output(0),
        trt.MatrixOperation.NONE,
    )
    gelu = n.net.add_activation(mm.get_output(0), trt.ActivationType.GELU_ERF)
    n.net.mark_output(gelu.get_output(0))
    (got,) = run_network(n.net, {"a": a}).values()
    want = F.gelu(torch.from_numpy(a).double() @ torch.from_numpy(b).double()).numpy()
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=0, atol=np.abs(want).max() * 2**-23)


def _bfloat16_nearest(y: np.ndarray) -> np.ndarray:
    """float64 y (normal in bfloat16's range) rounded to 8 significant bits, to nearest, ties to even, on its bit
    pattern: 45 of float64's 52 stored bits dropped at once. The result is a bfloat16 value, so its cast is exact."""
    bits = y.astype(np.float64).view(np.uint64)
    drop = np.uint64(45)
    keep = (bits >> drop) & np.uint64(1)
    bits = (bits + (np.uint64((1 << 44) - 1) + keep)) >> drop << drop
    return bits.view(np.float64).astype(ml_dtypes.bfloat16)


def test_float64_rounds_to_bfloat16_once() -> None:
    rng = np.random.default_rng(12)
    mid = (1 + 2.0**-8) * np.exp2(rng.integers(-120, 120, 20_000)).astype(np.float64)  # halfway between two
    y = np.concatenate(
        [
            rng.standard_normal(200_000) * np.exp2(rng.uniform(-100, 100, 200_000)),
            mid,  # ties: to even
            np.nextafter(mid, np.inf),  # just above: up (by way of float32, these became ties and went down)
            np.nextafter(mid, 0),
            -mid * (1 + 2.0**-30),
        ]
    )
    got = _common.rounded(y, np.dtype(ml_dtypes.bfloat16))
    np.testing.assert_array_equal(got.astype(np.float64), _bfloat16_nearest(y).astype(np.float64))
    edges = _common.rounded(np.array([np.nan, np.inf, -np.inf, -0.0, 1e39, -1e-50]), np.dtype(ml_dtypes.bfloat16))
    edges = edges.astype(np.float64)
    assert np.isnan(edges[0]) and list(edges[1:4]) == [np.inf, -np.inf, 0.0] and np.signbit(edges[3])
    assert edges[4] == np.inf and edges[5] == 0.0 and np.signbit(edges[5])


@pytest.mark.parametrize(
    ("groups", "c_in", "c_out", "kernel", "stride"),
    [(1, 32, 32, 3, 1), (24, 24, 24, 3, 1), (1, 6, 8, 5, 2)],
    ids=["dense-winograd", "depthwise", "dense-unfolded"],
)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_convolutions_round_the_exact_sum_once(groups, c_in, c_out, kernel, stride, dtype) -> None:
    # Products of half or bfloat16 values have at most 22 bits, so float64 holds these sums exactly: rounding the
    # float64 sum once to the layer's type is the correctly rounded answer, and every output must be it.
    np_type = np.dtype(np.float16) if dtype == "float16" else np.dtype(ml_dtypes.bfloat16)
    trt_type = trt.float16 if dtype == "float16" else trt.bfloat16
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, c_in, 11, 12)).astype(np_type)
    w = (rng.standard_normal((c_out, c_in // groups, kernel, kernel)) / 4).astype(np_type)
    b = rng.standard_normal(c_out).astype(np_type)
    builder = trt.Builder(logger())
    net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    keep = [np.ascontiguousarray(w.reshape(-1)), np.ascontiguousarray(b)]
    weights = [trt.Weights(trt_type, a.ctypes.data, a.size) for a in keep]
    layer = net.add_convolution_nd(net.add_input("x", trt_type, x.shape), c_out, (kernel, kernel), *weights)
    layer.num_groups, layer.stride_nd, layer.padding_nd = groups, (stride, stride), (kernel // 2, kernel // 2)
    net.mark_output(layer.get_output(0))
    (got,) = run_network(net, {"x": x}).values()
    exact = F.conv2d(
        torch.from_numpy(x.astype(np.float64)),
        torch.from_numpy(w.astype(np.float64)),
        torch.from_numpy(b.astype(np.float64)),
        stride=stride,
        padding=kernel // 2,
        groups=groups,
    ).numpy()
    assert got.dtype == np_type
    want = exact.astype(np_type) if dtype == "float16" else _bfloat16_nearest(exact)  # numpy's half cast: once
    np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64))


def test_a_bfloat16_convolution_rounds_its_exact_sum_once() -> None:
    # 1 + 2^-8 + 2^-30, exact in float64, is just above the midpoint between bfloat16's 1 and 1 + 2^-7: the one
    # rounding goes up. By way of float32 it first became the midpoint itself, then 1.0 (ties to even).
    bf16 = np.dtype(ml_dtypes.bfloat16)
    x = np.array([1.0, 2.0**-8, 2.0**-30], bf16).reshape(1, 3, 1, 1) * np.ones((1, 3, 2, 2), bf16)
    w = np.ones(3, bf16)
    builder = trt.Builder(logger())
    net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    layer = net.add_convolution_nd(
        net.add_input("x", trt.bfloat16, x.shape), 1, (1, 1), trt.Weights(trt.bfloat16, w.ctypes.data, 3), trt.Weights()
    )
    net.mark_output(layer.get_output(0))
    (got,) = run_network(net, {"x": x}).values()
    np.testing.assert_array_equal(got.astype(np.float64), np.full((1, 1, 2, 2), 1 + 2.0**-7))
