"""Signals on the command line: SIGTERM unwinds as Ctrl-C does (exit 143 against 130), and a process whose
build was cancelled ends at once rather than wait for TensorRT to notice."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt so that it unwinds (and a build obeys it) as Ctrl-C does."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def terminated_raises():
    """SIGTERM raises `Terminated` while a command runs (off the main thread no handler can be installed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_now_if_build_cancelled(status: int) -> None:
    """An interrupted build may spend seconds more inside TensorRT before it sees the cancel (and Python's exit
    waits for it): the process ends now instead, nothing being left to save (outputs are written by rename)."""
    from trtnet.builder.build import cancelled_builds_running

    if cancelled_builds_running():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
