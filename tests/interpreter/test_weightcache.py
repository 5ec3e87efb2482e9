"""The WeightCache (trtnet/interpreter/weightcache.py): derived kernels kept across runs, what they cost, and the
scratch buffer a first run widens large weights into."""

from __future__ import annotations

import numpy as np

from trtnet.backend import get_trt, logger
from trtnet.interpreter import Interpreter, conv, matrix, weightcache
from trtnet.interpreter.weightcache import WeightCache

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


def test_transient_wide_reuses_the_scratch_in_the_memory_order_astype_gives():
    """Within a prepared run, a matrix widened for one product goes into the cache's scratch buffer, laid out as
    `astype` lays it out (row-major, column-major, or a column block of either), so that BLAS is handed the same
    product; outside a run it is a fresh widened copy."""
    from trtnet.interpreter._common import ACTIVE_CACHE, transient_wide

    rng = np.random.default_rng(1)
    rows = rng.standard_normal((40, 30)).astype(np.float32)
    cases = [rows, rows.T, rows[:, 5:17], rows.T[:, 3:11], rows.astype(np.float16)]
    assert not isinstance(transient_wide(rows).base, np.ndarray)  # no run: a copy of its own
    cache = WeightCache()
    token = ACTIVE_CACHE.set(cache)
    try:
        for x in cases:
            got, want = transient_wide(x), x.astype(np.float64)
            np.testing.assert_array_equal(got, want)
            assert got.strides == want.strides, (x.strides, got.strides, want.strides)
            assert np.shares_memory(got, cache.scratch(0))
        assert cache.scratch(0).size == rows.size  # grown to the largest, never reallocated for a smaller one
    finally:
        ACTIVE_CACHE.reset(token)


def test_the_scratch_is_kept_while_runs_use_it_and_let_go_after_one_that_does_not():
    cache = WeightCache()
    cache.start_run()
    buffer = cache.scratch(1000)
    cache.start_run()  # the last run used it: kept
    assert cache.scratch(10) is buffer
    cache.start_run()
    cache.start_run()  # the last run did not use it: let go
    assert cache._runs.buffer is None


def test_the_scratch_keeps_at_most_its_cap(monkeypatch):
    """A request over the cap (a blocked product's one column of a weight with millions of rows) gets memory of its
    own, and the buffer kept stays as it was."""
    monkeypatch.setattr(weightcache, "_SCRATCH_MAX_VALUES", 100)
    cache = WeightCache()
    cache.start_run()
    kept = cache.scratch(100)
    big = cache.scratch(101)
    assert big.size == 101 and not np.shares_memory(big, kept)
    assert cache._runs.buffer is kept


def test_each_thread_has_its_own_scratch():
    """Two threads running one prepared network must not widen weights into the same memory."""
    import threading

    cache = WeightCache()
    mine = cache.scratch(100)
    theirs = []
    worker = threading.Thread(target=lambda: theirs.append(cache.scratch(100)))
    worker.start()
    worker.join()
    assert not np.shares_memory(mine, theirs[0])
    assert cache.scratch(100) is mine


def test_products_with_weights_not_yet_kept_widened_are_the_float64_product_in_every_run(monkeypatch):
    """A weight over the size widened at once is widened into the scratch by the first run (whole, or a block of
    columns at a time past _WHOLE_VALUES), kept from the second: each run is the float64 product rounded once."""
    from tests.interpreter.cases import Net

    monkeypatch.setattr(matrix, "_WHOLE_VALUES", 100_000)  # the 150,000-value weights go a block at a time
    rng = np.random.default_rng(2)
    plain = rng.standard_normal((300, 500)).astype(np.float32)
    transposed = rng.standard_normal((500, 300)).astype(np.float32)
    whole = rng.standard_normal((300, 250)).astype(np.float32)  # 75,000 values: widened whole, but past 2^16
    n = Net()
    x = n.input("x", (3, 300))
    m = trt.MatrixOperation
    outs = [
        n.net.add_matrix_multiply(x, m.NONE, n.const(plain), m.NONE).get_output(0),
        n.net.add_matrix_multiply(x, m.NONE, n.const(transposed), m.TRANSPOSE).get_output(0),
        n.net.add_matrix_multiply(x, m.NONE, n.const(whole), m.NONE).get_output(0),
    ]
    n.mark(*outs)
    prepared = Interpreter(n.net)
    scratch = []
    for seed in range(3):
        xv = np.random.default_rng(seed).standard_normal((3, 300)).astype(np.float32)
        got = list(prepared.run({"x": xv}).values())
        wide = xv.astype(np.float64)
        for y, w in zip(got, (plain, transposed.T, whole)):
            np.testing.assert_array_equal(y, (wide @ w.astype(np.float64)).astype(np.float32))
        scratch.append(prepared._cache._runs.used)
    assert scratch == [True, False, False], scratch  # the first run only: the second keeps the weights widened
    assert prepared._cache._runs.buffer is None  # let go by the third run's start
