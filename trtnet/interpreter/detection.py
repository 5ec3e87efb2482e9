"""Detection layers: NMS (INMSLayer), as TensorRT's API documentation defines it.

Inputs: boxes [B, N, 4] shared by every class or [B, N, C, 4] per class, scores [B, N, C],
maxOutputBoxesPerClass (int32 scalar), and optionally the IoU threshold (input 3, default 0.0) and the score
threshold (input 4, default 0.0). Per batch item and per class, greedy suppression in decreasing score: a box is
selected when its score exceeds the score threshold and its IoU with every box already selected for that class
is at most the IoU threshold, up to maxOutputBoxesPerClass boxes. Before that, only the `topk_box_limit`
highest-scoring (class, box) pairs above the score threshold of each batch item are considered.

Outputs: SelectedIndices [num, 3] rows of (batch, class, box), batch ascending and then score descending within a
batch item (across classes), and NumOutputBoxes, an int32 scalar. TensorRT leaves the order of equal scores
unspecified; the interpreter breaks ties by class, then box index, so that a run is reproducible.

Boxes are CORNER_PAIRS (any two diagonal corners: each axis is ordered here before the IoU) or CENTER_SIZES
(centre x, y, width, height). The IoU is computed in float32, in the order `torchvision.ops.box_iou` uses; a pair
whose union is empty has IoU 0 (it suppresses nothing).
"""

from __future__ import annotations

import numpy as np

from trtnet.interpreter._common import LayerCall, enum_name, np_dtype, register


def _corners(call: LayerCall, boxes: np.ndarray) -> np.ndarray:
    """[..., 4] boxes as x1 <= x2, y1 <= y2 corners in float32."""
    b = boxes.astype(np.float32)
    fmt = enum_name(call.layer.bounding_box_format)
    if fmt == "CENTER_SIZES":
        half = b[..., 2:4] / np.float32(2.0)
        return np.concatenate([b[..., 0:2] - half, b[..., 0:2] + half], -1)
    if fmt != "CORNER_PAIRS":
        raise call.fail(f"unsupported bounding box format {fmt}")
    lo, hi = np.minimum(b[..., 0:2], b[..., 2:4]), np.maximum(b[..., 0:2], b[..., 2:4])
    return np.concatenate([lo, hi], -1)


def _iou_row(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one [4] corner box with [M, 4] corner boxes, float32."""
    w = np.maximum(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), np.float32(0))
    h = np.maximum(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), np.float32(0))
    inter = w * h
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, np.float32(1)), np.float32(0))


def _threshold(call: LayerCall, index: int, what: str) -> float:
    value = call.optional(index)
    if value is None:
        return 0.0
    if value.size != 1:
        raise call.fail(f"{what} must be a scalar, got shape {value.shape}")
    return float(np.float32(value.reshape(-1)[0]))


@register("NMS", "INMSLayer")
def nms(call: LayerCall) -> list[np.ndarray]:
    """Per-batch, per-class greedy NMS; see the module docstring for the exact rules."""
    boxes, scores, limit = call.input(0), call.input(1), call.input(2)
    if scores.ndim != 3:
        raise call.fail(f"scores must be [batch, boxes, classes], got shape {scores.shape}")
    batch, count, classes = scores.shape
    per_class = boxes.ndim == 4
    want = (batch, count, classes, 4) if per_class else (batch, count, 4)
    if boxes.shape != want:
        raise call.fail(f"boxes of shape {boxes.shape} do not fit scores {scores.shape} (expected {want})")
    if limit.size != 1 or not np.issubdtype(limit.dtype, np.integer):
        raise call.fail(f"maxOutputBoxesPerClass must be an integer scalar, got {limit.dtype} {limit.shape}")
    per_class_max = int(limit.reshape(-1)[0])
    iou_max, score_min = _threshold(call, 3, "the IoU threshold"), _threshold(call, 4, "the score threshold")
    corners = _corners(call, boxes)
    s = scores.astype(np.float32)
    rows: list[tuple[int, int, int]] = []
    for b in range(batch):
        cls, box = np.nonzero(s[b].T > score_min)  # (class, box) pairs in class-then-box order
        # A stable sort by descending score keeps that order among equal scores.
        order = np.argsort(-s[b, box, cls], kind="stable")[: int(call.layer.topk_box_limit)]
        cls, box = cls[order], box[order]
        chosen: list[tuple[float, int, int]] = []
        for c in range(classes):
            mine = box[cls == c]  # already in decreasing score
            table = corners[b, :, c] if per_class else corners[b]
            kept: list[int] = []
            for i in mine:
                if len(kept) >= per_class_max:
                    break
                if not kept or not (_iou_row(table[i], table[kept]) > np.float32(iou_max)).any():
                    kept.append(int(i))
            chosen += [(float(s[b, i, c]), c, i) for i in kept]
        chosen.sort(key=lambda t: (-t[0], t[1], t[2]))
        rows += [(b, c, i) for _, c, i in chosen]
    index_type = np_dtype(call.layer.indices_type)
    selected = np.array(rows, index_type).reshape(-1, 3)
    return [selected, np.array(len(rows), np.int32)]
