"""Layers that make tensors from attributes: CONSTANT, FILL."""

from __future__ import annotations

import math

import numpy as np

from trtnet.interpreter._common import (
    LayerCall,
    dims,
    enum_name,
    int_vector,
    np_dtype,
    register,
    rounded,
    weights_array,
)


@register("CONSTANT", "IConstantLayer")
def constant(call: LayerCall) -> list[np.ndarray]:
    """The layer's weights, reshaped to its `shape`."""
    shape = call.setting("shape", lambda layer: dims(layer.shape))
    values = weights_array(call.layer.weights, "constant weights")
    if values.size != math.prod(shape):
        raise call.fail(f"{values.size} weights do not fill shape {shape}")
    # A read-only view, not a copy: the weights can be hundreds of megabytes (VGG16's first linear layer), no
    # handler writes into its inputs, and numpy refuses a write into a read-only array should one try.
    view = values.reshape(shape).view()
    view.flags.writeable = False
    return [view]


@register("FILL", "IFillLayer")
def fill(call: LayerCall) -> list[np.ndarray]:
    """LINSPACE (alpha + sum_i beta[i] * index_i); RANDOM_* draw from a fixed-seed numpy generator.

    Random fills cannot match TensorRT's values, only their shape, dtype and distribution parameters.
    """
    layer = call.layer
    dtype = np_dtype(layer.to_type)
    shape_in = call.optional(0)
    shape = int_vector(call, shape_in, "shape input") if shape_in is not None else dims(layer.shape)
    alpha_in, beta_in = call.optional(1), call.optional(2)
    alpha = np.asarray(alpha_in, np.float64).reshape(()) if alpha_in is not None else np.float64(layer.alpha)
    beta = np.asarray(beta_in, np.float64).reshape(-1) if beta_in is not None else np.array([layer.beta], np.float64)
    op = enum_name(layer.operation)
    if op == "LINSPACE":
        rank = len(shape)
        if beta.size != rank and not (rank == 0 or (rank == 1 and beta.size == 1)):
            raise call.fail(f"LINSPACE needs one delta per dim ({rank}), got {beta.size}")
        out = np.full(shape, alpha, np.float64)
        for axis in range(rank):
            ramp = np.arange(shape[axis], dtype=np.float64) * beta[axis]
            out = out + ramp.reshape((-1,) + (1,) * (rank - axis - 1))
        return [rounded(out, dtype)]
    rng = np.random.default_rng(0)
    lo_or_mean, hi_or_std = float(alpha), float(beta.reshape(-1)[0])
    if op == "RANDOM_UNIFORM":
        return [rng.uniform(lo_or_mean, hi_or_std, size=shape).astype(dtype)]
    if op == "RANDOM_NORMAL":
        return [rng.normal(lo_or_mean, hi_or_std, size=shape).astype(dtype)]
    raise call.fail(f"unsupported fill operation {op}")
