"""Model settings on the command line (trtnet/cli/settings.py): each reaches the entry point as its keyword
argument, and a setting the model does not take, or a bad value, is one line naming the field, exit 2."""

from __future__ import annotations

import json

import pytest

import trtnet
from tests.helpers import error_line, trtnet_cli
from trtnet.runtime.plan import Plan
from trtnet.summary import summarize
from trtnet.zoo import REGISTRY, bert_base_uncased, resnet18


def total_line(model, batch: int = 1) -> str:
    """The summary's total line of `model`, computed in Python: what the command line must print."""
    return summarize(trtnet.emit(model, batch).network).table().splitlines()[-1]


def test_num_classes_reaches_the_head():
    result = trtnet_cli("summary", "resnet18", "--num-classes", "10")
    assert result.returncode == 0, result.stderr
    assert total_line(resnet18(num_classes=10)) in result.stdout
    assert total_line(resnet18()) not in result.stdout  # the setting changed the network


def test_image_size_of_a_cnn_and_of_a_vit():
    result = trtnet_cli("summary", "resnet18", "--image-size", "64")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "resnet18 (torchvision.models.resnet18), batch 1, fp32; inputs x float32[1x3x64x64]"
    )
    result = trtnet_cli("summary", "vit_s_16", "--image-size", "112")
    assert result.returncode == 0, result.stderr
    assert "inputs x float32[1x3x112x112]" in result.stdout
    # ViT's `img_size // patch_size` would drop the last 4 pixels of each side silently
    refused = trtnet_cli("summary", "vit_s_16", "--image-size", "100")
    assert error_line(refused) == (
        "trtnet: error: vit_s_16: img_size = 100 is not allowed: expected a multiple of 16 for vit_s_16 "
        "(the patch size and the stages must divide it)"
    )


def test_seq_len_and_a_range():
    result = trtnet_cli("summary", "bert_base_uncased", "--seq-len", "16:32:64")
    assert result.returncode == 0, result.stderr
    assert "inputs input_ids int32[1x32], attention_mask int32[1x32]" in result.stdout  # tuned for opt
    refused = trtnet_cli("summary", "bert_base_uncased", "--seq-len", "1000")
    assert error_line(refused).startswith("trtnet: error: BERT: seq_len 1000 is out of range; it must be a length")
    usage = trtnet_cli("summary", "bert_base_uncased", "--seq-len", "64:32:16")
    assert usage.returncode == 2 and "argument --seq-len: '64:32:16': expected a sequence length" in usage.stderr


def test_a_hugging_face_config(tmp_path):
    config = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = trtnet_cli("summary", "bert_base_uncased", "--config", path, "--seq-len", "8")
    assert result.returncode == 0, result.stderr
    assert total_line(bert_base_uncased(config=config, seq_len=8)) in result.stdout
    path.write_text(json.dumps({**config, "hidden_size": "64"}))
    refused = trtnet_cli("build", "bert_base_uncased", "--config", path, "-o", tmp_path / "b.plan")
    assert error_line(refused) == (
        "trtnet: error: BERT config: hidden_size = '64' is not allowed: expected an integer from 1 to 65536"
    )
    assert not (tmp_path / "b.plan").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("summary", "resnet18", "--seq-len", "8"),
            "resnet18: --seq-len: resnet18 has no setting 'seq_len'; it takes bottleneck, layers, num_classes",
        ),
        (
            ("calibrate", "resnet18", "--data", "d.npz", "--config", "c.json"),
            "resnet18: --config: resnet18 has no setting 'config'; it takes bottleneck, layers, num_classes",
        ),
        (
            ("build", "resnet18", "--set", "num_classes=ten"),
            "resnet18 (--set num_classes): num_classes = 'ten' is not allowed: expected an integer like the "
            "default 1000",
        ),
        (
            ("export-triton", "inception_v3", "--repo", "r", "--set", "transform_input=1"),
            "inception_v3 (--set transform_input): transform_input = 1 is not allowed: expected true or false like "
            "the default False",
        ),
        (
            ("summary", "gpt2", "--image-size", "320"),  # (YOLOv5 takes one now)
            "gpt2: --image-size: gpt2 has no image_size to set (its inputs are input_ids, attention_mask)",
        ),
        (
            ("verify", "bert_base_uncased", "--seq-len", "600"),
            "BERT: seq_len 600 is out of range; it must be a length from 1 to max_position_embeddings 512",
        ),
    ],
    ids=["seq_len_of_a_cnn", "config_of_a_cnn", "a_string_for_an_int", "an_int_for_a_bool", "fixed_size", "verify"],
)
def test_a_setting_the_model_does_not_take_is_one_line_naming_it(tmp_path, args, message):
    result = trtnet_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert error_line(result).startswith(f"trtnet: error: {message}")
    assert list(tmp_path.iterdir()) == []


