"""The interpreter's float64 copies of network weights, kept across the runs of a prepared network."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

# Weights above this many values are not kept widened (VGG16's 25088 x 4096 matrix would take 800 MB more);
# the matrix product widens those a cache-sized block at a time on each run instead.
_CACHE_MAX_VALUES = 1 << 24
# Buffers up to this many values (biases, norms, small kernels) are kept widened from their first run on.
_WIDEN_AT_ONCE = 1 << 16
# The most values a thread's scratch buffer keeps (32 MB): the largest matrix the products widen whole.
_SCRATCH_MAX_VALUES = 1 << 22


class WeightCache:
    """Network weights widened to float64, kept across the runs of one prepared network.

    Weights are identified by their buffer as TensorRT holds it (address, dtype, size): TensorRT keeps a pointer
    to the caller's memory, not a copy, so weights set anew on a layer are a new buffer and are widened afresh,
    while weights written into their old buffer in place are not seen (prepare the network again for those).
    Only buffers the layers of the current run read are looked up, so freed memory reused by an activation
    can never be taken for weights. A large buffer is kept widened from the second run that reads it on: a first
    run widens it as it goes, as a one-off run must, rather than also writing a float64 copy of all the weights
    to fresh memory (ViT-B/16's 690 MB, most of a first run on a busy machine) that only later runs reuse; so
    weights changed in place are not seen by a prepared network, except a large buffer's change between the
    first and second runs that read it (do not rely on either: prepare the network again).
    """

    def __init__(self) -> None:
        # Shared by the runs of every thread (each change a single dict operation, each pass over one a copy of it):
        self._store: dict[tuple[int, str, int], np.ndarray] = {}  # key -> float64 copy
        self._derived: dict[tuple, np.ndarray] = {}  # (key, offset, shape, strides, tag) -> make(twin view)
        # Each thread's own run: .live, id of the array owning the view the bindings returned -> (key, source),
        # whose source keeps that array alive, so its id is not reused before the run ends; .earlier, the buffers
        # that thread's previous run read (widened when next read); and its scratch: .buffer and .used.
        self._runs = threading.local()

    def start_run(self) -> None:
        """Forgets which buffers the calling thread's last run read (each run registers its own), widened copies
        that run did not read, and the thread's scratch buffer when that run did not use it."""
        run = self._runs
        live = getattr(run, "live", {})
        seen = {key for key, _ in live.values()}
        if live:
            self._store = {k: v for k, v in list(self._store.items()) if k in seen}
            self._derived = {k: v for k, v in list(self._derived.items()) if k[0] in seen}
        run.earlier = seen
        run.live = {}
        if not getattr(run, "used", False):
            run.buffer = None
        run.used = False

    def scratch(self, size: int) -> np.ndarray:
        """A float64 buffer of at least `size` values, reused by the runs of this network: where a weight not kept
        widened (yet) is widened for one product, this memory is written again rather than fresh memory each time.
        Fresh memory is paid for in page faults as it is first written, at a price that depends on the kernel's
        state: the 85M weight values of GPT-2's first run cost up to 0.3 s of a 1.0 s first call in a new process
        (docs/interpreter.md gives both sides of it). Each thread has its own, let go by that thread's next run if
        it does not use it (so a thread that stops running the network keeps it while the cache lives); within a
        thread only one caller may use it at a time."""
        local = self._runs
        local.used = True
        buffer = getattr(local, "buffer", None)
        if size > _SCRATCH_MAX_VALUES:  # one column of a weight with more rows (blocked products): not kept
            return np.empty(size, np.float64)
        if buffer is None or buffer.size < size:
            buffer = local.buffer = np.empty(size, np.float64)
        return buffer

    def register(self, flat: np.ndarray) -> None:
        """Marks a float weights array read back from TensorRT (flat, narrower than float64) as cacheable for this
        run, if it is contiguous and not too large."""
        if flat.size and flat.size <= _CACHE_MAX_VALUES and flat.flags.c_contiguous:
            address = flat.__array_interface__["data"][0]
            live = getattr(self._runs, "live", None)  # None: not within a run of this thread
            if live is not None:
                live[id(_owner(flat))] = ((address, flat.dtype.str, flat.size), flat)

    def lookup(self, x: np.ndarray) -> np.ndarray | None:
        """The float64 twin of `x` when x is a view into registered weights, else None."""
        found = self._find(x)
        return None if found is None else _twin_view(x, found[0], found[1])

    def derived(
        self, x: np.ndarray, tag: str, make: Callable[[np.ndarray], np.ndarray], keep_twin: bool = True
    ) -> np.ndarray | None:
        """`make(x's float64 twin)` (a convolution's transformed kernel), kept as long as the twin would be; None
        while the twin is not kept (the caller makes it afresh, or not at all). Without `keep_twin` the twin is let
        go once made from: one float64 copy, not two."""
        place = self._place(x)
        slot = None if place is None else place + (x.shape, x.strides, tag)
        made = None if slot is None else self._derived.get(slot)
        if made is not None:
            return made
        found = None if place is None else self._find(x, place)
        if found is None or slot is None:
            return None
        made = make(_twin_view(x, found[0], found[1]))
        made.flags.writeable = False
        self._derived[slot] = made
        if not keep_twin:
            self._store.pop(found[2], None)
        return made

    def _place(self, x: np.ndarray) -> tuple[tuple[int, str, int], int] | None:
        """The key of the registered weights x is a view into, and x's offset in them (None: not such a view)."""
        live = getattr(self._runs, "live", None)
        if not live or x.base is None:  # an array owning its data is never weights read back
            return None
        key, source = live.get(id(_owner(x)), (None, None))
        if key is None or x.dtype != source.dtype:
            return None
        size = x.dtype.itemsize
        offset = (x.__array_interface__["data"][0] - key[0]) // size
        if (
            offset < 0
            or any(s < 0 or s % size for s in x.strides)
            or offset + sum((n - 1) * s // size for n, s in zip(x.shape, x.strides)) >= key[2]
        ):
            return None
        return key, offset

    def _find(
        self, x: np.ndarray, place: tuple[tuple[int, str, int], int] | None = None
    ) -> tuple[np.ndarray, int, tuple[int, str, int]] | None:
        """x's buffer's float64 twin (widened now if it is to be kept), x's offset in it and the buffer's key;
        `place`: `_place(x)`, where the caller has it already."""
        key, offset = place or self._place(x) or (None, 0)
        if key is None:
            return None
        twin = self._store.get(key)
        if twin is None:
            run = self._runs
            if key[2] > _WIDEN_AT_ONCE and key not in run.earlier:
                return None
            twin = run.live[id(_owner(x))][1].astype(np.float64)
            twin.flags.writeable = False
            self._store[key] = twin
        return twin, offset, key


def _twin_view(x: np.ndarray, twin: np.ndarray, offset: int) -> np.ndarray:
    """The read-only view of float64 `twin` that lies where x lies in its narrower buffer."""
    ratio = twin.itemsize // x.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        twin[offset:], shape=x.shape, strides=tuple(s * ratio for s in x.strides), writeable=False
    )


def _owner(x: np.ndarray) -> np.ndarray:
    """The last ndarray down x's chain of bases (numpy collapses view chains, so this is one or two steps)."""
    while isinstance(x.base, np.ndarray):
        x = x.base
    return x
