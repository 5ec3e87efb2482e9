"""TensorRT's NMS layer (INMSLayer) in the interpreter, on hand-built networks.

Oracle: `torchvision.ops.batched_nms` over the (box, class) pairs above the score threshold (per-class greedy NMS,
IoU > threshold suppresses, result in decreasing score), which is what TensorRT's documentation defines per batch
item; the box formats, the per-class limit and the top-k limit are checked against that oracle on transformed
inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from trtnet.backend import get_trt, logger
from trtnet.interpreter import run_network

trt = get_trt()
torch = pytest.importorskip("torch", reason="the oracle is torchvision's batched_nms")
tv_ops = pytest.importorskip("torchvision.ops", reason="the oracle is torchvision's batched_nms")


def _run_nms(boxes, scores, limit, iou=None, score=None, fmt="CORNER_PAIRS", topk=None, index_type=None):
    builder = trt.Builder(logger())
    net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    b = net.add_input("boxes", trt.float32, boxes.shape)
    s = net.add_input("scores", trt.float32, scores.shape)
    m = net.add_constant((), np.array(limit, np.int32)).get_output(0)
    layer = net.add_nms(b, s, m) if index_type is None else net.add_nms(b, s, m, index_type)
    layer.bounding_box_format = getattr(trt.BoundingBoxFormat, fmt)
    if topk is not None:
        layer.topk_box_limit = topk
    for index, value in ((3, iou), (4, score)):
        if value is not None:
            layer.set_input(index, net.add_constant((), np.array(value, np.float32)).get_output(0))
    net.mark_output(layer.get_output(0))
    net.mark_output(layer.get_output(1))
    selected, num = run_network(net, {"boxes": boxes, "scores": scores}).values()
    assert selected.shape == (int(num), 3)
    return selected


def _oracle(boxes, scores, iou, score, limit=None, topk=None):
    """Rows (batch, class, box) from torchvision: per batch item, batched_nms over the pairs above `score`."""
    rows = []
    for b in range(scores.shape[0]):
        box, cls = np.nonzero(scores[b] > score)
        order = np.argsort(-scores[b, box, cls], kind="stable")[:topk]
        box, cls = box[order], cls[order]
        pair_boxes = boxes[b, box, cls] if boxes.ndim == 4 else boxes[b, box]
        keep = tv_ops.batched_nms(
            torch.from_numpy(pair_boxes), torch.from_numpy(scores[b, box, cls]), torch.from_numpy(cls), iou
        ).numpy()
        if limit is not None:  # the first `limit` of each class, in the same decreasing-score order
            taken = np.zeros(scores.shape[2], int)
            kept = []
            for k in keep:
                if taken[cls[k]] < limit:
                    taken[cls[k]] += 1
                    kept.append(k)
            keep = kept
        rows += [(b, int(cls[k]), int(box[k])) for k in keep]
    return np.array(rows, np.int32).reshape(-1, 3)


def _crowd(rng, batch, count, classes, per_class=False):
    """Boxes in a small field, so that many overlap; corners ordered (x1 < x2, y1 < y2)."""
    shape = (batch, count, classes) if per_class else (batch, count)
    xy = rng.uniform(0, 60, shape + (2,)).astype(np.float32)
    wh = rng.uniform(5, 30, shape + (2,)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], -1)
    return boxes, rng.uniform(0, 1, (batch, count, classes)).astype(np.float32)


@pytest.mark.parametrize("per_class", [False, True], ids=["shared-boxes", "per-class-boxes"])
@pytest.mark.parametrize(("iou", "score"), [(0.5, 0.2), (0.3, 0.6), (0.7, 0.0)])
def test_nms_equals_batched_nms(per_class, iou, score) -> None:
    boxes, scores = _crowd(np.random.default_rng(7), 2, 80, 3, per_class)
    got = _run_nms(boxes, scores, 1000, iou, score)
    want = _oracle(boxes, scores, iou, score)
    assert len(want) > 10  # the case suppresses something and keeps something
    assert len(want) < (scores > score).sum()
    np.testing.assert_array_equal(got, want)


def test_defaults_iou_zero_score_zero() -> None:
    # Without inputs 3 and 4 both thresholds are 0: any overlap suppresses, any positive score is a candidate.
    boxes, scores = _crowd(np.random.default_rng(3), 1, 40, 2)
    scores[0, :5] = 0.0
    np.testing.assert_array_equal(_run_nms(boxes, scores, 100), _oracle(boxes, scores, 0.0, 0.0))


def test_centre_sizes_and_swapped_corners() -> None:
    boxes, scores = _crowd(np.random.default_rng(5), 2, 50, 2)
    want = _run_nms(boxes, scores, 100, 0.4, 0.3)
    centre = np.concatenate([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], -1)
    np.testing.assert_array_equal(_run_nms(centre, scores, 100, 0.4, 0.3, fmt="CENTER_SIZES"), want)
    # CORNER_PAIRS takes any two diagonal corners: (x1, y2, x2, y1) is the same box.
    swapped = boxes[..., [0, 3, 2, 1]].copy()
    np.testing.assert_array_equal(_run_nms(swapped, scores, 100, 0.4, 0.3), want)


def test_per_class_limit_and_topk_limit() -> None:
    boxes, scores = _crowd(np.random.default_rng(11), 2, 80, 3)
    got = _run_nms(boxes, scores, 2, 0.5, 0.1)
    np.testing.assert_array_equal(got, _oracle(boxes, scores, 0.5, 0.1, limit=2))
    assert np.bincount(got[got[:, 0] == 0, 1]).max() == 2
    got = _run_nms(boxes, scores, 100, 0.5, 0.1, topk=15)
    np.testing.assert_array_equal(got, _oracle(boxes, scores, 0.5, 0.1, topk=15))
    assert len(got) < len(_oracle(boxes, scores, 0.5, 0.1))


def test_int64_indices() -> None:
    boxes, scores = _crowd(np.random.default_rng(2), 1, 20, 2)
    got = _run_nms(boxes, scores, 100, 0.5, 0.3, index_type=trt.int64)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, _oracle(boxes, scores, 0.5, 0.3))
