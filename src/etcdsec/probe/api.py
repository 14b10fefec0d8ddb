"""The Python API under the CLI: `probe`, `probe_many`, `probe_iter` (async) and `probe_sync`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import replace

from etcdsec.model import ProbeResult
from etcdsec.probe.engine import Prober, ProbeStop, resolve
from etcdsec.probe.options import ProbeOptions
from etcdsec.probe.verdict import judge
from etcdsec.targets import Target, parse_target

__all__ = ["ProbeOptions", "probe", "probe_iter", "probe_many", "probe_sync"]


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


def _bounded(options: ProbeOptions | None, concurrency: int) -> Callable[[str | Target], Awaitable[ProbeResult]]:
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(t: str | Target) -> ProbeResult:
        async with sem:
            return await probe(t, options)

    return one


async def probe_iter(targets: Iterable[str | Target], options: ProbeOptions | None = None,
                     concurrency: int = 64) -> AsyncIterator[ProbeResult]:
    """Results as they complete, at most `concurrency` endpoints at a time."""
    one = _bounded(options, concurrency)
    tasks = [asyncio.ensure_future(one(t)) for t in targets]
    try:
        for fut in asyncio.as_completed(tasks):
            yield await fut
    finally:
        for task in tasks:
            task.cancel()


async def probe_many(targets: Sequence[str | Target], options: ProbeOptions | None = None,
                     concurrency: int = 64) -> list[ProbeResult]:
    """Results in the order of `targets`."""
    one = _bounded(options, concurrency)
    return list(await asyncio.gather(*(one(t) for t in targets)))


def probe_sync(target: str | Target, options: ProbeOptions | None = None) -> ProbeResult:
    """Blocking form of `probe`, for scripts without an event loop."""
    return asyncio.run(probe(target, options))
