"""The WeightCache (trtnet/interpreter/weightcache.py): derived kernels kept across runs, and what they cost."""

from __future__ import annotations

import numpy as np

from trtnet.backend import get_trt, logger
from trtnet.interpreter import Interpreter, conv

trt = get_trt()


def _dense_conv(kernel: np.ndarray, channels: int, side: int):
    builder = trt.Builder(logger())
    net = builder.create_network(0)
    x = net.add_input("x", trt.float32, (1, channels, side, side))
    layer = net.add_convolution_nd(x, channels, (3, 3), kernel, trt.Weights())
    layer.get_output(0).name = "y"
    net.mark_output(layer.get_output(0))
    return builder, net


def _direct(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The valid 3x3 convolution in float64, rounded once."""
    c = x.shape[1]
    w = kernel.astype(np.float64).reshape(c, c, 3, 3)
    side = x.shape[2] - 2
    windows = np.lib.stride_tricks.sliding_window_view(x[0].astype(np.float64), (3, 3), axis=(1, 2))
    return np.einsum("cijkl,ockl->oij", windows[:, :side, :side], w)[None].astype(np.float32)


def test_a_kernel_kept_transposed_replaces_its_float64_twin_from_the_second_run():
    """A dense convolution with few output positions runs its product transposed; the transposed kernel is the
    one float64 copy kept, and a first run (which keeps no large buffer widened) makes neither."""
    channels, side = 96, 7  # 82,944 taps: a large buffer; 5 x 5 = 25 output positions: the transposed product
    assert 25 < conv._FEW_POSITIONS
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal(channels * channels * 9).astype(np.float32)
    builder, net = _dense_conv(kernel, channels, side)
    prepared = Interpreter(net)
    kept = []
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((1, channels, side, side)).astype(np.float32)
        got = prepared.run({"x": x})["y"]
        np.testing.assert_allclose(got, _direct(x, kernel), rtol=2e-7, atol=1e-6)
        cache = prepared._cache
        derived = [v for k, v in cache._derived.items() if k[-1] == f"transposed/{channels}"]
        kept.append((len(derived), len(cache._store)))
        if derived:
            assert derived[0].shape == (channels * 9, channels) and derived[0].flags.c_contiguous
    assert kept == [(0, 0), (1, 0), (1, 0)], kept
