"""The only place aslnb uses Keras internals (names outside Keras's public API).

Each use is here, with why no public API does the job; ``tests/test_keras_private.py``
checks every one against the installed Keras and fails loudly, naming this module,
when a Keras version other than the ones it was checked with (:data:`CHECKED_KERAS`)
is installed, so an upgrade cannot break them silently.
"""
from __future__ import annotations

from typing import Any, Callable

#: Keras versions (major.minor) these internals were checked against.
CHECKED_KERAS = ("3.15",)


def flatten_layers(model: Any) -> list[Any]:
    """Every layer inside ``model``, nested models and layers' own sub-layers included, in Keras's order.

    Public ``model.layers`` stops at nested models' children and skips sub-layers of custom layers, so
    it cannot tell two different frozen parts apart; the feature cache's key needs all of them.
    """
    return list(model._flatten_layers(include_self=False, recursive=True))


def patch_multiworker_reduce() -> Callable[[], None]:
    """Work around tensorflow/tensorflow#72388 (open with Keras 3.15): under ``MultiWorkerMirroredStrategy``
    Keras reduces each step's scalar logs with ``strategy.reduce("MEAN", v, axis=0)``, which fails on a
    scalar ("Invalid reduction dimension 0 for input with 0 dimensions"). During the run, scalar
    per-replica values are averaged over all replicas (``axis=None``) instead; everything else goes to
    Keras's own function. No public hook reaches this reduction. Returns the function that undoes the patch."""
    from keras import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    tf_trainer.reduce_per_replica = reduce_per_replica

    def undo() -> None:
        tf_trainer.reduce_per_replica = original

    return undo
