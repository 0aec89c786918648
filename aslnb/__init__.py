"""aslnb: ASL alphabet recognition by transfer learning, as a notebook course.

The pipeline, one module or sub-package per step, each importing only the ones
before it (``tests/test_layering.py`` keeps it so):

``data`` (scan, split, decode, fetch) → ``models`` (backbone registry, classifier)
→ ``features`` (frozen-part feature cache) → ``runs`` (the run directory)
→ ``train`` → ``evaluate`` → ``predict``; ``course`` holds the notebooks' helpers
and ``cli`` the ``aslnb`` command. Settings are in ``settings``, defaults in
``config``. Importing ``aslnb`` changes nothing in the environment.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import AslnbError, DataError, DownloadError, ModelError, ParameterError, RunDirError
from .evaluate import evaluate
from .predict import predict
from .train import train

__all__ = ["AslnbError", "DataError", "DownloadError", "ModelError", "ParameterError", "RunDirError",
           "__version__", "evaluate", "predict", "train"]
