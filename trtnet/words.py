"""Counts in words: `counted(1, "layer")` is "1 layer", `counted(2, "layer")` "2 layers". A leaf module, so that
every message that prints a count (the command line, summaries, exports) says it the same way."""

from __future__ import annotations

__all__ = ["counted"]


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and `noun`, the noun in the plural unless `n` is 1 (`plural` for the irregular ones).

    >>> counted(1, "layer"), counted(0, "batch", "batches")
    ('1 layer', '0 batches')
    """
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
