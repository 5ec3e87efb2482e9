"""How long each row of the benchmark is timed: a time budget per row (`--min-seconds`) with a floor of iterations,
inside a deadline for the whole run, on a clock that is either the wall clock (a GPU run) or a fake one that the
dry run advances by stand-in kernel times. The latencies themselves come from CUDA events on a GPU."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

# One timed series: `run(iters, warmup)` launches `warmup` untimed then `iters` timed inferences, and returns the
# timed ones' latencies in ms.
Series = Callable[[int, int], np.ndarray]


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since some fixed point."""
        ...


class WallClock:
    """The host's monotonic clock: what a GPU run spends."""

    def now(self) -> float:
        return time.perf_counter()


class FakeClock:
    """A clock that moves only when told: the dry run advances it by what the GPU would have spent."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        self.t += seconds


MAX_ITERS = 10_000_000


@dataclass(frozen=True)
class RowBudget:
    """How each series is timed: about `min_seconds` of timed inferences, never fewer than `min_iters` nor more
    than `max_iters`, after at most `warmup` untimed ones (fewer where they would take over a fifth of the row)."""

    min_seconds: float = 1.0
    min_iters: int = 10
    max_iters: int = 1000
    warmup: int = 50

    def __post_init__(self) -> None:
        # Each timed inference keeps its time (8 bytes) and the GPU events to take it: 10 million is a hundred
        # seconds of 10 us inferences; 1e11 asked numpy for 745 GiB after the model had been built.
        if not (
            self.min_seconds > 0
            and 1 <= self.min_iters <= self.max_iters <= MAX_ITERS
            and 0 <= self.warmup <= MAX_ITERS
        ):
            raise ValueError(
                f"time budget: need min_seconds > 0, 1 <= min_iters <= max_iters <= {MAX_ITERS:,} and "
                f"0 <= warmup <= {MAX_ITERS:,} (got {self})"
            )


class Deadline:
    """The whole run's time, shared among the series still to time, with room kept for the models still to
    build (as long as the slowest set-up so far, or `setup_guess` seconds before any)."""

    def __init__(self, clock: Clock, total_s: float, series: int, models: int, setup_guess: float = 30.0) -> None:
        self.clock, self.total_s = clock, total_s
        self.start = clock.now()
        self.series_left, self.models_left = series, models
        self.setup_s = setup_guess
        self._setups: list[float] = []

    def model_set_up(self, seconds: float) -> None:
        """A model's builds and loads took `seconds`; the next ones are expected to take as long as the slowest."""
        self._setups.append(seconds)
        self.setup_s = max(self._setups)
        self.models_left = max(0, self.models_left - 1)

    def row_seconds(self, wanted: float) -> float:
        """Seconds the next series may take: `wanted`, or its fair share of what is left if that is less."""
        left = self.total_s - (self.clock.now() - self.start) - self.setup_s * self.models_left
        share = left / max(1, self.series_left)
        return max(0.0, min(wanted, share))

    def series_done(self) -> None:
        self.series_left = max(0, self.series_left - 1)


def time_series(run: Series, budget: RowBudget, seconds: float) -> np.ndarray:
    """Latencies (ms) of one series timed for about `seconds`: a probe of one inference (after one untimed, which
    also compiles the shape's kernels where the backend does so on first use) sizes the warm-up and the count;
    the probe itself is not reported."""
    probe = run(1, 1)
    per_ms = max(float(probe[0]), 1e-3)
    warmup = min(budget.warmup, max(1, math.ceil(0.2 * seconds * 1e3 / per_ms)))
    iters = min(budget.max_iters, max(budget.min_iters, math.ceil(seconds * 1e3 / per_ms)))
    return run(iters, warmup)


def stats(times_ms: np.ndarray) -> dict[str, float]:
    """min / median / p99 / mean (ms) of a series, and the iterations it used."""
    if times_ms.size == 0:
        raise ValueError("no timed iterations")
    return {
        "min_ms": float(np.min(times_ms)),
        "median_ms": float(np.median(times_ms)),
        "p99_ms": float(np.percentile(times_ms, 99)),
        "mean_ms": float(np.mean(times_ms)),
        "iters": int(times_ms.size),
    }


def fake_series(clock: FakeClock, kernel_ms: float, host_ms: float = 0.05) -> Series:
    """A series that launches nothing: each inference 'takes' `kernel_ms` (plus `host_ms` for the launch and the
    event sync), on `clock`."""

    def run(iters: int, warmup: int) -> np.ndarray:
        clock.advance((iters + warmup) * (kernel_ms + host_ms) / 1e3)
        return np.full(iters, kernel_ms, np.float64)

    return run
