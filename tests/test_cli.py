"""The ``aslnb`` command: --help everywhere, one-line errors, tracebacks only with --debug, offline."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from aslnb import errors
from aslnb.cli import build_parser, main
from aslnb.cli.commands import _dumps
from aslnb.errors import AslnbError, DataError, ParameterError

SUBCOMMANDS = [[], ["data"], ["data", "info"], ["data", "verify"], ["data", "fetch"], ["train"], ["evaluate"],
               ["predict"], ["report"], ["bench"]]


def test_the_subcommand_list_is_complete():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"data", "train", "evaluate", "predict", "report", "bench"}
    data = next(a for a in sub.choices["data"]._actions if a.dest == "data_command")
    assert set(data.choices) == {"info", "verify", "fetch"}


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w) or "aslnb")
def test_every_subcommand_has_help(words, capsys):
    with pytest.raises(SystemExit) as ex:
        main([*words, "--help"])
    assert ex.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: aslnb {' '.join(words)}".rstrip())
    assert "--help" in out


def _subparser(words):
    parser = build_parser()
    for word in words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return parser


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w) or "aslnb")
def test_every_option_shows_its_default(words, capsys):
    """Every option but on/off switches says its default in --help (its value, or what leaving it out means)."""
    parser = _subparser(words)
    with pytest.raises(SystemExit):
        main([*words, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for action in parser._actions:
        switch = action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction)  # off unless given
        if not action.option_strings or action.required or switch:
            continue
        text = parser._get_formatter()._get_help_string(action)
        assert "(default" in text, f"aslnb {' '.join(words)} {action.option_strings[0]}: no default in its help"
        if action.default is not None and "%(default)" in text:
            shown = ",".join(map(str, action.default)) if isinstance(action.default, list) else action.default
            assert f"(default: {shown})" in out


def test_train_help_shows_the_dataclass_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("--epochs EPOCHS training epochs of the first phase (default: 20)", "(default: conv4)",
                 "--head-units N[,N...]", "(default: 256)", "--no-augment"):
        assert text in out
    from aslnb.models import backbone_names

    assert all(name in out for name in backbone_names())


def test_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for code, text in errors.EXIT_CODES.items():
        assert f"{code:>3}  {text}" in out


def test_exit_codes_are_distinct_and_leave_2_to_argparse(capsys):
    classes = [AslnbError, *AslnbError.__subclasses__()]
    codes = [c.exit_code for c in classes]
    assert len(set(codes)) == len(codes) and errors.EXIT_USAGE not in codes
    assert all(c in errors.EXIT_CODES for c in codes)
    with pytest.raises(SystemExit) as ex:
        main(["data", "info", "--no-such-option"])
    assert ex.value.code == errors.EXIT_USAGE == 2


def test_debug_is_accepted_before_and_after_the_command():
    p = build_parser()
    assert p.parse_args(["--debug", "evaluate", "r"]).debug is True
    assert p.parse_args(["evaluate", "r", "--debug"]).debug is True
    assert p.parse_args(["data", "info", "--debug"]).debug is True
    assert p.parse_args(["train", "--out", "r", "--debug"]).debug is True
    assert p.parse_args(["evaluate", "r"]).debug is False


def test_data_info_json_holds_plain_strings(tmp_dataset, capsys):
    root = tmp_dataset({"A": 2, "B": 2})
    (root / "B" / "broken.jpg").write_bytes(b"not an image")
    assert main(["data", "info", "--json", str(root)]) == 0
    out = capsys.readouterr().out
    info = json.loads(out)
    assert "np.str_" not in out and info["counts"] == {"A": 2, "B": 3}
    assert any(p.startswith(str(root / "B" / "broken.jpg")) and f"'{root / 'B' / 'broken.jpg'}'" in p
               for p in info["problems"]), info["problems"]


@pytest.mark.parametrize("bad", [{"m": "cannot open np.str_('/x.jpg')"}, {"x": float("nan")}, {"n": np.int64(3)},
                                 {"p": object()}])
def test_json_output_refuses_silently_wrong_values(bad):
    with pytest.raises((TypeError, ValueError)):
        _dumps(bad)
    assert json.loads(_dumps({"a": [1, 2.5, "b", None, True]})) == {"a": [1, 2.5, "b", None, True]}


def test_train_help_lists_precision_and_weights(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--precision", "--weights", "--freeze-until", "--overwrite", "--cache-features"):
        assert flag in out


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("aslnb: error: ") and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv, needle", [
    (["evaluate", "{tmp}/no-run"], "no-run"),
    (["predict", "{tmp}/no-run", "{sample}/A"], "no-run"),
    (["predict", "{tmp}/no-run", "{tmp}/x.jpg"], "x.jpg"),
    (["data", "info", "{tmp}/no-data"], "no-data"),
    (["train", "--data", "{tmp}/no-data", "--out", "{tmp}/run"], "no-data"),
    (["train", "--out", "{tmp}/run", "--freeze-until", "conv9", "--weights", "none"], "conv9"),
    (["train", "--out", "{tmp}/run", "--weights", "{tmp}/missing.weights.h5"], "missing.weights.h5"),
    (["train", "--out", "{tmp}/run", "--limit-per-class", "2", "--weights", "none"], "limit_per_class"),
])
def test_errors_are_one_line_and_non_zero(argv, needle, tmp_path, capsys, sample_dir, monkeypatch):
    monkeypatch.setenv("ASLNB_DATA", str(sample_dir))
    rc = main([a.format(tmp=tmp_path, sample=sample_dir) for a in argv])
    line = _one_error_line(capsys.readouterr().err)
    assert rc != 0 and needle in line
    assert not (tmp_path / "run").exists(), "a refused training must not create its run directory"


def test_unexpected_errors_are_one_line_too(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{not json")
    rc = main(["evaluate", str(run)])
    assert rc != 0 and "config.json" in _one_error_line(capsys.readouterr().err)


def test_traceback_only_with_debug(aslnb_cli, tmp_path):
    plain = aslnb_cli("evaluate", tmp_path / "no-run")
    debug = aslnb_cli("--debug", "evaluate", tmp_path / "no-run")
    after = aslnb_cli("data", "info", tmp_path / "no-data", "--debug")
    assert plain.returncode != 0 and debug.returncode != 0 and after.returncode != 0
    _one_error_line(plain.stderr)
    assert "Traceback" in debug.stderr and "RunDirError" in debug.stderr
    assert "Traceback" in after.stderr and "DataError" in after.stderr


def test_data_and_parameter_errors_have_their_own_exit_codes(tmp_path, sample_dir, capsys):
    assert main(["data", "info", str(tmp_path / "no-data")]) == DataError.exit_code != 2
    assert main(["train", "--data", str(sample_dir), "--out", str(tmp_path / "run"), "--seed", "-1"]) \
        == ParameterError.exit_code != 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def test_fetch_offline_fails_fast_in_one_line(aslnb_cli, closed_port, tmp_path):
    r = aslnb_cli("data", "fetch", "--base-url", f"http://127.0.0.1:{closed_port}/dataset", "--dest",
                  tmp_path / "data", "--per-class", "2", timeout=120)
    assert r.returncode != 0
    line = _one_error_line(r.stderr)
    assert f"127.0.0.1:{closed_port}" in line and ("--data" in line or "ASLNB_DATA" in line)


def test_train_help_prints_no_tensorflow_notices(aslnb_cli):
    """`aslnb train --help` loads the backbone registry (Keras) for its choices, quietly."""
    r = aslnb_cli("train", "--help", drop_env=("ASLNB_EXTERNAL_DATA", "TF_CPP_MIN_LOG_LEVEL"))
    assert r.returncode == 0 and "--backbone" in r.stdout
    assert r.stderr == "", r.stderr


# ---------------------------------------------------------------- issue 25: never silently wrong
@pytest.mark.parametrize("argv", [["--top-k", "0"], ["--top-k", "-5", "--json"]])
def test_predict_top_k_below_1_is_refused_in_one_line(argv, tmp_path, capsys):
    """Case 12: --top-k 0 and -5 answered top-1 with exit 0."""
    image = tmp_path / "x.jpg"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    rc = main(["predict", str(tmp_path / "no-run"), str(image), *argv])
    out, err = capsys.readouterr()
    line = _one_error_line(err)
    assert rc == ParameterError.exit_code and out == ""
    assert f"--top-k {argv[1]}" in line and "at least 1" in line


def test_data_verify_checks_a_folder_without_class_folders(tmp_dataset, tmp_path, capsys):
    """Case 19: the `aslnb data verify DIR` that predict suggests refused a plain folder of images."""
    src = tmp_dataset({"A": 2})
    loose = tmp_path / "loose"
    loose.mkdir()
    for p in (src / "A").iterdir():
        (loose / p.name).write_bytes(p.read_bytes())
    assert main(["data", "verify", str(loose)]) == 0
    assert "2 files checked, 0 bad" in capsys.readouterr().out
    bad = loose / "broken.jpg"
    bad.write_text("not an image")
    assert main(["data", "verify", str(loose)]) == errors.EXIT_BAD_IMAGES
    out = capsys.readouterr().out
    assert f"bad: {bad}: " in out and "3 files checked, 1 bad" in out


def test_train_names_a_file_whose_name_is_not_utf8(tmp_dataset, tmp_path, capsys, caplog):
    """Case 16: training ended with "unexpected UnicodeEncodeError" and did not name the file."""
    import os

    root = tmp_dataset({"A": 8, "B": 8, "C": 8})
    src = sorted((root / "A").iterdir())[0]
    with open(os.path.join(os.fsencode(root), b"A", b"bad\xff\xfename.jpg"), "wb") as f:
        f.write(src.read_bytes())
    with caplog.at_level("WARNING", logger="aslnb.data"):  # the logger prints to stderr outside pytest
        rc = main(["train", "--data", str(root), "--out", str(tmp_path / "run"), "--epochs", "1", "--image-size",
                   "32", "--weights", "none", "--no-evaluate"])
    err = capsys.readouterr().err
    assert rc == 0, err
    named = [r.getMessage() for r in caplog.records if "bad\\udcff\\udcfename.jpg" in r.getMessage()]
    assert len(named) == 1 and "not valid UTF-8" in named[0] and "unexpected" not in err
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["data"]["n_images"] == 24
