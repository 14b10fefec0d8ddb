"""The prober: one endpoint in, one exact exposure verdict out.

`etcdsec.probe` is both this package and the documented coroutine function
`await etcdsec.probe("10.0.0.5:2379")`: the package object is callable and forwards to
`etcdsec.probe.api.probe`, so the name works whichever was imported first.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from etcdsec.probe.api import probe

        return probe(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
