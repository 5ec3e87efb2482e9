"""How a tensor's range (amax) is chosen from what calibration saw: fixed-width histograms of magnitudes and
the four methods of `trtnet.quant.calibrate` (max, percentile, entropy, mse) over them."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from trtnet.errors import CalibrationError
from trtnet.ops.quantize import FORMATS

# The most bins a histogram grows to (8 MB of counts). A first batch far smaller than a later one (1e-6 of it)
# asked for 2e9 bins of its width, and a MemoryError; past this, adjacent bins merge and the width doubles.
MAX_BINS = 1 << 20


class Histogram:
    """|x| over batches: the running max and, when the method needs it, a fixed-width histogram."""

    def __init__(self, bins: int, with_hist: bool) -> None:
        self.bins, self.with_hist = bins, with_hist
        self.amax = 0.0
        self.counts: np.ndarray | None = None
        self.width = 0.0

    def add(self, x: np.ndarray) -> None:
        a = np.abs(np.asarray(x, np.float64)).reshape(-1)
        if a.size == 0:
            return
        if not np.all(np.isfinite(a)):
            raise CalibrationError("a calibration tensor holds NaN or infinite values")
        top = float(a.max())
        self.amax = max(self.amax, top)
        if not self.with_hist or top == 0.0:
            return
        if self.counts is None:
            self.width = top / self.bins
            self.counts = np.zeros(self.bins, np.int64)
        n = max(len(self.counts), int(min(np.ceil(top / self.width), 2**62)))
        while n > MAX_BINS:  # bins 2j and 2j + 1 become bin j: the counts stay exact, at half the resolution
            self.counts = np.append(self.counts, np.zeros(len(self.counts) % 2, np.int64)).reshape(-1, 2).sum(1)
            self.width *= 2
            n = max(len(self.counts), int(min(np.ceil(top / self.width), 2**62)))
        if n > len(self.counts):
            self.counts = np.concatenate([self.counts, np.zeros(n - len(self.counts), np.int64)])
        idx = np.minimum((a / self.width).astype(np.int64), n - 1)
        self.counts += np.bincount(idx, minlength=n)

    @property
    def edges(self) -> np.ndarray:
        return np.arange(len(self.counts) + 1) * self.width


def _percentile(h: Histogram, percentile: float) -> float:
    cdf = np.cumsum(h.counts) / h.counts.sum()
    i = int(np.searchsorted(cdf, percentile / 100.0))
    return float(h.edges[min(i + 1, len(h.counts))])


def _candidates(n: int, start: int = 128, most: int = 512) -> range:
    """Bin counts to try as clipping points: every one from `start`, or evenly spaced when there are many."""
    start = min(start, n)
    return range(start, n + 1, max(1, (n - start) // most))


def _entropy(h: Histogram) -> float:
    """TensorRT's KL-divergence calibration over `h` (128 quantization levels for |x|, int8)."""
    counts = h.counts.astype(np.float64)
    levels = 128
    best, best_i = np.inf, len(counts)
    for i in _candidates(len(counts), levels):
        p = counts[:i].copy()
        p[-1] += counts[i:].sum()  # the clipped values land in the last bin
        nonzero = counts[:i] > 0
        q = np.zeros(i)
        bounds = (np.arange(levels + 1) * i) // levels
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            used = nonzero[lo:hi]
            if used.any():
                q[lo:hi][used] = counts[lo:hi].sum() / used.sum()
        ps, qs = p.sum(), q.sum()
        if ps == 0 or qs == 0:
            continue
        p, q = p / ps, q / qs
        m = p > 0
        kl = float(np.sum(p[m] * np.log(p[m] / np.maximum(q[m], 1e-12))))
        if kl < best:
            best, best_i = kl, i
    return float(h.edges[best_i])


def fake_quantize_values(x: np.ndarray, amax: float, fmt: str) -> np.ndarray:
    """x quantized to `fmt` over [-amax, amax] and back (the calibrator's own arithmetic, for the MSE search)."""
    top = FORMATS[fmt].qmax
    scale = amax / top
    y = x / scale
    if fmt == "int8":
        return np.clip(np.rint(y), -top - 1, top) * scale
    return np.clip(y, -top, top).astype(ml_dtypes.float8_e4m3fn).astype(np.float64) * scale


def _mse(h: Histogram, fmt: str) -> float:
    centers = (h.edges[:-1] + h.edges[1:]) / 2
    counts = h.counts.astype(np.float64)
    best, best_amax = np.inf, h.amax
    for i in _candidates(len(counts)):
        amax = float(h.edges[i])
        err = float(np.sum(counts * (fake_quantize_values(centers, amax, fmt) - centers) ** 2))
        if err < best:
            best, best_amax = err, amax
    return best_amax


def choose_amax(h: Histogram, method: str, percentile: float = 99.99, fmt: str = "int8") -> float:
    """The range of one tensor by `method` (see the module docstring)."""
    if method == "max" or h.counts is None:  # a histogram-less (all-zero) tensor has amax 0 whatever the method
        return h.amax
    if method == "percentile":
        return _percentile(h, percentile)
    if method == "entropy":
        return _entropy(h)
    return _mse(h, fmt)
