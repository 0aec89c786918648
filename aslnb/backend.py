"""Import Keras and its TensorFlow backend without TensorFlow's native start-up notices.

On CPUs where TensorFlow turns oneDNN on by default (AVX-512 and newer), importing
it writes ``oneDNN custom operations are on ...`` twice to the process's stderr
from C++, before its logging is set up, so ``TF_CPP_MIN_LOG_LEVEL`` does not
silence it. :func:`import_keras` captures file descriptor 2 during the import and
writes back every line except those notices: anything else (a real warning, an
import error's output) still reaches stderr.
"""
from __future__ import annotations

import os
import sys
import tempfile
from types import ModuleType

# Lines TensorFlow prints at import that say nothing about the user's work.
START_UP_NOTICES = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "cpu_feature_guard.cc",
    "To enable the following instructions:",
    # The CUDA build of TensorFlow (the `tensorflow` wheel) on a machine without an NVIDIA driver:
    "Could not find cuda drivers on your machine",
)


def filter_notices(text: str) -> str:
    """``text`` without TensorFlow's start-up notice lines."""
    lines = text.splitlines(keepends=True)
    return "".join(line for line in lines if not any(n in line for n in START_UP_NOTICES))


def import_keras() -> ModuleType:
    """``import keras`` (importing the backend), with the start-up notices dropped from stderr."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2 (unusual embedders): plain import
        import keras

        return keras
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import keras
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            rest = filter_notices(capture.read().decode("utf-8", errors="replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()
    return keras
