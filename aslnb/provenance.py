"""What produced a result: library versions, device, backend, run format."""
from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

FORMAT_VERSION = 1


def gpu_names() -> list[str]:
    """Names of the GPUs Keras's backend sees (``[]`` on a CPU, or when the backend cannot tell)."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return [tf.config.experimental.get_device_details(g).get("device_name", g.name)
                    for g in tf.config.list_physical_devices("GPU")]
        if backend == "jax":
            import jax

            return [d.device_kind for d in jax.devices() if d.platform != "cpu"]
        if backend == "torch":
            import torch

            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no backend library / no driver: treat as CPU
        pass
    return []


def gpu_visible() -> bool:
    """True when Keras's backend sees a GPU."""
    return bool(gpu_names())


def device_name() -> str:
    """'GPU: <name>' when Keras's backend sees one, else 'CPU: <model>'."""
    gpus = gpu_names()
    return f"GPU: {gpus[0]}" if gpus else f"CPU: {cpu_model()} ({os.cpu_count()} cores)"


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


def memory_bytes() -> int | None:
    """This machine's memory (physical RAM, lowered to a cgroup limit if one is set); None if unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total
