"""The machine a benchmark ran on: CPU, flags, versions, threads; GPUs."""
from __future__ import annotations

import os
import platform
from typing import Any

from aslnb.provenance import cpu_model, gpu_names, versions

NO_GPU = "not measured: no GPU lent in this session"


def machine_info() -> dict[str, Any]:
    """CPU, cores, bf16 flags, versions and TensorFlow's thread settings."""
    from aslnb.features import BF16_CPU_FLAGS, cpu_flags, resolve_precision

    flags = cpu_flags()
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "flags": {f: f in flags for f in ("avx2", "fma", "avx512f", "avx512_vnni", *BF16_CPU_FLAGS, "amx_tile")},
        "native_bf16": bool(flags & set(BF16_CPU_FLAGS)),
        "precision_auto": resolve_precision("auto"),
        "versions": versions(),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        import tensorflow as tf

        intra = tf.config.threading.get_intra_op_parallelism_threads()
        inter = tf.config.threading.get_inter_op_parallelism_threads()
        info["threads"] = {
            "intra_op": intra, "inter_op": inter,
            "meaning": "0 = TensorFlow's default (one thread per usable core)",
            "intra_op_effective": intra or info["cores_usable"],
            "tf_data_autotune": True,
        }
        info["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 Linux builds)")
    except ImportError:  # pragma: no cover - TF is a dependency
        pass
    return info


def gpu_info() -> dict[str, Any]:
    """What ran on a GPU: nothing when none is visible to Keras's backend."""
    gpus = gpu_names()
    if not gpus:
        return {"status": NO_GPU, "visible_gpus": []}
    return {"status": f"GPU visible ({', '.join(gpus)}): TensorFlow placed the model sections above on it",
            "visible_gpus": gpus}
