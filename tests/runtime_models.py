"""A two-input model small enough to build in a second, for runtime and cache tests (also run in subprocesses)."""

from __future__ import annotations

import sys

from trtnet import nn, ops
from trtnet.nn.module import Input
from trtnet.tensor import Tensor
from trtnet.weights import init_random


class TwoInputs(nn.Module):
    """relu(conv(x)) + y: a float image and a float map of the conv's output shape."""

    def __init__(self) -> None:
        self.conv = nn.Conv2d(3, 4, 3, 1, 1)

    def inputs(self) -> list[Input]:
        return [Input("x", (3, 8, 8)), Input("y", (4, 8, 8))]

    def output_names(self, n: int) -> list[str]:
        return ["z"]

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return ops.relu(self.conv(x)) + y


def two_inputs(seed: int = 0) -> TwoInputs:
    model = TwoInputs()
    init_random(model, seed)
    return model


if __name__ == "__main__":  # a concurrent builder: python runtime_models.py CACHE_DIR -> plan sha256, build seconds
    import hashlib

    import trtnet

    engine = trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=sys.argv[1])
    print(hashlib.sha256(engine.plan).hexdigest(), f"{engine.build_seconds:.3f}")
