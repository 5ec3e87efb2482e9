"""The registry's published-weights builders: the entry's own, or one read from its source; never a guess."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from trtnet.errors import ConfigError, TrtnetError
from trtnet.zoo import ZooEntry


def test_an_entrys_own_pretrained_builder_is_used():
    entry = ZooEntry(
        "m",
        fn=lambda **kw: None,
        source="transformers.BertModel(BertConfig())",
        torch_model=lambda: "random",
        pretrained=lambda: "published",
    )
    assert entry.pretrained_model() == "published"


@pytest.mark.parametrize(
    "source",
    [
        "transformers.BertModel(BertConfig())",
        "yolov5 7.0 Model('yolov5s.yaml')",
        "torchvision.models.inception_v3 (aux_logits=False)",
    ],
)
def test_a_source_that_does_not_say_how_is_refused(source):
    entry = ZooEntry("m", fn=lambda **kw: None, source=source, torch_model=lambda: None)  # no download is tried
    with pytest.raises(
        TrtnetError,
        match=r"zoo entry 'm': no known way to download the published weights of "
        r".* \(the entry can register a `pretrained` builder\)",
    ):
        entry.pretrained_model()


@pytest.mark.parametrize(
    "source, library, name",
    [
        ("torchvision.models.resnet50", "torchvision", "resnet50"),
        ("timm vit_base_patch16_224", "timm", "vit_base_patch16_224"),
        ("timm.create_model('efficientnet_b0')", "timm", "efficientnet_b0"),
    ],
)
def test_the_source_names_the_library_and_model(monkeypatch, source, library, name):
    """What the fallback would download, seen through the library's builder (replaced: nothing is downloaded)."""
    import sys
    import types

    calls = []
    fake = types.SimpleNamespace(
        models=types.SimpleNamespace(**{name: lambda **kw: calls.append((name, kw))}),
        create_model=lambda n, **kw: calls.append((n, kw)),
    )
    monkeypatch.setitem(sys.modules, library, fake)
    ZooEntry("m", fn=lambda **kw: None, source=source, torch_model=lambda: None).pretrained_model()
    assert calls == [(name, {"weights": "DEFAULT"} if library == "torchvision" else {"pretrained": True})]


def test_a_variant_takes_config_overrides_and_names_an_unknown_field():
    from trtnet.zoo import resnet18

    assert resnet18(weights=None, num_classes=10).state_dict()["fc.weight"].shape == (10, 512)
    with pytest.raises(
        ConfigError,
        match=r"^resnet18: unknown config field 'num_class' \(value 10\); ResNetConfig "
        r"has bottleneck, layers, num_classes$",
    ):
        resnet18(weights=None, num_class=10)
    # A value of the wrong kind names the field (it was numpy's "invalid literal for int()" from deep inside).
    with pytest.raises(ConfigError, match=r"^resnet18: num_classes = 'ten' is not allowed: expected an integer like"):
        resnet18(weights=None, num_classes="ten")
    with pytest.raises(ConfigError, match=r"^resnet18: num_classes = True is not allowed"):
        resnet18(weights=None, num_classes=True)
    assert resnet18(weights=None, num_classes=np.int64(7)).state_dict()["fc.weight"].shape == (7, 512)


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        (
            "resnet18",
            {"layers": [0, 0, 0, 0]},
            r"resnet18: layers = \(0, 0, 0, 0\) is not allowed: expected a non-empty list of positive integers",
        ),
        ("resnet18", {"layers": [-1, 2, 2, 2]}, r"resnet18: layers = \(-1, 2, 2, 2\) is not allowed"),
        ("resnet18", {"layers": ["a", 2, 2, 2]}, r"resnet18: layers = \('a', 2, 2, 2\) is not allowed"),
        ("resnet18", {"num_classes": 0}, r"resnet18: num_classes = 0 is not allowed: expected a positive integer"),
        ("resnet18", {"num_classes": -1}, r"resnet18: num_classes = -1 is not allowed"),
        ("resnet18", {"layers": [2, 2]}, r"ResNetConfig: layers = \[2, 2\]: expected 4 stages$"),
        (
            "swin_t",
            {"depths": [2, 2, 6]},
            r"SwinConfig: depths = \[2, 2, 6\], num_heads = \[3, 6, 12, 24\]: expected 3 stages in each",
        ),
        (
            "convnext_tiny",
            {"dims": [96, 192, 384]},
            r"ConvNeXtConfig: depths = \[3, 3, 9, 3\], dims = \[96, 192, 384\]: expected 4",
        ),
        ("mobilenet_v2", {"width_mult": -1.0}, r"mobilenet_v2: width_mult = -1.0 is not allowed: expected a positive"),
        ("swin_t", {"mlp_ratio": 0.0}, r"swin_t: mlp_ratio = 0.0 is not allowed"),
        (
            "vgg11",
            {"stages": [[-5], [3]]},
            r"vgg11: stages = \(\[-5\], \[3\]\) is not allowed: expected a non-empty list of non-empty lists",
        ),
        ("vgg11", {"stages": [64, 128]}, r"vgg11: stages = \(64, 128\) is not allowed"),
        ("yolov8n", {"image_size": 100}, r"YOLO: image_size = 100 is not allowed: expected a positive multiple of 32"),
    ],
    ids=[
        "no_blocks",
        "negative_depth",
        "a_string_depth",
        "no_classes",
        "negative_classes",
        "two_stages",
        "swin",
        "convnext",
        "negative_width",
        "no_mlp",
        "vgg_negative_width",
        "vgg_flat_stages",
        "yolo_off_stride",
    ],
)
def test_counts_and_sizes_are_positive_and_stages_agree(name, overrides, message):
    """`layers=[0, 0, 0, 0]` built a ResNet of no residual stages (torchvision's holds one block a stage whatever
    it is told), `num_classes=-1` failed inside numpy, a short `layers` as an unpacking error, and ConvNeXt's zip
    cut a longer `depths` silently."""
    from trtnet.zoo import get_entry

    with pytest.raises(ConfigError, match=message):
        get_entry(name).fn(weights=None, **overrides)


