"""Where a training run computes: the distribution strategy and the mixed-precision policy.

:func:`placement` (a context manager) sets both up for one :func:`aslnb.train.train`
call and undoes both afterwards (the global Keras dtype policy is restored,
so nothing leaks into the caller). Strategies need the TensorFlow backend:
on JAX and torch ``distribute`` other than ``none`` is refused in one line
(Keras's JAX ``DataParallel`` shards each batch evenly across devices and
fails on the uneven last batches of training and feature extraction).

``distribute`` (``--distribute``):

* ``none``: the default device.
* ``mirrored``: TensorFlow ``MirroredStrategy`` over this machine's GPUs (else
  its logical CPU devices, when several are configured).
* ``multiworker``: TensorFlow ``MultiWorkerMirroredStrategy``; the machines are
  named by ``TF_CONFIG``. Every worker runs the same command; the chief writes
  ``--out``, the other workers train into a temporary folder they delete.
* ``tpu``: TensorFlow ``TPUStrategy`` through ``TPUClusterResolver`` (Colab).

The global batch is ``batch_size``, split evenly across the replicas (Keras's
data adapter distributes the ``EpochBatches`` batches); the learning rate is not
rescaled, so a run on N replicas follows the single-device recipe. Model
building, ``compile`` and ``fit`` run inside ``strategy.scope()``, and the
BatchNormalization layers train with ``synchronized=True`` (moments of the
global batch, as on one device; switched off before saving). Tested on 2
logical CPU devices: the weights after one epoch equal the single-device
ones to float32 summation order (tests/test_distribute.py). The loss is
averaged per replica, so a last batch that does not split evenly weighs its
examples slightly differently than one device would.

Multi-worker specifics (Keras 3.15, TF 2.21): one step per call
(``steps_per_execution=1``: the multi-step loop fails with collectives), a
work-around for tensorflow/tensorflow#72388 (scalar logs), and ``train``
returns no model object (its ``predict`` would wait for every worker): the
caller loads ``model.keras``, as ``aslnb train`` does to evaluate.

``mixed_precision`` (``--mixed-precision``): ``off`` (float32), ``bfloat16``
(``mixed_bfloat16``: any device; fast on TPUs, recent GPUs and CPUs with native
bf16) or ``float16`` (``mixed_float16``, GPUs only; Keras adds loss scaling).
The classifier's softmax stays float32 (:mod:`aslnb.models.classifier`).
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import ParameterError
from ..keras_private import patch_multiworker_reduce
from ..provenance import gpu_visible


@dataclass
class Placement:
    """The strategy (None: Keras's default) and dtype policy of one run."""

    name: str
    backend: str
    replicas: int = 1
    policy: str = "float32"
    chief: bool = True
    strategy: Any = None

    def scope(self) -> contextlib.AbstractContextManager:
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def steps_per_execution(self, wanted: int) -> int:
        """``wanted``, or 1 where Keras allows no more (torch) or the multi-step loop fails (multi-worker)."""
        return 1 if self.backend == "torch" or self.name == "multiworker" else wanted

    def sync_batch_norm(self, model, on: bool) -> None:
        """Batch statistics of the global batch, not of each replica's share (TensorFlow strategies).

        ``BatchNormalization(synchronized=True)`` all-reduces the moments across
        replicas, so N replicas train as one device would. It is switched off
        again before the model is saved: a saved ``synchronized=True`` loads on
        the TensorFlow backend only.
        """
        if self.strategy is None or self.replicas == 1:
            return
        import keras

        for layer in _walk(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = on

    def describe(self, batch_size: int, learning_rates: list[float]) -> dict:
        """The ``distribution`` record of ``config.json``."""
        return {"strategy": self.name, "backend": self.backend, "replicas": self.replicas, "chief": self.chief,
                "global_batch_size": batch_size, "per_replica_batch_size": batch_size / self.replicas,
                "learning_rate": learning_rates[0], "learning_rates": learning_rates}


def dtype_policy(mixed_precision: str) -> str:
    """The Keras dtype policy of ``mixed_precision`` on this machine; float16 without a GPU is refused."""
    if mixed_precision == "off":
        return "float32"
    if mixed_precision == "float16":
        if not gpu_visible():
            raise ParameterError("mixed_precision='float16': needs a GPU (this backend sees none); use "
                                 "--mixed-precision bfloat16 or off on a CPU")
    return f"mixed_{mixed_precision}"


@contextlib.contextmanager
def placement(distribute: str, mixed_precision: str) -> Iterator[Placement]:
    """Set up the strategy and the dtype policy for a run; restore the global state afterwards."""
    import keras

    backend = keras.backend.backend()
    policy = dtype_policy(mixed_precision)
    place = Placement(distribute, backend, policy=policy)
    saved_policy = keras.config.dtype_policy()
    if distribute != "none":
        _set_up(place)
    undo = patch_multiworker_reduce() if place.name == "multiworker" and backend == "tensorflow" else None
    try:
        keras.config.set_dtype_policy(policy)
        yield place
    finally:
        keras.config.set_dtype_policy(saved_policy)
        if undo is not None:
            undo()


def _set_up(place: Placement) -> None:
    if place.backend == "tensorflow":
        place.strategy = _tf_strategy(place.name)
        place.replicas = int(place.strategy.num_replicas_in_sync)
        if place.name == "multiworker":
            place.chief = _is_chief(place.strategy.cluster_resolver)
    else:  # JAX: keras.distribution.DataParallel shards every batch evenly across the devices and fails on
        # the uneven last batches of training and feature extraction (tried: IndivisibleError).
        raise ParameterError(f"distribute={place.name!r}: not supported on the {place.backend} backend; use "
                             "KERAS_BACKEND=tensorflow for a distribution strategy, or --distribute none")


def _tf_strategy(name: str):
    import tensorflow as tf

    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy([d.name for d in gpus])
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
    if name == "multiworker":
        try:
            cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster")
        except ValueError as exc:
            raise ParameterError(f"TF_CONFIG: not valid JSON ({exc}); see the README's multi-machine example") \
                from None
        if not cluster:
            raise ParameterError("distribute='multiworker': set TF_CONFIG (the cluster's workers and this one's "
                                 "index) on every machine; see the README's 'Bigger than one machine'")
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:  # tpu: a TPU node named by the environment (COLAB_TPU_ADDR, TPU_NAME), else this TPU VM's own chips
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        except ValueError:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:
        text = str(exc).strip()
        first = text.splitlines()[0].split(". ")[0][:150] if text else exc.__class__.__name__
        raise ParameterError(f"distribute='tpu': no TPU found ({first}); in Colab pick Runtime > Change runtime "
                             "type > TPU, or use --distribute none") from None
    return tf.distribute.TPUStrategy(resolver)


def _is_chief(resolver) -> bool:
    """The chief (or worker 0 of a cluster without a chief) writes the run."""
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


def _walk(layer) -> Iterator[Any]:
    yield layer
    for sub in getattr(layer, "layers", []):
        yield from _walk(sub)
