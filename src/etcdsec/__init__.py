"""etcdsec: find etcd clusters open to the network, prove how open they are, audit and watch them.

Python API::

    import etcdsec
    result = etcdsec.probe_sync("127.0.0.1:2379")             # one target, blocking
    results = await etcdsec.probe_many(["10.0.0.5", "https://10.0.0.6:2379"])
    print(result.to_dict())
"""

from __future__ import annotations

import importlib
from typing import Any

from etcdsec.version import __version__

__all__ = ["ProbeOptions", "ProbeResult", "Severity", "__version__", "probe", "probe_iter", "probe_many",
           "probe_sync"]


def __getattr__(name: str) -> Any:  # lazy: `import etcdsec` stays cheap for every sub-command
    if name in ("ProbeResult", "Severity"):
        from etcdsec import model

        return getattr(model, name)
    if name == "probe":  # the package `etcdsec.probe` is itself callable: see its docstring
        return importlib.import_module("etcdsec.probe")
    if name in ("ProbeOptions", "probe_iter", "probe_many", "probe_sync"):
        from etcdsec.probe import api

        return getattr(api, name)
    raise AttributeError(name)
