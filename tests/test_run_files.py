"""Issue 25 (cases 4-8, 10, 11, 17, 18): runs leave nothing behind and their files must belong together.

Partial checkpoint files, a killed ``--overwrite`` run's hidden folder, a temporary
feature cache and a stopped hand-views folder are cleaned up or reused; the
in-memory limit of features follows the machine's memory; ``model.keras``,
``labels.json`` and ``config.json`` of another run are refused; a full disk is one
line; run files follow the umask and an unreadable file says so.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import pytest

from aslnb.errors import ParameterError, RunDirError
from aslnb.train import train

ONE_EPOCH = dict(epochs=1, batch_size=16, image_size=32, weights="none", freeze_until="all", limit_per_class=4,
                 seed=0)


@pytest.fixture(autouse=True)
def _no_external(monkeypatch):
    monkeypatch.delenv("ASLNB_EXTERNAL_DATA", raising=False)


class StopAt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt at the start of epoch ``epoch`` of the ``fit``-th fit call (an interrupted run)."""

    def __init__(self, epoch: int, fit: int = 1):
        super().__init__()
        self.epoch, self.fit, self.fits = epoch, fit, 0

    def on_train_begin(self, logs=None):
        self.fits += 1

    def on_epoch_begin(self, epoch, logs=None):
        if self.fits == self.fit and epoch == self.epoch:
            raise KeyboardInterrupt


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _parts(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if ".part" in p.name)


# -- case 4 ----------------------------------------------------------------------------------------
def test_resume_removes_partial_files_left_by_a_killed_run(tmp_dataset, tmp_path, capsys):
    data, out = tmp_dataset({"A": 4, "B": 4}), tmp_path / "run"
    params = {**ONE_EPOCH, "epochs": 2}
    with pytest.raises(KeyboardInterrupt):
        train(data, out, verbose=0, callbacks=[StopAt(1)], **params)
    head = out / "checkpoints" / "head"
    assert (head / "state.json").is_file()
    # what kill -9 during a save leaves: atomic_path's temporary files
    leftovers = [head / ".state-2.weights.h5.k9x2ab3c.part.weights.h5", head / ".state.json.q1w2e3r4.part.json",
                 out / ".model.keras.a1b2c3d4.part.keras"]
    for p in leftovers:
        p.write_bytes(b"\0" * 1000)
    capsys.readouterr()
    res = train(data, out, verbose=2, **params)
    log = capsys.readouterr().out
    assert res.config["finished"] and "[head] resuming after epoch 1" in log
    assert _parts(out) == [], _parts(out)
    assert "removed 3 partial files" in log, log


# -- case 5 ----------------------------------------------------------------------------------------
def test_a_killed_overwrite_run_is_resumed_from_its_partial_folder(tmp_dataset, tmp_path, capsys):
    data, out = tmp_dataset({"A": 4, "B": 4}), tmp_path / "run"
    train(data, out, verbose=0, **ONE_EPOCH)  # the finished run that --overwrite replaces
    params = {**ONE_EPOCH, "epochs": 2}
    scratch = tmp_path / "scratch"
    with pytest.raises(KeyboardInterrupt):
        train(data, scratch, verbose=0, callbacks=[StopAt(1)], **params)
    # what `--overwrite` killed with -9 after its first epoch leaves: a hidden partial run beside `out`
    partial = tmp_path / f".run.partial-{_dead_pid()}-ab12cd34"
    scratch.rename(partial)
    other = tmp_path / ".run.partial-x1y2z3w4"  # another killed --overwrite (other parameters; older name)
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"params": {"epochs": 9}}))
    live = tmp_path / f".run.partial-{os.getppid()}-live1234"  # a running process's: never touched
    live.mkdir()
    capsys.readouterr()
    res = train(data, out, overwrite=True, verbose=2, **params)
    log = capsys.readouterr().out
    assert f"resuming the interrupted --overwrite run in {partial}" in log, log
    assert "[head] resuming after epoch 1" in log
    assert f"removed {other} (an interrupted --overwrite run with other parameters or data)" in log, log
    assert res.config["finished"] and json.loads((out / "config.json").read_text())["params"]["epochs"] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != data.name) == [live.name, "run"]


