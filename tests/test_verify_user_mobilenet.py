"""Issue 20's `verify` case end to end: a user's DSL MobileNetV3 with a deliberately wrong activation, registered
with torchvision's mobilenet_v3_large as its source.

On the source's own random weights its output does not depend on its input, so any re-expression matches it:
verify must refuse to call that a pass. With the zoo's weight redraw (`trtnet.zoo.he_init`) in the registered
source the input check passes, and the wrong activation is then caught; the right activation passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import trtnet_cli
from trtnet.zoo import REGISTRY

pytest.importorskip("torchvision", reason="the user's source is torchvision's mobilenet_v3_large")

# The user's file. The DSL side is built from torchvision's own block table, so its keys are the source's.
MODEL_FILE = """
import torchvision
from torchvision.models._utils import _make_divisible
from torchvision.models.mobilenetv3 import _mobilenet_v3_conf

import trtnet
from trtnet import nn, ops
from trtnet.zoo import he_init, register

HS = {hs}  # the activation the "HS" rows use (Hardswish is right)


def conv_bn_act(cin, cout, kernel, stride=1, groups=1, act=None):
    conv = nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
    bn = nn.BatchNorm2d(cout, eps=0.001)  # torchvision builds MobileNetV3 with eps 1e-3
    nn.fold_bn(conv, bn)
    return nn.Sequential(conv, bn, *([act] if act is not None else []))


class SqueezeExcitation(nn.Module):
    def __init__(self, c, squeeze):
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        s = ops.relu(self.fc1(ops.global_avg_pool2d(x)))
        return x * self.gate(self.fc2(s))


class Block(nn.Module):
    def __init__(self, row):
        act = HS() if row.use_hs else nn.ReLU()
        layers = []
        if row.expanded_channels != row.input_channels:
            layers.append(conv_bn_act(row.input_channels, row.expanded_channels, 1, act=act))
        layers.append(
            conv_bn_act(row.expanded_channels, row.expanded_channels, row.kernel, row.stride, row.expanded_channels, act)
        )
        if row.use_se:
            squeeze = _make_divisible(row.expanded_channels // 4, 8)
            layers.append(SqueezeExcitation(row.expanded_channels, squeeze))
        layers.append(conv_bn_act(row.expanded_channels, row.out_channels, 1))
        self.block = nn.Sequential(*layers)
        self.residual = row.stride == 1 and row.input_channels == row.out_channels

    def forward(self, x):
        y = self.block(x)
        return y + x if self.residual else y


class MobileNetV3(nn.Module):
    def __init__(self):
        rows, last = _mobilenet_v3_conf("mobilenet_v3_large")
        first, final = rows[0].input_channels, 6 * rows[-1].out_channels
        self.features = nn.Sequential(
            conv_bn_act(3, first, 3, 2, act=HS()),
            *[Block(r) for r in rows],
            conv_bn_act(rows[-1].out_channels, final, 1, act=HS()),
        )
        self.classifier = nn.Sequential(nn.Linear(final, last), HS(), nn.Identity(), nn.Linear(last, 1000))

    def inputs(self):
        return [nn.Input("x", (3, 64, 64))]

    def output_names(self, n):
        return ["logits"]

    def forward(self, x):
        return self.classifier(ops.global_avg_pool2d(self.features(x)).flatten(1))


def source():
    model = torchvision.models.mobilenet_v3_large(weights=None)
    {redraw}
    return model


@register("{name}", source="torchvision mobilenet_v3_large", torch_model=source)
def mobilenet_v3(weights=None, **config):
    model = MobileNetV3(**config)
    if weights is None:
        trtnet.init_random(model)
    else:
        trtnet.load_weights(model, weights)
    return model
"""


def verify(tmp_path: Path, name: str, hs: str, redraw: bool):
    path = tmp_path / f"{name}.py"
    text = MODEL_FILE.replace("{hs}", hs).replace("{name}", name)
    path.write_text(text.replace("{redraw}", "he_init(model)" if redraw else "pass"))
    try:
        return trtnet_cli("verify", f"{path}:mobilenet_v3", "--batch", "2")
    finally:
        REGISTRY.pop(name, None)


def test_verify_refuses_a_source_whose_output_ignores_its_input_and_passes_once_it_is_redrawn(tmp_path):
    wrong = verify(tmp_path, "user_mnv3_wrong", "nn.ReLU", redraw=False)
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "inputs: FAILED: the source's outputs hardly depend on the input" in wrong.stdout
    assert "trtnet.zoo.he_init" in wrong.stdout
    assert "user_mnv3_wrong: FAILED" in wrong.stdout

    caught = verify(tmp_path, "user_mnv3_caught", "nn.ReLU", redraw=True)
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert "inputs: the source's outputs for other inputs differ by" in caught.stdout
    assert "reference fp32 logits: rel error" in caught.stdout and "FAILED" in caught.stdout

    right = verify(tmp_path, "user_mnv3_right", "nn.Hardswish", redraw=True)
    assert right.returncode == 0, right.stdout + right.stderr
    assert "inputs: the source's outputs for other inputs differ by" in right.stdout
    assert "user_mnv3_right: passed" in right.stdout
