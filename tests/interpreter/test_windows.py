"""Window geometry (trtnet/interpreter/windows.py) against brute force."""

from __future__ import annotations

import itertools

from trtnet.interpreter.windows import live_taps


def _brute(size: int, pre: int, out: int, k: int, stride: int, dilation: int) -> list[int]:
    """The kernel offsets some output's window reads the input with, by enumerating every read."""
    return [t for t in range(k) if any(0 <= t * dilation - pre + o * stride < size for o in range(out))]


def test_live_taps_are_the_span_of_offsets_that_read_the_input() -> None:
    checked = trimmed = 0
    for size, pre, k, stride, dilation in itertools.product(
        range(1, 6), range(0, 9), range(1, 5), (1, 2, 3), (1, 2, 5)
    ):
        eff = (k - 1) * dilation + 1
        for post in range(0, 9):
            span = size + pre + post - eff
            if span < 0:
                continue
            out = span // stride + 1
            live = _brute(size, pre, out, k, stride, dilation)
            got = live_taps((size, 4), (pre, 0), (out, 4), (k, 1), (stride, 1), (dilation, 1))
            checked += 1
            if not live or (live[0], live[-1]) == (0, k - 1):  # none, or a span of all (a gap may lie inside)
                assert got is None, (size, pre, post, k, stride, dilation)
                continue
            assert got is not None and got[1] == slice(0, 1), (size, pre, post, k, stride, dilation)
            assert got[0] == slice(live[0], live[-1] + 1), (size, pre, post, k, stride, dilation, live)
            trimmed += 1
    assert checked > 1000 and trimmed > 100  # the grid reaches both answers
