"""environment.yml and pyproject.toml agree; the console script lists every command."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _key(req: str) -> tuple[str, str]:
    r = Requirement(req)
    return r.name.lower().replace("_", "-"), str(r.specifier)


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"]]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        wanted += reqs
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_reqs = [p for p in pip if not p.startswith("-e")]
    assert any(p.startswith("-e") and p.split()[-1] == "." for p in pip), "environment.yml must install aslnb itself"

    ours, theirs = sorted(map(_key, wanted)), sorted(map(_key, pip_reqs))
    assert len(set(ours)) == len(ours) and len(set(theirs)) == len(theirs), "a dependency is listed twice"
    assert theirs == ours, (
        f"only in environment.yml: {sorted(set(theirs) - set(ours))}; only in pyproject.toml: {sorted(set(ours) - set(theirs))}"
    )
    py = next(c for c in conda if c.startswith("python"))
    minimum = project["requires-python"].removeprefix(">=")
    assert py.split("=", 1)[1].startswith(minimum), (py, project["requires-python"])


def test_console_script_lists_every_command():
    exe = shutil.which("aslnb", path=str(Path(sys.executable).parent)) or shutil.which("aslnb")
    cmd = [exe, "--help"] if exe else [sys.executable, "-m", "aslnb", "--help"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    section = r.stdout.split("positional arguments:", 1)[1].split("options:", 1)[0]
    listed = [line.split()[0] for line in section.splitlines() if line.startswith("    ") and line.strip()]
    assert listed == ["data", "train", "evaluate", "predict", "report", "bench"], r.stdout