def test_numpy_integers_are_counts_too():
    """A list of numpy integers (`list(np.array([1, 1, 1, 1]))`) is a list of counts, as it was before the rule."""
    from trtnet.zoo import resnet18

    model = resnet18(weights=None, layers=list(np.array([1, 1, 1, 1])), num_classes=np.int32(3))
    assert model.state_dict()["fc.weight"].shape == (3, 512) and len(model.layer4) == 1


def test_a_config_that_checks_itself_keeps_its_own_rules():
    """A config with a `__post_init__` (the Hugging Face ones hold each field to its own range, where 0 may be
    allowed) is left to it; one without gets the registry's rule for counts."""
    import dataclasses

    from trtnet.zoo.overrides import _size_like

    @dataclasses.dataclass(frozen=True)
    class Plain:
        window_layers: int = 28

    @dataclasses.dataclass(frozen=True)
    class Checked(Plain):
        def __post_init__(self) -> None:
            pass

    assert _size_like("window_layers", 0, Checked(), "m") == 0
    with pytest.raises(ConfigError, match=r"^m: window_layers = 0 is not allowed: expected a positive integer"):
        _size_like("window_layers", 0, Plain(), "m")


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        (
            "mobilenet_v2",
            {"rows": [[1, 16, 1]]},
            r"mobilenet_v2: rows = \[\[1, 16, 1\]\] is not allowed: expected a non-empty list of rows \[expand, channels, repeats, stride\]",
        ),
        (
            "mobilenet_v2",
            {"rows": [[1, 16, 1, 0]]},
            r"mobilenet_v2: rows\[0\].stride = 0 is not allowed: expected a positive integer",
        ),
        ("mobilenet_v2", {"rows": []}, r"mobilenet_v2: rows = \[\] is not allowed"),
        (
            "efficientnet_b0",
            {"rows": [["xx", 1, 3, 1, 1, 16]]},
            r"rows\[0\].kind = 'xx' is not allowed: expected one of \['ds', 'ir'\]",
        ),
        (
            "efficientnet_b0",
            {"rows": [["ir", 1, 3, 2, 6, 24, -0.5]]},
            r"rows\[0\].se_ratio = -0.5 is not allowed: expected a positive",
        ),
        (
            "yolov8n",
            {"rows": [[-1, 1, "Conv", [64, 3, 2]]]},
            r"yolov8n: rows cannot be set from values: its rows name module classes",
        ),
        (
            "yolov8n",
            {"nms": {"max_det": 0}},
            r"yolov8n: nms: NMSOptions: max_det must be an integer from 1 to 3840, got 0",
        ),
        ("yolov5s", {"nms": {"iou": "high"}}, r"yolov5s: nms.iou = 'high' is not allowed: expected a number"),
        (
            "yolov5s",
            {"nms": {"top": 5}},
            r"yolov5s: nms = \{'top': 5\} is not allowed: expected null or an object of iou, score",
        ),
        ("yolov5s", {"nms": True}, r"yolov5s: nms = True is not allowed"),
    ],
    ids=[
        "short_row",
        "zero_stride",
        "no_rows",
        "unknown_block",
        "negative_se",
        "yolo_rows",
        "nms_max_det",
        "nms_iou",
        "nms_field",
        "nms_true",
    ],
)
def test_tables_and_options_are_checked_field_by_field(name, overrides, message):
    """A stage table set from values (`--set rows=[[1,16,1,1]]`: JSON lists) reached the model as plain lists
    and failed as "'list' object has no attribute 'channels'"; `--set nms={"max_det":5}` as an internal error."""
    from trtnet.zoo import get_entry

    with pytest.raises(ConfigError, match=message):
        get_entry(name).fn(weights=None, **overrides)


