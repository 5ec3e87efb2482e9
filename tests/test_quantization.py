"""int8/fp8 networks: Q/DQ placement, calibration (methods, determinism, the JSON file), the quantized network
in the interpreter against numpy, CPU engine builds, and the command line.

A small residual network written with the DSL keeps these to seconds; `scripts/quant_accuracy.py` measures the
zoo's benchmark models.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import trtnet
from trtnet import nn, ops
from trtnet.backend import get_trt
from trtnet.cli import main
from trtnet.errors import CalibrationError, NetworkError
from trtnet.interpreter.checks import layer_type_name
from trtnet.nn.module import Input
from trtnet.quant.histogram import Histogram, choose_amax
from trtnet.quant.measured import weights_fingerprint
from trtnet.quant.ranges import Calibration
from trtnet.weights import init_random

RNG = np.random.default_rng(7)


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        nn.fold_bn(self.conv1, self.bn1)
        nn.fold_bn(self.conv2, self.bn2)

    def forward(self, x):
        return ops.relu(self.bn2(self.conv2(ops.relu(self.bn1(self.conv1(x))))) + x)


class Tiny(nn.Module):
    """stem conv -> residual block -> pool -> LayerNorm -> linear -> softmax -> linear head."""

    def __init__(self) -> None:
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = Block(8)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 16)
        self.head = nn.Linear(16, 5)

    def inputs(self):
        return [Input("x", (3, 8, 8))]

    def forward(self, x):
        y = ops.global_avg_pool2d(self.block(ops.relu(self.stem(x)))).flatten(1)
        return self.head(ops.softmax(self.fc(self.norm(y)), -1))


def tiny() -> Tiny:
    model = Tiny()
    init_random(model, seed=3)
    return model


def batches(n: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(n)]


def producer_types(network) -> dict[str, str]:
    return {
        network.get_layer(i).get_output(0).name: layer_type_name(network.get_layer(i))
        for i in range(network.num_layers)
    }


# -- calibration methods on known data ----------------------------------------------------------------------


def test_methods_clip_an_outlier_and_max_keeps_it():
    x = np.concatenate([RNG.uniform(-1, 1, 100_000), [100.0]])
    h = Histogram(2048, with_hist=True)
    h.add(x[:50_000])
    h.add(x[50_000:])  # the second batch widens the histogram with bins of the same width
    assert choose_amax(h, "max") == 100.0
    width = 100.0 / 2048
    assert 0.99 <= choose_amax(h, "percentile", 99.9) <= 1.0 + 2 * width
    assert 0.5 < choose_amax(h, "entropy") < 1.0 + 2 * width


def test_a_histogram_whose_first_batch_is_tiny_merges_bins_and_stays_exact():
    """A first batch 1e-6 of a later one asked for 2e9 bins of its width (a MemoryError; 1e-9: 15 TiB). Past
    MAX_BINS adjacent bins merge: the counts are those of the coarser width exactly, and every sample is counted."""
    from trtnet.quant.histogram import MAX_BINS

    first, later = RNG.uniform(0, 1e-6, 1000), RNG.uniform(-1, 1, 100_000)
    h = Histogram(2048, with_hist=True)
    h.add(first)
    h.add(later)
    assert len(h.counts) <= MAX_BINS and h.counts.sum() == first.size + later.size
    # The first batch's bins (its largest value in the last of 2048), merged 2**k to one; the later batch's at
    # the final width.
    w0 = first.max() / 2048
    k = int(round(np.log2(h.width / w0)))
    assert h.width == w0 * 2**k
    want = np.bincount(np.minimum((first / w0).astype(np.int64), 2047) >> k, minlength=len(h.counts))
    want += np.bincount((np.abs(later) / h.width).astype(np.int64), minlength=len(h.counts))
    np.testing.assert_array_equal(h.counts, want)
    assert 0.99 <= choose_amax(h, "percentile", 99.9) <= 1.0


def test_mse_clips_a_gaussian_below_its_max():
    # The squared error of 8-bit uniform quantization of N(0, 1) is smallest near 4 sigma (Banner et al.,
    # 2019), below the largest of 200 000 draws (about 4.9); fp8's relative precision favours less clipping.
    h = Histogram(2048, with_hist=True)
    h.add(RNG.standard_normal(200_000))
    int8, fp8 = choose_amax(h, "mse"), choose_amax(h, "mse", fmt="fp8")
    assert 3.0 < int8 < h.amax - 0.3
    assert int8 <= fp8 <= h.amax


def test_histogram_does_not_depend_on_how_the_data_is_split():
    x = np.abs(RNG.standard_normal(20_000))
    one = Histogram(2048, True)
    one.add(x[:5000])
    one.add(x[5000:])
    two = Histogram(2048, True)
    two.add(x[:5000])
    for part in np.array_split(x[5000:], 7):
        two.add(part)
    np.testing.assert_array_equal(one.counts, two.counts)
    assert choose_amax(one, "percentile") == choose_amax(two, "percentile")


# -- calibrate(): keys, determinism, the file ----------------------------------------------------------------


def test_calibration_keys_are_layer_names_and_the_last_layer_is_kept():
    cal = trtnet.calibrate(tiny(), batches(), "max")
    assert list(cal.amax) == [
        "stem/conv",
        "block.conv1/conv",
        "block.conv2/conv",
        "block/sum",
        "fc/matmul",
        "head/matmul",
    ]
    assert cal.keep == {"head/matmul": "last layer"}
    # max: the largest magnitude of the stem's input (the network input itself) over every batch
    assert cal.amax["stem/conv"] == max(float(np.abs(b).max()) for b in batches())
    # the residual input of the add is the block's input, the tensor block.conv1 quantizes too
    assert cal.amax["block/sum"] == cal.amax["block.conv1/conv"]
    assert cal.meta == {
        "model": "Tiny",
        "batches": 3,
        "samples": 6,
        "precision": "int8",
        "inputs": {"x": {"shapes": [list(batches()[0].shape[1:])], "dtype": "float32"}},
        "weights": weights_fingerprint(tiny()),
    }
    first = trtnet.calibrate(tiny(), batches(), "max", keep=("first", "last", "fc/matmul"))
    assert first.keep == {"stem/conv": "first layer", "fc/matmul": "kept by name", "head/matmul": "last layer"}
    # One name as a string is that name (it was split into the names 'l', 'a', 's', 't').
    assert trtnet.calibrate(tiny(), batches(), "max", keep="first").keep == {"stem/conv": "first layer"}
    first = trtnet.calibrate(tiny(), batches(), "max", keep=(k for k in ["first"]), bins=np.int64(64))
    assert first.keep == {"stem/conv": "first layer"}  # a generator read once; numpy's integers are integers
    assert trtnet.calibrate(tiny(), batches(), "percentile", percentile=np.float32(99.5)).method == "percentile"

    def never():  # keep is refused before any batch is measured
        raise AssertionError("measured")
        yield

    with pytest.raises(CalibrationError, match="keep must be layer names"):
        trtnet.calibrate(tiny(), never(), "max", keep=5)


@pytest.mark.parametrize(
    "options, said",
    [
        (dict(batches=5), r"batches must be an iterable of batches \(arrays or dicts\), not int"),
        (dict(batches=None), r"batches must be an iterable of batches \(arrays or dicts\), not NoneType"),
        (dict(model=None), r"calibrate takes a trtnet model \(a Module\), not NoneType"),
        (dict(percentile="99"), r"percentile must be a number in \(0, 100\], not '99'"),
        (dict(bins=0), r"bins must be a whole number >= 1, not 0"),
        (dict(bins=10.5), r"bins must be a whole number >= 1, not 10.5"),
        (dict(keep=None), r"keep must be layer names or rules"),
    ],
)
def test_bad_calibrate_arguments_are_calibration_errors(options, said):
    """Each was a TypeError, ValueError, ZeroDivisionError or AttributeError from deep inside."""
    arguments = dict(model=tiny(), batches=batches(), method="percentile", **{"keep": ("last",)})
    arguments.update(options)
    with pytest.raises(CalibrationError, match=said):
        trtnet.calibrate(arguments.pop("model"), arguments.pop("batches"), arguments.pop("method"), **arguments)


@pytest.mark.parametrize("method", ["max", "percentile", "entropy", "mse"])
def test_calibration_is_deterministic_and_round_trips(tmp_path, method):
    a = trtnet.calibrate(tiny(), batches(), method)
    b = trtnet.calibrate(tiny(), batches(), method)
    assert a.to_json() == b.to_json()
    path = a.save(tmp_path / "scales.json")
    loaded = Calibration.load(path)
    assert loaded == a and loaded.to_json() == a.to_json()
    assert json.loads(path.read_text())["method"] == method


def test_bad_calibration_files_are_refused(tmp_path):
    bad = tmp_path / "bad.json"
    cases = {
        "[1, 2": "not JSON",
        '{"format": "x"}': "not a trtnet calibration file",
        '{"format": "trtnet-calibration", "version": 9, "method": "max", "amax": {}}': "version 9",
        '{"format": "trtnet-calibration", "version": 1, "method": "max", "amax": {"a/conv": -1}}': r"amax of 'a/conv' is -1, not a number from 0 to 3.4e38",
    }
    # Each recorded field of the wrong kind: some skipped the checks that tie a file to its measurement.
    head = '{"format": "trtnet-calibration", "version": 1, "method": "max", "amax": {"a/conv": 1.0}'
    cases.update(
        {
            head.replace('"max"', '"zzz"') + "}": r'"method" is \'zzz\', not one of max, percentile',
            head.replace("1.0", "1e300") + "}": r"amax of 'a/conv' is 1e\+300, not a number from 0 to 3.4e38",
            head + ', "precision": "fp4"}': r'"precision" is "fp4", not int8 or fp8',
            head + ', "model": 5}': r'"model" is 5, not a string',
            head + ', "samples": -1}': r'"samples" is -1, not a whole number >= 1',
            head + ', "batches": 1' + "0" * 400 + "}": r'"batches" is 1000.*, not a whole number >= 1',
            head + ', "percentile": 0}': r'"percentile" is 0, not a number in \(0, 100\]',
            head + ', "weights": 5}': r'"weights" is 5, not a fingerprint',
            head + ', "inputs": [1]}': r'"inputs" is \[1\], not an object of',
            head + ', "inputs": {"x": {"shapes": [[3, "a"]]}}}': r'"inputs" is .*, not an object of',
            # A 400-digit integer raised OverflowError (exit 3); empty records skipped the checks silently:
            head.replace("1.0", "1" + "0" * 400) + "}": r"amax of 'a/conv' is 1000.*, not a number from 0 to 3.4e38",
            head.replace('"max"', '"percentile"') + ', "percentile": 1' + "0" * 400 + "}": r'"percentile" is 1000',
            head + ', "weights": ""}': r'"weights" is "", not a fingerprint \(64 hex digits\)',
            head + ', "inputs": {}}': r'"inputs" is \{\}, not an object of',
            head + ', "inputs": {"x": {"shapes": []}}}': r'"inputs" is .*, not an object of',
            head.replace('"version": 1', '"version": true') + "}": r"version True, this trtnet reads version 1",
        }
    )
    for text, message in cases.items():
        bad.write_text(text)
        with pytest.raises(CalibrationError, match=message):
            Calibration.load(bad)
    # A file from another model: the first layer without a range is named.
    other = Calibration({"conv1/conv": 1.0}, source="other.json")
    with pytest.raises(NetworkError, match=r"calibration file other.json has no range for layer 'stem/conv'"):
        trtnet.emit(tiny(), 2, precision="int8", calibration=other)
    with pytest.raises(NetworkError, match="precision 'int8' needs activation ranges"):
        trtnet.emit(tiny(), 2, precision="int8")
    with pytest.raises(CalibrationError, match="calibration method must be one of"):
        trtnet.calibrate(tiny(), batches(), "minmax")
    with pytest.raises(CalibrationError, match=r"keep names \['nope/conv'\]"):
        trtnet.calibrate(tiny(), batches(), keep=("nope/conv",))
    with pytest.raises(CalibrationError, match="no calibration batches"):
        trtnet.calibrate(tiny(), [])


def test_a_kept_layer_the_file_names_wrong_is_refused_like_keep(tmp_path):
    """The file's "keep", edited by hand to a layer the model lacks, is refused as keep= is (it left the layer it
    meant quantized, silently), wherever the calibration is applied: emit, build and reference."""
    path = trtnet.calibrate(tiny(), batches(), "max").save(tmp_path / "tiny.json")
    doc = json.loads(path.read_text())
    doc["keep"] = {"head/matmull": "last layer", "nope": "hand-edited"}
    path.write_text(json.dumps(doc))
    message = (
        f"calibration file {path}: \"keep\" names 'head/matmull' (did you mean 'head/matmul'?), 'nope', which "
        "are not quantized layers of this network"
    )
    for apply in (
        lambda cal: trtnet.emit(tiny(), 2, precision="int8", calibration=cal),
        lambda cal: trtnet.build(tiny(), 2, precision="int8", calibration=cal, cache=False),
        lambda cal: trtnet.reference(tiny(), batches()[0], precision="int8", calibration=cal),
    ):
        with pytest.raises(CalibrationError) as e:
            apply(Calibration.load(path))
        assert str(e.value) == message
    unlike = Calibration(Calibration.load(path).amax, keep={"zzz": "x"})  # no close name: some layers are shown
    with pytest.raises(
        CalibrationError,
        match=r"^the calibration: \"keep\" names 'zzz', which is not a quantized layer of this network "
        r"\(those are e.g. \['block.conv1/conv', ",
    ):
        trtnet.emit(tiny(), 2, precision="int8", calibration=unlike)
    rule = Calibration(Calibration.load(path).amax, keep={"last": "x"})  # --keep's rule, written by hand
    with pytest.raises(
        CalibrationError,
        match=r"; 'last' is a rule of calibrate's --keep, written into the file as the layers it chose",
    ):
        trtnet.emit(tiny(), 2, precision="int8", calibration=rule)


# -- placement ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_qdq_sits_at_weighted_layer_inputs_and_the_residual_add(precision):
    trt = get_trt()
    cal = trtnet.calibrate(tiny(), batches(1))
    net = trtnet.emit(tiny(), 2, precision=precision, calibration=cal).network
    made_by = producer_types(net)
    layers = {net.get_layer(i).name: net.get_layer(i) for i in range(net.num_layers)}
    for name in ("stem/conv", "block.conv1/conv", "block.conv2/conv", "fc/matmul"):
        layer = layers[name]
        assert [made_by.get(layer.get_input(i).name) for i in (0, 1)] == ["DEQUANTIZE", "DEQUANTIZE"], name
    head = layers["head/matmul"]  # kept in fp16: no Q/DQ on its input or weights
    assert [made_by.get(head.get_input(i).name) for i in (0, 1)] == ["CAST", "CONSTANT"]  # softmax in fp32, cast
    add = layers["block/sum"]  # conv2's output + the residual input, which is the block input's Q/DQ (shared)
    a, b = add.get_input(0), add.get_input(1)
    assert made_by[a.name] == "CONVOLUTION" and b.name == layers["block.conv1/conv"].get_input(0).name
    qs = [layers[n] for n in layers if layer_type_name(layers[n]) == "QUANTIZE"]
    assert {q.get_output(0).dtype for q in qs} == {getattr(trt, precision)}
    # 4 quantized layers x (activation + weights), one activation pair shared by conv1 and the add
    assert len(qs) == 8
    # LayerNorm and softmax see no quantized input
    assert all(
        layer_type_name(layers[n]) not in ("NORMALIZATION", "SOFTMAX")
        or made_by.get(layers[n].get_input(0).name) != "DEQUANTIZE"
        for n in layers
    )


def test_fp16_and_fp32_networks_are_unchanged_by_calibration_points():
    net = trtnet.emit(tiny(), 2, precision="fp16")
    assert "QUANTIZE" not in set(producer_types(net.network).values())


# -- the quantized network in the interpreter ------------------------------------------------------------------


class OneConv(nn.Module):
    def __init__(self) -> None:
        self.conv = nn.Conv2d(4, 6, 3, padding=1)

    def inputs(self):
        return [Input("x", (4, 5, 5))]

    def forward(self, x):
        return self.conv(x)


def _numpy_fake_quant(x: np.ndarray, amax: np.ndarray, axis: int | None) -> np.ndarray:
    """Symmetric int8 fake quantization written out in numpy, independently of trtnet."""
    scale = (np.asarray(amax, np.float64) / 127).astype(np.float32)
    if axis is not None:
        scale = scale.reshape([-1] + [1] * (x.ndim - 1))
    return np.clip(np.rint(x.astype(np.float32) / scale), -128, 127) * scale


def test_int8_conv_in_the_interpreter_matches_numpy():
    model = OneConv()
    init_random(model, seed=1)
    x = RNG.standard_normal((2, 4, 5, 5)).astype(np.float32)
    cal = trtnet.calibrate(model, [x], keep=())
    (y,) = trtnet.reference(model, x, precision="int8", calibration=cal)
    w = model.conv.weight.data
    xq = _numpy_fake_quant(x.astype(np.float16), np.abs(x).max(), None).astype(np.float16).astype(np.float64)
    wq = _numpy_fake_quant(w, np.abs(w.reshape(6, -1)).max(1), 0).astype(np.float16).astype(np.float64)
    xp = np.pad(xq, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros((2, 6, 5, 5))
    for i in range(5):
        for j in range(5):
            want[:, :, i, j] = np.einsum("nchw,ochw->no", xp[:, :, i : i + 3, j : j + 3], wq)
    want += model.conv.bias.data.astype(np.float16).astype(np.float64)[None, :, None, None]
    np.testing.assert_allclose(y, want, rtol=2e-3, atol=2e-3)  # fp16 output rounding only
    (fp32,) = trtnet.reference(model, x)
    assert np.abs(y - fp32).max() > 1e-3  # the quantization is really there


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_quantized_network_stays_close_to_fp32(precision):
    model, x = tiny(), batches(1, seed=5)[0]
    cal = trtnet.calibrate(model, batches(), precision=precision)
    (fp32,) = trtnet.reference(model, x)
    (q,) = trtnet.reference(model, x, precision=precision, calibration=cal)
    cos = float(np.dot(q.ravel(), fp32.ravel()) / np.linalg.norm(q) / np.linalg.norm(fp32))
    assert cos > 0.99, cos


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_quantized_engines_build_on_the_cpu(precision):
    cal = trtnet.calibrate(tiny(), batches(1))
    engine = trtnet.build(tiny(), 2, precision=precision, calibration=cal, cache=False)
    assert engine.precision == precision and len(engine.plan) > 0


# -- command line ---------------------------------------------------------------------------------------------


def test_cli_calibrate_writes_the_file_build_reads(tmp_path, capsys):
    data = tmp_path / "images.npz"
    np.savez(data, x=RNG.standard_normal((3, 3, 224, 224)).astype(np.float32))
    out = tmp_path / "scales.json"
    assert main(["calibrate", "resnet18", "--data", str(data), "--batch", "2", "-o", str(out)]) == 0
    cal = Calibration.load(out)
    assert cal.meta["samples"] == 3 and cal.meta["batches"] == 2 and "conv1/conv" in cal.amax
    assert "resnet18: 29 ranges (max) from 3 samples in 2 batches; 1 layer kept in fp16" in capsys.readouterr().out
    assert main(["build", "resnet18", "--precision", "int8", "--batch", "1", "-o", str(tmp_path / "r.plan")]) == 2
    assert "--precision int8 needs --calibration FILE" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    np.savez(bad, y=np.zeros((1, 3, 224, 224), np.float32), z=np.zeros(1))
    assert main(["calibrate", "resnet18", "--data", str(bad), "-o", str(tmp_path / "s2.json")]) == 2
    assert "has arrays ['y', 'z'], the model takes ['x']" in capsys.readouterr().err
    assert not (tmp_path / "s2.json").exists()
    # As the ONNX route refuses them: a labels array beside the images, a single value (an internal error before)
    for arrays, said in (
        (dict(x=np.zeros((1, 3, 224, 224), np.float32), labels=np.zeros(1)), "has arrays ['labels', 'x']"),
        (dict(x=np.float32(1)), "array 'x' is a single value, not a batch of samples"),
    ):
        np.savez(bad, **arrays)
        assert main(["calibrate", "resnet18", "--data", str(bad), "-o", str(tmp_path / "s2.json")]) == 2
        assert said in capsys.readouterr().err
    assert not (tmp_path / "s2.json").exists()


# -- issue 20: a calibration is tied to what it measured ---------------------------------------------------------


def test_a_calibration_of_other_weights_or_shapes_is_refused_unless_reused_on_purpose(tmp_path):
    cal = trtnet.calibrate(tiny(), batches(), "max")
    other = Tiny()
    init_random(other, seed=4)
    with pytest.raises(CalibrationError, match=r"measured on other weights than these .* reuse_calibration=True"):
        trtnet.build(other, 2, precision="int8", calibration=cal, cache=False)
    trtnet.build(other, 2, precision="int8", calibration=cal, cache=False, reuse_calibration=True)
    rng = np.random.default_rng(1)
    big = trtnet.calibrate(tiny(), [rng.standard_normal((2, 3, 16, 16)).astype(np.float32)], "max")
    with pytest.raises(
        CalibrationError, match=r"input 'x' of per-sample shape \[3, 16, 16\]; the network takes \[3, 8, 8\]"
    ):
        trtnet.build(tiny(), 2, precision="int8", calibration=big, cache=False)
    trtnet.build(tiny(), 2, precision="int8", calibration=cal, cache=False)  # its own: accepted


def test_emit_and_reference_refuse_a_calibration_of_other_weights_as_build_does():
    """emit and reference checked nothing: an emitted network built by build(Network), or run in the
    interpreter, used ranges measured on other weights without a word."""
    cal = trtnet.calibrate(tiny(), batches(), "max")
    other = Tiny()
    init_random(other, seed=4)
    x = batches()[0]
    for call in (lambda **k: trtnet.emit(other, 2, **k), lambda **k: trtnet.reference(other, x, **k)):
        with pytest.raises(CalibrationError, match=r"measured on other weights than these"):
            call(precision="int8", calibration=cal)
        call(precision="int8", calibration=cal, reuse_calibration=True)
    with pytest.raises(NetworkError, match=r"reuse_calibration 'yes': expected True or False"):
        trtnet.emit(other, 2, precision="int8", calibration=cal, reuse_calibration="yes")


def test_mse_ranges_chosen_for_one_format_are_refused_for_the_other_unless_reused(tmp_path):
    """mse picks each clipping for its format's grid (conv1 of a ResNet: 4.07 for int8, 4.49 for fp8): an int8
    file built an fp8 engine without a word. max and percentile ranges do not depend on the format."""
    for method in ("max", "mse"):
        cal = trtnet.calibrate(tiny(), batches(), method, precision="int8")
        assert cal.meta["precision"] == "int8"
        trtnet.build(tiny(), 2, precision="int8", calibration=cal, cache=False)  # what it was made for
        if method == "max":
            trtnet.build(tiny(), 2, precision="fp8", calibration=cal, cache=False)
            continue
        with pytest.raises(
            CalibrationError,
            match=r"the mse method chose its ranges for int8, this network is fp8; calibrate for fp8 \(--method mse --precision fp8\)",
        ):
            trtnet.build(tiny(), 2, precision="fp8", calibration=cal, cache=False)
        trtnet.build(tiny(), 2, precision="fp8", calibration=cal, cache=False, reuse_calibration=True)


def test_ranges_of_a_larger_model_are_refused_even_where_they_cover_every_layer(tmp_path):
    """ResNet-34's layer names include all of ResNet-18's: its file had a range for each and built a ResNet-18
    without a word, with --reuse-calibration or when the file is one from before the inputs and weights were
    recorded."""
    from trtnet.zoo import resnet18, resnet34

    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    big = resnet34()
    big.image_size = 32
    cal = trtnet.calibrate(big, [x])
    path = tmp_path / "r34.json"
    old = {k: v for k, v in json.loads(cal.to_json()).items() if k not in ("inputs", "weights")}
    path.write_text(json.dumps(old))
    small = resnet18()
    small.image_size = 32
    message = r"has ranges for layers this network does not have \('layer1.2.conv1/conv', .*another model"
    for given, reuse in ((cal, True), (Calibration.load(path), False)):
        with pytest.raises(NetworkError, match=message):
            trtnet.emit(small, 2, precision="int8", calibration=given, reuse_calibration=reuse)


def test_entropy_ranges_are_int8_ranges(tmp_path, capsys):
    """The entropy method (TensorRT's int8 calibrator) chooses each clipping for int8's 128 levels: asked for fp8
    it is refused, and an entropy file builds fp8 only when reused on purpose (it built one without a word)."""
    with pytest.raises(CalibrationError, match=r"entropy method chooses ranges for int8's 128 levels; for fp8 use"):
        trtnet.calibrate(tiny(), batches(), "entropy", precision="fp8")
    cal = trtnet.calibrate(tiny(), batches(), "entropy")
    trtnet.build(tiny(), 2, precision="int8", calibration=cal, cache=False)
    path = tmp_path / "e.json"
    cal.save(path)
    with pytest.raises(
        CalibrationError,
        match=rf"file {path}: the entropy method chose its ranges for int8, this network is fp8; calibrate for fp8 "
        r"\(--method max, percentile or mse --precision fp8\)",
    ):
        trtnet.build(tiny(), 2, precision="fp8", calibration=Calibration.load(path), cache=False)
    trtnet.build(tiny(), 2, precision="fp8", calibration=cal, cache=False, reuse_calibration=True)
    args = ["calibrate", "resnet18", "--data", str(tmp_path / "absent.npz"), "--method", "entropy"]
    assert main([*args, "--precision", "fp8", "-o", str(path)]) == 2  # refused before the data is looked for
    assert "entropy method chooses ranges for int8's" in capsys.readouterr().err


def test_cli_refuses_a_calibration_that_does_not_fit(tmp_path, capsys):
    small = tmp_path / "small.npz"
    np.savez(small, x=RNG.standard_normal((2, 3, 32, 32)).astype(np.float32))
    assert main(["calibrate", "resnet18", "--data", str(small), "-o", str(tmp_path / "s.json")]) == 2
    assert "array 'x' has samples of shape [3, 32, 32], ResNet takes [3, 224, 224]" in capsys.readouterr().err
    cal = tmp_path / "tiny.json"
    trtnet.calibrate(tiny(), batches(), "max").save(cal)
    plan = tmp_path / "r.plan"
    assert main(["build", "resnet18", "--precision", "fp16", "--calibration", str(cal), "-o", str(plan)]) == 2
    assert "--precision fp16 uses no activation ranges" in capsys.readouterr().err
    assert main(["build", "resnet18", "--precision", "int8", "--calibration", str(cal), "-o", str(plan)]) == 2
    assert "measured on another model" in capsys.readouterr().err
    assert not plan.exists()


# -- on a GPU ---------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_quantized_engine_matches_the_interpreters_quantized_network(precision):
    """The engine and the interpreter run the same Q/DQ arithmetic, so they agree far more closely than either
    agrees with fp32 (resnet18 int8 vs fp32: relative error 1.7e-2 here). What may differ: TensorRT requantizes
    a fused convolution's int32 accumulator straight to int8, where the interpreter rounds the fp16 output
    first, which moves a few values by one quantization step; hence 3e-3, a sixth of the quantization error."""
    from trtnet.parity import cosine, rel_error
    from trtnet.runtime.cudart import compute_capability
    from trtnet.zoo import resnet18

    if precision == "fp8" and int((compute_capability() or "sm_0")[3:]) < 89:
        pytest.skip(f"fp8 kernels need compute capability 8.9 or later; this GPU is {compute_capability()}")
    model = resnet18(weights=None)
    x = np.random.default_rng(11).standard_normal((2, 3, 224, 224)).astype(np.float32)
    cal = trtnet.calibrate(
        model,
        [np.random.default_rng(s).standard_normal((2, 3, 224, 224)).astype(np.float32) for s in (1, 2)],
        precision=precision,
    )
    (want,) = trtnet.reference(model, x, precision=precision, calibration=cal)
    (got,) = trtnet.build(model, 2, precision=precision, calibration=cal, cache=False)(x)
    assert rel_error(got, want) <= 3e-3 and cosine(got, want) >= 0.99999, (rel_error(got, want), cosine(got, want))


def test_each_quantized_precision_has_one_format_whose_limit_is_its_types_largest_value():
    # One table for the emitter's Q/DQ scales and the calibrator's arithmetic; its limits are the types' own.
    import ml_dtypes

    from trtnet.dtypes import info
    from trtnet.graph import QUANTIZED
    from trtnet.ops.quantize import FORMATS

    assert tuple(FORMATS) == QUANTIZED
    for precision, fmt in FORMATS.items():
        stored = info(fmt.dtype).numpy
        largest = np.iinfo(stored).max if stored.kind == "i" else ml_dtypes.finfo(stored).max
        assert fmt.qmax == float(largest), precision
        assert getattr(get_trt(), fmt.dtype) == trtnet.dtypes.to_trt(fmt.dtype)
