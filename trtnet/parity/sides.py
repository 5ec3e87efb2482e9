"""Two tensors of one module call compared, trtnet's against the PyTorch source's (`trtnet.parity.blame`):
the relative error where their shapes agree or one is a view of the other, through a transposition where the
source lays the same values out in another axis order, or not comparable, with the reason."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass
class Side:
    """One tensor of one call, compared: its shape here, and its error against the reference (None: not
    comparable, `note` says why)."""

    shape: tuple[int, ...]
    error: float | None
    note: str = ""
    resized: bool = False  # another number of elements than the reference's

    def departs(self, tolerance: float) -> bool:
        return self.error is not None and not self.error <= tolerance  # NaN departs


def compare(got: np.ndarray, want: np.ndarray) -> Side:
    """`got` against `want`: the relative error where their shapes agree or one is a view of the other (dims
    merged or split, as [B, H, W, C] and [B, H*W, C]); a different size is a departure (error inf) when the
    inputs agree; the same size in another layout (a transposition) is not comparable."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        if got.size != want.size:  # a departure if its inputs agree (see _pair), else computed on other data
            return Side(got.shape, None, f"shape {list(got.shape)}, the reference's {list(want.shape)}", resized=True)
        if not _views(got.shape, want.shape):
            return _transposed(got, want)
        got = got.reshape(want.shape)
    scale = np.abs(want).max() if want.size else 0.0
    diff = np.abs(got - want).max() if want.size else 0.0
    return Side(tuple(got.shape), float(diff / (scale if scale > 0 else 1.0)))


def _transposed(got: np.ndarray, want: np.ndarray) -> Side:
    """`got` in another axis order than `want` (NCHW where the source has NHWC: ConvNeXt's blocks): compared
    through each transposition that gives `want`'s shape, the closest counting; else not comparable."""
    orders = [p for p in itertools.permutations(range(got.ndim)) if tuple(got.shape[i] for i in p) == want.shape]
    if not orders or got.ndim != want.ndim:
        return Side(got.shape, None, f"laid out as {list(got.shape)}, the reference as {list(want.shape)}")
    scale = np.abs(want).max() if want.size else 0.0
    error = min(float(np.abs(got.transpose(p) - want).max()) for p in orders) / (scale if scale > 0 else 1.0)
    return Side(got.shape, error, f"compared transposed to the reference's {list(want.shape)}")


def _views(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether shapes `a` and `b` (of one size) hold the same elements in the same order: cut both where their
    running products meet, each piece is a single dim on one side at least (a merge or a split, never a
    transposition in disguise). Size-1 dims are left out first."""
    a, b = [d for d in a if d != 1], [d for d in b if d != 1]
    i = j = 0
    while i < len(a) or j < len(b):
        pa, pb, ni, nj = a[i] if i < len(a) else 1, b[j] if j < len(b) else 1, i + 1, j + 1
        while pa != pb:
            if pa < pb and ni < len(a):
                pa, ni = pa * a[ni], ni + 1
            elif pb < pa and nj < len(b):
                pb, nj = pb * b[nj], nj + 1
            else:
                return False
        if ni - i > 1 and nj - j > 1:
            return False
        i, j = ni, nj
    return True
