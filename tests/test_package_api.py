"""`import aslnb`: real signatures for help(), and no side effects on the environment or stderr."""
from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap


def test_help_shows_real_signatures():
    import aslnb

    for fn, first in ((aslnb.train, ["data", "out"]), (aslnb.evaluate, ["run_dir", "data"]),
                      (aslnb.predict, ["run_dir"])):
        params = list(inspect.signature(fn).parameters)
        assert params[:len(first)] == first, (fn.__name__, params)
        assert "args" not in params and "kwargs" not in params[:len(first)]
        assert fn.__doc__ and fn.__module__.startswith("aslnb.")


def test_import_has_no_side_effects():
    code = textwrap.dedent("""
        import os, sys
        before = dict(os.environ)
        import aslnb
        assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
        heavy = sorted(m for m in ("keras", "tensorflow", "torch", "jax") if m in sys.modules)
        print("heavy:", heavy)
    """)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "heavy: []"  # nothing that would print TensorFlow's start-up notices
    assert res.stderr == ""  # nothing written to fd 2
