"""Each op, on small shapes, through TensorRT and the reference interpreter, against torch.nn.functional."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import emitted_layer_types, run_ops
from trtnet import ops
from trtnet.backend import get_trt
from trtnet.errors import NetworkError
from trtnet.parity import rel_error

torch = pytest.importorskip("torch", reason="torch is the oracle of the op tests")
F = torch.nn.functional

rng = np.random.default_rng(0)
W_DEPTHWISE = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
W_GROUPED = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
W_DILATED = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
W_LINEAR = rng.standard_normal((5, 7)).astype(np.float32)
B4, B5, B8 = (rng.standard_normal(n).astype(np.float32) for n in (4, 5, 8))
LN_W, LN_B = rng.uniform(0.5, 1.5, 7).astype(np.float32), rng.standard_normal(7).astype(np.float32)
C_W, C_B = rng.uniform(0.5, 1.5, 5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
W_QKV, B_QKV = rng.standard_normal((6, 7)).astype(np.float32), rng.standard_normal(6).astype(np.float32)
T = torch.from_numpy


def x(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


# (id, trtnet function, torch function, example inputs)
CASES = [
    ("add_broadcast", lambda a, b: a + b, lambda a, b: a + b, (x(2, 3, 4), x(3, 1))),
    ("sub_scalar", lambda a: 1.5 - a, lambda a: 1.5 - a, (x(2, 3),)),
    ("mul_div", lambda a, b: a * b / (b * b + 1.0), lambda a, b: a * b / (b * b + 1.0), (x(2, 5), x(2, 5))),
    ("pow", lambda a: ops.abs(a) ** 1.5, lambda a: a.abs() ** 1.5, (x(3, 4),)),
    (
        "max_min",
        lambda a, b: ops.maximum(a, b) - ops.minimum(a, 0.0),
        lambda a, b: torch.maximum(a, b) - torch.clamp(a, max=0.0),
        (x(2, 4), x(1, 4)),
    ),
    (
        "exp_log_sqrt",
        lambda a: ops.log(ops.exp(a) + 1.0) + ops.sqrt(ops.abs(a)) + ops.rsqrt(a * a + 1.0),
        lambda a: torch.log(torch.exp(a) + 1.0) + a.abs().sqrt() + torch.rsqrt(a * a + 1.0),
        (x(4, 6),),
    ),
    ("erf_neg", lambda a: -ops.erf(a), lambda a: -torch.erf(a), (x(8),)),
    ("relu", ops.relu, F.relu, (x(2, 8),)),
    ("relu6", lambda a: ops.relu6(a * 4.0), lambda a: F.relu6(a * 4.0), (x(2, 8),)),
    ("sigmoid_tanh", lambda a: ops.sigmoid(a) + ops.tanh(a), lambda a: torch.sigmoid(a) + torch.tanh(a), (x(3, 3),)),
    ("silu", ops.silu, F.silu, (x(2, 8),)),
    ("gelu_erf", ops.gelu, F.gelu, (x(2, 8),)),
    ("gelu_tanh", ops.gelu_tanh, lambda a: F.gelu(a, approximate="tanh"), (x(2, 8),)),
    ("hardswish", lambda a: ops.hardswish(a * 4.0), lambda a: F.hardswish(a * 4.0), (x(2, 8),)),
    ("leaky_relu", lambda a: ops.leaky_relu(a, 0.1), lambda a: F.leaky_relu(a, 0.1), (x(2, 8),)),
    (
        "conv_stride2_odd",
        lambda a: ops.conv2d(a, W_DILATED, B4, stride=2, padding=1),
        lambda a: F.conv2d(a, T(W_DILATED), T(B4), stride=2, padding=1),
        (x(2, 3, 9, 7),),
    ),
    (
        "conv_depthwise",
        lambda a: ops.conv2d(a, W_DEPTHWISE, None, stride=2, padding=1, groups=6),
        lambda a: F.conv2d(a, T(W_DEPTHWISE), None, stride=2, padding=1, groups=6),
        (x(1, 6, 8, 8),),
    ),
    (
        "conv_groups",
        lambda a: ops.conv2d(a, W_GROUPED, B8, padding=(0, 1), groups=2),
        lambda a: F.conv2d(a, T(W_GROUPED), T(B8), padding=(0, 1), groups=2),
        (x(2, 6, 5, 5),),
    ),
    (
        "conv_dilation",
        lambda a: ops.conv2d(a, W_DILATED, None, padding=2, dilation=2),
        lambda a: F.conv2d(a, T(W_DILATED), None, padding=2, dilation=2),
        (x(1, 3, 7, 7),),
    ),
    ("max_pool_pad", lambda a: ops.max_pool2d(a, 3, 2, 1), lambda a: F.max_pool2d(a, 3, 2, 1), (x(2, 3, 7, 8),)),
    (
        "max_pool_ceil",
        lambda a: ops.max_pool2d(a, 3, 2, 0, ceil_mode=True),
        lambda a: F.max_pool2d(a, 3, 2, 0, ceil_mode=True),
        (x(1, 2, 8, 9),),
    ),
    (
        "max_pool_ceil_pad",
        lambda a: ops.max_pool2d(a, 3, 2, 1, ceil_mode=True),
        lambda a: F.max_pool2d(a, 3, 2, 1, ceil_mode=True),
        (x(1, 2, 6, 7),),
    ),
    (
        "avg_pool_include_pad",
        lambda a: ops.avg_pool2d(a, 3, 1, 1),
        lambda a: F.avg_pool2d(a, 3, 1, 1),
        (x(2, 3, 5, 6),),
    ),
    (
        "avg_pool_exclude_pad",
        lambda a: ops.avg_pool2d(a, 3, 2, 1, count_include_pad=False),
        lambda a: F.avg_pool2d(a, 3, 2, 1, count_include_pad=False),
        (x(2, 3, 7, 6),),
    ),
    (
        "avg_pool_ceil",
        lambda a: ops.avg_pool2d(a, 2, 2, 0, ceil_mode=True),
        lambda a: F.avg_pool2d(a, 2, 2, 0, ceil_mode=True),
        (x(1, 2, 5, 7),),
    ),
    (
        "adaptive_avg_pool_tiles",
        lambda a: ops.adaptive_avg_pool2d(a, (2, 3)),
        lambda a: F.adaptive_avg_pool2d(a, (2, 3)),
        (x(2, 3, 8, 9),),
    ),
    ("global_avg_pool", ops.global_avg_pool2d, lambda a: F.adaptive_avg_pool2d(a, 1), (x(2, 4, 5, 3),)),
    ("linear", lambda a: ops.linear(a, W_LINEAR, B5), lambda a: F.linear(a, T(W_LINEAR), T(B5)), (x(2, 3, 7),)),
    ("matmul_batch_broadcast", lambda a, b: a @ b, lambda a, b: a @ b, (x(2, 3, 4, 5), x(3, 5, 2))),
    (
        "matmul_transpose_b",
        lambda a, b: ops.matmul(a, b, transpose_b=True),
        lambda a, b: a @ b.transpose(-1, -2),
        (x(2, 4, 5), x(2, 3, 5)),
    ),
    (
        "layer_norm",
        lambda a: ops.layer_norm(a, LN_W, LN_B, 1e-6),
        lambda a: F.layer_norm(a, (7,), T(LN_W), T(LN_B), 1e-6),
        (x(2, 3, 7),),
    ),
    (
        "batch_norm",
        lambda a: ops.batch_norm(a, B4, np.abs(B4) + 0.5, B4 * 2, -B4, 1e-5),
        lambda a: F.batch_norm(a, T(B4), T(np.abs(B4) + 0.5), T(B4 * 2), T(-B4), eps=1e-5),
        (x(2, 4, 3, 3),),
    ),
    ("softmax_last", lambda a: a.softmax(-1), lambda a: a.softmax(-1), (x(2, 3, 6),)),
    ("softmax_axis1", lambda a: a.softmax(1), lambda a: a.softmax(1), (x(2, 3, 6),)),
    (
        "mean_sum_max",
        lambda a: a.mean(1, keepdim=True) + a.sum((0, 2), keepdim=True) + a.max(-1, keepdim=True),
        lambda a: a.mean(1, keepdim=True) + a.sum((0, 2), keepdim=True) + a.amax(-1, keepdim=True),
        (x(2, 3, 4),),
    ),
    (
        "reshape_permute",
        lambda a: a.reshape(2, 4, 3).permute(2, 0, 1),
        lambda a: a.reshape(2, 4, 3).permute(2, 0, 1),
        (x(2, 3, 4),),
    ),
    (
        "transpose_flatten",
        lambda a: a.transpose(1, 2).flatten(1),
        lambda a: a.transpose(1, 2).flatten(1),
        (x(2, 3, 4, 5),),
    ),
    (
        "getitem",
        lambda a: (a[:, 1, ::2] + a[1:, -1, 1:4]).sum(-1, keepdim=True) * a[:, None, 0, :3, 2],
        lambda a: (a[:, 1, ::2] + a[1:, -1, 1:4]).sum(-1, keepdim=True) * a[:, None, 0, :3, 2],
        (x(2, 3, 6, 4),),
    ),
    (
        "getitem_ellipsis",
        lambda a: a[..., 1:3] * a[0:1, ..., 2:4],
        lambda a: a[..., 1:3] * a[0:1, ..., 2:4],
        (x(2, 3, 5),),
    ),
    (
        "concat_split",
        lambda a: ops.concat(ops.split(a, [2, 1, 3], 2)[::-1], 2),
        lambda a: torch.cat(torch.split(a, [2, 1, 3], 2)[::-1], 2),
        (x(2, 3, 6),),
    ),
    ("chunk", lambda a: ops.chunk(a, 3, -1)[1], lambda a: a.chunk(3, -1)[1], (x(2, 9),)),
    ("roll", lambda a: ops.roll(a, (-2, 1), (1, 2)), lambda a: torch.roll(a, (-2, 1), (1, 2)), (x(2, 5, 4, 3),)),
    ("pad", lambda a: ops.pad(a, (1, 2, 0, 1)), lambda a: F.pad(a, (1, 2, 0, 1)), (x(1, 2, 3, 4),)),
    (
        "shuffle",
        lambda a: ops.shuffle(a, first=(0, 2, 1, 3), shape=(2, 4, 15), second=(0, 2, 1)),
        lambda a: a.permute(0, 2, 1, 3).reshape(2, 4, 15).permute(0, 2, 1),
        (x(2, 3, 4, 5),),
    ),
    (
        "scale_channels_last",
        lambda a: ops.scale_channels(a, LN_W, LN_B, axis=-1),
        lambda a: a * T(LN_W) + T(LN_B),
        (x(2, 3, 7),),
    ),
    (
        "shift_elements",
        lambda a: ops.shift_elements(a, W_LINEAR[:, None, :], axis=1),
        lambda a: a + T(W_LINEAR[:, None, :]),
        (x(2, 5, 3, 7),),
    ),
    (
        "split_merge_heads",
        lambda a: ops.merge_heads(ops.split_heads_linear(a, W_QKV, B_QKV, 3)),
        lambda a: F.linear(a, T(W_QKV), T(B_QKV)),
        (x(2, 1, 4, 7),),
    ),
    (
        "layer_norm_no_affine",
        lambda a: ops.layer_norm(a, None, None) + ops.layer_norm(a * 2.0, None, None),
        lambda a: F.layer_norm(a, (7,)) + F.layer_norm(a * 2.0, (7,)),
        (x(2, 3, 7),),
    ),
    # LayerNorm over the channels of NCHW (timm's LayerNorm2d), and over two inner axes.
    (
        "layer_norm_channels_first",
        lambda a: ops.layer_norm(a, C_W, C_B, 1e-6, axes=1),
        lambda a: F.layer_norm(a.permute(0, 2, 3, 1), (5,), T(C_W), T(C_B), 1e-6).permute(0, 3, 1, 2),
        (x(2, 5, 3, 4),),
    ),
    (
        "layer_norm_axes_1_2",
        lambda a: ops.layer_norm(a, None, None, 1e-5, axes=(1, 2)),
        lambda a: F.layer_norm(a.permute(0, 3, 1, 2), (5, 3)).permute(0, 2, 3, 1),
        (x(2, 5, 3, 4),),
    ),
    (
        "layer_scale",
        lambda a: ops.layer_scale(a, C_W, axis=1) + ops.layer_scale(a, LN_W[:4]),
        lambda a: a * T(C_W).reshape(1, -1, 1, 1) + a * T(LN_W[:4]),
        (x(2, 5, 3, 4),),
    ),
    (
        "activation_methods",
        lambda a: a.gelu() + a.relu() + a.sigmoid() + a.silu() + a.tanh() + a.gelu_tanh(),
        lambda a: F.gelu(a) + a.relu() + a.sigmoid() + F.silu(a) + a.tanh() + F.gelu(a, approximate="tanh"),
        (x(3, 8),),
    ),
    (
        "upsample_nearest",
        lambda a: ops.interpolate_nearest(a, 2),
        lambda a: F.interpolate(a, scale_factor=2.0),
        (x(1, 2, 3, 5),),
    ),
]


@pytest.mark.parametrize("fn, torch_fn, inputs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_op_matches_torch(fn, torch_fn, inputs):
    (got,) = run_ops(fn, *inputs)
    with torch.no_grad():
        want = torch_fn(*[T(a) for a in inputs]).numpy()
    assert got.shape == want.shape
    assert rel_error(got, want) <= 1e-5


def test_gather_embedding_rows():
    table = x(10, 4)
    ids = np.array([[3, 0, 9], [1, 1, 2]], np.int32)
    (got,) = run_ops(lambda i: ops.gather(ops.constant(table), i), ids)
    np.testing.assert_array_equal(got, table[ids])


@pytest.mark.parametrize("norm_fp32", [True, False], ids=["norm_fp32", "norm_in_precision"])
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_casts_back_to_fp32(precision, norm_fp32):
    a = x(2, 3, 8)
    (got,) = run_ops(
        lambda t: ops.layer_norm(ops.gelu(t), LN_W[:1].repeat(8), None).softmax(-1),
        a,
        precision=precision,
        norm_fp32=norm_fp32,
    )
    want = F.layer_norm(F.gelu(T(a)), (8,), T(LN_W[:1].repeat(8))).softmax(-1).numpy()
    assert got.dtype == np.float32
    assert rel_error(got, want) <= (2e-2 if precision == "bf16" else 2e-3)


# Errors are pinned: the message names what was wrong.
ERRORS = [
    ("reshape two -1", lambda a: a.reshape(-1, -1), (2, 3, 4), "at most one dimension may be -1"),
    ("bad permute", lambda a: a.permute(0, 0, 1), (2, 3, 4), "is not a permutation"),
    ("index out of range", lambda a: a[:, 5], (2, 3, 4), "index 5 out of range for axis 1"),
    ("split sizes", lambda a: ops.split(a, [1, 1], 1), (2, 3, 4), "do not add up to 3"),
    ("conv channels", lambda a: ops.conv2d(a, W_DILATED), (1, 2, 4, 4), "input has 2 channels, weight expects 3"),
    ("conv rank", lambda a: ops.conv2d(a, W_DILATED), (2, 3, 4), r"conv2d at top level: input .* is not NCHW"),
    ("squeeze non-1", lambda a: a.squeeze(1), (2, 3, 4), "axis 1 has size 3, not 1"),
    ("adaptive pool uneven", lambda a: ops.adaptive_avg_pool2d(a, 7), (1, 2, 10, 14), "not a multiple of the output"),
    ("avg pool ceil+pad", lambda a: ops.avg_pool2d(a, 3, 2, 1, ceil_mode=True), (1, 1, 6, 6), "no TensorRT equivalent"),
]


@pytest.mark.parametrize("fn, shape, message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_op_errors_name_the_problem(fn, shape, message):
    with pytest.raises(NetworkError, match=message):
        run_ops(fn, x(*shape))


@pytest.mark.parametrize("fused", [True, False], ids=["fused_attention_layer", "matmul_softmax_matmul"])
@pytest.mark.parametrize("mask_kind", ["none", "bool", "additive"])
def test_attention_matches_torch(fused, mask_kind):
    q, k, v = x(2, 3, 5, 4), x(2, 3, 6, 4), x(2, 3, 6, 4)
    keep = np.ones((2, 1, 1, 6), bool)
    keep[1, ..., 4:] = False  # the second sample's last two keys are padding
    bias = x(1, 3, 5, 6)

    def fn(a, b, c, m):
        mask = ops.cast(m, "bool") if mask_kind == "bool" else None
        return ops.scaled_dot_product_attention(a, b, c, bias=bias if mask_kind == "additive" else None, mask=mask)

    (got,) = run_ops(fn, q, k, v, keep.astype(np.int32), fused_attention=fused)
    with torch.no_grad():
        torch_mask = {"none": None, "bool": T(keep), "additive": T(bias)}[mask_kind]
        want = F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=torch_mask).numpy()
    assert rel_error(got, want) <= 1e-5


@pytest.mark.parametrize("fused", [True, False], ids=["fused_attention_layer", "matmul_softmax_matmul"])
def test_attention_path_follows_the_policy(fused):
    trt = get_trt()
    layers = emitted_layer_types(
        lambda a: ops.scaled_dot_product_attention(a, a, a), x(1, 2, 3, 4), fused_attention=fused
    )
    assert (trt.LayerType.ATTENTION_INPUT in layers) == fused
    assert (trt.LayerType.SOFTMAX in layers) != fused
