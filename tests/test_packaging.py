"""One requirement set for every platform: pyproject.toml, environment.yml, the CI constraints
and the Makefile agree; the wheel ships the manifests; the console script lists every command."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CONSTRAINTS = ROOT / "constraints" / "ci-linux-x86_64.txt"
# Extras environment.yml leaves out on purpose (it is for every platform; its header says how to add them).
NOT_IN_CONDA = {"cuda"}


def _key(req: str) -> tuple[str, str]:
    r = Requirement(req)
    return r.name.lower().replace("_", "-"), str(r.specifier)


def _names(reqs) -> dict[str, Requirement]:
    return {Requirement(r).name.lower().replace("_", "-"): Requirement(r) for r in reqs}


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = PROJECT
    wanted = [*project["dependencies"]]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        if extra not in NOT_IN_CONDA:
            wanted += [r for r in reqs if r not in wanted]  # torch is in several extras
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


def test_no_platform_specific_tensorflow_and_no_exact_ci_pins_in_requirements():
    """tensorflow-cpu has no macOS / aarch64 wheel and replaces Colab's TensorFlow: never require it."""
    deps = _names(PROJECT["dependencies"])
    extras = PROJECT["optional-dependencies"]
    everything = [r for reqs in [PROJECT["dependencies"], *extras.values()] for r in reqs]
    assert not [r for r in everything if Requirement(r).name.lower() == "tensorflow-cpu"]
    tf = deps["tensorflow"].specifier
    assert "2.21.0" in tf and "2.16.0" in tf and "2.15.0" not in tf  # a range: Keras 3 needs >= 2.16
    cuda = _names(extras["cuda"])["tensorflow"]
    assert cuda.extras == {"and-cuda"} and cuda.specifier == tf
    torch = _names(extras["lite0"])["torch"]
    assert "2.13.0" in torch.specifier and "2.14.1" in torch.specifier  # no exact pin: that is CI's business
    assert not [r for r in everything if "==" in r and Requirement(r).name.lower() in ("torch", "tensorflow")]


def test_jupyterlab_and_the_kernel_come_with_the_default_install():
    deps = _names(PROJECT["dependencies"])
    assert "jupyterlab" in deps and "ipykernel" in deps
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"-m ipykernel install --sys-prefix --name python3", make)
    assert "ipykernel install" in (ROOT / "environment.yml").read_text()  # the conda way is written down


def test_ci_constraints_pin_exact_versions_and_the_makefile_uses_them():
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            r = Requirement(line)
            (spec,) = r.specifier
            assert spec.operator == "==", line
            pins[r.name.lower()] = spec.version
    assert pins == {"tensorflow": "2.21.0", "keras": "3.15.1", "torch": "2.13.0", "mediapipe": "0.10.35"}
    for name, version in pins.items():  # every pin lies within the package's own ranges
        reqs = {**_names(PROJECT["dependencies"]), **_names(PROJECT["optional-dependencies"]["lite0"]),
                **_names(PROJECT["optional-dependencies"]["hands"])}
        assert version in reqs[name].specifier, (name, version)
    make = (ROOT / "Makefile").read_text()
    assert "constraints/ci-linux-x86_64.txt" in make
    install = next(line for line in make.splitlines() if "pip install" in line and "-e" in line)
    assert "$(PIP_C)" in install and re.search(r"^PIP_C := .*-c \$\(CONSTRAINTS\)", make, re.M)
    dry = subprocess.run(["make", "-n", "-B", "venv", "VENV=/nonexistent-venv"], cwd=ROOT, capture_output=True,
                         text=True)
    if sys.platform == "linux" and __import__("platform").machine() == "x86_64":
        assert "-c constraints/ci-linux-x86_64.txt -e" in dry.stdout, dry.stdout + dry.stderr


def test_the_wheel_ships_the_manifests():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]["aslnb.data"]
    shipped = [p for pattern in data for p in (ROOT / "aslnb" / "data").glob(pattern)]
    assert {p.name for p in shipped} >= {"asl-alphabet-sample.json", "massey-asl.json"}


def test_platform_check_results_are_recorded_and_all_resolved():
    """tools/check_platforms.py wrote tools/platforms.json (pip dry-runs per platform, run by hand)."""
    import json

    results = json.loads((ROOT / "tools" / "platforms.json").read_text())["results"]
    checked = {(r["platform"], r["python"], tuple(r["extras"])) for r in results}
    for platform in ("linux-x86_64", "linux-aarch64", "macos-arm64", "windows-amd64"):
        for py in ("3.11", "3.12"):
            assert (platform, py, ()) in checked
    assert ("linux-x86_64", "3.11", ("cuda",)) in checked
    for platform in ("linux-x86_64", "linux-aarch64", "macos-arm64", "windows-amd64"):  # the optional extra
        assert (platform, "3.11", ("hands",)) in checked  # resolved or not: the row says which
    required = [r for r in results if "hands" not in r["extras"] or r["check"].startswith("ci ")]
    assert all(r["ok"] for r in required), [r["check"] for r in required if not r["ok"]]
    ci = next(r for r in results if r["check"].startswith("ci "))
    assert ci["versions"]["torch"] == "2.13.0+cpu" and ci["versions"]["tensorflow"] == "2.21.0"
