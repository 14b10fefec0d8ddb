"""start_eagerly: a handler that never waits costs no task; one that waits finishes in a task with
the same result, exception or cancellation it would have had in a task from the start."""

from __future__ import annotations

import asyncio

import pytest

from etcdsec.honeypot.serve.inline_start import start_eagerly


async def immediate(value: int) -> int:
    return value


async def waits_for(fut: asyncio.Future[int]) -> int:
    await asyncio.sleep(0)  # a bare yield first
    return await fut + 1


async def fails_after(fut: asyncio.Future[int]) -> int:
    await fut
    raise ValueError("boom")


def test_no_wait_gives_the_result_itself() -> None:
    async def run() -> None:
        assert start_eagerly(immediate(7)) == 7
    asyncio.run(run())


def test_a_wait_continues_in_a_task_with_the_result() -> None:
    async def run() -> None:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        pending = start_eagerly(waits_for(fut))
        assert isinstance(pending, asyncio.Task)
        await asyncio.sleep(0.01)
        assert not pending.done()
        fut.set_result(41)
        assert await pending == 42
    asyncio.run(run())


def test_exceptions_reach_the_coroutine_and_the_task() -> None:
    async def run() -> None:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        pending = start_eagerly(fails_after(fut))
        fut.set_exception(KeyError("inner"))
        with pytest.raises(KeyError):
            await pending
        fut2: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        pending2 = start_eagerly(fails_after(fut2))
        fut2.set_result(1)
        with pytest.raises(ValueError, match="boom"):
            await pending2
    asyncio.run(run())


def test_cancelling_the_task_cancels_the_coroutine_and_what_it_awaits() -> None:
    async def run() -> None:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        pending = start_eagerly(waits_for(fut))
        await asyncio.sleep(0.01)
        assert isinstance(pending, asyncio.Task)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert fut.cancelled()
    asyncio.run(run())
