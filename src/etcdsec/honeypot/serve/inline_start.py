"""Run a handler coroutine inline until it first waits (Python 3.12's eager tasks, for 3.11).

Almost every etcd handler answers without waiting; creating a Task for each request would cost more
than the handler. `start_eagerly` returns the result directly when the coroutine never suspends,
else a Task that carries on from where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def start_eagerly(coro: Coroutine[Any, Any, T]) -> T | asyncio.Task[T]:
    try:
        waiting_on = coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    return asyncio.get_running_loop().create_task(_carry_on(coro, waiting_on))


async def _carry_on(coro: Coroutine[Any, Any, T], waiting_on: Any) -> T:
    """Await what the coroutine was waiting on, then resume it; its own await re-reads the outcome."""
    try:
        while True:
            if waiting_on is None:  # a bare yield (asyncio.sleep(0))
                await asyncio.sleep(0)
            elif asyncio.isfuture(waiting_on):
                # the coroutine yielded this future to us, not to a Task: clear the flag as Task.__step
                # does, or awaiting it again raises "await wasn't used with future"
                waiting_on._asyncio_future_blocking = False
                try:
                    await waiting_on
                except asyncio.CancelledError:
                    if not waiting_on.cancelled():
                        raise  # this task itself was cancelled: stop the coroutine too
                except Exception:
                    pass  # the coroutine's own await re-raises it when resumed below
            else:
                raise RuntimeError(f"coroutine waited on {waiting_on!r}, not an asyncio future")
            try:
                waiting_on = coro.send(None)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
    except BaseException:
        coro.close()
        raise
