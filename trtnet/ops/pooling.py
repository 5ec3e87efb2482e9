"""Pooling (`IPoolingLayer`) with PyTorch's output-size rules, ceil mode included."""

from __future__ import annotations

from collections.abc import Sequence

from trtnet.backend import get_trt
from trtnet.errors import NetworkError
from trtnet.graph import current_graph
from trtnet.ops.convolution import pair
from trtnet.ops.core import out
from trtnet.ops.reduction import mean
from trtnet.tensor import Tensor


def _torch_out(size: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    num = size + 2 * p - k
    n = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (n - 1) * s >= size + p:  # PyTorch drops a window that would start in the right padding
        n -= 1
    return n


def _pool(x: Tensor, kind: str, kernel, stride, padding, ceil_mode: bool, count_include_pad: bool) -> Tensor:
    graph = current_graph()
    trt = get_trt()
    k, p = pair(kernel), pair(padding)
    s = pair(stride) if stride is not None else k
    layer = graph.network.add_pooling_nd(x.itensor, getattr(trt.PoolingType, kind), k)
    layer.stride_nd = s
    # Explicit post-padding reproduces PyTorch's ceil mode exactly (TensorRT's round-up mode keeps windows
    # that start in the padding, which PyTorch drops).
    post = []
    for size, ki, si, pi in zip(x.shape[2:], k, s, p):
        n = _torch_out(size, ki, si, pi, ceil_mode)
        post.append(max(pi, (n - 1) * si + ki - size - pi))
    layer.pre_padding = p
    layer.post_padding = tuple(post)
    if kind == "AVERAGE":
        # PyTorch counts the symmetric padding but never the extra ceil-mode window overhang. With no symmetric
        # padding that is "exclude padding"; with both, TensorRT has no way to say it.
        ceil_overhang = tuple(post) != p
        if count_include_pad and ceil_overhang and any(p):
            raise NetworkError(
                f"avg_pool2d at {graph.path or 'top level'}: ceil_mode with padding and "
                "count_include_pad=True has no TensorRT equivalent"
            )
        layer.average_count_excludes_padding = not count_include_pad or ceil_overhang
    return out(layer, kind.lower() + "_pool")


def max_pool2d(
    x: Tensor,
    kernel: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    ceil_mode: bool = False,
) -> Tensor:
    """`F.max_pool2d` (padding never wins the max, as in PyTorch)."""
    return _pool(x, "MAX", kernel, stride, padding, ceil_mode, False)


def avg_pool2d(
    x: Tensor,
    kernel: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """`F.avg_pool2d`."""
    return _pool(x, "AVERAGE", kernel, stride, padding, ceil_mode, count_include_pad)


def global_avg_pool2d(x: Tensor) -> Tensor:
    """`F.adaptive_avg_pool2d(x, 1)`: the mean over H and W, kept as [N, C, 1, 1]."""
    return mean(x, (2, 3), keepdim=True)


def adaptive_avg_pool2d(x: Tensor, size: int | Sequence[int]) -> Tensor:
    """`F.adaptive_avg_pool2d(x, size)` where each input side is a multiple of the output side (then PyTorch's
    windows are equal, non-overlapping tiles: a plain average pool). Other sizes raise a NetworkError."""
    out_hw = pair(size)
    in_hw = x.shape[2:]
    if tuple(in_hw) == out_hw:
        return x
    if any(i < 0 or i % o for i, o in zip(in_hw, out_hw)):
        raise NetworkError(
            f"adaptive_avg_pool2d at {current_graph().path or 'top level'}: input {tuple(in_hw)} is "
            f"not a multiple of the output {out_hw}; only equal tiles are supported"
        )
    kernel = tuple(i // o for i, o in zip(in_hw, out_hw))
    return avg_pool2d(x, kernel, kernel)
