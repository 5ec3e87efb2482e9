"""Detection post-processing ops: exact greedy NMS built from layers every TensorRT builds (TopK, gather,
elementwise, select), and the layers it needs that the other families lack (top-k, select, logical not).

TensorRT for RTX accepts `add_nms` but has no runner for it, so `nms` spells greedy suppression out: the
`candidates` best boxes (TopK), their pairwise IoU matrix once, then `max_det` unrolled steps that each pick the
best box still alive (TopK of a rank key) and kill every alive box that overlaps it (a gathered matrix row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trtnet.backend import get_backend, get_trt
from trtnet.errors import ConfigError
from trtnet.graph import current_graph
from trtnet.ops.core import axes_mask, out, shared_constant
from trtnet.ops.elementwise import elementwise, equal, greater, maximum, minimum
from trtnet.ops.shape import cast, concat, gather, pad, permute, reshape
from trtnet.ops.unary import unary
from trtnet.tensor import Tensor

NMS_LAYERS = ("auto", "layers", "trt")


@dataclass(frozen=True)
class NMSOptions:
    """In-engine NMS. A box is kept when its best class score exceeds `score` and no kept box of higher score
    (of the same class, unless `class_agnostic`) overlaps it with IoU > `iou`; at most `max_det` per image,
    chosen among the `candidates` highest-scoring boxes.

    `layer` picks the implementation: "layers" (greedy suppression spelled out in layers every TensorRT builds),
    "trt" (TensorRT's own NMS layer, which only data-centre TensorRT builds) or "auto" (the NMS layer where the
    backend builds it). Both give the same four outputs.

    >>> NMSOptions(iou=0.5, max_det=50)
    NMSOptions(iou=0.5, score=0.25, max_det=50, class_agnostic=False, candidates=1000, layer='auto')
    """

    iou: float = 0.45
    score: float = 0.25
    max_det: int = 100
    class_agnostic: bool = False
    candidates: int = 1000
    layer: str = "auto"

    def __post_init__(self) -> None:
        for field, value, lo, hi in (("iou", self.iou, 0.0, 1.0), ("score", self.score, 0.0, 1.0)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
                raise ConfigError(f"NMSOptions: {field} must be a number from {lo} to {hi}, got {value!r}")
        # TensorRT's TopK takes k up to 3840.
        for field, value, hi in (("max_det", self.max_det, 3840), ("candidates", self.candidates, 3840)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= hi:
                raise ConfigError(f"NMSOptions: {field} must be an integer from 1 to {hi}, got {value!r}")
        if self.layer not in NMS_LAYERS:
            raise ConfigError(f"NMSOptions: layer must be one of {', '.join(NMS_LAYERS)}, got {self.layer!r}")

    def uses_nms_layer(self) -> bool:
        """Whether `nms` emits TensorRT's NMS layer: asked for, or "auto" on a backend that builds it."""
        return self.layer == "trt" or (self.layer == "auto" and get_backend().builds_layer("NMS"))


def topk(x: Tensor, k: int, axis: int, largest: bool = True) -> tuple[Tensor, Tensor]:
    """The `k` largest (or smallest) values along `axis` and their int32 indices, as `torch.topk`."""
    trt = get_trt()
    op = trt.TopKOperation.MAX if largest else trt.TopKOperation.MIN
    layer = current_graph().network.add_topk(x.itensor, op, k, axes_mask(axis, x.ndim))
    return out(layer, "topk", 0), out(layer, "topk", 1)


