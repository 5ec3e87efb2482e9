"""The layers a CNN needs, each against the PyTorch module of the same name built from the same keyword
arguments (so the DSL takes PyTorch's argument names), containers with PyTorch's state_dict keys, BatchNorm
folding done by the emitter, and Parameters used as tensors in `forward`."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
from trtnet import nn
from trtnet.parity import rel_error

torch = pytest.importorskip("torch", reason="torch is the oracle of the layer tests")


class One(nn.Module):
    """A whole model of one block `block` (its keys under `block.`) taking `x` of per-sample `shape`."""

    def __init__(self, block: nn.Module, shape: tuple[int, ...], dtype: str = "float32", high: int = 2) -> None:
        self.block = block
        self._input = nn.Input("x", shape, dtype, high=high)

    def inputs(self) -> list[nn.Input]:
        return [self._input]

    def forward(self, x):
        return self.block(x)


def check(block: nn.Module, source: torch.nn.Module, x: np.ndarray, **policy) -> trtnet.Network:
    """`block`, loaded with `source`'s randomised state_dict, equals `source` on `x`; returns its network."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in source.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
        for name, b in source.named_buffers():
            if b.is_floating_point():
                b.copy_(torch.rand(b.shape, generator=gen) + (0.5 if "var" in name else -0.5))
    source.eval()
    state = {f"block.{k}": v.numpy() for k, v in source.state_dict().items()}
    model = One(block, x.shape[1:], str(x.dtype), high=int(x.max()) + 1 if x.dtype.kind == "i" else 2)
    trtnet.load_weights(model, state)
    (got,) = trtnet.reference(model, x, **policy)
    with torch.no_grad():
        want = source(torch.from_numpy(x)).numpy()
    assert rel_error(got, want) <= 1e-5, rel_error(got, want)
    return trtnet.emit(model, x.shape[0], **policy)


def image(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def layer_types(net: trtnet.Network) -> list[str]:
    return [str(net.network.get_layer(i).type).rpartition(".")[2] for i in range(net.num_layers)]


ACTIVATIONS = [
    ("ReLU", {}),
    ("ReLU6", {"inplace": True}),
    ("SiLU", {}),
    ("GELU", {}),
    ("GELU", {"approximate": "tanh"}),
    ("Sigmoid", {}),
    ("Tanh", {}),
    ("Hardswish", {}),
    ("Hardsigmoid", {}),
    ("LeakyReLU", {"negative_slope": 0.2}),
    ("Identity", {}),
    ("Dropout", {"p": 0.3}),
]


@pytest.mark.parametrize(("name", "kwargs"), ACTIVATIONS, ids=[f"{n}{k or ''}" for n, k in ACTIVATIONS])
def test_parameterless_module_by_pytorch_name(name, kwargs):
    x = image(2, 3, 4, 5) * 4  # across every activation's bends (hardswish at +-3)
    # Then a 1x1 convolution, so that an identity's output is not the network's input.
    block = nn.Sequential(getattr(nn, name)(**kwargs), nn.Conv2d(3, 2, 1))
    check(block, torch.nn.Sequential(getattr(torch.nn, name)(**kwargs), torch.nn.Conv2d(3, 2, 1)), x)


LAYERS = [
    (
        "Conv2d",
        dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, dilation=1, groups=2, bias=True),
        (2, 4, 9, 9),
    ),
    ("Conv2d", dict(in_channels=3, out_channels=5, kernel_size=(3, 1), padding=(1, 0), bias=False), (2, 3, 6, 6)),
    ("Linear", dict(in_features=7, out_features=3, bias=False), (2, 5, 7)),
    ("LayerNorm", dict(normalized_shape=6, eps=1e-3), (2, 4, 6)),
    ("LayerNorm", dict(normalized_shape=(4, 6), elementwise_affine=True), (2, 3, 4, 6)),
    ("BatchNorm2d", dict(num_features=3, eps=1e-3, momentum=0.2), (2, 3, 4, 4)),
    ("BatchNorm2d", dict(num_features=3, affine=False), (2, 3, 4, 4)),
    ("MaxPool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (2, 3, 8, 8)),
    ("AvgPool2d", dict(kernel_size=2, stride=2), (2, 3, 8, 8)),
    ("AdaptiveAvgPool2d", dict(output_size=1), (2, 3, 5, 5)),
    ("AdaptiveAvgPool2d", dict(output_size=(2, 2)), (2, 3, 6, 6)),
    ("Flatten", dict(start_dim=1), (2, 3, 2, 2)),
]


@pytest.mark.parametrize(("name", "kwargs", "shape"), LAYERS, ids=[n for n, _, _ in LAYERS])
def test_layer_takes_pytorch_keywords(name, kwargs, shape):
    check(getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs), image(*shape))


