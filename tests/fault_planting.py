"""Faults planted into a trtnet model one at a time, for the layerwise blame's tests and its fault benchmark
(scripts/fault_bench.py). Each is a context manager factory: `with wrong_activation("layer1.0")(model): ...`
changes the DSL model only, inside the block, by its weights, a setting of one module, or one op emitted inside
one module's own forward."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np

from trtnet.nn.module import Module
from trtnet.tensor import Tensor

Plant = Callable[[Module], contextlib.AbstractContextManager]


def _module(model: Module, path: str) -> Module:
    found = dict(model.named_modules()).get(path)
    if found is None:
        raise KeyError(f"no module {path!r} in {type(model).__name__}")
    return found


@contextlib.contextmanager
def _set(obj: object, name: str, value: object) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def wrong_activation(path: str) -> Plant:
    """Every activation layer emitted directly by `path`'s own forward becomes another (sigmoid, or tanh for
    a sigmoid): an activation op swapped in the source code of that module."""
    from trtnet.backend import get_trt
    from trtnet.graph import _CheckedNetwork

    @contextlib.contextmanager
    def plant(model: Module) -> Iterator[None]:
        _module(model, path)
        real = _CheckedNetwork.__getattr__
        kinds = get_trt().ActivationType

        def patched(self, name):
            fn = real(self, name)
            if name != "add_activation":
                return fn

            def add(x, kind):
                if self._graph.path == path:
                    kind = kinds.TANH if kind == kinds.SIGMOID else kinds.SIGMOID
                return fn(x, kind)

            return add

        with _set(_CheckedNetwork, "__getattr__", patched):
            yield

    return plant


def dropped_residual(path: str) -> Plant:
    """The first `a + b` of `path`'s own forward returns `a` alone: a residual (or a branch) dropped."""

    @contextlib.contextmanager
    def plant(model: Module) -> Iterator[None]:
        from trtnet.graph import current_graph

        _module(model, path)
        real = Tensor.__add__
        done = []

        def add(a, b):
            if not done and current_graph().path == path:
                done.append(1)
                return a
            return real(a, b)

        with _set(Tensor, "__add__", add):
            yield

    return plant


def setting(path: str, name: str, value: object, key: str | None = None) -> Plant:
    """A setting of module `path` changed: `_eps`, or one entry `key` of its `_config` (stride, padding)."""

    @contextlib.contextmanager
    def plant(model: Module) -> Iterator[None]:
        module = _module(model, path)
        if key is None:
            with _set(module, name, value):
                yield
        else:
            config = getattr(module, name)
            with _set(module, name, {**config, key: value}):
                yield

    return plant


def weight(path: str, change: Callable[[np.ndarray], np.ndarray]) -> Plant:
    """Parameter `path` (a state_dict key) replaced by `change` of itself: transposed, negated, rolled."""

    @contextlib.contextmanager
    def plant(model: Module) -> Iterator[None]:
        param = dict(model.named_parameters())[path]
        with _set(param, "value", np.ascontiguousarray(change(param.value)).astype(param.value.dtype)):
            yield

    return plant


def swapped(a: str, b: str) -> Plant:
    """Two parameters of the same shape swapped (a mistake in a hand-written key mapping)."""

    @contextlib.contextmanager
    def plant(model: Module) -> Iterator[None]:
        params = dict(model.named_parameters())
        pa, pb = params[a], params[b]
        with _set(pa, "value", pb.value), _set(pb, "value", pa.value):
            yield

    return plant


def attention_scale(path: str, factor: float = 2.0) -> Plant:
    """The attention module's query scale multiplied by `factor` (a wrong 1/sqrt(head_dim))."""

    @contextlib.contextmanager
    def plant(model: Module) -> Iterator[None]:
        module = _module(model, path)
        real = module.fold_query_scale

        def fold(w, b):
            w, b = real(w, b)
            rows = w.shape[0] // 3
            w = w.copy()
            w[:rows] *= factor
            if b is not None:
                b = b.copy()
                b[:rows] *= factor
            return w, b

        with _set(module, "fold_query_scale", fold):
            yield

    return plant


T = np.transpose
NEG = np.negative
ROLL = lambda a: np.roll(a, 1, axis=0)  # noqa: E731
