"""The package's import graph points one way along the pipeline (contract in pyproject.toml)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 kept, 0 broken" in res.stdout


def test_contract_names_every_module():
    """A new top-level module must be placed in a layer, or the contract would not see it."""
    import tomllib

    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {m.strip() for layer in layers for m in layer.split("|")}
    pkg = ROOT / "aslnb"
    present = {f"aslnb.{p.stem}" for p in pkg.glob("*.py") if p.stem not in ("__init__", "__main__")}
    present |= {f"aslnb.{p.name}" for p in pkg.iterdir() if (p / "__init__.py").is_file()}
    assert present <= named, f"modules outside the layers contract: {sorted(present - named)}"


def test_contract_catches_a_backwards_import(tmp_path):
    """The check itself can fail: a copy of the package where data imports train is refused."""
    import shutil

    copy = tmp_path / "aslnb"
    shutil.copytree(ROOT / "aslnb", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "data" / "leak.py").write_text("from ..train import train  # backwards\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--config", str(tmp_path / "pyproject.toml"), "--no-cache"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert res.returncode != 0 and "aslnb.data.leak" in res.stdout, res.stdout + res.stderr
