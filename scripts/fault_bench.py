"""Fault benchmark of `trtnet verify --layerwise`: plant one fault at a time into a zoo model loaded with its
PyTorch source's weights, and count how often the layerwise comparison names the planted module first.

    PYTHONPATH=$PWD python scripts/fault_bench.py          # every fault below (7 architectures), from the repo root
    PYTHONPATH=$PWD python scripts/fault_bench.py --models resnet18 vit_s_16 --json faults.json

The faults themselves are tests/fault_planting.py (the layerwise tests plant them too).

Each fault changes the DSL model only (its weights, a setting of one module, or one op emitted inside one
module's forward); the source stays as it is. A fault that leaves the model's output unchanged (rel error at
most the tolerance) planted nothing and is reported as such, not counted. The time is the whole run: sources
built, weights exported and loaded, and one layerwise run per fault (an emission, an interpreter run capturing
every module call, a PyTorch run with forward hooks).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.fault_planting import (
    NEG,
    ROLL,
    Plant,
    T,
    attention_scale,
    dropped_residual,
    setting,
    swapped,
    weight,
    wrong_activation,
)
from trtnet.errors import TrtnetError
from trtnet.parity import export_state, sample_inputs, torch_model
from trtnet.parity.blame import TOLERANCE, layerwise
from trtnet.zoo import REGISTRY


@dataclass(frozen=True)
class Fault:
    model: str
    what: str  # the kind of fault, in words
    module: str  # the module the fault is planted in: what a good blame names
    plant: Plant


def faults() -> list[Fault]:
    f = Fault
    return [
        # resnet18: torchvision's BasicBlock, BatchNorm after each conv
        f("resnet18", "wrong activation", "layer1.0", wrong_activation("layer1.0")),
        f("resnet18", "residual dropped", "layer2.1", dropped_residual("layer2.1")),
        f("resnet18", "wrong eps", "layer3.0.bn1", setting("layer3.0.bn1", "_eps", 1.0)),
        f("resnet18", "wrong padding", "conv1", setting("conv1", "_config", 2, "padding")),
        f("resnet18", "rolled weight", "layer1.1.conv2", weight("layer1.1.conv2.weight", ROLL)),
        f("resnet18", "negated bias", "fc", weight("fc.bias", NEG)),
        f("resnet18", "swapped weights", "layer1.0.conv1", swapped("layer1.0.conv1.weight", "layer1.0.conv2.weight")),
        f(
            "resnet18",
            "transposed weight",
            "layer4.1.conv1",
            weight("layer4.1.conv1.weight", lambda w: w.transpose(1, 0, 2, 3)),
        ),
        # mobilenet_v2: inverted residuals with ReLU6 modules
        f("mobilenet_v2", "wrong activation", "features.2.conv.0.2", wrong_activation("features.2.conv.0.2")),
        f("mobilenet_v2", "residual dropped", "features.3", dropped_residual("features.3")),
        f("mobilenet_v2", "wrong eps", "features.5.conv.1.1", setting("features.5.conv.1.1", "_eps", 1.0)),
        f(
            "mobilenet_v2",
            "wrong stride",
            "features.4.conv.1.0",
            setting("features.4.conv.1.0", "_config", 1, "stride"),
        ),
        f("mobilenet_v2", "halved weight", "classifier.1", weight("classifier.1.weight", lambda w: w / 2)),
        f("mobilenet_v2", "negated BN weight", "features.7.conv.2", weight("features.7.conv.2.weight", NEG)),
        # vgg11_bn: a plain stack
        f("vgg11_bn", "wrong activation", "features.6", wrong_activation("features.6")),
        f("vgg11_bn", "wrong eps", "features.5", setting("features.5", "_eps", 1.0)),
        f("vgg11_bn", "wrong padding", "features.8", setting("features.8", "_config", 2, "padding")),
        f("vgg11_bn", "rolled weight", "features.4", weight("features.4.weight", ROLL)),
        f("vgg11_bn", "transposed weight", "classifier.3", weight("classifier.3.weight", T)),
        f("vgg11_bn", "rolled weight", "classifier.0", weight("classifier.0.weight", ROLL)),
        # vit_s_16: timm's pre-norm blocks, fused qkv
        f("vit_s_16", "wrong attention scale", "blocks.2.attn", attention_scale("blocks.2.attn")),
        f("vit_s_16", "residual dropped", "blocks.4", dropped_residual("blocks.4")),
        f("vit_s_16", "wrong eps", "blocks.1.norm2", setting("blocks.1.norm2", "_eps", 1.0)),
        f("vit_s_16", "wrong activation", "blocks.3.mlp", wrong_activation("blocks.3.mlp")),
        f("vit_s_16", "transposed weight", "blocks.5.attn.proj", weight("blocks.5.attn.proj.weight", T)),
        f("vit_s_16", "swapped weights", "blocks.6.norm1", swapped("blocks.6.norm1.weight", "blocks.6.norm2.weight")),
        # swin_t: windowed attention with relative position bias
        f("swin_t", "wrong attention scale", "layers.1.blocks.0.attn", attention_scale("layers.1.blocks.0.attn")),
        f("swin_t", "residual dropped", "layers.2.blocks.1", dropped_residual("layers.2.blocks.1")),
        f("swin_t", "wrong eps", "layers.0.blocks.1.norm1", setting("layers.0.blocks.1.norm1", "_eps", 1.0)),
        f("swin_t", "wrong activation", "layers.3.blocks.0.mlp", wrong_activation("layers.3.blocks.0.mlp")),
        f(
            "swin_t",
            "transposed weight",
            "layers.1.blocks.1.attn.proj",
            weight("layers.1.blocks.1.attn.proj.weight", T),
        ),
        f(
            "swin_t",
            "scaled position bias",
            "layers.0.blocks.0.attn",
            weight("layers.0.blocks.0.attn.relative_position_bias_table", lambda t: 50 * t),
        ),
        # convnext_tiny: depthwise 7x7, LayerNorm, layer scale
        f("convnext_tiny", "wrong activation", "stages.1.blocks.0.mlp", wrong_activation("stages.1.blocks.0.mlp")),
        f("convnext_tiny", "residual dropped", "stages.0.blocks.2", dropped_residual("stages.0.blocks.2")),
        f("convnext_tiny", "wrong eps", "stages.2.blocks.0.norm", setting("stages.2.blocks.0.norm", "_eps", 1.0)),
        f(
            "convnext_tiny",
            "rolled weight",
            "stages.0.blocks.1.conv_dw",
            weight("stages.0.blocks.1.conv_dw.weight", ROLL),
        ),
        f("convnext_tiny", "negated layer scale", "stages.1.blocks.1", weight("stages.1.blocks.1.gamma", NEG)),
        f(
            "convnext_tiny",
            "rolled weight",
            "stages.3.blocks.0.mlp.fc2",
            weight("stages.3.blocks.0.mlp.fc2.weight", ROLL),
        ),
        # efficientnet_b0: SiLU everywhere, squeeze-excite
        f("efficientnet_b0", "wrong activation", "blocks.1.0.se", wrong_activation("blocks.1.0.se")),
        f("efficientnet_b0", "residual dropped", "blocks.2.1", dropped_residual("blocks.2.1")),
        f("efficientnet_b0", "wrong eps", "blocks.3.0.bn2", setting("blocks.3.0.bn2", "_eps", 1.0)),
        f(
            "efficientnet_b0",
            "wrong stride",
            "blocks.2.0.conv_dw",
            setting("blocks.2.0.conv_dw", "_config", 1, "stride"),
        ),
        f(
            "efficientnet_b0",
            "halved weight",
            "blocks.4.0.se.conv_expand",
            weight("blocks.4.0.se.conv_expand.weight", lambda w: w / 2),
        ),
        f(
            "efficientnet_b0",
            "swapped weights",
            "blocks.5.1.conv_pw",
            swapped("blocks.5.1.conv_pw.weight", "blocks.5.2.conv_pw.weight"),
        ),
    ]


# -- the run -------------------------------------------------------------------------------------------------


def run(models: list[str] | None = None, out=sys.stdout) -> dict:
    """Plant every fault of `models` (default: all) and report; returns the results as a dict."""
    rows, t0 = [], time.perf_counter()
    chosen = [f for f in faults() if models is None or f.model in models]
    tol = TOLERANCE["fp32"]
    for name in dict.fromkeys(f.model for f in chosen):
        source = torch_model(name, seed=0)
        with tempfile.TemporaryDirectory() as tmp:
            model = REGISTRY[name].fn(weights=export_state(source, Path(tmp) / f"{name}.safetensors"))
        inputs = sample_inputs(model, 1, seed=0)
        clean = layerwise(model, source, inputs)
        if not clean.passed:
            raise SystemExit(f"{name} departs from its source before any fault:\n{clean.text()}")
        for fault in (f for f in chosen if f.model == name):
            try:
                with fault.plant(model):
                    report = layerwise(model, source, inputs)
            except TrtnetError as e:  # the fault made a network TensorRT refuses: the error names a module
                rows.append({"model": name, "fault": fault.what, "module": fault.module, "named": None,
                             "planted": True, "hit": False, "output_error": None, "error": str(e)})  # fmt: skip
                print(f"MISS {name:16s} {fault.what:22s} {fault.module:30s} refused: {e}", file=out, flush=True)
                continue
            effect = report.calls[-1].error
            planted = effect is None or not effect <= tol
            named = report.blamed.path if report.blamed is not None else None
            hit = planted and named == fault.module
            rows.append({"model": name, "fault": fault.what, "module": fault.module, "named": named,
                         "planted": planted, "hit": hit, "output_error": effect})  # fmt: skip
            mark = "ok  " if hit else ("none" if not planted else "MISS")
            print(f"{mark} {name:16s} {fault.what:22s} {fault.module:30s} named {named}", file=out, flush=True)
    planted = [r for r in rows if r["planted"]]
    hits = sum(r["hit"] for r in planted)
    seconds = time.perf_counter() - t0
    summary = {
        "faults": len(rows),
        "planted": len(planted),
        "named_first": hits,
        "rate": hits / len(planted) if planted else 0.0,
        "architectures": len({r["model"] for r in rows}),
        "seconds": seconds,
        "rows": rows,
    }
    print(
        f"named the planted module first in {hits} of {len(planted)} faults ({100 * summary['rate']:.0f}%) over "
        f"{summary['architectures']} architectures; {len(rows) - len(planted)} planted nothing; {seconds:.0f} s",
        file=out,
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted({f.model for f in faults()}))
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    summary = run(args.models)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0 if summary["rate"] >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
