"""The common layers, each with PyTorch's parameter names and shapes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from trtnet import ops
from trtnet.errors import NetworkError
from trtnet.graph import current_graph
from trtnet.nn.module import Module, Parameter, _walk
from trtnet.tensor import Tensor


class Conv2d(Module):
    """`torch.nn.Conv2d`. A BatchNorm linked with `fold_bn` is folded into its weights when the policy says so."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        k = ops.convolution.pair(kernel)
        self.weight = Parameter((cout, cin // groups, *k), init="fan_in")
        self.bias = Parameter((cout,), init="normal", std=0.01) if bias else None
        self._config = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        self._bn: BatchNorm2d | None = None

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.data
        b = self.bias.data if self.bias is not None else None
        if self._bn is not None and current_graph().policy.fold_bn:
            w, b = self._bn.fold_into(w, b)
        return ops.conv2d(x, w, b, **self._config)


class BatchNorm2d(Module):
    """Eval-mode `torch.nn.BatchNorm2d`: a per-channel scale and shift, or nothing when folded into a conv."""

    skip_keys = ("num_batches_tracked",)

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        self.weight = Parameter((channels,), init="uniform", low=0.5, high=1.5)
        self.bias = Parameter((channels,), init="normal", std=0.1)
        self.running_mean = Parameter((channels,), init="normal", std=0.1)
        self.running_var = Parameter((channels,), init="uniform", low=0.5, high=1.5)
        self._eps = eps
        self._folded = False

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """The float64 per-channel (scale, shift) this BatchNorm applies."""
        scale = self.weight.data.astype(np.float64) / np.sqrt(self.running_var.data.astype(np.float64) + self._eps)
        return scale, self.bias.data.astype(np.float64) - self.running_mean.data.astype(np.float64) * scale

    def fold_into(self, weight: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """A conv's (weight, bias) with this BatchNorm applied after it, computed exactly in float64."""
        scale, shift = self.scale_shift()
        w = weight.astype(np.float64) * scale.reshape(-1, *([1] * (weight.ndim - 1)))
        b = shift if bias is None else bias.astype(np.float64) * scale + shift
        return w.astype(np.float32), b.astype(np.float32)

    def forward(self, x: Tensor) -> Tensor:
        if self._folded and current_graph().policy.fold_bn:
            return x
        scale, shift = self.scale_shift()
        return ops.scale_channels(x, scale.astype(np.float32), shift.astype(np.float32))


def fold_bn(conv: Conv2d, bn: BatchNorm2d) -> None:
    """Declare that `bn` directly follows `conv`, so it can be folded into the conv's weights."""
    conv._bn = bn
    bn._folded = True


class Linear(Module):
    """`torch.nn.Linear` (weight [out, in]) over the last axis, or with `axis=1` over the channels of an NCHW
    tensor: then it is a 1x1 convolution with the same weights and bias in one layer, which is what a
    channels-last block computes between its two permutes (timm's ConvNeXt), without the permutes."""

    def __init__(self, cin: int, cout: int, bias: bool = True, axis: int = -1) -> None:
        self.weight = Parameter((cout, cin), init="fan_in")
        self.bias = Parameter((cout,), init="normal", std=0.01) if bias else None
        self._axis = axis

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = self.weight.data, self.bias.data if self.bias is not None else None
        if self._axis in (-1, x.ndim - 1):
            return ops.linear(x, weight, bias)
        if self._axis == 1 and x.ndim == 4:
            return ops.conv2d(x, weight[:, :, None, None], bias)
        raise NetworkError(
            f"Linear at {self._path or 'top level'}: axis {self._axis} of {x} is not supported "
            "(the last axis, or axis 1 of an NCHW tensor)"
        )


class Conv1D(Module):
    """transformers' `Conv1D(nf, nx)` (GPT-2's attention and MLP projections): a linear layer whose weight is
    stored transposed, [in, out] = [nx, nf], with a bias [nf]."""

    def __init__(self, nf: int, nx: int) -> None:
        self.weight = Parameter((nx, nf), init="normal", std=0.02)
        self.bias = Parameter((nf,), init="zeros")

    def forward(self, x: Tensor) -> Tensor:
        return ops.linear(x, self.weight.data.T, self.bias.data)


class LayerNorm(Module):
    """`torch.nn.LayerNorm(dim)` over the last axis, or over `axis` (1: the channels of NCHW, timm's
    `LayerNorm2d`). `affine=False` has no weight and bias (PyTorch's `elementwise_affine=False`)."""

    def __init__(self, dim: int, eps: float = 1e-5, axis: int = -1, affine: bool = True) -> None:
        self.weight = Parameter((dim,), init="uniform", low=0.5, high=1.5) if affine else None
        self.bias = Parameter((dim,), init="normal", std=0.1) if affine else None
        self._dim, self._eps, self._axis = dim, eps, axis

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[self._axis] not in (-1, self._dim):
            raise NetworkError(
                f"LayerNorm at {self._path or 'top level'}: axis {self._axis} of {x} has "
                f"{x.shape[self._axis]} features, the norm {self._dim}"
            )
        weight = self.weight.data if self.weight is not None else None
        bias = self.bias.data if self.bias is not None else None
        return ops.layer_norm(x, weight, bias, self._eps, axes=self._axis)


class LayerNorm2d(LayerNorm):
    """timm's `LayerNorm2d`: LayerNorm over the channels of an NCHW tensor (eps 1e-6, timm's default)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__(dim, eps, axis=1)


class LayerScale(Module):
    """timm's `LayerScale`: x * gamma, one value per feature of `axis` (the last by default)."""

    def __init__(self, dim: int, axis: int = -1, init_values: float = 1e-5) -> None:
        self.gamma = Parameter((dim,), init="uniform", low=init_values, high=init_values)
        self._axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return ops.layer_scale(x, self.gamma.data, self._axis)


class Embedding(Module):
    """`torch.nn.Embedding`: rows of `weight` gathered by integer ids."""

    def __init__(self, num: int, dim: int) -> None:
        self.weight = Parameter((num, dim), init="normal", std=0.02)

    def forward(self, ids: Tensor) -> Tensor:
        return ops.gather(ops.constant(self.weight.data, op="table"), ids, axis=0)

    def first_rows(self, like: Tensor, axis: int = 1) -> Tensor:
        """Rows 0..S-1 of the table as [1, S, dim], S = `like.shape[axis]`: learned position embeddings for
        positions 0..S-1 in every sequence. A constant slice of the table, not a gather; cut at run time when S
        is dynamic (an engine for a range of sequence lengths)."""
        s = like.shape[axis]
        if s >= 0:
            return ops.constant(self.weight.data[None, :s], op="positions")
        return ops.narrow_like(ops.constant(self.weight.data[None], op="positions"), 1, like, axis)


class Mlp(Module):
    """timm's transformer MLP, `fc1` -> activation (GELU by default) -> `fc2`, with timm's key names; `axis` as
    `Linear`'s (1: over the channels of NCHW, as 1x1 convolutions)."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu", axis: int = -1) -> None:
        self.fc1 = Linear(dim, hidden, axis=axis)
        self.fc2 = Linear(hidden, dim, axis=axis)
        self._act: Callable[[Tensor], Tensor] = ops.activation_by_name(act, "Mlp act")

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self._act(self.fc1(x)))


class Activation(Module):
    """A parameterless activation by name (`"relu"`, `"silu"`, `"gelu"`...) in a slot of a Sequential."""

    def __init__(self, name: str) -> None:
        self._fn: Callable[[Tensor], Tensor] = ops.activation_by_name(name, "Activation name")

    def forward(self, x: Tensor) -> Tensor:
        return self._fn(x)


class MaxPool2d(Module):
    """`torch.nn.MaxPool2d` (no parameters; a module so that its layers carry its path, as in a Sequential)."""

    def __init__(
        self,
        kernel: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        ceil_mode: bool = False,
    ) -> None:
        self._config = dict(kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)

    def forward(self, x: Tensor) -> Tensor:
        return ops.max_pool2d(x, **self._config)


class Identity(Module):
    """`torch.nn.Identity` (and eval-mode Dropout)."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class Sequential(Module):
    """Children named `0, 1, ...` (or by the keys of a dict), called in order, as `torch.nn.Sequential`."""

    def __init__(self, *layers: Module | Callable, named: Mapping[str, Module] | None = None) -> None:
        self._items: dict[str, Module | Callable] = dict(named) if named else {str(i): m for i, m in enumerate(layers)}
        items = list(self._items.values())
        for first, second in zip(items, items[1:]):  # a chain: a conv's output feeds only the next layer
            if isinstance(first, Conv2d) and isinstance(second, BatchNorm2d):
                fold_bn(first, second)

    def named_children(self) -> Iterator[tuple[str, Any]]:
        for name, value in self._items.items():
            yield from _walk(name, value)

    def __getitem__(self, index: int | str):
        return list(self._items.values())[index] if isinstance(index, int) else self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(self._items.values())

    def forward(self, x):
        for layer in self._items.values():
            x = layer(x)
        return x
