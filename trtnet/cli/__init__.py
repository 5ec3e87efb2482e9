"""The `trtnet` command: export weights from the PyTorch sources, build engines, verify, summarise, list.

    trtnet list
    trtnet export-weights resnet50 [-o weights/resnet50.safetensors] [--pretrained] [--seed N]
    trtnet build resnet50 [--weights F] [--batch 8 | --batch 1:8:32] [--precision fp16] [-o resnet50.plan]
    trtnet verify resnet50 [--weights F] [--batch 2] [--against-seed N | --against-pretrained]
    trtnet summary resnet50
    trtnet calibrate resnet50 --data images.npz [--method percentile] -o resnet50.scales.json
    trtnet export-triton resnet50 --repo models [--batch 1:8:32] [--instances 2] [--name NAME] [--version V]
    trtnet convert swin_t swin_tiny_patch4_window7_224.pth [-o FILE] [--trust-pickle]
    trtnet check model.onnx [--inputs inputs.npz] [--layerwise]
    trtnet inspect resnet50.plan
    trtnet export-triton --plan resnet50.plan --repo models [--preferred-batch 8 16] [--max-queue-delay-us 100]

MODEL is a zoo name, or a model of your own: `path/to/file.py:NAME` or `package.module:NAME` (trtnet/cli/model_ref.py).

Exit status: 0 success, 1 a check failed, 2 bad usage or bad input, 3 a bug in trtnet (rerun with --debug for
the traceback). Errors are one line on stderr. Torch is imported only by `export-weights`, `verify`, `convert`.
"""

from trtnet.cli.app import main

__all__ = ["main"]
