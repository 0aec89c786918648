"""Other hands: the ablation of the levers that should carry the model to signers and rooms it never saw.

    python -m benchmarks.other_hands [--levers baseline,views] [--out benchmarks/other_hands.json]

Every lever is one ``aslnb train`` run on the ASL sample only (EfficientNet-Lite0,
offline ImageNet weights, frozen, head trained on cached features) followed by
``aslnb evaluate --external`` on the Massey set. Protocol (issue 15):
``hand1`` is the validation signer (levers are kept or dropped on its accuracy),
``hand2``-``hand5`` are the test signers, reported only, never used for a choice.
Intervals are 95% block-bootstrap intervals: groups are runs of consecutive
frames for the held-out ASL split, signer x letter for Massey.
Writes ``benchmarks/other_hands.json`` and ``benchmarks/other_hands.md``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from aslnb.course.hands import LEVERS
from aslnb.io import read_json, write_json
from aslnb.provenance import device_name, versions

HERE = Path(__file__).resolve().parent
#: The recipe every lever starts from: the cpu profile's EfficientNet-Lite0 run of the issue's baseline.
BASE: dict[str, Any] = {"backbone": "efficientnet_lite0", "weights": "imagenet", "image_size": 128, "epochs": 20,
                        "freeze_until": "all", "head_units": [256], "seed": 0}


def run_lever(name: str, data: str | None, external: str | None, root: Path) -> dict[str, Any]:
    """Train and score one lever; its row of the table."""
    from aslnb.evaluate import evaluate
    from aslnb.train import train

    what, over = LEVERS[name]
    t0 = time.perf_counter()
    from aslnb.settings import cache_dir

    res = train(data, root / name, overwrite=True, verbose=0, feature_cache_dir=cache_dir() / "features",
                **{**BASE, **over})
    m = evaluate(res.run_dir, res.config["data"]["root"], external=external, model=res.model, verbose=0, write=False)
    seconds = time.perf_counter() - t0
    sig = m["external"]["signers"]
    return {"lever": name, "what": what, "params": over, "seconds": round(seconds, 1),
            "asl_held_out": m["held_out"]["interval"], "validation": sig["per_signer"][sig["validation_signer"]],
            "test": sig["test"], "per_signer": sig["per_signer"], "groups": sig["groups"],
            "massey_all_letters": m["external"]["accuracy"]}


def choose(rows: list[dict[str, Any]]) -> str:
    """The lever kept: best on the validation signer hand1 among those whose held-out ASL accuracy is not below
    the baseline's (the test signers play no part)."""
    floor = next((r["asl_held_out"]["accuracy"] for r in rows if r["lever"] == "baseline"), 0.0)
    ok = [r for r in rows if r["asl_held_out"]["accuracy"] >= floor] or rows
    return max(ok, key=lambda r: r["validation"]["accuracy"])["lever"]


def _ci(v: dict[str, Any]) -> str:
    return f"{v['accuracy']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"


def table(result: dict[str, Any]) -> str:
    """The markdown ablation table of ``result``."""
    lines = ["| lever | what | held-out ASL | hand1 (validation) | hand2-5 (test) | seconds |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['lever']} | {r['what']} | {_ci(r['asl_held_out'])} | {_ci(r['validation'])} | "
                     f"{_ci(r['test'])} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    best = result["best"]
    return "\n".join([
        "# Other hands: ablation (issue 15)", "",
        "Written by `python -m benchmarks.other_hands`; trained on the ASL sample only, scored on the Massey set. "
        "hand1 chooses, hand2-5 only report. 95% intervals: frame runs (ASL), signer x letter (Massey).", "",
        f"Base recipe: `{result['base']}`; held-out ASL split: `{result.get('split', 'blocked')}` (the headline split of notebook 01); device: {result['device']}.", "",
        table(result), "",
        "seconds: wall time of train + evaluate on a shared 2-core machine; hand views are made once and cached, "
        "so a lever that found its views already made (views+augment here) shows less.", "",
        f"Kept (best on the validation signer hand1 with held-out ASL not below the baseline): **{best}**.", "", *_probe_lines(result.get("probes"))])


def _probe_lines(probes: dict[str, Any] | None) -> list[str]:
    """The exploratory linear probes kept in the JSON (measured once by hand, not rerun by this script)."""
    if not probes:
        return []
    lines = ["## Exploratory linear probes", "", probes["note"], "",
             "| probe | held-out ASL | hand1 (validation) | hand2-5 (test) |", "|---|---|---|---|"]
    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines += [f"| {r['probe']} | {num(r['asl'])} | {num(r['hand1'])} | {num(r['test'])} |" for r in probes["rows"]]
    return lines + [""]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--levers", default=",".join(LEVERS), help="comma-separated lever names")
    p.add_argument("--data", default=None)
    p.add_argument("--external", default=os.environ.get("ASLNB_EXTERNAL_DATA"))
    p.add_argument("--out", default=str(HERE / "other_hands.json"))
    a = p.parse_args(argv)
    if not a.external:
        raise SystemExit("other_hands: the Massey set is needed: --external DIR or ASLNB_EXTERNAL_DATA")
    old = read_json(a.out) if Path(a.out).is_file() else {"rows": []}
    rows = {r["lever"]: r for r in old.get("rows", [])}
    with tempfile.TemporaryDirectory(prefix="aslnb-other-hands-") as tmp:
        for name in [n for n in a.levers.split(",") if n]:  # --levers "": rewrite the table from the JSON
            rows[name] = run_lever(name, a.data, a.external, Path(tmp))
            print(f"{name}: {_ci(rows[name]['asl_held_out'])} ASL, {_ci(rows[name]['validation'])} hand1, "
                  f"{_ci(rows[name]['test'])} hand2-5, {rows[name]['seconds']:.0f} s", flush=True)
    ordered = [rows[n] for n in LEVERS if n in rows]
    best = choose(ordered)
    from aslnb.config import TrainConfig

    result = {"base": BASE, "split": TrainConfig.split, "rows": ordered, "best": best, "device": device_name(), "versions": versions(),
              "protocol": {"validation_signer": "hand1", "test_signers": ["hand2", "hand3", "hand4", "hand5"]},
              **({"probes": old["probes"]} if "probes" in old else {})}
    write_json(a.out, result)
    Path(a.out).with_suffix(".md").write_text(markdown(result))
    return result


if __name__ == "__main__":
    main()
