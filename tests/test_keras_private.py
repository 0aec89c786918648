"""aslnb.keras_private holds every use of Keras internals: each is checked here against the installed Keras.

When Keras is upgraded, ``test_keras_is_a_version_the_internals_were_checked_with`` fails first and
says what to do: run the other tests of this file, check ``aslnb/keras_private.py`` against the new
Keras, then add its version to ``CHECKED_KERAS``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import keras
import numpy as np

from aslnb import keras_private

PACKAGE = Path(__file__).resolve().parents[1] / "aslnb"


def test_keras_is_a_version_the_internals_were_checked_with():
    minor = ".".join(keras.__version__.split(".")[:2])
    assert minor in keras_private.CHECKED_KERAS, (
        f"Keras {keras.__version__} is installed, but aslnb/keras_private.py was checked with Keras "
        f"{', '.join(keras_private.CHECKED_KERAS)} only: run tests/test_keras_private.py, check each function of "
        "that module against the new Keras, then add the version to CHECKED_KERAS")


def test_no_other_module_uses_keras_internals():
    users = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "keras_private.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mod = getattr(node, "module", None) if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
            if (mod or "").startswith("keras.src") or any(n.startswith("keras.src") for n in names):
                users.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr in ("_flatten_layers", "_initial_epoch",
                                                                 "_load_model", "_save_model"):
                users.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} .{node.attr}")
    assert not users, f"Keras internals used outside aslnb/keras_private.py: {users}"


def test_flatten_layers_reaches_nested_models_and_sub_layers():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()])
    x = keras.Input((4,))
    outer = keras.Model(x, keras.layers.Dense(2)(inner(x)))
    classes = [type(layer).__name__ for layer in keras_private.flatten_layers(outer)]
    assert classes.count("Dense") == 2 and "BatchNormalization" in classes and "Sequential" in classes


def test_the_multiworker_patch_replaces_and_restores_keras_reduction():
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    assert callable(tf_trainer._collective_all_reduce_multi_worker)
    undo = keras_private.patch_multiworker_reduce()
    try:
        assert tf_trainer.reduce_per_replica is not original
        value = np.float32(2.0)
        assert tf_trainer.reduce_per_replica(value, None, "none") == value  # not multi-worker: Keras's own path
    finally:
        undo()
    assert tf_trainer.reduce_per_replica is original
