"""YOLOv8 and YOLO11 against ultralytics' DetectionModel (export-mode output), and the detector options every YOLO
of the zoo has: in-engine NMS against `torchvision.ops.batched_nms` on the model's own decoded boxes, and
camera-frame pre-processing."""

from __future__ import annotations

import os

import numpy as np
import pytest

import trtnet
from trtnet.ops.detection import NMSOptions
from trtnet.parity import export_state, rel_error, torch_forward, torch_model
from trtnet.zoo import get_entry

torch = pytest.importorskip("torch", reason="torch runs the PyTorch sources of the zoo")
os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics probes DNS at import unless told it is offline
pytest.importorskip("ultralytics.nn.tasks", reason="ultralytics is the PyTorch source of YOLOv8 and YOLO11")

NAMES = ["yolov8n", "yolov8s", "yolov8m", "yolo11n", "yolo11s", "yolo11m"]


def parity(name: str, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    model = torch_model(name, seed=seed)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    x = np.random.default_rng(seed + 1).standard_normal((2, 3, size, size)).astype(np.float32)
    (want,) = torch_forward(model, x)
    (got,) = trtnet.reference(get_entry(name).fn(weights=state), x)
    return got, want


def check(got: np.ndarray, want: np.ndarray, size: int) -> None:
    anchors = sum((size // s) ** 2 for s in (8, 16, 32))
    assert got.shape == want.shape == (2, 84, anchors)
    # Random weights must still give a signal worth comparing: boxes and scores that differ for two inputs. The
    # boxes' size is mostly their anchor's position, so their error is also measured against that difference.
    spread = np.abs(want[0, :4] - want[1, :4]).max()
    assert spread >= 0.2 and np.abs(want[0, 4:] - want[1, 4:]).max() >= 1e-2
    assert rel_error(got, want) <= 1e-4
    assert np.abs(got[:, :4] - want[:, :4]).max() <= 1e-3 * spread
    assert rel_error(got[:, 4:], want[:, 4:]) <= 1e-4  # the class probabilities on their own scale


def test_yolov8n_and_yolo11n_match_at_160():
    for name in ("yolov8n", "yolo11n"):
        check(*parity(name, 160), 160)


def test_yolov5_takes_an_image_size():
    """YOLOv5's input was fixed at 640 (`--image-size 320` said it had none to set); its grid is sized from the
    feature maps, so the size is the declared input's alone, a multiple of 32."""
    pytest.importorskip("yolov5.models.yolo", reason="yolov5 is the PyTorch source of YOLOv5")
    model = torch_model("yolov5n", seed=0)
    ours = get_entry("yolov5n").fn(weights={k: v.numpy() for k, v in model.state_dict().items()}, image_size=160)
    assert [(i.name, i.shape) for i in ours.inputs()] == [("x", (3, 160, 160))]
    x = np.random.default_rng(1).standard_normal((2, 3, 160, 160)).astype(np.float32)
    (want,) = torch_forward(model, x)
    (got,) = trtnet.reference(ours, x)
    assert got.shape == want.shape == (2, 3 * sum((160 // s) ** 2 for s in (8, 16, 32)), 85)
    assert rel_error(got, want) <= 1e-4
    with pytest.raises(
        trtnet.errors.ConfigError, match="image_size = 100 is not allowed: expected a positive multiple of 32"
    ):
        get_entry("yolov5n").fn(weights=None, image_size=100)
    from trtnet.zoo.yolov5 import YOLOv5, YOLOv5Config

    with pytest.raises(trtnet.errors.ConfigError, match="image_size = 0 is not allowed"):  # 0 % 32 == 0 passed
        YOLOv5(YOLOv5Config(0.33, 0.25, image_size=0))


@pytest.mark.slow
@pytest.mark.parametrize("size", [640, 320])
@pytest.mark.parametrize("name", NAMES)
def test_matches_source(name, size):
    check(*parity(name, size), size)


def test_entries_load_the_source_state_dict_strictly(tmp_path):
    model = torch_model("yolo11n", seed=2)
    path = export_state(model, tmp_path / "yolo11n.safetensors")
    keys = set(get_entry("yolo11n").fn(weights=path).state_dict())
    assert keys == {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert "model.10.m.0.attn.qkv.conv.weight" in keys and "model.23.dfl.conv.weight" in keys


@pytest.mark.parametrize(
    "name, score, layer",
    [("yolov8n", 0.25, "auto"), ("yolo11n", 0.25, "auto"), ("yolov5n", 0.001, "auto"), ("yolov8n", 0.25, "trt")],
)
def test_engine_nms_matches_torchvision_on_decoded_boxes(name, score, layer):
    """The network's own predictions, decoded by PyTorch, through `batched_nms`; the NMS network must find the
    same boxes (YOLOv5n with random weights gives few confident boxes: its score threshold is lowered to get many)."""
    torchvision = pytest.importorskip("torchvision")
    size = 160
    model = torch_model(name, seed=3)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    x = np.random.default_rng(4).standard_normal((2, 3, size, size)).astype(np.float32)
    (raw,) = torch_forward(model, x)
    options = NMSOptions(iou=0.45, score=score, max_det=100, candidates=1000, layer=layer)
    num, boxes, scores, classes = trtnet.reference(get_entry(name).fn(weights=state, nms=options), x)
    assert num.shape == (2, 1) and boxes.shape == (2, 100, 4) and scores.shape == classes.shape == (2, 100)
    for i in range(2):
        if name.startswith("yolov5"):
            p = torch.from_numpy(raw[i])
            xywh, conf = p[:, :4], p[:, 5:] * p[:, 4:5]
        else:
            p = torch.from_numpy(raw[i]).T
            xywh, conf = p[:, :4], p[:, 4:]
        corners = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
        best, label = conf.max(1)
        m = best > score
        assert m.sum() <= options.candidates  # so that the candidates are all the boxes above the threshold
        keep = torchvision.ops.batched_nms(corners[m], best[m], label[m], 0.45)[:100]
        n = len(keep)
        assert n > 5 and num[i, 0] == n
        # The same boxes, up to the network's own difference from PyTorch (the zoo's 1e-4 relative error).
        assert rel_error(boxes[i, :n], corners[m][keep].numpy()) <= 1e-4
        assert rel_error(scores[i, :n], best[m][keep].numpy()) <= 1e-4
        np.testing.assert_array_equal(classes[i, :n], label[m][keep].numpy())


def test_preprocess_takes_bgr_uint8_frames():
    model = torch_model("yolov8n", seed=5)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    frames = np.random.default_rng(6).integers(0, 256, (2, 160, 160, 3), dtype=np.uint8)
    images = (frames[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)) / np.float32(255)
    (want,) = torch_forward(model, np.ascontiguousarray(images))
    net = get_entry("yolov8n").fn(weights=state, preprocess=True)
    assert [(i.name, i.shape, i.dtype) for i in net.inputs()] == [("x", (640, 640, 3), "uint8")]
    (got,) = trtnet.reference(net, frames)
    assert rel_error(got, want) <= 1e-4


def test_detector_engine_with_nms_and_preprocess_builds():
    net = get_entry("yolov8n").fn(weights=None, nms=NMSOptions(max_det=50), preprocess=True)
    engine = trtnet.build(net, batch_size=1, cache=False, input_shapes={"x": (160, 160, 3)})
    assert [(s.name, tuple(s.shape)) for s in engine.inputs] == [("x", (1, 160, 160, 3))]
    assert [s.name for s in engine.outputs] == ["num_dets", "boxes", "scores", "classes"]
    assert engine.outputs[1].shape == (1, 50, 4)
