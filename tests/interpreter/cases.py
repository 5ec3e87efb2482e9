"""What the interpreter's test files share: a scratch network, random inputs, and the table of oracle cases.

Each case builds a tiny network with the raw TensorRT API, runs it through `run_network`, and returns
(got, expected) pairs from a computation that shares no code with the interpreter. Tolerances: float32
networks 1e-5 relative / 1e-4 absolute; float16 2e-2 and bfloat16 5e-2 (relative and absolute), since those
round every layer's output. Each case starts from the same seed, so a case sees the same inputs whether it runs
alone (`-k`) or with the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ml_dtypes
import numpy as np
import pytest

from trtnet.backend import get_trt, logger
from trtnet.interpreter import run_network

trt = get_trt()
SEED = 1234
RNG = np.random.default_rng(SEED)
F32_TOL = dict(rtol=1e-5, atol=1e-4)


def torch_or_skip():
    """torch for the rows whose natural oracle is torch.nn.functional; skips the row, with why, without it."""
    return pytest.importorskip("torch", reason="torch is the oracle for this row and is not installed")


class Net:
    """A fresh network plus the numpy buffers its weights point into (TensorRT does not copy them)."""

    builder = None

    def __init__(self) -> None:
        if Net.builder is None:
            Net.builder = trt.Builder(logger())
        self.net = Net.builder.create_network(0)
        self.keep: list[np.ndarray] = []

    def input(self, name: str, shape: tuple[int, ...], dtype=None) -> object:
        return self.net.add_input(name, dtype or trt.float32, shape)

    def weights(self, arr: np.ndarray) -> object:
        arr = np.ascontiguousarray(arr)
        self.keep.append(arr)
        if arr.dtype == ml_dtypes.bfloat16:
            return trt.Weights(trt.DataType.BF16, arr.ctypes.data, arr.size)
        return trt.Weights(arr)

    def const(self, arr: np.ndarray) -> object:
        arr = np.asarray(arr)
        return self.net.add_constant(arr.shape, self.weights(arr)).get_output(0)

    def mark(self, *tensors: object) -> None:
        for t in tensors:
            self.net.mark_output(t)

    def run(self, **inputs: np.ndarray) -> list[np.ndarray]:
        outs = run_network(self.net, inputs)
        return list(outs.values())


def rand(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def t(x: np.ndarray):
    return torch_or_skip().from_numpy(np.ascontiguousarray(x))


def add_conv(n: Net, x, w: np.ndarray, b: np.ndarray | None, **attrs):
    """A convolution layer with kernel `w` (out, in/groups, *window), optional bias and attributes."""
    bias = n.weights(b) if b is not None else trt.Weights()
    layer = n.net.add_convolution_nd(x, w.shape[0], w.shape[2:], n.weights(w), bias)
    for k, v in attrs.items():
        setattr(layer, k, v)
    return layer


@dataclass
class Case:
    name: str
    fn: Callable[[], list[tuple[np.ndarray, np.ndarray]]]
    tol: dict


class CaseTable(list):
    """One test file's cases, registered with `@table.case()`, run by `check_case`."""

    def case(self, *, tol: dict | None = None):
        """Registers a case; rows needing torch call `torch_or_skip()`, which skips them with a reason."""

        def wrap(fn):
            self.append(Case(fn.__name__, fn, tol or F32_TOL))
            return fn

        return wrap

    def ids(self) -> list[str]:
        return [c.name for c in self]


def check_case(c: Case) -> None:
    """Runs case `c` from the fixed seed and compares each pair: exactly for bool/int, within `c.tol` else."""
    RNG.bit_generator.state = np.random.default_rng(SEED).bit_generator.state
    pairs = c.fn()
    assert pairs, "a case must compare something"
    for i, (got, expected) in enumerate(pairs):
        expected = np.asarray(expected)
        assert got.shape == expected.shape, f"pair {i}: shape {got.shape} vs {expected.shape}"
        if expected.dtype == np.bool_ or np.issubdtype(expected.dtype, np.integer):
            np.testing.assert_array_equal(got, expected, err_msg=f"pair {i}")
        else:
            np.testing.assert_allclose(
                np.asarray(got, np.float64), expected.astype(np.float64), err_msg=f"pair {i}", **c.tol
            )