# -- case 6 ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_temporary_feature_cache_lives_in_the_run_and_is_reused_on_resume(tmp_dataset, tmp_path, monkeypatch,
                                                                             capsys):
    import tempfile

    import aslnb.features

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    data, out = tmp_dataset({c: 6 for c in "ABC"}), tmp_path / "run"
    params = dict(image_size=32, weights="none", freeze_until="conv3", epochs=1, batch_size=8, head_units=[8], seed=0,
                  fine_tune_epochs=1)
    with pytest.raises(KeyboardInterrupt):  # stopped in its second phase, as a SIGTERM would
        train(data, out, verbose=0, features_in_memory_max_bytes=0, callbacks=[StopAt(0, fit=2)], **params)
    cache = out / "checkpoints" / "features"
    kept = sorted(p.name for p in cache.iterdir())
    assert len(kept) == 4, kept  # train and val of both phases' boundaries
    assert list(tmp.rglob("*features-*")) == []  # nothing in the system's temporary folder (TF puts its own there)
    writes = []
    real = aslnb.features.write_store
    monkeypatch.setattr(aslnb.features, "write_store", lambda *a, **k: writes.append(a[0]) or real(*a, **k))
    capsys.readouterr()
    res = train(data, out, verbose=2, features_in_memory_max_bytes=0, **params)
    log = capsys.readouterr().out
    assert writes == [], "the resumed run extracted the features again"
    assert f"cached in {cache} (the run's partial state, removed when the run finishes" in log, log
    assert res.config["finished"] and not cache.exists() and list(tmp.rglob("*features-*")) == []


@pytest.mark.slow
def test_sigterm_leaves_the_feature_cache_in_the_run_not_in_the_temporary_folder(tmp_dataset, tmp_path):
    import signal
    import time

    tmp, out = tmp_path / "tmp", tmp_path / "run"
    tmp.mkdir()
    script = ("import sys; from aslnb.train import train; train(sys.argv[1], sys.argv[2], verbose=0, "
              "features_in_memory_max_bytes=0, image_size=32, weights='none', freeze_until='conv3', epochs=1, "
              "fine_tune_epochs=50, batch_size=8, head_units=[8], seed=0)")
    args = [sys.executable, "-c", script, str(tmp_dataset({c: 6 for c in "ABC"})), str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(tmp)}
    env.pop("ASLNB_EXTERNAL_DATA", None)
    marker = out / "checkpoints" / "fine_tune" / "state.json"  # the second phase has trained an epoch
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while not marker.exists() and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
    finally:
        _, err = proc.communicate(timeout=120)
    assert marker.exists() and proc.returncode == -signal.SIGTERM, err[-2000:]
    assert list(tmp.rglob("*features-*")) == []
    assert len(list((out / "checkpoints" / "features").glob("features-*"))) == 4  # kept for the resume


