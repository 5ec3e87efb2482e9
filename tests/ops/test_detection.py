"""In-engine NMS (`trtnet.ops.detection.nms`): hand-built cases whose answer is worked out by hand, agreement with
`torchvision.ops.batched_nms` on boxes with many overlaps, and a TensorRT for RTX build of the whole network.

Both implementations run every case: greedy suppression spelled out in layers (`layer="layers"`) and TensorRT's own
NMS layer (`layer="trt"`, which TensorRT for RTX constructs but cannot build; the interpreter runs it)."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
from trtnet import nn
from trtnet.backend import get_backend
from trtnet.errors import BuildError, ConfigError
from trtnet.nn.module import Input
from trtnet.ops.detection import NMSOptions, nms


class NMSNet(nn.Module):
    """[B, A, 4] boxes (corners unless `centre_size`) and [B, A, C] scores -> NMS outputs."""

    def __init__(self, options: NMSOptions, anchors: int, classes: int, centre_size: bool = False) -> None:
        self._options, self._a, self._c, self._centre = options, anchors, classes, centre_size

    def inputs(self) -> list[Input]:
        return [Input("pred_boxes", (self._a, 4)), Input("pred_scores", (self._a, self._c))]

    def output_names(self, n: int) -> list[str]:
        return ["num_dets", "boxes", "scores", "classes"]

    def forward(self, boxes, scores):
        return nms(boxes, scores, self._options, centre_size=self._centre)


IMPLEMENTATIONS = pytest.mark.parametrize("layer", ["layers", "trt"])


def run(boxes, scores, **options):
    boxes, scores = np.asarray(boxes, np.float32)[None], np.asarray(scores, np.float32)[None]
    net = NMSNet(NMSOptions(**options), boxes.shape[1], scores.shape[2])
    num, out_boxes, out_scores, out_classes = trtnet.reference(net, boxes, scores)
    return int(num[0, 0]), out_boxes[0], out_scores[0], out_classes[0]


# Three boxes in a row: A overlaps B (IoU 0.6), B overlaps C (0.6), A and C barely (0.25).
ROW = [[0, 0, 10, 10], [2.5, 0, 12.5, 10], [5, 0, 15, 10]]


@IMPLEMENTATIONS
def test_greedy_keeps_a_box_whose_suppressor_was_suppressed(layer):
    """Greedy order matters: B is removed by A, so C (overlapping only B) survives."""
    num, boxes, scores, classes = run(ROW, [[0.9], [0.8], [0.7]], iou=0.45, max_det=5, layer=layer)
    assert num == 2
    np.testing.assert_array_equal(boxes[:2], np.float32([ROW[0], ROW[2]]))
    np.testing.assert_array_equal(scores, np.float32([0.9, 0.7, 0, 0, 0]))
    assert (boxes[2:] == 0).all() and (classes == 0).all()


@IMPLEMENTATIONS
def test_classes_suppress_only_their_own_unless_agnostic(layer):
    scores = [[0.9, 0.1], [0.1, 0.8]]  # two heavily overlapping boxes of different classes
    num, _, got, classes = run(ROW[:2], scores, iou=0.45, max_det=3, layer=layer)
    assert num == 2 and classes[:2].tolist() == [0, 1] and got[:2].tolist() == pytest.approx([0.9, 0.8])
    num, _, got, classes = run(ROW[:2], scores, iou=0.45, max_det=3, class_agnostic=True, layer=layer)
    assert num == 1 and classes[0] == 0 and got[0] == np.float32(0.9)


@IMPLEMENTATIONS
def test_score_threshold_and_iou_threshold(layer):
    # Below the score threshold nothing is kept; with IoU threshold 0.7 all three rows survive.
    assert run(ROW, [[0.2], [0.25], [0.1]], score=0.25, layer=layer)[0] == 0
    num, _, scores, _ = run(ROW, [[0.9], [0.8], [0.7]], iou=0.7, max_det=4, layer=layer)
    assert num == 3 and scores.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.0])


@IMPLEMENTATIONS
def test_max_det_keeps_the_best_in_score_order(layer):
    boxes = [[20 * i, 0, 20 * i + 10, 10] for i in range(8)]  # disjoint
    scores = np.random.default_rng(0).permutation(np.linspace(0.3, 0.95, 8, dtype=np.float32))[:, None]
    num, got_boxes, got, _ = run(boxes, scores, max_det=5, layer=layer)
    order = np.argsort(-scores[:, 0])[:5]
    assert num == 5
    np.testing.assert_array_equal(got, scores[order, 0])
    np.testing.assert_array_equal(got_boxes, np.float32(boxes)[order])


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(iou=1.5), "NMSOptions: iou must be a number from 0.0 to 1.0, got 1.5"),
        (dict(max_det=0), "NMSOptions: max_det must be an integer from 1 to 3840, got 0"),
        (dict(candidates=5000), "NMSOptions: candidates must be an integer from 1 to 3840, got 5000"),
        (dict(layer="plugin"), "NMSOptions: layer must be one of auto, layers, trt, got 'plugin'"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        NMSOptions(**options)


def torchvision_nms(boxes_xywh, scores, iou, score, max_det, agnostic):
    """The reference: each box's best class, score threshold, `torchvision.ops.batched_nms`, first `max_det`."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    b = torch.from_numpy(boxes_xywh)
    corners = torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)
    best, label = torch.from_numpy(scores).max(1)
    m = best > score
    keep = torchvision.ops.batched_nms(corners[m], best[m], label[m] * (0 if agnostic else 1), iou)[:max_det]
    return corners[m][keep].numpy(), best[m][keep].numpy(), label[m][keep].numpy()


