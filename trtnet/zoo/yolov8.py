"""YOLOv8 and YOLO11 (ultralytics `nn.tasks.DetectionModel` from `yolov8.yaml` / `yolo11.yaml`), export-mode output.

The yamls' rows are typed tables here; a loop builds `model.0 .. model.N` as `parse_model` does (depth, width and
max-channel multiples per scale, C3k2's `c3k` forced on for the m scale). The Detect head (anchor-free, DFL box
distributions) decodes boxes as the exported model does: `[B, 4 + nc, anchors]`, rows cx, cy, w, h in pixels then
the class probabilities. Optional in the engine: NMS (`nms=NMSOptions()`) and camera-frame pre-processing
(`preprocess=True`), both from `trtnet.zoo.detection`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from trtnet import nn, ops
from trtnet.nn.module import Input
from trtnet.ops.detection import NMSOptions
from trtnet.tensor import Tensor
from trtnet.zoo.detection import DetectorOutputs, checked_image_size, run_table
from trtnet.zoo.registry import register_variant
from trtnet.zoo.sources import ultralytics_source
from trtnet.zoo.yolov5 import Concat, Upsample

From = int | tuple[int, ...]


class Conv(nn.Module):
    """conv (no bias, padding k // 2, `groups`) + BatchNorm (eps 1e-3, as `initialize_weights` sets) + SiLU
    unless `act=False`."""

    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1, g: int = 1, act: bool = True) -> None:
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)
        nn.fold_bn(self.conv, self.bn)
        self._act = act

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn(self.conv(x))
        return ops.silu(y) if self._act else y


def DWConv(cin: int, cout: int, k: int = 1, s: int = 1, act: bool = True) -> Conv:  # noqa: N802 (the source's name)
    """A depthwise Conv: groups gcd(cin, cout)."""
    return Conv(cin, cout, k, s, math.gcd(cin, cout), act)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, shortcut: bool = True, k: tuple[int, int] = (3, 3), e: float = 0.5):
        hidden = int(cout * e)
        self.cv1 = Conv(cin, hidden, k[0])
        self.cv2 = Conv(hidden, cout, k[1])
        self._add = shortcut and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self._add else y


class C2f(nn.Module):
    """CSP with two convs: cv1 splits in two halves, each bottleneck extends the list, all concatenated."""

    def __init__(self, cin: int, cout: int, n: int = 1, shortcut: bool = False, e: float = 0.5) -> None:
        self._c = int(cout * e)
        self.cv1 = Conv(cin, 2 * self._c)
        self.cv2 = Conv((2 + n) * self._c, cout)
        self.m = [Bottleneck(self._c, self._c, shortcut, (3, 3), 1.0) for _ in range(n)]

    def forward(self, x: Tensor) -> Tensor:
        y = ops.chunk(self.cv1(x), 2, 1)
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(ops.concat(y, 1))


class C3k(nn.Module):
    """C3 with k x k bottlenecks: two 1x1 branches, one through `n` bottlenecks, concatenated, fused."""

    def __init__(self, cin: int, cout: int, n: int = 1, shortcut: bool = True, e: float = 0.5, k: int = 3) -> None:
        hidden = int(cout * e)
        self.cv1 = Conv(cin, hidden)
        self.cv2 = Conv(cin, hidden)
        self.cv3 = Conv(2 * hidden, cout)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, (k, k), 1.0) for _ in range(n)))

    def forward(self, x: Tensor) -> Tensor:
        return self.cv3(ops.concat([self.m(self.cv1(x)), self.cv2(x)], 1))


class C3k2(C2f):
    """C2f whose blocks are C3k (`c3k`) or plain bottlenecks."""

    def __init__(self, cin: int, cout: int, n: int = 1, c3k: bool = False, e: float = 0.5) -> None:
        super().__init__(cin, cout, n, True, e)
        c = self._c
        self.m = [C3k(c, c, 2, True) if c3k else Bottleneck(c, c, True) for _ in range(n)]


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions, keys of half the head width, plus a depthwise 3x3
    positional encoding of the values."""

    def __init__(self, dim: int, num_heads: int, attn_ratio: float = 0.5) -> None:
        self._heads, self._head_dim = num_heads, dim // num_heads
        self._key_dim = int(self._head_dim * attn_ratio)
        self.qkv = Conv(dim, dim + 2 * self._key_dim * num_heads, act=False)
        self.proj = Conv(dim, dim, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x: Tensor) -> Tensor:
        _, c, h, w = x.shape
        kd, hd = self._key_dim, self._head_dim
        qkv = self.qkv(x).reshape(-1, self._heads, 2 * kd + hd, h * w)
        q, k, v = ops.split(qkv, [kd, kd, hd], 2)
        # (q * scale)^T k, softmax over keys; then v attn^T, in the source's order of operations.
        attn = ops.softmax(ops.matmul(ops.transpose(q * float(kd**-0.5), -2, -1), k), -1)
        y = ops.matmul(v, ops.transpose(attn, -2, -1)).reshape(-1, c, h, w)
        return self.proj(y + self.pe(v.reshape(-1, c, h, w)))


class PSABlock(nn.Module):
    def __init__(self, c: int, num_heads: int) -> None:
        self.attn = Attention(c, num_heads)
        self.ffn = nn.Sequential(Conv(c, 2 * c), Conv(2 * c, c, act=False))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(x)
        return x + self.ffn(x)


class C2PSA(nn.Module):
    """cv1 splits in two halves; the second goes through `n` attention blocks; concatenated and fused."""

    def __init__(self, cin: int, cout: int, n: int = 1, e: float = 0.5) -> None:
        self._c = int(cin * e)
        self.cv1 = Conv(cin, 2 * self._c)
        self.cv2 = Conv(2 * self._c, cin)
        self.m = nn.Sequential(*(PSABlock(self._c, max(self._c // 64, 1)) for _ in range(n)))

    def forward(self, x: Tensor) -> Tensor:
        a, b = ops.split(self.cv1(x), [self._c, self._c], 1)
        return self.cv2(ops.concat([a, self.m(b)], 1))


class SPPF(nn.Module):
    """cv1, three chained 5x5 stride-1 max pools, all concatenated, cv2. (parse_model gives the yamls' 3-argument
    rows an activated cv1: only YOLO26's SPPF leaves it linear.)"""

    def __init__(self, cin: int, cout: int, k: int = 5) -> None:
        hidden = cin // 2
        self.cv1 = Conv(cin, hidden)
        self.cv2 = Conv(hidden * 4, cout)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: Tensor) -> Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(ops.concat(y, 1))


class DFL(nn.Module):
    """Expected value of each side's 16-bin distribution: softmax over bins, then the checkpoint's 1x1 conv
    (weights 0..15)."""

    def __init__(self, bins: int = 16) -> None:
        self.conv = nn.Conv2d(bins, 1, 1, bias=False)
        self._bins = bins

    def forward(self, x: Tensor) -> Tensor:
        a = x.shape[-1]
        y = ops.softmax(x.reshape(-1, 4, self._bins, a).permute(0, 2, 1, 3), 1)
        return self.conv(y).reshape(-1, 4, a)


class Detect(nn.Module):
    """Per level: a box branch (cv2, 4 x 16 DFL bins) and a class branch (cv3); DFL distances from the anchor
    points (cell centres), decoded to cx, cy, w, h times the stride; sigmoid class probabilities."""

    def __init__(self, num_classes: int, channels: tuple[int, ...], strides: tuple[int, ...], legacy: bool) -> None:
        self._nc, self._strides, reg_max = num_classes, strides, 16
        c2, c3 = max(16, channels[0] // 4, reg_max * 4), max(channels[0], min(num_classes, 100))
        self.cv2 = [nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1)) for x in channels]
        if legacy:  # YOLOv8: plain 3x3 convs
            self.cv3 = [nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, num_classes, 1)) for x in channels]
        else:  # YOLO11: depthwise 3x3 then pointwise
            self.cv3 = [
                nn.Sequential(
                    nn.Sequential(DWConv(x, x, 3), Conv(x, c3, 1)),
                    nn.Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)),
                    nn.Conv2d(c3, num_classes, 1),
                )
                for x in channels
            ]
        self.dfl = DFL(reg_max)

    def forward(self, xs: list[Tensor]) -> Tensor:
        boxes = ops.concat([self._flat(box(x)) for box, x in zip(self.cv2, xs)], -1)
        scores = ops.concat([self._flat(cls(x)) for cls, x in zip(self.cv3, xs)], -1)
        anchors, strides = _anchors([(x.shape[2], x.shape[3]) for x in xs], self._strides)
        lt, rb = ops.chunk(self.dfl(boxes), 2, 1)
        points = ops.constant(anchors, op="anchor_points")
        x1y1, x2y2 = points - lt, points + rb
        xywh = ops.concat([(x1y1 + x2y2) / 2.0, x2y2 - x1y1], 1)
        return ops.concat([xywh * ops.constant(strides, op="strides"), ops.sigmoid(scores)], 1)

    @staticmethod
    def _flat(x: Tensor) -> Tensor:
        return x.reshape(-1, x.shape[1], x.shape[2] * x.shape[3])


