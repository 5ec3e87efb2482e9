"""The ONNX route on files from several producers: each file parsed by the backend's OnnxParser (its dynamic dims
sized by `shapes`), run in the interpreter and in onnxruntime (CPU, graph optimisations off), both judged against
the same model evaluated in float64 by `onnx.reference` (max |got - ref| / max |ref| over the outputs).

Producers: torchvision and timm (torch.onnx.export), ultralytics (YOLOv8n from its yaml, exported with dynamic
batch, height and width), scikit-learn through skl2onnx, and graphs written with onnx.helper (dynamic spatial dims;
an `If`). Weights are random (ultralytics', torchvision's and timm's own initialisation; sklearn fitted on random
data). A row that fails says why instead of stopping the sweep.

    PYTHONPATH=$PWD python scripts/onnx_sweep.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def torch_file(folder: Path, name: str, make, shape) -> tuple[Path, dict]:
    import torch

    torch.manual_seed(0)
    path = folder / f"{name}.onnx"
    with torch.no_grad():
        torch.onnx.export(
            make().eval(), (torch.randn(*shape),), str(path), input_names=["x"], dynamo=False, opset_version=17
        )
    return path, {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}


def yolov8n(folder: Path) -> tuple[Path, dict]:
    os.environ.setdefault("YOLO_CONFIG_DIR", str(folder))
    import torch
    from ultralytics import YOLO

    cwd = os.getcwd()
    os.chdir(folder)
    try:
        torch.manual_seed(0)
        path = Path(YOLO("yolov8n.yaml").export(format="onnx", dynamic=True, imgsz=64, opset=17, simplify=False))
    finally:
        os.chdir(cwd)
    return folder / path.name, {"images": np.random.default_rng(0).random((1, 3, 320, 256), np.float32)}


def sklearn_mlp(folder: Path) -> tuple[Path, dict]:
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((256, 20)).astype(np.float32), rng.standard_normal((256, 3))
    model = MLPRegressor(hidden_layer_sizes=(64, 32), max_iter=50, random_state=0).fit(x, y)
    path = folder / "sklearn_mlp.onnx"
    path.write_bytes(to_onnx(model, x[:1], target_opset=17).SerializeToString())
    return path, {"X": x[:16]}


def helper_dynamic(folder: Path) -> tuple[Path, dict]:
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    w = helper.make_tensor("w", TensorProto.FLOAT, [8, 3, 3, 3], rng.standard_normal(216).astype(np.float32))
    scales = helper.make_tensor("s", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c"], ["g"]),
        helper.make_node("Mul", ["c", "g"], ["m"]),
        helper.make_node("Resize", ["m", "", "s"], ["r"], mode="nearest"),
        helper.make_node("Softmax", ["r"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "dynamic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w, scales],
    )
    path = folder / "helper_dynamic.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path, {"x": rng.standard_normal((2, 3, 40, 24)).astype(np.float32)}


def helper_if(folder: Path) -> tuple[Path, dict]:
    import onnx
    from onnx import TensorProto, helper

    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])]
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "then", [], out)
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "else", [], out)
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
    ]
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    graph = helper.make_graph(nodes, "if", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])], out, [zero])
    path = folder / "helper_if.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path, {"x": np.array([1.0, -2.0, 3.0, 0.5], np.float32)}


def _tv(name):
    import torchvision

    return lambda: getattr(torchvision.models, name)(weights=None)


def _timm(name):
    import timm

    return lambda: timm.create_model(name, pretrained=False)


ROWS = {
    "torchvision resnet18": lambda f: torch_file(f, "resnet18", _tv("resnet18"), (1, 3, 224, 224)),
    "torchvision mobilenet_v3_small": lambda f: torch_file(f, "mnv3", _tv("mobilenet_v3_small"), (1, 3, 224, 224)),
    "timm vit_tiny_patch16_224": lambda f: torch_file(f, "vit", _timm("vit_tiny_patch16_224"), (1, 3, 224, 224)),
    "ultralytics yolov8n (dynamic NxHxW)": yolov8n,
    "scikit-learn MLPRegressor (skl2onnx)": sklearn_mlp,
    "onnx.helper conv/resize (dynamic NxHxW)": helper_dynamic,
    "onnx.helper If": helper_if,
}


def rel(got: np.ndarray, ref: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    return float(np.abs(got.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30))


def sweep_one(name: str, folder: Path) -> str:
    import onnxruntime as ort

    import trtnet
    from trtnet.interpreter import run_network
    from trtnet.onnx.compare import float64_reference

    t0 = time.perf_counter()
    try:
        path, feeds = ROWS[name](folder)
    except ImportError as e:  # a row's exporter is not installed (skl2onnx is no dependency): the row says so
        return f"| {name} | | | not run: {e} | | | |"
    shapes = {k: v.shape for k, v in feeds.items()}
    try:
        net = trtnet.parse_onnx(path, shapes=shapes)
        layers = net.network.num_layers
        t1 = time.perf_counter()
        got = run_network(net.network, feeds)
        t_interp = time.perf_counter() - t1
    except Exception as e:  # noqa: BLE001  a row says why it failed
        return f"| {name} | {' x '.join('x'.join(map(str, s)) for s in shapes.values())} | - | {type(e).__name__}: {' '.join(str(e).split())[:90]} | | | |"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = list(got)
    theirs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    ref = float64_reference(path, feeds, names)
    e_interp = max(rel(got[n], ref[n]) for n in names if np.issubdtype(got[n].dtype, np.floating))
    e_ort = max(rel(theirs[n], ref[n]) for n in names if np.issubdtype(got[n].dtype, np.floating))
    shape = " ".join("x".join(map(str, s)) for s in shapes.values())
    return (
        f"| {name} | {shape} | {layers} | {e_interp:.1e} | {e_ort:.1e} | {t_interp:.2f} s | "
        f"{time.perf_counter() - t0:.1f} s |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="rows whose name contains one of these")
    args = parser.parse_args()
    print("| model | input | layers | interpreter vs float64 | onnxruntime vs float64 | interpreter run | row total |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ROWS:
            if args.only and not any(o in name for o in args.only):
                continue
            print(sweep_one(name, Path(tmp)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