def test_a_setting_given_twice_with_two_values_is_refused(tmp_path):
    """`--set num_classes=10 --num-classes 20` built 10 classes without a word; the same value twice is fine."""
    result = trtnet_cli("summary", "resnet18", "--set", "num_classes=10", "--num-classes", "20", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert error_line(result) == (
        "trtnet: error: resnet18: --num-classes and --set num_classes both set 'num_classes', to 20 and 10: give one"
    )
    agreed = trtnet_cli("summary", "resnet18", "--set", "num_classes=10", "--num-classes", "10", cwd=tmp_path)
    assert agreed.returncode == 0, agreed.stderr
    assert "hold 11,191,242 values" in agreed.stdout
    # A range and the same list are the same setting; a two-stage Swin is sized by its own stages (56, not 224).
    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        json.dumps({"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64})
    )
    same = ("--config", cfg, "--seq-len", "16:32:64", "--set", "seq_len=[16,32,64]")
    assert trtnet_cli("summary", "bert_base_uncased", *same, cwd=tmp_path).returncode == 0
    swin = ("--set", "depths=[2,2]", "--set", "num_heads=[3,6]", "--image-size", "112")
    result = trtnet_cli("summary", "swin_t", *swin, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_image_size_reaches_a_yolov8_config():
    """YOLOv8/11 (and YOLOv5) keep their input size in the config's `image_size`: --image-size said there was none
    to set."""
    for name in ("yolov8n", "yolov5n"):
        result = trtnet_cli("summary", name, "--image-size", "320")
        assert result.returncode == 0, result.stderr
        assert "inputs x float32[1x3x320x320]" in result.stdout.splitlines()[0]


def test_set_takes_a_stage_table_and_nms_options_as_json():
    """`--set rows=[[...]]` reached MobileNetV2 as plain lists ("'list' object has no attribute 'channels'"), and
    `--set nms={...}` a YOLO as a dict (an internal error): each is now the config's own record."""
    from trtnet.ops.detection import NMSOptions
    from trtnet.zoo import mobilenet_v2, yolov8n

    result = trtnet_cli("summary", "yolov8n", "--image-size", "320", "--set", 'nms={"max_det": 7, "iou": 0.5}')
    assert result.returncode == 0, result.stderr
    assert total_line(yolov8n(image_size=320, nms=NMSOptions(iou=0.5, max_det=7))) in result.stdout
    assert total_line(yolov8n(image_size=320)) not in result.stdout
    result = trtnet_cli("summary", "mobilenet_v2", "--image-size", "64", "--set", "rows=[[1,16,1,1],[6,24,2,2]]")
    assert result.returncode == 0, result.stderr
    small = mobilenet_v2(rows=[[1, 16, 1, 1], [6, 24, 2, 2]])
    small.image_size = 64
    assert total_line(small) in result.stdout
    refused = trtnet_cli("summary", "yolov8n", "--set", 'nms={"max_det": 0}')
    assert (
        error_line(refused)
        == "trtnet: error: yolov8n: nms: NMSOptions: max_det must be an integer from 1 to 3840, got 0"
    )


def test_set_gives_a_user_model_its_keyword_arguments(tmp_path):
    (tmp_path / "two.py").write_text(
        "import trtnet\nfrom trtnet import nn\n\n\n"
        "class Two(nn.Module):\n"
        "    def __init__(self, width=4, classes=3):\n"
        "        self.fc = nn.Linear(width, classes)\n\n"
        "    def inputs(self):\n"
        "        return [nn.Input('x', (self.fc.weight.shape[1],))]\n\n"
        "    def forward(self, x):\n"
        "        return self.fc(x)\n\n\n"
        "def two(weights=None, **config):\n"
        "    model = Two(**config)\n"
        "    trtnet.init_random(model)\n"
        "    return model\n\n\n"
        "def fixed(weights=None):\n"
        "    return two()\n"
    )
    result = trtnet_cli("summary", f"{tmp_path}/two.py:two", "--set", "width=6", "--set", "classes=5")
    assert result.returncode == 0, result.stderr
    assert "inputs x float32[1x6]" in result.stdout
    assert "total: 3 layers, 35 parameters" in result.stdout  # a 6 -> 5 linear: 30 weights and 5 biases
    refused = trtnet_cli("summary", f"{tmp_path}/two.py:fixed", "--set", "classes=5")
    assert error_line(refused) == (
        f"trtnet: error: {tmp_path}/two.py:fixed: --set classes: fixed has no setting 'classes'; it takes no settings"
    )


def test_build_with_settings_writes_the_engine_they_describe(tmp_path, monkeypatch):
    monkeypatch.setenv("TRTNET_CACHE_DIR", str(tmp_path / "cache"))
    plan = tmp_path / "r.plan"
    result = trtnet_cli(
        "build",
        "resnet18",
        "--batch",
        "1",
        "--num-classes",
        "7",
        "--image-size",
        "64",
        "--precision",
        "fp32",
        "-o",
        plan,
    )
    assert result.returncode == 0, result.stderr
    loaded = Plan.load(plan)
    assert [tuple(s.shape) for s in loaded.inputs] == [(1, 3, 64, 64)]
    assert [tuple(s.shape) for s in loaded.outputs] == [(1, 7)]


def test_every_zoo_entry_lists_what_it_takes():
    """The settings are read from each entry's signature and config: none of them is empty."""
    from trtnet.cli.model_ref import resolve
    from trtnet.cli.settings import _accepted

    for name in REGISTRY:
        takes, _ = _accepted(resolve(name))
        assert takes, name
