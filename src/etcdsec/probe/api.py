"""The Python API under the CLI: `probe`, `probe_many`, `probe_iter` (async) and `probe_sync`."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from typing import TypeVar

from etcdsec.model import ProbeResult
from etcdsec.probe.engine import Prober, ProbeStop, resolve
from etcdsec.probe.options import ProbeOptions
from etcdsec.probe.verdict import judge
from etcdsec.targets import Target, parse_target

T = TypeVar("T", bound=str | Target)

__all__ = ["ProbeOptions", "probe", "probe_iter", "probe_many", "probe_stream", "probe_sync"]


async def probe(target: str | Target, options: ProbeOptions | None = None) -> ProbeResult:
    """Probe one endpoint. Never raises for network trouble: it lands in `result.error`.

    When etcd refuses `--user/--password`, the endpoint is probed again without them: the result
    then says so (`credentials_rejected`) and shows what anonymous access still gives."""
    opts = options or ProbeOptions()
    t = target if isinstance(target, Target) else parse_target(target)
    result = await _probe_once(t, opts)
    if result.credentials_rejected and opts.user is not None:
        anonymous = await _probe_once(t, replace(opts, user=None, password=None))
        anonymous.credentials, anonymous.credentials_rejected = result.credentials, True
        anonymous.duration_ms += result.duration_ms
        result = anonymous
    return judge(result)


async def _probe_once(t: Target, opts: ProbeOptions) -> ProbeResult:
    result = ProbeResult(target=t.text, port=t.port)
    if opts.user is not None or opts.cert:
        result.credentials = f"user {opts.user}" if opts.user is not None else "client certificate"
    started = time.monotonic()
    prober: Prober | None = None
    try:
        async with asyncio.timeout(opts.deadline):
            result.ip = await resolve(t.host, opts.connect_timeout)
            prober = Prober(t, opts, result)
            await prober.run()
    except ProbeStop as stop:
        result.error = str(stop)
    except TimeoutError:
        result.error = f"deadline of {opts.deadline:g}s exceeded"
        if prober is not None and prober.ev.version is not None:
            prober.decide_identity()
    except Exception as exc:  # one strange server must never end a scan of a million others
        result.error = f"probe failed: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        if prober is not None:
            await prober.close()
    if result.client_cert_required:
        result.is_etcd = None  # cannot be told without a certificate the server trusts
    elif result.is_etcd is None and result.reachable and result.error:
        result.is_etcd = False
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


async def probe_stream(targets: Iterable[T], options: ProbeOptions | None = None, concurrency: int = 64,
                       ordered: bool = False) -> AsyncIterator[tuple[T, ProbeResult]]:
    """(target, result) pairs, reading `targets` lazily: at most `concurrency` endpoints in flight and,
    when `ordered`, at most 4 x `concurrency` + 2048 results held back to keep the order of `targets`
    (a slow endpoint at the head, e.g. a tarpit using its whole deadline, then stalls nothing while
    a few thousand after it finish). Memory stays flat however many targets there are."""
    sem = asyncio.Semaphore(max(1, concurrency))
    window = max(1, concurrency) * 4 + 2048 if ordered else max(1, concurrency)

    async def one(t: T) -> tuple[T, ProbeResult]:
        async with sem:
            return t, await probe(t, options)

    source = iter(targets)
    pending: deque[asyncio.Task[tuple[T, ProbeResult]]] = deque()
    finished: asyncio.Queue[asyncio.Task[tuple[T, ProbeResult]]] = asyncio.Queue()
    try:
        while True:
            while len(pending) < window and (t := next(source, None)) is not None:
                task = asyncio.ensure_future(one(t))
                if not ordered:
                    task.add_done_callback(finished.put_nowait)
                pending.append(task)
            if not pending:
                return
            if ordered:
                yield await pending.popleft()
            else:  # the first to finish, in O(1): asyncio.wait would re-arm every pending task each time
                done = await finished.get()
                pending.remove(done)
                yield done.result()
    finally:
        for task in pending:
            task.cancel()


async def probe_iter(targets: Iterable[str | Target], options: ProbeOptions | None = None,
                     concurrency: int = 64) -> AsyncIterator[ProbeResult]:
    """Results as they complete, at most `concurrency` endpoints at a time."""
    async for _target, result in probe_stream(targets, options, concurrency):
        yield result


async def probe_many(targets: Sequence[str | Target], options: ProbeOptions | None = None,
                     concurrency: int = 64) -> list[ProbeResult]:
    """Results in the order of `targets`."""
    return [result async for _target, result in probe_stream(targets, options, concurrency, ordered=True)]


def probe_sync(target: str | Target, options: ProbeOptions | None = None) -> ProbeResult:
    """Blocking form of `probe`, for scripts without an event loop."""
    return asyncio.run(probe(target, options))
