"""What every YOLO of the zoo shares around its network: the optional camera-frame input (uint8 NHWC BGR) and the
optional in-engine NMS with EfficientNMS's fixed-size outputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from trtnet.errors import ConfigError
from trtnet.nn.module import Input, Module
from trtnet.ops.detection import NMSOptions, frames_to_images, nms
from trtnet.tensor import Tensor

NMS_OUTPUTS = ["num_dets", "boxes", "scores", "classes"]


class DetectorOutputs:
    """The input a detector declares and what its raw predictions become, from its `nms` and `preprocess`."""

    def __init__(self, nms_options: NMSOptions | None, preprocess: bool) -> None:
        self.nms, self.preprocess = nms_options, preprocess

    def input(self, size: int) -> Input:
        """`x`: float32 RGB NCHW in [0, 1], or with `preprocess` uint8 HWC BGR frames as OpenCV reads them."""
        return Input("x", (size, size, 3), "uint8", high=256) if self.preprocess else Input("x", (3, size, size))

    def names(self) -> list[str]:
        return list(NMS_OUTPUTS) if self.nms is not None else ["predictions"]

    def prepare(self, x: Tensor) -> Tensor:
        """uint8 [B, H, W, 3] BGR -> float [B, 3, H, W] RGB / 255, as ultralytics' `preprocess` does it."""
        if not self.preprocess:
            return x
        return frames_to_images(x)

    def finish(self, predictions: Tensor, split: Callable[[Tensor], tuple[Tensor, Tensor]]) -> Tensor | tuple:
        """The raw predictions, or with `nms` the detections: `split` gives [B, A, 4] cx, cy, w, h boxes and
        [B, A, C] scores from the predictions."""
        if self.nms is None:
            return predictions
        boxes, scores = split(predictions)
        return nms(boxes, scores, self.nms)


def run_table(layers: Sequence[Module], sources: Sequence[int | Sequence[int]], x: Tensor) -> Tensor:
    """The YOLO sources' forward over their model table: each layer reads the previous output (-1) or the
    outputs of the rows its `from` entry names; returns the last layer's output."""
    outputs: list[Tensor] = []
    for layer, src in zip(layers, sources):
        if isinstance(src, int):
            x = layer(x if src == -1 else outputs[src])
        else:
            x = layer([x if s == -1 else outputs[s] for s in src])
        outputs.append(x)
    return x


def checked_image_size(size: int, stride: int, model: str) -> int:
    """A detector's input size, a multiple of its largest `stride`: else the upsampled map and the skip it meets
    have other sizes, and TensorRT refuses the concatenation deep in the network."""
    what = f"a positive multiple of {stride}"
    return ConfigError.check("image_size", size, what, lambda v: v > 0 and v % stride == 0, source=model)
