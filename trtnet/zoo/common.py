"""Helpers that several architectures share."""

from __future__ import annotations

from trtnet.errors import ConfigError

SeqLen = int | tuple[int, int, int]


def make_divisible(v: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Nearest multiple of `divisor` (at least `divisor`), bumped up one step if that loses more than 10% of `v`.

    torchvision's `_make_divisible` and timm's `make_divisible` are this same rule.

    >>> make_divisible(32 * 1.1)
    40
    """
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < round_limit * v else new_v


def seq_range(seq_len: SeqLen, limit: int, model: str, limit_name: str) -> int | tuple[int, int, int]:
    """`seq_len` checked: a length, or (min, opt, max) lengths, each from 1 to `limit` (the position table).

    >>> seq_range((16, 128, 512), 512, "BERT", "max_position_embeddings")
    (16, 128, 512)
    """
    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    if is_int(seq_len) and 1 <= seq_len <= limit:
        return seq_len
    if (
        isinstance(seq_len, (tuple, list))
        and len(seq_len) == 3
        and all(map(is_int, seq_len))
        and 1 <= seq_len[0] <= seq_len[1] <= seq_len[2] <= limit
    ):
        return tuple(seq_len) if seq_len[0] != seq_len[2] else seq_len[0]
    raise ConfigError(
        f"{model}: seq_len {seq_len!r} is out of range; it must be a length from 1 to {limit_name} "
        f"{limit}, or (min, opt, max) lengths with 1 <= min <= opt <= max <= {limit}"
    )
