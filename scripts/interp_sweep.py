"""The interpreter on networks trtnet did not write: a sweep of architectures through TensorRT's ONNX parser.

Each architecture is built in PyTorch with signal-preserving random weights (convolutions and linears drawn
N(0, 2/fan_in), BatchNorm statistics randomised; transformers keep their own initialisation), exported with
`torch.onnx.export` (opset 18, the TorchScript exporter), parsed by the backend's OnnxParser into a strongly
typed network, and run at batch 1 in the interpreter and in onnxruntime. Both are compared with PyTorch fp32
eager (max |got - want| / max |want| over every output), and with PyTorch run in float64 (the exact answer,
to which PyTorch fp32 itself has an error too). Times are the fastest of --runs interleaved runs of the
interpreter and of PyTorch. Every architecture runs in its own child process (memory, crashes).

    PYTHONPATH=$PWD python scripts/interp_sweep.py --json sweep.json [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pin_threads import pin_threads  # noqa: E402  (the script's own folder, first on sys.path)

THREADS = pin_threads()

import numpy as np  # noqa: E402  (after the thread count is set)

# name -> (library, builder argument, input kind)
SWEEP: dict[str, tuple[str, str, str]] = {
    "resnet18": ("torchvision", "resnet18", "image"),
    "resnext50_32x4d": ("torchvision", "resnext50_32x4d", "image"),
    "densenet121": ("torchvision", "densenet121", "image"),
    "squeezenet1_1": ("torchvision", "squeezenet1_1", "image"),
    "shufflenet_v2_x1_0": ("torchvision", "shufflenet_v2_x1_0", "image"),
    "mobilenet_v3_small": ("torchvision", "mobilenet_v3_small", "image"),
    "efficientnet_v2_s": ("torchvision", "efficientnet_v2_s", "image"),
    "regnet_y_400mf": ("torchvision", "regnet_y_400mf", "image"),
    "convnext_tiny": ("torchvision", "convnext_tiny", "image"),
    "swin_t": ("torchvision", "swin_t", "image"),
    "googlenet": ("torchvision", "googlenet", "image"),
    "deeplabv3_mobilenet_v3_large": ("torchvision.segmentation", "deeplabv3_mobilenet_v3_large", "image"),
    "yolov5s": ("zoo", "yolov5s", "image640"),
    "deit_tiny_patch16_224": ("timm", "deit_tiny_patch16_224", "image"),
    "levit_128s": ("timm", "levit_128s", "image"),
    "mobilevit_xxs": ("timm", "mobilevit_xxs", "image256"),
    "ghostnet_100": ("timm", "ghostnet_100", "image"),
    "bert_base_encoder": ("transformers", "bert", "text"),
    "gpt2_decoder": ("transformers", "gpt2", "text"),
}


def _keywords_class():
    import torch

    class Keywords(torch.nn.Module):
        """Passes positional inputs by keyword (transformers' forward() takes other arguments in between) and
        returns the output's tensors as a tuple."""

        def __init__(self, inner, names: list[str]) -> None:
            super().__init__()
            self.inner, self.names = inner, names

        def forward(self, *xs):
            out = self.inner(**dict(zip(self.names, xs)), return_dict=True)
            return tuple(v for v in out.values() if isinstance(v, torch.Tensor))

    return Keywords


def _Keywords(inner, names: list[str]):  # noqa: N802  (a class made on demand: torch is imported lazily)
    return _keywords_class()(inner, names)


def build(name: str):
    """The PyTorch model (eval mode, seeded random weights) and its inputs as numpy arrays."""
    import torch

    from trtnet.parity import randomize_norm_stats
    from trtnet.zoo.sources import he_init

    library, arg, kind = SWEEP[name]
    torch.manual_seed(0)
    if library == "torchvision":
        import torchvision

        model = getattr(torchvision.models, arg)(
            weights=None, **({"aux_logits": False, "init_weights": False} if arg == "googlenet" else {})
        )
    elif library == "torchvision.segmentation":
        import torchvision

        model = getattr(torchvision.models.segmentation, arg)(weights=None, weights_backbone=None, aux_loss=False)
    elif library == "timm":
        import timm

        model = timm.create_model(arg, pretrained=False)
    elif library == "zoo":
        from trtnet.zoo.registry import get_entry

        model = get_entry(arg).torch_model()
    else:
        import transformers

        if arg == "bert":
            config = transformers.BertConfig(attn_implementation="eager")
            model = _Keywords(transformers.BertModel(config, add_pooling_layer=True), ["input_ids", "attention_mask"])
        else:
            config = transformers.GPT2Config(attn_implementation="eager", use_cache=False)
            # With an explicit mask, transformers skips the packed-sequence detection (torch.diff) that the
            # TorchScript exporter cannot write.
            model = _Keywords(transformers.GPT2Model(config), ["input_ids", "attention_mask"])
    if library != "transformers":
        he_init(model)
    randomize_norm_stats(model, 0)
    model.eval()
    rng = np.random.default_rng(1)
    if kind == "text":
        ids = rng.integers(0, 30000, (1, 128)).astype(np.int64)
        inputs = {"input_ids": ids, "attention_mask": np.ones((1, 128), np.int64)}
    else:
        side = {"image": 224, "image256": 256, "image640": 640}[kind]
        inputs = {"x": rng.standard_normal((1, 3, side, side)).astype(np.float32)}
    return model, inputs


def flat_outputs(out) -> list:
    """A module's output tensors depth first, the order the ONNX export lists them (dicts and Hugging Face
    ModelOutputs by their values, None left out)."""
    if isinstance(out, dict):
        out = list(out.values())
    elif hasattr(out, "to_tuple"):
        out = out.to_tuple()
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flat_outputs(o)]
    return [] if out is None else [out]