def test_embedding_takes_pytorch_keywords():
    ids = np.array([[0, 3, 9], [2, 2, 1]], np.int32)
    check(nn.Embedding(num_embeddings=10, embedding_dim=4), torch.nn.Embedding(num_embeddings=10, embedding_dim=4), ids)


def test_sequential_keys_and_folding_as_pytorch():
    def layers(m):
        return [
            m.Conv2d(3, 8, 3, padding=1, bias=False),
            m.BatchNorm2d(8),
            m.ReLU(),
            m.Conv2d(8, 4, 1),
            m.BatchNorm2d(4, eps=1e-3),
        ]

    block, source = nn.Sequential(*layers(nn)), torch.nn.Sequential(*layers(torch.nn))
    assert [k for k, _ in One(block, (3, 6, 6)).named_parameters()] == [
        f"block.{k}" for k in source.state_dict() if not k.endswith("num_batches_tracked")
    ]
    x = image(2, 3, 6, 6)
    folded = check(block, source, x)
    assert layer_types(folded) == ["CONVOLUTION", "ACTIVATION", "CONVOLUTION"]  # both BatchNorms inside the convs
    apart = check(block, source, x, fold_bn=False)
    assert layer_types(apart) == ["CONVOLUTION", "SCALE", "ACTIVATION", "CONVOLUTION", "SCALE"]


