"""aslnb.backend: TensorFlow's native start-up notices are dropped, everything else on stderr is kept."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from aslnb.backend import filter_notices

NOTICE = ("I0000 00:00:1795545124.262667    5580 port.cc:153] oneDNN custom operations are on. You may see "
          "slightly different numerical results due to floating-point round-off errors.")


def test_filter_notices_keeps_other_lines():
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            f"{NOTICE}\nreal warning: disk almost full\n")
    assert filter_notices(text) == "real warning: disk almost full\n"
    assert filter_notices("") == ""


def test_import_keras_filters_fd2_during_import(tmp_path):
    """A stand-in ``keras`` writes to file descriptor 2 from 'native code' (os.write) while it imports."""
    fake = tmp_path / "keras.py"
    fake.write_text(textwrap.dedent(f"""
        import os
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
        os.write(2, {NOTICE!r}.encode() + b"\\n")
        os.write(2, b"kept: a real message\\n")
        MARK = "fake keras"
    """))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from aslnb.backend import import_keras; "
            "k = import_keras(); print(k.MARK); print('after', file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "fake keras"
    assert r.stderr.splitlines() == ["kept: a real message", "after"]


def test_import_keras_failure_keeps_its_output(tmp_path):
    (tmp_path / "keras.py").write_text("import os\nos.write(2, b'native detail before the failure\\n')\n"
                                       "raise ImportError('broken install')\n")
    code = "import sys; sys.path.insert(0, sys.argv[1]); from aslnb.backend import import_keras; import_keras()"
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "native detail before the failure" in r.stderr and "broken install" in r.stderr


def test_one_gpu_detection_for_device_name_and_precision(monkeypatch):
    """provenance.gpu_visible is what device_name and resolve_precision("auto") go by."""
    from aslnb import features, provenance

    visible = provenance.gpu_visible()
    assert visible == bool(provenance.gpu_names()) == provenance.device_name().startswith("GPU: ")
    monkeypatch.setattr(features, "gpu_visible", lambda: True)
    assert features.resolve_precision("auto", cpuinfo="flags\t: avx2\n") == "bfloat16"
    monkeypatch.setattr(features, "gpu_visible", lambda: False)
    assert features.resolve_precision("auto", cpuinfo="flags\t: avx2\n") == "float32"


def test_gpu_names_is_empty_when_the_backend_library_is_missing(monkeypatch):
    import builtins

    from aslnb import provenance

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("no torch here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setenv("KERAS_BACKEND", "torch")
    monkeypatch.setattr(builtins, "__import__", no_torch)
    assert provenance.gpu_names() == [] and provenance.device_name().startswith("CPU: ")


def test_the_real_import_prints_nothing_on_this_machine():
    """The installed TensorFlow (CUDA build from PyPI, CPU-only here) imports through import_keras silently."""
    code = "from aslnb.backend import import_keras; import_keras(); import keras; print(keras.backend.backend())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() in ("tensorflow", "jax", "torch"), r.stderr
    assert r.stderr == "", r.stderr


def test_cuda_build_notice_is_dropped():
    line = ("I0000 00:00:1795595171.233767    4672 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
            "GPU will not be used.\n")
    assert filter_notices(line + "kept\n") == "kept\n"
