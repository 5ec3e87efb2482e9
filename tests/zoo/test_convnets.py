"""The convolutional benchmark models end to end, one table: VGG16, MobileNetV2, InceptionV3, EfficientNet-b0,
YOLOv5s. Each source model gets random weights and randomised BatchNorm statistics, its `state_dict()` is saved
to safetensors as a user would, trtnet loads that file strictly, and the interpreter must match PyTorch fp32."""

from __future__ import annotations

import os

import numpy as np
import pytest

import trtnet
from tests.helpers import assert_engine_matches, torch_on_gpu
from trtnet.parity import cosine, export_state, rel_error, torch_forward, torch_model
from trtnet.zoo import REGISTRY, get_entry

torch = pytest.importorskip("torch", reason="torch runs the PyTorch sources of the zoo")
# yolov5's utils import ultralytics, which probes DNS at import time unless told it is offline.
os.environ.setdefault("YOLO_OFFLINE", "1")

# The package each family's source comes from (`make install` installs them all into .venv).
PACKAGES = {
    "vgg": "torchvision",
    "mobilenet": "torchvision",
    "inception": "torchvision",
    "efficientnet": "timm",
    "yolov5": "yolov5.models.yolo",
}


def family(name: str) -> str | None:
    return next((prefix for prefix in PACKAGES if name.startswith(prefix)), None)


def require_source(name: str) -> None:
    """Skip, saying why, when the package of `name`'s PyTorch source is not installed."""
    package = PACKAGES[family(name)]
    pytest.importorskip(package, reason=f"{package} is the PyTorch source of {name}")


# (entry, per-sample input shape, output shape at batch 2, layers (BN folded) at least)
MODELS = [
    ("vgg16", (3, 224, 224), (2, 1000), 40),
    ("mobilenet_v2", (3, 224, 224), (2, 1000), 100),
    ("inception_v3", (3, 224, 224), (2, 1000), 200),
    ("efficientnet_b0", (3, 224, 224), (2, 1000), 200),
    ("yolov5s", (3, 640, 640), (2, 25200, 85), 250),
]
NAMES = [m[0] for m in MODELS]
SPEC = {m[0]: m[1:] for m in MODELS}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """name -> (torch model, safetensors path, input at batch 2, PyTorch fp32 output, trtnet reference output),
    computed once per entry: the interpreter's run is the slow part (VGG16 at batch 2 is ~30 GFLOPs)."""
    cache: dict[str, tuple] = {}

    def get(name: str) -> tuple:
        require_source(name)
        if name not in cache:
            model = torch_model(name, seed=0)
            path = export_state(model, tmp_path_factory.mktemp("w") / f"{name}.safetensors")
            x = np.random.default_rng(1).standard_normal((2, *SPEC[name][0])).astype(np.float32)
            (got,) = trtnet.reference(get_entry(name).fn(weights=path), x)
            cache[name] = model, path, x, torch_forward(model, x)[0], got
        return cache[name]

    return get


def test_benchmark_entries_are_registered():
    assert {n for n, e in REGISTRY.items() if e.benchmark} >= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_matches_source(sources, name):
    _, _, _, want, got = sources(name)
    assert got.shape == want.shape == SPEC[name][1]
    # Random weights must still give a signal worth comparing: finite, and clearly different for two inputs.
    assert np.isfinite(want).all() and np.abs(want[0] - want[1]).max() >= 1e-2 * np.abs(want).max()
    assert rel_error(got, want) <= 1e-4


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", NAMES)
def test_engine_builds_and_serializes(sources, name, precision, tmp_path):
    path = sources(name)[1]
    engine = trtnet.build(get_entry(name).fn(weights=path), batch_size=2, precision=precision)
    saved = engine.save(tmp_path / f"{name}_{precision}.plan")
    assert saved.stat().st_size == len(engine.plan) > 1_000_000
    assert engine.num_layers >= SPEC[name][2]
    assert [(s.name, s.shape) for s in engine.inputs] == [("x", (2, *SPEC[name][0]))]
    assert [(s.name, tuple(s.shape)) for s in engine.outputs] == [
        ("predictions" if name.startswith("yolo") else "logits", SPEC[name][1])
    ]


