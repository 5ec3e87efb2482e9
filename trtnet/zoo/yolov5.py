"""YOLOv5 v7.0 (ultralytics/yolov5 `models/yolo.py` `Model` from `yolov5{n,s,m,l}.yaml`), eval-mode output.

The yaml's backbone/head rows are a typed table here; a loop builds `model.0 .. model.24` as `parse_model`
does, with its depth and width multiples. The Detect head decodes boxes as v7.0 does in eval mode, with the
anchors read from the checkpoint's `model.24.anchors` buffer (grid units) and the grid a constant of the
static feature-map shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from trtnet import nn, ops
from trtnet.nn.module import Input, Parameter
from trtnet.ops.detection import NMSOptions
from trtnet.tensor import Tensor
from trtnet.zoo.detection import DetectorOutputs, checked_image_size, run_table
from trtnet.zoo.registry import register_variant
from trtnet.zoo.sources import yolov5_source

From = int | tuple[int, ...]


class Conv(nn.Module):
    """conv (no bias; padding k // 2 unless given) + BatchNorm (eps 1e-3, as `initialize_weights` sets) + SiLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int | None = None) -> None:
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2 if padding is None else padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return ops.silu(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, shortcut: bool = True) -> None:
        self.cv1 = Conv(cin, cout, 1)
        self.cv2 = Conv(cout, cout, 3)
        self._add = shortcut and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self._add else y


class C3(nn.Module):
    """CSP bottleneck: two 1x1 branches of half width, one through `n` bottlenecks, concatenated, fused."""

    def __init__(self, cin: int, cout: int, n: int = 1, shortcut: bool = True) -> None:
        hidden = cout // 2
        self.cv1 = Conv(cin, hidden)
        self.cv2 = Conv(cin, hidden)
        self.cv3 = Conv(2 * hidden, cout)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut) for _ in range(n)))

    def forward(self, x: Tensor) -> Tensor:
        return self.cv3(ops.concat([self.m(self.cv1(x)), self.cv2(x)], 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 stride-1 max pools (padding 2), all concatenated."""

    def __init__(self, cin: int, cout: int, k: int = 5) -> None:
        hidden = cin // 2
        self.cv1 = Conv(cin, hidden)
        self.cv2 = Conv(hidden * 4, cout)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(ops.concat([x, y1, y2, self.m(y2)], 1))


class Upsample(nn.Module):
    """`nn.Upsample(scale_factor=2, mode="nearest")`."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.interpolate_nearest(x, 2)


class Concat(nn.Module):
    def forward(self, xs: list[Tensor]) -> Tensor:
        return ops.concat(xs, 1)


class Detect(nn.Module):
    """Per level: 1x1 conv -> [B, na, no, ny, nx] -> [B, na, ny, nx, no] -> sigmoid -> decoded boxes."""

    def __init__(self, num_classes: int, num_anchors: int, channels: tuple[int, ...], strides: tuple[int, ...]) -> None:
        self._nc, self._na, self._no = num_classes, num_anchors, num_classes + 5
        self._strides = strides
        # A buffer in the checkpoint: anchors in grid units (pixels / stride), as `Model.__init__` left them.
        self.anchors = Parameter((len(channels), num_anchors, 2), init="uniform", low=1.0, high=4.0)
        self.m = [nn.Conv2d(c, self._no * num_anchors, 1) for c in channels]

    def forward(self, xs: list[Tensor]) -> Tensor:
        anchors = self.anchors.data
        outs = []
        for i, (x, conv, stride) in enumerate(zip(xs, self.m, self._strides)):
            x = conv(x)
            ny, nx = x.shape[2], x.shape[3]
            y = x.reshape(-1, self._na, self._no, ny, nx).permute(0, 1, 3, 4, 2)
            y = ops.sigmoid(y)
            xy, wh, conf = y[..., 0:2], y[..., 2:4], y[..., 4:]
            xy = (xy * 2.0 + ops.constant(_grid(nx, ny), op="grid")) * float(stride)
            # anchor_grid = anchors * stride, in float32 as v7.0's `_make_grid` computes it.
            anchor_grid = (anchors[i] * np.float32(stride)).astype(np.float32).reshape(1, self._na, 1, 1, 2)
            wh2 = wh * 2.0
            wh = wh2 * wh2 * ops.constant(anchor_grid, op="anchor_grid")
            outs.append(ops.concat([xy, wh, conf], -1).reshape(-1, self._na * ny * nx, self._no))
        return ops.concat(outs, 1)


def _grid(nx: int, ny: int) -> np.ndarray:
    """v7.0's grid: (x, y) cell indices minus the 0.5 offset, shaped [1, 1, ny, nx, 2]."""
    yv, xv = np.meshgrid(np.arange(ny, dtype=np.float32), np.arange(nx, dtype=np.float32), indexing="ij")
    return (np.stack((xv, yv), -1) - np.float32(0.5)).reshape(1, 1, ny, nx, 2)


class Row(NamedTuple):
    """One row of the yaml: inputs (-1 = previous layer), repeats (before the depth multiple), block, args
    (output channels before the width multiple first, where the block has them)."""

    src: From
    n: int
    block: type
    args: tuple = ()


# yolov5{n,s,m,l}.yaml v6.0/v7.0: backbone then head (rows are numbered as the state_dict keys `model.i`).
ROWS = (
    Row(-1, 1, Conv, (64, 6, 2, 2)),  # 0  P1/2, a 6x6 stride-2 conv with padding 2
    Row(-1, 1, Conv, (128, 3, 2)),  # 1  P2/4
    Row(-1, 3, C3, (128,)),
    Row(-1, 1, Conv, (256, 3, 2)),  # 3  P3/8
    Row(-1, 6, C3, (256,)),
    Row(-1, 1, Conv, (512, 3, 2)),  # 5  P4/16
    Row(-1, 9, C3, (512,)),
    Row(-1, 1, Conv, (1024, 3, 2)),  # 7  P5/32
    Row(-1, 3, C3, (1024,)),
    Row(-1, 1, SPPF, (1024, 5)),  # 9
    Row(-1, 1, Conv, (512, 1, 1)),
    Row(-1, 1, Upsample),
    Row((-1, 6), 1, Concat),  # cat backbone P4
    Row(-1, 3, C3, (512, False)),  # 13
    Row(-1, 1, Conv, (256, 1, 1)),
    Row(-1, 1, Upsample),
    Row((-1, 4), 1, Concat),  # cat backbone P3
    Row(-1, 3, C3, (256, False)),  # 17 (P3/8, small)
    Row(-1, 1, Conv, (256, 3, 2)),
    Row((-1, 14), 1, Concat),  # cat head P4
    Row(-1, 3, C3, (512, False)),  # 20 (P4/16, medium)
    Row(-1, 1, Conv, (512, 3, 2)),
    Row((-1, 10), 1, Concat),  # cat head P5
    Row(-1, 3, C3, (1024, False)),  # 23 (P5/32, large)
)
DETECT_FROM = (17, 20, 23)
STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class YOLOv5Config:
    depth_multiple: float
    width_multiple: float
    num_classes: int = 80
    num_anchors: int = 3
    rows: tuple[Row, ...] = ROWS
    nms: NMSOptions | None = None  # in-engine NMS: fixed-size num_dets, boxes, scores, classes outputs
    preprocess: bool = False  # input uint8 NHWC BGR frames; the engine converts to float RGB NCHW / 255
    image_size: int = 640  # the grid is a constant of the emitted network (see Detect), sized from it


class YOLOv5(nn.Module):
    def __init__(self, config: YOLOv5Config) -> None:
        self._image_size = checked_image_size(config.image_size, STRIDES[-1], "YOLOv5")
        gd, gw = config.depth_multiple, config.width_multiple
        layers: list[nn.Module] = []
        channels: list[int] = []  # output channels of each layer, as parse_model's `ch`
        self._sources: list[From] = []
        for row in config.rows:
            cin = channels[row.src] if isinstance(row.src, int) and channels else 3
            n = max(round(row.n * gd), 1) if row.n > 1 else row.n
            if row.block in (Conv, C3, SPPF):
                cout = math.ceil(row.args[0] * gw / 8) * 8  # YOLOv5's make_divisible rounds up (timm's: to nearest)
                extra = row.args[1:]
                layer = row.block(cin, cout, n, *extra) if row.block is C3 else row.block(cin, cout, *extra)
            elif row.block is Concat:
                cout = sum(channels[s] for s in row.src)
                layer = Concat()
            else:
                cout, layer = cin, row.block()
            layers.append(layer)
            channels.append(cout)
            self._sources.append(row.src)
        layers.append(Detect(config.num_classes, config.num_anchors, tuple(channels[i] for i in DETECT_FROM), STRIDES))
        self._sources.append(DETECT_FROM)
        self.model = layers
        self._outputs = DetectorOutputs(config.nms, config.preprocess)

    def inputs(self) -> list[Input]:
        return [self._outputs.input(self._image_size)]

    def output_names(self, n: int) -> list[str]:
        return self._outputs.names()

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        x = self._outputs.prepare(x)
        x = run_table(self.model, self._sources, x)
        # [B, A, 5 + nc]: NMS ranks each box by objectness x class probability, as YOLOv5's NMS does.
        return self._outputs.finish(x, lambda p: (p[..., :4], p[..., 5:] * p[..., 4:5]))


def _variant(name: str, depth_multiple: float, width_multiple: float, benchmark: bool = False):
    """yolov5{n,s,m,l}.yaml: the shared rows under the yaml's (depth_multiple, width_multiple)."""
    return register_variant(
        name,
        YOLOv5,
        YOLOv5Config(depth_multiple, width_multiple),
        f"yolov5 7.0.14 yolov5.models.yolo.Model('{name}.yaml')",
        yolov5_source(name),
        benchmark,
    )


yolov5n = _variant("yolov5n", 0.33, 0.25)
yolov5s = _variant("yolov5s", 0.33, 0.50, benchmark=True)
yolov5m = _variant("yolov5m", 0.67, 0.75)
yolov5l = _variant("yolov5l", 1.0, 1.0)
