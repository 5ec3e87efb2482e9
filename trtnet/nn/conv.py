"""Convolution and BatchNorm, and the folding of a BatchNorm into the convolution before it.

Folding is the emitter's business, not the model's: when a module's attributes (or a Sequential's items) hold a
`Conv2d` directly followed by a `BatchNorm2d` of its output channels, as PyTorch sources write them
(`self.conv1`, `self.bn1`), `Module.bind` links the pair and the convolution is emitted with the BatchNorm's
scale and shift inside its weights (float64 arithmetic): the BatchNorm adds no layer. The guess is checked
while emitting: the folded output may only be read by that BatchNorm, and any other use of it is a NetworkError
(emit with `fold_bn=False`, or declare the BatchNorm before the convolution, to keep them apart).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trtnet import ops
from trtnet.errors import NetworkError
from trtnet.graph import current_graph, current_path
from trtnet.nn.module import Module, Parameter
from trtnet.tensor import Tensor


class Conv2d(Module):
    """`torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)`,
    symmetric zero padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        k = ops.convolution.pair(kernel_size)
        self.weight = Parameter((out_channels, in_channels // groups, *k), init="fan_in")
        self.bias = Parameter((out_channels,), init="normal", std=0.01) if bias else None
        self._config = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        self._bn: BatchNorm2d | None = None

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def precedes(self, sibling: object) -> None:
        """A BatchNorm of this convolution's output channels declared right after it is folded into it."""
        if isinstance(sibling, BatchNorm2d) and sibling.num_features == self.out_channels and sibling._conv is None:
            fold_bn(self, sibling)

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.data
        b = self.bias.data if self.bias is not None else None
        if self._bn is None or not current_graph().policy.fold_bn:
            return ops.conv2d(x, w, b, **self._config)
        w, b = self._bn.fold_into(w, b)
        return _FoldedOutput(ops.conv2d(x, w, b, **self._config), self, self._bn)


class BatchNorm2d(Module):
    """Eval-mode `torch.nn.BatchNorm2d(num_features, eps, momentum, affine)`: a per-channel scale and shift (one
    scale layer), or nothing when folded into the convolution before it. `momentum` only matters in training."""

    skip_keys = ("num_batches_tracked",)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True) -> None:
        self.weight = Parameter((num_features,), init="uniform", low=0.5, high=1.5) if affine else None
        self.bias = Parameter((num_features,), init="normal", std=0.1) if affine else None
        self.running_mean = Parameter((num_features,), init="normal", std=0.1)
        self.running_var = Parameter((num_features,), init="uniform", low=0.5, high=1.5)
        self.num_features = num_features
        self._eps = eps
        self._conv: Conv2d | None = None

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """The float64 per-channel (scale, shift) this BatchNorm applies."""
        weight = self.weight.data.astype(np.float64) if self.weight is not None else 1.0
        bias = self.bias.data.astype(np.float64) if self.bias is not None else 0.0
        var = self.running_var.data.astype(np.float64) + self._eps
        if (var <= 0).any():  # a NaN scale in every output of those channels (a NaN variance: load_weights warns)
            where = int(np.flatnonzero(var <= 0)[0])
            raise NetworkError(
                f"{self.running_var._path or 'running_var'}: channel {where} is "
                f"{float(self.running_var.data[where]):g}: a variance plus eps ({self._eps:g}) must be above 0"
            )
        scale = weight / np.sqrt(var)
        return scale, bias - self.running_mean.data.astype(np.float64) * scale

    def fold_into(self, weight: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """A conv's (weight, bias) with this BatchNorm applied after it, computed exactly in float64."""
        scale, shift = self.scale_shift()
        w = weight.astype(np.float64) * scale.reshape(-1, *([1] * (weight.ndim - 1)))
        b = shift if bias is None else bias.astype(np.float64) * scale + shift
        return w.astype(np.float32), b.astype(np.float32)

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(x, _FoldedOutput) and x._bn is self:
            return Tensor(x._itensor)  # already inside the convolution's weights
        scale, shift = self.scale_shift()
        return ops.scale_channels(x, scale.astype(np.float32), shift.astype(np.float32))


def fold_bn(conv: Conv2d, bn: BatchNorm2d) -> None:
    """Declare that `bn` directly follows `conv`, so it is folded into the conv's weights (needed only where
    the two are not declared one after the other: `Module.bind` links those)."""
    conv._bn = bn
    bn._conv = conv


class _FoldedOutput(Tensor):
    """A convolution's output with its BatchNorm already applied: only that BatchNorm may read it."""

    __slots__ = ("_itensor", "_conv", "_bn")

    def __init__(self, y: Tensor, conv: Conv2d, bn: BatchNorm2d) -> None:  # noqa: D107 - no Tensor.__init__: see itensor
        self._itensor, self._conv, self._bn = y.itensor, conv, bn

    @property
    def itensor(self):
        raise NetworkError(
            f"{current_path()} reads the output of Conv2d {self._conv._path!r}, into whose weights BatchNorm2d "
            f"{self._bn._path!r} (declared right after it) is folded: only that BatchNorm may read it. Emit with "
            "fold_bn=False, or declare the BatchNorm before the convolution to keep the two apart"
        )

    def __repr__(self) -> str:
        return f"Tensor(output of {self._conv._path!r} with {self._bn._path!r} folded in)"
