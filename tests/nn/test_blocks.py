"""The DSL blocks issue 11 added, each against the PyTorch module it re-expresses (loaded with that module's
state_dict), and the layers each emits: LayerNorm over channels (timm's LayerNorm2d), transformers' Conv1D, timm's
LayerScale, Linear over the channels of NCHW; `Input` is exported from trtnet.nn."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
from trtnet import nn
from trtnet.parity import rel_error

torch = pytest.importorskip("torch", reason="torch is the oracle of the block tests")
timm_layers = pytest.importorskip("timm.layers", reason="timm's LayerNorm2d and LayerScale are the sources")


class One(nn.Module):
    """A whole model of one block `block` (its keys under `block.`) taking `x` of per-sample `shape`."""

    def __init__(self, block: nn.Module, shape: tuple[int, ...]) -> None:
        self.block = block
        self._shape = shape

    def inputs(self) -> list[nn.Input]:
        return [nn.Input("x", self._shape)]

    def forward(self, x):
        return self.block(x)


def check(block: nn.Module, source, shape: tuple[int, ...], forward=None) -> trtnet.Network:
    """`block` with `source`'s randomised state_dict equals `forward` (default: `source`) on a batch of 2;
    returns its network."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in source.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
    model = One(block, shape)
    trtnet.load_weights(model, {f"block.{k}": v.numpy() for k, v in source.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    (got,) = trtnet.reference(model, x)
    with torch.no_grad():
        want = (forward or source)(torch.from_numpy(x)).numpy()
    assert rel_error(got, want) <= 1e-5
    return trtnet.emit(model, 2)


def layer_types(net: trtnet.Network) -> list[str]:
    return [str(net.network.get_layer(i).type).rpartition(".")[2] for i in range(net.num_layers)]


def test_layer_norm_2d_is_one_normalization_and_one_scale():
    net = check(nn.LayerNorm2d(6), timm_layers.LayerNorm2d(6), (6, 5, 4))
    # The unit-scale and zero-shift constants, the normalization over axis 1, the affine part along axis 1.
    assert layer_types(net) == ["CONSTANT", "CONSTANT", "NORMALIZATION", "SCALE"]


def test_layer_norm_over_an_inner_axis_without_affine():
    class Source(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.layer_norm(x.transpose(1, 2), (3,)).transpose(1, 2)

    check(nn.LayerNorm(3, axis=1, elementwise_affine=False), Source(), (3, 4))


def test_conv1d_is_a_linear_with_the_weight_stored_transposed():
    from transformers.pytorch_utils import Conv1D

    source = Conv1D(5, 7)  # nf=5 outputs, nx=7 inputs: weight [7, 5]
    block = nn.Conv1D(5, 7)
    assert block.weight.shape == tuple(source.weight.shape) == (7, 5)
    check(block, source, (3, 7))


def test_layer_scale_as_timm():
    check(nn.LayerScale(6), timm_layers.LayerScale(6), (4, 6))


def test_linear_and_mlp_over_channels_are_1x1_convolutions():
    source = timm_layers.Mlp(6, 12)
    net = check(
        nn.Mlp(6, 12, axis=1), source, (6, 3, 5), forward=lambda x: source(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    )  # timm's channels-last use
    assert layer_types(net) == ["CONVOLUTION", "ACTIVATION", "CONVOLUTION"]  # no permutes, biases inside


def test_linear_on_another_axis_is_refused_by_name():
    model = One(nn.Linear(3, 3, axis=2), (3, 3, 3))
    trtnet.init_random(model)
    with pytest.raises(trtnet.NetworkError, match=r"^Linear at block: axis 2 of Tensor\('x'.* is not supported"):
        trtnet.emit(model, 1)


def test_input_is_exported_from_nn():
    from trtnet.nn.module import Input

    assert nn.Input is Input
    assert nn.Input("ids", (8,), "int32").dtype == "int32"