def where(condition: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """`torch.where(condition, a, b)`, operands of one rank (broadcast over size-1 dims)."""
    return out(current_graph().network.add_select(condition.itensor, a.itensor, b.itensor), "select")


def logical_not(x: Tensor) -> Tensor:
    return out(current_graph().network.add_unary(x.itensor, get_trt().UnaryOperation.NOT), "not")


def batched_gather(table: Tensor, indices: Tensor) -> Tensor:
    """Per image b: `table[b, indices[b]]` along axis 1 (table [B, N, ...], indices [B, k] -> [B, k, ...])."""
    layer = current_graph().network.add_gather(table.itensor, indices.itensor, 1)
    layer.num_elementwise_dims = 1
    return out(layer, "gather")


def frames_to_images(frames: Tensor) -> Tensor:
    """uint8 [B, H, W, 3] BGR frames (as OpenCV reads them) -> [B, 3, H, W] RGB in [0, 1], in the network's float
    type: ultralytics' `preprocess` (channels reversed, HWC to CHW, divided by 255)."""
    x = cast(frames, current_graph().float_dtype)
    rgb = gather(x, shared_constant(np.array([2, 1, 0], np.int32), "int32", op="bgr_to_rgb"), 3)
    return permute(rgb, (0, 3, 1, 2)) / 255.0


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """[..., 4] centre-size boxes to corners, as ultralytics' `xywh2xyxy` (half-sizes subtracted and added), of
    the sizes' magnitudes: a negative width made reversed corners, which TensorRT's NMS layer takes as the box
    they span and the layers-only NMS did not."""
    c, wh = boxes[..., 0:2], boxes[..., 2:4]
    half = unary(wh, "ABS") / 2.0
    return concat([c - half, c + half], -1)


def _spanned(boxes: Tensor) -> Tensor:
    """[..., 4] boxes given by any two opposite corners, as TensorRT's NMS layer takes them, as (x1, y1, x2, y2)
    with x1 <= x2 and y1 <= y2: the layers-only NMS took (10, 10, 0, 0) as an empty box, the NMS layer as the
    box from (0, 0) to (10, 10), and the two kept different boxes."""
    a, b = boxes[..., 0:2], boxes[..., 2:4]
    return concat([minimum(a, b), maximum(a, b)], -1)


def pairwise_iou(boxes: Tensor) -> Tensor:
    """IoU of every pair of [B, K, 4] corner boxes: [B, K, K], computed as `torchvision.ops.box_iou` does."""
    x1, y1, x2, y2 = (boxes[..., i : i + 1] for i in range(4))  # [B, K, 1] each
    t = lambda v: permute(v, (0, 2, 1))  # noqa: E731  [B, 1, K]
    w = maximum(minimum(x2, t(x2)) - maximum(x1, t(x1)), 0.0)
    h = maximum(minimum(y2, t(y2)) - maximum(y1, t(y1)), 0.0)
    inter = w * h
    area = (x2 - x1) * (y2 - y1)
    return inter / (area + t(area) - inter)


def nms(boxes: Tensor, scores: Tensor, options: NMSOptions, centre_size: bool = True) -> tuple[Tensor, ...]:
    """Greedy NMS of [B, A, 4] boxes (cx, cy, w, h when `centre_size`, else two opposite corners) with [B, A, C] class
    scores: each box's best class competes. Returns `num_dets` [B, 1] int32, `boxes` [B, max_det, 4] (x1, y1,
    x2, y2), `scores` [B, max_det] and `classes` [B, max_det] int32, best first, zero-padded past num_dets."""
    best, label = topk(scores, 1, 2)  # each box's best class (ties: TopK's choice)
    best, label = reshape(best, (-1, best.shape[1])), reshape(label, (-1, label.shape[1]))
    best = cast(best, "float32")
    k = min(options.candidates, best.shape[1])
    cand_scores, order = topk(best, k, 1)
    corners = cxcywh_to_xyxy(boxes) if centre_size else _spanned(boxes)
    cand_boxes = batched_gather(cast(corners, "float32"), order)
    cand_labels = batched_gather(label, order)
    if options.uses_nms_layer():
        kept = _nms_layer_kept(cand_boxes, cand_scores, cand_labels, scores.shape[2], options)
        pick, keep = _first_kept(kept, options.max_det)
    else:
        alive = greater(cand_scores, float(options.score))
        pick, keep = _greedy(cand_boxes, cand_labels, alive, options)
    found = reshape(cast(keep, "float32").sum(1), (-1, 1))
    out_boxes = where(reshape(keep, (-1, options.max_det, 1)), batched_gather(cand_boxes, pick), _zeros(3, "float32"))
    out_scores = where(keep, batched_gather(cand_scores, pick), _zeros(2, "float32"))
    out_labels = where(keep, batched_gather(cand_labels, pick), _zeros(2, "int32"))
    return cast(found, "int32"), out_boxes, out_scores, out_labels


def _greedy(cand_boxes: Tensor, cand_labels: Tensor, alive: Tensor, options: NMSOptions) -> tuple[Tensor, Tensor]:
    """`max_det` unrolled greedy steps over the [B, k] score-sorted candidates: the picked ranks and whether each
    pick is a detection, [B, max_det] each."""
    k = cand_labels.shape[1]
    overlap = greater(pairwise_iou(cand_boxes), float(options.iou))
    if not options.class_agnostic:
        column = reshape(cand_labels, (-1, k, 1))
        overlap = elementwise(overlap, equal(column, permute(column, (0, 2, 1))), "AND")
    # Every box suppresses itself, so that a picked box leaves the alive set.
    overlap = elementwise(overlap, _const(np.eye(k, dtype=bool)[None]), "OR")
    # The scores are sorted, so the best alive box is the alive one of lowest rank: the max of rank keys K..1.
    rank, zero = _const(np.arange(k, 0, -1, dtype=np.float32)[None]), _const(np.zeros((1, 1), np.float32))
    picks, valid = [], []
    for step in range(options.max_det):
        with current_graph().scope(f"nms.step{step}"):
            key, pick = topk(where(alive, rank, zero), 1, 1)
            row = reshape(batched_gather(overlap, pick), (-1, k))
            alive = elementwise(alive, logical_not(row), "AND")
            picks.append(pick)
            valid.append(greater(key, 0.5))
    return concat(picks, 1), concat(valid, 1)


def _nms_layer_kept(
    cand_boxes: Tensor, cand_scores: Tensor, cand_labels: Tensor, classes: int, options: NMSOptions
) -> Tensor:
    """Which of the [B, k] candidates TensorRT's NMS layer keeps, as a [B, k] bool mask.

    Each candidate competes in its best class only (its other class scores are zeroed, and the layer selects only
    scores above the threshold, which is at least 0), so a (batch, box) pair is selected at most once; the layer's
    [num, 3] (batch, class, box) rows are scattered into the mask. Class-agnostic NMS is one class of best scores.
    """
    k = cand_labels.shape[1]
    column = reshape(cand_scores, (-1, k, 1))
    if options.class_agnostic:
        class_scores = column
    else:
        ids = _const_int(np.arange(classes, dtype=np.int32)[None, None])
        class_scores = where(equal(reshape(cand_labels, (-1, k, 1)), ids), column, _zeros(3, "float32"))
    limit = shared_constant(np.array(options.max_det, np.int32), "int32", op="nms_limit")
    layer = current_graph().network.add_nms(cand_boxes.itensor, class_scores.itensor, _scalar(limit).itensor)
    layer.bounding_box_format = get_trt().BoundingBoxFormat.CORNER_PAIRS
    layer.topk_box_limit = k  # at most k pairs pass the threshold: none is dropped before suppression
    layer.set_input(3, _scalar(_const(np.array([options.iou], np.float32))).itensor)
    layer.set_input(4, _scalar(_const(np.array([options.score], np.float32))).itensor)
    selected = out(layer, "nms", 0)
    where_kept = gather(selected, _const_int(np.array([0, 2], np.int32)), 1)  # [num, 2]: (batch, box)
    ones = reshape(cast(gather(selected, _const_int(np.array([0], np.int32)), 1), "float32"), (-1,)) * 0.0 + 1.0
    mask = scatter_nd(cand_scores * 0.0, where_kept, ones)
    return greater(mask, 0.5)


def _first_kept(kept: Tensor, max_det: int) -> tuple[Tensor, Tensor]:
    """The ranks of the first `max_det` kept candidates (best score first: the candidates are sorted) and whether
    each is one, [B, max_det] each; past the kept ones, rank 0 and False."""
    k = kept.shape[1]
    rank, zero = _const(np.arange(k, 0, -1, dtype=np.float32)[None]), _const(np.zeros((1, 1), np.float32))
    keys = where(kept, rank, zero)
    if max_det > k:  # fewer candidates than detections asked for: zero keys pad the rest
        keys = pad(keys, (0, max_det - k))
    key, pick = topk(keys, max_det, 1)
    valid = greater(key, 0.5)
    return where(valid, pick, _zeros(2, "int32")), valid


def scatter_nd(data: Tensor, indices: Tensor, updates: Tensor) -> Tensor:
    """A copy of `data` with `updates[i]` written at the index tuple `indices[i]` (ONNX ScatterND)."""
    layer = current_graph().network.add_scatter(
        data.itensor, indices.itensor, updates.itensor, get_trt().ScatterMode.ND
    )
    return out(layer, "scatter")


def _scalar(x: Tensor) -> Tensor:
    """A one-element tensor as a 0-D one (the NMS layer's scalar inputs)."""
    return reshape(x, ())


def _const_int(arr: np.ndarray) -> Tensor:
    return shared_constant(arr, "int32", op="nms_constant")


def _const(arr: np.ndarray) -> Tensor:
    return shared_constant(arr, "bool" if arr.dtype == np.bool_ else "float32", op="nms_constant")


def _zeros(ndim: int, dtype: str) -> Tensor:
    return shared_constant(np.zeros((1,) * ndim, np.float32 if dtype == "float32" else np.int32), dtype, op="zero")