def test_a_table_and_an_nms_set_from_values_become_the_configs_own_records():
    from trtnet.ops.detection import NMSOptions
    from trtnet.zoo.efficientnet import EfficientNetConfig
    from trtnet.zoo.mobilenet import MobileNetV2Config
    from trtnet.zoo.overrides import checked_setting as _setting
    from trtnet.zoo.yolov8 import YOLOConfig

    rows = _setting("rows", [[1, 16, 1, 1], [6, 24, 2, 2]], MobileNetV2Config(), "m")
    assert [tuple(r) for r in rows] == [(1, 16, 1, 1), (6, 24, 2, 2)] and rows[1].channels == 24
    (row,) = _setting("rows", [["ds", 1, 3, 1, 1, 16]], EfficientNetConfig(), "e")
    assert row.se_ratio == 0.25 and row.kind == "ds"  # a trailing field with a default may be left out
    yolo = YOLOConfig(0.33, 0.25, 1024)
    assert _setting("nms", {"max_det": 5, "iou": 1}, yolo, "y") == NMSOptions(iou=1.0, max_det=5)
    assert _setting("nms", None, yolo, "y") is None


def test_a_family_registers_each_variant_once():
    from trtnet.zoo import register_variant, resnet

    with pytest.raises(TrtnetError, match=r"zoo entry 'resnet18' is registered twice"):
        register_variant(
            "resnet18",
            resnet.ResNet,
            resnet.ResNetConfig((2, 2, 2, 2), False),
            "torchvision.models.resnet18",
            lambda: None,
        )


@dataclasses.dataclass(frozen=True)
class _Head:
    dim: int
    dropout: float | None = None


@dataclasses.dataclass(frozen=True)
class _UserConfig:
    width: int = 8
    head: _Head | None = None
    norm: Unresolvable | None = None  # noqa: F821  (a name imported only for type checkers)


def test_optional_fields_of_a_users_config():
    """A user's config annotated with a name only type checkers import made every override fail with a NameError
    from typing; a nested dataclass with a required field (or a None default) was refused as "expected a
    _MISSING_TYPE", or failed with an untyped TypeError."""
    from trtnet.zoo.overrides import checked_setting as _setting

    config = _UserConfig()
    assert _setting("width", 16, config, "u") == 16
    assert _setting("norm", "anything", config, "u") == "anything"  # its type is unknown: passed as given
    assert _setting("head", {"dim": 4}, config, "u") == _Head(4)
    assert _setting("head", {"dim": 4, "dropout": 0.1}, config, "u") == _Head(4, 0.1)
    with pytest.raises(ConfigError, match=r"^u: head: .*missing 1 required positional argument: 'dim'"):
        _setting("head", {}, config, "u")
    with pytest.raises(ConfigError, match=r"^u: width = 'four' is not allowed"):
        _setting("width", "four", config, "u")


def test_a_quoted_name_inside_a_real_annotation_resolves():
    """A config written without `from __future__ import annotations`, its field `Optional["_Head"]`: the quoted
    name was left unresolved, and a mapping reached the model unchecked and unconverted; so it was when another
    field named a type the module imports only for type checkers. A bare `_Head` field is a dataclass field too."""
    import typing

    from trtnet.zoo.overrides import checked_setting

    fields = [
        ("head", typing.Optional["_Head"], dataclasses.field(default=None)),
        ("bare", _Head, dataclasses.field(default=None)),
        ("scale", "Optional[Decimal]", dataclasses.field(default=None)),  # Decimal: never imported here
    ]
    plain = dataclasses.make_dataclass("Plain", fields, frozen=True, namespace={"__module__": __name__})
    for key in ("head", "bare"):
        assert checked_setting(key, {"dim": 4}, plain(), "p") == _Head(4)
        with pytest.raises(ConfigError, match=rf"^p: {key}: .*missing 1 required positional argument: 'dim'"):
            checked_setting(key, {}, plain(), "p")
    assert checked_setting("scale", "0.5", plain(), "p") == "0.5"  # its type is unknown: passed as given


def test_rows_are_checked_for_what_their_blocks_build():
    """Rows that passed field by field but built what the sources do not (an even kernel, stride 3, an expansion
    a depthwise-separable block ignores), or counts past int32 that failed inside numpy."""
    from trtnet.zoo import get_entry

    cases = [
        (
            "efficientnet_b0",
            [["ir", 2, 4, 1, 6, 16]],
            r"rows\[0\] = \['ir', 2, 4, 1, 6, 16, 0.25\] is not allowed: kernel 4",
        ),
        ("efficientnet_b0", [["ds", 1, 3, 1, 6, 16]], r"a 'ds' block has no expansion \(expand 6: 1\)"),
        ("mobilenet_v2", [[1, 16, 1, 5]], r"rows\[0\] = \[1, 16, 1, 5\] is not allowed: stride 5: 1 or 2"),
        ("mobilenet_v2", (r for r in [[1, 16, 1, 1]]), r"rows = <generator"),  # read up by a check, then empty
        ("mobilenet_v2", {(1, 16, 1, 1)}, r"rows = \{\(1, 16, 1, 1\)\} is not allowed"),  # a set has no order
    ]
    for name, rows, message in cases:
        with pytest.raises(ConfigError, match=message):
            get_entry(name).fn(weights=None, rows=rows)
    with pytest.raises(
        ConfigError, match=r"num_classes = 10000000000 is not allowed: expected a positive integer \(at"
    ):
        get_entry("resnet18").fn(weights=None, num_classes=10**10)
