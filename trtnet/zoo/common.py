"""Helpers that several architectures share."""
from __future__ import annotations


def make_divisible(v: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Nearest multiple of `divisor` (at least `divisor`), bumped up one step if that loses more than 10% of `v`.

    torchvision's `_make_divisible` and timm's `make_divisible` are this same rule.

    >>> make_divisible(32 * 1.1)
    40
    """
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < round_limit * v else new_v
