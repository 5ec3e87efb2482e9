"""Rotary position embeddings (RoPE) as transformers' Llama family computes them, with the tricks kept here.

- The cos/sin tables are numpy constants [max_positions, head_dim], made once at emission in float32 exactly as
  transformers makes them (`inv_freq` from `rope_theta`, Llama-3's frequency scaling, `attention_factor`), and
  gathered by the `position_ids` input at run time: any position, left padding included.
- `rotate_half(q)` is linear in q, so it is folded into the projection weights (`rotated_rows`): the one
  batched projection yields q and rotate_half(q) side by side as extra heads, and applying RoPE is two products
  and a sum, with no slice or concat of the head dim at run time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trtnet.ops.core import constant
from trtnet.ops.elementwise import add, mul
from trtnet.ops.shape import gather, reshape
from trtnet.tensor import Tensor


@dataclass(frozen=True)
class RopeScaling:
    """transformers' `rope_parameters` besides the theta: "default", "linear" (`factor`) or "llama3"."""

    rope_type: str = "default"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


def inverse_frequencies(head_dim: int, theta: float, scaling: RopeScaling = RopeScaling()) -> np.ndarray:
    """inv_freq [head_dim / 2] in float32, as transformers' `ROPE_INIT_FUNCTIONS[rope_type]` computes it: the
    exponent, the power and its reciprocal each a float32 rounding. The power is rounded from float64, not taken
    by numpy's float32 `power`, which is a ulp off for a fifth of the entries: at position 130,000 a ulp of
    inv_freq turns the angle by 0.01, and Llama-3.2's keys there were 5e-3 from transformers'."""
    exponent = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
    power = (np.float64(np.float32(theta)) ** exponent.astype(np.float64)).astype(np.float32)
    inv = (np.float32(1.0) / power).astype(np.float32)
    if scaling.rope_type == "linear":
        return (inv / np.float32(scaling.factor)).astype(np.float32)
    if scaling.rope_type != "llama3":
        return inv
    # Llama 3.1: long wavelengths slowed down by `factor`, short ones kept, the band between interpolated.
    old = scaling.original_max_position_embeddings
    low_wavelen, high_wavelen = old / scaling.low_freq_factor, old / scaling.high_freq_factor
    wavelen = (2 * math.pi / inv).astype(np.float32)
    scaled = np.where(wavelen > low_wavelen, inv / np.float32(scaling.factor), inv).astype(np.float32)
    # low_freq_factor = high_freq_factor (transformers takes it) leaves no band: its smoothing, divided by zero, is
    # computed and not used, as in transformers.
    with np.errstate(divide="ignore", invalid="ignore"):
        smooth = (old / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
        smooth = smooth.astype(np.float32)
        smoothed = ((1 - smooth) * scaled / np.float32(scaling.factor) + smooth * scaled).astype(np.float32)
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def rope_tables(positions: int, head_dim: int, theta: float, scaling: RopeScaling = RopeScaling()):
    """(cos, sin), each float32 [positions, head_dim]: `cat(freqs, freqs)` of position * inv_freq (a float32
    product, as transformers makes it), its cos and sin rounded from float64 (numpy's float32 ones are a ulp off
    twice as often as PyTorch's)."""
    inv = inverse_frequencies(head_dim, theta, scaling)
    freqs = (np.arange(positions, dtype=np.float32)[:, None] * inv[None, :]).astype(np.float64)
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(emb).astype(np.float32), np.sin(emb).astype(np.float32)


def rotated_rows(weight: np.ndarray, bias: np.ndarray | None, head_dim: int):
    """The projection whose output is rotate_half of `weight`'s (per head of `head_dim` rows): rows
    [-w[d/2:], w[:d/2]] per head, the bias likewise. `rotate_half(W x + b) == W' x + b'`."""

    def rotate(a: np.ndarray) -> np.ndarray:
        heads = a.reshape(-1, head_dim, *a.shape[1:])
        half = head_dim // 2
        return np.concatenate([-heads[:, half:], heads[:, :half]], axis=1).reshape(a.shape)

    return rotate(weight), None if bias is None else rotate(bias)


def position_tables(cos: np.ndarray, sin: np.ndarray, position_ids: Tensor, dtype) -> tuple[Tensor, Tensor]:
    """cos and sin rows of `position_ids` [B, S] as [B, 1, S, head_dim] (broadcast over the heads), in `dtype`."""
    b, s = position_ids.shape
    picked = []
    for table, name in ((cos, "rope_cos"), (sin, "rope_sin")):
        rows = gather(constant(table, dtype, op=name), position_ids, axis=0)  # [B, S, d]
        picked.append(reshape(rows, (b, 1, s, table.shape[1])))
    return picked[0], picked[1]


def apply_rotary(x: Tensor, x_rotated: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x * cos + rotate_half(x) * sin, `x_rotated` being rotate_half(x) from the folded projection."""
    return add(mul(x, cos), mul(x_rotated, sin))