def test_a_stage_table_set_from_values_matches_torchvision_built_with_it(tmp_path):
    """`rows` set as JSON lists (`--set rows=[[1,16,1,1],[6,24,2,2]]`) means what torchvision's
    `inverted_residual_setting` of the same lists means: same keys, same outputs."""
    require_source("mobilenet_v2")
    import torchvision

    from trtnet.parity import randomize_norm_stats
    from trtnet.zoo import mobilenet_v2
    from trtnet.zoo.sources import he_init

    table = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 40, 1, 2]]
    torch.manual_seed(0)
    source = torchvision.models.mobilenet_v2(inverted_residual_setting=table, num_classes=10)
    he_init(source)  # as the zoo's own source is drawn: torchvision's init lets the signal fade
    randomize_norm_stats(source, 0)
    path = export_state(source.eval(), tmp_path / "small.safetensors")
    x = np.random.default_rng(2).standard_normal((2, 3, 64, 64)).astype(np.float32)
    (got,) = trtnet.reference(mobilenet_v2(weights=path, rows=table, num_classes=10), x)
    (want,) = torch_forward(source, x)
    assert np.abs(want[0] - want[1]).max() >= 1e-2 * np.abs(want).max()
    assert got.shape == (2, 10) and rel_error(got, want) <= 1e-4


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0"])
def test_batchnorm_kept_apart_matches_too(name):
    """fold_bn=False emits every BatchNorm as its own scale layer; both ways match the source."""
    require_source(name)
    model = torch_model(name, seed=3)
    x = np.random.default_rng(4).standard_normal((2, 3, 224, 224)).astype(np.float32)
    (want,) = torch_forward(model, x)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    net = get_entry(name).fn(weights=state)
    folded, apart = trtnet.emit(net, 2), trtnet.emit(net, 2, fold_bn=False)
    num_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert apart.num_layers - folded.num_layers == num_bn
    for fold_bn in (True, False):
        (got,) = trtnet.reference(net, x, fold_bn=fold_bn)
        assert rel_error(got, want) <= 1e-4, f"fold_bn={fold_bn}"


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0"])
def test_fp16_network_in_the_interpreter(sources, name):
    """The fp16 network (fp16 weights and activations, as the fp16 engine gets them) on the CPU, a proxy for the
    GPU check: depthwise convs and squeeze-excitation gates must not lose the signal in half precision."""
    _, path, x, want, _ = sources(name)
    (got,) = trtnet.reference(get_entry(name).fn(weights=path), x, precision="fp16")
    assert cosine(got, want) >= 0.999


def test_inception_v3_at_299(tmp_path):
    require_source("inception_v3")
    model = torch_model("inception_v3", seed=5)
    path = export_state(model, tmp_path / "inception_v3.safetensors")
    x = np.random.default_rng(6).standard_normal((2, 3, 299, 299)).astype(np.float32)
    (want,) = torch_forward(model, x)
    net = get_entry("inception_v3").fn(weights=path)
    (got,) = trtnet.reference(net, x)
    assert rel_error(got, want) <= 1e-4
    engine = trtnet.build(net, batch_size=2, precision="fp16", input_shapes={"x": (3, 299, 299)})
    assert engine.inputs[0].shape == (2, 3, 299, 299) and len(engine.plan) > 1_000_000


def test_yolov5s_confidences_and_boxes_match_separately(sources):
    """Box centres and sizes (up to ~640 px) dominate the overall error measure: the sigmoid confidences are
    checked on their own scale too."""
    _, _, _, want, got = sources("yolov5s")
    assert rel_error(got[..., 4:], want[..., 4:]) <= 1e-4
    assert rel_error(got[..., :4], want[..., :4]) <= 1e-4
    conf = want[..., 4:]
    assert np.abs(conf[0] - conf[1]).max() >= 1e-2 * np.abs(conf).max()  # they follow the input
    assert ((conf < 1e-4) | (conf > 1 - 1e-4)).mean() < 0.01  # and are not saturated


def test_yolov5s_anchors_come_from_the_checkpoint():
    """Doubling `model.24.anchors` doubles the decoded widths and heights and changes nothing else."""
    x = np.random.default_rng(2).standard_normal((1, 3, 64, 64)).astype(np.float32)
    state = get_entry("yolov5s").fn(weights=None).state_dict()
    (got,) = trtnet.reference(get_entry("yolov5s").fn(weights=state), x)
    doubled = dict(state, **{"model.24.anchors": state["model.24.anchors"] * 2})
    (moved,) = trtnet.reference(get_entry("yolov5s").fn(weights=doubled), x)
    assert got.shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 85)
    np.testing.assert_allclose(moved[..., 2:4], got[..., 2:4] * 2, rtol=1e-6)
    np.testing.assert_array_equal(moved[..., [0, 1, 4]], got[..., [0, 1, 4]])


# Every convolutional family member loads its source's state_dict unchanged (keys and shapes, strictly).
FAMILY = sorted(n for n in REGISTRY if family(n))


@pytest.mark.parametrize("name", FAMILY)
def test_family_member_loads_its_source_state_dict(name):
    require_source(name)
    entry = get_entry(name)
    # Meta tensors give shapes without memory or init time (VGG's classifier alone is 120M parameters); YOLOv5's
    # Model runs a forward pass while it is built (to find its strides), which needs real tensors.
    with torch.device("cpu" if family(name) == "yolov5" else "meta"):
        shapes = {k: tuple(v.shape) for k, v in entry.torch_model().state_dict().items()}
    state = {k: np.broadcast_to(np.zeros((), np.float32), s) for k, s in shapes.items()}
    model = entry.fn(weights=state)
    expected = {k for k in shapes if not k.endswith("num_batches_tracked")}
    assert {k for k, _ in model.named_parameters()} == expected


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_engine_matches_torch_on_gpu(sources, name):
    model, path, x, _, _ = sources(name)
    net = get_entry(name).fn(weights=path)
    want = torch_on_gpu(model, x)
    for precision in ("fp32", "fp16"):
        assert_engine_matches(trtnet.build(net, batch_size=2, precision=precision)(x), want, precision)


@pytest.mark.gpu
def test_inception_v3_at_299_engine_matches_torch_on_gpu(tmp_path):
    model = torch_model("inception_v3", seed=5)
    x = np.random.default_rng(6).standard_normal((2, 3, 299, 299)).astype(np.float32)
    net = get_entry("inception_v3").fn(weights=export_state(model, tmp_path / "inception_v3.safetensors"))
    engine = trtnet.build(net, batch_size=2, precision="fp32", input_shapes={"x": (3, 299, 299)})
    assert_engine_matches(engine(x), torch_on_gpu(model, x), "fp32")
