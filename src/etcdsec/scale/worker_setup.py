"""Preloaded into the worker processes of a local cluster (`scan --workers`, `monitor exposure --workers`).

Ctrl-C in a terminal reaches the whole process group. The submitting command handles it: it tells
its tasks to stop and write their last batch. A worker that died of the same Ctrl-C would
print Dask's tracebacks and lose that batch, so local workers ignore SIGINT.
"""

from __future__ import annotations

import signal
from typing import Any


def dask_setup(worker: Any) -> None:  # called by Dask in the worker's main thread as it starts
    signal.signal(signal.SIGINT, signal.SIG_IGN)
