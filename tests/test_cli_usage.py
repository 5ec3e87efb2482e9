"""The command line's usage errors and failures, in-process: one line `trtnet: error: ...` (a second may point
to --help), exit 2 for bad usage; --debug adds a traceback and never changes the exit status; an unusable
cache folder does not fail a build whose -o is fine."""

from __future__ import annotations

import pytest

from trtnet.cli import main


def run(capsys, *argv: str) -> tuple[int, list[str], str]:
    status = main([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.err.splitlines(), out.out


# (argv, the error line: pinned, the --help line)
USAGE = [
    (
        ("build", "resnet18", "--batch", "0"),
        "trtnet: error: argument --batch: '0': expected a batch size >= 1, or min:opt:max with 1 <= min <= opt <= max "
        "(at most 2**31 - 1)",
        "trtnet: see `trtnet build --help`",
    ),
    (
        ("build", "resnet18", "--batch", "8:4:2"),
        "trtnet: error: argument --batch: '8:4:2': expected a batch size >= 1, or min:opt:max with "
        "1 <= min <= opt <= max (at most 2**31 - 1)",
        "trtnet: see `trtnet build --help`",
    ),
    # Past TensorRT's int32 dimensions: was refused only after the weights were loaded, with no --help line.
    (
        ("build", "resnet18", "--batch", "2147483648"),
        "trtnet: error: argument --batch: '2147483648': expected a batch size >= 1, or min:opt:max with "
        "1 <= min <= opt <= max (at most 2**31 - 1)",
        "trtnet: see `trtnet build --help`",
    ),
    (
        ("export-triton", "resnet18", "--repo", "r", "--batch", "1:8:99999999999"),
        "trtnet: error: argument --batch: '1:8:99999999999': expected a batch size >= 1, or min:opt:max with "
        "1 <= min <= opt <= max (at most 2**31 - 1)",
        "trtnet: see `trtnet export-triton --help`",
    ),
    (
        ("summary", "resnet18", "--batch", "2147483648"),
        "trtnet: error: argument --batch: '2147483648': expected a whole number >= 1 (at most 2**31 - 1)",
        "trtnet: see `trtnet summary --help`",
    ),
    (
        ("build", "resnet18", "--batch", "x"),
        "trtnet: error: argument --batch: 'x': expected a batch size (8) or min:opt:max (1:8:32)",
        "trtnet: see `trtnet build --help`",
    ),
    (
        ("build", "resnet18", "--precision", "int4"),
        "trtnet: error: argument --precision: invalid choice: 'int4' (choose from fp32, tf32, fp16, bf16, int8, fp8)",
        "trtnet: see `trtnet build --help`",
    ),
    ((), "trtnet: error: the following arguments are required: COMMAND", "trtnet: see `trtnet --help`"),
    (("build",), "trtnet: error: the following arguments are required: model", "trtnet: see `trtnet build --help`"),
    (
        ("build", "resnet18", "--frobnicate"),
        "trtnet: error: unrecognized arguments: --frobnicate",
        "trtnet: see `trtnet build --help`",  # was `trtnet --help`, which does not list build's options
    ),
    # 0.1's --same-file, gone: what it asked for (PyTorch loads --weights too) is what verify does by default.
    (
        ("verify", "resnet18", "--same-file"),
        "trtnet: error: unrecognized arguments: --same-file",
        "trtnet: see `trtnet verify --help`",
    ),
    # torch refused the seed past 2**63 - 1, numpy a negative one: both were internal errors (exit 3).
    (
        ("export-weights", "resnet18", "--seed", str(2**70)),
        f"trtnet: error: argument --seed: '{2**70}': expected a whole number from 0 to 2**63 - 1",
        "trtnet: see `trtnet export-weights --help`",
    ),
    (
        ("verify", "resnet18", "--seed", "-1"),
        "trtnet: error: argument --seed: '-1': expected a whole number from 0 to 2**63 - 1",
        "trtnet: see `trtnet verify --help`",
    ),
    (
        ("verify", "resnet18", "--against-seed", "x"),
        "trtnet: error: argument --against-seed: 'x': expected a whole number from 0 to 2**63 - 1",
        "trtnet: see `trtnet verify --help`",
    ),
    (
        ("verify", "resnet18", "--batch", "-1"),
        "trtnet: error: argument --batch: '-1': expected a whole number >= 1 (at most 2**31 - 1)",
        "trtnet: see `trtnet verify --help`",
    ),
    # An empty -o was taken as none: the default file was written (export-weights: weights/resnet18.safetensors).
    *[
        (
            (command, *args, "-o", ""),
            "trtnet: error: argument -o/--output: an empty path; leave -o out for the default",
            f"trtnet: see `trtnet {command} --help`",
        )
        for command, *args in (
            ("export-weights", "resnet18"),
            ("build", "resnet18"),
            ("calibrate", "resnet18"),
            ("convert", "resnet18", "r.pth"),
        )
    ],
]


@pytest.mark.parametrize("argv, line, hint", USAGE, ids=[" ".join(u[0]) or "(nothing)" for u in USAGE])
def test_usage_errors_are_one_line_and_exit_2(capsys, argv, line, hint):
    status, err, out = run(capsys, *argv)
    assert status == 2 and out == ""
    # argparse quotes choices with repr() on some Python versions: compare without the quotes around them
    unquoted = "fp32, tf32, fp16, bf16, int8, fp8"
    assert [e.replace("'fp32', 'tf32', 'fp16', 'bf16', 'int8', 'fp8'", unquoted) for e in err] == [line, hint]


@pytest.mark.parametrize(
    "argv",
    [
        ["summary", "resnet18", "--weights"],
        ["build", "resnet18", "--precision", "int8", "--calibration"],
        ["calibrate", "resnet18", "--data"],
        ["summary", "bert_base_uncased", "--config"],
        ["export-triton", "resnet18", "--repo", "r", "--plan"],
        ["export-triton", "resnet18", "--repo"],
        ["cache", "--dir"],
        ["check", "m.onnx", "--inputs"],
        ["check", "m.onnx", "--save-outputs"],
        ["check", "m.onnx", "--load-outputs"],
        ["generate", "llama", "--config"],
        ["generate", "llama", "--config", "c.json", "--tokenizer"],
        ["convert", "resnet18"],  # positionals: the checkpoint, an ONNX file to check
        ["check"],
    ],
    ids=lambda argv: " ".join(argv[::2] if argv[0] != "cache" else argv),
)
def test_an_empty_path_is_refused_by_name(capsys, argv):
    """`--weights ''` was read as the current folder (". cannot read"), `--calibration ''` as no calibration and
    `cache --dir ''` listed the current folder: every file or folder option refuses an empty path."""
    assert main([*argv, ""]) == 2
    name = argv[-1] if argv[-1].startswith("-") else {"convert": "checkpoint", "check": "model"}[argv[0]]
    assert capsys.readouterr().err.splitlines()[0] == f"trtnet: error: argument {name}: an empty path"


def test_an_unknown_command_is_one_line_and_exit_2(capsys):
    status, err, out = run(capsys, "nope")
    assert status == 2 and out == "" and len(err) == 2 and err[1] == "trtnet: see `trtnet --help`"
    assert err[0].startswith("trtnet: error: argument COMMAND: invalid choice: 'nope' (choose from ")
    assert "build" in err[0] and "verify" in err[0]


@pytest.mark.parametrize("argv", [("build", "nope"), ("summary", "resnet18", "--weights", "missing.safetensors")])
def test_debug_changes_what_is_printed_not_the_status(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    status, err, _ = run(capsys, *argv)
    debug_status, debug_err, _ = run(capsys, *argv, "--debug")
    assert status == debug_status == 2
    assert len(err) == 1 and err[0].startswith("trtnet: error: ")
    assert debug_err[0] == "Traceback (most recent call last):" and debug_err[-1] == err[0]


def test_a_bug_is_exit_3_with_or_without_debug(capsys, monkeypatch):
    import trtnet.cli.app

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(trtnet.cli.app, "cmd_list", broken)
    assert run(capsys, "list")[0] == 3
    status, err, _ = run(capsys, "list", "--debug")
    assert status == 3 and err[-1] == (
        "trtnet: error: internal error: ZeroDivisionError: a bug (rerun with --debug "
        "for the traceback; please report it)"
    )


def test_a_write_error_names_the_target(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TRTNET_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "file").write_text("not a folder")
    target = tmp_path / "file" / "r.plan"
    status, err, _ = run(capsys, "build", "resnet18", "--batch", "1", "-o", target)
    assert status == 2 and err == [
        f"trtnet: error: {target}: cannot write the plan: cannot make the folder {tmp_path / 'file'} (File exists)"
    ]


def test_an_unusable_cache_folder_does_not_fail_the_build(capsys, tmp_path, monkeypatch):
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    monkeypatch.setenv("TRTNET_CACHE_DIR", str(tmp_path / "cache"))
    status, err, out = run(capsys, "build", "resnet18", "--batch", "1", "-o", tmp_path / "r.plan")
    assert status == 0, err
    assert (
        f"trtnet: warning: trtnet engine cache: {tmp_path / 'cache'} cannot be used (not a folder); building "
        "without the cache" in err
    )
    assert (tmp_path / "r.plan").is_file() and f"-> {tmp_path / 'r.plan'}" in out


def test_export_weights_into_a_folder_that_is_a_file_names_the_output(capsys, tmp_path):
    """This was "trtnet: error: <file>: File exists" (the folder's mkdir), after building the source."""
    pytest.importorskip("torch", reason="export-weights needs torch")
    (tmp_path / "notes").write_text("x")
    out = tmp_path / "notes" / "w.safetensors"
    status, err, stdout = run(capsys, "export-weights", "resnet18", "-o", out)
    assert (status, stdout) == (2, "")
    assert err == [
        f"trtnet: error: {out}: cannot write the weights: cannot make the folder {tmp_path / 'notes'} (File exists)"
    ]
    assert (tmp_path / "notes").read_text() == "x"


def test_version_prints_the_package_version(capsys):
    import trtnet

    status, err, out = run(capsys, "--version")
    assert (status, err, out) == (0, [], f"trtnet {trtnet.__version__}\n")


def test_a_misspelt_model_gets_a_did_you_mean(capsys):
    status, err, _ = run(capsys, "build", "resnt18")
    assert status == 2 and len(err) == 1
    assert err[0].startswith("trtnet: error: no zoo model 'resnt18'; did you mean resnet18, ")
    # a name near nothing gets no guess, only the list
    status, err, _ = run(capsys, "summary", "qqqqqq")
    assert err[0].startswith("trtnet: error: no zoo model 'qqqqqq'; known: bert_base_uncased, ")


def test_counts_of_one_are_singular(capsys, tmp_path):
    """`calibrate` on one sample in one batch said "1 samples in 1 batches; 1 layers kept" (224x224: the shape
    the model takes)."""
    import numpy as np

    data = tmp_path / "one.npz"
    np.savez(data, x=np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32))
    out = tmp_path / "c.json"
    status, err, stdout = run(capsys, "calibrate", "resnet18", "--data", data, "--batch", "1", "-o", out)
    assert status == 0, err
    assert " from 1 sample in 1 batch; 1 layer kept in fp16 -> " in stdout


def test_an_output_never_lands_on_the_model_config(capsys, tmp_path):
    """`--config` is a file the command reads: `-o` naming it (or naming the plan whose sidecar it would be)
    replaced a user's config.json with a plan, its metadata or a calibration, with exit 0."""
    config = tmp_path / "g.json"
    config.write_text('{"n_embd": 32, "n_head": 4, "n_layer": 1, "vocab_size": 64, "n_positions": 32}')
    data = tmp_path / "ids.npz"
    cases = [
        (("build", "gpt2", "--config", config, "--seq-len", "8", "-o", config), "the plan"),
        (("build", "gpt2", "--config", config, "--seq-len", "8", "-o", tmp_path / "g"), "the engine metadata"),
        (("calibrate", "gpt2", "--config", config, "--seq-len", "8", "--data", data, "-o", config), "the calibration"),
    ]
    for argv, what in cases:
        status, err, _ = run(capsys, *argv)
        assert status == 2, argv
        assert err[-1] == f"trtnet: error: {config}: cannot write {what} there: it is the model config too", argv
        assert config.read_text().startswith('{"n_embd": 32'), argv


def test_a_list_option_given_again_adds_to_the_first():
    """`--keep a --keep b` kept only b (argparse's nargs replaces the list): a layer asked to stay in fp16 was
    quantized, and a wrong name in the first flag was never checked. The same for --atol/--rtol and
    --preferred-batch. A default list is replaced, not added to."""
    from trtnet.cli.app import _parser

    parser = _parser()
    calibrate = ["calibrate", "resnet18", "--data", "d.npz"]
    assert parser.parse_args(calibrate).keep == ["last"]
    assert parser.parse_args([*calibrate, "--keep", "a", "--keep", "b", "c"]).keep == ["a", "b", "c"]
    assert parser.parse_args([*calibrate, "--keep"]).keep == []  # no layer kept
    assert parser.parse_args(["build", "resnet18", "--keep", "a", "--keep", "b"]).keep == ["a", "b"]
    check = parser.parse_args(["check", "m.onnx", "--atol", "1e-3", "--atol", "y:1e-2", "--rtol", "0"])
    assert (check.atol, check.rtol) == (["1e-3", "y:1e-2"], ["0"])
    triton = ["export-triton", "resnet18", "--repo", "r", "--preferred-batch", "2", "--preferred-batch", "4"]
    assert parser.parse_args(triton).preferred_batch == [2, 4]
    assert parser.parse_args(calibrate).keep == ["last"]  # the default list was not added to by the runs above


def test_each_command_says_how_it_sizes_an_onnx_file(capsys):
    """build and summary size an ONNX file by --shapes; calibrate by its --data arrays (it refuses --shapes): a
    fix put calibrate's sentence into build's help."""
    for command, said in (
        ("build", "sized by --shapes"),
        ("summary", "sized by --shapes"),
        ("calibrate", "sized by the --data arrays"),
    ):
        assert main([command, "--help"]) == 0
        assert said in " ".join(capsys.readouterr().out.split())