def test_module_list_keys_and_a_block_that_folds_without_being_told():
    class Torch(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.convs = m.ModuleList([m.Conv2d(3, 3, 3, padding=1, bias=False) for _ in range(2)])
            self.conv = m.Conv2d(3, 5, 1, bias=False)  # a conv and its BatchNorm declared one after the other
            self.bn = m.BatchNorm2d(5)

        def forward(self, x):
            for conv in self.convs:
                x = conv(x).relu()
            return self.bn(self.conv(x)).relu()

    class Block(nn.Module):
        def __init__(self):
            self.convs = nn.ModuleList([nn.Conv2d(3, 3, 3, padding=1, bias=False) for _ in range(2)])
            self.conv = nn.Conv2d(3, 5, 1, bias=False)
            self.bn = nn.BatchNorm2d(5)

        def forward(self, x):
            for conv in self.convs:
                x = conv(x).relu()
            return self.bn(self.conv(x)).relu()

    source = Torch(torch.nn)
    block = Block()
    assert len(block.convs) == 2 and isinstance(block.convs[1], nn.Conv2d)
    assert [k for k, _ in block.named_parameters()] == [
        k for k in source.state_dict() if not k.endswith("num_batches_tracked")
    ]
    net = check(block, source, image(2, 3, 5, 5))
    assert layer_types(net).count("SCALE") == 0
    assert check(block, source, image(2, 3, 5, 5), fold_bn=False).num_layers == net.num_layers + 1


def test_a_folded_convolution_output_read_elsewhere_is_an_error():
    class Block(nn.Module):
        def __init__(self):
            self.conv = nn.Conv2d(3, 3, 1)
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y  # y is the conv's output without the BatchNorm: it cannot be folded

    model = One(Block(), (3, 4, 4))
    trtnet.init_random(model)
    with pytest.raises(
        trtnet.NetworkError,
        match=r"^module 'block' reads the output of Conv2d 'block.conv', into whose weights BatchNorm2d 'block.bn' "
        r"\(declared right after it\) is folded: only that BatchNorm may read it\. Emit with fold_bn=False",
    ):
        trtnet.emit(model, 1)
    x = image(1, 3, 4, 4)
    (got,) = trtnet.reference(model, x, fold_bn=False)
    block = model.block
    with torch.no_grad():
        conv = torch.nn.Conv2d(3, 3, 1)
        conv.weight.copy_(torch.from_numpy(block.conv.weight.data))
        conv.bias.copy_(torch.from_numpy(block.conv.bias.data))
        bn = torch.nn.BatchNorm2d(3, eps=1e-5).eval()
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(torch.from_numpy(getattr(block.bn, name).data))
        y = conv(torch.from_numpy(x))
        want = (bn(y) + y).numpy()
    assert rel_error(got, want) <= 1e-5


class TorchScaled(torch.nn.Module):
    """Parameters used as tensors: a position table added, a layer scale and a per-channel shift broadcast."""

    def __init__(self):
        super().__init__()
        self.pos = torch.nn.Parameter(torch.randn(1, 4, 6))
        self.gamma = torch.nn.Parameter(torch.randn(6))
        self.shift = torch.nn.Parameter(torch.randn(4, 1))

    def forward(self, x):  # x [B, 3, 4, 6]
        y = x + self.pos
        y = self.gamma * y + self.shift
        return y * self.gamma - self.pos.expand(2, 4, 6)[:1].transpose(1, 2).transpose(1, 2) / 2


class Scaled(nn.Module):
    def __init__(self):
        self.pos = nn.Parameter((1, 4, 6))
        self.gamma = nn.Parameter((6,))
        self.shift = nn.Parameter((4, 1))

    def forward(self, x):  # the same text as TorchScaled.forward
        y = x + self.pos
        y = self.gamma * y + self.shift
        return y * self.gamma - self.pos.expand(2, 4, 6)[:1].transpose(1, 2).transpose(1, 2) / 2


def test_parameters_used_as_tensors_broadcast_as_pytorch():
    net = check(Scaled(), TorchScaled(), image(2, 3, 4, 6))
    # gamma (twice) and shift vary along one axis: scale layers holding them. pos is a constant at the rank of x
    # (no broadcast layer); its view is a second constant (the view itself costs no layer), divided by the scalar
    # 2 at its own rank [1, 4, 6] as in PyTorch, which the subtraction then broadcasts to rank 4.
    assert layer_types(net) == [
        *("CONSTANT", "ELEMENTWISE"),  # x + pos
        *("SCALE", "SCALE", "SCALE"),  # gamma * y + shift, y * gamma
        *("CONSTANT", "CONSTANT", "ELEMENTWISE"),  # view / 2
        *("SHUFFLE", "ELEMENTWISE"),  # the subtraction
    ]


def test_a_bad_view_of_a_parameter_names_it():
    class Bad(nn.Module):
        def __init__(self):
            self.gamma = nn.Parameter((6,))

        def forward(self, x):
            return x * self.gamma.reshape(4, -1)

    model = One(Bad(), (6,))
    trtnet.init_random(model)
    with pytest.raises(trtnet.NetworkError, match=r"^gamma \(6,\): reshape\(\(4, -1\),\): cannot reshape"):
        trtnet.emit(model, 1)


def test_a_parameter_used_twice_is_one_constant():
    class Twice(nn.Module):
        def __init__(self):
            self.pos = nn.Parameter((1, 4, 6))

        def forward(self, x):
            return (x + self.pos) * (self.pos + x)

    model = One(Twice(), (4, 6))
    trtnet.init_random(model)
    net = trtnet.emit(model, 2)
    assert layer_types(net) == ["CONSTANT", "ELEMENTWISE", "ELEMENTWISE", "ELEMENTWISE"]
    assert net.network.get_layer(0).name == "block/pos"  # named after the parameter, in the module that used it
