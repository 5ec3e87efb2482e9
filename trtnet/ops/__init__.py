"""Functional ops, grouped by family. Each adds TensorRT layers to the current graph and returns Tensors."""
from trtnet.ops.activation import (ACTIVATIONS, activation, activation_by_name, gelu, gelu_tanh, hardsigmoid, hardswish, leaky_relu,
                                   relu, relu6, sigmoid, silu, tanh)
from trtnet.ops.attention import merge_heads, scaled_dot_product_attention, split_heads_linear
from trtnet.ops.convolution import conv2d
from trtnet.ops.core import as_tensor, constant
from trtnet.ops.elementwise import add, div, elementwise, equal, greater, less, maximum, minimum, mul, pow, sub
from trtnet.ops.matrix import linear, matmul
from trtnet.ops.normalization import batch_norm, layer_norm, layer_scale, scale_channels, shift_elements, softmax
from trtnet.ops.pooling import adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d, max_pool2d
from trtnet.ops.reduction import amax, amin, mean, reduce, sum
from trtnet.ops.shape import (cast, chunk, concat, flatten, gather, getitem, interpolate_nearest, narrow_like, pad, permute,
                              reshape, roll, shape_of, shuffle, split, squeeze, strided_slice, transpose, unsqueeze)
from trtnet.ops.unary import abs, erf, exp, floor, log, neg, recip, rsqrt, sqrt, unary

from trtnet.ops import methods as _methods  # noqa: E402,F401  (gives Tensor its operators: see that module)

__all__ = [name for name in dir() if not name.startswith("_")]