# -- case 7 ----------------------------------------------------------------------------------------
def test_stopped_hand_views_leave_no_partial_folder(tmp_dataset, tmp_path, monkeypatch, capsys):
    from aslnb.data.scan import scan_folder
    from aslnb.features import views

    train_set = scan_folder(tmp_dataset({"A": 3, "nothing": 3}))
    cache = tmp_path / "cache"
    real = views._one
    calls = []

    def stop(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(views, "_one", stop)
    with pytest.raises(KeyboardInterrupt):
        views.hand_views(train_set, cache, n_views=1, size=32)
    assert list(cache.iterdir()) == []
    monkeypatch.setattr(views, "_one", real)
    # what a kill -9 leaves (with this process's pid scheme, and an older name without one), and a live one
    dead = cache / f".views-0123.{_dead_pid()}-ab12cd34.part"
    old = cache / ".views-4567.x1y2z3w4.part"
    live = cache / f".views-89ab.{os.getppid()}-live1234.part"
    for p in (dead, old, live):
        (p / "A").mkdir(parents=True)
        (p / "A" / "A1.jpg").write_bytes(b"x")
    v = views.hand_views(train_set, cache, n_views=1, size=32, verbose=1)
    assert len(v) == len(train_set)
    assert sorted(p.name for p in cache.iterdir()) == sorted([live.name, v.root.name])
    assert "removed 2 partial hand-views folders" in capsys.readouterr().out


def test_a_killed_feature_store_write_is_removed_by_the_next_one(tmp_path):
    import numpy as np

    from aslnb.features.store import write_store

    dead = tmp_path / f".features-0123.{_dead_pid()}-ab12cd34.part"
    live = tmp_path / f".features-4567.{os.getppid()}-live1234.part"
    for p in (dead, live):
        p.mkdir()
        (p / "shard-00000.npy").write_bytes(b"x")
    store = write_store(tmp_path / "features-89ab", [np.ones((3, 2), np.float32)], rows=3)
    assert np.asarray(store).shape == (3, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["features-89ab", live.name])


# -- case 8 ----------------------------------------------------------------------------------------
def test_the_in_memory_limit_follows_the_memory_at_hand(monkeypatch):
    import aslnb.features as F

    monkeypatch.setattr(F, "memory_bytes", lambda: 64 << 30)
    assert F.in_memory_limit() == 16 << 30
    monkeypatch.setattr(F, "memory_bytes", lambda: 2 << 30)
    assert F.in_memory_limit() == 512 << 20
    monkeypatch.setattr(F, "memory_bytes", lambda: None)
    assert F.in_memory_limit() == F.IN_MEMORY_MAX_BYTES
    assert F.in_memory_limit(123) == 123 and F.in_memory_limit(0) == 0
    with pytest.raises(ParameterError, match="features_in_memory_max_bytes"):
        F.in_memory_limit(-1)


def test_the_in_memory_limit_is_a_train_option():
    from aslnb.cli import build_parser

    args = build_parser().parse_args(["train", "--out", "x", "--features-in-memory-max-bytes", "0"])
    assert args.features_in_memory_max_bytes == 0
    assert build_parser().parse_args(["train", "--out", "x"]).features_in_memory_max_bytes is None


# -- cases 10 and 11 -------------------------------------------------------------------------------
@pytest.fixture
def two_runs(tmp_dataset, tmp_path):
    data = tmp_dataset({"A": 4, "B": 4, "C": 4})
    a = train(data, tmp_path / "a", verbose=0, **ONE_EPOCH).run_dir
    b = train(data, tmp_path / "b", verbose=0, **{**ONE_EPOCH, "seed": 1}).run_dir
    return a, b


def test_run_files_identify_each_other(two_runs):
    from aslnb.runs import load_run

    a, b = two_runs
    cfg = json.loads((a / "config.json").read_text())
    assert cfg["model_sha256"] == hashlib.sha256((a / "model.keras").read_bytes()).hexdigest()
    load_run(a)
    shutil.copyfile(b / "model.keras", a / "model.keras")  # same classes, same shapes, another run
    with pytest.raises(RunDirError) as err:
        load_run(a)
    msg = str(err.value)
    assert str(a / "model.keras") in msg and "another run" in msg and "\n" not in msg, msg
    del cfg["model_sha256"]  # a run written before the field existed still loads
    (a / "config.json").write_text(json.dumps(cfg))
    load_run(a)


def test_labels_in_another_order_than_config_are_refused(two_runs):
    from aslnb.runs import load_run

    a, _ = two_runs
    labels = json.loads((a / "labels.json").read_text())
    labels["class_names"] = labels["class_names"][::-1]
    (a / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(RunDirError) as err:
        load_run(a)
    msg = str(err.value)
    assert str(a / "labels.json") in msg and str(a / "config.json") in msg and "\n" not in msg, msg


# -- case 17 ---------------------------------------------------------------------------------------
FULL_DISK = textwrap.dedent("""
    import errno, sys
    import keras
    real = keras.Model.save_weights
    def full(self, filepath, *a, **k):
        real(self, filepath, *a, **k)
        raise OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: time = now\\n, "
                      "errno = 28, error message = 'No space left on device')")
    keras.Model.save_weights = full
    from aslnb.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _mount_tmpfs(folder, size: str) -> bool:
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("size, what", [("40m", "could not write the checkpoint"), ("200m", "could not save the model")])
def test_a_full_disk_is_one_line_and_the_run_dir_exit_code(tmp_dataset, tmp_path, size, what):
    """A real tmpfs where the machine allows it (40 MB: the ResNet50 checkpoint, 186 MB, does not fit; 200 MB:
    the checkpoint fits, model.keras then does not), else ENOSPC simulated while checkpointing."""
    data, disk = tmp_dataset({"A": 4, "B": 4, "C": 4}), tmp_path / "disk"
    mounted = _mount_tmpfs(disk, size)
    if not mounted:
        what = "could not write the checkpoint"
    try:
        args = ["train", "--data", str(data), "--out", str(disk / "run"), "--epochs", "1", "--image-size", "32",
                "--weights", "none", "--no-evaluate"]
        cmd = [sys.executable, "-m", "aslnb", *args] if mounted else [sys.executable, "-c", FULL_DISK, *args]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("ASLNB_EXTERNAL_DATA", None)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
        err = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == RunDirError.exit_code, r.stderr[-3000:]
        assert len(err) == 1 and what in err[0] and "(No space left on device)" in err[0], err
        assert "free some disk space" in err[0]
        assert _parts(disk) == []
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=False)


# -- case 18 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_run_files_follow_the_umask(tmp_path, umask, mode):
    from aslnb.io import write_json
    from aslnb.runs import start_run

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    old = os.umask(umask)
    try:
        write_json(tmp_path / "x.json", {"a": 1})
        run = start_run(tmp_path / "run", {}, "f", overwrite=True)
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == mode
    assert run.work.stat().st_mode & 0o777 == mode | 0o111 & ~umask  # the --overwrite partial folder too


@pytest.mark.parametrize("name", ["config.json", "labels.json"])
def test_an_unreadable_run_file_says_cannot_be_read(tmp_path, monkeypatch, name):
    import aslnb.runs
    from aslnb.runs import load_config, load_labels

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"format_version": 1, "params": {"image_size": 32}}))
    (run / "labels.json").write_text(json.dumps({"class_names": ["A"]}))
    target = run / name

    def denied(path):  # root reads any file: the permission error itself is simulated
        if str(path) == str(target):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return json.loads(open(path).read())

    monkeypatch.setattr(aslnb.runs, "read_json", denied)
    with pytest.raises(RunDirError) as err:
        (load_config if name == "config.json" else load_labels)(run)
    msg = str(err.value)
    assert msg.startswith(f"{target}: cannot be read (permission denied)") and "JSON" not in msg, msg
