"""The package's import graph points one way along the pipeline (contract in pyproject.toml)."""
from __future__ import annotations

import os
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


# --------------------------------------------------------------------------- no import cycles

def _cycles(package_root: Path, name: str = "aslnb") -> list[tuple[str, str]]:
    """Every import ``a -> b`` of package ``name`` (function-level imports included) from which ``a`` is
    reachable again."""
    import grimp

    sys.path.insert(0, str(package_root))
    try:
        graph = grimp.build_graph(name, exclude_type_checking_imports=True, cache_dir=None)
    finally:
        sys.path.remove(str(package_root))
    found = []
    for a in sorted(graph.modules):
        for b in sorted(graph.find_modules_directly_imported_by(a)):
            graph.remove_import(importer=a, imported=b)
            if graph.chain_exists(importer=b, imported=a):
                found.append((a, b))
            graph.add_import(importer=a, imported=b)
    return found


def test_no_import_cycle_inside_the_package():
    assert _cycles(ROOT) == []


def test_the_cycle_check_finds_a_circle(tmp_path):
    """The check itself can fail: a copy of the package (under another name: ``aslnb`` is imported already)
    where the backbone spec module imports the registry inside a function."""
    import shutil

    copy = tmp_path / "aslnb_copy"
    shutil.copytree(ROOT / "aslnb", copy, ignore=shutil.ignore_patterns("__pycache__"))
    spec = copy / "models" / "spec.py"
    spec.write_text(spec.read_text() + "\n\ndef _late():\n    from .registry import get_backbone  # closes a circle\n")
    assert ("aslnb_copy.models.spec", "aslnb_copy.models.registry") in _cycles(tmp_path, "aslnb_copy")


# --------------------------------------------------------------------------- short functions

MAX_FUNCTION_LINES = 60
#: The CLI parser is one long declaration of options: it may be longer.
EXEMPT = {"aslnb/cli/parser.py:build_parser"}


def _long_functions(root: Path) -> dict[str, int]:
    import ast

    out = {}
    for path in sorted((root / "aslnb").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and f"{rel}:{node.name}" not in EXEMPT:
                    out[f"{rel}:{node.name}"] = lines
    return out


def test_no_function_is_over_60_lines():
    over = _long_functions(ROOT)
    assert over == {}, f"functions over {MAX_FUNCTION_LINES} lines (split them into steps): {over}"


def test_the_length_check_finds_a_long_function(tmp_path):
    (tmp_path / "aslnb").mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "aslnb" / "m.py").write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}")
    assert _long_functions(tmp_path) == {"aslnb/m.py:long": MAX_FUNCTION_LINES + 1}


# --------------------------------------------------------------------------- no import side effects

def test_importing_the_package_leaves_pillow_settings_alone():
    """``import aslnb.data.images``, then every other module (in a fresh interpreter), changes none of
    Pillow's global settings (the decompression-bomb limit is applied where images are opened)."""
    code = """if True:
        import importlib, json, pkgutil
        from PIL import Image, ImageFile
        def settings():
            return [Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES]
        before = settings()
        import aslnb.data.images
        after_images = settings()
        import aslnb
        names = [m.name for m in pkgutil.walk_packages(aslnb.__path__, "aslnb.") if m.name != "aslnb.__main__"]
        for name in names:
            importlib.import_module(name)
        print(json.dumps({"before": before, "images": after_images, "all": settings(), "modules": len(names)}))
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    import json

    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["modules"] > 40  # every module was imported
    assert got["before"] == got["images"] == got["all"], got
