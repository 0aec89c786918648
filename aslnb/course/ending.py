"""Notebook 05's last sections: the light of the test chunk, and "What we found", built from metrics.json.

* :func:`grey_spread`: per image, the standard deviation of its grey levels (0-255): low for a flat,
  evenly lit frame, high for a backlit silhouette (a dark hand against a bright window).
* :func:`what_we_found`: the course's results as markdown, every number read from the report's
  ``metrics.json`` (so the notebook shows it as printed output, ``IPython.display.Markdown``).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..data.pipeline import DECODER, decode_files
from .seeds import describe

__all__ = ["grey_spread", "what_we_found"]


def grey_spread(files: Sequence[str], size: int = 64, decoder: str = DECODER) -> np.ndarray:
    """Per file, the standard deviation of its grey levels (mean of R, G, B) at ``size`` px."""
    if not len(files):
        return np.zeros(0)
    grey = decode_files(list(files), size, decoder).astype(np.float32).mean(axis=3)
    return grey.reshape(len(grey), -1).std(axis=1)


def _num(value: Any) -> str:
    """A recorded number as text: a seed summary as ``mean ± sd (n seeds)``, a float as 3 decimals."""
    if isinstance(value, dict) and "mean" in value:
        return describe(value)
    if isinstance(value, (int, float)):
        return f"{value:.3f}"
    return "not recorded"


def _iv(ci: Any) -> str:
    return f" [{ci[0]:.3f}, {ci[1]:.3f}]" if isinstance(ci, (list, tuple)) and len(ci) == 2 else ""


def _split_part(nb05: dict, b: str) -> list[str]:
    split = next((k.split(".accuracy.")[1].split(" split (linear probe)")[0] for k in nb05
                  if k.startswith(f"{b}.accuracy.") and k.endswith("split (linear probe)") and "random" not in k), None)
    rnd = nb05.get(f"{b}.accuracy.random split (linear probe)")
    held = nb05.get(f"{b}.accuracy.{split} split (linear probe)") if split else None
    if rnd is None or held is None:
        return []
    return [f"**Random split vs the headline split.** The same features, a linear probe: {_num(rnd)} with a random "
            f"split, {_num(held)} with the {split} split (notebook 05's comparison); the trained model scores "
            f"{_num(nb05.get(f'{b}.test_accuracy_seeds'))} on the {split} test split, 95 % interval over frame runs "
            f"of one run{_iv(nb05.get(f'{b}.test_accuracy_ci95'))}. Neighbouring video frames in "
            "training and test make the random split's number a memory test. *What would improve it:* more "
            "recording sessions (people, rooms, light), so that a held-out session is a fair test."]


def _pretrained_part(nb03: dict) -> list[str]:
    b = next((k[len("probe_"):-len("_pretrained_chunk")] for k in nb03
              if k.startswith("probe_") and k.endswith("_pretrained_chunk")), None)
    if b is None:
        return []
    keys = {k: nb03.get(k.format(b=b)) for k in ("probe_{b}_pretrained_chunk", "probe_{b}_random_chunk",
                                                  "massey_{b}_pretrained", "massey_{b}_random")}
    return [f"**Pretrained vs random weights** (notebook 03, linear probes, no seeds repeated): ImageNet features "
            f"{_num(keys['probe_{b}_pretrained_chunk'])} on the held-out chunk and "
            f"{_num(keys['massey_{b}_pretrained'])} on Massey; the same network with random weights "
            f"{_num(keys['probe_{b}_random_chunk'])} and {_num(keys['massey_{b}_random'])}. "
            "*What would improve it:* a backbone pretrained on hands (or on more varied images), and fine-tuning "
            "more of it once more varied data is at hand."]


def _tuning_part(nb04: dict, b: str) -> list[str]:
    seeds = nb04.get(f"{b}.frozen_vs_fine_tuned_seeds")
    if not seeds:
        return []
    fr, ft = seeds["frozen"], seeds["fine_tuned"]
    verdict = ("a difference (larger than both the test interval and the seed spread)" if seeds.get("difference")
               else "no difference this course can claim: the gap is inside the test interval or the seed spread")
    return [f"**Frozen vs fine-tuned** (notebook 04): validation {_num(fr['val_accuracy'])} frozen, "
            f"{_num(ft['val_accuracy'])} fine-tuned; held-out test {_num(fr['test_accuracy'])} frozen, "
            f"{_num(ft['test_accuracy'])} fine-tuned (95 % interval of one run ± {seeds['interval_half_width']:.3f}): "
            f"{verdict}. *What would improve it:* validation data that looks like the test (the chunk is "
            "lit differently, see the mistakes section), so that the settings picked on validation carry over."]


def _hands_part(nb05: dict, nb06: dict, b: str) -> list[str]:
    ext = nb05.get(f"{b}.external_accuracy_seeds") or nb05.get(f"{b}.external_accuracy_all_outputs")
    if ext is None:
        return []
    line = (f"**Other hands** (Massey, all outputs): {_num(ext)}, interval over signers of one run"
            f"{_iv(nb05.get(f'{b}.external_accuracy_all_outputs_ci95'))}.")
    chosen = nb06.get("hands.chosen_on_hand1")  # 06's row chosen on the validation signer, never on hand2-5
    if chosen and f"hands.{chosen}.hand2-5" in nb06:
        line += (f" Notebook 06's row chosen on `hand1` (`{chosen}`) reaches {_num(nb06[f'hands.{chosen}.hand2-5'])} "
                 f"on its test signers hand2-5, against {_num(nb06.get('hands.image.hand2-5'))} for the room's pixels.")
    else:
        line += (" (Notebook 06, which compares the networks to transfer from on these signers, has not run in this "
                 "report folder yet: run it, then this cell again.)")
    return [line + " *What would improve it:* training frames of many people and backgrounds; hand landmarks "
            "(`aslnb train --profile hands`: the landmarks, the pixels where no hand is found) that leave the room and "
            "the skin out."]


def _hands_spelled(rec: Any) -> str:
    if not isinstance(rec, dict):
        return ""
    return (f" Notebook 06's row chosen on `hand1` ({rec['features']}) typed `{rec['typed']!r}` from the same "
            "frames.")


def what_we_found(metrics: dict[str, Any], backbone: str) -> str:
    """The course's findings as markdown, from a report's ``metrics.json`` (sections missing from it are left out)."""
    nb03, nb04, nb05, nb06 = (metrics.get(f"nb0{i}", {}) for i in (3, 4, 5, 6))
    parts = (_split_part(nb05, backbone) + _pretrained_part(nb03) + _tuning_part(nb04, backbone)
             + _hands_part(nb05, nb06, backbone))
    spelled = nb05.get(f"{backbone}.spelled")
    if spelled is not None:
        parts.append(f"**Spelling** `HELLO ASL` from held test frames typed `{spelled!r}`: a letter is typed only "
                     "when enough frames in a row agree, so the speller can do no better than the per-frame "
                     "predictions of the held signs (notebook 05's spelling cell prints them). *What would improve "
                     "it:* a model that is right on most frames of the test light, then a longer hold."
                     + _hands_spelled(nb05.get("hands.spelled")))
    body = "\n".join(f"* {p}" for p in parts) if parts else "* (no results recorded in this report yet)"
    return "## What we found\n\nEvery number below is read from this report's `metrics.json`.\n\n" + body + "\n"