@IMPLEMENTATIONS
@pytest.mark.parametrize("agnostic", [False, True])
@pytest.mark.parametrize("iou, max_det", [(0.45, 100), (0.7, 40), (0.2, 300)])
def test_matches_torchvision_batched_nms(agnostic, iou, max_det, layer):
    rng = np.random.default_rng(int(iou * 10) + agnostic)
    a, c = 300, 4
    # Boxes crowded onto a 100 px square: most overlap several others.
    boxes = np.concatenate([rng.uniform(0, 100, (2, a, 2)), rng.uniform(5, 40, (2, a, 2))], -1).astype(np.float32)
    scores = rng.uniform(0, 1, (2, a, c)).astype(np.float32)
    options = NMSOptions(iou=iou, score=0.25, max_det=max_det, class_agnostic=agnostic, candidates=a, layer=layer)
    num, got_boxes, got_scores, got_classes = trtnet.reference(NMSNet(options, a, c, centre_size=True), boxes, scores)
    for i in range(2):
        want_boxes, want_scores, want_classes = torchvision_nms(boxes[i], scores[i], iou, 0.25, max_det, agnostic)
        n = len(want_boxes)
        assert 1 < n and num[i, 0] == n
        np.testing.assert_array_equal(got_boxes[i, :n], want_boxes)
        np.testing.assert_array_equal(got_scores[i, :n], want_scores)
        np.testing.assert_array_equal(got_classes[i, :n], want_classes)
        assert not got_boxes[i, n:].any() and not got_scores[i, n:].any() and not got_classes[i, n:].any()


def test_nms_network_builds_with_tensorrt(tmp_path):
    """TensorRT for RTX has no runner for its own NMS layer; this network uses only layers it builds."""
    net = NMSNet(NMSOptions(max_det=100), 2100, 80, centre_size=True)
    engine = trtnet.build(net, batch_size=2, cache=False)
    assert [(s.name, tuple(s.shape)) for s in engine.outputs] == [
        ("num_dets", (2, 1)),
        ("boxes", (2, 100, 4)),
        ("scores", (2, 100)),
        ("classes", (2, 100)),
    ]
    assert len(engine.plan) > 0 and engine.num_layers >= 100 * 4


def _crowd(seed, batch, anchors, classes):
    rng = np.random.default_rng(seed)
    xy, wh = rng.uniform(0, 100, (batch, anchors, 2)), rng.uniform(5, 40, (batch, anchors, 2))
    return np.concatenate([xy, wh], -1).astype(np.float32), rng.uniform(0, 1, (batch, anchors, classes)).astype(
        np.float32
    )


