"""The common layers, each with PyTorch's constructor arguments and parameter names and shapes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from trtnet import ops
from trtnet.errors import NetworkError
from trtnet.nn.module import Module, Parameter
from trtnet.tensor import Tensor


class Linear(Module):
    """`torch.nn.Linear(in_features, out_features, bias)` (weight [out, in]) over the last axis, or with
    `axis=1` over the channels of an NCHW tensor: then it is a 1x1 convolution with the same weights and bias in
    one layer, which is what a channels-last block computes between its two permutes (timm's ConvNeXt), without
    the permutes."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, axis: int = -1) -> None:
        self.weight = Parameter((out_features, in_features), init="fan_in")
        self.bias = Parameter((out_features,), init="normal", std=0.01) if bias else None
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
    """`torch.nn.LayerNorm(normalized_shape, eps, elementwise_affine)` over the last axes, or over `axis` (1:
    the channels of NCHW, timm's `LayerNorm2d`) for a one-axis norm. `elementwise_affine=False` has no weight
    and bias."""

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        axis: int = -1,
        elementwise_affine: bool = True,
    ) -> None:
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        if len(shape) > 1 and axis != -1:
            raise NetworkError(f"LayerNorm{shape}: axis={axis} is for a norm over one axis")
        self.weight = Parameter(shape, init="uniform", low=0.5, high=1.5) if elementwise_affine else None
        self.bias = Parameter(shape, init="normal", std=0.1) if elementwise_affine else None
        self._shape, self._eps, self._axis = tuple(int(d) for d in shape), eps, axis

    def forward(self, x: Tensor) -> Tensor:
        n = len(self._shape)
        axes = (self._axis,) if n == 1 else tuple(range(x.ndim - n, x.ndim))
        if tuple(x.shape[a] for a in axes) != self._shape and -1 not in (x.shape[a] for a in axes):
            raise NetworkError(
                f"LayerNorm at {self._path or 'top level'}: axes {axes} of {x} are not the norm's shape {self._shape}"
            )
        weight = self.weight.data if self.weight is not None else None
        bias = self.bias.data if self.bias is not None else None
        return ops.layer_norm(x, weight, bias, self._eps, axes=axes if n > 1 else self._axis)


class LayerNorm2d(LayerNorm):
    """timm's `LayerNorm2d(num_channels, eps)`: LayerNorm over the channels of an NCHW tensor (eps 1e-6, timm's
    default)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps, axis=1)


class LayerScale(Module):
    """timm's `LayerScale`: x * gamma, one value per feature of `axis` (the last by default)."""

    def __init__(self, dim: int, axis: int = -1, init_values: float = 1e-5) -> None:
        self.gamma = Parameter((dim,), init="uniform", low=init_values, high=init_values)
        self._axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return ops.layer_scale(x, self.gamma.data, self._axis)


class Embedding(Module):
    """`torch.nn.Embedding(num_embeddings, embedding_dim)`: rows of `weight` gathered by integer ids
    (`padding_idx` only matters in training)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None) -> None:
        self.weight = Parameter((num_embeddings, embedding_dim), init="normal", std=0.02)

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
    """timm's `Mlp(in_features, hidden_features, out_features)`, `fc1` -> activation (GELU by default) -> `fc2`,
    with timm's key names; `act` names the activation (`ops.ACTIVATIONS`); `axis` as `Linear`'s (1: over the
    channels of NCHW, as 1x1 convolutions)."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        act: str = "gelu",
        axis: int = -1,
        out_features: int | None = None,
    ) -> None:
        hidden_features = hidden_features or in_features
        self.fc1 = Linear(in_features, hidden_features, axis=axis)
        self.fc2 = Linear(hidden_features, out_features or in_features, axis=axis)
        self._act: Callable[[Tensor], Tensor] = ops.activation_by_name(act, "Mlp act")

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self._act(self.fc1(x)))


class MaxPool2d(Module):
    """`torch.nn.MaxPool2d(kernel_size, stride, padding, ceil_mode)` (no parameters; a module so that its layers
    carry its path, as in a Sequential)."""

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        ceil_mode: bool = False,
    ) -> None:
        self._config = dict(kernel=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode)

    def forward(self, x: Tensor) -> Tensor:
        return ops.max_pool2d(x, **self._config)


class AvgPool2d(Module):
    """`torch.nn.AvgPool2d(kernel_size, stride, padding, ceil_mode, count_include_pad)`."""

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        self._config = dict(
            kernel=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad
        )

    def forward(self, x: Tensor) -> Tensor:
        return ops.avg_pool2d(x, **self._config)


class AdaptiveAvgPool2d(Module):
    """`torch.nn.AdaptiveAvgPool2d(output_size)`: 1 is the global average (a reduce), other sizes must divide
    the input's (see `ops.adaptive_avg_pool2d`)."""

    def __init__(self, output_size: int | Sequence[int]) -> None:
        self._size = output_size

    def forward(self, x: Tensor) -> Tensor:
        if self._size in (1, (1, 1), [1, 1]):
            return ops.global_avg_pool2d(x)
        return ops.adaptive_avg_pool2d(x, self._size)


class Flatten(Module):
    """`torch.nn.Flatten(start_dim, end_dim)`."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        self._dims = (start_dim, end_dim)

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(*self._dims)


class Identity(Module):
    """`torch.nn.Identity` (arguments accepted and ignored, as PyTorch does)."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def forward(self, x: Tensor) -> Tensor:
        return x


class Dropout(Identity):
    """`torch.nn.Dropout(p)`: the identity at inference."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        if not 0.0 <= p <= 1.0:
            raise NetworkError(f"Dropout probability {p} is not in [0, 1]")
