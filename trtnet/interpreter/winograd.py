"""3x3 stride-1 convolutions as Winograd's F(2x2, 3x3): 16 products of 4 multiplies per 2x2 outputs instead of 36.

Each 4x4 tile d of the input (tiles overlapping by 2) and each 3x3 kernel g are transformed,

    V = B^T d B,   U = G g G^T,   B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
                                  G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]],

the 16 positions of a tile become 16 products U[a] @ V[a] over the input channels (BLAS, in float64), and the
2x2 outputs of a tile are A^T M A with A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]. The input's transform adds and
subtracts four float32 values and the kernel's adds three with factors 1/2 and 1/4: both exact in float64 unless
the values span more than 2^27 of magnitude. So each of the 16 products is a float64 dot product of (nearly)
exact terms, like the direct product's, and the output transform adds 9 of them, then the layer's output is
rounded once, as before. A tile costs 16 multiplies of each input channel for 4 outputs where the unfolded
product takes 36, which is 1.2 to 1.7x faster on VGG16's, ResNet's and YOLOv5's larger layers.

Its rounding errors are float64's, but relative to the terms of the output's 4x4 tile rather than of its own
3x3 window: a kernel tap far larger than the rest of its output channel, whose contributions must cancel where
it meets zeros, leaves its rounding in the outputs beside (measured: a tap 1e8 times the rest put outputs 1
float32 ulp off, 1e10 times 359 ulp; inputs spanning 1e10, none). So a layer runs this way only when every tap
is within 2^16 of its output channel's median |tap| and input and kernel are finite (an inf's transforms meet
with both signs, which makes NaN); the others run unfolded.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from trtnet.interpreter._common import cached_derived

# B^T's rows as (i, j, op): row = d[i] op d[j]; applied to a tile's rows, then to its columns.
_INPUT_ROWS = ((0, 2, np.subtract), (1, 2, np.add), (2, 1, np.subtract), (1, 3, np.subtract))
# The transformed input and products are built this many float64 values at a time per position (4 MB), but at
# least _MIN_TILES tiles wide, below which the 16 products slow down (both measured on VGG16/ResNet shapes).
_BAND_VALUES = 1 << 18
_MIN_TILES = 256
# Below these sizes the unfolded product is as fast or faster (measured: 32 channels at 80x80 ran 8% slower).
_MIN_CHANNELS = 32
_MIN_OUTPUTS = 32
_MIN_SIDE = 8


def applies(
    ksize: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
    c_in: int,
    k_out: int,
    out: tuple[int, ...],
) -> bool:
    """Whether a convolution of this geometry runs as F(2x2, 3x3): 2-D, 3x3, stride and dilation 1, one group,
    and large enough that the transforms pay."""
    return (
        ksize == (3, 3)
        and stride == (1, 1)
        and dilation == (1, 1)
        and groups == 1
        and c_in >= _MIN_CHANNELS
        and k_out >= _MIN_OUTPUTS
        and min(out) >= _MIN_SIDE
    )


def padded_end(
    end: tuple[int, ...], out: tuple[int, ...], sizes: tuple[int, ...], pre: tuple[int, ...]
) -> tuple[int, ...]:
    """The trailing padding that also covers the last tile: tiles cover an even number of outputs."""
    return tuple(max(e, 2 * (-(-o // 2)) + 2 - s - p) for e, o, s, p in zip(end, out, sizes, pre))


# G: 4 x 3, as above; U's 16 positions are kron(G, G) applied to a kernel's 9 taps.
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
_KERNEL_TRANSFORM = np.kron(_G, _G)  # [16 positions, 9 taps]; entries 0, +-1/4, +-1/2, 1
# A tap larger than this times its output channel's median |tap| sends the layer to the unfolded product (see
# above: 2^20 times still left every output correctly rounded, 2^26.6 one ulp off).
_MAX_TAP_RATIO = 2.0**16


def transformed(kernel: np.ndarray, k_out: int) -> np.ndarray | None:
    """U for a layer's flat kernel ([K, C, 3, 3]), kept as long as its widened weights are; None where this
    layer should not run as Winograd's (see above)."""
    u = cached_derived(kernel, f"winograd-2x2-3x3/{k_out}", lambda w: _kernel_transform(w, k_out))
    return u if u.size else None


