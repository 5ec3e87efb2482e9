"""Build progress on a terminal, from TensorRT's progress monitor."""

from __future__ import annotations

import sys
import time

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

    def step(self, name: str, step: int) -> bool:
        if name in self.phases:
            self.phases[name] = (step + 1, self.phases[name][1])
        self.draw()
        return True  # never cancel the build

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


def progress_monitor(progress: Progress):
    """A TensorRT `IProgressMonitor` forwarding to `progress` (the class is made here: TensorRT imports lazily)."""
    trt = get_trt()

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            progress.start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            return progress.step(phase_name, step)

        def phase_finish(self, phase_name):
            progress.finish(phase_name)

    return Monitor()
