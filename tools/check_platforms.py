"""Check that pyproject.toml's requirements resolve on every platform the README names.

For each platform and Python version, pip resolves the requirements (read from
pyproject.toml into a temporary requirements file: the dependencies only, not aslnb
itself) for that platform's wheels, without installing or downloading them::

    pip install --dry-run --ignore-installed --only-binary :all: \\
        --platform TAG [--platform TAG ...] --python-version 3.11 --report FILE -r REQS

pip reads only the packages' metadata (the index serves it apart from the wheels), so a
check downloads a few MB, not the GBs of TensorFlow and CUDA. The machine's own pip
configuration (local wheel folders, constraints) is switched off for these checks
(PIP_CONFIG_FILE=/dev/null): they see the public index alone, as a user would.

One more check, "ci", resolves what the Makefile installs here: the dependencies with the
extras lite0, test and hands, under constraints/ci-linux-x86_64.txt, with this machine's pip
configuration; it must give tensorflow 2.21.0 and the CPU build of torch 2.13.0.

Usage:  python tools/check_platforms.py [--jobs 3] [--out tools/platforms.json]
Writes the results (versions chosen, or pip's error) to the JSON file and prints a
Markdown table for README.md. Exit status 1 if a check failed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints" / "ci-linux-x86_64.txt"


def _glibc(arch: str, newest: int = 35) -> list[str]:
    """Wheel tags a Linux with glibc 2.``newest`` accepts (2.35: Ubuntu 22.04, Colab)."""
    legacy = {5: "manylinux1", 12: "manylinux2010", 17: "manylinux2014"}
    tags = [f"manylinux_2_{v}_{arch}" for v in range(newest, 4, -1)]
    return tags + [f"{legacy[v]}_{arch}" for v in legacy if arch == "x86_64" or v == 17]


# name -> (what it stands for, pip --platform tags). pip widens a macOS tag to older releases itself.
PLATFORMS: dict[str, tuple[str, list[str]]] = {
    "linux-x86_64": ("Linux x86_64, glibc 2.35 (Ubuntu 22.04, Colab, WSL 2)", _glibc("x86_64")),
    "linux-aarch64": ("Linux aarch64, glibc 2.35 (e.g. Graviton, Jetson-class boards)", _glibc("aarch64")),
    "macos-arm64": ("macOS 14 on Apple silicon", ["macosx_14_0_arm64"]),
    "windows-amd64": ("Windows x86_64 (native; WSL is Linux)", ["win_amd64"]),
}
PYTHONS = ["3.11", "3.12"]
KEY_PACKAGES = ["tensorflow", "keras", "numpy", "jupyterlab", "torch", "nvidia-cudnn-cu12", "mediapipe"]


def requirements(extras: list[str]) -> list[str]:
    """The project's dependencies plus those of ``extras``, from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return reqs


def _resolve(name: str, platform: str | None, python: str | None, extras: list[str]) -> dict:
    """Run one pip dry-run; return what it chose or why it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        req_file, report = Path(tmp) / "requirements.txt", Path(tmp) / "report.json"
        req_file.write_text("\n".join(requirements(extras)) + "\n")
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(report), "-r", str(req_file)]
        env = dict(os.environ)
        if platform is None:  # this machine, as the Makefile installs it
            cmd += ["-c", str(CONSTRAINTS)]
        else:
            cmd += ["--only-binary", ":all:", "--python-version", python]
            for tag in PLATFORMS[platform][1]:
                cmd += ["--platform", tag]
            env["PIP_CONFIG_FILE"] = os.devnull
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        result = {"check": name, "platform": platform or "this machine (CI)",
                  "python": python or sys.version.split()[0], "extras": extras, "ok": proc.returncode == 0}
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            result["error"] = "\n".join(lines[-15:])
            return result
        installs = json.loads(report.read_text())["install"]
    chosen = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in installs}
    result["n_packages"] = len(chosen)
    result["versions"] = {k: chosen[k] for k in KEY_PACKAGES if k in chosen}
    result["sources"] = sorted({i["download_info"]["url"].split(":", 1)[0] for i in installs})
    for name in ("tensorflow", "torch"):  # the wheel file names show the build (platform tag, +cpu)
        if name in chosen:
            result[f"{name}_wheel"] = next(i["download_info"]["url"].rsplit("/", 1)[1]
                                           for i in installs if i["metadata"]["name"].lower() == name)
    return result


def checks() -> list[tuple[str, str | None, str | None, list[str]]]:
    """(name, platform, python, extras) of every check."""
    out = [(f"{p} py{py}", p, py, []) for p in PLATFORMS for py in PYTHONS]
    out += [(f"linux-x86_64 py{py} [cuda]", "linux-x86_64", py, ["cuda"]) for py in PYTHONS]
    # the optional extra "hands" (MediaPipe): where it has no wheel, the row says so and the rest of the course runs
    out += [(f"{p} py{py} [hands]", p, py, ["hands"]) for p in PLATFORMS for py in PYTHONS]
    out.append(("ci [lite0,test,hands] + constraints", None, None, ["lite0", "test", "hands"]))
    return out


def table(results: list[dict]) -> str:
    """A Markdown table of the results, for README.md."""
    rows = ["| check | resolved | tensorflow | keras | numpy | jupyterlab | other |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        v = r.get("versions", {})
        other = ", ".join(f"{k} {v[k]}" for k in ("torch", "nvidia-cudnn-cu12", "mediapipe") if k in v)
        status = f"yes ({r['n_packages']} packages)" if r["ok"] else "**no**"
        rows.append(f"| {r['check']} | {status} | {v.get('tensorflow', '-')} | {v.get('keras', '-')} | "
                    f"{v.get('numpy', '-')} | {v.get('jupyterlab', '-')} | {other or '-'} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "tools" / "platforms.json"))
    ap.add_argument("--jobs", type=int, default=3, help="pip runs at once (network-bound)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: _resolve(*c), checks()))
    seconds = round(time.monotonic() - t0)
    pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True).stdout.split()[1]
    Path(args.out).write_text(json.dumps({"pip": pip, "seconds": seconds, "results": results}, indent=1) + "\n")
    print(table(results))
    for r in results:
        if not r["ok"]:
            print(f"\n{r['check']} failed:\n{r['error']}", file=sys.stderr)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
