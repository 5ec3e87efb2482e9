"""One BLAS/OpenMP thread count for the interpreter speed scripts, set before numpy loads its BLAS.

On a shared machine a BLAS or OpenMP thread waiting for a busy core turns a 0.1 ms product into tens of
milliseconds, on both sides alike; so `--threads N` (default 1) is read from the command line here, at import.
"""

from __future__ import annotations

import os
import sys


def pin_threads() -> int:
    """The thread count given by `--threads N` (default 1), exported to OpenBLAS, OpenMP and MKL."""
    threads = 1
    if "--threads" in sys.argv:
        threads = int(sys.argv[sys.argv.index("--threads") + 1])
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    return threads
