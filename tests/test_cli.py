"""The ``aslnb`` command: --help everywhere, one-line errors, tracebacks only with --debug, offline."""
from __future__ import annotations

import pytest

from aslnb.cli import build_parser, main

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
    assert plain.returncode != 0 and debug.returncode != 0
    _one_error_line(plain.stderr)
    assert "Traceback" in debug.stderr and "RunDirError" in debug.stderr


def test_fetch_offline_fails_fast_in_one_line(aslnb_cli, closed_port, tmp_path):
    r = aslnb_cli("data", "fetch", "--base-url", f"http://127.0.0.1:{closed_port}/dataset", "--dest",
                  tmp_path / "data", "--per-class", "2", timeout=120)
    assert r.returncode != 0
    line = _one_error_line(r.stderr)
    assert f"127.0.0.1:{closed_port}" in line and ("--data" in line or "ASLNB_DATA" in line)
