"""What produced a result: library versions, device, backend, run format."""
from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

FORMAT_VERSION = 1


def device_name() -> str:
    """'GPU: <name>' when Keras's backend sees one, else 'CPU: <model>'."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return f"GPU: {details.get('device_name', gpus[0].name)}"
        elif backend == "jax":
            import jax

            d = jax.devices()[0]
            if d.platform != "cpu":
                return f"GPU: {d.device_kind}"
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return f"GPU: {torch.cuda.get_device_name(0)}"
    except Exception:  # noqa: BLE001 - informational only
        pass
    return f"CPU: {cpu_model()} ({os.cpu_count()} cores)"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    import keras
    import numpy

    out = {"python": platform.python_version(), "keras": keras.__version__, "numpy": numpy.__version__,
           "backend": keras.backend.backend()}
    try:
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    except ImportError:
        pass
    try:
        out["aslnb"] = importlib.metadata.version("aslnb")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        out["aslnb"] = "unknown"
    return out