def torch_run(model, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """PyTorch fp32 eager outputs, flattened in the order the ONNX export lists them."""
    import torch

    with torch.no_grad():
        out = model(*[torch.from_numpy(v) for v in inputs.values()])
    return [t.detach().float().numpy() for t in flat_outputs(out)]


def child(name: str, runs: int) -> dict:
    """One architecture, end to end; returns its row."""
    import torch

    from trtnet.backend import get_trt, logger
    from trtnet.errors import TrtnetError
    from trtnet.interpreter import Interpreter
    from trtnet.parity import rel_error

    torch.set_num_threads(THREADS)
    model, inputs = build(name)
    want = torch_run(model, inputs)
    row: dict = {"model": name}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.onnx"
        with torch.no_grad():
            torch.onnx.export(
                model,
                tuple(torch.from_numpy(v) for v in inputs.values()),
                str(path),
                input_names=list(inputs),
                opset_version=18,
                dynamo=False,
                do_constant_folding=True,
            )
        trt = get_trt()
        builder = trt.Builder(logger())
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, logger())
        if not parser.parse_from_file(str(path)):
            row["error"] = "parser: " + "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))[:300]
            return row
        row["layers"] = network.num_layers
        feeds = {network.get_input(i).name: inputs[network.get_input(i).name] for i in range(network.num_inputs)}
        interp_s, torch_s = [], []
        try:
            # A prepared network, warmed once (its weights widened to float64), timed over repeated runs, as
            # PyTorch runs a model whose weights are in memory already (the same rule as scripts/interp_bench.py).
            prepared = Interpreter(network)
            prepared.run(feeds)
            for _ in range(runs):
                t0 = time.perf_counter()
                got = list(prepared.run(feeds).values())
                interp_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                torch_run(model, inputs)
                torch_s.append(time.perf_counter() - t0)
        except TrtnetError as err:
            row["error"] = str(err)[:300]
            return row
        row["interp_s"], row["torch_s"] = min(interp_s), min(torch_s)
        row["outputs"] = len(got)
        row["interp_error"] = max(rel_error(g, w) for g, w in zip(got, want))
        exact = torch_run(
            model.double(), {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in inputs.items()}
        )
        row["interp_error_f64"] = max(rel_error(g, w) for g, w in zip(got, exact))
        row["torch_error_f64"] = max(rel_error(g, w) for g, w in zip(want, exact))
        model.float()
        try:
            import onnxruntime as ort

            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            ort_out = session.run(
                None, {k: v for k, v in inputs.items() if k in {i.name for i in session.get_inputs()}}
            )
            row["ort_error"] = max(rel_error(g, w) for g, w in zip(ort_out, want))
            row["ort_error_f64"] = max(rel_error(g, w) for g, w in zip(ort_out, exact))
        except ImportError:
            row["ort_error"] = None
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=list(SWEEP))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/torch threads on both sides (default 1)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("ROW " + json.dumps(child(args.child, args.runs)))
        return 0
    rows = []
    for name in args.only:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--runs", str(args.runs), "--threads", str(THREADS)],
            capture_output=True,
            text=True,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("ROW ")]
        row = (
            json.loads(lines[-1][4:])
            if lines
            else {"model": name, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]}
        )
        rows.append(row)
        print(line_of(row), flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    timed = [r["interp_s"] / r["torch_s"] for r in rows if "interp_s" in r]
    if timed:
        print(f"median interpreter/PyTorch time: {statistics.median(timed):.2f}x over {len(timed)} architectures")
    return 0


def line_of(r: dict) -> str:
    if "interp_error" not in r:
        return f"{r['model']:30s} FAILED: {r.get('error')}"
    ort = "n/a" if r.get("ort_error") is None else f"{r['ort_error']:.1e}"
    verdict = "ok" if r.get("ort_error") is None or r["interp_error"] <= r["ort_error"] else "WORSE than ORT"
    if "interp_error_f64" in r:
        ort64 = "n/a" if r.get("ort_error_f64") is None else f"{r['ort_error_f64']:.1e}"
        verdict += f"  vs float64: interp {r['interp_error_f64']:.1e} torch {r['torch_error_f64']:.1e} ort {ort64}"
    return (
        f"{r['model']:30s} layers {r['layers']:5d}  interp err {r['interp_error']:.1e}  ort err {ort}  "
        f"time {r['interp_s']:.2f}s / torch {r['torch_s']:.2f}s = {r['interp_s'] / r['torch_s']:.1f}x  {verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())
