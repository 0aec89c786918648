"""Training variance over seeds (aslnb.course.seeds) and notebook 05's ending (aslnb.course.ending)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from aslnb.course.ending import grey_spread, what_we_found
from aslnb.course.seeds import describe, is_difference, run_numbers, seed_summary, seed_table


def test_seed_summary_gives_mean_sample_sd_and_count():
    s = seed_summary([0.4, 0.5, 0.6], seeds=[0, 1, 2], note="x")
    assert s["mean"] == pytest.approx(0.5) and s["sd"] == pytest.approx(0.1) and s["n_seeds"] == 3
    assert s["values"] == [0.4, 0.5, 0.6] and s["seeds"] == [0, 1, 2] and s["note"] == "x"
    assert seed_summary([0.3])["sd"] == 0.0
    with pytest.raises(ValueError):
        seed_summary([])
    assert describe(s) == "0.500 ± 0.100 (sd over 3 seeds)"


def test_seed_table_leaves_a_number_out_when_a_run_lacks_it():
    table = seed_table([{"test_accuracy": 0.4, "external_accuracy": None},
                        {"test_accuracy": 0.6, "external_accuracy": 0.1}], [0, 1])
    assert table["test_accuracy"]["mean"] == pytest.approx(0.5) and table["external_accuracy"] is None


def test_a_gap_is_a_difference_only_beyond_the_interval_and_the_seed_spread():
    a, b = {"mean": 0.50, "sd": 0.01}, {"mean": 0.60, "sd": 0.01}
    assert is_difference(a, b, interval_half_width=0.05)
    assert not is_difference(a, b, interval_half_width=0.2)  # inside the test interval
    assert not is_difference(a, {"mean": 0.60, "sd": 0.06}, interval_half_width=0.05)  # inside 2 sd of a seed


def _fake_run(path, epochs, ext=0.12):
    path.mkdir()
    (path / "metrics.json").write_text(json.dumps({"held_out": {"accuracy": 0.47},
                                                   **({"external": {"accuracy": ext}} if ext is not None else {})}))
    (path / "history.json").write_text(json.dumps({"phases": ["head", "fine_tune"], "epochs": epochs}))
    return path


def test_run_numbers_reads_the_kept_epoch_of_the_last_phase(tmp_path):
    epochs = [{"phase": "head", "val_loss": 0.1, "val_accuracy": 0.9},
              {"phase": "fine_tune", "val_loss": 1.5, "val_accuracy": 0.61},
              {"phase": "fine_tune", "val_loss": 1.2, "val_accuracy": 0.63},
              {"phase": "fine_tune", "val_loss": 1.4, "val_accuracy": 0.65}]
    run = _fake_run(tmp_path / "r", epochs)
    assert run_numbers(run) == {"val_accuracy": 0.63, "test_accuracy": 0.47, "external_accuracy": 0.12}
    assert run_numbers(run, early_stopping=False)["val_accuracy"] == 0.65  # every epoch ran: the last one is kept
    assert run_numbers(_fake_run(tmp_path / "n", epochs, ext=None))["external_accuracy"] is None


def test_seed_runs_get_their_own_folders_and_parameters(tmp_path):
    from aslnb.course.notebook import default_run_dir, setup, train_kwargs
    from aslnb.course.seeds import seeds_of

    run = setup("04", {"PROFILE": "smoke", "DATA_DIR": str(tmp_path), "EXTERNAL_DIR": None,
                       "REPORT_DIR": str(tmp_path / "rep"), "SEED": 5, "WEIGHTS": None, "IMAGE_SIZE": None,
                       "EPOCHS": None, "RUN_DIR": None, "BACKBONE": "efficientnet_lite0", "FINE_TUNE_EPOCHS": None})
    assert seeds_of(run) == [5, 6, 7]
    runs = tmp_path / "rep" / "runs"
    assert default_run_dir(run, "efficientnet_lite0", 5) == runs / "smoke-efficientnet_lite0"
    assert default_run_dir(run, "efficientnet_lite0", 6) == runs / "smoke-efficientnet_lite0-seed6"
    assert train_kwargs(run, "efficientnet_lite0", 7)["seed"] == 7
    assert train_kwargs(run, "efficientnet_lite0")["seed"] == 5


def test_grey_spread_is_zero_for_a_flat_frame_and_large_for_a_silhouette(tmp_path):
    flat, half = np.full((32, 32, 3), 120, np.uint8), np.zeros((32, 32, 3), np.uint8)
    half[:, 16:] = 255  # a dark hand against a bright window
    Image.fromarray(flat).save(tmp_path / "flat.png")
    Image.fromarray(half).save(tmp_path / "half.png")
    spread = grey_spread([str(tmp_path / "flat.png"), str(tmp_path / "half.png")], size=32)
    assert spread[0] == pytest.approx(0, abs=1e-3) and spread[1] == pytest.approx(127.5, abs=1.0)
    assert grey_spread([]).shape == (0,)


def test_what_we_found_is_built_from_the_recorded_numbers():
    b = "efficientnet_lite0"
    tuned = {"val_accuracy": seed_summary([0.63, 0.62, 0.64]), "test_accuracy": seed_summary([0.47, 0.48, 0.46])}
    frozen = {"val_accuracy": seed_summary([0.56, 0.55, 0.57]), "test_accuracy": seed_summary([0.49, 0.5, 0.48])}
    metrics = {
        "nb03": {"probe_efficientnet_lite0_pretrained_chunk": 0.5302, "probe_efficientnet_lite0_random_chunk": 0.0491,
                 "massey_efficientnet_lite0_pretrained": 0.1631, "massey_efficientnet_lite0_random": 0.0468},
        "nb04": {f"{b}.frozen_vs_fine_tuned_seeds": {"frozen": frozen, "fine_tuned": tuned,
                                                     "interval_half_width": 0.068, "difference": False}},
        "nb05": {f"{b}.accuracy.random split (linear probe)": 0.9707,
                 f"{b}.accuracy.chunk split (linear probe)": 0.4948,
                 f"{b}.external_accuracy_seeds": seed_summary([0.108, 0.11, 0.1]),
                 f"{b}.external_accuracy_all_outputs_ci95": [0.081, 0.125], f"{b}.spelled": "LL  L"},
        "nb06": {"hands.image.hand2-5": 0.1313, "hands.landmarks.hand2-5": 0.7317, "hands.fusion.hand2-5": 0.7401,
                 "hands.chosen_on_hand1": "landmarks"},
    }
    metrics["nb05"][f"{b}.test_accuracy_seeds"] = seed_summary([0.53, 0.45, 0.53])
    metrics["nb05"][f"{b}.test_accuracy_ci95"] = [0.469, 0.595]
    md = what_we_found(metrics, b)
    assert md.startswith("## What we found")
    for text in ("0.971", "0.495", "chunk split", "0.503 ± 0.046 (sd over 3 seeds)", "[0.469, 0.595]", "0.530",
                 "0.049", "0.470 ± 0.010 (sd over 3 seeds)",
                 "± 0.068", "no difference", "[0.081, 0.125]", "0.131", "'LL  L'", "landmarks", "0.732"):
        assert text in md, text
    metrics["nb04"][f"{b}.frozen_vs_fine_tuned_seeds"]["difference"] = True
    assert "a difference (larger than both" in what_we_found(metrics, b)
    assert "0.740" not in what_we_found(metrics, b)  # the row chosen on hand1 is reported, not the best on hand2-5
    assert "has not run in this report folder" in what_we_found({k: v for k, v in metrics.items() if k != "nb06"}, b)
    metrics["nb05"]["hands.spelled"] = {"features": "fusion", "typed": "HELLO ASL"}
    assert "(fusion) typed `'HELLO ASL'`" in what_we_found(metrics, b)
    assert "no results recorded" in what_we_found({}, b)