def finite(x: np.ndarray) -> bool:
    """Whether x holds no inf or NaN (one float64 sum: a float32 array's cannot overflow)."""
    return bool(np.isfinite(np.add.reduce(x, axis=None, dtype=np.float64)))


def _kernel_transform(w: np.ndarray, k_out: int) -> np.ndarray:
    """U = G g G^T for every kernel g of w (flat float64, [K, C, 3, 3]): [16, K, C], each [K, C] contiguous; an
    empty array where a tap is not finite or too large for its channel."""
    taps = np.abs(w.reshape(k_out, -1))
    sample = taps[:, :: max(1, taps.shape[1] // 64)]  # a median of some 64 taps a channel: a first call's time
    typical = np.partition(sample, sample.shape[1] // 2, axis=1)[:, sample.shape[1] // 2]
    if not (np.isfinite(taps).all() and np.all(taps.max(axis=1) <= typical * _MAX_TAP_RATIO)):
        return np.empty(0)
    return (_KERNEL_TRANSFORM @ w.reshape(-1, 9).T).reshape(16, k_out, -1)  # [16, 9] @ [9, K C]: no transpose copy


def convolve(
    x: np.ndarray, u: np.ndarray, k_out: int, out: tuple[int, int], store: Callable[[tuple, np.ndarray], None]
) -> None:
    """x [N, 1, C, Hp, Wp] (float64, padded, Hp and Wp at least 2 ceil(out / 2) + 2); u: `transformed(kernel)`.
    Each band of output rows [K, rows, out[1]] (float64 scratch) goes to store((n, 0, :, rows), band)."""
    n, _, c = x.shape[:3]
    th, tw = -(-out[0] // 2), -(-out[1] // 2)
    width = 2 * tw + 2
    band = max(1, min(th, max(_BAND_VALUES // (16 * max(c, k_out) * tw), -(-_MIN_TILES // tw))))
    v = np.empty((16, c, band * tw), np.float64)
    m = np.empty((16, k_out, band * tw), np.float64)
    rows_tf = np.empty((c, band, width), np.float64)
    halves = np.empty((2, 4, k_out, band, tw), np.float64)  # A^T M: the tiles' two output rows, per column
    done = np.empty((k_out, 2 * band, 2 * tw), np.float64)
    for b in range(n):
        image = x[b, 0]
        for r0 in range(0, th, band):
            rows = min(band, th - r0)
            tiles = rows * tw
            vb = v[:, :, :tiles].reshape(16, c, rows, tw)
            t = rows_tf[:, :rows]
            lines = [image[:, 2 * r0 + i : 2 * r0 + i + 2 * rows : 2, :width] for i in range(4)]
            for a, (i, j, op) in enumerate(_INPUT_ROWS):
                op(lines[i], lines[j], out=t)
                cols = [t[:, :, i2 : i2 + 2 * tw : 2] for i2 in range(4)]
                for a2, (i2, j2, op2) in enumerate(_INPUT_ROWS):
                    op2(cols[i2], cols[j2], out=vb[4 * a + a2])
            mb = m[:, :, :tiles]
            _products(u, v[:, :, :tiles], mb)
            _output_transform(mb.reshape(4, 4, k_out, rows, tw), halves[:, :, :, :rows], done[:, : 2 * rows])
            valid = min(2 * rows, out[0] - 2 * r0)
            store((b, 0, slice(None), slice(2 * r0, 2 * r0 + valid)), done[:, :valid, : out[1]])


def _products(u: np.ndarray, v: np.ndarray, out: np.ndarray) -> None:
    """out[a] = u[a] @ v[a] for the 16 positions of a tile: [16, K, C] @ [16, C, T], one BLAS call each."""
    np.matmul(u, v, out=out)


def _output_transform(m: np.ndarray, halves: np.ndarray, dst: np.ndarray) -> None:
    """dst [K, 2 rows, 2 tw] = A^T M A for every tile of m [4, 4, K, rows, tw]; halves: scratch [2, 4, K, rows, tw]."""
    top, bottom = halves
    np.add(m[0], m[1], out=top)
    top += m[2]
    np.subtract(m[1], m[2], out=bottom)
    bottom -= m[3]
    for i, r in enumerate((top, bottom)):
        even = dst[:, i::2, 0::2]
        np.add(r[0], r[1], out=even)
        even += r[2]
        odd = dst[:, i::2, 1::2]
        np.subtract(r[1], r[2], out=odd)
        odd -= r[3]