def _anchors(sizes: list[tuple[int, int]], strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """`make_anchors`: cell centres (x, y) in grid units as [1, 2, A], and each anchor's stride as [1, 1, A]."""
    points, per_anchor = [], []
    for (h, w), stride in zip(sizes, strides):
        sy, sx = np.meshgrid(np.arange(h, dtype=np.float32) + 0.5, np.arange(w, dtype=np.float32) + 0.5, indexing="ij")
        points.append(np.stack((sx, sy), -1).reshape(-1, 2))
        per_anchor.append(np.full(h * w, stride, np.float32))
    return np.concatenate(points).T[None].copy(), np.concatenate(per_anchor)[None, None]


class Row(NamedTuple):
    """One yaml row: inputs (-1 = previous layer), repeats (before the depth multiple), block, args (output
    channels before the width multiple first, where the block has them)."""

    src: From
    n: int
    block: type
    args: tuple = ()


# yolov8.yaml: backbone then head, numbered as the state_dict keys `model.i`; Detect reads 15, 18, 21.
V8_ROWS = (
    Row(-1, 1, Conv, (64, 3, 2)),  # 0  P1/2
    Row(-1, 1, Conv, (128, 3, 2)),  # 1  P2/4
    Row(-1, 3, C2f, (128, True)),
    Row(-1, 1, Conv, (256, 3, 2)),  # 3  P3/8
    Row(-1, 6, C2f, (256, True)),
    Row(-1, 1, Conv, (512, 3, 2)),  # 5  P4/16
    Row(-1, 6, C2f, (512, True)),
    Row(-1, 1, Conv, (1024, 3, 2)),  # 7  P5/32
    Row(-1, 3, C2f, (1024, True)),
    Row(-1, 1, SPPF, (1024, 5)),  # 9
    Row(-1, 1, Upsample),
    Row((-1, 6), 1, Concat),  # cat backbone P4
    Row(-1, 3, C2f, (512,)),  # 12
    Row(-1, 1, Upsample),
    Row((-1, 4), 1, Concat),  # cat backbone P3
    Row(-1, 3, C2f, (256,)),  # 15 (P3/8, small)
    Row(-1, 1, Conv, (256, 3, 2)),
    Row((-1, 12), 1, Concat),  # cat head P4
    Row(-1, 3, C2f, (512,)),  # 18 (P4/16, medium)
    Row(-1, 1, Conv, (512, 3, 2)),
    Row((-1, 9), 1, Concat),  # cat head P5
    Row(-1, 3, C2f, (1024,)),  # 21 (P5/32, large)
)

# yolo11.yaml; Detect reads 16, 19, 22.
V11_ROWS = (
    Row(-1, 1, Conv, (64, 3, 2)),  # 0  P1/2
    Row(-1, 1, Conv, (128, 3, 2)),  # 1  P2/4
    Row(-1, 2, C3k2, (256, False, 0.25)),
    Row(-1, 1, Conv, (256, 3, 2)),  # 3  P3/8
    Row(-1, 2, C3k2, (512, False, 0.25)),
    Row(-1, 1, Conv, (512, 3, 2)),  # 5  P4/16
    Row(-1, 2, C3k2, (512, True)),
    Row(-1, 1, Conv, (1024, 3, 2)),  # 7  P5/32
    Row(-1, 2, C3k2, (1024, True)),
    Row(-1, 1, SPPF, (1024, 5)),  # 9
    Row(-1, 2, C2PSA, (1024,)),  # 10
    Row(-1, 1, Upsample),
    Row((-1, 6), 1, Concat),  # cat backbone P4
    Row(-1, 2, C3k2, (512, False)),  # 13
    Row(-1, 1, Upsample),
    Row((-1, 4), 1, Concat),  # cat backbone P3
    Row(-1, 2, C3k2, (256, False)),  # 16 (P3/8, small)
    Row(-1, 1, Conv, (256, 3, 2)),
    Row((-1, 13), 1, Concat),  # cat head P4
    Row(-1, 2, C3k2, (512, False)),  # 19 (P4/16, medium)
    Row(-1, 1, Conv, (512, 3, 2)),
    Row((-1, 10), 1, Concat),  # cat head P5
    Row(-1, 2, C3k2, (1024, True)),  # 22 (P5/32, large)
)
REPEATED = (C2f, C3k2, C2PSA)  # blocks that take the repeat count as an argument, as parse_model's repeat_modules
STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class YOLOConfig:
    depth_multiple: float
    width_multiple: float
    max_channels: int
    rows: tuple[Row, ...] = V8_ROWS
    detect_from: tuple[int, ...] = (15, 18, 21)
    force_c3k: bool = False  # parse_model sets C3k2's c3k for the m, l and x scales
    num_classes: int = 80
    image_size: int = 640
    nms: NMSOptions | None = None  # in-engine NMS: fixed-size num_dets, boxes, scores, classes outputs
    preprocess: bool = False  # input uint8 NHWC BGR frames; the engine converts to float RGB NCHW / 255


class YOLO(nn.Module):
    """`DetectionModel`: the rows, then Detect over `detect_from`."""

    def __init__(self, config: YOLOConfig) -> None:
        checked_image_size(config.image_size, STRIDES[-1], "YOLO")
        self._config = config
        gd, gw = config.depth_multiple, config.width_multiple
        layers: list[nn.Module] = []
        channels: list[int] = []  # output channels of each layer, as parse_model's `ch`
        self._sources: list[From] = []
        for row in config.rows:
            cin = channels[row.src] if isinstance(row.src, int) and channels else 3
            n = max(round(row.n * gd), 1) if row.n > 1 else row.n
            if row.block in (Conv, SPPF, *REPEATED):
                cout = math.ceil(min(row.args[0], config.max_channels) * gw / 8) * 8
                extra = list(row.args[1:])
                if row.block is C3k2 and config.force_c3k:
                    extra[0:1] = [True]
                layer = row.block(cin, cout, n, *extra) if row.block in REPEATED else row.block(cin, cout, *extra)
            elif row.block is Concat:
                cout, layer = sum(channels[s] for s in row.src), Concat()
            else:
                cout, layer = cin, row.block()
            layers.append(layer)
            channels.append(cout)
            self._sources.append(row.src)
        legacy = C3k2 not in {row.block for row in config.rows}
        widths = tuple(channels[i] for i in config.detect_from)
        layers.append(Detect(config.num_classes, widths, STRIDES, legacy))
        self._sources.append(config.detect_from)
        self.model = layers
        self._outputs = DetectorOutputs(config.nms, config.preprocess)

    def inputs(self) -> list[Input]:
        return [self._outputs.input(self._config.image_size)]

    def output_names(self, n: int) -> list[str]:
        return self._outputs.names()

    def output_parts(self) -> dict[str, tuple[tuple[str, int, slice], ...]]:
        """The parts of an output that parity checks compare each on its own scale (name -> (label, axis, slice)):
        the predictions' 4 box rows are pixels near 640, mostly each anchor's place, and its class scores are in
        [0, 1]. Judged as one tensor, a score's error hid under the boxes' scale."""
        if self._config.nms is not None:
            return {}
        return {"predictions": (("boxes", 1, slice(0, 4)), ("scores", 1, slice(4, None)))}

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        x = self._outputs.prepare(x)
        x = run_table(self.model, self._sources, x)
        # [B, 4 + nc, A] -> NMS takes [B, A, 4] cx, cy, w, h boxes and [B, A, nc] scores.
        return self._outputs.finish(x, lambda p: (p[:, :4, :].permute(0, 2, 1), p[:, 4:, :].permute(0, 2, 1)))


def _variant(name: str, scale: tuple[float, float, int], v11: bool) -> object:
    rows, detect_from = (V11_ROWS, (16, 19, 22)) if v11 else (V8_ROWS, (15, 18, 21))
    force_c3k = v11 and name[-1] in "mlx"
    config = YOLOConfig(*scale, rows=rows, detect_from=detect_from, force_c3k=force_c3k)
    source = f"ultralytics 8.4 ultralytics.nn.tasks.DetectionModel('{name}.yaml')"
    return register_variant(name, YOLO, config, source, ultralytics_source(name))


# The yamls' scales: (depth, width, max_channels).
yolov8n = _variant("yolov8n", (0.33, 0.25, 1024), v11=False)
yolov8s = _variant("yolov8s", (0.33, 0.50, 1024), v11=False)
yolov8m = _variant("yolov8m", (0.67, 0.75, 768), v11=False)
yolo11n = _variant("yolo11n", (0.50, 0.25, 1024), v11=True)
yolo11s = _variant("yolo11s", (0.50, 0.50, 1024), v11=True)
yolo11m = _variant("yolo11m", (0.50, 1.00, 512), v11=True)
