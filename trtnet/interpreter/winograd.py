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

Each output takes 9 of the 16 products, whose V hold only its own window's inputs, but whose U mix all 9 taps of a
kernel: so its rounding is float64's relative to its window's inputs times the kernel's taps at large, not tap by
tap as a direct sum's is. Where small or zero taps meet large inputs, the difference shows (a PixelCNN mask over a
bright region: 1e-13 where the answer is 0; a 1e10 pixel behind zero taps: 120 float32 ulps off). So every output's
error is bounded: by (C + 16) u (u = 2^-53: the sums over C channels, the input transform's two roundings, the
output transform's three) times the sum, over its tile's 16 positions, of max_c |U[a, k, c]| times (|B^T| D |B|)[a],
with D the input's |d| summed over the channels. Where that bound is not below 2^-24 of the output (its bias added:
a bias can cancel it), the output is computed again as the direct float64 sum over its own window, as the unfolded
product would. So every output kept is within 2^-24 of itself of the exact value (at most one float32 ulp from the
correctly rounded result, and in practice that result), and exact zeros stay zeros; 2 to 13 outputs in 100,000 were
computed twice on VGG16, ResNet, YOLOv5s, Inception and DenseNet (a tile of zeros is exact). A layer runs this way
only when input and kernel are finite (an inf's transforms meet with both signs, which makes NaN) and every tap is
within 2^16 of its output channel's median |tap| (beyond that most outputs would be computed twice); the others run
unfolded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from trtnet.interpreter._common import cached_derived, wide

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
# An output is computed again directly unless its error bound is below this fraction of it (see above).
_SURE = 2.0**-24
# A tap larger than this times its output channel's median |tap| sends the layer to the unfolded product (see
# above: 2^20 times still left every output correctly rounded, 2^26.6 one ulp off).
_MAX_TAP_RATIO = 2.0**16


class Kernel(NamedTuple):
    """A layer's kernel as Winograd's products use it."""

    u: np.ndarray  # [16, K, C]: U = G g G^T at each of a tile's 16 positions
    reach: np.ndarray  # [K, 9]: max over the input channels of |U|, times the error bound's factor (see _unsure)
    weights: np.ndarray  # the layer's flat kernel, for outputs computed again directly


def transformed(kernel: np.ndarray, k_out: int) -> Kernel | None:
    """U for a layer's flat kernel ([K, C, 3, 3]), kept as long as its widened weights are; None where this
    layer should not run as Winograd's (see above)."""
    made = cached_derived(kernel, f"winograd-2x2-3x3/{k_out}", lambda w: _kernel_transform(w, k_out))
    return Kernel(*_split(made, k_out), kernel) if made.size else None


def _split(made: np.ndarray, k_out: int) -> tuple[np.ndarray, np.ndarray]:
    """`_kernel_transform`'s buffer as U [16, K, C] and its reach [K, 9]."""
    c = (made.size // k_out - 9) // 16
    return made[: 16 * k_out * c].reshape(16, k_out, c), made[16 * k_out * c :].reshape(k_out, 9)


def finite(x: np.ndarray) -> bool:
    """Whether x holds no inf or NaN (one float64 sum: a float32 array's cannot overflow)."""
    return bool(np.isfinite(np.add.reduce(x, axis=None, dtype=np.float64)))


def _kernel_transform(w: np.ndarray, k_out: int) -> np.ndarray:
    """U = G g G^T for every kernel g of w (flat float64, [K, C, 3, 3]), [16, K, C] with each [K, C] contiguous,
    then its reach [K, 9] (see `Kernel`), flat in one buffer; an empty array where a tap is not finite or too large
    for its channel."""
    taps = np.abs(w.reshape(k_out, -1))
    # A median of some 64 taps a channel (a first call's time), every tap position among them: a step that is a
    # multiple of 3 would sample 3 of the 9 positions, of 9 one (64 channels of large corner taps passed so).
    step = max(1, taps.shape[1] // 64)
    if step % 3 == 0:
        step += 1
    sample = taps[:, ::step]
    typical = np.partition(sample, sample.shape[1] // 2, axis=1)[:, sample.shape[1] // 2]
    if not (np.isfinite(taps).all() and np.all(taps.max(axis=1) <= typical * _MAX_TAP_RATIO)):
        return np.empty(0)
    made = np.empty(16 * (w.size // 9) + 9 * k_out, np.float64)
    u, reach = _split(made, k_out)
    np.matmul(_KERNEL_TRANSFORM, w.reshape(-1, 9).T, out=u.reshape(16, -1))  # [16, 9] @ [9, K C]: no transpose copy
    np.matmul(np.maximum(u.max(axis=2), -u.min(axis=2)).T, _MERGED, out=reach)  # max |U|: no |U| temporary
    reach *= (u.shape[2] + 16) * 2.0**-53 / _SURE
    return made


def convolve(
    x: np.ndarray,
    kernel: Kernel,
    k_out: int,
    out: tuple[int, int],
    store: Callable[[tuple, np.ndarray], None],
    bias: np.ndarray | None = None,
) -> None:
    """x [N, 1, C, Hp, Wp] (float64, padded, Hp and Wp at least 2 ceil(out / 2) + 2); kernel: `transformed(...)`.
    Each band of output rows [K, rows, out[1]] (float64 scratch, before the bias) goes to
    store((n, 0, :, rows), band); `bias` [K] (float64), which store adds, is what each output is checked with."""
    n, _, c = x.shape[:3]
    th, tw = -(-out[0] // 2), -(-out[1] // 2)
    width = 2 * tw + 2
    band = max(1, min(th, max(_BAND_VALUES // (16 * max(c, k_out) * tw), -(-_MIN_TILES // tw))))
    v = np.empty((16, c, band * tw), np.float64)
    m = np.empty((16, k_out, band * tw), np.float64)
    rows_tf = np.empty((c, band, width), np.float64)
    halves = np.empty((2, 4, k_out, band, tw), np.float64)  # A^T M: the tiles' two output rows, per column
    done = np.empty((k_out, 2 * band, 2 * tw), np.float64)
    size = np.empty_like(done)  # |output + bias|, and which outputs are unsure: for the check
    unsure = np.empty(done.shape, np.bool_)
    direct = None  # the kernel in float64 [K, C, 3, 3], for outputs computed again
    for b in range(n):
        image = x[b, 0]
        reach_tiles = _reach_tiles(image, th, tw)
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
            _products(kernel.u, v[:, :, :tiles], mb)
            y = done[:, : 2 * rows]
            _output_transform(mb.reshape(4, 4, k_out, rows, tw), halves[:, :, :, :rows], y)
            valid = min(2 * rows, out[0] - 2 * r0)
            flagged = _unsure(kernel.reach, reach_tiles[:, r0 : r0 + rows], y, bias, size, unsure)
            if flagged.size:
                k, i, j = np.unravel_index(flagged, y.shape)
                kept = (i < valid) & (j < out[1])  # not the padding's outputs past an odd edge
                if direct is None:  # widened once a layer, only if needed (a first run keeps no weights widened)
                    direct = wide(kernel.weights).reshape(k_out, c, 3, 3)
                y[k[kept], i[kept], j[kept]] = _direct(image, direct, k[kept], 2 * r0 + i[kept], j[kept])
            store((b, 0, slice(None), slice(2 * r0, 2 * r0 + valid)), done[:, :valid, : out[1]])


# |B^T| d |B| has 9 distinct values a tile, not 16: |B^T|'s rows 1 and 2 are alike (d1 + d2). Its rows as (i, j),
# and the 16 positions each of the 9 stands for (a 0/1 matrix [16, 9]).
_REACH_ROWS = ((0, 2), (1, 2), (1, 3))
_MERGED = np.array(
    [[float((a // 4 + 1) // 2 == b // 3 and (a % 4 + 1) // 2 == b % 3) for b in range(9)] for a in range(16)]
)


def _reach_tiles(image: np.ndarray, th: int, tw: int) -> np.ndarray:
    """(|B^T| D |B|) [9, th, tw] for every tile of image [C, Hp, Wp], D its |values| summed over the channels (a
    block of channels at a time: no |image| temporary)."""
    c = image.shape[0]
    d = np.zeros(image.shape[1:], np.float64)
    step = max(1, _BAND_VALUES // d.size)
    for c0 in range(0, c, step):
        d += np.add.reduce(np.abs(image[c0 : c0 + step]), axis=0)
    tiles = np.empty((9, th, tw), np.float64)
    for a, (i, j) in enumerate(_REACH_ROWS):
        t = d[i : i + 2 * th : 2] + d[j : j + 2 * th : 2]
        for a2, (i2, j2) in enumerate(_REACH_ROWS):
            np.add(t[:, i2 : i2 + 2 * tw : 2], t[:, j2 : j2 + 2 * tw : 2], out=tiles[3 * a + a2])
    return tiles


def _unsure(
    reach: np.ndarray,
    tiles: np.ndarray,
    y: np.ndarray,
    bias: np.ndarray | None,
    size: np.ndarray,
    unsure: np.ndarray,
) -> np.ndarray:
    """Which outputs of a band y [K, 2 rows, 2 tw] (A^T M A, before the bias; flat indices) have an error bound
    not below _SURE of the output they make with the bias (a bias can cancel an output down to its error);
    reach: `Kernel.reach`; tiles: `_reach_tiles` of the band's rows; size and unsure: scratch, at least y's."""
    k_out, rows, tw = y.shape[0], y.shape[1] // 2, y.shape[2] // 2
    bound = (reach @ tiles.reshape(9, -1)).reshape(k_out, rows, 1, tw)  # each of a tile's 4 outputs
    size = size[:, : 2 * rows]
    if bias is None:
        np.abs(y, out=size)
    else:
        np.add(y, bias[:, None, None], out=size)
        np.abs(size, out=size)
    size = size.reshape(k_out, rows, 2, tw, 2)
    unsure = unsure[:, : 2 * rows].reshape(size.shape)
    for j in range(2):  # a tile's two columns apart: numpy's loop then runs along tw, not over a pair
        np.greater(bound, size[..., j], out=unsure[..., j])
    return np.flatnonzero(unsure)


# Outputs computed directly at a time: their gathered windows and kernels stay near 4 MB.
_DIRECT_VALUES = 1 << 19


def _direct(image: np.ndarray, w: np.ndarray, k: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Outputs (k, i, j) of the convolution of image [C, Hp, Wp] (padded) by w [K, C, 3, 3] (float64), each the
    float64 sum of its own window's 9 C products."""
    c = image.shape[0]
    taps = np.arange(3)
    got = np.empty(k.size, np.float64)
    step = max(1, _DIRECT_VALUES // (9 * c))
    for s in range(0, k.size, step):
        part = slice(s, s + step)
        windows = image[:, i[part, None, None] + taps[:, None], j[part, None, None] + taps]  # [C, n, 3, 3]
        got[part] = np.einsum("cnij,ncij->n", windows, w[k[part]])
    return got


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
