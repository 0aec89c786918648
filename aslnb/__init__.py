"""aslnb: ASL alphabet recognition by transfer learning, as a notebook course.

The notebooks and the ``aslnb`` command call the same functions:
:func:`train`, :func:`evaluate`, :func:`predict` and the data layer in
:mod:`aslnb.data`.
"""
from __future__ import annotations

__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ log lines (e.g. harmless tf.data attribute notices) go to stderr
# and clutter notebooks; users can still set TF_CPP_MIN_LOG_LEVEL themselves.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if "ipykernel" in __import__("sys").modules:
    # In a notebook, import Keras now, dropping the start-up notices TensorFlow's C++
    # prints regardless of TF_CPP_MIN_LOG_LEVEL (see aslnb.backend).
    from .backend import import_keras as _import_keras

    _import_keras()

from .errors import AslnbError, DataError, DownloadError, ModelError, ParameterError, RunDirError  # noqa: E402


def train(*args, **kwargs):
    """See :func:`aslnb.train.train`."""
    from .train import train as _train

    return _train(*args, **kwargs)


def evaluate(*args, **kwargs):
    """See :func:`aslnb.evaluate.evaluate`."""
    from .evaluate import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def predict(*args, **kwargs):
    """See :func:`aslnb.predict.predict`."""
    from .predict import predict as _predict

    return _predict(*args, **kwargs)


__all__ = ["AslnbError", "DataError", "DownloadError", "ModelError", "ParameterError", "RunDirError",
           "__version__", "evaluate", "predict", "train"]
