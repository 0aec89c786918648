"""The notebook kernel of ``aslnb report``, without its transport chatter (errors still pass)."""
from __future__ import annotations

import logging
import re
import warnings
from contextlib import contextmanager

# The kernel's transport notices: nothing a report reader can act on.
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]  # drops "Kernel is running over TCP without encryption"
TRANSPORT_NOISE = re.compile(r"running over TCP without encryption|frozen modules|Proactor event loop|"
                             r"Jupyter is migrating its paths", re.IGNORECASE)


class TransportNoise(logging.Filter):
    """Drops transport notices of level WARNING and below; errors always pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not TRANSPORT_NOISE.search(record.getMessage())


@contextmanager
def quiet_kernel():
    """Drop the kernel transport notices from the loggers and warnings; everything else passes."""
    noise = TransportNoise()
    loggers = [logging.getLogger(n) for n in ("papermill", "traitlets", "nbclient", "jupyter_client", "asyncio")]
    for lg in loggers:
        lg.addFilter(noise)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"zmq(\..*)?$")
            warnings.filterwarnings("ignore", message=r".*(Proactor event loop|Jupyter is migrating its paths)")
            yield
    finally:
        for lg in loggers:
            lg.removeFilter(noise)
