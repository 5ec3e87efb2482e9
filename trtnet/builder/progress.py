"""Build progress on a terminal, and interrupts a build obeys, both through TensorRT's progress monitor."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator

from trtnet.backend import get_trt


class Progress:
    """Build progress on stderr from TensorRT's progress monitor: one line, redrawn, of the open phases."""

    def __init__(self, label: str, tty: bool) -> None:
        self.label, self.tty = label, tty
        self.phases: dict[str, tuple[int, int]] = {}  # name -> (step done, steps)
        self.t0 = time.perf_counter()
        self.shown = 0.0

    def start(self, name: str, parent: str | None, steps: int) -> None:
        self.phases[name] = (0, steps)
        if not self.tty and parent is None:
            print(f"{self.label}: {name} ...", file=sys.stderr, flush=True)
        self.draw()

    def step(self, name: str, step: int) -> None:
        if name in self.phases:
            self.phases[name] = (step + 1, self.phases[name][1])
        self.draw()

    def finish(self, name: str) -> None:
        self.phases.pop(name, None)
        self.draw()

    def draw(self) -> None:
        if not self.tty:
            return
        now = time.perf_counter()
        if now - self.shown < 0.1 and self.phases:
            return
        self.shown = now
        parts = [f"{n} {done}/{steps}" for n, (done, steps) in self.phases.items()]
        line = f"{self.label}: building {now - self.t0:5.1f} s  " + " > ".join(parts)
        sys.stderr.write("\r" + line[:150].ljust(150))
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\r" + " " * 150 + "\r")
            sys.stderr.flush()


class Interrupts:
    """The signals received while a build runs. A Python signal handler runs inside whichever callback TensorRT
    is in (its logger, its progress monitor), and TensorRT catches what a callback raises and goes on building:
    so the handlers here only record the signal, the monitor cancels the build, and `reraise` delivers the
    signal again to the handler it came for once TensorRT has returned."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def __bool__(self) -> bool:
        return bool(self.received)

    def record(self, signum: int, frame: object) -> None:
        self.received.append(signum)

    def reraise(self) -> None:
        """Deliver the first recorded signal to the handler now installed (SIGINT's raises KeyboardInterrupt)."""
        if self.received:
            signal.raise_signal(self.received[0])
            raise KeyboardInterrupt  # a handler that returned (or ignored it): the build is still cancelled


def _handled(signum: int) -> bool:
    """Whether a signal is one Python code handles, so a build should obey it: SIGINT unless ignored, SIGTERM when
    the program installed its own handler (`trtnet`'s command line does; by default SIGTERM kills at once)."""
    handler = signal.getsignal(signum)
    return callable(handler)


@contextlib.contextmanager
def interruptible() -> Iterator[Interrupts]:
    """Record SIGINT (and SIGTERM where the program handles it) while the block runs, instead of raising inside
    TensorRT's callbacks; the caller cancels on `bool(interrupts)` and calls `reraise()` after TensorRT returns.
    Off the main thread, where Python cannot install handlers, nothing is recorded."""
    interrupts = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield interrupts
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM) if _handled(s)}
    for s in previous:
        signal.signal(s, interrupts.record)
    try:
        yield interrupts
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def progress_monitor(progress: Progress | None, interrupts: Interrupts):
    """A TensorRT `IProgressMonitor` forwarding to `progress` (when shown) that cancels the build once `interrupts`
    holds a signal (the class is made here: TensorRT imports lazily)."""
    trt = get_trt()

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            if progress is not None:
                progress.start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            if progress is not None:
                progress.step(phase_name, step)
            return not interrupts  # False cancels the build

        def phase_finish(self, phase_name):
            if progress is not None:
                progress.finish(phase_name)

    return Monitor()