def _layer_types(model, batch_size=2) -> set[str]:
    net = trtnet.emit(model, batch_size=batch_size)
    return {net.network.get_layer(i).type.name for i in range(net.network.num_layers)}


@pytest.mark.parametrize("agnostic", [False, True])
@pytest.mark.parametrize("candidates, max_det", [(200, 100), (60, 100)], ids=["max_det<candidates", "padded"])
def test_nms_layer_equals_layers_only(agnostic, candidates, max_det):
    """The NMS-layer network emits TensorRT's NMS layer (and no unrolled steps), and its four outputs equal the
    layers-only network's on the same boxes. TensorRT orders the layer's selections by score across classes, with
    equal scores in no set order; the outputs are re-ranked by candidate rank, so both orders agree."""
    boxes, scores = _crowd(candidates + max_det, 2, 200, 5)
    nets = {
        layer: NMSNet(
            NMSOptions(max_det=max_det, candidates=candidates, class_agnostic=agnostic, layer=layer),
            200,
            5,
            centre_size=True,
        )
        for layer in ("layers", "trt")
    }
    assert "NMS" in _layer_types(nets["trt"]) and "NMS" not in _layer_types(nets["layers"])
    assert trtnet.emit(nets["trt"], batch_size=2).num_layers < trtnet.emit(nets["layers"], batch_size=2).num_layers / 10
    want = trtnet.reference(nets["layers"], boxes, scores)
    got = trtnet.reference(nets["trt"], boxes, scores)
    # Suppression happened; the cap of max_det is reached, or with fewer candidates, padding is exercised.
    assert 10 < want[0].min() and (want[0].max() < max_det if candidates < max_det else want[0].max() == max_det)
    for name, a, b in zip(["num_dets", "boxes", "scores", "classes"], got, want):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_auto_uses_the_nms_layer_where_the_backend_builds_it():
    backend = get_backend()
    assert backend.builds_layer("NMS") == (not backend.is_rtx)
    assert backend.builds_layer("TOP_K")
    assert NMSOptions().uses_nms_layer() == backend.builds_layer("NMS")
    assert NMSOptions(layer="trt").uses_nms_layer() and not NMSOptions(layer="layers").uses_nms_layer()
    model = NMSNet(NMSOptions(max_det=4), 50, 3)
    assert ("NMS" in _layer_types(model)) == backend.builds_layer("NMS")


@pytest.mark.skipif(not get_backend().is_rtx, reason="only TensorRT for RTX lacks a runner for the NMS layer")
def test_nms_layer_build_with_tensorrt_rtx_is_a_build_error():
    net = NMSNet(NMSOptions(max_det=4, layer="trt"), 50, 3)
    with pytest.raises(
        BuildError,
        match=r"tensorrt_rtx \S+ cannot build TensorRT's NMS layer '[^']+' \(trtnet's "
        r"NMSOptions\(layer='layers'\)",
    ):
        trtnet.build(net, batch_size=1, cache=False)


@IMPLEMENTATIONS
def test_corners_in_either_order_are_the_box_they_span(layer):
    """TensorRT's NMS layer takes any two opposite corners; the layers-only NMS took (10, 10, 0, 0) as an empty
    box and kept all three of these where the layer kept one. Both now keep one, given as x1 <= x2, y1 <= y2."""
    num, boxes, scores, _ = run(
        [[10, 10, 0, 0], [0, 0, 10, 10], [9, 9, 1, 1]], [[0.9], [0.8], [0.7]], max_det=5, layer=layer
    )
    assert num == 1 and scores[0] == np.float32(0.9)
    np.testing.assert_array_equal(boxes[0], np.float32([0, 0, 10, 10]))
    # a negative width or height given as a centre and size: the box of that size's magnitude
    centred = NMSNet(NMSOptions(max_det=5, layer=layer), 3, 1, centre_size=True)
    wide = np.float32([[[5, 5, -10, -10], [5, 5, 10, 10], [5, 5, 8, 8]]])
    num, boxes, _, _ = trtnet.reference(centred, wide, np.float32([[[0.9], [0.8], [0.7]]]))
    assert num[0, 0] == 1
    np.testing.assert_array_equal(boxes[0, 0], np.float32([0, 0, 10, 10]))
